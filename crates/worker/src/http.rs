//! HTTP at the edge: the request's method, URL and the headers the worker reads (taken
//! from JS in one call, [`In::new`]), reading its JSON body (media type, content coding,
//! size), and turning a [`Reply`] into a `Response` with the headers every response
//! carries. [`finish`] is the only place that builds a response.
//!
//! Both ends are one JS call each (issue #11): `worker::Request` reads `request.cf` (a
//! large object the runtime builds on access) and every header is a JS call plus a string
//! copy each way; a `worker::Response` sets its headers one call at a time. Here the
//! request's head comes over as one string, and the response is made by one call given
//! the status, the body's bytes and all headers as one string.

use js_sys::Uint8Array;
use serde_json::Value;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use worker::web_sys;

use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;
use edgesync_core::reply::Reply;

#[wasm_bindgen(inline_js = r#"
const NAMES = ['authorization', 'if-none-match', 'origin', 'content-type', 'content-encoding', 'content-length',
  'x-edgesync-panic', 'x-edgesync-stall-ahead'];
export function edgesync_head(req) {
  const h = req.headers;
  let s = req.method + '\n' + req.url;
  for (const n of NAMES) {
    const v = h.get(n);
    s += v === null ? '\n\0' : '\n' + v;
  }
  return s;
}
export function edgesync_response(status, body, hasBody, headers) {
  const h = new Headers();
  if (headers.length) {
    for (const line of headers.split('\n')) {
      const i = line.indexOf(':');
      h.append(line.slice(0, i), line.slice(i + 1));
    }
  }
  return new Response(hasBody ? body.slice() : null, { status, headers: h });
}
"#)]
extern "C" {
    /// `method \n url \n` then each of [`H`]'s headers (in its order), `\0` when absent.
    fn edgesync_head(req: &web_sys::Request) -> String;
    /// `headers`: `name:value` lines. `body` is a view of wasm memory, copied in JS.
    #[wasm_bindgen(catch)]
    fn edgesync_response(status: u16, body: &[u8], has_body: bool, headers: &str)
        -> Result<web_sys::Response, JsValue>;
}

/// The request headers the worker reads (the order of `NAMES` above).
#[derive(Debug, Clone, Copy)]
pub enum H {
    Authorization,
    IfNoneMatch,
    Origin,
    ContentType,
    ContentEncoding,
    ContentLength,
    Panic,
    StallAhead,
}
const N_HEADERS: usize = 8;

/// The incoming request: its head, read once, and the runtime's request for its body.
pub struct In {
    raw: web_sys::Request,
    pub method: String,
    pub url: String,
    headers: [Option<String>; N_HEADERS],
}

impl In {
    pub fn new(raw: web_sys::Request) -> In {
        let head = edgesync_head(&raw);
        let mut lines = head.split('\n');
        let method = lines.next().unwrap_or_default().to_string();
        let url = lines.next().unwrap_or_default().to_string();
        let headers = std::array::from_fn(|_| lines.next().filter(|v| *v != "\0").map(str::to_string));
        In { raw, method, url, headers }
    }

    pub fn header(&self, h: H) -> Option<&str> {
        self.headers.get(h as usize).and_then(Option::as_deref)
    }

    /// The URL's path, not decoded (as `worker::Request::path`).
    pub fn path(&self) -> &str {
        let url = self.url.as_str();
        let rest = url.find("://").map_or(url, |i| &url[i + 3..]);
        let path = rest.find('/').map_or("/", |i| &rest[i..]);
        path.find(['?', '#']).map_or(path, |i| &path[..i])
    }

    /// The raw query string (without `?` and any fragment).
    pub fn query(&self) -> &str {
        self.url.split_once('?').map_or("", |(_, q)| q.split('#').next().unwrap_or_default())
    }

    async fn bytes(&self) -> Result<Vec<u8>, JsValue> {
        let buf = JsFuture::from(self.raw.array_buffer()?).await?;
        Ok(Uint8Array::new(&buf).to_vec())
    }
}

/// How the response may be cached: authenticated answers are per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    PerUser,
    NoStore,
}

/// Reads a JSON body: `application/json` (or `+json`), no content coding but `identity`,
/// at most `max_bytes`.
pub async fn read_json(req: &In, max_bytes: usize) -> Result<Value, ApiError> {
    let content_type = req.header(H::ContentType).unwrap_or_default().to_ascii_lowercase();
    let mime = content_type.split(';').next().unwrap_or_default().trim();
    if mime != "application/json" && !mime.ends_with("+json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    // A compressed body would otherwise be read as malformed JSON.
    let coding = req.header(H::ContentEncoding).unwrap_or_default();
    if let Some(c) = coding.split(',').map(str::trim).find(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity")) {
        return Err(ApiError::UnsupportedEncoding(c.chars().take(40).collect()));
    }
    let too_large = || ApiError::PayloadTooLarge(format!("the body limit is {max_bytes} bytes"));
    let declared = req.header(H::ContentLength).and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_bytes) {
        return Err(too_large());
    }
    let bytes = req.bytes().await.map_err(|e| ApiError::InvalidJson(format!("unreadable body: {e:?}")))?;
    if bytes.len() > max_bytes {
        return Err(too_large());
    }
    // Parsed as text, like every other JSON the worker reads: one instantiation of
    // serde_json's parser in the wasm (over `&str`), not a second one over bytes.
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::InvalidJson(format!("body is not valid JSON: not UTF-8 ({e})")))?;
    serde_json::from_str(text).map_err(|e| ApiError::InvalidJson(format!("body is not valid JSON: {e}")))
}

/// The response headers as `Headers.set` would leave them (a later value replaces an
/// earlier one of the same name), but `Vary`, which is appended (auth and CORS both add to
/// it).
struct Lines(Vec<(&'static str, String)>);

impl Lines {
    fn set(&mut self, name: &'static str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some(slot) if !name.eq_ignore_ascii_case("Vary") => slot.1 = value,
            _ => self.0.push((name, value)),
        }
    }

    /// `name:value` lines. A value no header may hold (CR, LF, NUL) is left out and
    /// logged: `Headers` would throw on it.
    fn text(&self) -> String {
        let mut s = String::with_capacity(self.0.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
        for (k, v) in &self.0 {
            if v.contains(['\r', '\n', '\0']) || k.contains([':', '\r', '\n', '\0']) {
                worker::console_error!("response header {k} left out: its value is not a valid header value");
                continue;
            }
            if !s.is_empty() {
                s.push('\n');
            }
            s.push_str(k);
            s.push(':');
            s.push_str(v);
        }
        s
    }
}

pub fn finish(reply: Reply, caching: Caching, ops: &Ops, total_ms: u64) -> worker::Result<web_sys::Response> {
    let mut h = Lines(Vec::with_capacity(reply.headers.len() + 5));
    if !reply.content_type.is_empty() {
        h.set("Content-Type", reply.content_type.to_string());
    }
    for (k, v) in reply.headers {
        h.set(k, v);
    }
    match caching {
        Caching::PerUser => {
            h.set("Cache-Control", "private, no-cache".to_string());
            h.set("Vary", "Authorization".to_string());
        }
        Caching::NoStore => h.set("Cache-Control", "no-store".to_string()),
    }
    h.set("X-Sync-Ops", ops.header());
    h.set("Server-Timing", ops.server_timing(total_ms));
    let body = reply.body.as_deref().unwrap_or_default();
    edgesync_response(reply.status, body.as_bytes(), reply.body.is_some(), &h.text()).map_err(worker::Error::from)
}
