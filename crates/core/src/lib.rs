//! edgesync-core: everything about a sync request that does not need the Workers runtime.
//! The model ([`entities`], [`envelope`]), the sync rules ([`plan`]), request parsing
//! ([`parse`]), replies ([`reply`]) and errors ([`error`]), the endpoint table
//! ([`endpoints`]) and the pipeline's decisions ([`pipeline`]), the policies ([`auth`],
//! [`quota`], [`ratelimit`], [`cors`], [`etag`]), and SQL text ([`sql`]). Each is unit-tested
//! natively (`cargo test`); `edgesync` (crates/worker) wires them to D1, KV and HTTP.

pub mod accounting;
pub mod auth;
pub mod codec;
pub mod config;
pub mod cors;
pub mod endpoints;
pub mod entities;
pub mod envelope;
pub mod error;
pub mod etag;
pub mod hash;
pub mod openapi;
pub mod ops;
pub mod pages;
pub mod parse;
pub mod pipeline;
pub mod plan;
pub mod quota;
pub mod ratelimit;
pub mod reply;
pub mod shards;
pub mod sql;

// The collections declaration's parser and validator: build.rs runs it; compiled here only
// for its unit tests.
#[cfg(test)]
mod accounting_sim;
#[cfg(test)]
mod declaration;
#[cfg(test)]
mod proptests;
