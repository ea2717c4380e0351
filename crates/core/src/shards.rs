//! Users spread over several D1 databases (README "More than one database").
//!
//! A user's **bucket** is a stable function of the user id over a fixed number of buckets
//! ([`BUCKETS`]); `SHARD_MAP` (configuration) says which database binding holds each
//! bucket. Every request touches one database: its user's. A bucket is moved by an
//! operator (`npm run reshard`), which leaves a **fence** in the database it leaves:
//! `moving` while its users are copied (writes there are refused, so nothing written can
//! be left behind: those users get 503 `busy` with `Retry-After`), then `moved` with the
//! target, a forwarding address every isolate follows, and remembers, until `SHARD_MAP`
//! is updated. The fence is checked inside the same statement that reads or writes the
//! user's head, so a stale isolate can never write to a database its users have left.

use crate::error::ApiError;

/// Buckets users are hashed into. Fixed forever: changing it would move every user.
pub const BUCKETS: u32 = 256;

/// Databases a request follows fences through before giving up with `busy` (a bucket
/// being moved back and forth can point in a circle for a moment).
pub const MAX_HOPS: usize = 4;

/// The user's bucket: FNV-1a (64 bit) of the user id, modulo [`BUCKETS`].
pub fn bucket(user: &str) -> u32 {
    let h = user.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    (h % u64::from(BUCKETS)) as u32
}

/// Bucket → database binding, from `SHARD_MAP`.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardMap {
    names: Vec<String>,
    /// Index into `names`, per bucket.
    owner: Vec<u8>,
}

impl Default for ShardMap {
    /// One database, `DB`, holds every bucket.
    fn default() -> Self {
        ShardMap { names: vec!["DB".into()], owner: vec![0; BUCKETS as usize] }
    }
}

/// A D1 binding name as wrangler takes it: `[A-Za-z_][A-Za-z0-9_]*`, at most 64 bytes
/// (also the OpenAPI pattern of the reshard route's `to` and `from`).
pub fn is_binding_name(s: &str) -> bool {
    s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.bytes().next().is_some_and(|b| !b.is_ascii_digit())
}

fn binding_name(s: &str) -> Result<&str, String> {
    is_binding_name(s).then_some(s).ok_or_else(|| format!("SHARD_MAP: {s:?} is not a binding name"))
}

fn range(s: &str) -> Result<(u32, u32), String> {
    let num = |t: &str| t.trim().parse::<u32>().map_err(|_| format!("SHARD_MAP: bad bucket {t:?}"));
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(s)?, num(s)?),
    };
    if a > b || b >= BUCKETS {
        return Err(format!("SHARD_MAP: bucket range {s:?} is not within 0-{}", BUCKETS - 1));
    }
    Ok((a, b))
}

impl ShardMap {
    /// Parses `SHARD_MAP`. Empty: everything on `DB`. `DB,DB_1,DB_2`: the buckets split in
    /// equal consecutive ranges. `DB:0-127,DB_1:128-255`: explicit ranges (each bucket
    /// exactly once; a binding may have several ranges, `DB:0-9,DB:20-255,DB_1:10-19`).
    /// A malformed map is an error, never a guess: a wrong guess would lose users' data.
    pub fn parse(spec: Option<&str>) -> Result<ShardMap, String> {
        let spec = spec.map(str::trim).unwrap_or_default();
        if spec.is_empty() {
            return Ok(ShardMap::default());
        }
        let entries: Vec<(&str, Option<&str>)> = spec
            .split(',')
            .map(|e| match e.split_once(':') {
                Some((n, r)) => (n.trim(), Some(r.trim())),
                None => (e.trim(), None),
            })
            .collect();
        let mut names: Vec<String> = Vec::new();
        let mut index = |n: &str| -> Result<u8, String> {
            let n = binding_name(n)?;
            let i = match names.iter().position(|m| m == n) {
                Some(i) => i,
                None => {
                    names.push(n.to_string());
                    names.len() - 1
                }
            };
            u8::try_from(i).map_err(|_| "SHARD_MAP: too many databases".to_string())
        };
        let ranged = entries.iter().filter(|(_, r)| r.is_some()).count();
        let mut owner = vec![u8::MAX; BUCKETS as usize];
        if ranged == 0 {
            let ids = entries.iter().map(|(n, _)| index(n)).collect::<Result<Vec<u8>, String>>()?;
            if ids.len() != names.len() {
                return Err("SHARD_MAP: a database is listed twice".into());
            }
            let n = ids.len() as u64;
            for (b, o) in owner.iter_mut().enumerate() {
                *o = ids[(b as u64 * n / u64::from(BUCKETS)) as usize];
            }
        } else if ranged == entries.len() {
            for (n, r) in &entries {
                let id = index(n)?;
                let (a, z) = range(r.unwrap_or_default())?;
                for o in &mut owner[a as usize..=z as usize] {
                    if *o != u8::MAX {
                        return Err(format!(
                            "SHARD_MAP: bucket range {r:?} overlaps another",
                            r = r.unwrap_or_default()
                        ));
                    }
                    *o = id;
                }
            }
            if let Some(b) = owner.iter().position(|&o| o == u8::MAX) {
                return Err(format!("SHARD_MAP: bucket {b} has no database"));
            }
        } else {
            return Err("SHARD_MAP: give every database a bucket range, or none".into());
        }
        Ok(ShardMap { names, owner })
    }

    /// The binding that holds `bucket` by configuration.
    pub fn binding(&self, bucket: u32) -> &str {
        let i = self.owner.get(bucket as usize).copied().unwrap_or(0);
        self.names.get(usize::from(i)).map_or("DB", String::as_str)
    }

    /// Every configured binding, `DB`'s position first when present.
    pub fn bindings(&self) -> &[String] {
        &self.names
    }

    /// The buckets each binding holds, as `SHARD_MAP` ranges (what to put back into the
    /// configuration after a move).
    pub fn spec(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        let mut start = 0usize;
        for b in 1..=self.owner.len() {
            if b == self.owner.len() || self.owner[b] != self.owner[start] {
                let name = &self.names[usize::from(self.owner[start])];
                out.push(match b - 1 == start {
                    true => format!("{name}:{start}"),
                    false => format!("{name}:{start}-{}", b - 1),
                });
                start = b;
            }
        }
        out.join(",")
    }

    /// This map with `bucket` on `binding` (added if new).
    pub fn with(&self, bucket: u32, binding: &str) -> Result<ShardMap, String> {
        let mut m = self.clone();
        let i = match m.names.iter().position(|n| n == binding) {
            Some(i) => i,
            None => {
                m.names.push(binding_name(binding)?.to_string());
                m.names.len() - 1
            }
        };
        let slot = m.owner.get_mut(bucket as usize).ok_or("no such bucket")?;
        *slot = u8::try_from(i).map_err(|_| "SHARD_MAP: too many databases".to_string())?;
        Ok(m)
    }
}

/// A bucket's fence in one database, as the statement reading the user's head returns it.
#[derive(Debug, Clone, PartialEq)]
pub enum Fence {
    /// The bucket lives here.
    Open,
    /// Its users are being copied to `to`: read them here, refuse their writes.
    Moving { to: String },
    /// They live in `to` now: ask there.
    Moved { to: String },
}

impl Fence {
    pub fn from_row(state: Option<&str>, target: Option<&str>) -> Result<Fence, ApiError> {
        let to = || target.map(str::to_string).ok_or_else(|| ApiError::Internal("shard fence without target".into()));
        match state {
            None => Ok(Fence::Open),
            Some("moving") => Ok(Fence::Moving { to: to()? }),
            Some("moved") => Ok(Fence::Moved { to: to()? }),
            Some(s) => Err(ApiError::Internal(format!("unknown shard fence state {s:?}"))),
        }
    }
}

/// What a request does on meeting a fence.
#[derive(Debug, PartialEq)]
pub enum Hop<'f> {
    /// Read or write here.
    Here,
    /// Follow the forwarding address (and remember it).
    Follow(&'f str),
}

/// The decision for a request that reads (`write == false`) or writes the user's data.
pub fn hop(fence: &Fence, write: bool) -> Result<Hop<'_>, ApiError> {
    match fence {
        Fence::Open => Ok(Hop::Here),
        Fence::Moving { .. } if write => Err(ApiError::Busy),
        Fence::Moving { .. } => Ok(Hop::Here),
        Fence::Moved { to } => Ok(Hop::Follow(to)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_stable_and_spread() {
        assert_eq!(bucket("alice"), bucket("alice"));
        assert!(bucket("alice") < BUCKETS);
        let mut seen = std::collections::HashSet::new();
        for i in 0..2_000 {
            seen.insert(bucket(&format!("user-{i}")));
        }
        assert_eq!(seen.len(), BUCKETS as usize, "2,000 users reach every bucket");
        // Pinned: the function may never change (tests/helpers/shards.mjs computes the same).
        assert_eq!((bucket("alice"), bucket("user-1")), (7, 212));
    }

    #[test]
    fn maps_parse_split_and_validate() {
        let one = ShardMap::parse(None).unwrap();
        assert_eq!((one.binding(0), one.binding(255), one.bindings().len()), ("DB", "DB", 1));
        assert_eq!(ShardMap::parse(Some("  ")).unwrap(), one);
        let three = ShardMap::parse(Some("DB, DB_1 ,DB_2")).unwrap();
        assert_eq!(
            (three.binding(0), three.binding(85), three.binding(86), three.binding(255)),
            ("DB", "DB", "DB_1", "DB_2")
        );
        assert_eq!(three.spec(), "DB:0-85,DB_1:86-170,DB_2:171-255");
        assert_eq!(ShardMap::parse(Some(&three.spec())).unwrap(), three, "spec() parses back");
        let ranged = ShardMap::parse(Some("DB:0-9,DB_1:10,DB:11-255")).unwrap();
        assert_eq!((ranged.binding(9), ranged.binding(10), ranged.binding(11)), ("DB", "DB_1", "DB"));
        let moved = three.with(3, "DB_2").unwrap();
        assert_eq!((moved.binding(3), moved.binding(2)), ("DB_2", "DB"));
        assert_eq!(moved.spec(), "DB:0-2,DB_2:3,DB:4-85,DB_1:86-170,DB_2:171-255");
        for bad in ["DB:0-100", "DB:0-255,DB_1:3", "DB,DB:0-255", "DB,DB", "1DB", "DB:9-3", "DB:0-256", "D-B", "DB:x"] {
            assert!(ShardMap::parse(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn fences_send_writes_away_and_keep_reads() {
        let moving = Fence::from_row(Some("moving"), Some("DB_1")).unwrap();
        let moved = Fence::from_row(Some("moved"), Some("DB_1")).unwrap();
        assert_eq!(hop(&Fence::Open, true).unwrap(), Hop::Here);
        assert_eq!(hop(&moving, false).unwrap(), Hop::Here, "reads of a moving bucket: nothing can change");
        assert_eq!(hop(&moving, true).unwrap_err(), ApiError::Busy);
        assert_eq!(hop(&moved, true).unwrap(), Hop::Follow("DB_1"));
        assert_eq!(hop(&moved, false).unwrap(), Hop::Follow("DB_1"));
        assert!(Fence::from_row(Some("moved"), None).is_err());
        assert!(Fence::from_row(Some("gone"), Some("DB")).is_err());
        assert_eq!(Fence::from_row(None, None).unwrap(), Fence::Open);
    }
}
