//! D1 access for one verified user. Every call is one `batch()` (one round trip, one
//! transaction); every statement is bound to the user id this store was made for.
//! Rows are decoded into typed structs and fail loudly; costs go to the request's `Ops`.

use std::cell::Cell;
use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::value::RawValue;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};

use edgesync_core::entities::{self, Entity};
use edgesync_core::envelope::{Record, RecordId, Stored, UserId};
use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;
use edgesync_core::parse::{Change, Op};
use edgesync_core::plan::{self, Key, Plan};
use edgesync_core::reply::{lenient_int, Page, PullRow, PulledRow};
use edgesync_core::sql;

use crate::io::{self, num, text};

/// A push whose claim on the sequence lost a race is re-planned this many times, after a
/// short random pause that grows with each attempt (so racing devices spread out).
const PUSH_ATTEMPTS: u32 = 8;

async fn backoff(attempt: u32) {
    if attempt > 0 {
        let ms = (js_sys::Math::random() * f64::from(10 << attempt.min(5))) as u64;
        worker::Delay::from(std::time::Duration::from_millis(ms)).await;
    }
}

/// Called with the sequence a write batch is about to commit, before the batch is sent
/// (so the KV state token can be written ahead of the commit).
pub type Ahead<'a> = Box<dyn Fn(i64) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>> + 'a>;

pub struct Store<'a> {
    db: &'a D1Database,
    user: UserId,
    ops: &'a Ops,
    ahead: Option<Ahead<'a>>,
    /// The user's sequence as last read from or written to D1 by this store.
    seen: Cell<Option<i64>>,
    wrote: Cell<bool>,
}

/// The user's sequence (its state) and tombstone purge horizon.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
pub struct State {
    #[serde(deserialize_with = "lenient_int")]
    pub seq: i64,
    #[serde(rename = "purge_horizon", deserialize_with = "lenient_int")]
    pub horizon: i64,
}

/// A row that carries a record's JSON text (`... AS rec`).
#[derive(Deserialize)]
struct RecRow {
    rec: String,
}

#[derive(Deserialize)]
struct MaxRev {
    #[serde(default, deserialize_with = "opt_int")]
    m: Option<i64>,
}

fn opt_int<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?.map(|n| lenient_int(n).map_err(serde::de::Error::custom)).transpose()
}

/// A missing state row is a user who never pushed: sequence 0, no horizon.
fn state_of(res: &D1Result) -> Result<State, ApiError> {
    Ok(io::rows::<State>(res)?.into_iter().next().unwrap_or_default())
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

fn pull_rows(res: &D1Result, entity: Option<&'static Entity>) -> Result<Vec<PullRow>, ApiError> {
    io::rows::<PulledRow>(res)?.into_iter().map(|r| PullRow::decode(r, entity.map(|e| e.name))).collect()
}

fn stored(res: &D1Result, e: &'static Entity) -> Result<HashMap<Key, Stored>, ApiError> {
    let mut map = HashMap::new();
    for row in io::rows::<RecRow>(res)? {
        let record: Record = serde_json::from_str(&row.rec)?;
        let s = Stored::decode(record).map_err(ApiError::Internal)?;
        map.insert((e.name, s.envelope.id.clone()), s);
    }
    Ok(map)
}

impl<'a> Store<'a> {
    pub fn new(db: &'a D1Database, user: UserId, ops: &'a Ops) -> Self {
        Store { db, user, ops, ahead: None, seen: Cell::new(None), wrote: Cell::new(false) }
    }

    /// Runs `f(seq)` before every write batch that would commit the sequence `seq`.
    pub fn with_ahead(mut self, f: Ahead<'a>) -> Self {
        self.ahead = Some(f);
        self
    }

    async fn ahead(&self, seq: i64) {
        if let Some(f) = &self.ahead {
            f(seq).await;
        }
    }

    /// The user's sequence as D1 last told this store, if it asked.
    #[allow(dead_code)] // unused since the KV token is written ahead of commits (driver)
    pub fn seen_seq(&self) -> Option<i64> {
        self.seen.get()
    }

    /// Whether this store committed a change.
    #[allow(dead_code)] // unused since the KV token is written ahead of commits (driver)
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

    /// A statement whose `?1` is this store's user.
    fn stmt(&self, sql: &str, params: &[JsValue]) -> Result<D1PreparedStatement, ApiError> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(text(self.user.as_str()));
        all.extend_from_slice(params);
        Ok(self.db.prepare(sql).bind(&all)?)
    }

    async fn batch(&self, statements: Vec<D1PreparedStatement>) -> Result<Vec<D1Result>, ApiError> {
        io::batch(self.db, self.ops, statements).await
    }

    pub async fn state(&self) -> Result<State, ApiError> {
        let res = self.batch(vec![self.stmt(sql::STATE, &[])?]).await?;
        Ok(self.saw(state_of(&res[0])?))
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
        Ok((state, Page::cut(pull_rows(&res[1], None)?, limit, state.seq)))
    }

    /// One type's changes after `since` (`GET /api/sync/{type}/changes`).
    pub async fn changes(&self, e: &'static Entity, since: i64, limit: i64) -> Result<(State, Page), ApiError> {
        let res = self
            .batch(vec![self.stmt(sql::STATE, &[])?, self.stmt(&sql::changes(e), &[num(since), num(limit + 1)])?])
            .await?;
        let state = self.saw(state_of(&res[0])?);
        check_horizon(since, state)?;
        Ok((state, Page::cut(pull_rows(&res[1], Some(e))?, limit, state.seq)))
    }

    /// One page of a type's live records by id (`GET /api/sync/{type}`).
    pub async fn download(
        &self,
        e: &'static Entity,
        after: Option<&RecordId>,
        limit: i64,
    ) -> Result<(State, Vec<Box<RawValue>>, bool), ApiError> {
        let after = after.map_or("", RecordId::as_str);
        let res = self
            .batch(vec![self.stmt(sql::STATE, &[])?, self.stmt(&sql::download(e), &[text(after), num(limit + 1)])?])
            .await?;
        let state = self.saw(state_of(&res[0])?);
        let mut records = io::rows::<RecRow>(&res[1])?
            .into_iter()
            .map(|r| RawValue::from_string(r.rec))
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = records.len() > usize::try_from(limit).unwrap_or(0);
        records.truncate(usize::try_from(limit).unwrap_or(0));
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

    /// The write batch of a plan: claim the sequence, then write each type's rows.
    /// Returns the statements; the claim is first.
    fn write_stmts(&self, plan: &Plan, seq_before: i64, now: i64) -> Result<Vec<D1PreparedStatement>, ApiError> {
        let id = push_id(now);
        let mut stmts = vec![self.stmt(sql::CLAIM, &[num(plan.seq), text(&id), num(seq_before)])?];
        for (e, records) in &plan.writes {
            stmts.push(self.stmt(&sql::upsert(e), &[text(&sql::storage_rows(e, records)?), text(&id)])?);
        }
        Ok(stmts)
    }

    /// Runs `attempt` until it commits (`Some`), re-planning after a lost race on the
    /// user's sequence (`None`: nothing was written); `busy` after [`PUSH_ATTEMPTS`].
    async fn optimistic<T>(
        &self,
        mut attempt: impl AsyncFnMut() -> Result<Option<T>, ApiError>,
    ) -> Result<T, ApiError> {
        for n in 0..PUSH_ATTEMPTS {
            backoff(n).await;
            if let Some(done) = attempt().await? {
                return Ok(done);
            }
        }
        Err(ApiError::Busy)
    }

    /// Applies a push atomically and, when `pull` is `(since, limit)`, pulls in the same
    /// transaction, leaving out the push's own rows. Optimistic: if another push of the
    /// user commits between the read and the write, nothing is written and it re-plans.
    pub async fn push(
        &self,
        changes: &[Change],
        now: i64,
        pull: Option<(i64, i64)>,
    ) -> Result<(Plan, Option<Page>), ApiError> {
        self.optimistic(async || self.try_push(changes, now, pull).await).await
    }

    async fn try_push(
        &self,
        changes: &[Change],
        now: i64,
        pull: Option<(i64, i64)>,
    ) -> Result<Option<(Plan, Option<Page>)>, ApiError> {
        let reads = self.read_stmts(changes)?;
        let mut stmts = vec![self.stmt(sql::STATE, &[])?];
        let order: Vec<&'static Entity> = reads.iter().map(|(e, _)| *e).collect();
        stmts.extend(reads.into_iter().map(|(_, s)| s));
        let res = self.batch(stmts).await?;
        let state = state_of(&res[0])?;
        if let Some((since, _)) = pull {
            check_horizon(since, state)?;
        }
        let mut current = HashMap::new();
        for (e, r) in order.iter().zip(&res[1..]) {
            current.extend(stored(r, e)?);
        }
        let plan = plan::plan(changes, current, state.seq, now);

        if !plan.changes_anything() {
            let page = match pull {
                Some((since, limit)) => Some(self.pull_all(since, limit).await?.1),
                None => None,
            };
            return Ok(Some((plan, page)));
        }

        let mut stmts = self.write_stmts(&plan, state.seq, now)?;
        self.ahead(plan.seq).await;
        if let Some((since, limit)) = pull {
            stmts.push(self.pull_all_stmt(since, &plan.revs, limit)?);
        }
        let res = self.batch(stmts).await?;
        if io::rows::<serde_json::Value>(&res[0])?.is_empty() {
            return Ok(None); // lost the race: nothing was written
        }
        self.committed(plan.seq);
        let page = match (pull, res.last()) {
            (Some((_, limit)), Some(last)) => Some(Page::cut(pull_rows(last, None)?, limit, plan.seq)),
            _ => None,
        };
        Ok(Some((plan, page)))
    }

    /// Replaces a type's live set (contract §4.3). Refused when any record of the type
    /// changed after `cursor`. Returns the plan and how many live records it deleted.
    pub async fn replace_all(
        &self,
        e: &'static Entity,
        records: &[Change],
        cursor: i64,
        now: i64,
    ) -> Result<(Plan, usize), ApiError> {
        let ids: Vec<&str> = records.iter().map(|c| c.id.as_str()).collect();
        let ids = serde_json::to_string(&ids)?;
        self.optimistic(async || self.try_replace_all(e, records, &ids, cursor, now).await).await
    }

    async fn try_replace_all(
        &self,
        e: &'static Entity,
        records: &[Change],
        ids: &str,
        cursor: i64,
        now: i64,
    ) -> Result<Option<(Plan, usize)>, ApiError> {
        let res = self
            .batch(vec![
                self.stmt(sql::STATE, &[])?,
                self.stmt(&sql::max_rev(e), &[])?,
                self.stmt(&sql::read_live_and_ids(e), &[text(ids)])?,
            ])
            .await?;
        let state = state_of(&res[0])?;
        let newest = io::rows::<MaxRev>(&res[1])?.first().and_then(|r| r.m).unwrap_or(0);
        if newest > cursor {
            return Err(ApiError::SyncConflict { server_cursor: state.seq, client_cursor: cursor });
        }
        let current = stored(&res[2], e)?;
        // The upload is the whole truth: its records are taken as they are, and every
        // live record it leaves out is deleted.
        let mut changes: Vec<Change> = records.iter().map(|c| Change { version: None, ..c.clone() }).collect();
        let given: HashSet<&str> = records.iter().map(|c| c.id.as_str()).collect();
        let mut dropped: Vec<&str> = current
            .values()
            .filter(|s| !s.is_deleted() && !given.contains(s.envelope.id.as_str()))
            .map(|s| s.envelope.id.as_str())
            .collect();
        dropped.sort_unstable();
        let deleted = dropped.len();
        for id in dropped {
            let id = RecordId::parse(id).ok_or_else(|| ApiError::Internal(format!("stored id {id:?} is not an id")))?;
            changes.push(Change { entity: e, id, version: None, device_id: None, op: Op::Delete });
        }
        let plan = plan::plan(&changes, current, state.seq, now);
        // Upload versions are the server's to pick, so the only conflict is a record that
        // can take no more versions; the upload is the whole truth, so it is refused whole.
        if let Some(c) = plan.conflicts.first() {
            return Err(ApiError::VersionExhausted { id: c.id.to_string() });
        }
        if !plan.changes_anything() {
            return Ok(Some((plan, deleted)));
        }
        let stmts = self.write_stmts(&plan, state.seq, now)?;
        self.ahead(plan.seq).await;
        let res = self.batch(stmts).await?;
        if io::rows::<serde_json::Value>(&res[0])?.is_empty() {
            return Ok(None);
        }
        self.committed(plan.seq);
        Ok(Some((plan, deleted)))
    }
}
