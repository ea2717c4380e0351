//! edgesync: a multi-device sync backend on Cloudflare Workers, D1 and KV.
//!
//! Run it locally with `npm run dev`; test with `npm test`. The contract it implements is
//! `../shared/docs/api-contract.md`. Pure modules (no `worker` types, native unit tests):
//! entities, protocol, plan, sql, etag, auth, config, ops, error, routes. Edge glue: app,
//! handlers, store, http.

pub mod auth;
pub mod config;
pub mod entities;
pub mod error;
pub mod etag;
pub mod ops;
pub mod plan;
pub mod protocol;
pub mod routes;
pub mod sql;

mod app;
mod handlers;
mod http;
mod store;

use worker::{event, Context, Env, Request, Response};

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> worker::Result<Response> {
    console_error_panic_hook::set_once();
    app::handle(req, env, ctx).await
}
