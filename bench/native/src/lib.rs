//! The worker's pure modules, compiled natively for the benchmarks in ../benches.
//! Each is included by path from ../../src, under the same name, so their `crate::…`
//! references resolve exactly as in the worker. None of them uses the `worker` crate.
#![allow(dead_code, unused_imports, clippy::all)]

#[path = "../../../src/auth.rs"]
pub mod auth;
#[path = "../../../src/config.rs"]
pub mod config;
#[path = "../../../src/cors.rs"]
pub mod cors;
#[path = "../../../src/entities.rs"]
pub mod entities;
#[path = "../../../src/error.rs"]
pub mod error;
#[path = "../../../src/etag.rs"]
pub mod etag;
#[path = "../../../src/openapi.rs"]
pub mod openapi;
#[path = "../../../src/ops.rs"]
pub mod ops;
#[path = "../../../src/plan.rs"]
pub mod plan;
#[path = "../../../src/protocol.rs"]
pub mod protocol;
#[path = "../../../src/quota.rs"]
pub mod quota;
#[path = "../../../src/ratelimit.rs"]
pub mod ratelimit;
#[path = "../../../src/routes.rs"]
pub mod routes;
#[path = "../../../src/sql.rs"]
pub mod sql;

/// Benchmark inputs and the reply-building code of the edge glue (bench-only).
pub mod fixtures;
