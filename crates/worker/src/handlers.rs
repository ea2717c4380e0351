//! One function per endpoint, and [`dispatch`], the one `match` from a parsed [`Call`] to
//! its handler. Each handler gets its input parsed and typed, and the user's store;
//! it returns a [`Reply`], or an [`ApiError`] the driver renders.

use edgesync_core::auth;
use edgesync_core::entities::Entity;
use edgesync_core::error::ApiError;
use edgesync_core::parse::{Call, DeltaPush, FullUpload, Query, SyncRequest};
use edgesync_core::pipeline::{sync_mode, SyncMode};
use edgesync_core::plan::{Decision, Plan};
use edgesync_core::quota::{self, Mode};
use edgesync_core::reply::{
    self, conditional, ChangesReply, DeltaReply, DownloadReply, Processed, Reply, SyncReply, UploadReply,
};

use crate::boxed::{boxed, Boxed};
use crate::isolate::Isolate;
use crate::store::Store;

/// What a handler needs besides its input. `store` is there for user endpoints only.
pub struct Cx<'a> {
    pub isolate: &'a Isolate,
    pub env: &'a worker::Env,
    pub store: Option<Store<'a>>,
    pub now: i64,
    pub if_none_match: Option<String>,
    /// Quota mode at the start of the request.
    pub mode: Mode,
    pub db: Option<&'a worker::D1Database>,
    pub ops: &'a edgesync_core::ops::Ops,
    pub authorization: Option<String>,
}

impl<'a> Cx<'a> {
    fn store(&self) -> Result<&Store<'a>, ApiError> {
        self.store.as_ref().ok_or_else(|| ApiError::Internal("user endpoint without a store".into()))
    }
    fn inm(&self) -> Option<&str> {
        self.if_none_match.as_deref()
    }
}

/// Each endpoint's handler future is boxed ([`boxed`], as the driver's stages are): it is
/// polled through its own function instead of all of them being inlined into the
/// request's one future (smaller wasm, measured).
pub async fn dispatch(cx: &Cx<'_>, call: Call) -> Result<Reply, ApiError> {
    let handler: Boxed<'_, Result<Reply, ApiError>> = match call {
        Call::Health => return health(cx),
        Call::OpenApi => return Ok(Reply::raw_json(cx.isolate.openapi().to_string())),
        Call::DevLogin(user) => return dev_login(cx, &user),
        Call::AdminUsage => boxed(admin_usage(cx)),
        Call::AdminReshard(r) => {
            admin(cx)?;
            boxed(crate::reshard::step(cx.isolate.router(cx.env), cx.ops, cx.now, r))
        }
        Call::AdminRecords(user) => boxed(admin_records(cx, user)),
        Call::Check => boxed(check(cx)),
        Call::Sync(req) => boxed(sync(cx, req)),
        Call::Download(e, q) => boxed(download(cx, e, q)),
        Call::Changes { entity, since, limit } => boxed(changes(cx, entity, since, limit)),
        Call::Upload(e, req) => boxed(upload(cx, e, req)),
        Call::Delta(e, req) => boxed(delta(cx, e, req)),
    };
    handler.await
}

/// `GET /api/health`.
fn health(cx: &Cx<'_>) -> Result<Reply, ApiError> {
    Reply::json(200, &reply::Health { status: "healthy", timestamp: cx.now, degraded: cx.mode != Mode::Normal })
}

/// `GET /api/sync/check` when the KV token could not answer: one indexed D1 row.
async fn check(cx: &Cx<'_>) -> Result<Reply, ApiError> {
    let state = cx.store()?.state().await?;
    reply::check(cx.inm(), state.seq, cx.now)
}

/// `POST /api/sync`: push the changes, then pull everything after the client's cursor
/// (without the push's own rows), in one transaction. In degraded mode the push is
/// applied and nothing pulled (write priority).
async fn sync(cx: &Cx<'_>, req: SyncRequest) -> Result<Reply, ApiError> {
    let store = cx.store()?;
    match sync_mode(cx.mode, !req.changes.is_empty()) {
        SyncMode::Pause { writes } => Err(crate::io::degraded(cx.now, writes)),
        SyncMode::PushOnly => {
            let (plan, _) = store.push(&req.changes, cx.now, None).await?;
            Reply::json(200, &SyncReply::degraded(&plan.applied, &plan.conflicts, req.cursor, cx.now))
        }
        SyncMode::Full if req.changes.is_empty() => {
            let (_, page) = store.pull_all(req.cursor, req.limit).await?;
            Reply::json(200, &SyncReply::new(&[], &[], &page, cx.now))
        }
        SyncMode::Full => {
            let (plan, page) = store.push(&req.changes, cx.now, Some((req.cursor, req.limit))).await?;
            let page = page.ok_or_else(|| ApiError::Internal("push without pull".into()))?;
            Reply::json(200, &SyncReply::new(&plan.applied, &plan.conflicts, &page, cx.now))
        }
    }
}

/// `GET /api/sync/{type}/changes?since=&limit=`.
async fn changes(cx: &Cx<'_>, e: &'static Entity, since: i64, limit: i64) -> Result<Reply, ApiError> {
    let (state, page) = cx.store()?.changes(e, since, limit).await?;
    conditional(cx.inm(), state.seq, || Reply::json(200, &ChangesReply::new(&page, since, cx.now)))
}

/// `GET /api/sync/{type}?limit=&after=`: live records by id.
async fn download(cx: &Cx<'_>, e: &'static Entity, q: Query) -> Result<Reply, ApiError> {
    let (state, records, has_more) = cx.store()?.download(e, q.after.as_ref(), q.limit).await?;
    conditional(cx.inm(), state.seq, || {
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

/// The cursor a per-type push hands back: past the push only when nothing else changed
/// since the client's cursor (`plan.base <= cursor`), otherwise the client's own, so that
/// pulling from it never skips a peer's change.
fn cursor_after(plan: &Plan, cursor: i64) -> i64 {
    if plan.base <= cursor {
        plan.seq.max(cursor)
    } else {
        cursor
    }
}

/// `POST /api/sync/{type}`: replace the type's live set.
async fn upload(cx: &Cx<'_>, e: &'static Entity, req: FullUpload) -> Result<Reply, ApiError> {
    let (plan, deleted) = cx.store()?.replace_all(e, &req.records, req.cursor, cx.now).await?;
    let cursor = cursor_after(&plan, req.cursor);
    Reply::json(200, &UploadReply { success: true, uploaded: req.records.len(), deleted, cursor })
}

/// `POST /api/sync/{type}/delta`.
async fn delta(cx: &Cx<'_>, _e: &'static Entity, req: DeltaPush) -> Result<Reply, ApiError> {
    let (plan, _) = cx.store()?.push(&req.changes, cx.now, None).await?;
    let mut processed = [0usize; 3];
    let mut start = 0;
    for (slot, n) in req.counts.iter().enumerate() {
        let end = start + n;
        processed[slot] = plan
            .decisions
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .filter(|d| !matches!(d, Decision::Conflict { .. }))
            .count();
        start = end;
    }
    Reply::json(
        200,
        &DeltaReply {
            success: true,
            processed: Processed { created: processed[0], updated: processed[1], deleted: processed[2] },
            applied: &plan.applied,
            conflicts: &plan.conflicts,
            cursor: req.cursor.map(|c| cursor_after(&plan, c)),
        },
    )
}

/// Admin routes need `Authorization: Bearer <ADMIN_TOKEN>`, and do not exist without one.
fn admin(cx: &Cx<'_>) -> Result<(), ApiError> {
    let Some(want) = cx.isolate.config.admin_token.as_deref() else { return Err(ApiError::NotFound) };
    let given = auth::bearer(cx.authorization.as_deref()).unwrap_or_default();
    if !auth::constant_time_eq(given.as_bytes(), want.as_bytes()) {
        return Err(ApiError::Unauthorized { detail: "admin token required".into(), token_given: !given.is_empty() });
    }
    Ok(())
}

/// `GET /api/admin/records?user=`: the user's current records (the head's copy over a
/// bucket's), tombstones included and flagged, by type and id. Page bodies are deflated,
/// so this (and `npm run export`) is how operators read them.
async fn admin_records(cx: &Cx<'_>, user: edgesync_core::envelope::UserId) -> Result<Reply, ApiError> {
    admin(cx)?;
    let (state, pages) = Store::new(cx.isolate.router(cx.env), user.clone(), cx.ops)?.export().await?;
    let records = pages.export()?;
    Reply::json(
        200,
        &serde_json::json!({
            "user": user.as_str(),
            "cursor": state.seq,
            "purge_horizon": state.horizon,
            "count": records.len(),
            "records": records,
            "timestamp": cx.now,
        }),
    )
}

/// `GET /api/admin/usage`: flushes this isolate's counts, then reports the day's totals.
async fn admin_usage(cx: &Cx<'_>) -> Result<Reply, ApiError> {
    admin(cx)?;
    let config = &cx.isolate.config;
    let db = cx.db.ok_or_else(|| ApiError::Internal("no D1".into()))?;
    let totals =
        crate::usage::flush(&cx.isolate.usage, db, cx.now, &config.quotas, &config.usage, Some(cx.ops)).await?;
    let row = cx.isolate.usage.borrow().row();
    let q = &config.quotas;
    let day = quota::day(cx.now);
    Reply::json(
        200,
        &serde_json::json!({
            "day": day,
            "date": quota::date(day),
            "usage": q.report(&totals),
            "mode": q.mode(&totals),
            "degraded": q.mode(&totals) != Mode::Normal,
            "kv_trusted": q.kv_trusted(&totals),
            "degrade_at": q.degrade_at,
            "kv_fast_path": {"hits": totals.kv_hits, "misses": totals.kv_misses, "hit_ratio": totals.hit_ratio()},
            "accounting": {
                "flushes": row.map_or(0, |r| r.flushes),
                "isolates": row.map_or(0, |r| r.isolates),
            },
            "timestamp": cx.now,
        }),
    )
}

/// `POST /api/dev/login` (only under `DEV_MODE`): a token for any user name, signed with
/// this deployment's `JWT_SECRET`, so the demo can sign in without an identity provider.
fn dev_login(cx: &Cx<'_>, user: &edgesync_core::envelope::UserId) -> Result<Reply, ApiError> {
    let secret = cx
        .isolate
        .config
        .jwt_secret
        .as_deref()
        .ok_or_else(|| ApiError::Internal("DEV_MODE sign-in needs JWT_SECRET".into()))?;
    // Signed against the real clock, as tokens are verified against it.
    let (token, expires_at) =
        auth::sign_dev_token(secret, user, crate::io::now_ms(), 86_400).map_err(|e| ApiError::Internal(e.0))?;
    Reply::json(200, &reply::DevLogin { token, user: user.as_str(), expires_at })
}
