//! One request, start to end, as a pipeline of small named stages:
//!
//! route → authenticate → rate-limit → query → degrade gate → body → KV fast path →
//! handler (its store writing the KV state token ahead of every commit), then the
//! deferred writes, the usage count and one log line.
//!
//! Each stage is a short function here; what it decides is asked of the pure
//! `edgesync_core` (endpoints, pipeline, parse, auth, ratelimit, quota), which is where
//! the decisions are unit-tested.

use worker::{web_sys, Context, Env};

use edgesync_core::accounting::Due;
use edgesync_core::endpoints::{resolve, Access, Auth, Endpoint, Match};
use edgesync_core::entities::{self, Entity};
use edgesync_core::envelope::UserId;
use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;
use edgesync_core::parse::{self, Query};
use edgesync_core::pipeline;
use edgesync_core::quota::{self, Usage};
use edgesync_core::ratelimit::ratelimit_header;
use edgesync_core::reply::Reply;
use edgesync_core::{auth, cors};

use crate::boxed::boxed;
use crate::crypto;
use crate::handlers::{self, Cx};
use crate::http::{self, finish, Caching, In, H};
use crate::io::{self, elapsed, jitter, now_ms};
use crate::isolate::Isolate;
use crate::limiter::{self, Persist};
use crate::store::Store;
use crate::{state_cache, usage};

/// What one request did besides its reply: who it was, and the writes it leaves for
/// after the response.
#[derive(Default)]
struct Trace {
    user: Option<UserId>,
    headers: Vec<(&'static str, String)>,
    /// The KV state token was consulted, and whether it answered.
    kv_consulted: bool,
    kv_hit: bool,
    persist: Option<Persist>,
}

/// The request in flight, as the stages see it.
struct Pass<'a> {
    req: In,
    env: &'a Env,
    isolate: &'a Isolate,
    /// The worker's clock (shifted in development by `DEV_CLOCK_OFFSET_MS`).
    now: i64,
    /// The real clock, which tokens are checked against.
    wall: i64,
    /// Today's usage as this isolate saw it when the request started: every stage decides
    /// on the same figures.
    today: Usage,
    ops: &'a Ops,
    trace: Trace,
}

pub async fn handle(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    let wall = now_ms();
    let isolate = Isolate::get(&env);
    let ops = Ops::default();
    // The raw method (workers-rs reads methods it does not know, QUERY, PROPFIND…, as GET),
    // the URL and the headers the stages read, in one JS call.
    let req = In::new(req);
    let method = req.method.clone();
    let origin = req.header(H::Origin).map(str::to_string);
    let now = wall + isolate.config.clock_offset_ms;
    let today = boxed(usage::today(&isolate.usage, &env, now, &isolate.config.usage)).await;
    let mut pass = Pass { req, env: &env, isolate: &isolate, now, wall, today, ops: &ops, trace: Trace::default() };

    if isolate.config.dev_mode && pass.req.header(H::Panic).is_some() {
        // Development only: proves that a panic costs only its own request (the worker is
        // built with recoverable panics; tests/integration/panic.test.mjs).
        panic!("X-Edgesync-Panic requested (DEV_MODE)");
    }
    let (mut reply, caching, name) = if method == "OPTIONS" {
        // CORS preflight: no auth, no rate limit.
        let mut r = Reply::empty(204);
        r.headers = cors::preflight_headers(isolate.config.cors_origins.as_deref(), origin.as_deref());
        (r, Caching::NoStore, "OPTIONS")
    } else {
        match route(&method, pass.req.path(), &isolate) {
            Ok((endpoint, entity)) => {
                let caching = if endpoint.auth == Auth::User { Caching::PerUser } else { Caching::NoStore };
                let reply = boxed(run(&mut pass, endpoint, entity)).await.unwrap_or_else(|e| error_reply(&e, pass.now));
                (reply, caching, endpoint.path)
            }
            Err(e) => (error_reply(&e, pass.now), Caching::NoStore, "-"),
        }
    };
    reply.headers.append(&mut pass.trace.headers);
    if method != "OPTIONS" {
        reply.headers.extend(cors::response_headers(isolate.config.cors_origins.as_deref(), origin.as_deref()));
    }
    defer_writes(&mut pass, &ctx);
    let total = elapsed(wall);
    if pipeline::logs(reply.status, isolate.config.log_sample_rate, js_sys::Math::random()) {
        log(&method, name, reply.status, pass.trace.user.as_ref(), &ops, total);
    }
    count_usage(&pass, &isolate, &ctx);
    finish(reply, caching, &ops, total)
}

impl Pass<'_> {
    /// The `CACHE` KV binding (looked up once per isolate).
    fn cache(&self) -> Option<&io::Kv> {
        self.isolate.cache(self.env)
    }
}

/// Stage: the endpoint and, for per-type paths, the collection. An unknown type is a 404
/// for everybody, before authentication.
fn route(
    method: &str,
    path: &str,
    isolate: &Isolate,
) -> Result<(&'static Endpoint, Option<&'static Entity>), ApiError> {
    let dev = isolate.config.dev_mode;
    match resolve(method, path, |e| dev || e.auth != Auth::Dev) {
        Match::Found { endpoint, param: None } => Ok((endpoint, None)),
        Match::Found { endpoint, param: Some(name) } => {
            Ok((endpoint, Some(entities::entity(name).ok_or(ApiError::NotFound)?)))
        }
        Match::WrongMethod(allow) => Err(ApiError::MethodNotAllowed { allow }),
        Match::NotFound => Err(ApiError::NotFound),
    }
}

/// The stages after routing.
async fn run(
    pass: &mut Pass<'_>,
    endpoint: &'static Endpoint,
    entity: Option<&'static Entity>,
) -> Result<Reply, ApiError> {
    let mode = pass.isolate.config.quotas.mode(&pass.today);
    let user = boxed(authenticate(pass, endpoint)).await?;
    if let Some(user) = &user {
        boxed(rate_limit(pass, user)).await?;
    }
    let query = query(pass, endpoint)?;
    // The jitter (a JS call) only matters to a pause, which only a degraded mode makes.
    pipeline::gate(endpoint.access, mode, pass.now, if mode == quota::Mode::Normal { 0 } else { jitter() })?;
    let if_none_match = pass.req.header(H::IfNoneMatch).map(str::to_string);
    let call = boxed(body(pass, endpoint, entity, query)).await?;
    if let Some(user) = &user {
        if let Some(reply) = boxed(fast_path(pass, endpoint, &call, user, if_none_match.as_deref(), mode)).await {
            return reply;
        }
    }
    // `DB` holds the day's usage (the admin routes); a user's pages are in the database
    // of the user's bucket.
    let db = match endpoint.auth {
        Auth::Admin => Some(pass.env.d1("DB")?),
        Auth::User | Auth::Public | Auth::Dev => None,
    };
    let cx = Cx {
        isolate: pass.isolate,
        env: pass.env,
        store: match &user {
            Some(u) => Some(user_store(pass, u, pass.ops)?),
            None => None,
        },
        now: pass.now,
        if_none_match,
        mode,
        db: db.as_ref(),
        ops: pass.ops,
        authorization: pass.req.header(H::Authorization).map(str::to_string),
    };
    handlers::dispatch(&cx, call).await
}

/// The user's store, writing the KV state token ahead of every commit (awaited, before the
/// batch is sent; see `state_cache`) while the KV write budget allows. Under `DEV_MODE`,
/// `X-Edgesync-Stall-Ahead: <ms>` holds the commit back that long after the write-ahead
/// (tests/integration/crash-safety.test.mjs kills the worker in that window).
fn user_store<'s>(pass: &Pass<'s>, user: &UserId, ops: &'s Ops) -> Result<Store<'s>, ApiError> {
    let store = Store::new(pass.isolate.router(pass.env), user.clone(), ops)?;
    let config = &pass.isolate.config;
    if !config.quotas.kv_writes_ok(&pass.today) {
        return Ok(store);
    }
    let Some(kv) = pass.cache().cloned() else { return Ok(store) };
    let stall = match config.dev_mode {
        true => pass.req.header(H::StallAhead).and_then(|v| v.trim().parse::<u64>().ok()),
        false => None,
    }
    .map(|ms| ms.min(120_000));
    let (user, day, ttl) = (user.as_str().to_string(), quota::day(pass.now), config.state_cache_ttl);
    Ok(store.with_ahead(Box::new(move |seq| {
        let (kv, user) = (kv.clone(), user.clone());
        Box::pin(async move {
            state_cache::put(kv, user, seq, day, ttl, ops).await;
            if let Some(ms) = stall {
                worker::Delay::from(std::time::Duration::from_millis(ms)).await;
            }
        })
    })))
}

/// Stage: who is calling. User endpoints need a valid JWT (checked against the real
/// clock); the others authenticate in their handler (admin) or not at all.
async fn authenticate(pass: &mut Pass<'_>, endpoint: &Endpoint) -> Result<Option<UserId>, ApiError> {
    if endpoint.auth != Auth::User {
        return Ok(None);
    }
    let token = auth::bearer(pass.req.header(H::Authorization))
        .ok_or_else(|| ApiError::Unauthorized { detail: "missing bearer token".into(), token_given: false })?;
    let isolate = pass.isolate;
    let cached = isolate.tokens.borrow_mut().lookup(token, pass.wall);
    let user = match cached {
        Some(user) => user,
        None => {
            let verified = crypto::verify(&isolate.verifier, &isolate.keys, token, pass.wall)
                .await
                .map_err(|e| ApiError::Unauthorized { detail: e.0, token_given: true })?;
            isolate.tokens.borrow_mut().remember(token, verified)
        }
    };
    pass.trace.user = Some(user.clone());
    Ok(Some(user))
}

/// Stage: the user's token bucket. Every authenticated response says where it stands.
async fn rate_limit(pass: &mut Pass<'_>, user: &UserId) -> Result<(), ApiError> {
    let config = &pass.isolate.config;
    let kv = pass.cache().ok_or_else(|| ApiError::Internal("no KV binding CACHE".into()))?;
    let (read_ok, write_ok) =
        (config.quotas.kv_reads_ok(&pass.today), pipeline::limiter_writes_ok(&config.quotas, &pass.today));
    let (verdict, persist) =
        limiter::take(&pass.isolate.buckets, kv, user, config.rate, pass.now, read_ok, write_ok, pass.ops).await;
    pass.trace.persist = persist;
    pass.trace.headers.push(("RateLimit-Policy", config.rate.policy_header()));
    pass.trace.headers.push(("RateLimit", ratelimit_header(&verdict)));
    if !verdict.allowed {
        return Err(ApiError::RateLimited { retry_after: verdict.retry_after });
    }
    Ok(())
}

/// Stage: the query string of a read, checked before anything can answer from cache: a
/// 304 is only right where the unconditional answer would be a 200 (RFC 9110 §13.2.1).
/// (And of the admin endpoints that declare parameters: the export's `user`.)
fn query(pass: &Pass<'_>, endpoint: &Endpoint) -> Result<Query, ApiError> {
    if endpoint.access != Access::Read && endpoint.query.is_empty() {
        return Ok(Query::default());
    }
    // The query string of the raw URL, decoded as `URLSearchParams` does; no URL parse
    // (and none of its IDNA tables) for a string the path already came from.
    let pairs: Vec<_> = form_urlencoded::parse(pass.req.query().as_bytes()).collect();
    parse::parse_query(endpoint.query, pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
}

/// Stage: the KV fast path (contract §3.2): "nothing changed" answered from the user's
/// state token without D1, when `pipeline` says the token may answer this call (only ever
/// for what the client already holds: a matching tag, an idle sync at its cursor).
async fn fast_path(
    pass: &mut Pass<'_>,
    endpoint: &Endpoint,
    call: &parse::Call,
    user: &UserId,
    if_none_match: Option<&str>,
    mode: quota::Mode,
) -> Option<Result<Reply, ApiError>> {
    let kv_ok = pass.isolate.config.quotas.kv_trusted(&pass.today);
    let held = pipeline::kv_question(endpoint, call, if_none_match, mode, kv_ok)?;
    let Some(kv) = pass.cache() else {
        return Some(Err(ApiError::Internal("no KV binding CACHE".into())));
    };
    let cached = state_cache::get(kv, user.as_str(), quota::day(pass.now), pass.ops).await;
    pass.trace.kv_consulted = true;
    let answer = pipeline::answer_from_kv(held, cached, pass.now);
    pass.trace.kv_hit = answer.is_some();
    answer
}

/// Stage: the body, read and parsed into the endpoint's typed call.
async fn body(
    pass: &mut Pass<'_>,
    endpoint: &Endpoint,
    entity: Option<&'static Entity>,
    query: Query,
) -> Result<parse::Call, ApiError> {
    let config = &pass.isolate.config;
    let body = match endpoint.body {
        edgesync_core::endpoints::Body::None => None,
        _ => Some(http::read_json(&pass.req, config.max_body_bytes).await?),
    };
    parse::call(endpoint, entity, query, body.as_ref(), config.limits)
}

/// Deferred writes: counted now (they are this request's cost), done after the response.
fn defer_writes(pass: &mut Pass<'_>, ctx: &Context) {
    let Some(p) = pass.trace.persist.take() else { return };
    if let Some(kv) = pass.cache().cloned() {
        pass.ops.kv(0, 1, 0);
        ctx.wait_until(boxed(limiter::persist(kv, p)));
    }
}

/// Adds this request's cost to the isolate's counters, and flushes them or reads the
/// day's row when the accounting policy says so (after the response).
fn count_usage(pass: &Pass<'_>, isolate: &std::rc::Rc<Isolate>, ctx: &Context) {
    let (ops, trace, config) = (pass.ops, &pass.trace, &pass.isolate.config);
    let cost = Usage {
        requests: 1,
        rows_read: ops.rows_read.get(),
        rows_written: ops.rows_written.get(),
        kv_reads: ops.kv_read.get(),
        kv_writes: ops.kv_write.get(),
        kv_hits: u64::from(trace.kv_consulted && trace.kv_hit),
        kv_misses: u64::from(trace.kv_consulted && !trace.kv_hit),
    };
    let now = pass.now;
    let due = usage::record(&pass.isolate.usage, &cost, now, &config.quotas, &config.usage);
    if due == Due::Nothing {
        return;
    }
    if let Ok(db) = pass.env.d1("DB") {
        let isolate = isolate.clone();
        ctx.wait_until(boxed(async move {
            let (q, p) = (&isolate.config.quotas, &isolate.config.usage);
            let done = match due {
                Due::Flush => usage::flush(&isolate.usage, &db, now, q, p, None).await.map(|_| ()),
                _ => usage::read(&isolate.usage, &db, now).await,
            };
            if let Err(e) = done {
                worker::console_warn!("usage {due:?} failed: {e:?}");
            }
        }));
    }
}

fn error_reply(e: &ApiError, now: i64) -> Reply {
    if let ApiError::Internal(detail) = e {
        worker::console_error!("internal error: {detail}");
    }
    Reply::problem(e, now)
}

/// A short, stable, non-reversible tag for a user id in logs (FNV-1a).
fn user_hash(user: &UserId) -> String {
    let h =
        user.as_str().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{h:016x}")
}

/// One JSON line per request, written directly (no JSON tree per request): the method
/// is the only part a client chooses, so it alone is escaped.
fn log(method: &str, route: &str, status: u16, user: Option<&UserId>, ops: &Ops, ms: u64) {
    let method = serde_json::to_string(method).unwrap_or_else(|_| "\"?\"".into());
    let user = user.map_or("null".to_string(), |u| format!("\"{}\"", user_hash(u)));
    worker::console_log!(
        r#"{{"method":{method},"ms":{ms},"ops":"{}","route":"{route}","status":{status},"user":{user}}}"#,
        ops.header()
    );
}
