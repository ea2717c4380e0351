//! Benchmark inputs for the worker's hot pure paths. The code measured is edgesync-core
//! itself (a path dependency), re-exported under the names the benchmarks use.

pub use edgesync_core::parse as protocol;
pub use edgesync_core::{
    auth, config, cors, endpoints, entities, envelope, error, etag, openapi, ops, pages, plan, quota, sql,
};

/// Benchmark inputs and the pure path of a sync request over the packed pages (bench-only).
pub mod fixtures;
