//! edgesync-codec: the stored form of a page body (README "Storage"): a page's entries
//! ([`Entry`]) as **columns**, raw-deflated, behind a one-byte format tag.
//! D1 keeps it in the BLOB column `pages.body`; the store reads it back as hex
//! (`hex(body)`: D1 hands a BLOB to the worker as an array of numbers, one JS value per
//! byte, and a string crosses into wasm in one copy). Pure, so the round trip is
//! property-tested natively.
//!
//! A crate of its own so that it alone is built for speed (`opt-level = 3` in the root
//! `Cargo.toml`) while the rest of the worker is built for size: a push into a large user
//! spends most of its CPU here, rebuilding and re-splitting every record of the pages it
//! rewrites. Generic code is compiled where it is used, so the readers that take closures
//! ([`jsontext::Reader`]) are used from here, not from edgesync-core. It knows no entity:
//! the caller says which type names exist ([`Known`]).
//!
//! Why columns: a page holds hundreds of records of a few shapes (every task has the same
//! keys). Deflate over the records one after another spends most of its bytes on the key
//! names and on the values' short repeats interrupted by every field; the same values
//! grouped by key, with the integer columns (revs, timestamps) as differences from the
//! previous entry's, deflate to about 60% of that (bench/storage.mjs, BENCHMARKS.md §6). The
//! record's JSON is rebuilt byte for byte: values are kept as their JSON text, and a
//! record that would not come back identical (whitespace, an escaped key) is stored whole.
//!
//! Format 1 (the entries' JSON tuples, deflated) is still read: pages written before
//! format 2 stay readable and are rewritten in format 2 by the next write of the page.

pub mod jsontext;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One stored record. Wire form, in a page's JSON array:
/// `[type, id, rev, created_rev, deleted (0/1), record]`, the record as clients see it.
/// A record decoded from a page's columns is rebuilt only when it is read
/// ([`Entry::record`]): a page rewritten by a spill is mostly records that nothing reads,
/// and [`encode`] writes those from the columns they came from.
#[derive(Clone)]
pub struct Entry {
    pub entity: &'static str,
    pub id: String,
    pub rev: i64,
    /// The rev at which the record (last) came into being: delta pulls call it created.
    pub created_rev: i64,
    pub deleted: bool,
    body: Body,
}

/// An entry's record: its text (with its `deleted_at` when its writer said it), or where
/// it is in a decoded page.
#[derive(Clone)]
enum Body {
    Text(Box<RawValue>, Option<Option<i64>>),
    Columns(InPage),
}

/// A record still in its page's columns ([`Page`]): its shape, where its values are, its
/// length once rebuilt, and the rebuilt text once something read it (a `OnceCell`, not a
/// `OnceLock`: the worker is one thread, and the lock's code is 0.4 KB more gzipped wasm).
#[derive(Clone)]
struct InPage {
    page: std::sync::Arc<Page>,
    shape: u32,
    slot: u32,
    len: u32,
    built: std::cell::OnceCell<Box<RawValue>>,
}

impl InPage {
    /// The record's members (key and value) into `out`, from its page; `None` only for a
    /// damaged page.
    fn members<'e>(&'e self, out: &mut Vec<(&'e str, Value<'e>)>) -> Option<()> {
        out.clear();
        let (shape, slots) = self.page.entry(self.shape, self.slot)?;
        for (p, (&i, (_, col))) in slots.iter().zip(&shape.keys).enumerate() {
            out.push((shape.key(p)?, self.page.value(*col, i)?));
        }
        Some(())
    }
}

impl Entry {
    pub fn new(
        entity: &'static str,
        id: String,
        rev: i64,
        created_rev: i64,
        deleted: bool,
        record: Box<RawValue>,
    ) -> Self {
        Entry { entity, id, rev, created_rev, deleted, body: Body::Text(record, None) }
    }

    /// An entry written by a push, whose writer knows its record's `deleted_at` (`None` for
    /// a live record, which it is then): the page's `tomb` takes it from here instead of
    /// parsing the record (a full upload writes thousands of tombstones). The record's
    /// `deleted_at` member must be this value.
    pub fn written(
        entity: &'static str,
        id: String,
        rev: i64,
        created_rev: i64,
        deleted_at: Option<i64>,
        record: Box<RawValue>,
    ) -> Self {
        let deleted = deleted_at.is_some();
        Entry { entity, id, rev, created_rev, deleted, body: Body::Text(record, Some(deleted_at)) }
    }

    /// The record's `deleted_at`, as [`deleted_at`] reads it from the record.
    pub fn deleted_at(&self) -> Result<Option<i64>, Error> {
        match &self.body {
            Body::Text(_, Some(at)) => Ok(*at),
            _ => Ok(deleted_at(self.record()?.get())?),
        }
    }

    /// The record, as clients see it (rebuilt from its page's columns on first use; that
    /// fails only for a damaged page).
    pub fn record(&self) -> Result<&RawValue, Error> {
        match &self.body {
            Body::Text(record, _) => Ok(record),
            Body::Columns(p) => match p.built.get() {
                Some(record) => Ok(record),
                None => {
                    let record = trusted(&p.page.record(p.shape, p.slot, p.len)?)?;
                    Ok(p.built.get_or_init(|| record))
                }
            },
        }
    }

    /// The length of the record's text, without rebuilding it.
    pub fn record_len(&self) -> usize {
        match &self.body {
            Body::Text(record, _) => record.get().len(),
            Body::Columns(p) => p.len as usize,
        }
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let record = self.record().map(RawValue::get);
        (self.entity, &self.id, self.rev, self.created_rev, self.deleted, record).fmt(f)
    }
}

impl Serialize for Entry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let record = self.record().map_err(serde::ser::Error::custom)?;
        (self.entity, &self.id, self.rev, self.created_rev, u8::from(self.deleted), record).serialize(s)
    }
}

/// The type names this build declares, each as the `&'static str` an [`Entry`] holds;
/// `None` for a name it does not know (a page holding one is an error).
pub type Known = fn(&str) -> Option<&'static str>;

/// A page that does not decode, or entries that do not encode: always the server's own
/// data, never a client's input (edgesync-core turns it into a 500 whose text is logged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error(e.to_string())
    }
}

/// The type named in a stored page; one `known` does not know is an error.
fn stored_entity(known: Known, name: &str) -> Result<&'static str, Error> {
    known(name).ok_or_else(|| Error(format!("stored record of unknown type {name:?}")))
}

/// Format 1's entries: the page's JSON array of [`Entry`] tuples.
pub fn parse_body(body: &str, known: Known) -> Result<Vec<Entry>, Error> {
    let wire: Vec<(String, String, i64, i64, u8, Box<RawValue>)> = serde_json::from_str(body)?;
    wire.into_iter()
        .map(|(t, id, rev, created_rev, deleted, record)| {
            Ok(Entry::new(stored_entity(known, &t)?, id, rev, created_rev, deleted != 0, record))
        })
        .collect()
}

/// The keys of a record that the columns keep beside the entry (edgesync-core's
/// `envelope::ID` and `REV`).
const ID: &str = "id";
const REV: &str = "rev";

/// Format tag of a raw-deflate (RFC 1951) body of the entries' JSON array (format 1).
pub const DEFLATE: u8 = 1;
/// Format tag of a raw-deflate body of the entries as columns ([`encode`]).
pub const COLUMNS: u8 = 2;
/// miniz_oxide's level: 1 is its fast compressor (greedy, one probe), chosen for the CPU
/// of a push (bench/storage.mjs measures the levels; README "Storage").
pub const LEVEL: u8 = 1;
/// Largest JSON a body inflates to (a page's JSON stays under D1's 2 MB value limit when
/// it is written; anything larger is not a page this code wrote).
pub const MAX_JSON: usize = 32 * 1024 * 1024;

/// A page's entries as stored (format 2).
pub fn encode(entries: &[Entry]) -> Result<Vec<u8>, Error> {
    tagged(COLUMNS, columns(entries)?.as_bytes())
}

/// `json` compressed behind the format-1 tag: the form [`encode`] wrote before format 2
/// (kept for the tests and benchmarks that compare the two).
pub fn deflate(json: &[u8]) -> Result<Vec<u8>, Error> {
    tagged(DEFLATE, json)
}

/// `json` deflated behind `tag`. Deflated through miniz_oxide's output callback, straight
/// onto the tag: `compress_to_vec` zero-fills an output buffer of half the input, where
/// pages deflate to a twentieth of it, and the result was copied once more behind the tag.
fn tagged(tag: u8, json: &[u8]) -> Result<Vec<u8>, Error> {
    use miniz_oxide::deflate::core::{compress_to_output, create_comp_flags_from_zip_params};
    use miniz_oxide::deflate::core::{CompressorOxide, TDEFLFlush, TDEFLStatus};
    let mut compressor = CompressorOxide::new(create_comp_flags_from_zip_params(LEVEL.into(), 0, 0));
    let mut out = Vec::with_capacity(json.len() / 16 + 64);
    out.push(tag);
    let (status, _) = compress_to_output(&mut compressor, json, TDEFLFlush::Finish, |chunk| {
        out.extend_from_slice(chunk);
        true
    });
    match status {
        TDEFLStatus::Done => Ok(out),
        other => Err(Error(format!("page does not deflate: {other:?}"))),
    }
}

/// The JSON text of a stored body (either format) and its format tag.
pub fn inflate(body: &[u8]) -> Result<(u8, String), Error> {
    match body.split_first() {
        Some((&tag, packed)) if tag == DEFLATE || tag == COLUMNS => {
            let json = inflate_raw(packed)?;
            let json = String::from_utf8(json).map_err(|e| Error(format!("page body is not UTF-8: {e}")))?;
            Ok((tag, json))
        }
        Some((tag, _)) => Err(Error(format!("page body of unknown format {tag}"))),
        None => Err(Error("empty page body".into())),
    }
}

/// Raw deflate's output, at most [`MAX_JSON`] bytes. Inflated through deflate's 32 KB
/// window as a ring and copied out: miniz_oxide's `decompress_to_vec` zero-fills an output
/// buffer it doubles from twice the input, about four times the output's size (measured
/// when the codec was built at `opt-level = "z"`, where it zeroed byte by byte: 16% of a
/// push's instructions into a large user). Room for 32 times the input is made at once:
/// pages deflate 20 to 60 times (bench/wasm-cpu.mjs prints both sizes), and each doubling
/// of a smaller guess copied the output again (8 times: 1-2% of a push's instructions).
fn inflate_raw(mut packed: &[u8]) -> Result<Vec<u8>, Error> {
    use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
    use miniz_oxide::inflate::TINFLStatus;
    const WINDOW: usize = 32 * 1024;
    let fail = |why: &str| Error(format!("page body does not inflate: {why}"));
    let mut state = Box::<DecompressorOxide>::default();
    let mut ring = vec![0u8; WINDOW];
    let mut out = Vec::with_capacity(packed.len().saturating_mul(32).min(MAX_JSON));
    let mut at = 0;
    loop {
        // Flags 0: no zlib header, the input is complete, the output buffer wraps.
        let (status, read, wrote) = decompress(&mut state, packed, &mut ring, at, 0);
        packed = packed.get(read..).ok_or_else(|| fail("read past its input"))?;
        out.extend_from_slice(ring.get(at..at + wrote).ok_or_else(|| fail("wrote past its window"))?);
        if out.len() > MAX_JSON {
            return Err(fail("larger than a page"));
        }
        at = (at + wrote) % WINDOW;
        match status {
            TINFLStatus::Done => return Ok(out),
            TINFLStatus::HasMoreOutput if read > 0 || wrote > 0 => {}
            other => return Err(fail(&format!("{other:?}"))),
        }
    }
}

/// A stored body's entries.
pub fn decode(body: &[u8], known: Known) -> Result<Vec<Entry>, Error> {
    let (tag, json) = inflate(body)?;
    decode_json(tag, json, known)
}

/// The entries of a body's JSON text, as [`inflate`] gives it with its format tag (kept by
/// format 2's entries, whose records are rebuilt from it when read).
pub fn decode_json(tag: u8, json: String, known: Known) -> Result<Vec<Entry>, Error> {
    match tag {
        COLUMNS => decode_columns(json, None, known),
        _ => parse_body(&json, known),
    }
}

/// The entries of a body's JSON text whose id is one of `ids` (the others' records are
/// not rebuilt): what a push needs of a bucket it does not write.
pub fn decode_json_only(tag: u8, json: &str, ids: &[&str], known: Known) -> Result<Vec<Entry>, Error> {
    match tag {
        COLUMNS => decode_columns(json.to_owned(), Some(ids), known),
        _ => Ok(parse_body(json, known)?.into_iter().filter(|e| ids.contains(&e.id.as_str())).collect()),
    }
}

/// Whether some JSON string in a body's JSON text (either format) is one of `ids`. Every
/// entry's id is such a string (format 1's tuple, format 2's `i` column or its record's
/// `id` value), so `false` means the page holds none of them: a push's new key is known
/// absent from its bucket without decoding the bucket (inflated and scanned: no parse, no
/// record rebuilt). A string with an escape is unescaped before it is compared, and a text
/// that ends inside a string answers `true` (decode it, and fail there).
pub fn mentions(json: &str, ids: &[&str]) -> bool {
    let b = json.as_bytes();
    let mut at = 0;
    while let Some(open) = b.get(at..).and_then(|rest| rest.iter().position(|&c| c == b'"')) {
        let start = at + open + 1;
        let Some((after, escaped)) = string_span(b, start - 1) else { return true };
        let end = after - 1;
        let Some(text) = json.get(start..end) else { return true };
        let hit = if escaped {
            match json.get(start - 1..=end).map(serde_json::from_str::<String>) {
                Some(Ok(s)) => ids.contains(&s.as_str()),
                _ => true,
            }
        } else {
            ids.iter().any(|id| id.len() == text.len() && *id == text)
        };
        if hit {
            return true;
        }
        at = end + 1;
    }
    false
}

/// A stored body as D1's `hex(body)` returns it.
pub fn decode_hex(hex: &str, known: Known) -> Result<Vec<Entry>, Error> {
    decode(&from_hex(hex)?, known)
}

/// Bytes from hex digits (either case), as SQLite's `hex()` writes them. A table lookup
/// per digit: this runs over every page a request reads.
pub fn from_hex(hex: &str) -> Result<Vec<u8>, Error> {
    const BAD: u8 = 0xff;
    const TABLE: [u8; 256] = {
        let mut t = [BAD; 256];
        let mut i = 0;
        while i < 10 {
            t[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            t[b'a' as usize + i] = 10 + i as u8;
            t[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        t
    };
    let s = hex.as_bytes();
    if !s.len().is_multiple_of(2) {
        return Err(Error("odd-length hex page body".into()));
    }
    let mut out = Vec::with_capacity(s.len() / 2);
    let mut bad = 0u8;
    for p in s.chunks_exact(2) {
        let (h, l) = (TABLE[p[0] as usize], TABLE[p[1] as usize]);
        bad |= (h | l) & 0xf0;
        out.push((h << 4) | (l & 0x0f));
    }
    if bad != 0 {
        return Err(Error("page body is not hex".into()));
    }
    Ok(out)
}

/// A stored record's `deleted_at` (`None` when it is null or absent; any other member is
/// skipped). One reader for the `tomb` column and edgesync-core's purge, instead of a
/// derived copy in each (304,559 -> 304,309 B gzip).
pub fn deleted_at(record: &str) -> Result<Option<i64>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Deleted {
        deleted_at: Option<i64>,
    }
    Ok(serde_json::from_str::<Deleted>(record)?.deleted_at)
}

/// The earliest `deleted_at` of a tombstone among `entries` (the page's `tomb` column,
/// which the daily purge selects candidates by), or `None` when it holds none.
pub fn tomb<'e>(entries: impl IntoIterator<Item = &'e Entry>) -> Result<Option<i64>, Error> {
    let mut earliest: Option<i64> = None;
    for e in entries.into_iter().filter(|e| e.deleted) {
        if let Some(at) = e.deleted_at()? {
            earliest = Some(earliest.map_or(at, |t| t.min(at)));
        }
    }
    Ok(earliest)
}

/// Format 2's JSON, before it is deflated, as [`columns`] writes it and [`decode`] reads it:
/// the entries of a page, one column per field.
/// Every per-entry column has one value per entry, in entry order. Integers are all `i64`.
/// Read by [`Columns::read`] (the JSON values checked, and borrowed from the text).
#[cfg_attr(any(test, feature = "serde-check"), derive(Debug, PartialEq))]
struct Columns<'a> {
    /// Record shapes: a type and the record's keys in their order.
    s: Vec<(String, Vec<String>)>,
    /// Per entry: its shape, or null for a record kept whole (in `w`, its type in `t`).
    e: Vec<Option<i64>>,
    /// Per entry: its id, or null when it is the record's `id` (the usual case).
    i: Vec<Option<String>>,
    /// Per entry: its rev, or null when it is the record's `rev`.
    r: Vec<Option<i64>>,
    /// Per entry: rev − created_rev (wrapping): 0 for a record created by its last write.
    c: Vec<i64>,
    /// Per entry: 1 for a tombstone, 0 for a live record.
    d: Vec<i64>,
    /// The records that are kept whole (their JSON text), and their types.
    w: Vec<&'a str>,
    t: Vec<String>,
    /// Columns of JSON values (their text): a key, and its values for the entries whose
    /// shape has it.
    k: Vec<(String, Vec<&'a str>)>,
    /// Columns whose every value is an integer: each as the difference from the previous
    /// one (wrapping; the first from 0). Revs and timestamps of neighbours differ little.
    n: Vec<(String, Vec<i64>)>,
}

impl<'a> Columns<'a> {
    /// The columns of a page's JSON text: an object of exactly these members (others
    /// passed over, as serde's derive would), each read once. Damage is an error. (serde's
    /// derive would also read the fields from an array of them; pages are objects.)
    fn read(json: &'a str) -> Result<Self, Error> {
        use jsontext::{Damaged, Reader};
        fn once<T>(slot: &mut Option<T>, v: T) -> Result<(), Damaged> {
            match slot.replace(v) {
                None => Ok(()),
                Some(_) => Err(Damaged),
            }
        }
        let owned = |r: &mut Reader<'a>| r.string().map(std::borrow::Cow::into_owned);
        let (mut s, mut e, mut i, mut r_, mut c, mut d) = (None, None, None, None, None, None);
        let (mut w, mut t, mut k, mut n) = (None, None, None, None);
        let mut left = json.len() / 2;
        let mut r = Reader::new(json);
        let read = r
            .object(|r, key| {
                // The columns of one value per entry are as long as `e` (written first), and
                // a column of `k` or `n` usually is: room is made for that many at once, but
                // for all of `k` and `n` together never more than the text could hold (each
                // value takes a byte and a comma), so that no damaged page reserves more than
                // a few times its own size.
                let per = e.as_ref().map_or(0, Vec::len);
                let mut room = || {
                    let n = per.min(left);
                    left -= n;
                    n
                };
                match key.as_ref() {
                    "s" => once(&mut s, r.array(|r| r.pair(owned, |r| r.array(owned)))?),
                    "e" => once(&mut e, r.array(|r| r.nullable(Reader::int))?),
                    "i" => once(&mut i, r.array_of(per, |r| r.nullable(owned))?),
                    "r" => once(&mut r_, r.array_of(per, |r| r.nullable(Reader::int))?),
                    "c" => once(&mut c, r.array_of(per, Reader::int)?),
                    "d" => once(&mut d, r.array_of(per, Reader::int)?),
                    "w" => once(&mut w, r.array(Reader::raw)?),
                    "t" => once(&mut t, r.array(owned)?),
                    "k" => once(&mut k, r.array(|r| r.pair(owned, |r| r.array_of(room(), Reader::raw)))?),
                    "n" => once(&mut n, r.array(|r| r.pair(owned, |r| r.array_of(room(), Reader::int)))?),
                    _ => r.raw().map(drop),
                }
            })
            .and_then(|()| r.end());
        let all = || Some(Columns { s: s?, e: e?, i: i?, r: r_?, c: c?, d: d?, w: w?, t: t?, k: k?, n: n? });
        read.ok().and_then(|()| all()).ok_or_else(damaged)
    }
}

/// The columns as serde's derive read them before [`Columns::read`], kept for the
/// proptest that holds the reader to the same answers (edgesync-core's proptests.rs,
/// through the `serde-check` feature).
#[cfg(any(test, feature = "serde-check"))]
#[doc(hidden)]
pub fn columns_agree_with_serde(json: &str) -> Result<(), String> {
    #[derive(Deserialize)]
    struct Derived<'a> {
        s: Vec<(String, Vec<String>)>,
        e: Vec<Option<i64>>,
        i: Vec<Option<String>>,
        r: Vec<Option<i64>>,
        c: Vec<i64>,
        d: Vec<i64>,
        #[serde(borrow)]
        w: Vec<&'a RawValue>,
        t: Vec<String>,
        #[serde(borrow)]
        k: Vec<(String, Vec<&'a RawValue>)>,
        n: Vec<(String, Vec<i64>)>,
    }
    let theirs = serde_json::from_str::<Derived>(json).ok().map(|d| Columns {
        s: d.s,
        e: d.e,
        i: d.i,
        r: d.r,
        c: d.c,
        d: d.d,
        w: d.w.iter().map(|v| v.get()).collect(),
        t: d.t,
        k: d.k.into_iter().map(|(key, v)| (key, v.iter().map(|v| v.get()).collect())).collect(),
        n: d.n,
    });
    let ours = Columns::read(json).ok();
    match ours == theirs {
        true => Ok(()),
        false => Err(format!("ours {ours:?}, serde's {theirs:?}")),
    }
}

/// Where a key's values are: a column of JSON values or of integers (by index).
#[derive(Clone, Copy)]
enum Col {
    Json(usize),
    Int(usize),
}

/// A shape as decoding uses it: the type, each key with its column, and the positions of
/// the keys `id` and `rev` (their first occurrence, as the encoder found them). Each key
/// is kept as the text that precedes its value in the record (`{"key":` for the first,
/// `,"key":` after), so a record is rebuilt by writing pieces one after another.
struct Shape {
    entity: &'static str,
    keys: Vec<(String, Col)>,
    id: Option<usize>,
    rev: Option<usize>,
}

impl Shape {
    /// Key number `p` itself: its prefix without the punctuation around it.
    fn key(&self, p: usize) -> Option<&str> {
        self.keys.get(p).and_then(|(prefix, _)| prefix.get(2..prefix.len().checked_sub(2)?))
    }
}

/// The text before a key's value in a record rebuilt from the columns. The encoder only
/// puts records whose keys have no escape into shapes ([`members`]), so a key that would
/// need one is damage.
fn key_prefix(first: bool, key: &str) -> Result<String, Error> {
    if !plain(key) {
        return Err(damaged());
    }
    let mut out = String::with_capacity(key.len() + 4);
    out.push(if first { '{' } else { ',' });
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
    Ok(out)
}

fn damaged() -> Error {
    Error("damaged page columns".into())
}

/// A page (format 2) as decoded: its JSON text, and its columns as places in that text or
/// as integers. Its entries ([`InPage`]) are rebuilt from it only when read, and
/// [`encode`] takes their values from it.
struct Page {
    json: String,
    shapes: Vec<Shape>,
    /// Per column of JSON values: each value's place in `json` (from, to).
    text: Vec<Vec<(u32, u32)>>,
    /// Per column of integers: the values (the differences summed).
    ints: Vec<Vec<i64>>,
    /// From a shaped entry's slot on, one per key of its shape: the index of its value in
    /// that key's column.
    slots: Vec<u32>,
}

/// A record's value as a page holds it: JSON text (checked as JSON when the columns were
/// read), or an integer of an integer column.
#[derive(Clone, Copy)]
enum Value<'p> {
    Text(&'p str),
    Int(i64),
}

impl Page {
    /// The shape of an entry and its slots, one per key of the shape.
    fn entry(&self, shape: u32, slot: u32) -> Option<(&Shape, &[u32])> {
        let shape = self.shapes.get(shape as usize)?;
        Some((shape, self.slots.get(slot as usize..)?.get(..shape.keys.len())?))
    }

    /// Value number `i` of column `col`.
    fn value(&self, col: Col, i: u32) -> Option<Value<'_>> {
        match col {
            Col::Json(c) => {
                let (from, to) = *self.text.get(c)?.get(i as usize)?;
                self.json.get(from as usize..to as usize).map(Value::Text)
            }
            Col::Int(c) => self.ints.get(c)?.get(i as usize).copied().map(Value::Int),
        }
    }

    /// The text of the record of `shape` at `slot`, written piece by piece: the values
    /// were checked as JSON when the columns were read, and the keys need no escape
    /// ([`key_prefix`]).
    fn record(&self, shape: u32, slot: u32, len: u32) -> Result<String, Error> {
        let (shape, slots) = self.entry(shape, slot).ok_or_else(damaged)?;
        let mut text = String::with_capacity(len as usize);
        let mut number = itoa::Buffer::new();
        for ((prefix, col), &i) in shape.keys.iter().zip(slots) {
            text.push_str(prefix);
            match self.value(*col, i).ok_or_else(damaged)? {
                Value::Text(v) => text.push_str(v),
                Value::Int(v) => text.push_str(number.format(v)),
            }
        }
        if shape.keys.is_empty() {
            text.push('{');
        }
        text.push('}');
        Ok(text)
    }
}

/// The length of `v` as an i64 prints.
fn digits(v: i64) -> usize {
    v.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1) + usize::from(v < 0)
}

/// The string a record's `id` value (its JSON text) holds.
fn id_text(json: &str) -> Result<std::borrow::Cow<'_, str>, Error> {
    Ok(match json.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(plain) if !plain.contains('\\') => std::borrow::Cow::Borrowed(plain),
        _ => std::borrow::Cow::Owned(serde_json::from_str::<String>(json)?),
    })
}

/// An entry as decoding finds it, before its page is put together: its record's shape,
/// slot and length, or its text when the record is kept whole.
struct Found {
    entity: &'static str,
    id: String,
    rev: i64,
    created_rev: i64,
    deleted: bool,
    record: Result<(u32, u32, u32), Box<RawValue>>,
}

/// The entries of format 2's JSON text, or `only` those whose id is one of these (the
/// others are passed over, nor checked more than where they end). Their records stay in
/// the page, which they share.
fn decode_columns(mut json: String, only: Option<&[&str]>, known: Known) -> Result<Vec<Entry>, Error> {
    // Every place, index and length in the page then fits in a u32.
    if u32::try_from(json.len()).is_err() {
        return Err(damaged());
    }
    let (shapes, text, ints, slots, found) = {
        let columns = Columns::read(&json)?;
        let base = json.as_ptr() as usize;
        let place = |v: &str| {
            let from =
                (v.as_ptr() as usize).checked_sub(base).and_then(|at| u32::try_from(at).ok()).ok_or_else(damaged)?;
            let to = u32::try_from(v.len()).ok().and_then(|l| from.checked_add(l)).ok_or_else(damaged)?;
            Ok::<_, Error>((from, to))
        };
        let mut text = Vec::with_capacity(columns.k.len());
        for (_, values) in &columns.k {
            let mut places = Vec::with_capacity(values.len());
            for v in values {
                places.push(place(v)?);
            }
            text.push(places);
        }
        let (shapes, ints, slots, found) = columns.entries(only, known)?;
        (shapes, text, ints, slots, found)
    };
    // The page's text lives as long as its entries: without the room inflating made for it
    // (a shrink in place, not a copy).
    json.shrink_to_fit();
    let page = std::sync::Arc::new(Page { json, shapes, text, ints, slots });
    Ok(found
        .into_iter()
        .map(|f| {
            let body = match f.record {
                Ok((shape, slot, len)) => {
                    Body::Columns(InPage { page: page.clone(), shape, slot, len, built: std::cell::OnceCell::new() })
                }
                Err(record) => Body::Text(record, None),
            };
            Entry { entity: f.entity, id: f.id, rev: f.rev, created_rev: f.created_rev, deleted: f.deleted, body }
        })
        .collect())
}

/// What [`decode_columns`] makes a [`Page`] of: shapes, integer columns, slots, and the
/// entries found.
type Decoded = (Vec<Shape>, Vec<Vec<i64>>, Vec<u32>, Vec<Found>);

impl Columns<'_> {
    /// The page's shapes, integer columns and slots, and its entries (or `only` those
    /// whose id is one of these), every value placed in its column and used exactly once.
    fn entries(&self, only: Option<&[&str]>, known: Known) -> Result<Decoded, Error> {
        let n = self.e.len();
        if [self.i.len(), self.r.len(), self.c.len(), self.d.len()].iter().any(|&l| l != n)
            || self.w.len() != self.t.len()
        {
            return Err(damaged());
        }
        // Every key names one column, of JSON values or of integers; looked up once, by
        // binary search in a sorted vector: less code in the wasm than a BTreeMap
        // (299,966 -> 299,079 B gzip; kept sorted by insertion it was 298,778, but quadratic
        // in the keys of a damaged body).
        let named = self.k.iter().enumerate().map(|(c, (k, _))| (k.as_str(), Col::Json(c)));
        let mut by_key: Vec<(&str, Col)> =
            named.chain(self.n.iter().enumerate().map(|(c, (k, _))| (k.as_str(), Col::Int(c)))).collect();
        by_key.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if by_key.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(damaged());
        }
        let col_of = |k: &str| by_key.binary_search_by(|(key, _)| (*key).cmp(k)).map(|i| by_key[i].1);
        let shapes = self
            .s
            .iter()
            .map(|(t, keys)| {
                let cols = keys
                    .iter()
                    .enumerate()
                    .map(|(n, k)| Ok((key_prefix(n == 0, k)?, col_of(k).map_err(|_| damaged())?)));
                let at = |name: &str| keys.iter().position(|k| k == name);
                Ok(Shape {
                    entity: stored_entity(known, t)?,
                    keys: cols.collect::<Result<_, Error>>()?,
                    id: at(ID),
                    rev: at(REV),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let ints: Vec<Vec<i64>> = self
            .n
            .iter()
            .map(|(_, deltas)| {
                let mut v = 0i64;
                deltas
                    .iter()
                    .map(|d| {
                        v = v.wrapping_add(*d);
                        v
                    })
                    .collect()
            })
            .collect();
        let (mut json_at, mut int_at, mut whole_at) = (vec![0usize; self.k.len()], vec![0usize; self.n.len()], 0);
        // One slot per value of a column at most (each value is used once): room for that
        // many, which the text holds, not for every column of every entry (a damaged page of
        // many empty columns and records would reserve far more than its size).
        let values = self.k.iter().map(|(_, v)| v.len()).chain(self.n.iter().map(|(_, v)| v.len()));
        let mut slots: Vec<u32> = Vec::with_capacity(values.fold(0, usize::saturating_add));
        // A shape's keys are repeated in every record: the records a body gives back are
        // bounded like format 1's JSON, so that no body decodes to more than it could.
        let mut total = 0usize;
        let mut out = Vec::with_capacity(if only.is_some() { 0 } else { n });
        for j in 0..n {
            let shape = match self.e[j] {
                Some(s) => Some(usize::try_from(s).ok().and_then(|s| Some((s, shapes.get(s)?))).ok_or_else(damaged)?),
                None => None,
            };
            // Its id: the page's, or its record's (the next value of the `id` column).
            let id_json = shape.and_then(|(_, shape)| match shape.keys.get(shape.id?)?.1 {
                Col::Json(c) => self.k[c].1.get(json_at[c]).copied(),
                Col::Int(_) => None,
            });
            let id = match (&self.i[j], id_json) {
                (Some(id), _) => std::borrow::Cow::Borrowed(id.as_str()),
                (None, Some(json)) => id_text(json)?,
                (None, None) => return Err(damaged()),
            };
            if only.is_some_and(|ids| !ids.contains(&id.as_ref())) {
                // Passed over: its values are used, not checked (an overrun shows below).
                match shape {
                    Some((_, shape)) => {
                        for (_, col) in &shape.keys {
                            match *col {
                                Col::Json(c) => json_at[c] += 1,
                                Col::Int(c) => int_at[c] += 1,
                            }
                        }
                    }
                    None => whole_at += 1,
                }
                continue;
            }
            // The entry's values placed (each the next of its column), with its `rev` and
            // its record's length; or its record kept whole. (Indexes and lengths fit in a
            // u32: the text does, checked above.)
            let (entity, record, len, record_rev) = match shape {
                Some((s, shape)) => {
                    let slot = slots.len() as u32;
                    let mut rev = None;
                    let mut len = 1 + usize::from(shape.keys.is_empty());
                    for (pos, (prefix, col)) in shape.keys.iter().enumerate() {
                        len += prefix.len();
                        let at = match *col {
                            Col::Json(c) => {
                                let at = json_at[c];
                                let v = *self.k[c].1.get(at).ok_or_else(damaged)?;
                                json_at[c] += 1;
                                len += v.len();
                                if shape.rev == Some(pos) {
                                    rev = canonical_int(v);
                                }
                                at
                            }
                            Col::Int(c) => {
                                let at = int_at[c];
                                let v = *ints[c].get(at).ok_or_else(damaged)?;
                                int_at[c] += 1;
                                len += digits(v);
                                if shape.rev == Some(pos) {
                                    rev = Some(v);
                                }
                                at
                            }
                        };
                        slots.push(at as u32);
                    }
                    let record = Ok((s as u32, slot, u32::try_from(len).map_err(|_| damaged())?));
                    (shape.entity, record, len, rev)
                }
                None => {
                    let record = *self.w.get(whole_at).ok_or_else(damaged)?;
                    let entity = stored_entity(known, &self.t[whole_at])?;
                    whole_at += 1;
                    (entity, Err(trusted(record)?), record.len(), None)
                }
            };
            total = total.saturating_add(len);
            if total > MAX_JSON {
                return Err(damaged());
            }
            let rev = match self.r[j] {
                Some(rev) => rev,
                None => record_rev.ok_or_else(damaged)?,
            };
            let deleted = match self.d[j] {
                0 => false,
                1 => true,
                _ => return Err(damaged()),
            };
            let created_rev = rev.wrapping_sub(self.c[j]);
            out.push(Found { entity, id: id.into_owned(), rev, created_rev, deleted, record });
        }
        let all_used = json_at.iter().zip(&self.k).all(|(&a, (_, v))| a == v.len())
            && int_at.iter().zip(&self.n).all(|(&a, (_, v))| a == v.len())
            && whole_at == self.w.len();
        if !all_used {
            return Err(damaged());
        }
        Ok((shapes, ints, slots, out))
    }
}

/// JSON text, known to be valid, that serializes as itself: serde_json writes a
/// `RawValue`'s text as it is when it serializes one (the private struct name below is
/// how its own `RawValue` does it). Lets a record be rebuilt from members of stored text
/// without parsing them. The text must be one JSON value, as [`jsontext::Reader::raw`]
/// returns it: nothing checks it again. The codec's round-trip tests fail if a serde_json
/// release ever changes that.
pub struct Verbatim<'a>(pub &'a str);

impl serde::Serialize for Verbatim<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        const TOKEN: &str = "$serde_json::private::RawValue";
        let mut st = s.serialize_struct(TOKEN, 1)?;
        st.serialize_field(TOKEN, self.0)?;
        st.end()
    }
}

/// `json`, known to be valid JSON, as a `RawValue` without parsing it again
/// ([`Verbatim`]; `to_raw_value` keeps what it wrote).
fn trusted(json: &str) -> Result<Box<RawValue>, Error> {
    Ok(serde_json::value::to_raw_value(&Verbatim(json))?)
}

/// Format 2's JSON for `entries` (the layout of [`Columns`]), written directly: the
/// records are split by [`members`] into slices of their own text, so nothing is parsed
/// or escaped twice on the push path.
fn columns(entries: &[Entry]) -> Result<String, Error> {
    struct Shape<'e> {
        entity: &'static str,
        /// The decoded page and shape its first entry came from (the entries of one shape of
        /// a page have the same shape here, without their keys compared).
        origin: Option<(usize, u32)>,
        keys: Vec<&'e str>,
        cols: Vec<usize>,
        id: Option<usize>,
        rev: Option<usize>,
    }
    let mut shapes: Vec<Shape> = Vec::new();
    let mut cols: Vec<(&str, Vec<Value>)> = Vec::new();
    let [mut e, mut i, mut r, mut c, mut d, mut w, mut t] = std::array::from_fn(|_| List::default());
    let mut number = itoa::Buffer::new();
    let mut pairs = Vec::with_capacity(16);
    for entry in entries {
        let (mut same_id, mut same_rev) = (false, false);
        let (split, origin) = match &entry.body {
            Body::Columns(p) => {
                p.members(&mut pairs).ok_or_else(damaged)?;
                (Some(()), Some((std::sync::Arc::as_ptr(&p.page) as usize, p.shape)))
            }
            Body::Text(record, _) => (members(record.get(), &mut pairs), None),
        };
        match split {
            Some(()) => {
                let found = shapes.iter().position(|s| {
                    s.entity == entry.entity
                        && ((origin.is_some() && s.origin == origin)
                            || (s.keys.len() == pairs.len() && s.keys.iter().zip(&pairs).all(|(a, (b, _))| a == b)))
                });
                let s = match found {
                    Some(s) => s,
                    None => {
                        let at = |name: &str| pairs.iter().position(|(k, _)| *k == name);
                        let shape = Shape {
                            entity: entry.entity,
                            origin,
                            keys: pairs.iter().map(|(k, _)| *k).collect(),
                            cols: pairs.iter().map(|(k, _)| column(&mut cols, k, entries.len())).collect(),
                            id: at(ID),
                            rev: at(REV),
                        };
                        shapes.push(shape);
                        shapes.len() - 1
                    }
                };
                let shape = &shapes[s];
                for ((_, v), &col) in pairs.iter().zip(&shape.cols) {
                    cols[col].1.push(*v);
                }
                same_id = shape.id.is_some_and(|p| matches!(pairs[p].1, Value::Text(v) if is_json_of(v, &entry.id)));
                same_rev = shape.rev.is_some_and(|p| match pairs[p].1 {
                    Value::Int(v) => v == entry.rev,
                    Value::Text(v) => v == number.format(entry.rev),
                });
                e.item().push_str(number.format(s));
            }
            None => {
                e.item().push_str("null");
                w.item().push_str(entry.record()?.get());
                push_key(t.item(), entry.entity)?;
            }
        }
        if same_id {
            i.item().push_str("null");
        } else {
            push_key(i.item(), &entry.id)?;
        }
        r.item().push_str(if same_rev { "null" } else { number.format(entry.rev) });
        c.item().push_str(number.format(entry.rev.wrapping_sub(entry.created_rev)));
        d.item().push_str(if entry.deleted { "1" } else { "0" });
    }
    let mut s = List::default();
    for shape in &shapes {
        let out = s.item();
        out.push('[');
        push_key(out, shape.entity)?;
        out.push_str(",[");
        for (n, k) in shape.keys.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            push_key(out, k)?;
        }
        out.push_str("]]");
    }
    let (mut k, mut n) = (List::default(), List::default());
    for (key, values) in cols {
        let ints: Option<Vec<i64>> = values
            .iter()
            .map(|v| match *v {
                Value::Int(v) => Some(v),
                Value::Text(v) => canonical_int(v),
            })
            .collect();
        let out = if ints.is_some() { n.item() } else { k.item() };
        out.push('[');
        push_key(out, key)?;
        out.push_str(",[");
        match ints {
            Some(ints) => {
                let mut prev = 0i64;
                for (m, v) in ints.into_iter().enumerate() {
                    if m > 0 {
                        out.push(',');
                    }
                    out.push_str(number.format(v.wrapping_sub(prev)));
                    prev = v;
                }
            }
            None => {
                for (m, v) in values.iter().enumerate() {
                    if m > 0 {
                        out.push(',');
                    }
                    match *v {
                        Value::Text(v) => out.push_str(v),
                        Value::Int(v) => out.push_str(number.format(v)),
                    }
                }
            }
        }
        out.push_str("]]");
    }
    let mut json = String::with_capacity(entries.len() * 256);
    for (name, list) in
        [("s", s), ("e", e), ("i", i), ("r", r), ("c", c), ("d", d), ("w", w), ("t", t), ("k", k), ("n", n)]
    {
        json.push(if json.is_empty() { '{' } else { ',' });
        json.push('"');
        json.push_str(name);
        json.push_str("\":[");
        json.push_str(&list.0);
        json.push(']');
    }
    json.push('}');
    Ok(json)
}

/// A JSON array's items being written, without the brackets.
#[derive(Default)]
struct List(String);

impl List {
    /// The buffer to write the next item into (after a comma when it is not the first).
    fn item(&mut self) -> &mut String {
        if !self.0.is_empty() {
            self.0.push(',');
        }
        &mut self.0
    }
}

/// The index of `key`'s column in `cols`, added when it is new.
fn column<'e>(cols: &mut Vec<(&'e str, Vec<Value<'e>>)>, key: &'e str, entries: usize) -> usize {
    match cols.iter().position(|(k, _)| *k == key) {
        Some(c) => c,
        None => {
            cols.push((key, Vec::with_capacity(entries)));
            cols.len() - 1
        }
    }
}

/// A record's keys and values, as slices of its JSON text, when the text is an object
/// laid out the way serde_json writes one (no whitespace outside the values, no escape in
/// a key), so that the pieces put together again give exactly this text; `None` for
/// anything else, which is then stored whole. `json` is valid JSON (a `RawValue`).
/// `out` is cleared and reused from record to record.
fn members<'j>(json: &'j str, out: &mut Vec<(&'j str, Value<'j>)>) -> Option<()> {
    out.clear();
    let b = json.as_bytes();
    if b.first() != Some(&b'{') || b.last() != Some(&b'}') {
        return None;
    }
    if b.len() == 2 {
        return Some(());
    }
    let mut i = 1;
    loop {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key = i + 1;
        let key_end = key + b.get(key..)?.iter().position(|&x| x == b'"' || x == b'\\')?;
        if b[key_end] != b'"' || b.get(key_end + 1) != Some(&b':') {
            return None;
        }
        let value = key_end + 2;
        i = value_end(b, value)?;
        out.push((json.get(key..key_end)?, Value::Text(json.get(value..i)?)));
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') if i == b.len() - 1 => return Some(()),
            _ => return None,
        }
    }
}

/// The end of the JSON value starting at `b[i]` (valid JSON): a string, an object or an
/// array to its closing quote or bracket, a number or literal without whitespace.
fn value_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let (mut depth, mut j) = (0usize, i);
            loop {
                match *b.get(j)? {
                    b'"' => {
                        j = string_end(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth = depth.checked_sub(1)?;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let len = b.get(i..)?.iter().position(|x| matches!(x, b',' | b'}'))?;
            let scalar = b.get(i..i + len)?;
            (len > 0 && scalar.iter().all(|x| x.is_ascii_alphanumeric() || matches!(x, b'-' | b'+' | b'.')))
                .then_some(i + len)
        }
    }
}

/// The index after the closing quote of the JSON string starting at `b[i]`.
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    string_span(b, i).map(|(end, _)| end)
}

/// [`string_end`], and whether the string has an escape.
fn string_span(b: &[u8], i: usize) -> Option<(usize, bool)> {
    let (mut j, mut escaped) = (i + 1, false);
    loop {
        j = jsontext::plain_run(b, j);
        match *b.get(j)? {
            b'"' => return Some((j + 1, escaped)),
            b'\\' => {
                escaped = true;
                j += 2;
            }
            _ => j += 1,
        }
    }
}

/// Whether `s` is written as a JSON string without any escape: serde_json escapes `"`,
/// `\` and the bytes below 0x20, nothing else.
fn plain(s: &str) -> bool {
    s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\')
}

/// `key` as a JSON string, the way serde_json writes it.
fn push_key(out: &mut String, key: &str) -> Result<(), Error> {
    if plain(key) {
        out.push('"');
        out.push_str(key);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(key)?);
    }
    Ok(())
}

/// Whether `json` is `s` as a JSON string with nothing escaped.
fn is_json_of(json: &str, s: &str) -> bool {
    json.len() == s.len() + 2
        && json.starts_with('"')
        && json.ends_with('"')
        && &json[1..json.len() - 1] == s
        && plain(s)
}

/// The integer `json` is, when it is written the way an i64 prints (no plus sign,
/// exponent, fraction or leading zero), so that it prints back the same.
fn canonical_int(json: &str) -> Option<i64> {
    // Checked by its digits before it is parsed: the encoder asks this of every value of
    // every column, strings included.
    let digits = json.strip_prefix('-').unwrap_or(json).as_bytes();
    let canonical = match digits {
        [b'0'] => json == "0",
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    canonical.then(|| json.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    /// The types these tests store records of.
    fn known(name: &str) -> Option<&'static str> {
        ["tasks", "lists", "notes", "settings"].into_iter().find(|t| *t == name)
    }

    #[test]
    fn a_written_entry_gives_the_deleted_at_its_writer_said() {
        let live = Entry::written(
            "tasks",
            "a".into(),
            1,
            1,
            None,
            RawValue::from_string(r#"{"deleted_at":null,"id":"a"}"#.into()).unwrap(),
        );
        let gone = Entry::written(
            "tasks",
            "b".into(),
            2,
            1,
            Some(7),
            RawValue::from_string(r#"{"deleted_at":7,"id":"b"}"#.into()).unwrap(),
        );
        assert_eq!((live.deleted, gone.deleted), (false, true));
        assert_eq!((live.deleted_at().unwrap(), gone.deleted_at().unwrap()), (None, Some(7)));
        assert_eq!(tomb(&[live.clone(), gone.clone()]).unwrap(), Some(7));
        // Decoded again, read from the record.
        let back = decode(&encode(&[live, gone]).unwrap(), known).unwrap();
        assert_eq!(tomb(&back).unwrap(), Some(7));
    }

    #[test]
    fn deleted_at_of_a_record() {
        assert_eq!(deleted_at(r#"{"id":"a","deleted_at":5,"x":{"deleted_at":1}}"#).unwrap(), Some(5));
        assert_eq!(deleted_at(r#"{"id":"a","deleted_at":null}"#).unwrap(), None);
        assert_eq!(deleted_at(r#"{"id":"a"}"#).unwrap(), None);
        assert!(deleted_at(r#"{"deleted_at":"5"}"#).is_err());
        assert!(deleted_at(r#"{"deleted_at":1.5}"#).is_err());
        assert_eq!(deleted_at("[1]").unwrap(), Some(1), "a sequence, as serde's derive reads one");
    }

    fn entry(id: &str, deleted_at: Option<i64>) -> Entry {
        let record = match deleted_at {
            Some(at) => format!("{{\"id\":\"{id}\",\"deleted_at\":{at}}}"),
            None => format!("{{\"id\":\"{id}\",\"title\":\"t\",\"deleted_at\":null}}"),
        };
        Entry::new("tasks", id.into(), 1, 1, deleted_at.is_some(), RawValue::from_string(record).unwrap())
    }

    fn same(a: &[Entry], b: &[Entry]) {
        assert_eq!(a.len(), b.len());
        for (a, b) in a.iter().zip(b) {
            assert_eq!(
                (a.entity, &a.id, a.rev, a.created_rev, a.deleted),
                (b.entity, &b.id, b.rev, b.created_rev, b.deleted)
            );
            assert_eq!(a.record().unwrap().get(), b.record().unwrap().get());
            assert_eq!(a.record_len(), a.record().unwrap().get().len());
        }
    }

    fn task(i: i64) -> Entry {
        let record = format!(
            "{{\"completed\":false,\"created_at\":{},\"deleted_at\":null,\"id\":\"t{i}\",\"rev\":{},\"title\":\"task number {i}\",\"version\":1}}",
            1_700_000_000_000 + i * 7,
            100 + i
        );
        Entry::new("tasks", format!("t{i}"), 100 + i, 90 + i, false, RawValue::from_string(record).unwrap())
    }

    #[test]
    fn bodies_round_trip_and_shrink() {
        let entries: Vec<Entry> =
            (0..300).map(|i| entry(&format!("t{i}"), (i % 10 == 0).then_some(1_000 + i))).collect();
        let body = encode(&entries).unwrap();
        let json = serde_json::to_string(&entries).unwrap();
        assert_eq!(body[0], COLUMNS);
        assert!(body.len() * 4 < json.len(), "{} of {}", body.len(), json.len());
        same(&decode(&body, known).unwrap(), &entries);
        let hex: String = body.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(serde_json::to_string(&decode_hex(&hex, known).unwrap()).unwrap(), json);
        assert_eq!(tomb(&entries).unwrap(), Some(1_000));
        assert_eq!(tomb(&entries[1..10]).unwrap(), None);
        assert!(decode(&encode(&[]).unwrap(), known).unwrap().is_empty());
    }

    #[test]
    fn columns_take_far_less_than_the_tuples_and_format_1_still_reads() {
        let entries: Vec<Entry> = (0..400).map(task).collect();
        let json = serde_json::to_vec(&entries).unwrap();
        let v1 = deflate(&json).unwrap();
        let v2 = encode(&entries).unwrap();
        assert!(v2.len() * 10 < v1.len() * 7, "format 2: {} bytes, format 1: {}", v2.len(), v1.len());
        same(&decode(&v1, known).unwrap(), &entries);
        same(&decode(&v2, known).unwrap(), &entries);
        // The integer columns (created_at, rev, version) are stored as differences; the
        // entry's id and rev are not stored again beside the record's.
        let (_, columns) = inflate(&v2).unwrap();
        let c: serde_json::Value = serde_json::from_str(&columns).unwrap();
        let ints: Vec<&str> = c["n"].as_array().unwrap().iter().map(|p| p[0].as_str().unwrap()).collect();
        assert_eq!(ints, ["created_at", "rev", "version"]);
        assert_eq!(c["n"][0][1][1], 7);
        assert!(c["i"].as_array().unwrap().iter().all(|v| v.is_null()));
        assert!(c["r"].as_array().unwrap().iter().all(|v| v.is_null()));
        assert!(c["c"].as_array().unwrap().iter().all(|v| v == 10));
    }

    /// Whether the entry's record is still in its page, not rebuilt.
    fn unbuilt(e: &Entry) -> bool {
        matches!(&e.body, Body::Columns(p) if p.built.get().is_none())
    }

    #[test]
    fn decoded_records_are_rebuilt_only_when_read_and_encode_from_their_page() {
        let mut entries: Vec<Entry> = (0..50).map(task).collect();
        let nested = r#"{"id":"n","v":{"a":[1,{"b":"}"}]},"rev":-7}"#;
        entries.push(Entry::new("notes", "n".into(), -7, -7, false, RawValue::from_string(nested.into()).unwrap()));
        entries.push(Entry::new("notes", "e".into(), 8, 8, false, RawValue::from_string("{}".into()).unwrap()));
        let body = encode(&entries).unwrap();
        let back = decode(&body, known).unwrap();
        assert!(back.iter().all(unbuilt));
        // Written from the page, the same page byte for byte, and nothing rebuilt.
        assert_eq!(encode(&back).unwrap(), body);
        assert!(back.iter().all(unbuilt));
        same(&back, &entries);
        assert!(!back.iter().any(unbuilt), "read, so rebuilt");
        assert_eq!(encode(&back).unwrap(), body);
        // Entries of two pages whose first shapes differ, with a record of text between
        // them: each keeps its own keys.
        let notes: Vec<Entry> = (0..5)
            .map(|i| {
                let text = format!(r#"{{"body":"b{i}","id":"m{i}","rev":{i}}}"#);
                Entry::new("notes", format!("m{i}"), i, i, i == 3, RawValue::from_string(text).unwrap())
            })
            .collect();
        let mut mixed = decode(&encode(&notes).unwrap(), known).unwrap();
        mixed.push(task(99));
        mixed.extend(decode(&body, known).unwrap());
        let mut want = notes.clone();
        want.push(task(99));
        want.extend(entries.iter().cloned());
        same(&decode(&encode(&mixed).unwrap(), known).unwrap(), &want);
        assert_eq!(encode(&mixed).unwrap(), encode(&want).unwrap());
        // An entry given another type keeps it: a shape is its page's only for its type.
        let mut moved = decode(&body, known).unwrap();
        moved[1].entity = "lists";
        let back = decode(&encode(&moved).unwrap(), known).unwrap();
        assert_eq!((back[0].entity, back[1].entity, back[2].entity), ("tasks", "lists", "tasks"));
    }

    #[test]
    fn a_page_of_many_records_and_empty_columns_decodes_within_its_size() {
        // 100,000 empty records and as many empty columns (2.6 MB of text): room for a slot
        // per column of every entry would be 40 GB (review of f959f5e); one per value is 0.
        let n = 100_000;
        let ids: Vec<String> = (0..n).map(|i| format!("\"r{i}\"")).collect();
        let ones = vec!["1"; n].join(",");
        let zeros = vec!["0"; n].join(",");
        let empty: Vec<String> = (0..n).map(|c| format!("[\"k{c}\",[]]")).collect();
        let json = format!(
            r#"{{"s":[["tasks",[]]],"e":[{zeros}],"i":[{}],"r":[{ones}],"c":[{zeros}],"d":[{zeros}],"w":[],"t":[],"k":[{}],"n":[]}}"#,
            ids.join(","),
            empty.join(",")
        );
        let entries = decode_json(COLUMNS, json, known).unwrap();
        assert_eq!(entries.len(), n);
        assert_eq!((entries[7].id.as_str(), entries[7].rev, entries[7].record().unwrap().get()), ("r7", 1, "{}"));
    }

    #[test]
    fn records_that_would_not_come_back_identical_are_kept_whole() {
        let odd = |text: &str, id: &str, rev: i64| {
            Entry::new("notes", id.into(), rev, rev, true, RawValue::from_string(text.into()).unwrap())
        };
        let entries = vec![
            task(1),
            odd(r#"{ "id": "a" }"#, "a", 1),
            odd(r#"{"\u0069d":"b","rev":2}"#, "b", 2),
            odd(r#"{"id":"c","id":"d","rev":3,"rev":-4}"#, "c", 3),
            odd(r#"{"id":"\u0065","rev":5.0}"#, "e", 5),
            odd(r#"{"id":7,"rev":"7","x":[1,{"y":null}],"k\n":"\u00e9"}"#, "seven", -9),
            odd(r#"{}"#, "", i64::MIN),
            odd(r#"[1,2]"#, "arr", i64::MAX),
            task(2),
        ];
        same(&decode(&encode(&entries).unwrap(), known).unwrap(), &entries);
        let (_, columns) = inflate(&encode(&entries).unwrap()).unwrap();
        let c: serde_json::Value = serde_json::from_str(&columns).unwrap();
        // Whitespace, an escaped key, an array: kept whole; duplicate keys, an id that is
        // escaped or a number, a rev that is not an integer: shaped, the entry's id and rev
        // then stored beside the record's.
        assert_eq!(c["w"].as_array().unwrap().len(), 4, "{columns}");
        assert_eq!(c["i"][4], "e");
        assert_eq!(c["r"][4], 5);
    }

    #[test]
    fn a_body_never_decodes_to_more_than_format_1_could_hold() {
        // One shape with a 100 KB key used by 400 entries: 400 × 100 KB of records from a
        // body of a few hundred bytes.
        let key = "k".repeat(100_000);
        let n = 400;
        let list = |v: &str| vec![v; n].join(",");
        let json = format!(
            r#"{{"s":[["tasks",["{key}"]]],"e":[{}],"i":[{}],"r":[{}],"c":[{}],"d":[{}],"w":[],"t":[],"k":[],"n":[["{key}",[{}]]]}}"#,
            list("0"),
            list("\"x\""),
            list("1"),
            list("0"),
            list("0"),
            list("0")
        );
        let body = tagged(COLUMNS, json.as_bytes()).unwrap();
        assert!(body.len() < 2_000, "{}", body.len());
        assert!(decode(&body, known).is_err());
        // The same shape for a few entries is fine.
        let few = json.replace(&list("0"), "0").replace(&list("\"x\""), "\"x\"").replace(&list("1"), "1");
        assert_eq!(decode(&tagged(COLUMNS, few.as_bytes()).unwrap(), known).unwrap().len(), 1);
    }

    #[test]
    fn mentions_finds_whole_strings_only_and_reads_escapes() {
        let json = r#"{"k":[["id",["t1","x\"t2\"", "a\u0062c"]]],"t3x":["t33"],"n":"t4\\"}"#;
        assert!(mentions(json, &["t1"]));
        assert!(mentions(json, &["nope", "abc"]), "an escaped string is read unescaped");
        assert!(mentions(json, &["t4\\"]));
        assert!(mentions(json, &["t3x"]), "keys are strings too");
        for absent in ["t", "t2", "t3", "t4", "x", "ab", "1", "k]"] {
            assert!(!mentions(json, &[absent]), "{absent}: not a whole string of the text");
        }
        assert!(!mentions(json, &[]));
        assert!(mentions(r#"["t1","t2"#, &["zz"]), "a text that ends inside a string: decode it");
    }

    #[test]
    fn damaged_columns_are_errors() {
        let body = |json: &str| tagged(COLUMNS, json.as_bytes()).unwrap();
        let good = r#"{"s":[["tasks",["id","rev"]]],"e":[0],"i":[null],"r":[null],"c":[0],"d":[0],"w":[],"t":[],"k":[["id",["a"]]],"n":[["rev",[3]]]}"#;
        let e = decode(&body(good), known).unwrap();
        assert_eq!((e[0].id.as_str(), e[0].rev, e[0].record().unwrap().get()), ("a", 3, r#"{"id":"a","rev":3}"#));
        for bad in [
            good.replace(r#""d":[0]"#, r#""d":[2]"#),
            good.replace(r#""n":[["rev",[3]]]"#, r#""n":[["rev",[3]],["id",[1]]]"#),
            good.replace(r#""e":[0]"#, r#""e":[1]"#),
            good.replace(r#""e":[0]"#, r#""e":[0,0]"#),
            good.replace(r#""n":[["rev",[3]]]"#, r#""n":[["rev",[3,4]]]"#),
            good.replace(r#""n":[["rev",[3]]]"#, r#""n":[["rev",[]]]"#),
            good.replace(r#""n":[["rev",[3]]]"#, r#""n":[["id",[3]]]"#),
            good.replace(r#""n":[["rev",[3]]]"#, r#""n":[["rev",[3]],["rev",[4]]]"#),
            good.replace(r#""k":[["id",["a"]]]"#, r#""k":[["id",["a"]],["id",["b"]]]"#),
            good.replace(r#""tasks""#, r#""nope""#),
            good.replace(r#""e":[0]"#, r#""e":[null]"#),
            good.replace(r#"["id","rev"]"#, r#"["rev"]"#),
            // A shape key that would need an escape (the encoder keeps such records whole).
            good.replace(r#"["id","rev"]]"#, r#"["id","rev","q\""]]"#)
                .replace(r#"["rev",[3]]"#, r#"["rev",[3]],["q\"",[1]]"#),
        ] {
            assert!(decode(&body(&bad), known).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_damaged_page_reserves_no_more_than_its_text_could_hold() {
        // Many entries and many empty columns: room for every entry in every column would
        // be entries × columns values (a review found 977 MB for a 104 KB text).
        let (entries, columns) = (4000, 4000);
        let json = format!(
            r#"{{"s":[],"e":[{}],"i":[],"r":[],"c":[],"d":[],"w":[],"t":[],"k":[{}],"n":[{}]}}"#,
            vec!["null"; entries].join(","),
            vec![r#"["",[]]"#; columns].join(","),
            vec![r#"["",[]]"#; columns].join(","),
        );
        let read = Columns::read(&json).unwrap();
        let reserved: usize =
            read.k.iter().map(|c| c.1.capacity()).sum::<usize>() + read.n.iter().map(|c| c.1.capacity()).sum::<usize>();
        assert!(reserved <= json.len() / 2, "{reserved} values reserved for {} bytes", json.len());
        assert!(read.entries(None, known).is_err(), "and it is damage");
    }

    #[test]
    fn only_integers_that_print_back_the_same_are_integers() {
        for (json, v) in [("0", Some(0)), ("-12", Some(-12)), ("9223372036854775807", Some(i64::MAX))] {
            assert_eq!(canonical_int(json), v, "{json}");
        }
        assert_eq!(canonical_int("-9223372036854775808"), Some(i64::MIN));
        for json in ["-0", "+1", "01", "1.0", "1e3", "", "-", "--1", "9223372036854775808", "\"1\"", "true"] {
            assert_eq!(canonical_int(json), None, "{json}");
        }
    }

    #[test]
    fn trusted_text_is_the_raw_value_unchanged() {
        for json in [r#"{"a":[1,{"b":"\u00e9\""}],"c":-0}"#, "{}", "12", r#""x""#] {
            assert_eq!(trusted(json).unwrap().get(), json);
        }
    }

    #[test]
    fn damaged_bodies_are_errors_not_panics() {
        for bad in [&b""[..], b"\x00abc", b"\x01", b"\x01\xff\xff\xff", b"\x02xx"] {
            assert!(decode(bad, known).is_err(), "{bad:?}");
        }
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
        assert_eq!(from_hex("00fF10").unwrap(), vec![0, 255, 16]);
    }
}
