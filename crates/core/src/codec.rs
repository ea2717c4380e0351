//! The stored form of a page body (README "Storage"): the page's JSON array of entries
//! ([`crate::pages::Entry`]), raw-deflated, behind a one-byte format tag. D1 keeps it in
//! the BLOB column `pages.body`; the store reads it back as hex (`hex(body)`: D1 hands a
//! BLOB to the worker as an array of numbers, one JS value per byte, and a string crosses
//! into wasm in one copy). Pure, so the round trip is property-tested natively.

use serde::Deserialize;

use crate::error::ApiError;
use crate::pages::{self, Entry};

/// Format tag of a raw-deflate (RFC 1951) body of the JSON array.
pub const DEFLATE: u8 = 1;
/// miniz_oxide's level: 1 is its fast compressor (greedy, one probe), chosen for the CPU
/// of a push (bench/storage.mjs measures the levels; README "Storage").
pub const LEVEL: u8 = 1;
/// Largest JSON a body inflates to (a page's JSON stays under D1's 2 MB value limit when
/// it is written; anything larger is not a page this code wrote).
pub const MAX_JSON: usize = 32 * 1024 * 1024;

/// A page's entries as stored.
pub fn encode(entries: &[Entry]) -> Result<Vec<u8>, ApiError> {
    let json = serde_json::to_vec(entries)?;
    Ok(deflate(&json))
}

/// `json` compressed behind the format tag.
pub fn deflate(json: &[u8]) -> Vec<u8> {
    let packed = miniz_oxide::deflate::compress_to_vec(json, LEVEL);
    let mut out = Vec::with_capacity(packed.len() + 1);
    out.push(DEFLATE);
    out.extend_from_slice(&packed);
    out
}

/// The JSON text of a stored body.
pub fn inflate(body: &[u8]) -> Result<String, ApiError> {
    match body.split_first() {
        Some((&DEFLATE, packed)) => {
            let json = miniz_oxide::inflate::decompress_to_vec_with_limit(packed, MAX_JSON)
                .map_err(|e| ApiError::Internal(format!("page body does not inflate: {e}")))?;
            String::from_utf8(json).map_err(|e| ApiError::Internal(format!("page body is not UTF-8: {e}")))
        }
        Some((tag, _)) => Err(ApiError::Internal(format!("page body of unknown format {tag}"))),
        None => Err(ApiError::Internal("empty page body".into())),
    }
}

/// A stored body's entries.
pub fn decode(body: &[u8]) -> Result<Vec<Entry>, ApiError> {
    pages::parse_body(&inflate(body)?)
}

/// A stored body as D1's `hex(body)` returns it.
pub fn decode_hex(hex: &str) -> Result<Vec<Entry>, ApiError> {
    decode(&from_hex(hex)?)
}

/// Bytes from hex digits (either case), as SQLite's `hex()` writes them. A table lookup
/// per digit: this runs over every page a request reads.
pub fn from_hex(hex: &str) -> Result<Vec<u8>, ApiError> {
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
        return Err(ApiError::Internal("odd-length hex page body".into()));
    }
    let mut out = Vec::with_capacity(s.len() / 2);
    let mut bad = 0u8;
    for p in s.chunks_exact(2) {
        let (h, l) = (TABLE[p[0] as usize], TABLE[p[1] as usize]);
        bad |= (h | l) & 0xf0;
        out.push((h << 4) | (l & 0x0f));
    }
    if bad != 0 {
        return Err(ApiError::Internal("page body is not hex".into()));
    }
    Ok(out)
}

/// The earliest `deleted_at` of a tombstone among `entries` (the page's `tomb` column,
/// which the daily purge selects candidates by), or `None` when it holds none.
pub fn tomb<'e>(entries: impl IntoIterator<Item = &'e Entry>) -> Result<Option<i64>, ApiError> {
    #[derive(Deserialize)]
    struct Deleted {
        deleted_at: Option<i64>,
    }
    let mut earliest: Option<i64> = None;
    for e in entries.into_iter().filter(|e| e.deleted) {
        if let Some(at) = serde_json::from_str::<Deleted>(e.record.get())?.deleted_at {
            earliest = Some(earliest.map_or(at, |t| t.min(at)));
        }
    }
    Ok(earliest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn entry(id: &str, deleted_at: Option<i64>) -> Entry {
        let record = match deleted_at {
            Some(at) => format!("{{\"id\":\"{id}\",\"deleted_at\":{at}}}"),
            None => format!("{{\"id\":\"{id}\",\"title\":\"t\",\"deleted_at\":null}}"),
        };
        Entry {
            entity: "tasks",
            id: id.into(),
            rev: 1,
            created_rev: 1,
            deleted: deleted_at.is_some(),
            record: RawValue::from_string(record).unwrap(),
        }
    }

    #[test]
    fn bodies_round_trip_and_shrink() {
        let entries: Vec<Entry> =
            (0..300).map(|i| entry(&format!("t{i}"), (i % 10 == 0).then_some(1_000 + i))).collect();
        let body = encode(&entries).unwrap();
        let json = serde_json::to_string(&entries).unwrap();
        assert_eq!(body[0], DEFLATE);
        assert!(body.len() * 4 < json.len(), "{} of {}", body.len(), json.len());
        assert_eq!(inflate(&body).unwrap(), json);
        let hex: String = body.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(serde_json::to_string(&decode_hex(&hex).unwrap()).unwrap(), json);
        assert_eq!(tomb(&entries).unwrap(), Some(1_000));
        assert_eq!(tomb(&entries[1..10]).unwrap(), None);
        assert!(decode(&encode(&[]).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn damaged_bodies_are_errors_not_panics() {
        for bad in [&b""[..], b"\x00abc", b"\x01", b"\x01\xff\xff\xff", b"\x02xx"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        assert!(from_hex("abc").is_err());
        assert!(from_hex("zz").is_err());
        assert_eq!(from_hex("00fF10").unwrap(), vec![0, 255, 16]);
    }
}
