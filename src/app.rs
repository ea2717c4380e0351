//! One request, start to end: route, read and parse the body, authenticate, run the
//! handler, render the reply or the error, log one JSON line. The `worker`-facing glue.

use serde_json::Value;
use worker::{Context, Env, Method, Request, Response};

use crate::auth::{bearer, Verifier};
use crate::config::Config;
use crate::entities::{self, Entity};
use crate::error::ApiError;
use crate::handlers::{self, Cx};
use crate::http::{finish, Caching, Reply};
use crate::ops::Ops;
use crate::protocol::{parse_query, Limits};
use crate::routes::{resolve, Handler, Match, Route};
use crate::store::Store;

pub async fn handle(mut req: Request, env: Env, _ctx: Context) -> worker::Result<Response> {
    let started = worker::Date::now().as_millis() as i64;
    let ops = Ops::default();
    let config = Config::from_lookup(|k| env.var(k).ok().map(|v| v.to_string()).or_else(|| env.secret(k).ok().map(|v| v.to_string())));
    let method = req.method().to_string();
    let path = req.path();

    let mut user = None;
    let (reply, caching, route_name) = match resolve(&method, &path) {
        Match::Found { route, param } => {
            let param = param.map(str::to_string);
            let caching = if route.auth { Caching::PerUser } else { Caching::NoStore };
            let result = run(&mut req, &env, &config, route, param.as_deref(), started, &ops, &mut user).await;
            let reply = result.unwrap_or_else(|e| error_reply(&e, started));
            (reply, caching, route.path)
        }
        Match::WrongMethod(allow) => {
            (error_reply(&ApiError::MethodNotAllowed { allow }, started), Caching::NoStore, "-")
        }
        Match::NotFound => (error_reply(&ApiError::NotFound, started), Caching::NoStore, "-"),
    };

    let total = (worker::Date::now().as_millis() as i64 - started) as f64;
    log(&method, route_name, reply.status, user.as_deref(), &ops, total);
    finish(reply, caching, &ops, total)
}

fn error_reply(e: &ApiError, now: i64) -> Reply {
    if let ApiError::Internal(detail) = e {
        worker::console_error!("internal error: {detail}");
    }
    Reply::problem(e, now)
}

#[allow(clippy::too_many_arguments)]
async fn run(
    req: &mut Request,
    env: &Env,
    config: &Config,
    route: &'static Route,
    param: Option<&str>,
    now: i64,
    ops: &Ops,
    user_out: &mut Option<String>,
) -> Result<Reply, ApiError> {
    if route.handler == Handler::Health {
        return handlers::health(now);
    }
    // The type in the path is checked before auth: an unknown one is a 404 for everybody.
    let entity: Option<&'static Entity> = match param {
        Some(name) => Some(entities::entity(name).ok_or(ApiError::NotFound)?),
        None => None,
    };
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let authorization = header("Authorization");
    let if_none_match = header("If-None-Match");
    let token = bearer(authorization.as_deref())
        .ok_or_else(|| ApiError::Unauthorized { detail: "missing bearer token".into(), token_given: false })?;
    let verifier = Verifier::new(config.jwt_secret.as_deref(), config.jwt_issuer.as_deref(), config.jwt_audience.as_deref());
    let user = verifier
        .verify(token, now)
        .map_err(|e| ApiError::Unauthorized { detail: e.0, token_given: true })?;
    *user_out = Some(user.clone());

    let query = if req.method() == Method::Post {
        None
    } else {
        let url = req.url().map_err(|e| ApiError::Internal(e.to_string()))?;
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        Some(parse_query(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))?)
    };
    let body = if req.method() == Method::Post { Some(read_json(req, config).await?) } else { None };

    let db = env.d1("DB").map_err(|e| ApiError::Internal(e.to_string()))?;
    let cx = Cx {
        store: Store::new(db, user, ops),
        now,
        if_none_match,
        limits: Limits { max_changes: config.max_changes },
    };
    let need = |e: Option<&'static Entity>| e.ok_or(ApiError::NotFound);
    let body = || body.as_ref().ok_or_else(|| ApiError::Internal("no body".into()));
    let query = || query.ok_or_else(|| ApiError::Internal("no query".into()));
    match route.handler {
        Handler::Health => handlers::health(now),
        Handler::Check => handlers::check(&cx).await,
        Handler::Sync => handlers::sync(&cx, body()?).await,
        Handler::Download => handlers::download(&cx, need(entity)?, query()?).await,
        Handler::Changes => handlers::changes(&cx, need(entity)?, query()?).await,
        Handler::Upload => handlers::upload(&cx, need(entity)?, body()?).await,
        Handler::Delta => handlers::delta(&cx, need(entity)?, body()?).await,
    }
}

/// Reads a JSON body: `application/json` (or `+json`) only, at most `max_body_bytes`.
async fn read_json(req: &mut Request, config: &Config) -> Result<Value, ApiError> {
    let content_type = req.headers().get("Content-Type").ok().flatten().unwrap_or_default().to_ascii_lowercase();
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
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
