//! Configuration from `[vars]` and secrets (contract §9), parsed once per request from a
//! lookup function so this module stays free of the `worker` crate and testable.
//! A malformed value falls back to its default rather than failing requests.

#[derive(Debug, Clone)]
pub struct Config {
    pub jwt_secret: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub max_body_bytes: usize,
    pub max_changes: usize,
}

impl Config {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Self {
        let text = |k: &str| get(k).map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        let num = |k: &str, default: usize| text(k).and_then(|s| s.parse().ok()).unwrap_or(default);
        Config {
            jwt_secret: get("JWT_SECRET").filter(|s| !s.is_empty()),
            jwt_issuer: text("JWT_ISSUER"),
            jwt_audience: text("JWT_AUDIENCE"),
            max_body_bytes: num("MAX_BODY_BYTES", 1_048_576),
            max_changes: num("MAX_CHANGES", 1_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::from_lookup(|_| None);
        assert_eq!((c.max_body_bytes, c.max_changes), (1_048_576, 1_000));
        assert!(c.jwt_secret.is_none());
        let c = Config::from_lookup(|k| match k {
            "MAX_CHANGES" => Some("10".into()),
            "MAX_BODY_BYTES" => Some("oops".into()),
            "JWT_ISSUER" => Some("".into()),
            _ => None,
        });
        assert_eq!((c.max_body_bytes, c.max_changes), (1_048_576, 10));
        assert!(c.jwt_issuer.is_none());
    }
}
