//! Packed storage: a user's records live in a few D1 rows ("pages"), not in a row plus an
//! index entry each, because D1 counts rows written, not bytes (a 1 KB and a 100 KB row
//! both count 1). Pure: the store reads pages, this module decides what they become.
//!
//! - **The head** (page 0) is the user's state (sequence, purge horizon, the id of the
//!   last write) and the records changed most recently. Every push rewrites the head and,
//!   for a user with up to [`HEAD_MAX`] records, nothing else: one row written per push,
//!   and the head's optimistic check (`push_id`) is the push's claim on the sequence.
//! - **Buckets** (pages 1..=n) hold the rest, addressed by a hash of (type, id) with
//!   linear hashing, so a bucket is found without an index and split one at a time as the
//!   user grows (no push rewrites the whole set). A record in the head supersedes its
//!   copy in a bucket, so an edit of an old record writes only the head.
//! - When the head outgrows [`HEAD_MAX`] entries (or [`HEAD_MAX_BYTES`]), a push also
//!   **spills** the head's entries of at most [`SPILL_BUCKETS`] buckets (those holding
//!   its oldest entries) into them, and splits a bucket once their average passes
//!   [`BUCKET_LOAD`]; pages stay bounded, so a push's CPU does not grow with the user.
//! - The head keeps each bucket's newest rev (`dir`), so a pull from a cursor reads the
//!   head and only the buckets changed after the cursor: recent pulls read one row.

use crate::hash::{map_with_capacity, HashMap, HashSet};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::envelope::Stored;
use crate::error::ApiError;
use crate::plan::{Key, Plan};
use crate::reply::PullRow;

/// Head entries above which a push spills.
pub const HEAD_MAX: usize = 500;
/// A spill stops once the head is down to this many entries.
pub const HEAD_KEEP: usize = 400;
/// Head size (record bytes) above which a push spills; D1 allows 2 MB per value.
pub const HEAD_MAX_BYTES: usize = 512 * 1024;
/// Buckets one spill writes at most (bounds the rows and the CPU of that push), unless
/// the head is past twice [`HEAD_MAX`] (a push of many new records): then it spills down
/// to [`HEAD_KEEP`] whatever it takes, so the head stays bounded.
pub const SPILL_BUCKETS: usize = 8;
/// Average entries per bucket above which a spill splits a bucket.
pub const BUCKET_LOAD: u64 = 256;
/// Splits one push does at most.
pub const MAX_SPLITS: usize = 4;
/// Keys of one push in one bucket above which the bucket is decoded whole at once
/// ([`Pages::add_bucket_for`]): the scan compares every string of the page with each key,
/// and a push of that many records spills into most buckets anyway.
pub const SEAL_KEYS: usize = 8;

pub use edgesync_codec::Entry;

/// What the pages need of an entry beyond its fields.
trait EntryExt {
    fn key(&self) -> Key;
    /// Its share of a page's size bound.
    fn bytes(&self) -> usize;
    /// The record with its `type` first, as the all-types pull returns it.
    fn typed(&self) -> Result<Box<RawValue>, ApiError>;
    fn stored(&self) -> Result<Stored, ApiError>;
}

impl EntryExt for Entry {
    fn key(&self) -> Key {
        (self.entity, self.id.clone())
    }
    fn bytes(&self) -> usize {
        self.record_len() + self.id.len() + 40
    }
    fn typed(&self) -> Result<Box<RawValue>, ApiError> {
        let raw = self.record()?.get();
        let rest = raw.strip_prefix('{').ok_or_else(|| ApiError::Internal("stored record is not an object".into()))?;
        let sep = if rest.trim_start().starts_with('}') { "" } else { "," };
        Ok(RawValue::from_string(format!("{{\"type\":\"{}\"{sep}{rest}", self.entity))?)
    }
    fn stored(&self) -> Result<Stored, ApiError> {
        Stored::decode(self.record()?.get()).map_err(ApiError::Internal)
    }
}

/// FNV-1a over `type \0 id`: stable across builds and platforms, which the bucket
/// address of every stored record depends on.
pub fn hash(entity: &str, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in entity.bytes().chain([0]).chain(id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Linear hashing: the bucket (0-based) of hash `h` among `n >= 1` buckets.
pub fn address(h: u64, n: u32) -> u32 {
    let n = u64::from(n.max(1));
    let level = 63 - n.leading_zeros();
    let a = h & ((1u64 << (level + 1)) - 1);
    let a = if a < n { a } else { a - (1u64 << level) };
    u32::try_from(a).unwrap_or(0)
}

fn bucket_of(entity: &str, id: &str, n: u32) -> u32 {
    address(hash(entity, id), n)
}

/// A head entry as a spill weighs it: its rev, its share of the byte bound, its key.
type Aged<'a> = (i64, usize, &'static str, &'a str);

fn aged(e: &Entry) -> Aged<'_> {
    (e.rev, e.bytes(), e.entity, e.id.as_str())
}

/// Values by key, kept in a vector whose places a `HashMap<K, usize>` finds: the hash
/// tables the wasm holds anyway (the head's index, `Lookups::scans`), not one per value
/// type (each such table cost 0.2-0.7 KB gzip, measured where this replaced them).
#[derive(Debug)]
struct Slots<K, V> {
    at: HashMap<K, usize>,
    values: Vec<V>,
}

impl<K, V> Default for Slots<K, V> {
    fn default() -> Self {
        Slots { at: HashMap::default(), values: Vec::new() }
    }
}

impl<K: std::hash::Hash + Eq, V> Slots<K, V> {
    fn get(&self, key: &K) -> Option<&V> {
        self.at.get(key).and_then(|&i| self.values.get(i))
    }

    /// The key's value, made by `new` if it has none yet.
    fn get_or_insert_with(&mut self, key: K, new: impl FnOnce() -> V) -> &mut V {
        let values = &mut self.values;
        let i = *self.at.entry(key).or_insert_with(|| {
            values.push(new());
            values.len() - 1
        });
        &mut values[i]
    }
}

/// Per decoded bucket: how often it was searched, and its index (entity and id to
/// position) once it was searched more than [`Lookups::SCANS`] times.
#[derive(Default)]
struct Lookups<'p> {
    scans: HashMap<u32, usize>,
    indexes: Slots<u32, HashMap<(&'static str, &'p str), usize>>,
}

impl<'p> Lookups<'p> {
    /// Scans of a bucket before it is indexed: an index costs a hash per entry (a bucket
    /// holds about [`BUCKET_LOAD`]), a scan a comparison per entry.
    const SCANS: usize = 8;

    fn find(&mut self, b: u32, bucket: &'p [Entry], key: &Key) -> Option<&'p Entry> {
        let index = match self.indexes.get(&b) {
            Some(index) => index,
            None => {
                let scans = self.scans.entry(b).or_default();
                *scans += 1;
                if *scans <= Self::SCANS {
                    return bucket.iter().find(|e| e.entity == key.0 && e.id == key.1);
                }
                self.indexes.get_or_insert_with(b, || index_of(bucket))
            }
        };
        bucket.get(*index.get(&(key.0, key.1.as_str()))?)
    }
}

/// Entity and id to position, for the entries of a bucket (the first of a key, as a scan
/// finds it).
fn index_of(entries: &[Entry]) -> HashMap<(&'static str, &str), usize> {
    let mut index = map_with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        index.entry((e.entity, e.id.as_str())).or_insert(i);
    }
    index
}

/// `incoming` written into `bucket`: an entry replaces the one of its entity and id, or is
/// added, one after another (a later entry of the same key replaces an earlier one).
/// Beyond a few entries, one pass over the bucket finds them all (through an index of
/// `incoming`'s keys) instead of one scan each. Returns how many were added.
fn merge(bucket: &mut Vec<Entry>, incoming: Vec<Entry>) -> u64 {
    let mut added = 0u64;
    if incoming.len() <= Lookups::SCANS {
        for e in incoming {
            match bucket.iter_mut().find(|x| x.entity == e.entity && x.id == e.id) {
                Some(x) => *x = e,
                None => {
                    bucket.push(e);
                    added = added.saturating_add(1);
                }
            }
        }
        return added;
    }
    // Each key's last entry in `incoming` (the one that stays), and where the bucket has it.
    let mut last: HashMap<(&'static str, &str), usize> = HashMap::default();
    for (j, e) in incoming.iter().enumerate() {
        last.insert((e.entity, e.id.as_str()), j);
    }
    let mut slots = vec![None; incoming.len()];
    for (i, x) in bucket.iter().enumerate() {
        if let Some(slot) = last.get(&(x.entity, x.id.as_str())).and_then(|&j| slots.get_mut(j)) {
            *slot = Some(i);
        }
    }
    let stays: Vec<bool> =
        incoming.iter().enumerate().map(|(j, e)| last.get(&(e.entity, e.id.as_str())) == Some(&j)).collect();
    drop(last);
    for ((e, slot), stays) in incoming.into_iter().zip(slots).zip(stays) {
        match (stays, slot.and_then(|i| bucket.get_mut(i))) {
            (false, _) => {}
            (true, Some(x)) => *x = e,
            (true, None) => {
                bucket.push(e);
                added = added.saturating_add(1);
            }
        }
    }
    added
}

/// The head row: the user's state and its recent records.
#[derive(Debug, Default, Clone)]
pub struct Head {
    pub seq: i64,
    pub horizon: i64,
    /// The id of the last write (push or purge): the next write applies only over it.
    pub push_id: Option<String>,
    pub buckets: u32,
    /// Entries across all buckets (the split trigger).
    pub count: u64,
    /// Newest rev in each bucket.
    pub dir: Vec<i64>,
    pub entries: Vec<Entry>,
}

/// A bucket that changed, to write: its page number, newest rev, and entries.
pub struct Dirty<'a> {
    pub page: u32,
    pub rev: i64,
    pub entries: &'a [Entry],
}

/// A user's pages as read: the head, and the buckets read so far (by 0-based index).
#[derive(Debug, Default, Clone)]
pub struct Pages {
    pub head: Head,
    /// Buckets read and decoded.
    pub buckets: HashMap<u32, Vec<Entry>>,
    /// Buckets read for a push's keys, kept with only those keys' records
    /// ([`Pages::add_bucket_for`]), decoded whole only if the push needs them after all
    /// ([`Pages::to_read`]: a spill into them, a pull through them).
    sealed: HashMap<u32, Sealed>,
    dirty: HashSet<u32>,
    index: HashMap<Key, usize>,
}

/// A bucket read but not decoded: its JSON text and format tag, the keys looked for in it,
/// and the entries of those found.
#[derive(Debug, Clone)]
struct Sealed {
    tag: u8,
    json: String,
    checked: Vec<Key>,
    found: Vec<Entry>,
}

/// The spill a push must do, and the buckets it needs read first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spill {
    /// Buckets (0-based) whose head entries move out.
    pub targets: Vec<u32>,
    /// The bucket count the spill addresses with (at least 1).
    pub n: u32,
    /// Only entries older than this rev move.
    pub before: i64,
    /// Buckets split after the spill, in order (each adds bucket `n`, `n + 1`, …).
    pub splits: Vec<u32>,
}

impl Spill {
    /// Every bucket the spill reads before it writes.
    pub fn reads(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.targets.iter().chain(&self.splits).copied().collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// The page number of bucket `i`.
pub fn page_of(i: u32) -> u32 {
    i + 1
}

impl Pages {
    pub fn new(head: Head) -> Pages {
        let mut p = Pages { head, ..Pages::default() };
        p.reindex();
        p
    }

    /// Rebuilds the key → head position index after the head's entries were replaced.
    fn reindex(&mut self) {
        self.index = self.head.entries.iter().enumerate().map(|(i, e)| (e.key(), i)).collect();
    }

    /// Adds a bucket read from D1 (`page` >= 1).
    pub fn add_bucket(&mut self, page: u32, entries: Vec<Entry>) {
        if let Some(i) = page.checked_sub(1) {
            self.buckets.insert(i, entries);
        }
    }

    /// Adds what a read of the buckets `wanted` (0-based) returned: each row's page and
    /// `hex(body)`, for a push's `keys` as `add_bucket_for` says. A wanted bucket
    /// without a row (never written) reads as empty.
    pub fn absorb<'r>(
        &mut self,
        wanted: &[u32],
        rows: impl IntoIterator<Item = (u32, &'r str)>,
        keys: Option<&[Key]>,
    ) -> Result<(), ApiError> {
        // The push's spill, foreseen when a bucket first needs it.
        let mut likely = None;
        for (page, hex) in rows {
            match keys {
                Some(keys) => self.add_bucket_for(page, hex, keys, &mut likely)?,
                None => self.add_bucket(page, crate::codec::decode_hex(hex)?),
            }
        }
        for &b in wanted {
            // A sealed bucket was read: an empty one in its place would hide its records.
            if !self.sealed.contains_key(&b) {
                self.buckets.entry(b).or_default();
            }
        }
        Ok(())
    }

    /// Adds a bucket read from D1 (`page` >= 1, its `hex(body)`) for a push of `keys`. A
    /// push asks for the buckets its keys address only for their stored records, and
    /// writes few of those buckets (a spill's): the page is kept sealed (inflated, not
    /// decoded) with the records of those keys. When no string in the page is one of their
    /// ids (new records) nothing is parsed; otherwise only their records are rebuilt,
    /// unless the bucket is likely to be written by the push's spill ([`Pages::likely_spill`],
    /// kept in `likely` for the push's other buckets), which decodes it whole.
    fn add_bucket_for(
        &mut self,
        page: u32,
        hex: &str,
        keys: &[Key],
        likely: &mut Option<Option<Vec<u32>>>,
    ) -> Result<(), ApiError> {
        let Some(b) = page.checked_sub(1) else { return Ok(()) };
        let (tag, json) = crate::codec::inflate(&crate::codec::from_hex(hex)?)?;
        let n = self.head.buckets;
        let mine = |k: &&Key| bucket_of(k.0, &k.1, n) == b && !self.index.contains_key(*k);
        let ids: Vec<&str> = keys.iter().filter(mine).take(SEAL_KEYS + 1).map(|k| k.1.as_str()).collect();
        if ids.is_empty() || ids.len() > SEAL_KEYS {
            self.buckets.insert(b, crate::codec::decode_json(tag, json)?);
            return Ok(());
        }
        let found = match crate::codec::mentions(&json, &ids) {
            false => Vec::new(),
            // A spill decodes its buckets whole later: a partial decode first would parse
            // them twice (a wrong guess costs only that).
            true if likely.get_or_insert_with(|| self.likely_spill(keys)).as_ref().is_none_or(|l| l.contains(&b)) => {
                self.buckets.insert(b, crate::codec::decode_json(tag, json)?);
                return Ok(());
            }
            true => crate::codec::decode_json_only(tag, &json, &ids)?,
        };
        let checked = keys.iter().filter(mine).cloned().collect();
        self.sealed.insert(b, Sealed { tag, json, checked, found });
        Ok(())
    }

    /// The buckets of `wanted` to ask D1 for, then to give to [`Pages::absorb`]: a sealed
    /// one is decoded from the text already read, a decoded one is left out, and one past
    /// the head's count does not exist yet and reads as empty.
    pub fn to_read(&mut self, wanted: Vec<u32>) -> Result<Vec<u32>, ApiError> {
        let n = self.head.buckets;
        let mut out = Vec::new();
        for b in self.unseal(wanted)? {
            match self.buckets.contains_key(&b) {
                true => {}
                false if b < n => out.push(b),
                false => {
                    self.buckets.insert(b, Vec::new());
                }
            }
        }
        Ok(out)
    }

    /// Decodes the sealed buckets among `wanted`; returns the rest of `wanted`.
    fn unseal(&mut self, wanted: Vec<u32>) -> Result<Vec<u32>, ApiError> {
        let mut rest = Vec::with_capacity(wanted.len());
        for b in wanted {
            match self.sealed.remove(&b) {
                Some(Sealed { tag, json, .. }) => {
                    self.buckets.insert(b, crate::codec::decode_json(tag, json)?);
                }
                None => rest.push(b),
            }
        }
        Ok(rest)
    }

    fn in_head(&self, entity: &str, id: &str) -> bool {
        self.index.contains_key(&(entity_static(entity), id.to_string()))
    }

    /// The buckets of `wanted` not decoded yet (a sealed one among them: its reader
    /// unseals it).
    fn missing(&self, wanted: impl IntoIterator<Item = u32>) -> Vec<u32> {
        let mut v: Vec<u32> = wanted.into_iter().filter(|b| !self.buckets.contains_key(b)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Buckets (0-based, not yet read) that may hold these keys: those not in the head.
    pub fn buckets_for<'k>(&self, keys: impl IntoIterator<Item = (&'k str, &'k str)>) -> Vec<u32> {
        if self.head.buckets == 0 {
            return Vec::new();
        }
        let n = self.head.buckets;
        self.missing(keys.into_iter().filter(|(t, id)| !self.in_head(t, id)).map(|(t, id)| bucket_of(t, id, n)))
    }

    /// Buckets (not yet read) holding a change after `since`.
    pub fn buckets_after(&self, since: i64) -> Vec<u32> {
        let changed = self.head.dir.iter().enumerate().filter(|(_, rev)| **rev > since);
        self.missing(changed.filter_map(|(i, _)| u32::try_from(i).ok()))
    }

    /// After a read of every page of the user: each bucket that had no row was never
    /// written, so it is read as empty.
    pub fn every_bucket_read(&mut self) {
        for b in self.missing(0..self.head.buckets) {
            self.buckets.insert(b, Vec::new());
        }
    }

    /// The current entry of `key`, if any. A decoded bucket searched more than
    /// [`Lookups::SCANS`] times through the same `lookups` gets an index of its own, so that
    /// a push of many keys does not scan its buckets once per key (a push of 1,000 new
    /// records into a user of 5,000 compared ids about 650,000 times).
    fn find<'p>(&'p self, key: &Key, lookups: &mut Lookups<'p>) -> Result<Option<&'p Entry>, ApiError> {
        if let Some(&i) = self.index.get(key) {
            return Ok(self.head.entries.get(i));
        }
        if self.head.buckets == 0 {
            return Ok(None);
        }
        let b = bucket_of(key.0, &key.1, self.head.buckets);
        if self.sealed.contains_key(&b) && self.buckets.contains_key(&b) {
            return Err(ApiError::Internal(format!("bucket {b} both sealed and decoded")));
        }
        match self.buckets.get(&b) {
            Some(bucket) => Ok(lookups.find(b, bucket, key)),
            None => match self.sealed.get(&b) {
                Some(s) if s.checked.contains(key) => Ok(s.found.iter().find(|e| e.entity == key.0 && e.id == key.1)),
                _ => Err(ApiError::Internal(format!("bucket {b} was not read"))),
            },
        }
    }

    /// The stored records of these keys (for the write rule), and what the store must know
    /// of each to write it back: its created rev and whether it is a tombstone.
    pub fn current(&self, keys: impl IntoIterator<Item = Key>) -> Result<Current, ApiError> {
        let mut out = Current::default();
        let mut lookups = Lookups::default();
        for key in keys {
            if out.stored.contains_key(&key) {
                continue;
            }
            if let Some(e) = self.find(&key, &mut lookups)? {
                out.prior.insert(key.clone(), (e.created_rev, e.deleted));
                out.stored.insert(key, e.stored()?);
            }
        }
        Ok(out)
    }

    /// Every current entry (head first, then buckets it does not supersede), unordered.
    /// Needs every bucket read.
    fn each(&self) -> impl Iterator<Item = &Entry> {
        let head = self.head.entries.iter();
        let rest = self.buckets.values().flatten().filter(|e| !self.index.contains_key(&e.key()));
        head.chain(rest)
    }

    /// Every current record of every type, tombstones included, by type and id (the
    /// operators' export). Needs every bucket read.
    pub fn export(&self) -> Result<Vec<Exported<'_>>, ApiError> {
        let mut rows: Vec<&Entry> = self.each().collect();
        rows.sort_unstable_by(|a, b| (a.entity, &a.id).cmp(&(b.entity, &b.id)));
        let mut out = Vec::with_capacity(rows.len());
        for e in rows {
            let record = e.record()?;
            out.push(Exported {
                entity: e.entity,
                id: &e.id,
                rev: e.rev,
                created_rev: e.created_rev,
                deleted: e.deleted,
                record,
            });
        }
        Ok(out)
    }

    /// Every stored record of a type (for the full upload). Needs every bucket read.
    pub fn of_type(&self, entity: &'static str) -> Result<Current, ApiError> {
        self.current(self.each().filter(|e| e.entity == entity).map(Entry::key).collect::<Vec<_>>())
    }

    /// The newest rev of a type. Needs every bucket read.
    pub fn max_rev(&self, entity: &str) -> i64 {
        self.each().filter(|e| e.entity == entity).map(|e| e.rev).max().unwrap_or(0)
    }

    /// Writes a plan's records into the head and advances the sequence.
    pub fn apply(&mut self, plan: &Plan, prior: &Prior) -> Result<(), ApiError> {
        for (entity, writes) in &plan.writes {
            for w in writes {
                let (id, rev, deleted) = (w.id.as_str().to_owned(), w.rev, w.deleted());
                let key: Key = (entity.name, id.clone());
                // A record that comes back from a tombstone counts as created again.
                let created_rev = match prior.get(&key) {
                    Some((created, was_deleted)) if !was_deleted || deleted => created,
                    _ => rev,
                };
                let entry = Entry::written(entity.name, id, rev, created_rev, w.deleted_at, w.record.clone());
                match self.index.get(&key) {
                    Some(&i) => self.head.entries[i] = entry,
                    None => {
                        self.index.insert(key, self.head.entries.len());
                        self.head.entries.push(entry);
                    }
                }
            }
        }
        self.head.seq = self.head.seq.max(plan.seq);
        Ok(())
    }

    fn head_bytes(&self) -> usize {
        self.head.entries.iter().map(Entry::bytes).sum()
    }

    /// The spill the head needs, if it outgrew its bounds.
    pub fn spill_needed(&self) -> Option<Spill> {
        let (len, bytes) = (self.head.entries.len(), self.head_bytes());
        if len <= HEAD_MAX && bytes <= HEAD_MAX_BYTES {
            return None;
        }
        // The first spill creates enough buckets for its entries to fall in several groups
        // (with one bucket, every entry would be in it and the whole head would move).
        let first = (len as u64).div_ceil(BUCKET_LOAD).max(2);
        let n = if self.head.buckets == 0 { u32::try_from(first).unwrap_or(2) } else { self.head.buckets };
        Some(self.spill_of(len, bytes, self.head.entries.iter().map(aged).collect(), n).0)
    }

    /// The buckets that the spill after a push of `keys` will likely write (its
    /// [`Spill::reads`]), foreseen from the head before the push, so that
    /// [`Pages::add_bucket_for`] decodes those whole at once and the others only in part:
    /// the push writes each of its keys into the head with a rev newer than every entry it
    /// leaves alone, at about the head's average size. `None` when the spill would move
    /// entries of the push itself, which cannot be foreseen.
    fn likely_spill(&self, keys: &[Key]) -> Option<Vec<u32>> {
        let n = self.head.buckets;
        if n == 0 {
            return Some(Vec::new());
        }
        // The pushed keys in a map of the type `index_of` makes (the value unused), not a
        // HashSet<(&str, &str)>: one hash table instantiation fewer (298,279 -> 297,753 B gzip).
        let pushed: HashMap<(&'static str, &str), usize> =
            keys.iter().enumerate().map(|(i, (t, id))| ((*t, id.as_str()), i)).collect();
        let kept: Vec<Aged> =
            self.head.entries.iter().filter(|e| !pushed.contains_key(&(e.entity, e.id.as_str()))).map(aged).collect();
        let average = self.head_bytes() / self.head.entries.len().max(1);
        let len = kept.len().saturating_add(pushed.len());
        let bytes = kept
            .iter()
            .map(|a| a.1)
            .fold(0, usize::saturating_add)
            .saturating_add(pushed.len().saturating_mul(average));
        if len <= HEAD_MAX && bytes <= HEAD_MAX_BYTES {
            return Some(Vec::new());
        }
        let (spill, all_move) = self.spill_of(len, bytes, kept, n);
        (!all_move).then(|| spill.reads())
    }

    /// The spill into `n` buckets of a head of `len` entries and `bytes` bytes, of which
    /// `aged` are the oldest (any others are newer than all of them), and whether every
    /// one of `aged` moves (then others may have to as well).
    fn spill_of(&self, len: usize, bytes: usize, mut aged: Vec<Aged>, n: u32) -> (Spill, bool) {
        // Only the oldest entries move: those before `before`, the rev from which the
        // head is back within HEAD_KEEP entries and half its byte bound. The newest stay,
        // so a pull from a recent cursor still reads the head alone.
        aged.sort_unstable_by_key(|a| a.0);
        let (mut left, mut left_bytes, mut before, mut moving) = (len, bytes, i64::MIN, 0);
        let back = |left: usize, left_bytes: usize| left <= HEAD_KEEP && left_bytes <= HEAD_MAX_BYTES / 2;
        for &(rev, size, _, _) in &aged {
            if back(left, left_bytes) {
                break;
            }
            before = rev.saturating_add(1);
            left = left.saturating_sub(1);
            left_bytes = left_bytes.saturating_sub(size);
            moving += 1;
        }
        let all_move = moving == aged.len() && !back(left, left_bytes);
        // Per bucket: the oldest rev among the head's old entries for it, and their count.
        // (In `Slots`; the sort below makes the order the same.)
        let mut groups: Slots<u32, (u32, (i64, usize))> = Slots::default();
        for &(rev, _, entity, id) in aged.iter().take_while(|a| a.0 < before) {
            let b = bucket_of(entity, id, n);
            let g = &mut groups.get_or_insert_with(b, || (b, (i64::MAX, 0))).1;
            g.0 = g.0.min(rev);
            g.1 += 1;
        }
        let mut order = groups.values;
        order.sort_unstable_by_key(|(b, (oldest, _))| (*oldest, *b));
        let capped = len <= 2 * HEAD_MAX && bytes <= 2 * HEAD_MAX_BYTES;
        let take = if capped { SPILL_BUCKETS } else { usize::MAX };
        let targets: Vec<u32> = order.iter().take(take).map(|(b, _)| *b).collect();
        let moved: u64 = order.iter().take(take).map(|(_, (_, c))| *c as u64).sum();
        let mut splits = Vec::new();
        let (mut buckets, count) = (n, self.head.count + moved);
        while splits.len() < MAX_SPLITS && count > BUCKET_LOAD * u64::from(buckets) {
            splits.push(buckets - (1u32 << (31 - buckets.leading_zeros())));
            buckets += 1;
        }
        (Spill { targets, n, before, splits }, all_move)
    }

    /// Moves the head's entries of the spill's targets into their buckets, then splits.
    /// The spill's [`Spill::reads`] must have been read (a bucket that does not exist yet
    /// reads as empty).
    pub fn spill(&mut self, spill: &Spill) -> Result<(), ApiError> {
        // A bucket it writes that was not decoded would be written back without its records.
        for b in self.unseal(spill.reads())? {
            if b < self.head.buckets && !self.buckets.contains_key(&b) {
                return Err(ApiError::Internal(format!("spill into unread bucket {b}")));
            }
        }
        let n = spill.n;
        if self.head.buckets < n {
            // New buckets start empty (no row until one is written).
            for b in self.head.buckets..n {
                self.buckets.entry(b).or_default();
            }
            self.head.buckets = n;
            self.head.dir.resize(n as usize, 0);
        }
        let targets: HashSet<u32> = spill.targets.iter().copied().collect();
        let (moving, staying): (Vec<Entry>, Vec<Entry>) = std::mem::take(&mut self.head.entries)
            .into_iter()
            .partition(|e| e.rev < spill.before && targets.contains(&bucket_of(e.entity, &e.id, n)));
        self.head.entries = staying;
        self.reindex();
        // Each target bucket takes its moving entries at once, through an index of its ids
        // when there are more than a few (an uncapped spill moves hundreds into each).
        let mut by_bucket: HashMap<u32, Vec<Entry>> = HashMap::default();
        for e in moving {
            by_bucket.entry(bucket_of(e.entity, &e.id, n)).or_default().push(e);
        }
        for (b, incoming) in by_bucket {
            let added = merge(self.buckets.entry(b).or_default(), incoming);
            self.head.count = self.head.count.saturating_add(added);
            self.dirty.insert(b);
        }
        for &source in &spill.splits {
            self.split(source)?;
        }
        for b in self.dirty.clone() {
            self.refresh_dir(b);
        }
        Ok(())
    }

    /// Linear hashing's split: bucket `source` gives the entries that now address the
    /// new last bucket.
    fn split(&mut self, source: u32) -> Result<(), ApiError> {
        let new = self.head.buckets;
        let n = new + 1;
        let entries = self
            .buckets
            .remove(&source)
            .ok_or_else(|| ApiError::Internal(format!("split of unread bucket {source}")))?;
        let (moving, staying): (Vec<Entry>, Vec<Entry>) =
            entries.into_iter().partition(|e| bucket_of(e.entity, &e.id, n) == new);
        self.buckets.insert(source, staying);
        self.buckets.insert(new, moving);
        self.head.buckets = n;
        self.head.dir.resize(n as usize, 0);
        self.dirty.extend([source, new]);
        Ok(())
    }

    fn refresh_dir(&mut self, b: u32) {
        let newest = self.buckets.get(&b).and_then(|v| v.iter().map(|e| e.rev).max()).unwrap_or(0);
        if let Some(slot) = self.head.dir.get_mut(b as usize) {
            *slot = newest;
        }
    }

    /// Buckets changed since they were read, to write with the head.
    pub fn dirty(&self) -> Vec<Dirty<'_>> {
        let mut v: Vec<Dirty<'_>> = self
            .dirty
            .iter()
            .filter_map(|&b| {
                let entries = self.buckets.get(&b)?;
                Some(Dirty { page: page_of(b), rev: self.head.dir.get(b as usize).copied().unwrap_or(0), entries })
            })
            .collect();
        v.sort_unstable_by_key(|d| d.page);
        v
    }

    /// Changes after `since` in rev order (at most `limit + 1`, for [`crate::reply::Page::cut`]),
    /// of one type or all (then each record carries its `type`), leaving out `exclude`
    /// (a push's own revs). Needs [`Pages::buckets_after`] read.
    pub fn changes(
        &self,
        since: i64,
        entity: Option<&'static str>,
        exclude: &[i64],
        limit: i64,
    ) -> Result<Vec<PullRow>, ApiError> {
        if let Some(b) = self.buckets_after(since).first() {
            return Err(ApiError::Internal(format!("pull without bucket {b}")));
        }
        // A plan's revs ascend (each applied change takes the next one), so they are
        // searched where they are, without a HashSet<i64>: a hash table instantiation of
        // its own in the wasm (304,617 -> 304,559 B gzip). Any other order is scanned.
        let sorted = exclude.is_sorted();
        let excluded = |rev: &i64| if sorted { exclude.binary_search(rev).is_ok() } else { exclude.contains(rev) };
        let seq = self.head.seq;
        let mut rows: Vec<&Entry> = self
            .each()
            .filter(|e| e.rev > since && e.rev <= seq && !excluded(&e.rev))
            .filter(|e| entity.is_none_or(|t| t == e.entity))
            .collect();
        rows.sort_unstable_by_key(|e| e.rev);
        rows.truncate(usize::try_from(limit).unwrap_or(0).saturating_add(1));
        rows.into_iter()
            .map(|e| {
                Ok(PullRow {
                    entity: e.entity,
                    rev: e.rev,
                    id: e.id.clone(),
                    deleted: e.deleted,
                    created: e.created_rev > since,
                    record: if entity.is_some() { e.record()?.to_owned() } else { e.typed()? },
                })
            })
            .collect()
    }

    /// A type's live records in id order after `after`: at most `limit`, and whether more
    /// follow. Needs every bucket read.
    pub fn live(&self, entity: &str, after: &str, limit: i64) -> Result<(Vec<Box<RawValue>>, bool), ApiError> {
        let mut rows: Vec<&Entry> =
            self.each().filter(|e| e.entity == entity && !e.deleted && e.id.as_str() > after).collect();
        rows.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let limit = usize::try_from(limit).unwrap_or(0);
        let has_more = rows.len() > limit;
        let mut records = Vec::with_capacity(rows.len().min(limit));
        for e in rows.into_iter().take(limit) {
            records.push(e.record()?.to_owned());
        }
        Ok((records, has_more))
    }

    /// Removes tombstones deleted before `cutoff` (every copy of such a record) and raises
    /// the purge horizon to the newest rev removed. Needs every bucket read. Returns how
    /// many records it removed.
    pub fn purge(&mut self, cutoff: i64) -> Result<usize, ApiError> {
        let old =
            |e: &Entry| -> Result<bool, ApiError> { Ok(e.deleted && e.deleted_at()?.is_some_and(|at| at < cutoff)) };
        // The doomed keys in a map of the type the head's index is (the value unused), not
        // a HashSet<Key>: one hash table instantiation fewer (297,753 -> 296,983 B gzip).
        let mut doomed: HashMap<Key, usize> = HashMap::default();
        let mut horizon = self.head.horizon;
        for e in self.each() {
            if old(e)? {
                doomed.insert(e.key(), 0);
                horizon = horizon.max(e.rev);
            }
        }
        self.head.horizon = horizon;
        // An old tombstone in a bucket that the head supersedes goes too (nothing to raise:
        // the record lives on), so the daily search does not find it again.
        let mut stale = false;
        for entries in self.buckets.values() {
            for e in entries {
                stale |= self.index.contains_key(&e.key()) && old(e)?;
            }
        }
        if doomed.is_empty() && !stale {
            return Ok(0);
        }
        self.head.entries.retain(|e| !doomed.contains_key(&e.key()));
        self.reindex();
        let index = &self.index;
        for (b, entries) in &mut self.buckets {
            let before = entries.len();
            let goes =
                |e: &Entry| doomed.contains_key(&e.key()) || (index.contains_key(&e.key()) && old(e).unwrap_or(false));
            entries.retain(|e| !goes(e));
            if entries.len() != before {
                self.head.count = self.head.count.saturating_sub((before - entries.len()) as u64);
                self.dirty.insert(*b);
            }
        }
        for b in self.dirty.clone() {
            self.refresh_dir(b);
        }
        Ok(doomed.len().max(usize::from(stale)))
    }
}

/// A record as the admin export shows it.
#[derive(Debug, Serialize)]
pub struct Exported<'a> {
    #[serde(rename = "type")]
    pub entity: &'static str,
    pub id: &'a str,
    pub rev: i64,
    pub created_rev: i64,
    pub deleted: bool,
    pub record: &'a RawValue,
}

/// What [`Pages::current`] found: the records, and for each its created rev and whether
/// it is a tombstone.
#[derive(Debug, Default)]
pub struct Current {
    pub stored: HashMap<Key, Stored>,
    pub prior: Prior,
}

/// Each found key's created rev and whether it is a tombstone (in `Slots`, not a
/// HashMap<Key, (i64, bool)> of its own: 295,250 -> 294,715 B gzip).
#[derive(Debug, Default)]
pub struct Prior(Slots<Key, (i64, bool)>);

impl Prior {
    fn insert(&mut self, key: Key, was: (i64, bool)) {
        *self.0.get_or_insert_with(key, || was) = was;
    }

    pub fn get(&self, key: &Key) -> Option<(i64, bool)> {
        self.0.get(key).copied()
    }
}

/// A type name as the `&'static str` keys use (unknown names map to a name no key has).
fn entity_static(name: &str) -> &'static str {
    crate::entities::entity(name).map_or("", |e| e.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_change;
    use crate::plan::plan;
    use serde_json::json;

    fn push(p: &mut Pages, changes: &[serde_json::Value], now: i64) -> Plan {
        push_foreseen(p, changes, now).0
    }

    /// [`push`], and the spill it foresaw before it ([`Pages::likely_spill`]) beside the
    /// one it made.
    fn push_foreseen(
        p: &mut Pages,
        changes: &[serde_json::Value],
        now: i64,
    ) -> (Plan, Option<Vec<u32>>, Option<Spill>) {
        let changes: Vec<_> = changes.iter().map(|c| parse_change(c, "c", None).unwrap()).collect();
        let keys: Vec<Key> = changes.iter().map(|c| (c.entity.name, c.id.as_str().to_string())).collect();
        let foreseen = p.likely_spill(&keys);
        let cur = p.current(keys).unwrap();
        let plan = plan(&changes, cur.stored, p.head.seq, now).unwrap();
        p.apply(&plan, &cur.prior).unwrap();
        let spill = p.spill_needed();
        if let Some(s) = &spill {
            p.spill(s).unwrap();
        }
        (plan, foreseen, spill)
    }

    /// Round-trips the pages through their wire form, as a store would between requests.
    fn reload(p: &Pages) -> Pages {
        let body = serde_json::to_string(&p.head.entries).unwrap();
        let mut head = p.head.clone();
        head.entries = crate::codec::decode_json(crate::codec::DEFLATE, body).unwrap();
        let mut out = Pages::new(head);
        for (b, entries) in &p.buckets {
            out.add_bucket(
                page_of(*b),
                crate::codec::decode_json(crate::codec::DEFLATE, serde_json::to_string(entries).unwrap()).unwrap(),
            );
        }
        out
    }

    #[test]
    fn addresses_stay_in_range_and_split_by_one() {
        for n in 1..70u32 {
            for h in [0u64, 1, 2, 3, 0xdead_beef, u64::MAX, 12_345_678_901] {
                let a = address(h, n);
                assert!(a < n, "{h} {n} -> {a}");
                // Going from n to n+1 buckets moves a hash only into the new bucket.
                let b = address(h, n + 1);
                assert!(b == a || b == n, "{h}: {n}->{a}, {}->{b}", n + 1);
            }
        }
        assert_eq!(hash("tasks", "a"), hash("tasks", "a"));
        assert_ne!(hash("tasks", "a"), hash("notes", "a"));
    }

    #[test]
    fn a_small_user_lives_in_the_head() {
        let mut p = Pages::default();
        push(&mut p, &[json!({"type": "tasks", "id": "a", "title": "one"}), json!({"type": "notes", "id": "n"})], 10);
        assert_eq!(p.head.entries.len(), 2);
        assert!(p.dirty().is_empty(), "no bucket to write");
        let p = reload(&p);
        let rows = p.changes(0, None, &[], 100).unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].record.get().starts_with("{\"type\":\"tasks\","), "{}", rows[0].record.get());
        assert!(rows.iter().all(|r| r.created));
        let tasks = p.changes(0, Some("tasks"), &[], 100).unwrap();
        assert_eq!(tasks.len(), 1);
        assert!(!tasks[0].record.get().contains("\"type\""));
    }

    /// `exclude` leaves out the same rows in any order (a plan's ascending revs are
    /// binary-searched, others scanned).
    #[test]
    fn changes_exclude_in_any_order() {
        let mut p = Pages::default();
        for (i, id) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            push(&mut p, &[json!({"id": id, "title": "t"})], 10 * (i as i64 + 1));
        }
        let revs =
            |exclude: &[i64]| -> Vec<i64> { p.changes(0, None, exclude, 100).unwrap().iter().map(|r| r.rev).collect() };
        assert_eq!(revs(&[]), [10, 20, 30, 40, 50]);
        assert_eq!(revs(&[20, 40, 99]), [10, 30, 50]);
        assert_eq!(revs(&[40, 20, 99]), [10, 30, 50]);
        assert_eq!(revs(&[50, 10, 50]), [20, 30, 40]);
    }

    #[test]
    fn edits_keep_created_rev_and_a_resurrection_is_created_again() {
        let mut p = Pages::default();
        push(&mut p, &[json!({"id": "a", "title": "one"})], 10);
        push(&mut p, &[json!({"id": "a", "title": "two"})], 20);
        let e = &p.head.entries[0];
        assert_eq!((e.rev, e.created_rev, e.deleted), (20, 10, false));
        push(&mut p, &[json!({"id": "a", "deleted": true})], 30);
        assert!(p.head.entries[0].deleted);
        push(&mut p, &[json!({"id": "a", "title": "back"})], 40);
        let e = &p.head.entries[0];
        assert_eq!((e.rev, e.created_rev, e.deleted), (40, 40, false));
        let rows = p.changes(35, Some("tasks"), &[], 10).unwrap();
        assert!(rows[0].created);
    }

    /// A user far larger than the head: every record stays findable and current, pages stay
    /// bounded, a push writes the head plus at most the spill's buckets, and pulls from any
    /// cursor return every change exactly once, in rev order.
    #[test]
    fn a_large_user_spills_splits_and_stays_consistent() {
        let mut p = Pages::default();
        let mut now = 1_000;
        let mut truth: HashMap<String, (i64, String)> = HashMap::default();
        let mut cursors = vec![0];
        for round in 0..60 {
            let mut changes = Vec::new();
            for i in 0..100 {
                let id = format!("t{}", (round * 100 + i) % 4_000);
                let title = format!("r{round} {i}");
                changes.push(json!({"id": id, "title": title}));
            }
            // Edits of old records too.
            for i in 0..20 {
                changes.push(
                    json!({"id": format!("t{}", (round * 37 + i * 101) % 4_000), "title": format!("edit {round}")}),
                );
            }
            now += 1_000;
            let plan = push(&mut p, &changes, now);
            for (_, writes) in &plan.writes {
                for w in writes {
                    let r: serde_json::Value = serde_json::from_str(w.record.get()).unwrap();
                    truth
                        .insert(r["id"].as_str().unwrap().into(), (r["rev"].as_i64().unwrap(), r["title"].to_string()));
                }
            }
            assert!(p.dirty().len() <= SPILL_BUCKETS + 2 * MAX_SPLITS, "round {round}: {} buckets", p.dirty().len());
            assert!(p.head.entries.len() <= HEAD_MAX + 120);
            p = reload(&p);
            if round % 10 == 0 {
                cursors.push(p.head.seq);
            }
        }
        assert!(p.head.buckets >= 8, "{} buckets", p.head.buckets);
        for b in p.buckets.values() {
            assert!((b.len() as u64) <= 3 * BUCKET_LOAD, "a bucket of {}", b.len());
        }
        assert_eq!(p.head.count, p.buckets.values().map(|b| b.len() as u64).sum::<u64>());
        // Every record current, wherever it lives.
        let keys: Vec<Key> = truth.keys().map(|id| ("tasks", id.clone())).collect();
        let cur = p.current(keys).unwrap();
        for (id, (rev, title)) in &truth {
            let s = &cur.stored[&("tasks", id.clone())];
            assert_eq!((s.envelope.rev, s.record().unwrap()["title"].to_string()), (*rev, title.clone()), "{id}");
        }
        let (live, more) = p.live("tasks", "", 10_000).unwrap();
        assert_eq!((live.len(), more), (truth.len(), false));
        // Pulls from each cursor, paged, return the changes after it exactly once.
        for since in cursors {
            let mut seen = HashSet::default();
            let mut c = since;
            loop {
                let rows = p.changes(c, None, &[], 250).unwrap();
                let page = crate::reply::Page::cut(rows, 250, p.head.seq);
                for r in &page.rows {
                    assert!(r.rev > c);
                    assert!(seen.insert(r.id.clone()), "{} twice", r.id);
                }
                c = page.cursor;
                if !page.has_more {
                    break;
                }
            }
            let expected = truth.values().filter(|(rev, _)| *rev > since).count();
            assert_eq!(seen.len(), expected, "from {since}");
        }
    }

    /// A push as the store runs it, from the head alone and `stored` (each bucket's
    /// `hex(body)`): the buckets of the pushed keys read with [`Pages::add_bucket_for`],
    /// those of the spill after it. Also returns how many buckets stayed sealed, and how
    /// many of those hold records of the push (read in part). No bucket of the spill
    /// foreseen ([`Pages::likely_spill`]) is read in part.
    fn push_as_store(
        stored: &HashMap<u32, String>,
        head: &Head,
        changes: &[serde_json::Value],
        now: i64,
    ) -> (Pages, Plan, usize, usize) {
        // As store.rs `read`: the buckets to read, then the rows of those read, absorbed.
        let read = |p: &mut Pages, wanted: Vec<u32>, keys: Option<&[Key]>| {
            let wanted = p.to_read(wanted).unwrap();
            let rows = wanted.iter().filter_map(|b| Some((page_of(*b), stored.get(b)?.as_str())));
            p.absorb(&wanted, rows, keys).unwrap();
        };
        let mut p = Pages::new(head.clone());
        let changes: Vec<_> = changes.iter().map(|c| parse_change(c, "c", None).unwrap()).collect();
        let keys: Vec<Key> = changes.iter().map(|c| (c.entity.name, c.id.as_str().to_string())).collect();
        let wanted = p.buckets_for(keys.iter().map(|(t, id)| (*t, id.as_str())));
        let foreseen = p.likely_spill(&keys).unwrap_or_default();
        read(&mut p, wanted, Some(&keys));
        // (One that holds none of the push's ids stays sealed: it was only scanned.)
        let partly = |b: &u32| p.sealed.get(b).is_some_and(|s| !s.found.is_empty());
        assert!(!foreseen.iter().any(partly), "a bucket of the foreseen spill {foreseen:?} read in part");
        let sealed = p.sealed.len();
        let partial = p.sealed.values().filter(|s| !s.found.is_empty()).count();
        let cur = p.current(keys).unwrap();
        let plan = plan(&changes, cur.stored, p.head.seq, now).unwrap();
        p.apply(&plan, &cur.prior).unwrap();
        if let Some(s) = p.spill_needed() {
            read(&mut p, s.reads(), None);
            p.spill(&s).unwrap();
        }
        (p, plan, sealed, partial)
    }

    /// Buckets that hold none of a push's keys stay sealed (not decoded), and the push
    /// comes out the same as over every bucket decoded: the same plan (conflicts
    /// included), head and written buckets, whether the keys are new, old records in
    /// buckets, or new ids that another record's value happens to spell.
    #[test]
    fn a_push_that_leaves_buckets_sealed_writes_what_a_full_read_writes() {
        let hex = |b: Vec<u8>| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let mut full = Pages::default();
        let changes: Vec<_> =
            (0..3_000).map(|i| json!({"id": format!("t{i}"), "title": format!("n{}", i + 5_000)})).collect();
        push(&mut full, &changes, 1_000);
        full = reload(&full);
        assert!(full.head.buckets >= 8, "{} buckets", full.head.buckets);
        let (mut sealed_total, mut partial_total, mut now) = (0, 0, 2_000);
        for round in 0..12i64 {
            let stored: HashMap<u32, String> =
                full.buckets.iter().map(|(b, e)| (*b, hex(crate::codec::encode(e).unwrap()))).collect();
            let mut changes: Vec<_> = (0..10).map(|i| json!({"id": format!("new{round}-{i}"), "title": "x"})).collect();
            // Old records (in buckets), one with a stale version: a conflict.
            changes.push(json!({"id": format!("t{}", round * 7), "title": "edit"}));
            let twice = format!("t{}", round * 11 + 1);
            changes.push(json!({"id": twice, "title": "first"}));
            changes.push(json!({"id": twice, "title": "stale", "version": 1}));
            changes.push(json!({"id": format!("t{}", round * 13 + 2), "deleted": true}));
            // A new id that another record's title spells: that bucket is decoded.
            changes.push(json!({"id": format!("n{}", 5_000 + round * 17), "title": "spelled"}));
            now += 1_000;
            let (mut p, plan, sealed, partial) = push_as_store(&stored, &full.head, &changes, now);
            let want = push(&mut full, &changes, now);
            sealed_total += sealed;
            partial_total += partial;
            assert_eq!(
                format!("{:?}", (&plan.applied, &plan.conflicts)),
                format!("{:?}", (&want.applied, &want.conflicts))
            );
            assert_eq!(plan.conflicts.len(), 1, "round {round}");
            let text = |p: &Pages| {
                let dirty: Vec<_> =
                    p.dirty().iter().map(|d| (d.page, d.rev, serde_json::to_string(d.entries).unwrap())).collect();
                (serde_json::to_string(&p.head.entries).unwrap(), p.head.count, p.head.dir.clone(), dirty)
            };
            assert_eq!(text(&p), text(&full), "round {round}");
            // The pull of the push's transaction: sealed buckets changed since the cursor
            // are decoded, not read again; before that, the pull refuses.
            let since = if round % 2 == 0 { 0 } else { 1_500 };
            if !p.sealed.is_empty() && round % 2 == 0 {
                assert!(p.changes(since, None, &plan.revs, 100_000).is_err(), "a sealed bucket is not pulled through");
            }
            let after = p.buckets_after(since);
            for b in p.to_read(after).unwrap() {
                let entries = stored.get(&b).map_or(Vec::new(), |h| crate::codec::decode_hex(h).unwrap());
                p.buckets.insert(b, entries);
            }
            let rows = |p: &Pages| -> Vec<_> {
                let rows = p.changes(since, None, &plan.revs, 100_000).unwrap();
                rows.iter()
                    .map(|r| (r.entity, r.rev, r.id.clone(), r.deleted, r.created, r.record.get().to_owned()))
                    .collect()
            };
            assert_eq!(rows(&p), rows(&full), "round {round}");
            full = reload(&full);
        }
        assert!(sealed_total >= 12, "buckets left sealed: {sealed_total}");
        // Buckets holding an edited record that the spill does not write are read in part.
        assert!(partial_total >= 12, "buckets read in part: {partial_total}");
    }

    /// A push's spill is foreseen before its buckets are read ([`Pages::likely_spill`]), so
    /// that they are decoded whole once: for pushes of edits and of new records into a user
    /// of several pages, what it foresees is what the spill reads; for a push whose own
    /// entries would spill, it foresees nothing (every bucket read is decoded whole).
    #[test]
    fn a_push_foresees_the_buckets_its_spill_writes() {
        let mut p = Pages::default();
        let changes: Vec<_> = (0..3_000).map(|i| json!({"id": format!("t{i}"), "title": "x"})).collect();
        push(&mut p, &changes, 1_000);
        let (mut spills, mut now) = (0, 1_000);
        for round in 0..10i64 {
            let changes: Vec<_> = (0..100i64)
                .map(|i| match round % 2 {
                    0 => json!({"id": format!("t{}", (round * 300 + i * 29) % 3_000), "title": format!("e{round}")}),
                    _ => json!({"id": format!("n{round}-{i}"), "title": "new"}),
                })
                .collect();
            now += 1_000;
            let (_, foreseen, spill) = push_foreseen(&mut p, &changes, now);
            assert_eq!(foreseen, Some(spill.as_ref().map_or(Vec::new(), Spill::reads)), "round {round}");
            spills += usize::from(spill.is_some());
            p = reload(&p);
        }
        assert!(spills >= 5, "{spills} spills");
        let many: Vec<Key> = (0..600).map(|i| ("tasks", format!("m{i}"))).collect();
        assert_eq!(p.likely_spill(&many), None);
    }

    #[test]
    fn pushes_of_many_new_records_keep_every_page_bounded() {
        let mut p = Pages::default();
        for round in 0..8 {
            let changes: Vec<_> = (0..1_000).map(|i| json!({"id": format!("b{round}-{i}"), "title": "x"})).collect();
            push(&mut p, &changes, 1_000 * (round + 1));
            assert!(p.head.entries.len() <= HEAD_MAX, "round {round}: head of {}", p.head.entries.len());
            p = reload(&p);
        }
        let largest = p.buckets.values().map(Vec::len).max().unwrap_or(0) as u64;
        assert!(largest <= 3 * BUCKET_LOAD, "largest bucket {largest} of {}", p.head.buckets);
        assert_eq!(p.live("tasks", "", 100_000).unwrap().0.len(), 8_000);
    }

    #[test]
    fn the_first_spill_keeps_the_most_recent_records_in_the_head() {
        let mut p = Pages::default();
        let changes: Vec<_> = (0..500).map(|i| json!({"id": format!("t{i}"), "title": "x"})).collect();
        push(&mut p, &changes, 1_000);
        assert_eq!(p.head.buckets, 0);
        push(&mut p, &(0..10).map(|i| json!({"id": format!("n{i}"), "title": "x"})).collect::<Vec<_>>(), 2_000);
        assert!(p.head.buckets >= 2);
        let kept = p.head.entries.len();
        assert!((100..=HEAD_KEEP).contains(&kept), "the head keeps part of its records: {kept}");
        assert!(p.dirty().len() < p.head.buckets as usize + 1);
    }

    #[test]
    fn a_recent_pull_reads_no_bucket() {
        let mut p = Pages::default();
        for round in 0..10 {
            let changes: Vec<_> = (0..100).map(|i| json!({"id": format!("t{round}-{i}"), "title": "x"})).collect();
            push(&mut p, &changes, 1_000 * (round + 1));
            p = reload(&p);
        }
        assert!(p.head.buckets > 0);
        let p = Pages::new(p.head.clone()); // the head only, as a pull reads it
        assert!(p.buckets_after(p.head.seq - 50).is_empty(), "the last 50 changes are in the head");
        assert!(!p.buckets_after(0).is_empty());
        assert_eq!(p.changes(p.head.seq - 50, None, &[], 100).unwrap().len(), 50);
    }

    #[test]
    fn purge_removes_every_copy_and_raises_the_horizon() {
        let mut p = Pages::default();
        let changes: Vec<_> = (0..600).map(|i| json!({"id": format!("t{i}"), "title": "x"})).collect();
        push(&mut p, &changes, 1_000);
        assert!(p.head.buckets > 0);
        // Delete a record that lives in a bucket: the tombstone is in the head.
        let in_bucket = p.buckets.values().flatten().next().unwrap().id.clone();
        push(&mut p, &[json!({"id": in_bucket, "deleted": true})], 5_000);
        let tomb_rev = p.head.seq;
        p = reload(&p);
        assert_eq!(p.purge(4_000).unwrap(), 0, "deleted after the cutoff");
        assert_eq!(p.purge(6_000).unwrap(), 1);
        assert_eq!(p.head.horizon, tomb_rev);
        let cur = p.current([("tasks", in_bucket.clone())]).unwrap();
        assert!(cur.stored.is_empty(), "no older copy resurfaces");
        assert!(!p.each().any(|e| e.id == in_bucket));
    }
}
