//! Property tests of the pure request-handling path: no input, however malformed, makes
//! parsing, planning, tag matching, routing or token checking panic, and what parsing
//! accepts is within the documented limits. (A panic would abort every request in flight
//! in the isolate.) Run with `cargo test`; `PROPTEST_CASES=10000 cargo test proptests`
//! for a longer run.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::auth::{bearer, Verifier};
use crate::endpoints::{resolve, Handler, ENDPOINTS};
use crate::entities::ENTITIES;
use crate::envelope::valid_id;
use crate::etag::{none_match, state_tag};
use crate::parse::{parse_delta, parse_full_upload, parse_query, parse_sync, Limits, Op};
use crate::plan::plan;

const LIMITS: Limits = Limits { max_changes: 50, max_upload_records: 50 };

/// Arbitrary JSON, biased towards the shapes and names the parsers look at.
fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("id".to_string()),
        Just("type".to_string()),
        Just("version".to_string()),
        Just("deleted".to_string()),
        Just("deleted_at".to_string()),
        Just("title".to_string()),
        Just("content".to_string()),
        Just("value".to_string()),
        Just("priority".to_string()),
        Just("due_date".to_string()),
        Just("list_id".to_string()),
        Just("completed".to_string()),
        Just("changes".to_string()),
        Just("cursor".to_string()),
        Just("created".to_string()),
        Just("deleted".to_string()),
        Just("data".to_string()),
        "[a-z_]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![Just("tasks"), Just("lists"), Just("notes"), Just("settings"), Just("high"), Just("t1")]
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn sync_parsing_never_panics_and_respects_limits(body in json_value()) {
        if let Ok(req) = parse_sync(&body, LIMITS) {
            prop_assert!(req.changes.len() <= LIMITS.max_changes);
            prop_assert!(req.cursor >= 0);
            for c in &req.changes {
                prop_assert!(valid_id(c.id.as_str()));
                if let Op::Upsert(values) = &c.op {
                    prop_assert_eq!(values.len(), c.entity.fields.len());
                }
            }
            // Whatever parses can be planned, without an error or a panic.
            let p = plan(&req.changes, Default::default(), 5, 10);
            prop_assert!(p.as_ref().is_ok_and(|p| p.seq >= 5), "{:?}", p.err());
        }
    }

    #[test]
    fn changes_wrapped_in_a_request_never_panic(changes in prop::collection::vec(json_value(), 0..10)) {
        let _ = parse_sync(&json!({ "cursor": 0, "changes": changes }), LIMITS);
    }

    #[test]
    fn per_type_bodies_never_panic(body in json_value()) {
        for e in ENTITIES {
            let _ = parse_delta(&body, e, LIMITS);
            let _ = parse_full_upload(&body, e, LIMITS);
            let _ = parse_delta(&json!({ "changes": body.clone() }), e, LIMITS);
            let _ = parse_full_upload(&json!({ "data": [body.clone()] }), e, LIMITS);
        }
    }

    #[test]
    fn query_parsing_never_panics(pairs in prop::collection::vec(("(since|limit|after|[a-z]{1,5})", ".{0,24}"), 0..6)) {
        for ep in ENDPOINTS.iter().filter(|e| e.method == "GET") {
            if let Ok(q) = parse_query(ep.query, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
                prop_assert!((1..=1000).contains(&q.limit));
                prop_assert!(q.since.is_none_or(|s| s >= 0));
                prop_assert_eq!(q.since.is_some(), ep.handler == Handler::Changes);
            }
        }
    }

    #[test]
    fn headers_and_paths_never_panic(h in ".{0,64}", seq in 0i64..1_000_000, method in "(GET|POST|HEAD|PUT|[A-Z]{1,7})", path in "(/[a-z{}._-]{0,12}){0,5}") {
        let _ = none_match(&h, &state_tag(seq));
        prop_assert!(none_match(&state_tag(seq), &state_tag(seq)));
        let _ = bearer(Some(&h));
        let _ = resolve(&method, &path, |_| true);
    }

    #[test]
    fn tokens_never_panic_the_verifier(token in "[A-Za-z0-9_.=-]{0,300}") {
        let v = Verifier::new(Some("secret"), Some("iss"), Some("aud"));
        prop_assert!(v.verify(&token, 1_800_000_000_000).is_err());
    }
}

/// A time claim as an attacker holding a signing key might write it: any integer, any
/// float, the edges of chrono's and JavaScript's ranges, or not a number at all.
fn time_claim() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        1 => Just(None),
        1 => any::<i64>().prop_map(|n| Some(Value::from(n))),
        1 => any::<u64>().prop_map(|n| Some(Value::from(n))),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| Some(Value::from(f))),
        6 => prop_oneof![
            Just(chrono::DateTime::<chrono::Utc>::MAX_UTC.timestamp()),
            Just(chrono::DateTime::<chrono::Utc>::MIN_UTC.timestamp()),
            Just(9_007_199_254_740_991_i64),
            Just(-9_007_199_254_740_991_i64),
            Just(253_402_300_799_i64),
            Just(1_800_000_000_i64),
        ]
        .prop_flat_map(|edge| (-90i64..90).prop_map(move |d| Some(Value::from(edge.saturating_add(d))))),
        1 => Just(Some(Value::from("1800000000"))),
        1 => Just(Some(Value::Null)),
    ]
}

proptest! {
    /// Correctly signed tokens with arbitrary claims: the verifier answers, never panics
    /// (a panic resets the whole wasm instance, failing other users' requests in flight).
    #[test]
    fn signed_tokens_with_arbitrary_time_claims_never_panic(
        exp in prop_oneof![3 => Just(Some(Value::from(1_800_000_600i64))), 2 => time_claim()],
        nbf in time_claim(), iat in time_claim(), sub in prop::option::of(".{0,140}"),
        extra in json_value(), now in prop_oneof![4 => Just(1_800_000_000_000i64), 1 => any::<i64>()],
    ) {
        use jwt_compact::alg::{Hs256, Hs256Key};
        use jwt_compact::{AlgorithmExt, Claims, Header};
        let mut claims = serde_json::Map::new();
        for (k, v) in [("exp", exp), ("nbf", nbf), ("iat", iat)] {
            if let Some(v) = v {
                claims.insert(k.into(), v);
            }
        }
        if let Some(s) = sub {
            claims.insert("sub".into(), s.into());
        }
        claims.insert("x".into(), extra);
        let mut c = Claims::new(Value::Object(claims));
        c.expiration = None;
        let token = Hs256.token(&Header::empty(), &c, &Hs256Key::new(b"secret")).unwrap();
        let _ = Verifier::new(Some("secret"), None, None).verify(&token, now);
    }
}

/// A string as records hold them: short ASCII, any Unicode (control characters, quotes,
/// backslashes, astral planes), or large (a repeated piece, up to hundreds of KB).
fn record_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9 ]{0,24}",
        3 => any::<String>(),
        1 => (any::<String>(), 1usize..20_000).prop_map(|(s, n)| if s.is_empty() { "x".repeat(n) } else { s.repeat(n.min(200_000 / s.len().max(1)).max(1)) }),
    ]
}

/// A stored entry: any type the build declares, any id and revs, a record that is an
/// object with arbitrary values (a tombstone's carries `deleted_at`, possibly any integer).
fn entry() -> impl Strategy<Value = crate::pages::Entry> {
    let names: Vec<&'static str> = ENTITIES.iter().map(|e| e.name).collect();
    let field = prop_oneof![record_string().prop_map(Value::from), json_value()];
    (
        prop::sample::select(names),
        record_string(),
        any::<i64>(),
        any::<i64>(),
        any::<bool>(),
        prop::collection::btree_map("[a-z_]{1,10}|.{1,6}", field, 0..6),
        prop_oneof![Just(None), any::<i64>().prop_map(Some)],
        (any::<bool>(), any::<bool>()),
    )
        .prop_map(|(entity, id, rev, created_rev, deleted, fields, deleted_at, (with_rev, pretty))| {
            let mut record: serde_json::Map<String, Value> = fields.into_iter().collect();
            record.insert("id".into(), Value::from(id.clone()));
            record.insert("deleted_at".into(), deleted_at.map_or(Value::Null, Value::from));
            if with_rev {
                record.insert("rev".into(), Value::from(rev));
            }
            // Pages hold serde_json's compact text; another layout must round-trip too.
            let text = match pretty {
                true => serde_json::to_string_pretty(&Value::Object(record)).unwrap(),
                false => serde_json::to_string(&Value::Object(record)).unwrap(),
            };
            let record = serde_json::value::RawValue::from_string(text).unwrap();
            crate::pages::Entry::new(entity, id, rev, created_rev, deleted, record)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Stored pages (columns, deflated) give back every entry exactly (type, id, revs, deleted flag and the
    /// record's JSON byte for byte), through the bytes and through D1's `hex(body)`, and
    /// encode back to the same page; the page's `tomb` is its earliest tombstone's
    /// `deleted_at`.
    #[test]
    fn compressed_pages_round_trip_every_record(entries in prop::collection::vec(entry(), 0..40)) {
        use crate::codec;
        let body = codec::encode(&entries).unwrap();
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
        for back in [codec::decode(&body).unwrap(), codec::decode_hex(&hex).unwrap(), codec::decode_hex(&hex.to_uppercase()).unwrap()] {
            prop_assert_eq!(back.len(), entries.len());
            for (a, b) in entries.iter().zip(&back) {
                prop_assert_eq!((a.entity, &a.id, a.rev, a.created_rev, a.deleted), (b.entity, &b.id, b.rev, b.created_rev, b.deleted));
                prop_assert_eq!(a.record().unwrap().get(), b.record().unwrap().get());
            }
            // Decoded entries are written from the page they came from, not by splitting their
            // text again: the same page, byte for byte.
            prop_assert_eq!(codec::encode(&back).unwrap(), body.clone());
        }
        let earliest = entries
            .iter()
            .filter(|e| e.deleted)
            .filter_map(|e| serde_json::from_str::<Value>(e.record().unwrap().get()).unwrap()["deleted_at"].as_i64())
            .min();
        prop_assert_eq!(codec::tomb(&entries).unwrap(), earliest);
    }

    /// `codec::mentions` answers exactly whether a JSON string of the page (a key or a
    /// value, unescaped) is one of the ids, in either format: so every entry's own id is
    /// mentioned, and a bucket it calls free of a push's keys holds none of them. And
    /// `codec::decode_json_only` gives what the full decode gives of those ids.
    #[test]
    fn mentions_is_whether_some_json_string_of_the_page_is_an_id(
        entries in prop::collection::vec(entry(), 0..20),
        probes in prop::collection::vec(record_string(), 0..4),
    ) {
        use crate::codec;
        use std::collections::HashSet;
        fn strings(v: &Value, out: &mut HashSet<String>) {
            match v {
                Value::String(s) => { out.insert(s.clone()); }
                Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
                Value::Object(m) => m.iter().for_each(|(k, v)| { out.insert(k.clone()); strings(v, out); }),
                _ => {}
            }
        }
        let format1 = codec::deflate(serde_json::to_string(&entries).unwrap().as_bytes()).unwrap();
        for body in [codec::encode(&entries).unwrap(), format1] {
            let (_, json) = codec::inflate(&body).unwrap();
            let mut all = HashSet::new();
            strings(&serde_json::from_str(&json).unwrap(), &mut all);
            for e in &entries {
                prop_assert!(codec::mentions(&json, &[e.id.as_str()]), "{:?} in {}", e.id, json);
            }
            for probe in &probes {
                prop_assert_eq!(codec::mentions(&json, &[probe.as_str()]), all.contains(probe), "{:?} in {}", probe, json);
            }
            let ids: Vec<&str> = probes.iter().map(String::as_str).collect();
            prop_assert_eq!(codec::mentions(&json, &ids), probes.iter().any(|p| all.contains(p)));
            // Only some ids (every other entry's, and the probes): exactly the full decode's
            // entries of those ids, in order, rebuilt byte for byte.
            let (tag, _) = codec::inflate(&body).unwrap();
            let mut some: Vec<&str> = entries.iter().step_by(2).map(|e| e.id.as_str()).collect();
            some.extend(&ids);
            let only = codec::decode_json_only(tag, &json, &some).unwrap();
            let want: Vec<_> = entries.iter().filter(|e| some.contains(&e.id.as_str())).collect();
            prop_assert_eq!(only.len(), want.len());
            for (a, b) in want.iter().zip(&only) {
                prop_assert_eq!((a.entity, &a.id, a.rev, a.created_rev, a.deleted), (b.entity, &b.id, b.rev, b.created_rev, b.deleted));
                prop_assert_eq!(a.record().unwrap().get(), b.record().unwrap().get());
            }
        }
    }

    /// A stored page's columns damaged (a byte changed, or the text cut short) decode to
    /// an error or to entries whose records are valid JSON, never to a panic. Valid JSON
    /// is the grammar (what a `RawValue` holds), as the reader checks it: a changed digit
    /// can make a number past f64's range and a changed escape a lone surrogate, which the
    /// grammar allows and no `Value` holds (`Stored::decode` lets such a member fail only
    /// what reads it). The test asked for a `Value` until session 14, and failed at about
    /// one run in a few hundred on exactly those.
    #[test]
    fn damaged_columns_never_panic_nor_give_invalid_json(
        entries in prop::collection::vec(entry(), 1..12),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<bool>(),
    ) {
        use crate::codec;
        let (_, json) = codec::inflate(&codec::encode(&entries).unwrap()).unwrap();
        let mut bytes = json.into_bytes();
        let i = at.index(bytes.len());
        if cut { bytes.truncate(i) } else { bytes[i] = byte }
        let mut body = vec![codec::COLUMNS];
        body.extend(miniz_oxide::deflate::compress_to_vec(&bytes, 1));
        if let Ok(back) = codec::decode(&body) {
            for e in back {
                let text = e.record().unwrap().get();
                prop_assert!(serde_json::from_str::<&serde_json::value::RawValue>(text).is_ok(), "not JSON: {}", text);
                if let Err(why) = serde_json::from_str::<Value>(text) {
                    let why = why.to_string();
                    let grammar_only = ["number out of range", "surrogate", "invalid unicode code point"];
                    prop_assert!(grammar_only.iter().any(|g| why.contains(g)), "{}: {}", why, text);
                }
            }
        }
    }

    /// The page columns' reader (`jsontext`) accepts exactly the text serde's derive
    /// accepted and reads the same columns from it, when the text is damaged too: a byte
    /// changed, whitespace put in, or the text cut short.
    #[test]
    fn the_columns_reader_answers_as_serde_did(
        entries in prop::collection::vec(entry(), 0..12),
        at in any::<prop::sample::Index>(),
        byte in prop_oneof![any::<u8>(), prop::sample::select(b"\"{}[],:0-1.eE \\un".to_vec())],
        how in 0..4u8,
    ) {
        use crate::codec;
        let (_, json) = codec::inflate(&codec::encode(&entries).unwrap()).unwrap();
        prop_assert_eq!(codec::columns_agree_with_serde(&json), Ok(()));
        let mut bytes = json.into_bytes();
        let i = at.index(bytes.len());
        match how {
            0 => bytes[i] = byte,
            1 => bytes.insert(i, byte),
            2 => bytes.insert(i, b' '),
            _ => bytes.truncate(i),
        }
        if let Ok(json) = String::from_utf8(bytes) {
            prop_assert_eq!(codec::columns_agree_with_serde(&json), Ok(()), "{}", json);
        }
    }

    /// Whatever bytes a body holds, decoding answers (an error), never panics.
    #[test]
    fn damaged_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400), hex in "[0-9a-fA-Fxz]{0,64}") {
        let _ = crate::codec::decode(&bytes);
        let mut tagged = vec![crate::codec::DEFLATE];
        tagged.extend_from_slice(&bytes);
        let _ = crate::codec::decode(&tagged);
        tagged[0] = crate::codec::COLUMNS;
        let _ = crate::codec::decode(&tagged);
        let _ = crate::codec::decode_hex(&hex);
    }
}

/// A stored record's members as text could hold them: each envelope member of its type
/// (mostly), of another, or absent; other members; in the written (ascending) order or
/// shuffled, one of them perhaps twice with another value; and sometimes a token that
/// serde's output never holds spliced in: `-0`, `1E2`, `1e400`, a lone surrogate, nesting
/// past serde_json's limit, an escaped key, tabs and newlines, trailing text.
fn stored_text() -> impl Strategy<Value = String> {
    use crate::envelope as env;
    let int = prop_oneof![
        60 => (0i64..2_000_000_000_000).prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(json!(2.0)),
        1 => json_value(),
    ];
    let text = prop_oneof![60 => "[a-z0-9:._-]{1,12}".prop_map(Value::from), 1 => ".{0,6}".prop_map(Value::from), 1 => json_value()];
    let member = |k: &'static str, v: BoxedStrategy<Value>| {
        prop::option::weighted(0.99, v).prop_map(move |v| v.map(|v| (k.to_string(), v)))
    };
    let null_or = |v: BoxedStrategy<Value>| prop_oneof![Just(Value::Null), v].boxed();
    let envelope = (
        member(env::ID, text.clone().boxed()),
        member(env::VERSION, int.clone().boxed()),
        member(env::REV, int.clone().boxed()),
        member(env::CREATED_AT, int.clone().boxed()),
        member(env::UPDATED_AT, int.clone().boxed()),
        member(env::DELETED_AT, null_or(int.boxed())),
        member(env::DEVICE_ID, null_or(text.boxed())),
    );
    let others = prop::collection::vec(
        (prop_oneof![Just("title".to_string()), Just("done".to_string()), "[a-z_]{1,8}", ".{1,3}"], json_value()),
        0..5,
    );
    let deep = format!("{}1{}", "[".repeat(130), "]".repeat(130));
    let splice = prop_oneof![
        24 => Just(None),
        1 => Just(Some("-0".to_string())),
        1 => Just(Some("1E2".to_string())),
        1 => Just(Some("1e400".to_string())),
        1 => Just(Some("\"\\ud800\"".to_string())),
        1 => Just(Some(deep)),
        1 => Just(Some("key".to_string())),
        1 => Just(Some("space".to_string())),
        1 => Just(Some("trail".to_string())),
    ];
    (envelope, others, 0u8..10, any::<prop::sample::Index>(), json_value(), splice, any::<prop::sample::Index>())
        .prop_flat_map(|(e, others, order, which, again, splice, at)| {
            let mut members: Vec<(String, Value)> =
                [e.0, e.1, e.2, e.3, e.4, e.5, e.6].into_iter().flatten().chain(others).collect();
            members.sort_by(|a, b| a.0.cmp(&b.0));
            members.dedup_by(|a, b| a.0 == b.0);
            let shuffled = (6..8).contains(&order);
            Just(members)
                .prop_shuffle()
                .prop_map(move |m| (m, shuffled, order >= 8, which, again.clone(), splice.clone(), at))
        })
        .prop_map(|(mut members, shuffled, twice, which, again, splice, at)| {
            if !shuffled {
                members.sort_by(|a, b| a.0.cmp(&b.0));
            }
            if twice && !members.is_empty() {
                // Right after itself, in otherwise ascending order, with another value.
                let i = which.index(members.len());
                members.insert(i + 1, (members[i].0.clone(), again));
            }
            let mut texts: Vec<(String, String)> =
                members.iter().map(|(k, v)| (json!(k).to_string(), v.to_string())).collect();
            let (mut sep, mut tail) = (",".to_string(), String::new());
            match splice.as_deref() {
                None => {}
                Some("key") => {
                    if let Some(m) = texts.iter_mut().find(|m| m.0.contains('e')) {
                        m.0 = m.0.replacen('e', "\\u0065", 1);
                    }
                }
                Some("space") => sep = " ,\t\n ".to_string(),
                Some("trail") => tail = " x".to_string(),
                Some(token) if !texts.is_empty() => {
                    let i = at.index(texts.len());
                    texts[i].1 = token.to_string();
                }
                Some(_) => {}
            }
            let body: Vec<String> = texts.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}{tail}", body.join(&sep))
        })
}

proptest! {
    /// A stored record read straight from its text (its envelope, then the members a
    /// content check compares) answers as its map does: the same envelope and record, the
    /// same error, the same comparisons. Damaged storage aside: a member outside the
    /// envelope that a `Value` refuses fails only what reads it, with the map's error.
    #[test]
    fn stored_records_read_as_their_map(
        text in stored_text(),
        probe in prop::collection::vec((any::<prop::sample::Index>(), 0u8..6), 0..8),
    ) {
        use crate::envelope::{Envelope, Record, Stored};
        use serde::Deserialize;
        let oracle = serde_json::from_str::<Record>(&text).map_err(|e| e.to_string()).and_then(|record| {
            let v = Value::Object(record);
            let envelope = Envelope::deserialize(&v).map_err(|e| format!("stored record without a valid envelope: {e}"))?;
            Ok((envelope, v))
        });
        let decoded = Stored::decode(&text);
        // The members asked about: the record's own, with their value or another, and
        // members it lacks, as null or not.
        let keys: Vec<String> = match &oracle {
            Ok((_, v)) => v.as_object().unwrap().keys().cloned().collect(),
            Err(_) => ["title", "done", "id", "version"].map(String::from).to_vec(),
        };
        let asked: Vec<(String, Value)> = probe.iter().map(|(i, how)| {
            let k = keys[i.index(keys.len().max(1)).min(keys.len().saturating_sub(1))].clone();
            let own = oracle.as_ref().ok().and_then(|(_, v)| v.get(&k).cloned()).unwrap_or(Value::Null);
            match how {
                0..=2 => (k, own),
                3 => (k, json!("other")),
                4 => ("absent".to_string(), Value::Null),
                _ => ("absent".to_string(), json!(1)),
            }
        }).collect();
        let asked_refs = || asked.iter().map(|(k, v)| (k.as_str(), v));
        match (&decoded, &oracle) {
            (Ok(s), Ok((envelope, record))) => {
                prop_assert_eq!(&s.envelope, envelope);
                let record = record.as_object().unwrap();
                let expected = asked.iter().all(|(k, v)| record.get(k).unwrap_or(&Value::Null) == v);
                // The comparisons first (before the record is decoded), then the record.
                prop_assert_eq!(s.same_members(asked_refs()), Ok(expected), "{}", text);
                prop_assert_eq!(s.same_members(record.iter().map(|(k, v)| (k.as_str(), v))), Ok(true), "{}", text);
                // A delete's last values: each member as the map holds it, read from the
                // text before the record is decoded and from the map after.
                let names: Vec<&str> = record.keys().map(String::as_str).chain(["absent"]).collect();
                let held = |s: &Stored| -> Vec<Option<Value>> {
                    s.members(&names).unwrap().into_iter().map(|h| h.map(|h| match h {
                        crate::envelope::Held::Text(t) => serde_json::from_str(t).unwrap(),
                        crate::envelope::Held::Value(v) => v.clone(),
                    })).collect()
                };
                let expected: Vec<Option<Value>> = names.iter().map(|n| record.get(*n).cloned()).collect();
                prop_assert_eq!(held(s), expected.clone(), "{}", text);
                prop_assert_eq!(s.record(), Ok(record));
                prop_assert_eq!(held(s), expected, "{}", text);
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (Ok(s), Err(e)) => {
                // Only a damaged member outside the envelope: what reads it fails as the map did.
                let damaged = [
                    "number out of range",
                    "lone leading surrogate",
                    "unexpected end of hex escape",
                    "invalid unicode code point",
                    "recursion limit exceeded",
                ];
                prop_assert!(damaged.iter().any(|d| e.contains(d)), "{} decoded, its map: {}", text, e);
                let answer = s.same_members(asked_refs());
                prop_assert!(answer.is_ok() || answer.as_ref() == Err(e), "{}: {:?} against {}", text, answer, e);
                prop_assert_eq!(s.record(), Err(e.clone()), "{}", text);
            }
            (Err(a), Ok(_)) => prop_assert!(false, "{} failed as {}, its map decodes", text, a),
        }
    }
}
