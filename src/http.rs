//! Responses. Handlers return a [`Reply`] or an [`ApiError`]; [`finish`] turns either into
//! a `worker::Response` with the headers every response carries. This is the only place
//! that builds responses.

use serde::Serialize;
use worker::{Headers, Response};

use crate::error::ApiError;
use crate::ops::Ops;

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<String>,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn json<T: Serialize + ?Sized>(status: u16, body: &T) -> Result<Reply, ApiError> {
        Ok(Reply {
            status,
            body: Some(serde_json::to_string(body)?),
            content_type: "application/json",
            headers: Vec::new(),
        })
    }

    pub fn empty(status: u16) -> Reply {
        Reply { status, body: None, content_type: "", headers: Vec::new() }
    }

    /// 304: no body, but the validators and caching headers a 200 would carry.
    pub fn not_modified(tag: String) -> Reply {
        Reply { status: 304, body: None, content_type: "", headers: vec![("ETag", tag)] }
    }

    pub fn header(mut self, name: &'static str, value: String) -> Reply {
        self.headers.push((name, value));
        self
    }

    pub fn problem(err: &ApiError, now_ms: i64) -> Reply {
        Reply {
            status: err.status(),
            body: Some(err.body(now_ms).to_string()),
            content_type: "application/problem+json",
            headers: err.headers(),
        }
    }
}

/// How the response may be cached: authenticated answers are per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    PerUser,
    NoStore,
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
