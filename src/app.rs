//! One request, start to end: route, authenticate, rate-limit, check quotas, try the KV
//! fast path, run the handler, render the reply or the error, schedule deferred KV and
//! usage writes, log one JSON line. The `worker`-facing glue; decisions live in the pure
//! modules it calls.

use serde_json::Value;
use worker::{Context, Env, Request, Response};

use crate::auth::{bearer, Verifier};
use crate::cors;
use crate::config::Config;
use crate::entities::{self, Entity};
use crate::error::ApiError;
use crate::etag::{none_match, state_tag};
use crate::handlers::{self, degraded, Cx};
use crate::http::{finish, Caching, Reply};
use crate::limiter::{self, Persist};
use crate::ops::Ops;
use crate::protocol::{parse_query, Limits};
use crate::quota::{self, Mode, Usage};
use crate::ratelimit::ratelimit_header;
use crate::routes::{resolve, Auth, Handler, Match, Route};
use crate::store::Store;
use crate::{state_cache, usage};

/// What one request did besides its reply: who it was, and the writes it leaves for
/// after the response.
#[derive(Default)]
struct Trace {
    user: Option<String>,
    headers: Vec<(&'static str, String)>,
    /// The KV state token was consulted: Some(what it held).
    kv_seen: Option<Option<i64>>,
    kv_hit: bool,
    put_state: Option<i64>,
    persist: Option<Persist>,
}

pub async fn handle(mut req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    let wall = worker::Date::now().as_millis() as i64;
    let config = Config::from_lookup(|k| {
        env.var(k).ok().map(|v| v.to_string()).or_else(|| env.secret(k).ok().map(|v| v.to_string()))
    });
    let now = wall + config.clock_offset_ms;
    let ops = Ops::default();
    // The raw method: workers-rs reads methods it does not know (QUERY, PROPFIND…) as GET.
    let method = req.inner().method();
    let path = req.path();

    let origin = req.headers().get("Origin").ok().flatten();
    let mut trace = Trace::default();
    let (reply, caching, route_name) = if method == "OPTIONS" {
        // CORS preflight: no auth, no rate limit.
        let mut r = Reply::empty(204);
        r.headers = cors::preflight_headers(config.cors_origins.as_deref(), origin.as_deref());
        (r, Caching::NoStore, "OPTIONS")
    } else {
        match resolve(&method, &path) {
        Match::Found { route, param } => {
            let param = param.map(str::to_string);
            let caching = if route.auth == Auth::User { Caching::PerUser } else { Caching::NoStore };
            let result = run(&mut req, &env, &config, route, param.as_deref(), now, wall, &ops, &mut trace).await;
            (result.unwrap_or_else(|e| error_reply(&e, now)), caching, route.path)
        }
        Match::WrongMethod(allow) => (error_reply(&ApiError::MethodNotAllowed { allow }, now), Caching::NoStore, "-"),
        Match::NotFound => (error_reply(&ApiError::NotFound, now), Caching::NoStore, "-"),
        }
    };
    let mut reply = reply;
    reply.headers.append(&mut trace.headers);
    if method != "OPTIONS" {
        reply.headers.extend(cors::response_headers(config.cors_origins.as_deref(), origin.as_deref()));
    }

    // Deferred writes: counted now (they are this request's cost), done after the response.
    if let Ok(kv) = env.kv("CACHE") {
        if let (Some(seq), Some(user)) = (trace.put_state, &trace.user) {
            ops.kv(0, 1, 0.0);
            let day = quota::day(now);
            ctx.wait_until(state_cache::put(kv.clone(), user.clone(), seq, day, config.state_cache_ttl));
        }
        if let Some(p) = trace.persist.take() {
            ops.kv(0, 1, 0.0);
            let ttl = (config.rate.burst / config.rate.per_minute.max(1.0) * 60.0).ceil() as u64;
            ctx.wait_until(limiter::persist(kv, p, ttl));
        }
    }

    let total = (worker::Date::now().as_millis() as i64 - wall) as f64;
    log(&method, route_name, reply.status, trace.user.as_deref(), &ops, total);
    let cost = Usage {
        requests: 1,
        rows_read: ops.rows_read.get(),
        rows_written: ops.rows_written.get(),
        kv_reads: ops.kv_read.get(),
        kv_writes: ops.kv_write.get(),
        kv_hits: u64::from(trace.kv_seen.is_some() && trace.kv_hit),
        kv_misses: u64::from(trace.kv_seen.is_some() && !trace.kv_hit),
    };
    if usage::record(&cost, now, config.usage_flush_requests, config.usage_flush_secs) {
        if let Ok(db) = env.d1("DB") {
            ctx.wait_until(async move {
                if let Err(e) = usage::flush(&db, now, None).await {
                    worker::console_warn!("usage flush failed: {e}");
                }
            });
        }
    }
    finish(reply, caching, &ops, total)
}

fn error_reply(e: &ApiError, now: i64) -> Reply {
    if let ApiError::Internal(detail) = e {
        worker::console_error!("internal error: {detail}");
    }
    Reply::problem(e, now)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}


#[allow(clippy::too_many_arguments)]
async fn run(
    req: &mut Request,
    env: &Env,
    config: &Config,
    route: &'static Route,
    param: Option<&str>,
    now: i64,
    wall: i64,
    ops: &Ops,
    trace: &mut Trace,
) -> Result<Reply, ApiError> {
    let today = usage::view(now);
    let mode = config.quotas.mode(&today);
    let header = |name: &str| req.headers().get(name).ok().flatten();
    match route.auth {
        Auth::Public if route.handler == Handler::OpenApi => {
            return Reply::json(200, &crate::openapi::document());
        }
        Auth::Public => return handlers::health(now, mode),
        Auth::Admin => {
            let db = env.d1("DB").map_err(internal)?;
            return admin_usage(config, header("Authorization").as_deref(), &db, now, ops).await;
        }
        Auth::User => {}
    }
    // The type in the path is checked before auth: an unknown one is a 404 for everybody.
    let entity: Option<&'static Entity> = match param {
        Some(name) => Some(entities::entity(name).ok_or(ApiError::NotFound)?),
        None => None,
    };
    let if_none_match = header("If-None-Match");
    let authorization = header("Authorization");
    let token = bearer(authorization.as_deref())
        .ok_or_else(|| ApiError::Unauthorized { detail: "missing bearer token".into(), token_given: false })?;
    // Tokens are checked against the real clock, not the test clock offset.
    let user = verifier(config)
        .verify(token, wall)
        .map_err(|e| ApiError::Unauthorized { detail: e.0, token_given: true })?;
    trace.user = Some(user.clone());

    let kv = env.kv("CACHE").map_err(internal)?;
    let kv_ok = config.quotas.kv_writes_ok(&today);
    let (verdict, persist) = limiter::take(&kv, &user, config.rate, now, kv_ok, ops).await;
    trace.persist = persist;
    trace.headers.push(("RateLimit-Policy", config.rate.policy_header()));
    trace.headers.push(("RateLimit", ratelimit_header(&verdict)));
    if !verdict.allowed {
        return Err(ApiError::RateLimited { retry_after: verdict.retry_after });
    }

    // Query parameters are validated before anything can answer from cache: a 304 is only
    // right where the unconditional answer would be a 200 (RFC 9110 §13.2.1).
    let query = match route.handler {
        Handler::Check | Handler::Download | Handler::Changes => {
            let url = req.url().map_err(internal)?;
            let pairs: Vec<(String, String)> =
                url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
            Some(parse_query(route.handler, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?)
        }
        _ => None,
    };

    let is_get = route.method == "GET";
    if is_get && mode != Mode::Normal {
        return Err(degraded(now, false));
    }
    if matches!(route.handler, Handler::Upload | Handler::Delta) && mode == Mode::WritesRefused {
        return Err(degraded(now, true));
    }

    // KV fast path: the check always, other GETs when conditional. Trusted only while
    // KV can still be written through, only for tokens written today, and only for users
    // this isolate has checked against D1 once (see state_cache). A delta pull is answered from KV only when it starts at 0 or at or
    // past the cached state: another `since` may be below the purge horizon, which only
    // D1 knows (and a client whose tag is current but whose cursor is not is confused).
    if is_get && kv_ok && (route.handler == Handler::Check || if_none_match.is_some()) {
        let cached = state_cache::get(&kv, &user, quota::day(now), ops).await;
        trace.kv_seen = Some(cached);
        let since_ok = |seq: i64| query.as_ref().and_then(|q| q.since).is_none_or(|since| since == 0 || since >= seq);
        let trusted = state_cache::verified(&user);
        if let Some(seq) = cached.filter(|seq| trusted && since_ok(*seq)) {
            let tag = state_tag(seq);
            if if_none_match.as_deref().is_some_and(|h| none_match(h, &tag)) {
                trace.kv_hit = true;
                return Ok(Reply::not_modified(tag));
            }
            if route.handler == Handler::Check {
                trace.kv_hit = true;
                return handlers::check_reply(seq, now);
            }
        }
    }

    let body = if route.method == "POST" { Some(read_json(req, config).await?) } else { None };

    let db = env.d1("DB").map_err(internal)?;
    let cx = Cx {
        store: Store::new(db, user, ops),
        now,
        if_none_match,
        limits: Limits { max_changes: config.max_changes },
        mode,
    };
    let need = |e: Option<&'static Entity>| e.ok_or(ApiError::NotFound);
    let body = || body.as_ref().ok_or_else(|| ApiError::Internal("no body".into()));
    let query = || query.ok_or_else(|| ApiError::Internal("no query".into()));
    let result = match route.handler {
        Handler::Check => handlers::check(&cx).await,
        Handler::Sync => handlers::sync(&cx, body()?).await,
        Handler::Download => handlers::download(&cx, need(entity)?, query()?).await,
        Handler::Changes => handlers::changes(&cx, need(entity)?, query()?).await,
        Handler::Upload => handlers::upload(&cx, need(entity)?, body()?).await,
        Handler::Delta => handlers::delta(&cx, need(entity)?, body()?).await,
        Handler::Health | Handler::AdminUsage | Handler::OpenApi => Err(ApiError::NotFound),
    };
    if result.as_ref().is_err_and(|e| matches!(e, ApiError::Degraded { .. })) {
        return result;
    }

    // Keep the KV token in step with D1: write through after a push, fill after a read
    // that found it missing or behind. Only while the KV write budget allows.
    if let Some(seq) = cx.store.seen_seq() {
        let stale = trace.kv_seen.is_some_and(|kv| kv != Some(seq));
        if kv_ok && (cx.store.wrote() || stale) {
            trace.put_state = Some(seq);
        }
        if kv_ok && (cx.store.wrote() || trace.kv_seen.is_some()) {
            // KV now agrees with D1 for this user (or will once the put lands).
            state_cache::mark_verified(trace.user.as_deref().unwrap_or_default());
        }
    }
    result
}

/// `GET /api/admin/usage`: flushes this isolate's counts, then reports the day's totals.
async fn admin_usage(
    config: &Config,
    authorization: Option<&str>,
    db: &worker::D1Database,
    now: i64,
    ops: &Ops,
) -> Result<Reply, ApiError> {
    let Some(want) = config.admin_token.as_deref() else { return Err(ApiError::NotFound) };
    let given = bearer(authorization).unwrap_or_default();
    if !constant_time_eq(given.as_bytes(), want.as_bytes()) {
        return Err(ApiError::Unauthorized { detail: "admin token required".into(), token_given: !given.is_empty() });
    }
    let totals = usage::flush(db, now, Some(ops)).await.map_err(ApiError::Internal)?;
    let q = &config.quotas;
    Reply::json(
        200,
        &serde_json::json!({
            "day": quota::day(now),
            "date": quota::date(quota::day(now)),
            "usage": q.report(&totals),
            "mode": q.mode(&totals),
            "degraded": q.mode(&totals) != Mode::Normal,
            "kv_trusted": q.kv_writes_ok(&totals),
            "degrade_at": q.degrade_at,
            "kv_fast_path": {
                "hits": totals.kv_hits,
                "misses": totals.kv_misses,
                "hit_ratio": totals.hit_ratio(),
            },
            "timestamp": now,
        }),
    )
}

thread_local! {
    /// The verifier of this isolate, rebuilt only when its configuration changes: parsing
    /// a JWKS's RSA keys on every request would cost CPU for nothing.
    static VERIFIER: std::cell::RefCell<Option<(String, std::rc::Rc<Verifier>)>> = const { std::cell::RefCell::new(None) };
}

fn verifier(config: &Config) -> std::rc::Rc<Verifier> {
    let key = [&config.jwt_secret, &config.jwt_jwks, &config.jwt_issuer, &config.jwt_audience]
        .map(|v| v.as_deref().unwrap_or(""))
        .join("\u{0}");
    VERIFIER.with(|cell| {
        let mut cell = cell.borrow_mut();
        if let Some((k, v)) = cell.as_ref() {
            if *k == key {
                return v.clone();
            }
        }
        let v = std::rc::Rc::new(Verifier::with_jwks(
            config.jwt_secret.as_deref(),
            config.jwt_jwks.as_deref(),
            config.jwt_issuer.as_deref(),
            config.jwt_audience.as_deref(),
        ));
        for w in &v.warnings {
            worker::console_warn!("JWT_JWKS: {w}");
        }
        *cell = Some((key, v.clone()));
        v
    })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Reads a JSON body: `application/json` (or `+json`) only, at most `max_body_bytes`.
async fn read_json(req: &mut Request, config: &Config) -> Result<Value, ApiError> {
    let content_type = req.headers().get("Content-Type").ok().flatten().unwrap_or_default().to_ascii_lowercase();
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    // A compressed body would otherwise be read as malformed JSON.
    let coding = req.headers().get("Content-Encoding").ok().flatten().unwrap_or_default();
    if let Some(c) = coding.split(',').map(str::trim).find(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity")) {
        return Err(ApiError::UnsupportedEncoding(c.chars().take(40).collect()));
    }
    let too_large = || ApiError::PayloadTooLarge(format!("the body limit is {} bytes", config.max_body_bytes));
    let declared = req.headers().get("Content-Length").ok().flatten().and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > config.max_body_bytes) {
        return Err(too_large());
    }
    let bytes = req.bytes().await.map_err(|e| ApiError::InvalidJson(format!("unreadable body: {e}")))?;
    if bytes.len() > config.max_body_bytes {
        return Err(too_large());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(format!("body is not valid JSON: {e}")))
}

/// A short, stable, non-reversible tag for a user id in logs (FNV-1a).
fn user_hash(user: &str) -> String {
    let h = user.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{h:016x}")
}

fn log(method: &str, route: &str, status: u16, user: Option<&str>, ops: &Ops, ms: f64) {
    let line = serde_json::json!({
        "method": method,
        "route": route,
        "status": status,
        "user": user.map(user_hash),
        "ops": ops.header(),
        "ms": ms,
    });
    worker::console_log!("{line}");
}
