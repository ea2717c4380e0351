//! `POST /api/admin/reshard`: one step of moving a bucket of users to another D1 database
//! (`edgesync_core::shards`), driven step by step by `npm run reshard` (scripts/reshard.mjs)
//! so that no request does unbounded work:
//!
//! 1. `begin`: the bucket's database gets a `moving` fence: from the moment it commits, no
//!    write of those users commits there (every write is guarded by it), so the copy
//!    cannot miss one; their writes get 503 `busy` with `Retry-After`, reads go on.
//! 2. `copy` (repeated): each of the bucket's users is copied whole to the target, over
//!    any older copy there, one batch per user.
//! 3. `switch`: the old database's fence becomes `moved` → target, a forwarding address
//!    every isolate follows; then the target's own fence for the bucket (if it once left
//!    it) is removed.
//! 4. `clean` (repeated, after a grace period the CLI waits so that a read that began
//!    before the switch has finished): the users' pages are removed from the old database.
//!
//! Every step can be repeated: the CLI can be run again after a failure.

use std::rc::Rc;

use serde_json::{json, Map, Value};
use wasm_bindgen::JsValue;
use worker::D1Database;

use edgesync_core::envelope::UserId;
use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;
use edgesync_core::parse::{Reshard, ReshardStep};
use edgesync_core::reply::Reply;
use edgesync_core::shards::{self, Fence, ShardMap};
use edgesync_core::sql;

use crate::io::{self, num, one, text};
use crate::shards::Router;

struct FenceRow {
    state: String,
    target: String,
}

impl io::FromRow for FenceRow {
    fn from_row(r: io::Row<'_>) -> Result<Self, ApiError> {
        Ok(FenceRow { state: r.text("state")?, target: r.text("target")? })
    }
}

struct FencesRow {
    bucket: i64,
    state: String,
    target: String,
}

impl io::FromRow for FencesRow {
    fn from_row(r: io::Row<'_>) -> Result<Self, ApiError> {
        Ok(FencesRow { bucket: r.int("bucket")?, state: r.text("state")?, target: r.text("target")? })
    }
}

struct UserRow {
    user_id: String,
}

impl io::FromRow for UserRow {
    fn from_row(r: io::Row<'_>) -> Result<Self, ApiError> {
        Ok(UserRow { user_id: r.text("user_id")? })
    }
}

/// The bucket's fence in one database.
async fn fence(db: &D1Database, ops: &Ops, bucket: u32) -> Result<Fence, ApiError> {
    let res = one(db, ops, sql::FENCE_GET, &[num(i64::from(bucket))]).await?;
    match io::rows::<FenceRow>(&res)?.into_iter().next() {
        Some(f) => Fence::from_row(Some(&f.state), Some(&f.target)),
        None => Ok(Fence::Open),
    }
}

/// Where the bucket lives now: its configured database, or where fences lead from it.
async fn resolve(router: Router<'_>, ops: &Ops, bucket: u32) -> Result<(String, Rc<D1Database>, Fence), ApiError> {
    let mut binding = router.shard_map()?.binding(bucket).to_string();
    for _ in 0..shards::MAX_HOPS {
        let db = router.open(&binding)?;
        match fence(&db, ops, bucket).await? {
            Fence::Moved { to } => binding = to,
            f => return Ok((binding, db, f)),
        }
    }
    Err(ApiError::Busy)
}

/// Every bucket's database now: the configuration with every `moved` fence followed.
async fn effective_map(router: Router<'_>, ops: &Ops) -> Result<ShardMap, ApiError> {
    let configured = router.shard_map()?;
    // Per bucket, each database's forward (from, to): a list per bucket rather than a
    // HashMap<(String, u32), String>, a hash table of its own in the wasm (299,079 ->
    // 298,832 B gzip).
    // A fence of a bucket out of range is never followed, as before.
    let mut forwards: Vec<Vec<(String, String)>> = vec![Vec::new(); shards::BUCKETS as usize];
    for (binding, db) in router.all()? {
        let res = one(&db, ops, "SELECT bucket, state, target FROM shard_fences", &[]).await?;
        for f in io::rows::<FencesRow>(&res)? {
            if f.state == "moved" {
                let Some(list) = forwards.get_mut(f.bucket as u32 as usize) else { continue };
                match list.iter_mut().find(|(from, _)| *from == binding) {
                    Some(known) => known.1 = f.target,
                    None => list.push((binding.clone(), f.target)),
                }
            }
        }
    }
    let mut map = configured.clone();
    for b in 0..shards::BUCKETS {
        let mut at = configured.binding(b).to_string();
        for _ in 0..shards::MAX_HOPS {
            match forwards[b as usize].iter().find(|(from, _)| *from == at) {
                Some((_, to)) => at = to.clone(),
                None => break,
            }
        }
        map = map.with(b, &at).map_err(ApiError::Internal)?;
    }
    Ok(map)
}

/// The bucket's users in `db` among the `limit` users after `after` (by id), and where
/// the scan stops (`None`: it reached the end).
async fn scan(
    db: &D1Database,
    ops: &Ops,
    bucket: u32,
    after: &str,
    limit: i64,
) -> Result<(Vec<String>, usize, Option<String>), ApiError> {
    let res = one(db, ops, sql::USERS_AFTER, &[text(after), num(limit)]).await?;
    let users: Vec<String> = io::rows::<UserRow>(&res)?.into_iter().map(|u| u.user_id).collect();
    let next = match users.len() as i64 == limit {
        true => users.last().cloned(),
        false => None,
    };
    let scanned = users.len();
    Ok((users.into_iter().filter(|u| shards::bucket(u) == bucket).collect(), scanned, next))
}

/// A D1 value read back as JSON, bound again as it was (a BLOB comes back as an array of
/// bytes and goes in as a `Uint8Array`).
fn bind_value(v: &Value) -> Result<JsValue, ApiError> {
    Ok(match v {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => text(s),
        Value::Array(bytes) => {
            let bytes: Vec<u8> = bytes
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Option<_>>()
                .ok_or_else(|| ApiError::Internal("a page value is neither text nor bytes".into()))?;
            js_sys::Uint8Array::from(bytes.as_slice()).into()
        }
        Value::Object(_) => return Err(ApiError::Internal("a page value is an object".into())),
    })
}

/// One statement inserting a page row as `COPY_READ` returned it (column names are the
/// table's own).
fn insert(db: &D1Database, row: &Map<String, Value>) -> Result<worker::D1PreparedStatement, ApiError> {
    if !row.keys().all(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')) {
        return Err(ApiError::Internal("unexpected pages column".into()));
    }
    let cols: Vec<&str> = row.keys().map(String::as_str).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    let sql = format!("INSERT INTO pages ({}) VALUES ({})", cols.join(", "), marks.join(", "));
    let values = row.values().map(bind_value).collect::<Result<Vec<_>, _>>()?;
    Ok(db.prepare(&sql).bind(&values)?)
}

/// Copies one user's pages from `src` to `dst` (replacing what `dst` had): one batch.
async fn copy_user(src: &D1Database, dst: &D1Database, ops: &Ops, user: &str) -> Result<usize, ApiError> {
    let res = one(src, ops, sql::COPY_READ, &[text(user)]).await?;
    let rows = io::rows::<Map<String, Value>>(&res)?;
    let mut stmts = vec![dst.prepare(sql::USER_DELETE).bind(&[text(user)])?];
    for row in &rows {
        stmts.push(insert(dst, row)?);
    }
    io::batch(dst, ops, stmts).await?;
    Ok(rows.len())
}

fn target(r: &Reshard) -> Result<&str, ApiError> {
    r.to.as_deref().ok_or_else(|| ApiError::field("to", "is required for this step"))
}

/// A database named by the operator (`to`, `from`): one of this worker's D1 bindings.
fn named(router: Router<'_>, field: &str, binding: &str) -> Result<Rc<D1Database>, ApiError> {
    router.open(binding).map_err(|_| ApiError::field(field, format!("{binding} is not a D1 binding of this worker")))
}

/// The bucket must be `moving` to `to` (after `begin`, before `switch`).
fn moving_to(fence: &Fence, to: &str, from: &str) -> Result<(), ApiError> {
    match fence {
        Fence::Moving { to: t } if t == to => Ok(()),
        Fence::Moving { to: t } => Err(ApiError::field("to", format!("the bucket is being moved to {t}"))),
        _ => Err(ApiError::field("step", format!("the bucket is not being moved from {from} (run begin first)"))),
    }
}

pub async fn step(router: Router<'_>, ops: &Ops, now: i64, r: Reshard) -> Result<Reply, ApiError> {
    let b = num(i64::from(r.bucket));
    let body = match r.step {
        ReshardStep::Locate => {
            let (home, _, fence) = resolve(router, ops, r.bucket).await?;
            let mut pages = Map::new();
            if let Some(user) = &r.user {
                for (binding, db) in router.all()? {
                    let res = one(&db, ops, sql::USER_PAGES, &[text(user.as_str())]).await?;
                    let n = io::rows::<Map<String, Value>>(&res)?
                        .first()
                        .and_then(|v| v.get("pages")?.as_i64())
                        .unwrap_or(0);
                    pages.insert(binding, json!(n));
                }
            }
            json!({
                "bucket": r.bucket,
                "user": r.user.as_ref().map(UserId::as_str),
                "configured": router.shard_map()?.binding(r.bucket),
                "home": home,
                "moving": matches!(fence, Fence::Moving { .. }),
                "pages": pages,
                "shard_map": effective_map(router, ops).await?.spec(),
            })
        }
        ReshardStep::Begin => {
            let to = target(&r)?;
            let (from, db, fence) = resolve(router, ops, r.bucket).await?;
            if from == to {
                return Err(ApiError::field("to", format!("bucket {} is in {to} already", r.bucket)));
            }
            named(router, "to", to)?;
            match fence {
                Fence::Moving { to: t } if t != to => moving_to(&Fence::Moving { to: t }, to, &from)?,
                _ => {
                    one(&db, ops, sql::FENCE_SET, &[b, text("moving"), text(to), num(now)]).await?;
                }
            }
            json!({"bucket": r.bucket, "from": from, "to": to, "state": "moving"})
        }
        ReshardStep::Copy => {
            let to = target(&r)?;
            let (from, src, fence) = resolve(router, ops, r.bucket).await?;
            moving_to(&fence, to, &from)?;
            let dst = named(router, "to", to)?;
            let (users, scanned, next) = scan(&src, ops, r.bucket, &r.after, r.limit).await?;
            let mut pages = 0;
            for u in &users {
                pages += copy_user(&src, &dst, ops, u).await?;
            }
            json!({"bucket": r.bucket, "from": from, "to": to, "scanned": scanned, "copied": users.len(),
                   "pages": pages, "next": next})
        }
        ReshardStep::Switch => {
            let to = target(&r)?;
            let (from, src, fence) = resolve(router, ops, r.bucket).await?;
            moving_to(&fence, to, &from)?;
            // The old database forwards first, then the target drops a fence it may have
            // from an earlier move away: in between, requests bounce between the two
            // (`busy` after MAX_HOPS), so no read is answered from a stale copy.
            one(&src, ops, sql::FENCE_SET, &[b.clone(), text("moved"), text(to), num(now)]).await?;
            one(&*named(router, "to", to)?, ops, sql::FENCE_CLEAR, std::slice::from_ref(&b)).await?;
            json!({"bucket": r.bucket, "from": from, "to": to, "state": "moved",
                   "shard_map": effective_map(router, ops).await?.spec()})
        }
        ReshardStep::Clean => {
            let from = r.from.as_deref().ok_or_else(|| ApiError::field("from", "is required for this step"))?;
            let db = named(router, "from", from)?;
            match fence(&db, ops, r.bucket).await? {
                Fence::Moved { to } if to != from => {}
                _ => {
                    return Err(ApiError::field("from", format!("bucket {} has not moved away from {from}", r.bucket)))
                }
            }
            let (users, scanned, next) = scan(&db, ops, r.bucket, &r.after, r.limit).await?;
            if !users.is_empty() {
                let stmts = users.iter().map(|u| Ok(db.prepare(sql::USER_DELETE).bind(&[text(u)])?)).collect::<Result<
                    Vec<_>,
                    ApiError,
                >>(
                )?;
                io::batch(&db, ops, stmts).await?;
            }
            json!({"bucket": r.bucket, "from": from, "scanned": scanned, "deleted": users.len(), "next": next})
        }
    };
    let mut body = body;
    body["rows_read"] = json!(ops.rows_read.get());
    body["rows_written"] = json!(ops.rows_written.get());
    Reply::json(200, &body)
}
