//! CORS for browser clients (contract §5): `CORS_ORIGINS` is an allow-list or `*`.
//! Preflights are answered before auth and rate limiting; every response to an allowed
//! origin exposes the headers a sync client reads. Pure: headers in, headers out.

/// Headers a browser app needs to read from responses.
pub const EXPOSE: &str = "ETag, Retry-After, RateLimit, RateLimit-Policy, Server-Timing, X-Sync-Ops";
pub const ALLOW_METHODS: &str = "GET, HEAD, POST, OPTIONS";
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-None-Match";

/// The `Access-Control-Allow-Origin` value for a request's `Origin`, or None when the
/// origin is not allowed (the browser then refuses the response).
pub fn allow_origin(allowed: Option<&[String]>, origin: Option<&str>) -> Option<String> {
    let origin = origin?;
    match allowed {
        None => Some("*".into()),
        Some(list) => list.iter().any(|o| o == origin).then(|| origin.to_string()),
    }
}

/// Headers for an actual (non-preflight) response.
pub fn response_headers(allowed: Option<&[String]>, origin: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = Vec::new();
    if allowed.is_some() {
        // The answer depends on Origin; shared caches must keep them apart.
        h.push(("Vary", "Origin".to_string()));
    }
    if let Some(o) = allow_origin(allowed, origin) {
        h.push(("Access-Control-Allow-Origin", o));
        h.push(("Access-Control-Expose-Headers", EXPOSE.to_string()));
    }
    h
}

/// Headers for a preflight (`OPTIONS`) response.
pub fn preflight_headers(allowed: Option<&[String]>, origin: Option<&str>) -> Vec<(&'static str, String)> {
    let mut h = response_headers(allowed, origin);
    if allow_origin(allowed, origin).is_some() {
        h.push(("Access-Control-Allow-Methods", ALLOW_METHODS.to_string()));
        h.push(("Access-Control-Allow-Headers", ALLOW_HEADERS.to_string()));
        h.push(("Access-Control-Max-Age", "86400".to_string()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_origin() {
        assert_eq!(allow_origin(None, Some("https://x.example")), Some("*".into()));
        assert_eq!(allow_origin(None, None), None, "no Origin, no CORS headers");
        let h = response_headers(None, Some("https://x.example"));
        assert!(h.contains(&("Access-Control-Expose-Headers", EXPOSE.into())));
        assert!(!h.iter().any(|(k, _)| *k == "Vary"));
    }

    #[test]
    fn allow_list() {
        let list = vec!["https://app.example".to_string()];
        assert_eq!(allow_origin(Some(&list), Some("https://app.example")), Some("https://app.example".into()));
        assert_eq!(allow_origin(Some(&list), Some("https://evil.example")), None);
        let h = preflight_headers(Some(&list), Some("https://evil.example"));
        assert_eq!(h, vec![("Vary", "Origin".to_string())]);
        let h = preflight_headers(Some(&list), Some("https://app.example"));
        assert!(h.iter().any(|(k, v)| *k == "Access-Control-Allow-Headers" && v.contains("If-None-Match")));
    }
}
