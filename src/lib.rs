//! edgesync: a multi-device sync backend on Cloudflare Workers, D1 and KV.
//!
//! Run it locally with `npm run dev`; test with `npm test`. The contract it implements is
//! `../shared/docs/api-contract.md`. Pure modules (no `worker` types, native unit tests):
//! entities, protocol, plan, sql, etag, auth, config, ops, error, routes. Edge glue: app,
//! handlers, store, http.

pub mod auth;
pub mod config;
pub mod cors;
pub mod entities;
pub mod error;
pub mod etag;
pub mod openapi;
pub mod ops;
pub mod plan;
pub mod protocol;
pub mod quota;
pub mod ratelimit;
pub mod routes;
pub mod sql;

#[cfg(test)]
mod proptests;

mod app;
mod handlers;
mod http;
mod limiter;
mod purge;
mod state_cache;
mod store;
mod usage;

use worker::{event, Context, Env, Request, Response, ScheduleContext, ScheduledEvent};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    console_error_panic_hook::set_once();
    app::handle(req, env, ctx).await
}

/// The daily cron (`[triggers]` in wrangler.toml): purge old tombstones.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    console_error_panic_hook::set_once();
    let config = config::Config::from_lookup(|k| env.var(k).ok().map(|v| v.to_string()));
    let now = worker::Date::now().as_millis() as i64 + config.clock_offset_ms;
    let cutoff = now - config.tombstone_retention_days as i64 * quota::DAY_MS;
    let result = match env.d1("DB") {
        Ok(db) => purge::run(&db, cutoff).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(n) => worker::console_log!("{}", serde_json::json!({"cron": "purge", "removed": n, "cutoff": cutoff})),
        Err(e) => worker::console_error!("purge failed: {e}"),
    }
}
