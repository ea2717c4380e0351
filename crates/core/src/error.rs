//! Every way a request can fail, as data. [`Reply::problem`](crate::reply::Reply::problem)
//! turns an [`ApiError`] into an RFC 9457 `application/problem+json` response; nothing else
//! builds error responses. Any `std::error::Error` (a D1 or KV failure, a serializer
//! error) converts into [`ApiError::Internal`] with `?`: its text is logged, never sent.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// Body is not JSON.
    InvalidJson(String),
    /// A field of the body or query is unknown, missing, of the wrong type or out of range.
    /// `field` is a JSON path such as `changes[3].title` or `since`.
    InvalidField {
        field: String,
        detail: String,
    },
    UnsupportedMediaType,
    /// A `Content-Encoding` other than `identity` (RFC 9110 §15.5.16); carries the coding.
    UnsupportedEncoding(String),
    PayloadTooLarge(String),
    /// Missing or unacceptable credentials; `token_given` selects the `WWW-Authenticate` form.
    Unauthorized {
        detail: String,
        token_given: bool,
    },
    NotFound,
    MethodNotAllowed {
        allow: &'static str,
    },
    /// A full upload based on a cursor older than the server's latest change of that type.
    SyncConflict {
        server_cursor: i64,
        client_cursor: i64,
    },
    /// A full upload would need a new version of a record already at 2^53 − 1.
    VersionExhausted {
        id: String,
    },
    /// A delta pull from before the tombstone purge horizon.
    ResetRequired {
        horizon: i64,
    },
    /// The user's token bucket is empty.
    RateLimited {
        retry_after: u64,
    },
    /// A daily quota is nearly spent: reads (or, when D1 writes are spent, writes) pause.
    Degraded {
        retry_after: u64,
        writes: bool,
    },
    /// Concurrent pushes of one user kept winning the race; the client retries.
    Busy,
    /// Unexpected failure; the detail is logged, never sent.
    Internal(String),
}

impl ApiError {
    pub fn field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        ApiError::InvalidField { field: field.into(), detail: detail.into() }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidJson(_) | ApiError::InvalidField { .. } => 400,
            ApiError::Unauthorized { .. } => 401,
            ApiError::NotFound => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::SyncConflict { .. } | ApiError::VersionExhausted { .. } => 409,
            ApiError::ResetRequired { .. } => 410,
            ApiError::PayloadTooLarge(_) => 413,
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding(_) => 415,
            ApiError::RateLimited { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::Busy | ApiError::Degraded { .. } => 503,
        }
    }

    /// Stable machine-readable code (the `error` member).
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidField { .. } => "invalid_field",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::UnsupportedEncoding(_) => "unsupported_media_type",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::Unauthorized { .. } => "unauthorized",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::SyncConflict { .. } => "sync_conflict",
            ApiError::VersionExhausted { .. } => "version_exhausted",
            ApiError::ResetRequired { .. } => "reset_required",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Degraded { .. } => "degraded",
            ApiError::Busy => "busy",
            ApiError::Internal(_) => "internal",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::InvalidJson(_) => "Malformed JSON",
            ApiError::InvalidField { .. } => "Invalid request field",
            ApiError::UnsupportedMediaType | ApiError::UnsupportedEncoding(_) => "Unsupported media type",
            ApiError::PayloadTooLarge(_) => "Payload too large",
            ApiError::Unauthorized { .. } => "Unauthorized",
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed { .. } => "Method not allowed",
            ApiError::SyncConflict { .. } => "Sync conflict",
            ApiError::VersionExhausted { .. } => "Version exhausted",
            ApiError::ResetRequired { .. } => "Reset required",
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::Degraded { .. } => "Sync paused",
            ApiError::Busy => "Busy",
            ApiError::Internal(_) => "Internal error",
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::InvalidJson(d) | ApiError::PayloadTooLarge(d) => d.clone(),
            ApiError::InvalidField { field, detail } => format!("{field}: {detail}"),
            ApiError::Unauthorized { detail, .. } => detail.clone(),
            ApiError::UnsupportedMediaType => "request bodies must be application/json".into(),
            ApiError::UnsupportedEncoding(coding) => format!(
                "Content-Encoding '{coding}' is not accepted; send the body uncompressed (accepted codings: identity)"
            ),
            ApiError::NotFound => "no such resource".into(),
            ApiError::MethodNotAllowed { allow } => format!("allowed methods: {allow}"),
            ApiError::SyncConflict { .. } => {
                "the server has changes newer than your cursor; pull them, then upload again".into()
            }
            ApiError::VersionExhausted { id } => format!(
                "record '{id}' is at version 9007199254740991 (2^53 - 1), the largest a version can be; it cannot change again"
            ),
            ApiError::ResetRequired { .. } => {
                "your cursor is older than the tombstone purge horizon; download the full set, then pull from its cursor".into()
            }
            ApiError::RateLimited { retry_after } => format!("rate limit exceeded; retry in {retry_after} s"),
            ApiError::Degraded { writes: false, .. } => {
                "the service is near its daily quota: reads pause until the quota resets; pushes are still accepted".into()
            }
            ApiError::Degraded { writes: true, .. } => {
                "the daily write quota is spent: keep your changes queued and push after the quota resets".into()
            }
            ApiError::Busy => "too many concurrent pushes for this user; retry shortly".into(),
            ApiError::Internal(_) => "an unexpected error occurred".into(),
        }
    }

    /// Response headers this error needs besides the content type.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ApiError::Unauthorized { token_given: true, .. } => {
                vec![("WWW-Authenticate", r#"Bearer error="invalid_token""#.into())]
            }
            ApiError::Unauthorized { token_given: false, .. } => {
                vec![("WWW-Authenticate", "Bearer".into())]
            }
            ApiError::MethodNotAllowed { allow } => vec![("Allow", (*allow).into())],
            ApiError::UnsupportedEncoding(_) => vec![("Accept-Encoding", "identity".into())],
            ApiError::Busy => vec![("Retry-After", "1".into())],
            ApiError::RateLimited { retry_after } | ApiError::Degraded { retry_after, .. } => {
                vec![("Retry-After", retry_after.to_string())]
            }
            _ => vec![],
        }
    }

    /// The RFC 9457 problem document.
    pub fn body(&self, now_ms: i64) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), "about:blank".into());
        m.insert("title".into(), self.title().into());
        m.insert("status".into(), self.status().into());
        m.insert("detail".into(), self.detail().into());
        m.insert("error".into(), self.code().into());
        m.insert("timestamp".into(), now_ms.into());
        match self {
            ApiError::InvalidField { field, .. } => {
                m.insert("field".into(), field.clone().into());
            }
            ApiError::SyncConflict { server_cursor, client_cursor } => {
                // The briefs' clients read `message`; it repeats `detail`.
                m.insert("message".into(), self.detail().into());
                m.insert("server_cursor".into(), (*server_cursor).into());
                m.insert("client_cursor".into(), (*client_cursor).into());
                m.insert("action_required".into(), "refresh".into());
            }
            ApiError::ResetRequired { horizon } => {
                m.insert("purge_horizon".into(), (*horizon).into());
                m.insert("action_required".into(), "full_download".into());
            }
            _ => {}
        }
        Value::Object(m)
    }
}

/// `?` on any library error: an internal error whose cause is kept for the log.
/// (`ApiError` itself is deliberately not a `std::error::Error`, so this cannot overlap
/// `From<ApiError> for ApiError`.)
impl<E: std::error::Error> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_text_is_never_sent() {
        let body = ApiError::Internal("D1_ERROR: secret table".into()).body(1);
        assert_eq!(body["status"], 500);
        assert!(!body.to_string().contains("secret"));
    }

    #[test]
    fn field_errors_name_the_field() {
        let body = ApiError::field("changes[2].foo", "unknown field").body(5);
        assert_eq!(body["error"], "invalid_field");
        assert_eq!(body["field"], "changes[2].foo");
        assert_eq!(body["timestamp"], 5);
        assert!(body["detail"].as_str().unwrap().contains("changes[2].foo"));
    }

    #[test]
    fn unauthorized_challenges() {
        let e = ApiError::Unauthorized { detail: "x".into(), token_given: false };
        assert_eq!(e.headers(), vec![("WWW-Authenticate", "Bearer".to_string())]);
        assert_eq!(e.status(), 401);
    }
}
