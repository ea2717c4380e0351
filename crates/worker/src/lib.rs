//! edgesync: a multi-device sync backend on Cloudflare Workers, D1 and KV.
//!
//! Run it locally with `npm run dev`; test with `npm test`. The contract it implements is
//! `../shared/docs/api-contract.md`. This crate is the edge: the `#[event]` entries below,
//! the request pipeline's driver, the handlers, and D1 / KV access. Everything that can
//! be decided without the runtime lives in `edgesync_core`.

mod boxed;
mod crypto;
mod driver;
mod handlers;
mod http;
mod io;
mod isolate;
mod limiter;
mod openapi;
mod purge;
mod reshard;
mod shards;
mod state_cache;
mod store;
mod usage;

use worker::{event, web_sys, Context, Env, ScheduleContext, ScheduledEvent};

/// The runtime's own request and response types: `worker::Request` would read
/// `request.cf` (built by the runtime on access) for nothing; see `http`.
#[event(fetch)]
async fn fetch(req: web_sys::Request, env: Env, ctx: Context) -> worker::Result<web_sys::Response> {
    // (The panic hook is set when the isolate's state is made, on its first request.)
    driver::handle(req, env, ctx).await
}

/// The daily cron (`[triggers]` in wrangler.toml): purge old tombstones.
#[event(scheduled)]
async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let isolate = isolate::Isolate::get(&env);
    let config = &isolate.config;
    let now = io::now_ms() + config.clock_offset_ms;
    let retention_ms =
        i64::try_from(config.tombstone_retention_days).unwrap_or(i64::MAX).saturating_mul(edgesync_core::quota::DAY_MS);
    let cutoff = now.saturating_sub(retention_ms);
    let result = purge::run(isolate.router(&env), cutoff).await;
    match result {
        Ok(n) => {
            let line = serde_json::json!({"cron": "purge", "removed": n, "cutoff": cutoff});
            worker::console_log!("{}", edgesync_core::reply::json_text(&line))
        }
        Err(e) => worker::console_error!("purge failed: {e:?}"),
    }
}
