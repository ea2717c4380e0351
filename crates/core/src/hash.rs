//! The hash tables of the core and the worker, with rustc-hash's Fx hasher instead of
//! std's SipHash. The pages of a push or a full upload are looked up by entity and id
//! many times over: SipHash was 10% of the instructions of a full upload over 5,000
//! records (callgrind, bench/native). One hasher for every table keeps one copy of the
//! table code in the wasm (−364 B gzip with this change; foldhash, tried first, added
//! 1.6 KB and was slower here).
//!
//! Fx is unkeyed, so it does not resist HashDoS. The keys hashed here are one user's own
//! record ids and page numbers, verified user ids and verified tokens: ids chosen to
//! collide would slow the requests of the user who chose them (and, while one runs,
//! others waiting on the same isolate, until the CPU limit ends it).

pub type HashMap<K, V> = std::collections::HashMap<K, V, rustc_hash::FxBuildHasher>;
pub type HashSet<K> = std::collections::HashSet<K, rustc_hash::FxBuildHasher>;

/// An empty map for `n` entries.
pub fn map_with_capacity<K, V>(n: usize) -> HashMap<K, V> {
    HashMap::with_capacity_and_hasher(n, Default::default())
}
