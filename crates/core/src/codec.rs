//! The page codec ([`edgesync_codec`], README "Storage"), told which types this build
//! declares: a page's records are decoded with their type resolved against
//! `collections.json`, and a type it does not declare is an error ([`ApiError::Internal`]).

use edgesync_codec::{Entry, Known};

use crate::error::ApiError;

pub use edgesync_codec::{deflate, encode, from_hex, inflate, mentions, tomb, COLUMNS, DEFLATE, LEVEL, MAX_JSON};

#[cfg(test)]
pub(crate) use edgesync_codec::columns_agree_with_serde;

/// A declared type's name, as the `&'static str` an [`Entry`] holds.
const KNOWN: Known = |name| crate::entities::entity(name).map(|e| e.name);

/// A stored body's entries.
pub fn decode(body: &[u8]) -> Result<Vec<Entry>, ApiError> {
    Ok(edgesync_codec::decode(body, KNOWN)?)
}

/// A stored body as D1's `hex(body)` returns it.
pub fn decode_hex(hex: &str) -> Result<Vec<Entry>, ApiError> {
    Ok(edgesync_codec::decode_hex(hex, KNOWN)?)
}

/// The entries of a body's JSON text, as [`inflate`] gives it with its format tag (kept by
/// the entries whose records are rebuilt from it when read).
pub fn decode_json(tag: u8, json: String) -> Result<Vec<Entry>, ApiError> {
    Ok(edgesync_codec::decode_json(tag, json, KNOWN)?)
}

/// The entries of a body's JSON text whose id is one of `ids` (the others' records are
/// not rebuilt): what a push needs of a bucket it does not write.
pub fn decode_json_only(tag: u8, json: &str, ids: &[&str]) -> Result<Vec<Entry>, ApiError> {
    Ok(edgesync_codec::decode_json_only(tag, json, ids, KNOWN)?)
}
