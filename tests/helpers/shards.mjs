// The user → bucket function of crates/core/src/shards.rs (FNV-1a 64 of the user id's
// UTF-8 bytes, modulo 256), so tests can pick users of a bucket.
import { bindings } from './server.mjs';

export const BUCKETS = 256;

export function bucketOf(userId) {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(userId)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return Number(h % BigInt(BUCKETS));
}

/** The binding SHARD_MAP "DB,DB_1,…" (n databases, even split) gives a bucket. */
export function evenBinding(bucket, n) {
  return bindings(n)[Math.floor((bucket * n) / BUCKETS)];
}
