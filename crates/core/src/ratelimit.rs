//! Token bucket per user (contract §5): `burst` tokens, refilled continuously at
//! `per_minute`. Exact within an isolate, where buckets live in memory. Isolates share
//! what matters across them, the users being throttled (below half the burst), through
//! one KV value, [`Throttled`]: an isolate reads it at most once a minute (and only when a
//! user it has no bucket for shows up), and writes it only from a request of a throttled
//! user whose bucket the shared value under-reports: once when the user becomes throttled,
//! then at most once a second. A user within limits costs no KV write, and no KV read of
//! their own. Pure arithmetic here.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub burst: f64,
    pub per_minute: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Tokens left at `at_ms`.
    pub tokens: f64,
    pub at_ms: i64,
}

/// The outcome of taking one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// Seconds until one token is available again (0 when some are).
    pub retry_after: u64,
    /// Seconds until the bucket is full again.
    pub reset: u64,
}

impl Policy {
    fn per_ms(&self) -> f64 {
        self.per_minute.max(0.0) / 60_000.0
    }

    pub fn full(&self, now: i64) -> Bucket {
        Bucket { tokens: self.burst, at_ms: now }
    }

    fn refill(&self, b: Bucket, now: i64) -> f64 {
        let elapsed = (now - b.at_ms).max(0) as f64;
        (b.tokens + elapsed * self.per_ms()).min(self.burst)
    }

    fn secs_until(&self, missing: f64) -> u64 {
        if missing <= 0.0 {
            return 0;
        }
        let rate = self.per_ms();
        if rate <= 0.0 {
            return 86_400;
        }
        (missing / rate / 1000.0).ceil() as u64
    }

    /// Takes one token from `b` at `now`; returns the new bucket and the verdict.
    pub fn take(&self, b: Bucket, now: i64) -> (Bucket, Verdict) {
        let tokens = self.refill(b, now);
        let allowed = tokens >= 1.0;
        let left = if allowed { tokens - 1.0 } else { tokens };
        let verdict = Verdict {
            allowed,
            remaining: left.floor().max(0.0) as u64,
            retry_after: if allowed { 0 } else { self.secs_until(1.0 - left) },
            reset: self.secs_until(self.burst - left),
        };
        (Bucket { tokens: left, at_ms: now }, verdict)
    }

    /// Whether this bucket's state is worth persisting: its user is being throttled.
    pub fn should_persist(&self, b: Bucket) -> bool {
        b.tokens < self.burst / 2.0
    }

    /// Tokens `b` holds at `now`.
    pub fn tokens_at(&self, b: Bucket, now: i64) -> f64 {
        self.refill(b, now)
    }

    /// The less generous of two views of one user's bucket (this isolate's and the shared
    /// one): each isolate only sees its own requests, so the emptier bucket is the truer.
    pub fn stricter(&self, a: Bucket, b: Bucket, now: i64) -> Bucket {
        if self.refill(b, now) < self.refill(a, now) {
            b
        } else {
            a
        }
    }

    /// Seconds a shared bucket can matter: the time an empty bucket takes to refill.
    pub fn shared_ttl(&self) -> u64 {
        self.secs_until(self.burst).max(60)
    }
}

/// Milliseconds between an isolate's reads of the shared [`Throttled`] value.
pub const SHARED_READ_MS: i64 = 60_000;
/// Milliseconds between an isolate's writes of it (KV takes one write per second per key).
pub const SHARED_WRITE_MS: i64 = 1_000;

/// The buckets of the users being throttled, by user, as one KV value every isolate reads
/// (at most once a minute) and writes (only for a throttled user, see [`writes_shared`]).
/// Lost updates between isolates (last write wins) only make the limit more lenient for
/// a while, never stricter than the truth of some isolate.
///
/// Kept as a vector sorted by user, one entry each, read and written as the JSON object
/// (keys in order) a `BTreeMap<String, Bucket>` was: the map's code, a B-tree instantiated
/// for this one type, was the larger (304,309 -> 299,966 B gzip).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Throttled(Vec<(String, Bucket)>);

/// The order of [`Throttled`]'s entries (one function, so one sort instantiation).
fn by_user(a: &(String, Bucket), b: &(String, Bucket)) -> Ordering {
    a.0.cmp(&b.0)
}

impl Serialize for Throttled {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(user, b)| (user, b)))
    }
}

impl<'de> Deserialize<'de> for Throttled {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Throttled, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Throttled;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Throttled, A::Error> {
                let mut all = Vec::new();
                while let Some(entry) = map.next_entry::<String, Bucket>()? {
                    all.push(entry);
                }
                // A user given twice keeps the last bucket, as a map's insert does: reversed,
                // then stably sorted, the last comes first of its run, and dedup keeps it.
                all.reverse();
                all.sort_by(by_user);
                all.dedup_by(|later, first| later.0 == first.0);
                Ok(Throttled(all))
            }
        }
        d.deserialize_map(Entries)
    }
}

impl Throttled {
    /// Entries kept at most (the most throttled win); about 60 bytes each.
    pub const MAX: usize = 1_000;

    /// The value as stored; anything unreadable (an older format, a torn value) is empty:
    /// the shared set only ever saves work.
    pub fn decode(text: &str) -> Throttled {
        serde_json::from_str(text).unwrap_or_default()
    }

    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn get(&self, user: &str) -> Option<Bucket> {
        self.0.binary_search_by(|(u, _)| u.as_str().cmp(user)).ok().map(|i| self.0[i].1)
    }

    /// Every user's bucket.
    pub fn iter_entries(&self) -> impl Iterator<Item = (&str, Bucket)> {
        self.0.iter().map(|(u, b)| (u.as_str(), *b))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `self` with `others` merged in (the stricter bucket of a user wins), without the
    /// buckets that are full again at `now` (a user nobody has a bucket for starts full
    /// anyway), and at most [`Throttled::MAX`] entries, the emptiest.
    pub fn merged<'a>(
        &self,
        others: impl IntoIterator<Item = (&'a str, Bucket)>,
        policy: &Policy,
        now: i64,
    ) -> Throttled {
        let mut all = self.0.clone();
        all.extend(others.into_iter().map(|(user, b)| (user.to_string(), b)));
        // Stably sorted, a user's buckets follow each other in the order they came (the
        // known one first), and each run folds into its first: the stricter so far and the
        // next one, as merging them one by one into a map did.
        all.sort_by(by_user);
        all.dedup_by(|next, first| {
            let same = next.0 == first.0;
            if same {
                first.1 = policy.stricter(first.1, next.1, now);
            }
            same
        });
        all.retain(|(_, b)| policy.tokens_at(*b, now) < policy.burst);
        if all.len() > Self::MAX {
            // Stable: among equally full buckets, the first users keep theirs.
            all.sort_by(|a, b| policy.tokens_at(a.1, now).total_cmp(&policy.tokens_at(b.1, now)));
            all.truncate(Self::MAX);
            all.sort_by(by_user);
        }
        Throttled(all)
    }
}

/// Whether a request of a user whose bucket is now `bucket` writes the shared value. Only
/// while the user is being throttled, and only with news: a user the shared value does
/// not hold (or holds as full again) is written at once, so other isolates learn of a new
/// throttle promptly; a user it holds is rewritten only when the shared bucket is more
/// generous by half a token or more (a token was taken since), and at most once a second
/// per isolate (`last_write`: this isolate's last write of the key).
pub fn writes_shared(
    policy: &Policy,
    bucket: Bucket,
    shared: Option<Bucket>,
    now: i64,
    last_write: Option<i64>,
) -> bool {
    if !policy.should_persist(bucket) {
        return false;
    }
    match shared.filter(|s| policy.tokens_at(*s, now) < policy.burst) {
        None => true,
        Some(s) => {
            last_write.is_none_or(|at| now.saturating_sub(at) >= SHARED_WRITE_MS || now < at)
                && policy.tokens_at(s, now) >= policy.tokens_at(bucket, now) + 0.5
        }
    }
}

/// Whether an isolate that last read the shared value at `last_read` reads it again now.
pub fn reads_shared(now: i64, last_read: Option<i64>) -> bool {
    last_read.is_none_or(|at| now.saturating_sub(at) >= SHARED_READ_MS || now < at)
}

impl Policy {
    /// `RateLimit-Policy` (IETF httpapi ratelimit-headers draft syntax).
    pub fn policy_header(&self) -> String {
        // The window is the time a burst takes to refill.
        let window = self.secs_until(self.burst).max(1);
        format!("\"burst\";q={};w={}", self.burst as u64, window)
    }
}

/// `RateLimit` header for a verdict.
pub fn ratelimit_header(v: &Verdict) -> String {
    format!("\"burst\";r={};t={}", v.remaining, v.reset)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy { burst: 3.0, per_minute: 60.0 };

    #[test]
    fn burst_then_throttle_then_refill() {
        let mut b = P.full(0);
        for left in [2, 1, 0] {
            let (nb, v) = P.take(b, 0);
            assert!(v.allowed);
            assert_eq!(v.remaining, left);
            b = nb;
        }
        let (b2, v) = P.take(b, 0);
        assert!(!v.allowed);
        assert_eq!(v.retry_after, 1, "one token per second");
        // Refusals do not consume: after a second one request passes again.
        let (_, v) = P.take(b2, 1_000);
        assert!(v.allowed);
        let (_, v) = P.take(b2, 999);
        assert!(!v.allowed);
    }

    #[test]
    fn refill_caps_at_burst_and_ignores_clock_going_back() {
        let b = Bucket { tokens: 0.0, at_ms: 10_000 };
        let (nb, v) = P.take(b, 1_000_000);
        assert!(v.allowed);
        assert_eq!(nb.tokens, 2.0);
        let (_, v) = P.take(b, 0);
        assert!(!v.allowed);
    }

    #[test]
    fn persistence_only_below_half() {
        assert!(!P.should_persist(Bucket { tokens: 2.0, at_ms: 0 }));
        assert!(P.should_persist(Bucket { tokens: 1.0, at_ms: 0 }));
    }

    #[test]
    fn the_shared_set_keeps_the_stricter_bucket_and_forgets_full_ones() {
        let s = Throttled::default().merged([("a", Bucket { tokens: 1.0, at_ms: 0 })], &P, 0);
        assert_eq!(s.get("a"), Some(Bucket { tokens: 1.0, at_ms: 0 }));
        let s2 = s.merged([("a", Bucket { tokens: 0.0, at_ms: 0 })], &P, 0);
        assert_eq!(s2.get("a").unwrap().tokens, 0.0, "the emptier view wins");
        let s3 = s2.merged([("a", Bucket { tokens: 3.0, at_ms: 0 })], &P, 0);
        assert_eq!(s3.get("a").unwrap().tokens, 0.0, "a fuller view does not undo a throttle");
        assert!(s3.merged([], &P, 3_000).is_empty(), "full again after 3 s at 1/s: dropped");
        assert_eq!(Throttled::decode(&s3.encode()), s3);
        assert!(Throttled::decode("{\"tokens\":1,\"at_ms\":0}").is_empty(), "an older per-user value");
        assert!(Throttled::decode("not json").is_empty());
        let many = Throttled::default().merged(
            (0..Throttled::MAX + 5).map(|i| {
                (Box::leak(format!("u{i}").into_boxed_str()) as &str, Bucket { tokens: (i % 3) as f64 * 0.5, at_ms: 0 })
            }),
            &P,
            0,
        );
        assert_eq!(many.len(), Throttled::MAX);
        assert!(many.0.iter().all(|(_, b)| b.tokens <= 1.0), "the emptiest are kept");
    }

    /// The shared set as a `BTreeMap` kept it (the code before it was a sorted vector):
    /// the same JSON read and written, the same merges.
    mod as_a_map {
        use super::*;
        use std::collections::BTreeMap;

        fn merged(map: &BTreeMap<String, Bucket>, others: &[(&str, Bucket)], policy: &Policy, now: i64) -> String {
            let mut map = map.clone();
            for &(user, b) in others {
                let b = match map.get(user) {
                    Some(known) => policy.stricter(*known, b, now),
                    None => b,
                };
                map.insert(user.to_string(), b);
            }
            map.retain(|_, b| policy.tokens_at(*b, now) < policy.burst);
            if map.len() > Throttled::MAX {
                let mut all: Vec<(String, Bucket)> = map.into_iter().collect();
                all.sort_by(|a, b| policy.tokens_at(a.1, now).total_cmp(&policy.tokens_at(b.1, now)));
                all.truncate(Throttled::MAX);
                map = all.into_iter().collect();
            }
            serde_json::to_string(&map).unwrap()
        }

        fn decoded(text: &str) -> String {
            serde_json::to_string(&serde_json::from_str::<BTreeMap<String, Bucket>>(text).unwrap_or_default()).unwrap()
        }

        #[test]
        fn reads_what_the_map_read() {
            for text in [
                r#"{}"#,
                r#"{"b":{"tokens":1,"at_ms":5},"a":{"tokens":0.5,"at_ms":-1}}"#,
                r#"{"a":{"tokens":1,"at_ms":5},"b":{"tokens":2,"at_ms":0},"a":{"tokens":0,"at_ms":7}}"#,
                r#"{"a":{"tokens":1,"at_ms":5},"a":{"tokens":2,"at_ms":6},"a":{"tokens":3,"at_ms":7}}"#,
                r#"{"é":{"tokens":1,"at_ms":5},"z":{"tokens":1,"at_ms":5},"Z":{"tokens":1,"at_ms":5},"":{"tokens":1,"at_ms":5}}"#,
                r#"{"a":{"tokens":1}}"#,
                r#"{"a":[1,2]}"#,
                r#"[["a",{"tokens":1,"at_ms":5}]]"#,
                r#"{"tokens":1,"at_ms":0}"#,
                "null",
                "not json",
            ] {
                let t = Throttled::decode(text);
                assert_eq!(t.encode(), decoded(text), "{text}");
                for user in ["a", "b", "z", "é", ""] {
                    let want = serde_json::from_str::<BTreeMap<String, Bucket>>(text).unwrap_or_default();
                    assert_eq!(t.get(user), want.get(user).copied(), "{text} {user}");
                }
            }
        }

        #[test]
        fn merges_as_the_map_merged() {
            let mut seed = 0x2545_f491_4f6c_dd1du64;
            let mut next = |n: u64| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed % n
            };
            for round in 0..300 {
                let users = if round % 10 == 0 { 1_500 } else { 1 + next(20) };
                let bucket = |r: u64| Bucket { tokens: (r % 7) as f64 * 0.5, at_ms: (r % 5) as i64 * 400 };
                let known: BTreeMap<String, Bucket> =
                    (0..next(users + 1)).map(|_| (format!("u{}", next(users)), bucket(next(1_000)))).collect();
                let names: Vec<String> = (0..next(users + 1)).map(|_| format!("u{}", next(users))).collect();
                let others: Vec<(&str, Bucket)> = names.iter().map(|n| (n.as_str(), bucket(next(1_000)))).collect();
                let now = next(3) as i64 * 700;
                let ours = Throttled::decode(&serde_json::to_string(&known).unwrap());
                let merged_ours = ours.merged(others.iter().copied(), &P, now);
                assert_eq!(merged_ours.encode(), merged(&known, &others, &P, now), "round {round}");
                assert!(merged_ours.0.windows(2).all(|w| w[0].0 < w[1].0), "sorted, one entry a user");
            }
        }
    }

    #[test]
    fn the_shared_set_is_written_once_a_second_at_most_and_only_with_news() {
        let low = Bucket { tokens: 1.0, at_ms: 0 };
        assert!(!writes_shared(&P, Bucket { tokens: 2.0, at_ms: 0 }, None, 0, None), "not throttled");
        assert!(writes_shared(&P, low, None, 0, None), "throttled, unknown to the set");
        assert!(writes_shared(&P, low, None, 10, Some(0)), "a newly throttled user is written at once");
        let full_again = Bucket { tokens: 0.0, at_ms: -5_000 };
        assert!(writes_shared(&P, low, Some(full_again), 10, Some(0)), "an entry full again counts as none");
        assert!(!writes_shared(&P, low, Some(low), 0, None), "the set already says as much");
        let after_take = Bucket { tokens: 0.0, at_ms: 0 };
        assert!(!writes_shared(&P, after_take, Some(low), 999, Some(0)), "within a second of the last write");
        assert!(writes_shared(&P, after_take, Some(low), 1_000, Some(0)), "a token was taken since");
        assert!(writes_shared(&P, after_take, Some(low), 1_000, Some(1_500)), "a clock that went back");
        assert!(!writes_shared(&P, low, Some(after_take), 1_000, Some(0)), "the set is stricter");
        assert!(reads_shared(0, None));
        assert!(!reads_shared(59_999, Some(0)));
        assert!(reads_shared(60_000, Some(0)));
        assert!(reads_shared(0, Some(10)), "a clock that went back");
        assert_eq!(Policy { burst: 30.0, per_minute: 30.0 }.shared_ttl(), 60);
        assert_eq!(Policy { burst: 30.0, per_minute: 1.0 }.shared_ttl(), 1_800);
    }

    #[test]
    fn headers() {
        let p = Policy { burst: 30.0, per_minute: 30.0 };
        assert_eq!(p.policy_header(), "\"burst\";q=30;w=60");
        let (_, v) = p.take(p.full(0), 0);
        assert_eq!(ratelimit_header(&v), "\"burst\";r=29;t=2");
    }
}
