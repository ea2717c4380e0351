//! Inputs and operations shared by the criterion benchmarks (benches/hot_paths.rs, native)
//! and the wasm CPU probe (examples/wasm_cpu.rs, the same code compiled to wasm and run in
//! V8, the engine workerd uses). Each operation is what the worker does on a hot path:
//! [`push_request`] and [`pull_request`] are the whole pure path of a `POST /api/sync`
//! over the packed pages (crates/worker store.rs `try_push` / `pull`, handlers.rs `sync`),
//! from the request body and the page bodies D1 returns (deflated, as `hex(body)`) to the
//! page bodies written back (deflated) and the reply body; the `step_*` functions are its parts, timed one by one.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use jwt_compact::alg::{Es256, Hs256, Hs256Key, ModulusBits, Rsa, RsaPrivateKey, StrongKey};
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{AlgorithmExt, Claims, Header};
use serde_json::{json, Value};

use edgesync_core::auth::Verifier;
use edgesync_core::codec;
use edgesync_core::entities;
use edgesync_core::pages::{self, Head, Pages};
use edgesync_core::parse::{self as protocol, Limits};
use edgesync_core::plan::{self, Key};
use edgesync_core::reply::{Page, SyncReply};

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

/// Limits of 1,000 changes and 1,000 upload records, so that the 1,000-change pushes run:
/// `MAX_CHANGES` raised from its default of 100 (a Paid-plan setting; wrangler.toml) and
/// `MAX_UPLOAD_RECORDS` at its default.
pub const LIMITS: Limits = Limits { max_changes: 1_000, max_upload_records: 1_000 };

/// A task as a client pushes it, with every field of the contract's task type; `tag`
/// goes into the title, so the same `i` with another tag is an edit.
pub fn task_change(i: usize, tag: &str) -> Value {
    json!({
        "type": "tasks",
        "id": format!("task-{i:06}"),
        "title": format!("Call the plumber about the kitchen sink #{i} {tag}"),
        "description": "Ask about Tuesday afternoon; the tap drips and the drain is slow. Bring the invoice.",
        "completed": i.is_multiple_of(3),
        "pinned": i.is_multiple_of(7),
        "priority": entities::PRIORITIES[i % 3],
        "due_date": 1_795_000_000_000i64 + i as i64 * 60_000,
        "list_id": "inbox",
        "sort_order": i,
        "device_id": "phone-1",
    })
}

/// The body of a `POST /api/sync` pushing the tasks `ids` (tagged `tag`) from `cursor`.
pub fn push_body(ids: std::ops::Range<usize>, tag: &str, cursor: i64) -> Vec<u8> {
    let changes: Vec<Value> = ids.map(|i| task_change(i, tag)).collect();
    serde_json::to_vec(&json!({"cursor": cursor, "changes": changes})).unwrap()
}

/// A user's pages as D1 holds them: the head's columns (its `entries` empty), the head's
/// body, and each bucket's body by 0-based index, as store.rs reads them (`hex(body)` of
/// the deflated body) and decodes them.
#[derive(Clone)]
pub struct User {
    pub head: Head,
    pub head_body: String,
    pub buckets: HashMap<u32, String>,
    /// The head's JSON (what its body inflates to), for the codec's own timings.
    pub head_json: String,
    /// Revs of the head's entries, ascending.
    pub head_revs: Vec<i64>,
}

impl User {
    pub fn records_in_head(&self) -> usize {
        self.head_revs.len()
    }
}

/// One push through the pure path as the store does it, on pages held in memory (every
/// bucket of the user already read).
fn push_into(p: &mut Pages, changes: &[protocol::Change], now: i64) {
    let keys: Vec<Key> = changes.iter().map(|c| (c.entity.name, c.id.as_str().to_owned())).collect();
    let cur = p.current(keys).unwrap();
    let plan = plan::plan(changes, cur.stored, p.head.seq, now).unwrap();
    p.apply(&plan, &cur.prior).unwrap();
    if let Some(s) = p.spill_needed() {
        for b in s.reads() {
            p.buckets.entry(b).or_default();
        }
        p.spill(&s).unwrap();
    }
}

/// A user holding `total` tasks (`task-000000` …, tagged "old"), written in pushes of 100
/// through the worker's own pure path (so the head and buckets are what the worker would
/// have made of them), at `SEQ` and after.
pub fn user(total: usize) -> User {
    let mut p = Pages::default();
    let mut now = SEQ - 10_000_000;
    for start in (0..total).step_by(100) {
        let end = (start + 100).min(total);
        let changes: Vec<protocol::Change> =
            (start..end).map(|i| protocol::parse_change(&task_change(i, "old"), "c", None).unwrap()).collect();
        now += 60_000;
        push_into(&mut p, &changes, now);
    }
    let hex = |body: Vec<u8>| body.iter().map(|b| format!("{b:02X}")).collect::<String>();
    let head_json = serde_json::to_string(&p.head.entries).unwrap();
    let head_body = hex(codec::encode(&p.head.entries).unwrap());
    let buckets = p.buckets.iter().map(|(b, e)| (*b, hex(codec::encode(e).unwrap()))).collect();
    let mut head_revs: Vec<i64> = p.head.entries.iter().map(|e| e.rev).collect();
    head_revs.sort_unstable();
    let mut head = p.head.clone();
    head.entries = Vec::new();
    User { head, head_body, buckets, head_json, head_revs }
}

/// store.rs `head`: the head row's body decoded into pages.
pub fn step_parse_head(u: &User) -> Pages {
    let mut head = u.head.clone();
    head.entries = codec::decode_hex(&u.head_body).unwrap();
    Pages::new(head)
}

/// store.rs `read`: buckets wanted, parsed from their bodies (a bucket past the head's
/// count does not exist yet and reads empty, as there; a sealed one is decoded; with a
/// push's `keys`, a bucket holding none of them stays sealed).
pub fn step_read(u: &User, p: &mut Pages, wanted: Vec<u32>, keys: Option<&[Key]>) {
    let wanted = p.to_read(wanted).unwrap();
    let rows = wanted.iter().filter_map(|b| Some((pages::page_of(*b), u.buckets.get(b)?.as_str())));
    p.absorb(&wanted, rows, keys).unwrap();
}

/// What a push writes and answers: the head's body (deflated) and directory, the changed
/// buckets' bodies (when the push spilled), and the reply body.
pub struct Written {
    pub head_body: Vec<u8>,
    pub dir: String,
    pub buckets: Option<Vec<Vec<u8>>>,
    pub reply: String,
    pub dirty: usize,
    pub applied: usize,
    pub spilled: bool,
}

/// store.rs `write_stmts`: the head's body and directory, and the dirty buckets' bodies
/// (each deflated, with its tomb).
pub fn step_serialize(p: &Pages) -> (Vec<u8>, String, Option<Vec<Vec<u8>>>, usize) {
    let head_body = codec::encode(&p.head.entries).unwrap();
    let _ = codec::tomb(&p.head.entries).unwrap();
    let dir = serde_json::to_string(&p.head.dir).unwrap();
    let dirty = p.dirty();
    let n = dirty.len();
    let buckets = (!dirty.is_empty()).then(|| {
        dirty
            .iter()
            .map(|d| {
                let _ = codec::tomb(d.entries).unwrap();
                codec::encode(d.entries).unwrap()
            })
            .collect()
    });
    (head_body, dir, buckets, n)
}

/// The whole pure path of a `POST /api/sync` with changes (handlers.rs `sync`, store.rs
/// `try_push`, one attempt): the body parsed and validated, the head parsed, the buckets
/// the pushed keys need read, the stored records found, the plan, applied to the head, a
/// spill when due, the pages serialized for the write batch, the pull of the same
/// transaction (the push's own revs left out) and the reply serialized.
#[inline(never)]
pub fn push_request(u: &User, body: &[u8], now: i64) -> Written {
    let v: Value = serde_json::from_slice(body).unwrap();
    let req = protocol::parse_sync(&v, LIMITS).unwrap();
    let mut p = step_parse_head(u);
    let (plan, prior) = step_plan(u, &mut p, &req.changes, now);
    let spilled = step_apply(u, &mut p, &plan, &prior);
    let (head_body, dir, buckets, dirty) = step_serialize(&p);
    let reply = step_reply(u, &mut p, &req, &plan, now);
    Written { head_body, dir, buckets, reply, dirty, applied: plan.applied.len(), spilled }
}

/// The body of a full upload (`POST /api/sync/tasks`) of the tasks `ids` (tagged `tag`)
/// at `cursor`.
pub fn upload_body(ids: std::ops::Range<usize>, tag: &str, cursor: i64) -> Vec<u8> {
    let data: Vec<Value> = ids
        .map(|i| {
            let mut t = task_change(i, tag);
            t.as_object_mut().unwrap().remove("type");
            t
        })
        .collect();
    serde_json::to_vec(&json!({"cursor": cursor, "data": data})).unwrap()
}

/// The whole pure path of a full upload (handlers.rs `upload`, store.rs `try_replace_all`,
/// one attempt): the body parsed and validated, every page read (the head and each bucket,
/// decoded whole), the type's stored records, the upload's changes (`plan::upload`: its
/// records, and a delete of every live record it leaves out), the plan, applied (with a
/// spill when due), the pages serialized for the write batch and the reply.
#[inline(never)]
pub fn upload_request(u: &User, body: &[u8], now: i64) -> Written {
    let v: Value = serde_json::from_slice(body).unwrap();
    let e = entities::entity("tasks").unwrap();
    let req = protocol::parse_full_upload(&v, e, LIMITS).unwrap();
    let mut p = step_parse_head(u);
    for (b, hex) in &u.buckets {
        p.add_bucket(pages::page_of(*b), codec::decode_hex(hex).unwrap());
    }
    p.every_bucket_read();
    assert!(p.max_rev(e.name) <= req.cursor, "the upload is not refused (409)");
    let current = p.of_type(e.name).unwrap();
    let (changes, deleted) = plan::upload(e, &req.records, &current.stored).unwrap();
    let plan = plan::plan(&changes, current.stored, p.head.seq, now).unwrap();
    let spilled = step_apply(u, &mut p, &plan, &current.prior);
    let (head_body, dir, buckets, dirty) = step_serialize(&p);
    let reply =
        json!({"success": true, "uploaded": req.records.len(), "deleted": deleted, "cursor": plan.seq}).to_string();
    Written { head_body, dir, buckets, reply, dirty, applied: plan.applied.len(), spilled }
}

/// The full uploads measured, as (id, records, user's records): tasks `0..records` (the
/// user's first ones re-titled, then new ones) uploaded over a user holding `user_records`,
/// whose records past the upload's it deletes.
pub fn upload_cases() -> Vec<(String, usize, usize)> {
    let mut v = Vec::new();
    for h in [100usize, 500, 1_000, 5_000] {
        for n in [100usize, 1_000] {
            v.push((format!("upload_{n}_h{h}"), n, h));
        }
    }
    v
}

/// The body of a pull (`POST /api/sync` without changes) of `limit` from `cursor`.
pub fn pull_body(cursor: i64, limit: i64) -> Vec<u8> {
    serde_json::to_vec(&json!({"cursor": cursor, "limit": limit})).unwrap()
}

/// The whole pure path of a pull (handlers.rs `sync` without changes, store.rs `pull`):
/// the body parsed, the head parsed, the buckets changed since the cursor read,
/// `Pages::changes`, the page cut and the reply serialized. Returns the reply and its rows.
pub fn pull_request(u: &User, body: &[u8], now: i64) -> (String, usize) {
    let v: Value = serde_json::from_slice(body).unwrap();
    let req = protocol::parse_sync(&v, LIMITS).unwrap();
    let mut p = step_parse_head(u);
    let wanted = p.buckets_after(req.cursor);
    step_read(u, &mut p, wanted, None);
    let state_seq = p.head.seq;
    let page = Page::cut(p.changes(req.cursor, None, &[], req.limit).unwrap(), req.limit, state_seq);
    let rows = page.rows.len();
    (serde_json::to_string(&SyncReply::new(&[], &[], &page, now)).unwrap(), rows)
}

/// The pushes measured: (label, changes, records the user holds, new, edits or deletes).
/// New tasks take ids after the user's; edits re-title the user's first records; deletes
/// delete them (a tombstone keeps the record's last values). "records" is the head for
/// users up to `pages::HEAD_MAX`; the 5,000-record user has buckets too.
pub struct PushCase {
    pub id: String,
    pub changes: usize,
    pub user_records: usize,
    pub edits: bool,
    pub deletes: bool,
}

pub fn push_cases() -> Vec<PushCase> {
    let mut v = Vec::new();
    for h in [100usize, 500, 5_000] {
        for n in [10usize, 100, 200, 1_000] {
            let case = |kind: &str, edits, deletes| PushCase {
                id: format!("push_{n}_{kind}_h{h}"),
                changes: n,
                user_records: h,
                edits,
                deletes,
            };
            v.push(case("new", false, false));
            if n <= h {
                v.push(case("edit", true, false));
            }
            if n <= h && n <= 100 {
                v.push(case("delete", false, true));
            }
        }
    }
    v
}

impl PushCase {
    pub fn body(&self, u: &User) -> Vec<u8> {
        if self.deletes {
            let changes: Vec<Value> = (0..self.changes)
                .map(
                    |i| json!({"type": "tasks", "id": format!("task-{i:06}"), "deleted": true, "device_id": "phone-1"}),
                )
                .collect();
            return serde_json::to_vec(&json!({"cursor": u.head.seq, "changes": changes})).unwrap();
        }
        let ids = if self.edits { 0..self.changes } else { self.user_records..self.user_records + self.changes };
        push_body(ids, "new", u.head.seq)
    }
}

/// A push's pure path cut into its steps, each step's input prepared by the steps before
/// it (so a step can be timed alone, its input cloned outside the timing).
pub struct Stages {
    pub req: protocol::SyncRequest,
    /// After `step_parse_head`.
    pub parsed: Pages,
    /// After the key's buckets were read and `Pages::current` (before `apply`).
    pub planned: Pages,
    pub plan: plan::Plan,
    pub prior: pages::Prior,
    /// After `apply` and the spill.
    pub applied: Pages,
}

pub fn stages(u: &User, body: &[u8], now: i64) -> Stages {
    let req = protocol::parse_sync(&serde_json::from_slice::<Value>(body).unwrap(), LIMITS).unwrap();
    let parsed = step_parse_head(u);
    let mut planned = parsed.clone();
    let (plan, prior) = step_plan(u, &mut planned, &req.changes, now);
    let mut applied = planned.clone();
    step_apply(u, &mut applied, &plan, &prior);
    Stages { req, parsed, planned, plan, prior, applied }
}

/// The stored records of the pushed keys (their buckets read first) and the plan.
pub fn step_plan(u: &User, p: &mut Pages, changes: &[protocol::Change], now: i64) -> (plan::Plan, pages::Prior) {
    let keys: Vec<Key> = changes.iter().map(|c| (c.entity.name, c.id.as_str().to_owned())).collect();
    let wanted = p.buckets_for(keys.iter().map(|(t, id)| (*t, id.as_str())));
    step_read(u, p, wanted, Some(&keys));
    let current = p.current(keys).unwrap();
    let seq = p.head.seq;
    (plan::plan(changes, current.stored, seq, now).unwrap(), current.prior)
}

/// `Pages::apply`, then `spill_needed` and, when due, the spill's bucket reads and `spill`.
pub fn step_apply(u: &User, p: &mut Pages, plan: &plan::Plan, prior: &pages::Prior) -> bool {
    p.apply(plan, prior).unwrap();
    match p.spill_needed() {
        Some(s) => {
            step_read(u, p, s.reads(), None);
            p.spill(&s).unwrap();
            true
        }
        None => false,
    }
}

/// The pull in the push's transaction (its own revs left out) and the reply body.
pub fn step_reply(u: &User, p: &mut Pages, req: &protocol::SyncRequest, plan: &plan::Plan, now: i64) -> String {
    let wanted = p.buckets_after(req.cursor);
    step_read(u, p, wanted, None);
    let page = Page::cut(p.changes(req.cursor, None, &plan.revs, req.limit).unwrap(), req.limit, plan.seq);
    serde_json::to_string(&SyncReply::new(&plan.applied, &plan.conflicts, &page, now)).unwrap()
}
