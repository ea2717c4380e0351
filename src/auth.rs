//! JWT verification (contract §5): HS256 with `JWT_SECRET`, `exp` required, `nbf`
//! honoured, 60 s leeway, `iss`/`aud` when configured, `sub` is the user. Pure: the
//! caller passes the clock, so tests can move it.

use chrono::{DateTime, Duration, Utc};
use jwt_compact::{alg::Hs256, alg::Hs256Key, prelude::*, ValidationError};
use serde::Deserialize;
use serde_json::Value;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;
/// Longer tokens are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
pub const MAX_SUB_LEN: usize = 128;

/// Verification settings, built once from configuration.
pub struct Verifier {
    hs256: Option<Hs256Key>,
    issuer: Option<String>,
    audience: Option<String>,
}

#[derive(Deserialize)]
struct Registered {
    sub: Option<Value>,
    iss: Option<Value>,
    aud: Option<Value>,
}

/// Why a token was refused; the text is safe to show the client.
#[derive(Debug, PartialEq)]
pub struct AuthError(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, AuthError> {
    Err(AuthError(why.into()))
}

impl Verifier {
    pub fn new(secret: Option<&str>, issuer: Option<&str>, audience: Option<&str>) -> Self {
        let nonempty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_string);
        Verifier {
            hs256: nonempty(secret).map(|s| Hs256Key::new(s.as_bytes())),
            issuer: nonempty(issuer),
            audience: nonempty(audience),
        }
    }

    /// Verifies `token` at time `now_ms`; returns the user id (`sub`).
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<String, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return refuse("token too long");
        }
        let untrusted = match UntrustedToken::new(token) {
            Ok(t) => t,
            Err(_) => return refuse("malformed token"),
        };
        // Only algorithms with a configured key are accepted: `none`, and HS256 without a
        // secret, never verify.
        let claims = match (untrusted.algorithm(), &self.hs256) {
            ("HS256", Some(key)) => Hs256.validator::<Registered>(key).validate(&untrusted),
            (alg, _) => return refuse(format!("algorithm {alg} is not accepted")),
        };
        let token = claims.map_err(|e| AuthError(describe(&e)))?;
        let claims = token.claims();

        let now = DateTime::<Utc>::from_timestamp_millis(now_ms).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let time = TimeOptions::new(Duration::seconds(LEEWAY_SECS), move || now);
        claims.validate_expiration(&time).map_err(|e| AuthError(describe(&e)))?;
        if claims.not_before.is_some() {
            claims.validate_maturity(&time).map_err(|e| AuthError(describe(&e)))?;
        }

        let r = &claims.custom;
        if let Some(want) = &self.issuer {
            if r.iss.as_ref().and_then(Value::as_str) != Some(want.as_str()) {
                return refuse("wrong issuer");
            }
        }
        if let Some(want) = &self.audience {
            let ok = match &r.aud {
                Some(Value::String(a)) => a == want,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(want.as_str())),
                _ => false,
            };
            if !ok {
                return refuse("wrong audience");
            }
        }
        match r.sub.as_ref().and_then(Value::as_str) {
            Some(sub) if !sub.is_empty() && sub.chars().count() <= MAX_SUB_LEN => Ok(sub.to_string()),
            Some(_) => refuse(format!("sub must be 1-{MAX_SUB_LEN} characters")),
            None => refuse("sub claim required"),
        }
    }
}

fn describe(e: &ValidationError) -> String {
    match e {
        ValidationError::Expired => "token expired".into(),
        ValidationError::NotMature => "token not yet valid".into(),
        ValidationError::NoClaim(c) => format!("missing claim: {c}"),
        ValidationError::InvalidSignature | ValidationError::InvalidSignatureLen { .. } => {
            "invalid signature".into()
        }
        ValidationError::AlgorithmMismatch { .. } => "algorithm mismatch".into(),
        _ => "invalid token".into(),
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_compact::{Claims, Header};

    const SECRET: &str = "test-secret";
    const NOW: i64 = 1_800_000_000_000;

    fn sign(claims: Value, secret: &str) -> String {
        let key = Hs256Key::new(secret.as_bytes());
        let mut c = Claims::new(claims);
        c.expiration = None;
        Hs256.token(&Header::empty(), &c, &key).unwrap()
    }

    fn exp(offset_s: i64) -> i64 {
        NOW / 1000 + offset_s
    }

    fn v() -> Verifier {
        Verifier::new(Some(SECRET), None, None)
    }

    #[test]
    fn accepts_valid_hs256() {
        let t = sign(serde_json::json!({"sub": "alice", "exp": exp(600)}), SECRET);
        assert_eq!(v().verify(&t, NOW), Ok("alice".into()));
    }

    #[test]
    fn expiry_with_leeway() {
        let t = sign(serde_json::json!({"sub": "a", "exp": exp(-30)}), SECRET);
        assert!(v().verify(&t, NOW).is_ok(), "within 60 s leeway");
        let t = sign(serde_json::json!({"sub": "a", "exp": exp(-61)}), SECRET);
        assert_eq!(v().verify(&t, NOW), Err(AuthError("token expired".into())));
        let t = sign(serde_json::json!({"sub": "a"}), SECRET);
        assert!(v().verify(&t, NOW).is_err(), "exp is required");
    }

    #[test]
    fn not_before() {
        let t = sign(serde_json::json!({"sub": "a", "exp": exp(600), "nbf": exp(120)}), SECRET);
        assert_eq!(v().verify(&t, NOW), Err(AuthError("token not yet valid".into())));
        let t = sign(serde_json::json!({"sub": "a", "exp": exp(600), "nbf": exp(30)}), SECRET);
        assert!(v().verify(&t, NOW).is_ok());
    }

    #[test]
    fn forged_none_and_garbage() {
        let t = sign(serde_json::json!({"sub": "a", "exp": exp(600)}), "other");
        assert_eq!(v().verify(&t, NOW), Err(AuthError("invalid signature".into())));
        // alg:none with an empty signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert!(v().verify(none, NOW).is_err());
        assert!(v().verify("garbage", NOW).is_err());
        assert!(v().verify(&"a".repeat(MAX_TOKEN_LEN + 1), NOW).is_err());
        let t = sign(serde_json::json!({"sub": "a", "exp": exp(600)}), SECRET);
        assert!(Verifier::new(None, None, None).verify(&t, NOW).is_err(), "no secret, no HS256");
    }

    #[test]
    fn sub_issuer_audience() {
        let t = sign(serde_json::json!({"exp": exp(600)}), SECRET);
        assert!(v().verify(&t, NOW).is_err());
        let t = sign(serde_json::json!({"sub": "x".repeat(129), "exp": exp(600)}), SECRET);
        assert!(v().verify(&t, NOW).is_err());
        let strict = Verifier::new(Some(SECRET), Some("https://issuer"), Some("edgesync"));
        let good = sign(serde_json::json!({"sub": "a", "exp": exp(600), "iss": "https://issuer", "aud": ["x", "edgesync"]}), SECRET);
        assert!(strict.verify(&good, NOW).is_ok());
        let bad_iss = sign(serde_json::json!({"sub": "a", "exp": exp(600), "iss": "evil", "aud": "edgesync"}), SECRET);
        assert_eq!(strict.verify(&bad_iss, NOW), Err(AuthError("wrong issuer".into())));
        let bad_aud = sign(serde_json::json!({"sub": "a", "exp": exp(600), "iss": "https://issuer", "aud": "other"}), SECRET);
        assert_eq!(strict.verify(&bad_aud, NOW), Err(AuthError("wrong audience".into())));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer ")), None);
        assert_eq!(bearer(None), None);
    }
}
