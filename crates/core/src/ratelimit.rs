//! Token bucket per user (contract §5): `burst` tokens, refilled continuously at
//! `per_minute`. Exact within an isolate, where buckets live in memory; a bucket is
//! persisted to KV only while its user is being throttled (below half the burst), at most
//! once per second, so a user within limits costs no KV write. Pure arithmetic here.

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
    fn headers() {
        let p = Policy { burst: 30.0, per_minute: 30.0 };
        assert_eq!(p.policy_header(), "\"burst\";q=30;w=60");
        let (_, v) = p.take(p.full(0), 0);
        assert_eq!(ratelimit_header(&v), "\"burst\";r=29;t=2");
    }
}
