//! The one place worker code touches D1 and KV results, JS values, the clock and
//! randomness: binders
//! for D1 parameters, typed row decoding, and every D1 batch and KV call timed and
//! charged to the request's [`Ops`] (so `X-Sync-Ops` and the usage counters see them).

use serde_json::{Map, Value};
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use worker::{D1Database, D1PreparedStatement, Env};

use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;

/// Milliseconds since the epoch, from the runtime (`SystemTime` panics on wasm32):
/// `Date.now()`, one JS call (`worker::Date::now` makes a `Date` object and asks it).
pub fn now_ms() -> i64 {
    js_sys::Date::now() as i64
}

/// Seconds (0–600) that spread the return of paused clients after midnight.
pub fn jitter() -> u64 {
    (js_sys::Math::random() * 600.0) as u64
}

/// Pause with `Retry-After` at the next UTC midnight, spread over ten minutes.
pub fn degraded(now: i64, writes: bool) -> ApiError {
    ApiError::Degraded { retry_after: edgesync_core::quota::retry_after_midnight(now, jitter()), writes }
}

/// D1 binds JS numbers: integers as f64 (a BigInt is refused). Every integer reaching
/// here is within ±(2^53 − 1): parsing bounds what requests send, revs are clock-sized.
pub fn num(n: i64) -> JsValue {
    JsValue::from_f64(n as f64)
}

pub fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

/// An integer, or NULL.
pub fn num_or_null(n: Option<i64>) -> JsValue {
    n.map_or(JsValue::NULL, num)
}

/// A BLOB parameter: D1 binds a `Uint8Array` as a BLOB.
pub fn blob(bytes: &[u8]) -> JsValue {
    js_sys::Uint8Array::from(bytes).into()
}

#[wasm_bindgen(inline_js = r#"
export async function edgesync_batch(db, statements) {
  const out = [];
  for (const r of await db.batch(statements)) {
    const m = r.meta;
    out.push([r.results ?? [], m?.rows_read ?? 0, m?.rows_written ?? 0]);
  }
  return JSON.stringify(out);
}
"#)]
extern "C" {
    /// `db.batch(statements)`, its results as one JSON text: `[[rows, rows_read,
    /// rows_written], ...]` in statement order (a BLOB column is an array of byte values,
    /// as D1 returns it).
    #[wasm_bindgen(catch)]
    async fn edgesync_batch(db: &JsValue, statements: js_sys::Array) -> Result<JsValue, JsValue>;
}

/// The rows one statement of a [`batch`] returned, each a JSON object of its columns.
pub struct Rows(Vec<Value>);

/// Runs statements as one `batch()` (one round trip, one transaction) and charges the
/// statements, rows read and rows written from each result's `meta`. The results cross
/// from JS as one JSON text that serde_json reads (with the parser every other JSON the
/// worker reads goes through), not value by value through `serde_wasm_bindgen` as
/// workers-rs's `D1Result::results` and `meta` do: one JS call instead of several per
/// column, and that deserializer out of the wasm.
pub async fn batch(db: &D1Database, ops: &Ops, statements: Vec<D1PreparedStatement>) -> Result<Vec<Rows>, ApiError> {
    let n = statements.len() as u64;
    let started = now_ms();
    let list = js_sys::Array::new();
    for s in &statements {
        list.push(s.inner().as_ref());
    }
    let text = edgesync_batch(db.as_ref(), list).await.map_err(d1_error)?;
    let results = match text.as_string().map(|t| serde_json::from_str::<Value>(&t)) {
        Some(Ok(Value::Array(results))) => Ok(results),
        Some(Ok(_)) | None => Err("not a JSON array".to_string()),
        Some(Err(e)) => Err(e.to_string()),
    };
    let results = results.map_err(|why| {
        // D1 did the work: its statements count even when its answer cannot be read.
        ops.d1_batch(n, 0, 0, elapsed(started));
        ApiError::Internal(format!("D1 batch results: {why}"))
    })?;
    let (mut read, mut written) = (0, 0);
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        let Value::Array(r) = r else {
            return Err(ApiError::Internal("D1 batch: a result is not an array".into()));
        };
        let mut r = r.into_iter();
        let (Some(Value::Array(rows)), Some(rows_read), Some(rows_written)) = (r.next(), r.next(), r.next()) else {
            return Err(ApiError::Internal("D1 batch: a result without rows and counts".into()));
        };
        read += rows_read.as_u64().unwrap_or(0);
        written += rows_written.as_u64().unwrap_or(0);
        out.push(Rows(rows));
    }
    ops.d1_batch(n, read, written, elapsed(started));
    Ok(out)
}

/// A rejected `batch()` as an internal error: D1's reason is the `cause` of the error it
/// throws (as workers-rs's `D1Error` reads it), else the error's own message.
fn d1_error(e: JsValue) -> ApiError {
    let cause = e.dyn_ref::<js_sys::Error>().map(|e| e.cause()).filter(|c| c.is_instance_of::<js_sys::Error>());
    ApiError::Internal(format!("D1: {}", js_message(cause.as_ref().unwrap_or(&e))))
}

/// One statement as its own [`batch`], and its result.
pub async fn one(db: &D1Database, ops: &Ops, sql: &str, params: &[JsValue]) -> Result<Rows, ApiError> {
    let mut res = batch(db, ops, vec![db.prepare(sql).bind(params)?]).await?;
    res.pop().ok_or_else(|| ApiError::Internal("D1 returned no result".into()))
}

/// The rows of a result as `T`; a row that does not fit `T` is an internal error (with
/// the reason), never a default.
pub fn rows<T: FromRow>(res: &Rows) -> Result<Vec<T>, ApiError> {
    objects(res).into_iter().map(|row| row.and_then(T::from_row)).collect()
}

/// The rows of a result, each a [`Row`] or why not: the part of [`rows`] that does not
/// depend on the row type, compiled once rather than in each row type's copy (296,207 ->
/// 295,437 B gzip). The first error in row order is still the one returned.
fn objects(res: &Rows) -> Vec<Result<Row<'_>, ApiError>> {
    res.0
        .iter()
        .map(|row| match row {
            Value::Object(columns) => Ok(Row(columns)),
            _ => Err(ApiError::Internal("unexpected D1 row: not an object".into())),
        })
        .collect()
}

/// A type a D1 row decodes into, column by column through [`Row`]'s accessors (one
/// small function per row type, where a serde derive would add a deserializer
/// monomorphization per type to the wasm).
pub trait FromRow: Sized {
    fn from_row(row: Row<'_>) -> Result<Self, ApiError>;
}

/// One D1 row: its columns by name, borrowed from the batch's [`Rows`] (the accessors
/// copy out what a row type keeps). A missing column reads as null.
pub struct Row<'a>(&'a Map<String, Value>);

impl Row<'_> {
    fn get(&self, column: &str) -> Option<&Value> {
        self.0.get(column).filter(|v| !v.is_null())
    }

    fn wrong(column: &str, what: &str) -> ApiError {
        ApiError::Internal(format!("unexpected D1 row: column {column} is not {what}"))
    }

    /// A text column that may be null.
    pub fn opt_text(&self, column: &str) -> Result<Option<String>, ApiError> {
        match self.get(column) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Self::wrong(column, "text")),
        }
    }

    pub fn text(&self, column: &str) -> Result<String, ApiError> {
        self.opt_text(column)?.ok_or_else(|| Self::wrong(column, "text"))
    }

    /// An integer column that may be null: a JS number, so possibly `5.0`
    /// (`reply::int_of`); a fraction or a string is an error, never a silent 0.
    pub fn opt_int(&self, column: &str) -> Result<Option<i64>, ApiError> {
        match self.get(column) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                edgesync_core::reply::int_of(n).map(Some).ok_or_else(|| Self::wrong(column, "an integer"))
            }
            Some(_) => Err(Self::wrong(column, "an integer")),
        }
    }

    pub fn int(&self, column: &str) -> Result<i64, ApiError> {
        self.opt_int(column)?.ok_or_else(|| Self::wrong(column, "an integer"))
    }
}

/// The row as it came (copied to another database column for column; tested for
/// presence).
impl FromRow for Map<String, Value> {
    fn from_row(row: Row<'_>) -> Result<Self, ApiError> {
        Ok(row.0.clone())
    }
}

#[wasm_bindgen(inline_js = r#"
export async function edgesync_kv_get(kv, key) {
  return await kv.get(key);
}
export async function edgesync_kv_put(kv, key, value, ttl) {
  await kv.put(key, value, { expirationTtl: ttl });
}
"#)]
extern "C" {
    /// `kv.get(key)`: the value as text, or null. Both helpers are `async` so that a
    /// synchronous throw (a `CACHE` binding that is no KV namespace) rejects too: an
    /// `async` + `catch` import gets no exception check of its own from wasm-bindgen.
    #[wasm_bindgen(catch)]
    async fn edgesync_kv_get(kv: &JsValue, key: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch)]
    async fn edgesync_kv_put(kv: &JsValue, key: &str, value: &str, ttl: f64) -> Result<JsValue, JsValue>;
}

/// A KV namespace binding, called straight from JS (`edgesync_kv_get` / `_put`) rather
/// than through workers-rs's `KvStore`, whose builders pass their options through
/// `serde_wasm_bindgen` (an object built property by property on every read of the 304
/// path) and which is made with five property reads of the binding.
#[derive(Clone)]
pub struct Kv(JsValue);

impl Kv {
    /// The binding `name` of `env`, if the deployment has it.
    pub fn binding(env: &Env, name: &str) -> Option<Kv> {
        js_sys::Reflect::get(env, &JsValue::from_str(name)).ok().filter(|v| v.is_object()).map(Kv)
    }
}

/// A JS error's message, for a log line.
fn js_message(e: &JsValue) -> String {
    match e.dyn_ref::<js_sys::Error>() {
        Some(e) => e.message().into(),
        None => e.as_string().unwrap_or_else(|| "unknown error".into()),
    }
}

/// A KV text value, charged as one read. A failed read is logged and counts as missing:
/// KV only ever saves work, so its failure must not fail the request.
pub async fn kv_get(kv: &Kv, key: &str, ops: &Ops) -> Option<String> {
    let started = now_ms();
    let value = edgesync_kv_get(&kv.0, key).await;
    ops.kv(1, 0, elapsed(started));
    match value {
        Ok(v) => v.as_string(),
        Err(e) => {
            worker::console_warn!("KV read of {key} failed: {}", js_message(&e));
            None
        }
    }
}

/// Writes `value` under `key` with a TTL (KV's minimum is 60 s). Meant for
/// `ctx.wait_until`: never delays a response; the write was charged when scheduled.
pub async fn kv_put(kv: Kv, key: String, value: String, ttl: u64) {
    if let Err(e) = edgesync_kv_put(&kv.0, &key, &value, ttl.max(60) as f64).await {
        worker::console_warn!("KV write of {key} failed: {}", js_message(&e));
    }
}

/// [`kv_put`] awaited within the request, charged (and timed) as one write. A failed write
/// is logged, never an error: KV only ever saves work.
pub async fn kv_put_now(kv: Kv, key: String, value: String, ttl: u64, ops: &Ops) {
    let started = now_ms();
    kv_put(kv, key, value, ttl).await;
    ops.kv(0, 1, elapsed(started));
}

/// Whole milliseconds since `started` (a [`now_ms`] reading); 0 if the clock went back.
pub fn elapsed(started: i64) -> u64 {
    u64::try_from(now_ms().saturating_sub(started)).unwrap_or(0)
}
