//! JWT verification (contract §5): HS256 with `JWT_SECRET`, RS256 / ES256 with the public
//! keys of a JWKS (`JWT_JWKS`, chosen by `kid`), `exp` required, `nbf` honoured, 60 s
//! leeway, `iss`/`aud` when configured, `sub` is the user. Each key verifies exactly one
//! algorithm, so a token cannot pick how it is checked (no `none`, no HMAC keyed with a
//! public key). Pure: the caller passes the clock, so tests can move it.

use chrono::{DateTime, Duration, Utc};
#[cfg(feature = "native-crypto")]
use jwt_compact::alg::{Es256, Rsa, RsaPublicKey};
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{prelude::*, ValidationError};
use serde::Deserialize;
use serde_json::Value;

use crate::envelope::UserId;

/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: i64 = 60;
/// Longer tokens are refused before any parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
pub const MAX_SUB_LEN: usize = UserId::MAX_LEN;
/// Time claims (`exp`, `nbf`, `iat`, in seconds) must lie between the epoch and the end of
/// year 9999. The JWT library adds the leeway to them with `chrono` arithmetic that panics
/// near the end of its range, and a panic would fail the request; no real token is dated
/// outside this range.
pub const MAX_TIME_CLAIM_SECS: i64 = 253_402_300_799;

/// The asymmetric algorithms, each verified by keys of one type only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, an RSA key.
    Rs256,
    /// ECDSA over P-256 with SHA-256, an EC key.
    Es256,
}

impl Alg {
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// A public key of the JWKS: its id, the one algorithm it verifies, and the JWK as JSON
/// (the worker imports it into Web Crypto). Natively (`native-crypto`) also the key
/// parsed in Rust, for the unit tests and benchmarks.
pub struct PublicKey {
    pub kid: Option<String>,
    pub alg: Alg,
    pub jwk: String,
    #[cfg(feature = "native-crypto")]
    native: NativeKey,
}

#[cfg(feature = "native-crypto")]
enum NativeKey {
    Rs256(RsaPublicKey),
    Es256(p256::ecdsa::VerifyingKey),
}

/// Verification settings, built once from configuration.
pub struct Verifier {
    hs256: Option<Hs256Key>,
    keys: Vec<PublicKey>,
    issuer: Option<String>,
    audience: Option<String>,
    /// Keys of the JWKS that were skipped, and why (for the log).
    pub warnings: Vec<String>,
}

#[derive(Deserialize)]
struct Registered {
    sub: Option<Claim>,
    iss: Option<Claim>,
    aud: Option<Claim>,
}

/// A registered claim as far as the checks read it: a string, or the strings of an array
/// (`aud`). Any other JSON value is accepted, as it was when these claims were read as
/// `serde_json::Value`s, and is neither; so is an object in the form of serde_json's
/// private raw-value marker, which a `Value` read as the JSON text it wraps. Read without building a `Value` (jwt-compact's
/// `Claims` flattens the custom claims, so they come out of serde's buffered content, and
/// a `Value` built from that is a large function of its own): 306,248 -> 304,617 B gzip.
#[derive(Debug, PartialEq)]
enum Claim {
    Text(String),
    Texts(Vec<String>),
    Other,
}

impl Claim {
    fn text(&self) -> Option<&str> {
        match self {
            Claim::Text(t) => Some(t),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Claim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Claim, D::Error> {
        d.deserialize_any(ClaimVisitor)
    }
}

/// Takes every JSON value, as `Value`'s visitor does (so a claim of any type still never
/// fails the parse); keeps only the strings.
struct ClaimVisitor;

impl<'de> serde::de::Visitor<'de> for ClaimVisitor {
    type Value = Claim;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Claim, E> {
        Ok(Claim::Other)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Claim, E> {
        Ok(Claim::Other)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Claim, E> {
        Ok(Claim::Other)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Claim, E> {
        Ok(Claim::Other)
    }

    fn visit_str<E>(self, s: &str) -> Result<Claim, E> {
        Ok(Claim::Text(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Claim, E> {
        Ok(Claim::Text(s))
    }

    fn visit_unit<E>(self) -> Result<Claim, E> {
        Ok(Claim::Other)
    }

    fn visit_none<E>(self) -> Result<Claim, E> {
        Ok(Claim::Other)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Claim, D::Error> {
        Claim::deserialize(d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Claim, A::Error> {
        let mut texts = Vec::new();
        while let Some(item) = seq.next_element::<Claim>()? {
            if let Claim::Text(t) = item {
                texts.push(t);
            }
        }
        Ok(Claim::Texts(texts))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Claim, A::Error> {
        use serde::de::IgnoredAny;
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Claim::Other)
    }
}

/// Why a token was refused; the text is safe to show the client.
#[derive(Debug, PartialEq)]
pub struct AuthError(pub String);

fn refuse<T>(why: impl Into<String>) -> Result<T, AuthError> {
    Err(AuthError(why.into()))
}

/// Parses one JWK into a key and its algorithm. RSA keys verify RS256, P-256 keys ES256;
/// a JWK whose `alg` names anything else, or whose `use` is not `sig`, is skipped.
fn parse_jwk(v: &Value) -> Result<PublicKey, String> {
    let kid = v.get("kid").and_then(Value::as_str).map(str::to_string);
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    if text("use").is_some_and(|u| u != "sig") {
        return Err(format!("key {kid:?}: use is not sig"));
    }
    let b64 = |k: &str| {
        text(k).is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    };
    let alg = match (text("kty"), text("alg")) {
        (Some("RSA"), None | Some("RS256")) if b64("n") && b64("e") => Alg::Rs256,
        (Some("EC"), None | Some("ES256")) if text("crv") == Some("P-256") && b64("x") && b64("y") => Alg::Es256,
        (kty, alg) => return Err(format!("key {kid:?}: unsupported or incomplete key (kty {kty:?}, alg {alg:?})")),
    };
    #[cfg(feature = "native-crypto")]
    let native = {
        let jwk: jwt_compact::jwk::JsonWebKey<'_> =
            serde_json::from_value(v.clone()).map_err(|e| format!("key {kid:?}: {e}"))?;
        match alg {
            Alg::Rs256 => NativeKey::Rs256(RsaPublicKey::try_from(&jwk).map_err(|e| format!("key {kid:?}: {e}"))?),
            Alg::Es256 => {
                NativeKey::Es256(p256::ecdsa::VerifyingKey::try_from(&jwk).map_err(|e| format!("key {kid:?}: {e}"))?)
            }
        }
    };
    Ok(PublicKey {
        kid,
        alg,
        jwk: crate::reply::json_text(v),
        #[cfg(feature = "native-crypto")]
        native,
    })
}

/// A token whose signature is still to be checked by one of `keys` (indices into
/// [`Verifier::keys`]): the worker checks it with Web Crypto, then calls
/// [`Verifier::finish`].
pub struct Pending {
    pub alg: Alg,
    pub keys: Vec<usize>,
    /// The signing input: `header.payload` as sent.
    pub signed: String,
    pub signature: Vec<u8>,
    claims: Result<Claims<Registered>, ValidationError>,
}

/// The first step of verifying a token: finished (HS256, or refused), or a signature to check.
pub enum Step {
    Done(Result<Verified, AuthError>),
    Signature(Pending),
}

impl Verifier {
    pub fn new(secret: Option<&str>, issuer: Option<&str>, audience: Option<&str>) -> Self {
        Self::with_jwks(secret, None, issuer, audience)
    }

    /// `jwks` is a JSON Web Key Set (`{"keys": [...]}`) of RS256 / ES256 public keys.
    pub fn with_jwks(secret: Option<&str>, jwks: Option<&str>, issuer: Option<&str>, audience: Option<&str>) -> Self {
        let nonempty = |s: Option<&str>| s.filter(|s| !s.trim().is_empty()).map(str::to_string);
        let mut keys = Vec::new();
        let mut warnings = Vec::new();
        if let Some(text) = nonempty(jwks) {
            match serde_json::from_str::<Value>(&text) {
                Ok(set) => match set.get("keys").and_then(Value::as_array) {
                    Some(list) => {
                        for v in list {
                            match parse_jwk(v) {
                                Ok(k) => keys.push(k),
                                Err(e) => warnings.push(e),
                            }
                        }
                    }
                    None => warnings.push("JWT_JWKS has no keys array".into()),
                },
                Err(e) => warnings.push(format!("JWT_JWKS is not JSON: {e}")),
            }
        }
        Verifier {
            hs256: nonempty(secret).map(|s| Hs256Key::new(s.as_bytes())),
            keys,
            issuer: nonempty(issuer),
            audience: nonempty(audience),
            warnings,
        }
    }

    /// The JWKS keys, in configuration order ([`Pending::keys`] indexes them).
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// Parses `token`, checks an HS256 signature, or picks the keys an RS256 / ES256
    /// signature may be checked with: the key the header's `kid` names, or, without a
    /// `kid`, every key of the algorithm. Only algorithms with a configured key are
    /// accepted: `none`, and HS256 without a secret, never verify.
    pub fn begin(&self, token: &str, now_ms: i64) -> Step {
        if token.len() > MAX_TOKEN_LEN {
            return Step::Done(refuse("token too long"));
        }
        let Ok(untrusted) = UntrustedToken::new(token) else { return Step::Done(refuse("malformed token")) };
        let alg = untrusted.algorithm();
        if alg == "HS256" {
            let Some(key) = &self.hs256 else { return Step::Done(refuse("algorithm HS256 is not accepted")) };
            return Step::Done(match Hs256.validator::<Registered>(key).validate(&untrusted) {
                Ok(t) => self.check_claims(t.claims(), now_ms),
                Err(e) => Err(AuthError(describe(&e))),
            });
        }
        let Some(alg) = [Alg::Rs256, Alg::Es256].into_iter().find(|a| a.name() == alg) else {
            return Step::Done(refuse(format!("algorithm {alg} is not accepted")));
        };
        let kid = untrusted.header().key_id.as_deref();
        let keys: Vec<usize> = (0..self.keys.len())
            .filter(|i| self.keys[*i].alg == alg && (kid.is_none() || self.keys[*i].kid.as_deref() == kid))
            .collect();
        if keys.is_empty() {
            return Step::Done(match (kid, self.keys.iter().any(|k| k.alg == alg)) {
                (Some(_), true) => refuse("unknown key id"),
                _ => refuse(format!("algorithm {} is not accepted", alg.name())),
            });
        }
        let signed = token.rsplit_once('.').map_or("", |(s, _)| s).to_string();
        Step::Signature(Pending {
            alg,
            keys,
            signed,
            signature: untrusted.signature_bytes().to_vec(),
            claims: untrusted.deserialize_claims_unchecked::<Registered>(),
        })
    }

    /// The second step: `verified_by` is the key whose signature check passed, if any.
    pub fn finish(&self, pending: Pending, verified_by: Option<usize>, now_ms: i64) -> Result<Verified, AuthError> {
        if verified_by.is_none_or(|i| !pending.keys.contains(&i)) {
            return refuse("invalid signature");
        }
        match &pending.claims {
            Ok(claims) => self.check_claims(claims, now_ms),
            Err(e) => Err(AuthError(describe(e))),
        }
    }

    /// Verifies `token` at time `now_ms` with signatures checked in Rust; returns the user
    /// id (`sub`). The worker checks RS256 / ES256 with Web Crypto instead (`begin`,
    /// `finish`).
    #[cfg(feature = "native-crypto")]
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<UserId, AuthError> {
        self.verify_token(token, now_ms).map(|v| v.user)
    }

    /// [`verify`](Self::verify), also returning the token's validity window, so that a
    /// [`TokenCache`] can answer the same token again without checking its signature.
    #[cfg(feature = "native-crypto")]
    pub fn verify_token(&self, token: &str, now_ms: i64) -> Result<Verified, AuthError> {
        match self.begin(token, now_ms) {
            Step::Done(r) => r,
            Step::Signature(p) => {
                let ok = p.keys.iter().copied().find(|i| self.keys[*i].native_check(&p.signed, &p.signature));
                self.finish(p, ok, now_ms)
            }
        }
    }

    /// Time, issuer, audience and subject of a token whose signature verified.
    fn check_claims(&self, claims: &Claims<Registered>, now_ms: i64) -> Result<Verified, AuthError> {
        let sane = |t: Option<DateTime<Utc>>| t.is_none_or(|t| (0..=MAX_TIME_CLAIM_SECS).contains(&t.timestamp()));
        if !(sane(claims.expiration) && sane(claims.not_before) && sane(claims.issued_at)) {
            return refuse("time claims (exp, nbf, iat) must be between 1970 and 9999");
        }

        let now = DateTime::<Utc>::from_timestamp_millis(now_ms).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let time = TimeOptions::new(Duration::seconds(LEEWAY_SECS), move || now);
        claims.validate_expiration(&time).map_err(|e| AuthError(describe(&e)))?;
        if claims.not_before.is_some() {
            claims.validate_maturity(&time).map_err(|e| AuthError(describe(&e)))?;
        }

        let r = &claims.custom;
        if let Some(want) = &self.issuer {
            if r.iss.as_ref().and_then(Claim::text) != Some(want.as_str()) {
                return refuse("wrong issuer");
            }
        }
        if let Some(want) = &self.audience {
            let ok = match &r.aud {
                Some(Claim::Text(a)) => a == want,
                Some(Claim::Texts(list)) => list.contains(want),
                _ => false,
            };
            if !ok {
                return refuse("wrong audience");
            }
        }
        let user = match r.sub.as_ref().and_then(Claim::text) {
            Some(sub) => {
                UserId::parse(sub).ok_or_else(|| AuthError(format!("sub must be 1-{MAX_SUB_LEN} characters")))?
            }
            None => return refuse("sub claim required"),
        };
        // In range (checked above), so the products cannot overflow.
        let ms = |t: DateTime<Utc>| t.timestamp() * 1000;
        Ok(Verified { user, exp_ms: claims.expiration.map_or(i64::MIN, ms), nbf_ms: claims.not_before.map(ms) })
    }
}

#[cfg(feature = "native-crypto")]
impl PublicKey {
    /// The signature check in Rust (tests, benchmarks); the worker's is Web Crypto's.
    fn native_check(&self, signed: &str, signature: &[u8]) -> bool {
        use jwt_compact::{Algorithm, AlgorithmSignature};
        match &self.native {
            NativeKey::Rs256(k) => {
                let rsa = Rsa::rs256();
                rsa.verify_signature(
                    &match <Rsa as Algorithm>::Signature::try_from_slice(signature) {
                        Ok(s) => s,
                        Err(_) => return false,
                    },
                    k,
                    signed.as_bytes(),
                )
            }
            NativeKey::Es256(k) => match <Es256 as Algorithm>::Signature::try_from_slice(signature) {
                Ok(s) => Es256.verify_signature(&s, k, signed.as_bytes()),
                Err(_) => false,
            },
        }
    }
}

/// A token that verified: its user and the window in which it stays valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub user: UserId,
    pub exp_ms: i64,
    pub nbf_ms: Option<i64>,
}

impl Verified {
    /// Whether the token is still (or already) valid at `now_ms`, with the same leeway as
    /// a full verification.
    pub fn valid_at(&self, now_ms: i64) -> bool {
        let leeway = LEEWAY_SECS * 1000;
        now_ms <= self.exp_ms.saturating_add(leeway)
            && self.nbf_ms.is_none_or(|nbf| now_ms >= nbf.saturating_sub(leeway))
    }
}

/// Tokens this isolate has verified, until they expire: a client sends the same token
/// on every request, and checking an RS256 or ES256 signature costs about a millisecond
/// of CPU each time. Bounded; when full it starts over (the cost of a miss is one
/// verification). Only tokens that verified are kept, never refusals.
#[derive(Default)]
pub struct TokenCache(crate::hash::HashMap<String, Verified>);

impl TokenCache {
    pub const MAX: usize = 4_096;

    /// The user of `token` if it is cached and still valid at `now_ms`.
    pub fn lookup(&mut self, token: &str, now_ms: i64) -> Option<UserId> {
        let v = self.0.get(token)?;
        if v.valid_at(now_ms) {
            return Some(v.user.clone());
        }
        self.0.remove(token);
        None
    }

    /// Remembers a token that verified; returns its user.
    pub fn remember(&mut self, token: &str, v: Verified) -> UserId {
        let user = v.user.clone();
        if self.0.len() >= Self::MAX {
            self.0.clear();
        }
        self.0.insert(token.to_string(), v);
        user
    }
}

fn describe(e: &ValidationError) -> String {
    match e {
        ValidationError::Expired => "token expired".into(),
        ValidationError::NotMature => "token not yet valid".into(),
        ValidationError::NoClaim(c) => format!("missing claim: {c}"),
        ValidationError::InvalidSignature | ValidationError::InvalidSignatureLen { .. } => "invalid signature".into(),
        ValidationError::AlgorithmMismatch { .. } => "algorithm mismatch".into(),
        _ => "invalid token".into(),
    }
}

/// A development token (`POST /api/dev/login`, only under `DEV_MODE`): HS256 with the
/// deployment's `JWT_SECRET`, `sub` = the user, valid for `ttl_s` from `now_ms`.
pub fn sign_dev_token(secret: &str, user: &UserId, now_ms: i64, ttl_s: i64) -> Result<(String, i64), AuthError> {
    let exp_s = now_ms.div_euclid(1000).saturating_add(ttl_s);
    let claims = serde_json::json!({"sub": user.as_str(), "iat": now_ms.div_euclid(1000), "exp": exp_s});
    let mut c = jwt_compact::Claims::new(claims);
    c.expiration = None;
    let token = Hs256
        .token(&jwt_compact::Header::empty(), &c, &Hs256Key::new(secret.as_bytes()))
        .map_err(|e| AuthError(format!("cannot sign: {e}")))?;
    Ok((token, exp_s.saturating_mul(1000)))
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
        assert_eq!(v().verify(&t, NOW).map(|u| u.as_str().to_string()), Ok("alice".into()));
        let (dev, exp) = sign_dev_token(SECRET, &UserId::parse("bob").unwrap(), NOW, 3600).unwrap();
        assert_eq!(v().verify(&dev, NOW).map(|u| u.as_str().to_string()), Ok("bob".into()));
        assert_eq!(exp, NOW + 3_600_000);
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

    /// Correctly signed tokens whose time claims sit at the edges of every numeric range:
    /// refused, never a panic (the leeway arithmetic of the JWT library overflowed here).
    #[test]
    fn extreme_time_claims_are_refused_without_panic() {
        let edges: Vec<Value> = vec![
            i64::MAX.into(),
            i64::MIN.into(),
            (MAX_TIME_CLAIM_SECS + 1).into(),
            DateTime::<Utc>::MAX_UTC.timestamp().into(),
            DateTime::<Utc>::MIN_UTC.timestamp().into(),
            (DateTime::<Utc>::MIN_UTC.timestamp() + 30).into(),
            (-1).into(),
            9_007_199_254_740_991_i64.into(),
            1e20.into(),
            (-1e20).into(),
            u64::MAX.into(),
        ];
        for edge in &edges {
            for claim in ["exp", "nbf", "iat"] {
                let mut c = serde_json::json!({"sub": "a", "exp": exp(600)});
                c[claim] = edge.clone();
                let t = sign(c, SECRET);
                assert!(v().verify(&t, NOW).is_err(), "{claim} = {edge} must be refused");
            }
        }
        let t = sign(serde_json::json!({"sub": "a", "exp": MAX_TIME_CLAIM_SECS, "iat": 0}), SECRET);
        assert!(v().verify(&t, NOW).is_ok(), "the range's ends are accepted");
    }

    #[test]
    fn token_cache_answers_until_expiry_and_never_caches_refusals() {
        let t = sign(serde_json::json!({"sub": "alice", "exp": exp(600), "nbf": exp(-10)}), SECRET);
        // As the worker's driver uses it: the cache first, else a verification remembered
        // when it succeeds.
        fn through(cache: &mut TokenCache, token: &str, now: i64, calls: &mut u32) -> Result<UserId, AuthError> {
            if let Some(user) = cache.lookup(token, now) {
                return Ok(user);
            }
            *calls += 1;
            v().verify_token(token, now).map(|ok| cache.remember(token, ok))
        }
        let mut cache = TokenCache::default();
        let mut calls = 0;
        {
            let mut check = |now: i64| through(&mut cache, &t, now, &mut calls);
            assert!(check(NOW).is_ok());
            assert!(check(NOW + 1_000).is_ok());
            assert!(check(NOW + 659_000).is_ok(), "within the leeway after exp");
            assert!(check(NOW + 661_000).is_err(), "expired: verified again, and refused");
        }
        assert_eq!(calls, 2, "one verification, then one once the cached window ended");
        let bad = sign(serde_json::json!({"sub": "a", "exp": exp(600)}), "other");
        let mut cache = TokenCache::default();
        assert!(through(&mut cache, &bad, NOW, &mut calls).is_err());
        assert!(cache.0.is_empty(), "refusals are not cached");
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
        let good = sign(
            serde_json::json!({"sub": "a", "exp": exp(600), "iss": "https://issuer", "aud": ["x", "edgesync"]}),
            SECRET,
        );
        assert!(strict.verify(&good, NOW).is_ok());
        let bad_iss = sign(serde_json::json!({"sub": "a", "exp": exp(600), "iss": "evil", "aud": "edgesync"}), SECRET);
        assert_eq!(strict.verify(&bad_iss, NOW), Err(AuthError("wrong issuer".into())));
        let bad_aud =
            sign(serde_json::json!({"sub": "a", "exp": exp(600), "iss": "https://issuer", "aud": "other"}), SECRET);
        assert_eq!(strict.verify(&bad_aud, NOW), Err(AuthError("wrong audience".into())));
    }

    /// `sub`, `iss` and `aud` of every JSON type read as they were as `serde_json::Value`s:
    /// a string counts (for `aud`, also a string in an array); anything else still parses,
    /// and the check refuses it.
    #[test]
    fn claims_of_every_json_type() {
        use serde_json::json;
        let strict = Verifier::new(Some(SECRET), Some("i"), Some("a"));
        let verify = |c: Value| strict.verify(&sign(c, SECRET), NOW).map(|u| u.as_str().to_string());
        let base = || json!({"sub": "u", "iss": "i", "aud": "a", "exp": exp(600)});
        assert_eq!(verify(base()), Ok("u".into()));
        let others = [
            json!(null),
            json!(true),
            json!(5),
            json!(-5),
            json!(1.5),
            json!(1e300),
            json!(u64::MAX),
            json!([]),
            json!(["u", "i", "a"]),
            json!([["a"], {"a": "a"}]),
            json!({"sub": "u", "iss": "i", "aud": "a", "nested": {"x": [1, "a"]}}),
            // serde_json's private marker of a raw value (its `raw_value` feature): an
            // object like any other here. (A `Value` read it as the JSON text it wraps, so a
            // signed `{"sub": {"$serde_json::private::RawValue": "\"u\""}}` was user u.)
            json!({"$serde_json::private::RawValue": "\"u\""}),
            json!({"$serde_json::private::RawValue": "\"i\""}),
            json!({"$serde_json::private::RawValue": "\"a\""}),
            json!({"$serde_json::private::RawValue": "[\"a\"]"}),
            json!([{"$serde_json::private::RawValue": "\"a\""}]),
            json!({"$serde_json::private::RawValue": "not json"}),
        ];
        for other in &others {
            for (claim, why) in [("sub", "sub claim required"), ("iss", "wrong issuer"), ("aud", "wrong audience")] {
                if claim == "aud" && other.as_array().is_some_and(|a| a.contains(&json!("a"))) {
                    continue;
                }
                let mut c = base();
                c[claim] = other.clone();
                assert_eq!(verify(c), Err(AuthError(why.into())), "{claim}: {other}");
            }
        }
        for aud in [json!(["u", "i", "a"]), json!([1, null, {"a": "a"}, ["a"], "a"]), json!(["a", "a"])] {
            let mut c = base();
            c["aud"] = aud.clone();
            assert_eq!(verify(c), Ok("u".into()), "aud: {aud}");
        }
    }

    mod asymmetric {
        use super::*;
        use jwt_compact::alg::{RsaPrivateKey, StrongKey};
        use jwt_compact::jwk::JsonWebKey;

        fn ec_key(seed: u8) -> p256::ecdsa::SigningKey {
            p256::ecdsa::SigningKey::from_bytes(&[seed; 32].into()).unwrap()
        }

        fn jwks_of(keys: Vec<Value>) -> String {
            serde_json::json!({ "keys": keys }).to_string()
        }

        fn ec_jwk(sk: &p256::ecdsa::SigningKey, kid: &str) -> Value {
            let vk = *sk.verifying_key();
            let mut v = serde_json::to_value(JsonWebKey::from(&vk)).unwrap();
            v["kid"] = kid.into();
            v["use"] = "sig".into();
            v
        }

        fn es256(sk: &p256::ecdsa::SigningKey, kid: Option<&str>, claims: Value) -> String {
            let mut header = Header::empty();
            if let Some(k) = kid {
                header = header.with_key_id(k);
            }
            Es256.token(&header, &Claims::new(claims), sk).unwrap()
        }

        fn claims() -> Value {
            serde_json::json!({"sub": "carol", "exp": exp(600)})
        }

        #[test]
        fn es256_by_kid() {
            let (a, b) = (ec_key(1), ec_key(2));
            let v = Verifier::with_jwks(None, Some(&jwks_of(vec![ec_jwk(&a, "a"), ec_jwk(&b, "b")])), None, None);
            assert!(v.warnings.is_empty(), "{:?}", v.warnings);
            assert_eq!(v.verify(&es256(&b, Some("b"), claims()), NOW), Ok(UserId::parse("carol").unwrap()));
            assert_eq!(
                v.verify(&es256(&a, None, claims()), NOW),
                Ok(UserId::parse("carol").unwrap()),
                "no kid: any ES256 key"
            );
            assert!(v.verify(&es256(&a, Some("b"), claims()), NOW).is_err(), "signed by a, names b");
            assert_eq!(v.verify(&es256(&a, Some("zz"), claims()), NOW), Err(AuthError("unknown key id".into())));
            let other = ec_key(3);
            assert!(v.verify(&es256(&other, Some("a"), claims()), NOW).is_err());
            let expired = serde_json::json!({"sub": "carol", "exp": exp(-100)});
            assert!(v.verify(&es256(&a, Some("a"), expired), NOW).is_err());
        }

        #[test]
        fn rs256_and_algorithm_confusion() {
            let mut rng = rand_core::OsRng;
            let (sk, pk) = Rsa::generate(&mut rng, jwt_compact::alg::ModulusBits::TwoKibibytes).unwrap();
            let sk: StrongKey<RsaPrivateKey> = sk;
            let mut jwk = serde_json::to_value(JsonWebKey::from(pk.as_ref())).unwrap();
            jwk["kid"] = "r1".into();
            jwk["alg"] = "RS256".into();
            let jwks = jwks_of(vec![jwk.clone()]);
            let v = Verifier::with_jwks(None, Some(&jwks), None, None);
            let token =
                Rsa::rs256().token(&Header::empty().with_key_id("r1"), &Claims::new(claims()), sk.as_ref()).unwrap();
            assert_eq!(v.verify(&token, NOW), Ok(UserId::parse("carol").unwrap()));
            // HS256 "signed" with the public key as the secret never verifies: no HMAC key
            // is derived from the JWKS.
            let public_as_secret = jwks.clone();
            let forged = sign(claims(), &public_as_secret);
            assert!(v.verify(&forged, NOW).is_err());
            // An RSA key never verifies ES256, and a JWK whose alg is something else is skipped.
            assert!(v.verify(&es256(&ec_key(1), Some("r1"), claims()), NOW).is_err());
            let mut hs_jwk = jwk;
            hs_jwk["alg"] = "HS256".into();
            let v2 = Verifier::with_jwks(None, Some(&jwks_of(vec![hs_jwk])), None, None);
            assert_eq!(v2.warnings.len(), 1);
            assert!(v2.verify(&token, NOW).is_err());
        }

        #[test]
        fn bad_jwks_fails_closed() {
            let v = Verifier::with_jwks(None, Some("not json"), None, None);
            assert_eq!(v.warnings.len(), 1);
            assert!(v.verify(&es256(&ec_key(1), None, claims()), NOW).is_err());
            let v = Verifier::with_jwks(
                None,
                Some(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}"#),
                None,
                None,
            );
            assert_eq!(v.warnings.len(), 1);
        }
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
