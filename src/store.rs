//! D1 access for one verified user. Every call is one `batch()` (one round trip, one
//! transaction); every statement is bound to the user id this store was made for.
//! Costs are recorded in [`Ops`] from each result's `meta`.

use std::cell::Cell;
use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::Value;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};

use crate::entities::{self, Entity};
use crate::error::ApiError;
use crate::ops::Ops;
use crate::plan::{self, Key, Plan, Record};
use crate::protocol::{Change, Op};
use crate::sql;

/// A push whose claim on the sequence lost a race is re-planned this many times, after a
/// short random pause that grows with each attempt (so racing devices spread out).
const PUSH_ATTEMPTS: u32 = 8;

async fn backoff(attempt: u32) {
    if attempt > 0 {
        let ms = (js_sys::Math::random() * f64::from(10 << attempt.min(5))) as u64;
        worker::Delay::from(std::time::Duration::from_millis(ms)).await;
    }
}

pub struct Store<'a> {
    db: D1Database,
    user: String,
    ops: &'a Ops,
    /// The user's sequence as last read from or written to D1 by this store.
    seen: Cell<Option<i64>>,
    wrote: Cell<bool>,
}

/// The user's sequence (its state) and tombstone purge horizon.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    pub seq: i64,
    pub horizon: i64,
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

/// A page of changes. `cursor` is where the next pull starts: the last row's rev when
/// more follow, else the user's sequence read in the same transaction.
pub struct Page {
    pub rows: Vec<PullRow>,
    pub has_more: bool,
    pub cursor: i64,
    /// The user's sequence in the transaction that read the page.
    pub seq: i64,
}

/// D1 binds JS numbers; integers beyond 2^53 never get here (protocol limits them).
fn num(n: i64) -> JsValue {
    JsValue::from_f64(n as f64)
}

fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

fn internal(e: worker::Error) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn rows(res: &D1Result) -> Result<Vec<serde_json::Map<String, Value>>, ApiError> {
    res.results::<serde_json::Map<String, Value>>().map_err(internal)
}

fn int(row: &serde_json::Map<String, Value>, key: &str) -> i64 {
    match row.get(key) {
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).unwrap_or(0),
        _ => 0,
    }
}

fn truthy(row: &serde_json::Map<String, Value>, key: &str) -> bool {
    int(row, key) != 0
}

fn rec_text(row: &serde_json::Map<String, Value>) -> Result<String, ApiError> {
    match row.get("rec") {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(ApiError::Internal("row without rec".into())),
    }
}

fn state_of(res: &D1Result) -> Result<State, ApiError> {
    Ok(rows(res)?
        .first()
        .map(|r| State { seq: int(r, "seq"), horizon: int(r, "purge_horizon") })
        .unwrap_or_default())
}

/// A pull from before the purge horizon would miss purged deletions (0 means "from the
/// beginning": nothing to miss).
fn check_horizon(since: i64, state: State) -> Result<(), ApiError> {
    if since > 0 && since < state.horizon {
        return Err(ApiError::ResetRequired { horizon: state.horizon });
    }
    Ok(())
}

/// A unique id for one push attempt: the claim stamps it, the row writes check it.
fn push_id(now: i64) -> String {
    let r = || (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
    format!("{now:x}-{:x}-{:x}", r(), r())
}

impl<'a> Store<'a> {
    pub fn new(db: D1Database, user: String, ops: &'a Ops) -> Self {
        Store { db, user, ops, seen: Cell::new(None), wrote: Cell::new(false) }
    }

    /// The user's sequence as D1 last told this store, if it asked.
    pub fn seen_seq(&self) -> Option<i64> {
        self.seen.get()
    }

    /// Whether this store committed a change.
    pub fn wrote(&self) -> bool {
        self.wrote.get()
    }

    fn saw(&self, state: State) -> State {
        self.seen.set(Some(state.seq));
        state
    }

    fn committed(&self, seq: i64) {
        self.seen.set(Some(seq));
        self.wrote.set(true);
    }

    fn stmt(&self, sql: &str, params: &[JsValue]) -> Result<D1PreparedStatement, ApiError> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(text(&self.user));
        all.extend_from_slice(params);
        self.db.prepare(sql).bind(&all).map_err(internal)
    }

    async fn batch(&self, statements: Vec<D1PreparedStatement>) -> Result<Vec<D1Result>, ApiError> {
        let n = statements.len() as u64;
        let started = worker::Date::now().as_millis();
        let results = self.db.batch(statements).await.map_err(internal)?;
        let (mut read, mut written) = (0, 0);
        for r in &results {
            if let Ok(Some(meta)) = r.meta() {
                read += meta.rows_read.unwrap_or(0) as u64;
                written += meta.rows_written.unwrap_or(0) as u64;
            }
        }
        let ms = worker::Date::now().as_millis().saturating_sub(started) as f64;
        self.ops.d1_batch(n, read, written, ms);
        Ok(results)
    }

    pub async fn state(&self) -> Result<State, ApiError> {
        let res = self.batch(vec![self.stmt(sql::STATE, &[])?]).await?;
        Ok(self.saw(state_of(&res[0])?))
    }

    fn pull_rows(res: &D1Result, entity: Option<&'static Entity>) -> Result<Vec<PullRow>, ApiError> {
        rows(res)?
            .into_iter()
            .map(|r| {
                let name = match entity {
                    Some(e) => e.name,
                    None => r
                        .get("type")
                        .and_then(Value::as_str)
                        .and_then(entities::entity)
                        .map(|e| e.name)
                        .ok_or_else(|| ApiError::Internal("row of unknown type".into()))?,
                };
                Ok(PullRow {
                    entity: name,
                    rev: int(&r, "rev"),
                    id: r.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                    deleted: truthy(&r, "deleted"),
                    created: truthy(&r, "created"),
                    record: RawValue::from_string(rec_text(&r)?)?,
                })
            })
            .collect()
    }

    /// Cuts a page fetched with `limit + 1` rows.
    fn page(mut rows: Vec<PullRow>, limit: i64, seq: i64) -> Page {
        let has_more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let cursor = match (has_more, rows.last()) {
            (true, Some(last)) => last.rev,
            _ => seq,
        };
        Page { rows, has_more, cursor, seq }
    }

    fn pull_all_stmt(&self, since: i64, exclude: &[i64], limit: i64) -> Result<D1PreparedStatement, ApiError> {
        let exclude = serde_json::to_string(exclude)?;
        self.stmt(&sql::changes_all(), &[num(since), text(&exclude), num(limit + 1)])
    }

    /// Every type's changes after `since` (the pull of `POST /api/sync`).
    pub async fn pull_all(&self, since: i64, limit: i64) -> Result<(State, Page), ApiError> {
        let res = self.batch(vec![self.stmt(sql::STATE, &[])?, self.pull_all_stmt(since, &[], limit)?]).await?;
        let state = self.saw(state_of(&res[0])?);
        check_horizon(since, state)?;
        let rows = Self::pull_rows(&res[1], None)?;
        Ok((state, Self::page(rows, limit, state.seq)))
    }

    /// One type's changes after `since` (`GET /api/sync/{type}/changes`).
    pub async fn changes(&self, e: &'static Entity, since: i64, limit: i64) -> Result<(State, Page), ApiError> {
        let res = self
            .batch(vec![self.stmt(sql::STATE, &[])?, self.stmt(&sql::changes(e), &[num(since), num(limit + 1)])?])
            .await?;
        let state = self.saw(state_of(&res[0])?);
        check_horizon(since, state)?;
        let rows = Self::pull_rows(&res[1], Some(e))?;
        Ok((state, Self::page(rows, limit, state.seq)))
    }

    /// One page of a type's live records by id (`GET /api/sync/{type}`).
    pub async fn download(
        &self,
        e: &'static Entity,
        after: Option<&str>,
        limit: i64,
    ) -> Result<(State, Vec<Box<RawValue>>, bool), ApiError> {
        let res = self
            .batch(vec![
                self.stmt(sql::STATE, &[])?,
                self.stmt(&sql::download(e), &[text(after.unwrap_or("")), num(limit + 1)])?,
            ])
            .await?;
        let state = self.saw(state_of(&res[0])?);
        let mut records = rows(&res[1])?
            .iter()
            .map(|r| Ok(RawValue::from_string(rec_text(r)?)?))
            .collect::<Result<Vec<_>, ApiError>>()?;
        let has_more = records.len() as i64 > limit;
        records.truncate(limit as usize);
        Ok((state, records, has_more))
    }

    /// Stored records (as clients see them) for every key the changes name.
    fn read_stmts(&self, changes: &[Change]) -> Result<Vec<(&'static Entity, D1PreparedStatement)>, ApiError> {
        let mut out = Vec::new();
        for e in entities::ENTITIES {
            let ids: Vec<&str> = changes.iter().filter(|c| c.entity.name == e.name).map(|c| c.id.as_str()).collect();
            if !ids.is_empty() {
                out.push((e, self.stmt(&sql::read_by_ids(e), &[text(&serde_json::to_string(&ids)?)])?));
            }
        }
        Ok(out)
    }

    fn records(res: &D1Result, e: &'static Entity) -> Result<HashMap<Key, Record>, ApiError> {
        let mut map = HashMap::new();
        for r in rows(res)? {
            let rec: Record = serde_json::from_str(&rec_text(&r)?)?;
            let id = rec.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
            map.insert((e.name, id), rec);
        }
        Ok(map)
    }

    /// The write batch of a plan: claim the sequence, then write each type's rows.
    /// Returns the statements; the claim is first.
    fn write_stmts(&self, plan: &Plan, seq_before: i64, now: i64) -> Result<Vec<D1PreparedStatement>, ApiError> {
        let id = push_id(now);
        let mut stmts = vec![self.stmt(sql::CLAIM, &[num(plan.seq), text(&id), num(seq_before)])?];
        for (e, records) in &plan.writes {
            stmts.push(self.stmt(&sql::upsert(e), &[text(&sql::storage_rows(e, records)), text(&id)])?);
        }
        Ok(stmts)
    }

    /// Applies a push atomically and, when `pull` is `(since, limit)`, pulls in the same
    /// transaction, leaving out the push's own rows. Optimistic: if another push of the
    /// user commits between the read and the write, nothing is written and it re-plans.
    pub async fn push(&self, changes: &[Change], now: i64, pull: Option<(i64, i64)>) -> Result<(Plan, Option<Page>), ApiError> {
        for attempt in 0..PUSH_ATTEMPTS {
            backoff(attempt).await;
            let reads = self.read_stmts(changes)?;
            let mut stmts = vec![self.stmt(sql::STATE, &[])?];
            let order: Vec<&'static Entity> = reads.iter().map(|(e, _)| *e).collect();
            stmts.extend(reads.into_iter().map(|(_, s)| s));
            let res = self.batch(stmts).await?;
            let state = state_of(&res[0])?;
            if let Some((since, _)) = pull {
                check_horizon(since, state)?;
            }
            let mut stored = HashMap::new();
            for (e, r) in order.iter().zip(&res[1..]) {
                stored.extend(Self::records(r, e)?);
            }
            let plan = plan::plan(changes, stored, state.seq, now)?;

            if !plan.changes_anything() {
                let page = match pull {
                    Some((since, limit)) => Some(self.pull_all(since, limit).await?.1),
                    None => None,
                };
                return Ok((plan, page));
            }

            let mut stmts = self.write_stmts(&plan, state.seq, now)?;
            if let Some((since, limit)) = pull {
                stmts.push(self.pull_all_stmt(since, &plan.revs, limit)?);
            }
            let res = self.batch(stmts).await?;
            if rows(&res[0])?.is_empty() {
                continue; // lost the race: nothing was written
            }
            self.committed(plan.seq);
            let page = match pull {
                Some((_, limit)) => {
                    let rows = Self::pull_rows(&res[res.len() - 1], None)?;
                    Some(Self::page(rows, limit, plan.seq))
                }
                None => None,
            };
            return Ok((plan, page));
        }
        Err(ApiError::Busy)
    }

    /// Replaces a type's live set (contract §4.3). Refused when any record of the type
    /// changed after `cursor`.
    pub async fn replace_all(&self, e: &'static Entity, records: &[Change], cursor: i64, now: i64) -> Result<(Plan, usize), ApiError> {
        let ids: Vec<&str> = records.iter().map(|c| c.id.as_str()).collect();
        let ids = serde_json::to_string(&ids)?;
        for attempt in 0..PUSH_ATTEMPTS {
            backoff(attempt).await;
            let res = self
                .batch(vec![
                    self.stmt(sql::STATE, &[])?,
                    self.stmt(&sql::max_rev(e), &[])?,
                    self.stmt(&sql::read_live_and_ids(e), &[text(&ids)])?,
                ])
                .await?;
            let state = state_of(&res[0])?;
            let newest = rows(&res[1])?.first().map_or(0, |r| int(r, "m"));
            if newest > cursor {
                return Err(ApiError::SyncConflict { server_cursor: state.seq, client_cursor: cursor });
            }
            let stored = Self::records(&res[2], e)?;
            // The upload is the whole truth: its records are taken as they are, and every
            // live record it leaves out is deleted.
            let mut changes: Vec<Change> = records.iter().map(|c| Change { version: None, ..c.clone() }).collect();
            let given: std::collections::HashSet<&str> = records.iter().map(|c| c.id.as_str()).collect();
            let mut dropped: Vec<&Record> = stored
                .values()
                .filter(|r| r.get("deleted_at").is_some_and(Value::is_null))
                .filter(|r| !given.contains(r.get("id").and_then(Value::as_str).unwrap_or_default()))
                .collect();
            dropped.sort_by_key(|r| r.get("id").and_then(Value::as_str).unwrap_or_default().to_string());
            let deleted = dropped.len();
            for r in dropped {
                let id = r.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                let path = format!("data (record {id}, left out and so deleted)");
                changes.push(Change { entity: e, id, version: None, device_id: None, op: Op::Delete, path });
            }
            let plan = plan::plan(&changes, stored, state.seq, now)?;
            if !plan.changes_anything() {
                return Ok((plan, deleted));
            }
            let res = self.batch(self.write_stmts(&plan, state.seq, now)?).await?;
            if rows(&res[0])?.is_empty() {
                continue;
            }
            self.committed(plan.seq);
            return Ok((plan, deleted));
        }
        Err(ApiError::Busy)
    }
}
