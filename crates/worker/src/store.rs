//! D1 access for one verified user, over the packed pages of [`edgesync_core::pages`].
//! Every call is one `batch()` (one round trip, one transaction); every statement is bound
//! to the user id this store was made for. Rows are decoded into typed structs and fail
//! loudly; costs go to the request's `Ops`.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::value::RawValue;
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

use edgesync_core::codec;
use edgesync_core::entities::Entity;
use edgesync_core::envelope::{RecordId, UserId};
use edgesync_core::error::ApiError;
use edgesync_core::ops::Ops;
use edgesync_core::pages::{self, Head, Pages};
use edgesync_core::parse::Change;
use edgesync_core::plan::{self, Key, Plan};
use edgesync_core::reply::Page;
use edgesync_core::shards::{self, Fence, Hop};
use edgesync_core::sql;

use crate::io::{self, blob, num, num_or_null, text};
use crate::shards::Router;

/// A push whose claim on the sequence lost a race is re-planned this many times, after a
/// short random pause that grows with each attempt (so racing devices spread out).
const PUSH_ATTEMPTS: u32 = 8;

/// Largest page body a write sends (D1 refuses values over 2 MB), and the most body bytes
/// one bucket-write statement carries. Each body is a parameter of its own and a deflated
/// page is far smaller (its JSON is bounded by `pages::HEAD_MAX_BYTES` and the bucket
/// load), so the first only guards against a bug.
const MAX_PARAM_BYTES: usize = 1_000_000;

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
    /// The database the user's pages are in: the configured one, until a fence says
    /// they moved ([`Store::arrived`]).
    db: RefCell<Rc<D1Database>>,
    router: Router<'a>,
    /// The user's bucket ([`shards::bucket`]).
    bucket: u32,
    user: UserId,
    ops: &'a Ops,
    ahead: Option<Ahead<'a>>,
}

/// The user's sequence (its state) and tombstone purge horizon.
#[derive(Debug, Clone, Copy, Default)]
pub struct State {
    pub seq: i64,
    pub horizon: i64,
}

/// A row of `sql::STATE`: the head's state, or the bucket's fence.
struct StateRow {
    fence: Option<String>,
    target: Option<String>,
    seq: Option<i64>,
    purge_horizon: Option<i64>,
}

impl io::FromRow for StateRow {
    fn from_row(r: io::Row<'_>) -> Result<Self, ApiError> {
        Ok(StateRow {
            fence: r.opt_text("fence")?,
            target: r.opt_text("target")?,
            seq: r.opt_int("seq")?,
            purge_horizon: r.opt_int("purge_horizon")?,
        })
    }
}

/// A row of `sql::HEAD` / `sql::ALL` (`page` only in `ALL`): a page, or (every page
/// column null) the bucket's fence.
struct PageRow {
    fence: Option<String>,
    target: Option<String>,
    page: Option<i64>,
    rev: Option<i64>,
    horizon: Option<i64>,
    push_id: Option<String>,
    buckets: Option<i64>,
    count: Option<i64>,
    dir: Option<String>,
    /// `hex(body)`.
    body: Option<String>,
}

impl io::FromRow for PageRow {
    fn from_row(r: io::Row<'_>) -> Result<Self, ApiError> {
        Ok(PageRow {
            fence: r.opt_text("fence")?,
            target: r.opt_text("target")?,
            page: r.opt_int("page")?,
            rev: r.opt_int("rev")?,
            horizon: r.opt_int("horizon")?,
            push_id: r.opt_text("push_id")?,
            buckets: r.opt_int("buckets")?,
            count: r.opt_int("count")?,
            dir: r.opt_text("dir")?,
            body: r.opt_text("body")?,
        })
    }
}

/// A bucket row as `sql::BUCKETS` selects it.
struct BucketRow {
    page: u32,
    /// `hex(body)`.
    body: String,
}

impl io::FromRow for BucketRow {
    fn from_row(r: io::Row<'_>) -> Result<Self, ApiError> {
        Ok(BucketRow { page: page_number(Some(r.int("page")?))?, body: r.text("body")? })
    }
}

fn page_number(n: Option<i64>) -> Result<u32, ApiError> {
    let n = n.unwrap_or(0);
    u32::try_from(n).map_err(|_| ApiError::Internal(format!("not a page number: {n}")))
}

/// A page's records from its `hex(body)` (none when the row has no page).
fn body_of(hex: Option<&str>) -> Result<Vec<pages::Entry>, ApiError> {
    hex.map_or(Ok(Vec::new()), codec::decode_hex)
}

/// The head of a row; a row without one (no pages here) is an empty head.
fn head_of(row: PageRow) -> Result<Head, ApiError> {
    let Some(seq) = row.rev else { return Ok(Head::default()) };
    Ok(Head {
        seq,
        horizon: row.horizon.unwrap_or(0),
        push_id: row.push_id,
        buckets: page_number(row.buckets)?,
        count: u64::try_from(row.count.unwrap_or(0)).unwrap_or(0),
        dir: serde_json::from_str(row.dir.as_deref().unwrap_or("[]"))?,
        entries: body_of(row.body.as_deref())?,
    })
}

fn state_of(p: &Pages) -> State {
    State { seq: p.head.seq, horizon: p.head.horizon }
}

/// A pull from before the purge horizon would miss purged deletions (0 means "from the
/// beginning": nothing to miss).
fn check_horizon(since: i64, state: State) -> Result<(), ApiError> {
    if since > 0 && since < state.horizon {
        return Err(ApiError::ResetRequired { horizon: state.horizon });
    }
    Ok(())
}

/// A unique id for one write: the head carries it, the bucket writes check it.
fn push_id(now: i64) -> String {
    let r = || (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
    format!("{now:x}-{:x}-{:x}", r(), r())
}

fn keys(changes: &[Change]) -> Vec<Key> {
    changes.iter().map(|c| (c.entity.name, c.id.as_str().to_owned())).collect()
}

/// Bucket reads add what they found ([`Pages::absorb`]; for a push's `keys`, sealed where
/// it can); a bucket not in D1 yet (never written) reads empty.
fn absorb(p: &mut Pages, wanted: &[u32], res: &io::Rows, keys: Option<&[Key]>) -> Result<(), ApiError> {
    let rows = io::rows::<BucketRow>(res)?;
    p.absorb(wanted, rows.iter().map(|r| (r.page, r.body.as_str())), keys)
}

impl<'a> Store<'a> {
    /// The store of `user`, in the database the router says holds the user's bucket.
    pub fn new(router: Router<'a>, user: UserId, ops: &'a Ops) -> Result<Self, ApiError> {
        let bucket = shards::bucket(user.as_str());
        Ok(Store { db: RefCell::new(router.home(bucket)?), router, bucket, user, ops, ahead: None })
    }

    fn db(&self) -> Rc<D1Database> {
        self.db.borrow().clone()
    }

    fn bucket_param(&self) -> JsValue {
        num(i64::from(self.bucket))
    }

    /// Whether a read that met `fence` may use what it read here (`write`: for a write).
    /// A moved bucket switches this store to its new database (the caller reads again
    /// there); a bucket being moved refuses writes (`busy`, retried by the client).
    fn arrived(&self, (state, target): (Option<&str>, Option<&str>), write: bool) -> Result<bool, ApiError> {
        let fence = Fence::from_row(state, target)?;
        match shards::hop(&fence, write)? {
            Hop::Here => Ok(true),
            Hop::Follow(to) => {
                *self.db.borrow_mut() = self.router.follow(self.bucket, to)?;
                Ok(false)
            }
        }
    }

    /// Runs a fenced read (`sql::STATE` / `HEAD` / `ALL`) until it is answered by the
    /// database the user's pages are in, and returns its page rows (the fence row, if
    /// any, taken out); `busy` past [`shards::MAX_HOPS`].
    async fn fenced<T: io::FromRow>(
        &self,
        sql: &str,
        write: bool,
        fence: impl Fn(&T) -> (Option<&str>, Option<&str>),
    ) -> Result<Vec<T>, ApiError> {
        for _ in 0..shards::MAX_HOPS {
            let res = self.batch(vec![self.stmt(sql, &[self.bucket_param()])?]).await?;
            let (fences, rows): (Vec<T>, Vec<T>) =
                io::rows::<T>(&res[0])?.into_iter().partition(|r| fence(r).0.is_some());
            let at = fences.first().map_or((None, None), &fence);
            if self.arrived(at, write)? {
                return Ok(rows);
            }
        }
        Err(ApiError::Busy)
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

    /// A statement whose `?1` is this store's user.
    fn stmt(&self, sql: &str, params: &[JsValue]) -> Result<D1PreparedStatement, ApiError> {
        let mut all = Vec::with_capacity(params.len() + 1);
        all.push(text(self.user.as_str()));
        all.extend_from_slice(params);
        Ok(self.db().prepare(sql).bind(&all)?)
    }

    async fn batch(&self, statements: Vec<D1PreparedStatement>) -> Result<Vec<io::Rows>, ApiError> {
        io::batch(&self.db(), self.ops, statements).await
    }

    fn buckets_stmt(&self, wanted: &[u32]) -> Result<D1PreparedStatement, ApiError> {
        let pages: Vec<u32> = wanted.iter().map(|&b| pages::page_of(b)).collect();
        self.stmt(sql::BUCKETS, &[text(&serde_json::to_string(&pages)?)])
    }

    /// The head (a user who never wrote has an empty one), for a read or a `write`.
    async fn head(&self, write: bool) -> Result<Pages, ApiError> {
        let rows = self.fenced::<PageRow>(sql::HEAD, write, |r| (r.fence.as_deref(), r.target.as_deref())).await?;
        let head = match rows.into_iter().next() {
            Some(row) => head_of(row)?,
            None => Head::default(),
        };
        Ok(Pages::new(head))
    }

    /// Reads the buckets in `wanted` (0-based) that are not read yet ([`Pages::to_read`]:
    /// D1 is asked only for those neither decoded, sealed, nor past the head's count).
    /// With a push's `keys`, see [`absorb`].
    async fn read(&self, p: &mut Pages, wanted: Vec<u32>, keys: Option<&[Key]>) -> Result<(), ApiError> {
        let wanted = p.to_read(wanted)?;
        if wanted.is_empty() {
            return Ok(());
        }
        let res = self.batch(vec![self.buckets_stmt(&wanted)?]).await?;
        absorb(p, &wanted, &res[0], keys)
    }

    /// Every page of the user in one statement, for a read or a `write`.
    async fn all(&self, write: bool) -> Result<Pages, ApiError> {
        let mut rows = self.fenced::<PageRow>(sql::ALL, write, |r| (r.fence.as_deref(), r.target.as_deref())).await?;
        let head = match rows.iter().position(|r| r.page == Some(0)) {
            Some(i) => head_of(rows.swap_remove(i))?,
            None => Head::default(),
        };
        let mut p = Pages::new(head);
        for row in rows {
            p.add_bucket(page_number(row.page)?, body_of(row.body.as_deref())?);
        }
        p.every_bucket_read();
        Ok(p)
    }

    /// The check: the head's state, one row, no records decoded.
    pub async fn state(&self) -> Result<State, ApiError> {
        let rows = self.fenced::<StateRow>(sql::STATE, false, |r| (r.fence.as_deref(), r.target.as_deref())).await?;
        Ok(rows
            .first()
            .map_or(State::default(), |r| State { seq: r.seq.unwrap_or(0), horizon: r.purge_horizon.unwrap_or(0) }))
    }

    /// Changes after `since` of one type or all: the head, then the buckets changed since.
    async fn pull(&self, since: i64, entity: Option<&'static str>, limit: i64) -> Result<(State, Page), ApiError> {
        let mut p = self.head(false).await?;
        let state = state_of(&p);
        check_horizon(since, state)?;
        let wanted = p.buckets_after(since);
        self.read(&mut p, wanted, None).await?;
        Ok((state, Page::cut(p.changes(since, entity, &[], limit)?, limit, state.seq)))
    }

    /// Every type's changes after `since` (the pull of `POST /api/sync`).
    pub async fn pull_all(&self, since: i64, limit: i64) -> Result<(State, Page), ApiError> {
        self.pull(since, None, limit).await
    }

    /// One type's changes after `since` (`GET /api/sync/{type}/changes`).
    pub async fn changes(&self, e: &'static Entity, since: i64, limit: i64) -> Result<(State, Page), ApiError> {
        self.pull(since, Some(e.name), limit).await
    }

    /// One page of a type's live records by id (`GET /api/sync/{type}`).
    pub async fn download(
        &self,
        e: &'static Entity,
        after: Option<&RecordId>,
        limit: i64,
    ) -> Result<(State, Vec<Box<RawValue>>, bool), ApiError> {
        let p = self.all(false).await?;
        let (records, has_more) = p.live(e.name, after.map_or("", RecordId::as_str), limit)?;
        Ok((state_of(&p), records, has_more))
    }

    /// Every page of the user, decoded (the admin export).
    pub async fn export(&self) -> Result<(State, Pages), ApiError> {
        let p = self.all(false).await?;
        Ok((state_of(&p), p))
    }

    /// The write batch of changed pages: the head first (the claim, guarded by the
    /// `push_id` it was read with), then the changed buckets.
    fn write_stmts(
        &self,
        p: &Pages,
        read_push_id: Option<&str>,
        now: i64,
    ) -> Result<Vec<D1PreparedStatement>, ApiError> {
        let id = push_id(now);
        let h = &p.head;
        let prev = read_push_id.map_or(JsValue::NULL, text);
        let body = |page: u32, entries: &[pages::Entry]| -> Result<Vec<u8>, ApiError> {
            let body = codec::encode(entries)?;
            if body.len() > MAX_PARAM_BYTES {
                return Err(ApiError::Internal(format!("page {page} is {} bytes deflated", body.len())));
            }
            Ok(body)
        };
        let mut stmts = vec![self.stmt(
            sql::WRITE_HEAD,
            &[
                num(h.seq),
                num(h.horizon),
                text(&id),
                num(i64::from(h.buckets)),
                num(i64::try_from(h.count).unwrap_or(i64::MAX)),
                text(&serde_json::to_string(&h.dir)?),
                blob(&body(0, &h.entries)?),
                prev,
                num_or_null(codec::tomb(&h.entries)?),
                self.bucket_param(),
            ],
        )?];
        // The changed buckets, each body a BLOB parameter of its own (a BLOB cannot travel
        // in a JSON parameter), as few statements as D1's 100 parameters and
        // MAX_PARAM_BYTES of bodies per statement allow, in the same batch (the same
        // transaction).
        let mut chunk: Vec<JsValue> = vec![text(&id)];
        let (mut rows, mut bytes) = (0, 0);
        for d in p.dirty() {
            let b = body(d.page, d.entries)?;
            if rows > 0 && (rows == sql::BUCKETS_PER_WRITE || bytes + b.len() > MAX_PARAM_BYTES) {
                stmts.push(self.stmt(&sql::write_buckets(rows), &chunk)?);
                chunk.truncate(1);
                (rows, bytes) = (0, 0);
            }
            chunk.extend([num(i64::from(d.page)), num(d.rev), num_or_null(codec::tomb(d.entries)?)]);
            bytes += b.len();
            chunk.push(blob(&b));
            rows += 1;
        }
        if rows > 0 {
            stmts.push(self.stmt(&sql::write_buckets(rows), &chunk)?);
        }
        Ok(stmts)
    }

    /// Runs `attempt` until it commits (`Some`), re-planning after a lost race on the
    /// user's head (`None`: nothing was written); `busy` after [`PUSH_ATTEMPTS`].
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

    /// Applies a plan to the pages (spilling the head if it outgrew its bounds, after
    /// reading the buckets the spill touches).
    async fn apply(&self, p: &mut Pages, plan: &Plan, prior: &pages::Prior) -> Result<(), ApiError> {
        p.apply(plan, prior)?;
        if let Some(spill) = p.spill_needed() {
            self.read(p, spill.reads(), None).await?;
            p.spill(&spill)?;
        }
        Ok(())
    }

    /// Applies a push atomically and, when `pull` is `(since, limit)`, pulls in the same
    /// transaction, leaving out the push's own rows. Optimistic: if another write of the
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
        let mut p = self.head(true).await?;
        let state = state_of(&p);
        if let Some((since, _)) = pull {
            check_horizon(since, state)?;
        }
        let keys = keys(changes);
        let wanted = p.buckets_for(keys.iter().map(|(t, id)| (*t, id.as_str())));
        self.read(&mut p, wanted, Some(&keys)).await?;
        let current = p.current(keys)?;
        let plan = plan::plan(changes, current.stored, state.seq, now)?;

        if !plan.changes_anything() {
            let page = match pull {
                Some((since, limit)) => {
                    let wanted = p.buckets_after(since);
                    self.read(&mut p, wanted, None).await?;
                    Some(Page::cut(p.changes(since, None, &[], limit)?, limit, state.seq))
                }
                None => None,
            };
            return Ok(Some((plan, page)));
        }

        let read_push_id = p.head.push_id.clone();
        self.apply(&mut p, &plan, &current.prior).await?;
        let mut stmts = self.write_stmts(&p, read_push_id.as_deref(), now)?;
        // The pull reads, in the same transaction, the buckets this push did not.
        let pull_reads = match pull {
            Some((since, _)) => {
                let after = p.buckets_after(since);
                p.to_read(after)?
            }
            None => Vec::new(),
        };
        if !pull_reads.is_empty() {
            stmts.push(self.buckets_stmt(&pull_reads)?);
        }
        self.ahead(plan.seq).await;
        let res = self.batch(stmts).await?;
        if io::rows::<serde_json::Map<String, serde_json::Value>>(&res[0])?.is_empty() {
            return Ok(None); // lost the race: nothing was written
        }
        let page = match pull {
            Some((since, limit)) => {
                if let (false, Some(last)) = (pull_reads.is_empty(), res.last()) {
                    absorb(&mut p, &pull_reads, last, None)?;
                }
                Some(Page::cut(p.changes(since, None, &plan.revs, limit)?, limit, plan.seq))
            }
            None => None,
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
        self.optimistic(async || self.try_replace_all(e, records, cursor, now).await).await
    }

    async fn try_replace_all(
        &self,
        e: &'static Entity,
        records: &[Change],
        cursor: i64,
        now: i64,
    ) -> Result<Option<(Plan, usize)>, ApiError> {
        let mut p = self.all(true).await?;
        let state = state_of(&p);
        if p.max_rev(e.name) > cursor {
            return Err(ApiError::SyncConflict { server_cursor: state.seq, client_cursor: cursor });
        }
        let current = p.of_type(e.name)?;
        // The upload is the whole truth: its records are taken as they are, and every
        // live record it leaves out is deleted.
        let (changes, deleted) = plan::upload(e, records, &current.stored)?;
        let plan = plan::plan(&changes, current.stored.clone(), state.seq, now)?;
        // Upload versions are the server's to pick, so the only conflict is a record that
        // can take no more versions; the upload is the whole truth, so it is refused whole.
        if let Some(c) = plan.conflicts.first() {
            return Err(ApiError::VersionExhausted { id: c.id.to_string() });
        }
        if !plan.changes_anything() {
            return Ok(Some((plan, deleted)));
        }
        let read_push_id = p.head.push_id.clone();
        self.apply(&mut p, &plan, &current.prior).await?;
        let stmts = self.write_stmts(&p, read_push_id.as_deref(), now)?;
        self.ahead(plan.seq).await;
        let res = self.batch(stmts).await?;
        if io::rows::<serde_json::Map<String, serde_json::Value>>(&res[0])?.is_empty() {
            return Ok(None);
        }
        Ok(Some((plan, deleted)))
    }

    /// The daily purge for this user: removes tombstones deleted before `cutoff` and
    /// raises the purge horizon. Returns how many records it removed.
    pub async fn purge(&self, cutoff: i64, now: i64) -> Result<usize, ApiError> {
        self.optimistic(async || {
            let mut p = self.all(true).await?;
            let read_push_id = p.head.push_id.clone();
            let removed = p.purge(cutoff)?;
            if removed == 0 {
                return Ok(Some(0));
            }
            let res = self.batch(self.write_stmts(&p, read_push_id.as_deref(), now)?).await?;
            Ok((!io::rows::<serde_json::Map<String, serde_json::Value>>(&res[0])?.is_empty()).then_some(removed))
        })
        .await
    }
}
