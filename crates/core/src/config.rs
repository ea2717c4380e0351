//! Configuration from `[vars]` and secrets (contract §9), parsed once per request from a
//! lookup function so this module stays free of the `worker` crate and testable.
//! A malformed value falls back to its default rather than failing requests.

use crate::accounting::Policy as UsagePolicy;
use crate::quota::Quotas;
use crate::ratelimit::Policy;

/// `MAX_CHANGES` when unset: the largest push measured within the Free plan's 10 ms of CPU
/// per request (BENCHMARKS.md section 4: 100 edits or deletes into a user of 5,000 records
/// take 8.5-9.5 ms of wasm CPU, 200 about 10-11, 1,000 over 20). The client's batch is the
/// same 100.
/// A deployment on the Paid plan (30 s of CPU) can raise it, to 1,000 say.
pub const DEFAULT_MAX_CHANGES: usize = 100;

#[derive(Debug, Clone)]
pub struct Config {
    pub jwt_secret: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    /// JSON Web Key Set of RS256 / ES256 public keys.
    pub jwt_jwks: Option<String>,
    /// Allowed browser origins; `None` means any (`*`).
    pub cors_origins: Option<Vec<String>>,
    pub admin_token: Option<String>,
    pub max_body_bytes: usize,
    /// `MAX_CHANGES` (changes per push) and `MAX_UPLOAD_RECORDS` (records per full upload).
    pub limits: crate::parse::Limits,
    pub rate: Policy,
    /// Seconds a state token lives in KV (KV's minimum expiration is 60).
    pub state_cache_ttl: u64,
    pub quotas: Quotas,
    pub tombstone_retention_days: u64,
    /// When usage counts are flushed to D1 (`crate::accounting`): `USAGE_FLUSH_REQUESTS`
    /// (at most this many requests held), `USAGE_FLUSH_SECS` (held at most about this
    /// long; 0: no time limit), `USAGE_ACCURACY` (the share of each limit the totals are
    /// known within past 80 % of it).
    pub usage: UsagePolicy,
    /// Share of successful requests (status < 400) that get a log line; errors always do.
    /// A log line costs the isolate real CPU (`console.log`), so busy deployments lower it.
    pub log_sample_rate: f64,
    /// `DEV_MODE = "1"`: development-only behaviour is on (the clock offset below, the dev
    /// sign-in route). Never set in `wrangler.toml`, so a deployment cannot have it by accident.
    pub dev_mode: bool,
    /// `SHARD_MAP`: which D1 binding holds each bucket of users (`crate::shards`). A
    /// malformed map is kept as its error: user requests then fail (500) rather than
    /// look for users in the wrong database.
    pub shard_map: Result<crate::shards::ShardMap, String>,
    /// Test-only (`DEV_MODE` only): shifts the worker's clock, e.g. to simulate the next UTC day.
    pub clock_offset_ms: i64,
}

/// A number from the environment as `str::parse::<f64>` reads it ("0.9", "30", "1e3",
/// ".5", "5.", "+2", "007"), but through serde_json's number parser, which the wasm
/// carries anyway: `str::parse::<f64>` brings core's own float parser and its tables,
/// 13 KB of the gzipped wasm (296,827 -> 283,754 B) for five settings. The forms JSON
/// writes differently (a leading `+` or zeros, a bare point) are written as JSON first;
/// `inf` and `NaN`, which the callers refuse anyway, are not numbers here.
fn decimal(s: &str) -> Option<f64> {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", s.strip_prefix('+').unwrap_or(s)),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if int.len() + frac.len() == 0 || !digits(int) || !digits(frac) {
        return None;
    }
    let int = match int.trim_start_matches('0') {
        "" => "0",
        int => int,
    };
    let json = match frac {
        "" => format!("{sign}{int}{exponent}"),
        frac => format!("{sign}{int}.{frac}{exponent}"),
    };
    serde_json::from_str(&json).ok()
}

impl Config {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let text = |k: &str| get(k).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let num = |k: &str, default: u64| text(k).and_then(|s| s.parse().ok()).unwrap_or(default);
        // A count limit: at least 1 (0 would refuse every push, and the client drops a
        // single change refused as too large), and not truncated where usize is 32 bits.
        let limit = |k: &str, default: usize| usize::try_from(num(k, default as u64)).unwrap_or(usize::MAX).max(1);
        let float = |k: &str, default: f64| {
            text(k).and_then(|s| decimal(&s)).filter(|f| f.is_finite() && *f >= 0.0).unwrap_or(default)
        };
        let d = Quotas::default();
        Config {
            jwt_secret: get("JWT_SECRET").filter(|s| !s.is_empty()),
            jwt_issuer: text("JWT_ISSUER"),
            jwt_audience: text("JWT_AUDIENCE"),
            jwt_jwks: text("JWT_JWKS"),
            cors_origins: match text("CORS_ORIGINS").as_deref() {
                None | Some("*") => None,
                Some(list) => Some(
                    list.split(',')
                        .map(|o| o.trim().trim_end_matches('/').to_string())
                        .filter(|o| !o.is_empty())
                        .collect(),
                ),
            },
            admin_token: get("ADMIN_TOKEN").filter(|s| !s.is_empty()),
            max_body_bytes: num("MAX_BODY_BYTES", 1_048_576) as usize,
            limits: crate::parse::Limits {
                max_changes: limit("MAX_CHANGES", DEFAULT_MAX_CHANGES),
                max_upload_records: limit("MAX_UPLOAD_RECORDS", 1_000),
            },
            rate: Policy {
                burst: float("RATE_LIMIT_BURST", 30.0).max(1.0),
                per_minute: float("RATE_LIMIT_PER_MINUTE", 30.0),
            },
            state_cache_ttl: num("STATE_CACHE_TTL", 300).max(60),
            quotas: Quotas {
                requests: num("QUOTA_REQUESTS", d.requests),
                rows_read: num("QUOTA_D1_ROWS_READ", d.rows_read),
                rows_written: num("QUOTA_D1_ROWS_WRITTEN", d.rows_written),
                kv_reads: num("QUOTA_KV_READS", d.kv_reads),
                kv_writes: num("QUOTA_KV_WRITES", d.kv_writes),
                degrade_at: float("DEGRADE_AT", d.degrade_at),
            },
            tombstone_retention_days: num("TOMBSTONE_RETENTION_DAYS", 30),
            usage: {
                let d = UsagePolicy::default();
                UsagePolicy {
                    max_pending_requests: num("USAGE_FLUSH_REQUESTS", d.max_pending_requests).max(1),
                    max_age_ms: i64::try_from(num("USAGE_FLUSH_SECS", d.max_age_ms as u64 / 1_000))
                        .unwrap_or(i64::MAX / 1_000)
                        .min(i64::MAX / 1_000)
                        * 1_000,
                    accuracy: float("USAGE_ACCURACY", d.accuracy).clamp(0.000_1, 1.0),
                    ..d
                }
            },
            log_sample_rate: float("LOG_SAMPLE_RATE", 1.0).min(1.0),
            dev_mode: text("DEV_MODE").as_deref() == Some("1"),
            shard_map: crate::shards::ShardMap::parse(text("SHARD_MAP").as_deref()),
            // A stray offset must not shift revs and quota days in production.
            clock_offset_ms: match text("DEV_MODE").as_deref() {
                Some("1") => text("DEV_CLOCK_OFFSET_MS").and_then(|s| s.parse::<i64>().ok()).unwrap_or(0),
                _ => 0,
            }
            .clamp(-crate::quota::DAY_MS * 36_500, crate::quota::DAY_MS * 36_500),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_lookup(|_| None);
        assert_eq!((c.max_body_bytes, c.limits.max_changes, c.limits.max_upload_records), (1_048_576, 100, 1_000));
        assert!(c.jwt_secret.is_none() && c.admin_token.is_none());
        assert_eq!(c.rate, Policy { burst: 30.0, per_minute: 30.0 });
        assert_eq!(c.quotas, Quotas::default());
        assert_eq!((c.state_cache_ttl, c.tombstone_retention_days, c.clock_offset_ms), (300, 30, 0));
        assert_eq!(c.usage, UsagePolicy::default());
        let u = Config::from_lookup(|k| match k {
            "USAGE_FLUSH_REQUESTS" => Some("0".into()),
            "USAGE_FLUSH_SECS" => Some("60".into()),
            "USAGE_ACCURACY" => Some("0.02".into()),
            _ => None,
        })
        .usage;
        assert_eq!((u.max_pending_requests, u.max_age_ms, u.accuracy), (1, 60_000, 0.02));
        let c = Config::from_lookup(|k| match k {
            "MAX_CHANGES" => Some("10".into()),
            "MAX_UPLOAD_RECORDS" => Some("-3".into()),
            "MAX_BODY_BYTES" => Some("oops".into()),
            "JWT_ISSUER" => Some("".into()),
            "STATE_CACHE_TTL" => Some("5".into()),
            "DEGRADE_AT" => Some("-1".into()),
            "QUOTA_REQUESTS" => Some("20".into()),
            "CORS_ORIGINS" => Some("https://a.example, https://b.example/".into()),
            _ => None,
        });
        assert_eq!((c.max_body_bytes, c.limits.max_changes, c.limits.max_upload_records), (1_048_576, 10, 1_000));
        let zero = Config::from_lookup(|k| matches!(k, "MAX_CHANGES" | "MAX_UPLOAD_RECORDS").then(|| "0".into()));
        assert_eq!((zero.limits.max_changes, zero.limits.max_upload_records), (1, 1), "a limit is at least 1");
        assert!(c.jwt_issuer.is_none());
        assert_eq!(c.state_cache_ttl, 60, "KV's minimum TTL");
        assert_eq!(c.quotas.degrade_at, 0.9);
        assert_eq!(c.quotas.requests, 20);
        assert_eq!(c.cors_origins, Some(vec!["https://a.example".to_string(), "https://b.example".to_string()]));
        assert!(Config::from_lookup(|k| (k == "CORS_ORIGINS").then(|| "*".to_string())).cors_origins.is_none());
    }

    /// `decimal` reads what `str::parse::<f64>` read before it (the oracle), for the
    /// finite numbers the settings take, and refuses what it refused.
    #[test]
    fn decimal_reads_what_str_parse_read() {
        let cases = [
            "0.9",
            "30",
            "1",
            "0",
            "-1",
            "-0",
            "+2",
            "007",
            "00.5",
            ".5",
            "5.",
            "-.5",
            "+.5",
            "1e3",
            "1E3",
            "1e+3",
            "1e-3",
            "2.5e-2",
            ".5e1",
            "5.e1",
            "0.000001",
            "1.7976931348623157e308",
            "4.9e-324",
            "123456789012345678901234567890",
            "0.1000000000000000055511151231257827",
            "1e400",
            "",
            ".",
            "-",
            "+",
            "e5",
            ".e5",
            "1e",
            "1e+",
            "1.2.3",
            "1,5",
            "0x10",
            "1e5x",
            "1e1.5",
            "1e05",
            "--1",
            "+-1",
            " 1",
            "1 ",
            "1_000",
            "½",
            "١",
        ];
        for s in cases {
            let old = s.parse::<f64>().ok().filter(|f| f.is_finite());
            let new = decimal(s).filter(|f| f.is_finite());
            assert_eq!(new.map(f64::to_bits), old.map(f64::to_bits), "{s:?}: {new:?} vs {old:?}");
        }
        for s in ["inf", "-inf", "infinity", "NaN", "nan"] {
            assert!(s.parse::<f64>().is_ok_and(|f| !f.is_finite()), "{s}");
            assert_eq!(decimal(s), None, "{s}: not a number here, refused by the callers before too");
        }
    }

    proptest::proptest! {
        /// The same over strings of the characters numbers are made of.
        #[test]
        fn decimal_agrees_with_str_parse(s in "[-+]?[0-9]{0,3}[.]?[0-9]{0,3}([eE][-+]?[0-9]{0,3})?|[-+0-9.eE]{0,8}") {
            let old = s.parse::<f64>().ok().filter(|f| f.is_finite());
            let new = decimal(&s).filter(|f| f.is_finite());
            proptest::prop_assert_eq!(new.map(f64::to_bits), old.map(f64::to_bits), "{:?}", s);
        }
    }

    #[test]
    fn clock_offset_only_in_dev_mode() {
        let offset = |dev: &str| {
            let dev = dev.to_string();
            Config::from_lookup(move |k| match k {
                "DEV_CLOCK_OFFSET_MS" => Some("86400000".into()),
                "DEV_MODE" => Some(dev.clone()),
                _ => None,
            })
            .clock_offset_ms
        };
        assert_eq!(offset("1"), 86_400_000);
        assert_eq!(offset(""), 0, "a stray offset is ignored outside DEV_MODE");
        assert_eq!(offset("true"), 0);
        assert!(!Config::from_lookup(|_| None).dev_mode);
    }

    #[test]
    fn shard_map_default_and_errors() {
        assert_eq!(Config::from_lookup(|_| None).shard_map, Ok(crate::shards::ShardMap::default()));
        let c = Config::from_lookup(|k| (k == "SHARD_MAP").then(|| "DB,DB_1".to_string()));
        assert_eq!(c.shard_map.map(|m| m.bindings().len()), Ok(2));
        assert!(Config::from_lookup(|k| (k == "SHARD_MAP").then(|| "DB:0-3".to_string())).shard_map.is_err());
    }
}
