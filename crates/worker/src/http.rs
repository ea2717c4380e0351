//! HTTP at the edge: reading a request's JSON body (media type, content coding, size) and
//! turning a [`Reply`] into a `worker::Response` with the headers every response carries.
//! [`finish`] is the only place that builds a response.

use serde_json::Value;
use worker::{Headers, Request, Response};

use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;
use edgesync_core::reply::Reply;

/// How the response may be cached: authenticated answers are per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    PerUser,
    NoStore,
}

pub fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// Reads a JSON body: `application/json` (or `+json`), no content coding but `identity`,
/// at most `max_bytes`.
pub async fn read_json(req: &mut Request, max_bytes: usize) -> Result<Value, ApiError> {
    let content_type = header(req, "Content-Type").unwrap_or_default().to_ascii_lowercase();
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    // A compressed body would otherwise be read as malformed JSON.
    let coding = header(req, "Content-Encoding").unwrap_or_default();
    if let Some(c) = coding.split(',').map(str::trim).find(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity")) {
        return Err(ApiError::UnsupportedEncoding(c.chars().take(40).collect()));
    }
    let too_large = || ApiError::PayloadTooLarge(format!("the body limit is {max_bytes} bytes"));
    let declared = header(req, "Content-Length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_bytes) {
        return Err(too_large());
    }
    let bytes = req.bytes().await.map_err(|e| ApiError::InvalidJson(format!("unreadable body: {e}")))?;
    if bytes.len() > max_bytes {
        return Err(too_large());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::InvalidJson(format!("body is not valid JSON: {e}")))
}

pub fn finish(reply: Reply, caching: Caching, ops: &Ops, total_ms: f64) -> worker::Result<Response> {
    let headers = Headers::new();
    if !reply.content_type.is_empty() {
        headers.set("Content-Type", reply.content_type)?;
    }
    // Vary may come from several places (auth, CORS): append, never overwrite.
    for (k, v) in &reply.headers {
        if k.eq_ignore_ascii_case("Vary") {
            headers.append(k, v)?;
        } else {
            headers.set(k, v)?;
        }
    }
    match caching {
        Caching::PerUser => {
            headers.set("Cache-Control", "private, no-cache")?;
            headers.append("Vary", "Authorization")?;
        }
        Caching::NoStore => headers.set("Cache-Control", "no-store")?,
    }
    headers.set("X-Sync-Ops", &ops.header())?;
    headers.set("Server-Timing", &ops.server_timing(total_ms))?;
    let resp = match reply.body {
        Some(body) => Response::ok(body)?,
        None => Response::empty()?,
    };
    Ok(resp.with_status(reply.status).with_headers(headers))
}
