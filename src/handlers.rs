//! One function per endpoint. Each gets its input already parsed and the user's store,
//! and returns a [`Reply`]; errors go back as [`ApiError`] for `http` to render.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::entities::Entity;
use crate::error::ApiError;
use crate::etag::{none_match, state_tag};
use crate::http::Reply;
use crate::plan::{Decision, Plan};
use crate::protocol::{self, Limits, Query, Removed, SyncReply};
use crate::quota::Mode;
use crate::store::{Page, Store};

/// What a handler needs besides its input.
pub struct Cx<'a> {
    pub store: Store<'a>,
    pub now: i64,
    pub if_none_match: Option<String>,
    pub limits: Limits,
    /// Quota mode at the start of the request.
    pub mode: Mode,
}

impl Cx<'_> {
    /// 304 when the client's tag matches the user's state, else `reply` with the tag.
    fn conditional(&self, seq: i64, reply: impl FnOnce() -> Result<Reply, ApiError>) -> Result<Reply, ApiError> {
        let tag = state_tag(seq);
        if self.if_none_match.as_deref().is_some_and(|h| none_match(h, &tag)) {
            return Ok(Reply::not_modified(tag));
        }
        Ok(reply()?.header("ETag", tag))
    }
}

pub fn health(now: i64, mode: Mode) -> Result<Reply, ApiError> {
    Reply::json(200, &json!({"status": "healthy", "timestamp": now, "degraded": mode != Mode::Normal}))
}

/// The body of a 200 check for a user at `seq`.
pub fn check_reply(seq: i64, now: i64) -> Result<Reply, ApiError> {
    Ok(Reply::json(200, &json!({"etag": state_tag(seq), "cursor": seq, "server_time": now}))?
        .header("ETag", state_tag(seq)))
}

/// `GET /api/sync/check` when the KV token could not answer: one indexed D1 row.
pub async fn check(cx: &Cx<'_>) -> Result<Reply, ApiError> {
    let state = cx.store.state().await?;
    let tag = state_tag(state.seq);
    if cx.if_none_match.as_deref().is_some_and(|h| none_match(h, &tag)) {
        return Ok(Reply::not_modified(tag));
    }
    check_reply(state.seq, cx.now)
}

/// `POST /api/sync`: push the changes, then pull everything after the client's cursor
/// (without the push's own rows), in one transaction.
pub async fn sync(cx: &Cx<'_>, body: &Value) -> Result<Reply, ApiError> {
    let req = protocol::parse_sync(body, cx.limits)?;
    match cx.mode {
        Mode::Normal => {}
        Mode::WritesRefused => return Err(degraded(cx.now, !req.changes.is_empty())),
        Mode::Degraded if req.changes.is_empty() => return Err(degraded(cx.now, false)),
        Mode::Degraded => return degraded_push(cx, &req).await,
    }
    let (plan, page) = if req.changes.is_empty() {
        (Plan::default(), cx.store.pull_all(req.cursor, req.limit).await?.1)
    } else {
        let (plan, page) = cx.store.push(&req.changes, cx.now, Some((req.cursor, req.limit))).await?;
        (plan, page.ok_or_else(|| ApiError::Internal("push without pull".into()))?)
    };
    let (updates, deleted) = split(&page);
    Reply::json(
        200,
        &SyncReply {
            applied: &plan.applied,
            conflicts: &plan.conflicts,
            updates,
            deleted,
            cursor: page.cursor,
            has_more: page.has_more,
            etag: state_tag(page.seq),
            server_time: cx.now,
        },
    )
}

fn split(page: &Page) -> (Vec<&RawValue>, Vec<Removed>) {
    let mut updates = Vec::new();
    let mut deleted = Vec::new();
    for row in &page.rows {
        if row.deleted {
            deleted.push(Removed { entity: row.entity, id: row.id.clone(), rev: row.rev });
        } else {
            updates.push(&*row.record);
        }
    }
    (updates, deleted)
}

// Replies that carry records are structs, not `json!`: records stay raw JSON from D1
// and are copied into the body without being parsed again.

#[derive(Serialize)]
struct ChangeGroups<'a> {
    created: Vec<&'a RawValue>,
    updated: Vec<&'a RawValue>,
    deleted: Vec<&'a str>,
}

#[derive(Serialize)]
struct ChangesReply<'a> {
    success: bool,
    changes: ChangeGroups<'a>,
    cursor: i64,
    has_more: bool,
    since: i64,
    timestamp: i64,
    total_changes: usize,
}

#[derive(Serialize)]
struct DownloadReply<'a> {
    success: bool,
    data: &'a [Box<RawValue>],
    count: usize,
    cursor: i64,
    has_more: bool,
    timestamp: i64,
}

/// Write priority: in degraded mode a push is applied but nothing is pulled. The cursor
/// stays the client's and no state token is given, since the client has not seen the
/// changes between its cursor and now.
async fn degraded_push(cx: &Cx<'_>, req: &protocol::SyncRequest) -> Result<Reply, ApiError> {
    let (plan, _) = cx.store.push(&req.changes, cx.now, None).await?;
    Reply::json(
        200,
        &json!({
            "applied": plan.applied,
            "conflicts": plan.conflicts,
            "updates": [],
            "deleted": [],
            "cursor": req.cursor,
            "has_more": false,
            "etag": null,
            "server_time": cx.now,
            "degraded": true,
        }),
    )
}

/// Pause with `Retry-After` at the next UTC midnight, spread over ten minutes.
pub fn degraded(now: i64, writes: bool) -> ApiError {
    let jitter = (js_sys::Math::random() * 600.0) as u64;
    ApiError::Degraded { retry_after: crate::quota::retry_after_midnight(now, jitter), writes }
}

/// `GET /api/sync/{type}/changes?since=&limit=`.
pub async fn changes(cx: &Cx<'_>, e: &'static Entity, q: Query) -> Result<Reply, ApiError> {
    let since = q.since.ok_or_else(|| ApiError::field("since", "is required (use 0 for everything)"))?;
    let (state, page) = cx.store.changes(e, since, q.limit).await?;
    cx.conditional(state.seq, || {
        let mut created = Vec::new();
        let mut updated = Vec::new();
        let mut deleted = Vec::new();
        for row in &page.rows {
            match (row.deleted, row.created) {
                (true, _) => deleted.push(row.id.as_str()),
                (false, true) => created.push(&*row.record),
                (false, false) => updated.push(&*row.record),
            }
        }
        Reply::json(
            200,
            &ChangesReply {
                success: true,
                changes: ChangeGroups { created, updated, deleted },
                cursor: page.cursor,
                has_more: page.has_more,
                since,
                timestamp: cx.now,
                total_changes: page.rows.len(),
            },
        )
    })
}

/// `GET /api/sync/{type}?limit=&after=`: live records by id.
pub async fn download(cx: &Cx<'_>, e: &'static Entity, q: Query) -> Result<Reply, ApiError> {
    let (state, records, has_more) = cx.store.download(e, q.after.as_deref(), q.limit).await?;
    cx.conditional(state.seq, || {
        Reply::json(
            200,
            &DownloadReply {
                success: true,
                data: &records,
                count: records.len(),
                cursor: state.seq,
                has_more,
                timestamp: cx.now,
            },
        )
    })
}

/// `POST /api/sync/{type}`: replace the type's live set.
pub async fn upload(cx: &Cx<'_>, e: &'static Entity, body: &Value) -> Result<Reply, ApiError> {
    let req = protocol::parse_full_upload(body, e, cx.limits)?;
    let (plan, deleted) = cx.store.replace_all(e, &req.records, req.cursor, cx.now).await?;
    // No record of this type changed after the client's cursor (or the upload was refused),
    // but records of other types may have: the new sequence is returned only when nothing
    // at all changed after the cursor, else the client's own cursor (pulling from it brings
    // the peers' changes and, harmlessly, this upload's own records).
    let cursor = if plan.base <= req.cursor { plan.seq.max(req.cursor) } else { req.cursor };
    Reply::json(
        200,
        &json!({"success": true, "uploaded": req.records.len(), "deleted": deleted, "cursor": cursor}),
    )
}

/// `POST /api/sync/{type}/delta`.
pub async fn delta(cx: &Cx<'_>, e: &'static Entity, body: &Value) -> Result<Reply, ApiError> {
    let req = protocol::parse_delta(body, e, cx.limits)?;
    let (plan, _) = cx.store.push(&req.changes, cx.now, None).await?;
    let mut processed = [0usize; 3];
    let mut start = 0;
    for (slot, n) in req.counts.iter().enumerate() {
        processed[slot] =
            plan.decisions[start..start + n].iter().filter(|d| !matches!(d, Decision::Conflict)).count();
        start += n;
    }
    // The push's own revs may only advance a client's cursor when nothing else changed
    // since that cursor; otherwise the client keeps its cursor and pulls.
    let cursor = req.cursor.map(|c| if plan.base <= c { plan.seq.max(c) } else { c });
    Reply::json(
        200,
        &json!({
            "success": true,
            "processed": {"created": processed[0], "updated": processed[1], "deleted": processed[2]},
            "applied": plan.applied,
            "conflicts": plan.conflicts,
            "cursor": cursor,
        }),
    )
}
