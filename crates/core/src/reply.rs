//! Replies: what a handler answers, before it becomes an HTTP response (the worker's
//! `http::finish` is the only place that builds one). The reply bodies of every endpoint
//! are typed here; records pulled from D1 stay raw JSON and are copied into the body
//! without being parsed again.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::error::ApiError;
use crate::etag::{none_match, state_tag};
use crate::plan::{Applied, Conflict};

/// The compact JSON text of a tree, the text `v.to_string()` gives, written by
/// `serde_json::to_string`'s writer (which the replies use already) instead of `Value`'s
/// `Display`, which brings a second copy of the serializer into the wasm and a pretty one
/// for `{:#}` (with no `Value` formatted by `Display` left: 307,418 -> 306,248 B gzip).
/// Writing a `Value` to a `Vec` cannot fail.
pub fn json_text(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

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

    /// A body serialized ahead of time (the OpenAPI document).
    pub fn raw_json(body: String) -> Reply {
        Reply { status: 200, body: Some(body), content_type: "application/json", headers: Vec::new() }
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
            body: Some(json_text(&err.body(now_ms))),
            content_type: "application/problem+json",
            headers: err.headers(),
        }
    }
}

/// The one place a conditional GET is decided: 304 when `if_none_match` matches the
/// user's state at `seq`, else `reply()` carrying the state's ETag.
pub fn conditional(
    if_none_match: Option<&str>,
    seq: i64,
    reply: impl FnOnce() -> Result<Reply, ApiError>,
) -> Result<Reply, ApiError> {
    match not_modified(if_none_match, seq) {
        Some(r) => Ok(r),
        None => Ok(reply()?.header("ETag", state_tag(seq))),
    }
}

/// The 304 a conditional request gets when its tag matches the state at `seq`.
pub fn not_modified(if_none_match: Option<&str>, seq: i64) -> Option<Reply> {
    let tag = state_tag(seq);
    if_none_match.is_some_and(|h| none_match(h, &tag)).then(|| Reply::not_modified(tag))
}

#[derive(Serialize)]
pub struct Health {
    pub status: &'static str,
    pub timestamp: i64,
    pub degraded: bool,
}

/// `GET /api/sync/check` for a user at `seq` (304 when the tag matches).
pub fn check(if_none_match: Option<&str>, seq: i64, now: i64) -> Result<Reply, ApiError> {
    #[derive(Serialize)]
    struct Check {
        etag: String,
        cursor: i64,
        server_time: i64,
    }
    conditional(if_none_match, seq, || Reply::json(200, &Check { etag: state_tag(seq), cursor: seq, server_time: now }))
}

/// An integer as D1 hands it over: a JS number, so possibly `5.0`. Anything else (a
/// string, a fraction, null) is an error, never a silent 0.
pub fn lenient_int<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = serde_json::Number::deserialize(d)?;
    int_of(&v).ok_or_else(|| serde::de::Error::custom(format!("not an integer: {v}")))
}

/// [`lenient_int`]'s rule for a number already read.
pub fn int_of(v: &serde_json::Number) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.1e15).map(|f| f as i64))
}

/// One row of a pull as the pull statements select it (`sql::changes`, `changes_all`).
#[derive(Debug, Deserialize)]
pub struct PulledRow {
    /// Present in the all-types pull only.
    #[serde(rename = "type", default)]
    pub entity: Option<String>,
    #[serde(deserialize_with = "lenient_int")]
    pub rev: i64,
    pub id: String,
    #[serde(deserialize_with = "lenient_int")]
    pub deleted: i64,
    #[serde(default, deserialize_with = "lenient_int_opt")]
    pub created: Option<i64>,
    /// The record as clients see it, JSON text built by SQLite.
    pub rec: String,
}

fn lenient_int_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    lenient_int(d).map(Some)
}

/// One row of a pull: its position, whether it is a tombstone, and the record JSON.
pub struct PullRow {
    pub entity: &'static str,
    pub rev: i64,
    pub id: String,
    pub deleted: bool,
    pub created: bool,
    pub record: Box<RawValue>,
}

impl PullRow {
    /// Types a pulled row; `entity` is the type of a per-type pull, else the row names it.
    pub fn decode(row: PulledRow, entity: Option<&'static str>) -> Result<PullRow, ApiError> {
        let entity = match entity {
            Some(e) => e,
            None => row
                .entity
                .as_deref()
                .and_then(crate::entities::entity)
                .map(|e| e.name)
                .ok_or_else(|| ApiError::Internal(format!("pulled row of unknown type {:?}", row.entity)))?,
        };
        Ok(PullRow {
            entity,
            rev: row.rev,
            id: row.id,
            deleted: row.deleted != 0,
            created: row.created.unwrap_or(0) != 0,
            record: RawValue::from_string(row.rec)?,
        })
    }
}

/// A page of changes. `cursor` is where the next pull starts: the last row's rev when
/// more follow, else the user's sequence read in the same transaction.
pub struct Page {
    pub rows: Vec<PullRow>,
    pub has_more: bool,
    pub cursor: i64,
    /// The user's sequence in the transaction that read the page.
    pub seq: i64,
}

impl Page {
    /// Cuts a page fetched with `limit + 1` rows.
    pub fn cut(mut rows: Vec<PullRow>, limit: i64, seq: i64) -> Page {
        let limit = usize::try_from(limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        rows.truncate(limit);
        let cursor = match (has_more, rows.last()) {
            (true, Some(last)) => last.rev,
            _ => seq,
        };
        Page { rows, has_more, cursor, seq }
    }
}

/// A tombstone in the reply of `POST /api/sync`.
#[derive(Debug, Serialize)]
pub struct Removed<'a> {
    #[serde(rename = "type")]
    pub entity: &'static str,
    pub id: &'a str,
    pub rev: i64,
}

/// The reply of `POST /api/sync`. In degraded mode (`degraded: true`) the push was applied
/// but nothing pulled: the cursor stays the client's and there is no state token, since
/// the client has not seen the changes between its cursor and now.
#[derive(Debug, Serialize)]
pub struct SyncReply<'a> {
    pub applied: &'a [Applied],
    pub conflicts: &'a [Conflict],
    pub updates: Vec<&'a RawValue>,
    pub deleted: Vec<Removed<'a>>,
    pub cursor: i64,
    pub has_more: bool,
    pub etag: Option<String>,
    pub server_time: i64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub degraded: bool,
}

impl<'a> SyncReply<'a> {
    pub fn new(applied: &'a [Applied], conflicts: &'a [Conflict], page: &'a Page, now: i64) -> Self {
        let mut updates = Vec::new();
        let mut deleted = Vec::new();
        for row in &page.rows {
            if row.deleted {
                deleted.push(Removed { entity: row.entity, id: &row.id, rev: row.rev });
            } else {
                updates.push(&*row.record);
            }
        }
        SyncReply {
            applied,
            conflicts,
            updates,
            deleted,
            cursor: page.cursor,
            has_more: page.has_more,
            etag: Some(state_tag(page.seq)),
            server_time: now,
            degraded: false,
        }
    }

    /// A push taken in degraded mode: applied, nothing pulled.
    pub fn degraded(applied: &'a [Applied], conflicts: &'a [Conflict], cursor: i64, now: i64) -> Self {
        SyncReply {
            applied,
            conflicts,
            updates: Vec::new(),
            deleted: Vec::new(),
            cursor,
            has_more: false,
            etag: None,
            server_time: now,
            degraded: true,
        }
    }
}

#[derive(Serialize)]
pub struct ChangeGroups<'a> {
    pub created: Vec<&'a RawValue>,
    pub updated: Vec<&'a RawValue>,
    pub deleted: Vec<&'a str>,
}

/// The reply of `GET /api/sync/{type}/changes`.
#[derive(Serialize)]
pub struct ChangesReply<'a> {
    pub success: bool,
    pub changes: ChangeGroups<'a>,
    pub cursor: i64,
    pub has_more: bool,
    pub since: i64,
    pub timestamp: i64,
    pub total_changes: usize,
}

impl<'a> ChangesReply<'a> {
    pub fn new(page: &'a Page, since: i64, now: i64) -> Self {
        let mut changes = ChangeGroups { created: Vec::new(), updated: Vec::new(), deleted: Vec::new() };
        for row in &page.rows {
            match (row.deleted, row.created) {
                (true, _) => changes.deleted.push(row.id.as_str()),
                (false, true) => changes.created.push(&*row.record),
                (false, false) => changes.updated.push(&*row.record),
            }
        }
        ChangesReply {
            success: true,
            changes,
            cursor: page.cursor,
            has_more: page.has_more,
            since,
            timestamp: now,
            total_changes: page.rows.len(),
        }
    }
}

/// The reply of `GET /api/sync/{type}`.
#[derive(Serialize)]
pub struct DownloadReply<'a> {
    pub success: bool,
    pub data: &'a [Box<RawValue>],
    pub count: usize,
    pub cursor: i64,
    pub has_more: bool,
    pub timestamp: i64,
}

/// The reply of `POST /api/sync/{type}`.
#[derive(Serialize)]
pub struct UploadReply {
    pub success: bool,
    pub uploaded: usize,
    pub deleted: usize,
    pub cursor: i64,
}

#[derive(Serialize)]
pub struct Processed {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
}

/// The reply of `POST /api/sync/{type}/delta`.
#[derive(Serialize)]
pub struct DeltaReply<'a> {
    pub success: bool,
    pub processed: Processed,
    pub applied: &'a [Applied],
    pub conflicts: &'a [Conflict],
    pub cursor: Option<i64>,
}

/// The reply of `POST /api/dev/login`.
#[derive(Serialize)]
pub struct DevLogin<'a> {
    pub token: String,
    pub user: &'a str,
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_text_is_the_display_text() {
        let trees = [
            json!(null),
            json!("a \"quoted\" \u{1} é line\n"),
            json!(-2157062085208783.0),
            json!(0.1),
            json!({"cron": "purge", "removed": 3, "cutoff": -1, "nested": [1, {"b": [], "a": {}}, true]}),
            ApiError::Internal("x".into()).body(1_700_000_000_000),
        ];
        for v in trees {
            assert_eq!(json_text(&v), v.to_string());
        }
    }

    #[test]
    fn conditional_answers_304_only_on_a_match() {
        let r = conditional(Some("\"s5\""), 5, || Reply::json(200, &1)).unwrap();
        assert_eq!((r.status, r.body.is_none()), (304, true));
        let r = conditional(Some("\"s4\""), 5, || Reply::json(200, &1)).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.headers, vec![("ETag", "\"s5\"".to_string())]);
        assert_eq!(check(None, 7, 9).unwrap().body.unwrap(), r#"{"etag":"\"s7\"","cursor":7,"server_time":9}"#);
    }

    #[test]
    fn pulled_rows_decode_strictly() {
        let row: PulledRow = serde_json::from_value(
            json!({"type": "notes", "rev": 5.0, "id": "n", "deleted": 1, "rec": "{\"id\":\"n\"}"}),
        )
        .unwrap();
        let row = PullRow::decode(row, None).unwrap();
        assert_eq!((row.entity, row.rev, row.deleted, row.created), ("notes", 5, true, false));
        assert!(serde_json::from_value::<PulledRow>(json!({"rev": "5", "id": "n", "deleted": 0, "rec": "{}"})).is_err());
        assert!(serde_json::from_value::<PulledRow>(json!({"rev": 5.5, "id": "n", "deleted": 0, "rec": "{}"})).is_err());
        let unknown: PulledRow =
            serde_json::from_value(json!({"type": "x", "rev": 1, "id": "n", "deleted": 0, "rec": "{}"})).unwrap();
        assert!(PullRow::decode(unknown, None).is_err());
    }

    #[test]
    fn degraded_push_reply_keeps_the_cursor_and_gives_no_tag() {
        let body = serde_json::to_value(SyncReply::degraded(&[], &[], 42, 7)).unwrap();
        assert_eq!(body["degraded"], true);
        assert_eq!(body["cursor"], 42);
        assert!(body["etag"].is_null());
        let page = Page::cut(Vec::new(), 10, 3);
        let body = serde_json::to_value(SyncReply::new(&[], &[], &page, 7)).unwrap();
        assert!(body.get("degraded").is_none());
        assert_eq!(body["etag"], "\"s3\"");
    }
}
