//! Inputs and operations shared by the criterion benchmarks (benches/hot_paths.rs, native)
//! and the wasm CPU probe (examples/wasm_cpu.rs, the same code compiled to wasm and run in
//! V8, the engine workerd uses). Each operation is what the worker does on a hot path.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_compact::alg::{Es256, Hs256, Hs256Key, ModulusBits, Rsa, RsaPrivateKey, StrongKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde_json::{json, Map, Value};

use edgesync_core::auth::Verifier;
use edgesync_core::entities;
use edgesync_core::envelope::{Record, Stored};
use edgesync_core::plan::Key;
use edgesync_core::reply::{Page, PullRow, PulledRow, SyncReply};

pub const SECRET: &str = "edgesync-bench-secret-0123456789abcdef";
pub const SUB: &str = "user-0123456789abcdef";
/// The sequence value the benchmarks' user is at.
pub const SEQ: i64 = 1_795_000_000_000;

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(SEQ)
}

fn claims(now: i64) -> Claims<Value> {
    let mut c = Claims::new(json!({"sub": SUB, "iat": now / 1000, "exp": now / 1000 + 3600}));
    c.expiration = None; // `exp` is in the custom JSON, as an issuer's token has it
    c
}

/// A verifier configured like a worker with `JWT_SECRET` and a `JWT_JWKS` of one RSA
/// (2048-bit, RS256) and one P-256 (ES256) key, and a token of each algorithm.
pub struct Tokens {
    pub verifier: Verifier,
    pub jwks: String,
    pub hs256: String,
    pub rs256: String,
    pub es256: String,
}

pub fn tokens(now: i64) -> Tokens {
    let hs256 = Hs256.token(&Header::empty(), &claims(now), &Hs256Key::new(SECRET.as_bytes())).unwrap();

    let ec = p256::ecdsa::SigningKey::from_bytes(&[7u8; 32].into()).unwrap();
    let mut ec_jwk = serde_json::to_value(JsonWebKey::from(ec.verifying_key())).unwrap();
    ec_jwk["kid"] = "ec-1".into();
    ec_jwk["use"] = "sig".into();
    ec_jwk["alg"] = "ES256".into();
    let es256 = Es256.token(&Header::empty().with_key_id("ec-1"), &claims(now), &ec).unwrap();

    let (sk, pk) = Rsa::generate(&mut rand_core::OsRng, ModulusBits::TwoKibibytes).unwrap();
    let sk: StrongKey<RsaPrivateKey> = sk;
    let mut rsa_jwk = serde_json::to_value(JsonWebKey::from(pk.as_ref())).unwrap();
    rsa_jwk["kid"] = "rsa-1".into();
    rsa_jwk["use"] = "sig".into();
    rsa_jwk["alg"] = "RS256".into();
    let rs256 = Rsa::rs256().token(&Header::empty().with_key_id("rsa-1"), &claims(now), sk.as_ref()).unwrap();

    let jwks = json!({"keys": [rsa_jwk, ec_jwk]}).to_string();
    let verifier = Verifier::with_jwks(Some(SECRET), Some(&jwks), None, None);
    assert!(verifier.warnings.is_empty(), "{:?}", verifier.warnings);
    for t in [&hs256, &rs256, &es256] {
        assert_eq!(verifier.verify(t, now).map(|u| u.as_str().to_string()), Ok(SUB.to_string()));
    }
    Tokens { verifier, jwks, hs256, rs256, es256 }
}

/// A task as a client pushes it, with every field of the contract's task type.
pub fn task_change(i: usize) -> Value {
    json!({
        "type": "tasks",
        "id": format!("task-{i:06}"),
        "title": format!("Call the plumber about the kitchen sink #{i}"),
        "description": "Ask about Tuesday afternoon; the tap drips and the drain is slow. Bring the invoice.",
        "completed": i % 3 == 0,
        "pinned": i % 7 == 0,
        "priority": entities::PRIORITIES[i % 3],
        "due_date": 1_795_000_000_000i64 + i as i64 * 60_000,
        "list_id": "inbox",
        "sort_order": i,
        "device_id": "phone-1",
    })
}

/// The body of a `POST /api/sync` pushing `n` such tasks.
pub fn push_body(n: usize) -> Vec<u8> {
    let changes: Vec<Value> = (0..n).map(task_change).collect();
    serde_json::to_vec(&json!({"cursor": SEQ, "changes": changes})).unwrap()
}

/// A stored task as the worker reads it back (SQLite's `json_object` of the row), at an
/// older version and with another title than `task_change(i)`, so pushing that is an edit.
pub fn stored_record(i: usize, with_type: bool) -> Record {
    let mut r = Map::new();
    if with_type {
        r.insert("type".into(), "tasks".into());
    }
    let rev = SEQ - 10_000 + i as i64;
    r.insert("id".into(), format!("task-{i:06}").into());
    r.insert("version".into(), 3.into());
    r.insert("rev".into(), rev.into());
    r.insert("created_at".into(), (rev - 86_400_000).into());
    r.insert("updated_at".into(), rev.into());
    r.insert("deleted_at".into(), Value::Null);
    r.insert("device_id".into(), "laptop-2".into());
    let c = task_change(i);
    for k in ["title", "description", "completed", "pinned", "priority", "due_date", "list_id", "sort_order"] {
        r.insert(k.into(), c[k].clone());
    }
    r.insert("title".into(), format!("Call the plumber #{i}").into());
    r
}

/// The stored records a push of `n` edits reads first (crates/worker store.rs `stored`).
pub fn stored_for_edits(n: usize) -> HashMap<Key, Stored> {
    (0..n).map(|i| (("tasks", format!("task-{i:06}")), Stored::decode(stored_record(i, false)).unwrap())).collect()
}

/// The rows of a pull as `D1Result::results` gives them to store.rs `pull_rows`.
pub fn pull_rows(n: usize) -> Vec<Map<String, Value>> {
    (0..n)
        .map(|i| {
            let rec = stored_record(i, true);
            let mut row = Map::new();
            row.insert("type".into(), "tasks".into());
            row.insert("rev".into(), rec["rev"].clone());
            row.insert("deleted".into(), 0.into());
            row.insert("id".into(), rec["id"].clone());
            row.insert("rec".into(), Value::String(Value::Object(rec).to_string()));
            row
        })
        .collect()
}

/// What the worker does with a pull's rows: each row decoded as store.rs does
/// (`PulledRow` → `PullRow`, the record's JSON text validated into a `RawValue`, never
/// re-parsed), the page cut, and the reply serialized into the response body. The same
/// types as the worker's, from edgesync-core.
pub fn pull_reply(rows: &[Map<String, Value>], seq: i64, now: i64) -> String {
    let pulled: Vec<PullRow> = rows
        .iter()
        .map(|r| {
            let row: PulledRow = serde_json::from_value(Value::Object(r.clone())).unwrap();
            PullRow::decode(row, None).unwrap()
        })
        .collect();
    let limit = pulled.len() as i64;
    let page = Page::cut(pulled, limit, seq);
    serde_json::to_string(&SyncReply::new(&[], &[], &page, now)).unwrap()
}
