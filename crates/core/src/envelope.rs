//! The sync envelope: the fields every record carries besides its collection's own, named
//! once here, and the newtypes request input becomes once parsed (record id, user id).
//! Stored records are decoded into [`Stored`], which fails loudly on a malformed row
//! instead of reading a missing number as 0.

use std::cell::OnceCell;

use edgesync_codec::jsontext::{Damaged, Reader};
use serde::Deserialize;
use serde_json::{Map, Value};

pub const ID: &str = "id";
pub const VERSION: &str = "version";
pub const REV: &str = "rev";
pub const CREATED_AT: &str = "created_at";
pub const UPDATED_AT: &str = "updated_at";
pub const DELETED_AT: &str = "deleted_at";
pub const DEVICE_ID: &str = "device_id";

/// The envelope's fields, in the order records are returned.
pub const FIELDS: [&str; 7] = [ID, VERSION, REV, CREATED_AT, UPDATED_AT, DELETED_AT, DEVICE_ID];

/// Largest integer a JavaScript client can hold exactly (2^53 − 1): the bound of every
/// integer the API accepts or mints.
pub const MAX_SAFE_INT: i64 = 9_007_199_254_740_991;

/// A record id (also a `list_id` reference): 1–128 characters of `[A-Za-z0-9_.:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(String);

impl RecordId {
    pub fn parse(s: &str) -> Option<RecordId> {
        valid_id(s).then(|| RecordId(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// [`valid_id`] as a JSON Schema pattern (the OpenAPI document).
pub const ID_PATTERN: &str = "^[A-Za-z0-9_.:-]{1,128}$";

pub fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// The verified user: the token's `sub`, 1–128 characters. Only `auth` makes one, so a
/// value of this type has passed verification; every statement is bound to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(String);

impl UserId {
    pub const MAX_LEN: usize = 128;

    pub fn parse(sub: &str) -> Option<UserId> {
        (!sub.is_empty() && sub.chars().count() <= Self::MAX_LEN).then(|| UserId(sub.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A record as clients see it (envelope and collection fields), keyed by field name.
pub type Record = Map<String, Value>;

/// The envelope of a stored record, decoded strictly: a row without a version or rev is
/// a bug to report, not a version 0.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Envelope {
    pub id: String,
    pub version: i64,
    pub rev: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub device_id: Option<String>,
}

/// A stored record: its envelope, decoded when it is read, and the whole record as
/// clients see it, decoded on first use only. Most edits of a stored record need the
/// envelope alone (a change that raises the version); the record is for the content
/// check of a versionless or stale change and a conflict's reply.
#[derive(Debug, Clone)]
pub struct Stored {
    pub envelope: Envelope,
    /// The record's JSON text, as stored.
    text: Box<str>,
    record: OnceCell<Record>,
}

/// Equal when read from the same text (whether the record was decoded yet is no part
/// of its value). Only tests compare records: the same map written in another order or
/// spacing is another text.
impl PartialEq for Stored {
    fn eq(&self, other: &Self) -> bool {
        self.envelope == other.envelope && self.text == other.text
    }
}

impl Stored {
    /// Decodes a record read back from storage (its JSON text); fails with the reason.
    /// The envelope is read straight from the text, without building the record's map.
    /// Text that way refuses (not an object, a member twice, a bad envelope) takes the
    /// way through the map, which decodes or fails as the record's map does. One
    /// difference, for damaged storage only: a member outside the envelope is checked as
    /// JSON text, not decoded, so one that a `Value` refuses (a number past f64's range, a
    /// lone surrogate, nesting past serde_json's limit) fails only what reads it (the
    /// content check of that member, [`Stored::record`]), not an edit that needs the
    /// envelope alone and replaces the record's fields anyway.
    pub fn decode(text: &str) -> Result<Stored, String> {
        if let Ok(envelope) = read_envelope(text) {
            return Ok(Stored { envelope, text: text.into(), record: OnceCell::new() });
        }
        let record: Record = serde_json::from_str(text).map_err(|e| e.to_string())?;
        // Deserialized from a borrow of the record (serde_json reads a `&Value`), not a copy.
        let record = Value::Object(record);
        let envelope =
            Envelope::deserialize(&record).map_err(|e| format!("stored record without a valid envelope: {e}"))?;
        match record {
            Value::Object(record) => Ok(Stored { envelope, text: text.into(), record: OnceCell::from(record) }),
            _ => Err("stored record is not an object".into()),
        }
    }

    /// The whole record, decoded on first use.
    pub fn record(&self) -> Result<&Record, String> {
        if let Some(record) = self.record.get() {
            return Ok(record);
        }
        let record: Record = serde_json::from_str(&self.text).map_err(|e| e.to_string())?;
        Ok(self.record.get_or_init(|| record))
    }

    /// Whether each named member holds the given value (an absent member holds null),
    /// stopping at the first that does not. Read from the text in one pass without
    /// building the record: only the members compared are decoded.
    pub fn same_members<'v>(&self, members: impl Iterator<Item = (&'v str, &'v Value)>) -> Result<bool, String> {
        if let Some(record) = self.record.get() {
            return Ok(members.into_iter().all(|(k, v)| record.get(k).unwrap_or(&Value::Null) == v));
        }
        // The text passed `read_envelope`: an object, each key once.
        let mut wanted: Vec<(&str, &Value, bool)> = members.map(|(k, v)| (k, v, false)).collect();
        let mut verdict: Result<bool, String> = Ok(true);
        let read = Reader::new(&self.text).object(|r, key| {
            let raw = r.raw()?;
            let mut asked = wanted.iter_mut().filter(|w| w.0 == key).peekable();
            if asked.peek().is_none() {
                return Ok(());
            }
            // A member that does not decode answers with the whole record's error (its
            // position in the text, as decoding the record says it).
            let stored =
                serde_json::from_str::<Value>(raw).map_err(|e| self.record().err().unwrap_or_else(|| e.to_string()));
            for w in asked {
                w.2 = true;
                verdict = stored.as_ref().map(|s| s == w.1).map_err(Clone::clone);
                // Stops the reading at the first answer other than "the same".
                if verdict != Ok(true) {
                    return Err(Damaged);
                }
            }
            Ok(())
        });
        if verdict != Ok(true) {
            return verdict;
        }
        read.map_err(|_| "stored record is damaged".to_string())?;
        Ok(wanted.iter().all(|(_, v, found)| *found || **v == Value::Null))
    }

    /// The members named `names` (`None` where absent), read from the text in one pass
    /// without building the record: a delete keeps its last values as they were stored,
    /// and parsing them into a map only to write them back cost a full upload over a
    /// large set most of its CPU. Taken from the map when it was built (text decoded that
    /// way, a member twice: the last wins, as before; or an earlier [`Stored::record`]):
    /// the same values either way, and the same text for any record this code wrote.
    pub fn members(&self, names: &[&str]) -> Result<Vec<Option<Held<'_>>>, String> {
        if let Some(record) = self.record.get() {
            return Ok(names.iter().map(|n| record.get(*n).map(Held::Value)).collect());
        }
        let mut out = vec![None; names.len()];
        Reader::new(&self.text)
            .object(|r, key| {
                let raw = r.raw()?;
                if let Some(i) = names.iter().position(|n| *n == key) {
                    out[i] = Some(Held::Text(raw));
                }
                Ok(())
            })
            .map_err(|_| "stored record is damaged".to_string())?;
        Ok(out)
    }

    pub fn is_deleted(&self) -> bool {
        self.envelope.deleted_at.is_some()
    }
}

/// A member of a stored record, as [`Stored::members`] found it: its JSON text (checked
/// as JSON, not decoded), or its value when the record was decoded.
#[derive(Debug, Clone, Copy)]
pub enum Held<'s> {
    Text(&'s str),
    Value(&'s Value),
}

/// A stored record's envelope read straight from its text, as records are written: an
/// object whose keys ascend (so none comes twice), holding every envelope member a
/// [`Envelope`] requires, of its type. Any other text is left to serde (`Damaged`).
fn read_envelope(text: &str) -> Result<Envelope, Damaged> {
    let mut r = Reader::new(text);
    let (mut id, mut version, mut rev, mut created_at, mut updated_at) = (None, None, None, None, None);
    let (mut deleted_at, mut device_id) = (None, None);
    let mut last: Option<std::borrow::Cow<'_, str>> = None;
    r.object(|r, key| {
        if last.as_ref().is_some_and(|last| *last >= key) {
            return Err(Damaged);
        }
        match key.as_ref() {
            ID => id = Some(r.string()?.into_owned()),
            VERSION => version = Some(r.int()?),
            REV => rev = Some(r.int()?),
            CREATED_AT => created_at = Some(r.int()?),
            UPDATED_AT => updated_at = Some(r.int()?),
            DELETED_AT => deleted_at = r.nullable(Reader::int)?,
            DEVICE_ID => device_id = r.nullable(|r| r.string().map(|s| s.into_owned()))?,
            _ => {
                r.raw()?;
            }
        }
        last = Some(key);
        Ok(())
    })?;
    r.end()?;
    Ok(Envelope {
        id: id.ok_or(Damaged)?,
        version: version.ok_or(Damaged)?,
        rev: rev.ok_or(Damaged)?,
        created_at: created_at.ok_or(Damaged)?,
        updated_at: updated_at.ok_or(Damaged)?,
        deleted_at,
        device_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids() {
        assert!(valid_id("a"));
        assert!(valid_id("task:2024-01.x_y"));
        assert!(valid_id(&"x".repeat(128)));
        assert!(!valid_id(""));
        assert!(!valid_id(&"x".repeat(129)));
        assert!(!valid_id("a b"));
        assert!(!valid_id("a/b"));
        assert!(!valid_id("é"));
        assert!(!valid_id("a'--"));
        assert_eq!(RecordId::parse("t1").map(|r| r.to_string()), Some("t1".into()));
        assert!(UserId::parse("").is_none());
        assert!(UserId::parse(&"é".repeat(128)).is_some(), "128 characters, not bytes");
        assert!(UserId::parse(&"x".repeat(129)).is_none());
    }

    #[test]
    fn decoding_fails_loudly() {
        let ok = json!({"id": "t", "version": 2, "rev": 10, "created_at": 1, "updated_at": 2, "deleted_at": null, "device_id": null, "title": "x"});
        let text = |v: &Value| serde_json::to_string(v).unwrap();
        let s = Stored::decode(&text(&ok)).unwrap();
        assert_eq!((s.envelope.version, s.envelope.rev, s.is_deleted()), (2, 10, false));
        let mut bad = ok.clone();
        bad.as_object_mut().unwrap().remove("version");
        assert!(Stored::decode(&text(&bad)).unwrap_err().contains("version"));
        let mut bad = ok.clone();
        bad["rev"] = json!("ten");
        assert!(Stored::decode(&text(&bad)).is_err());
        assert!(Stored::decode("{\"id\": \"t\"").is_err(), "not JSON");
    }

    /// The envelope read straight from the text is the one the record's map gives, the
    /// record is decoded on first use only, and text the direct read refuses decodes (or
    /// fails) as the map does: a member twice (the last wins), an array.
    #[test]
    fn the_envelope_is_read_without_the_map() {
        let text = r#"{"created_at":1,"deleted_at":7,"device_id":"d","id":"t","rev":10,"title":"x","updated_at":2,"version":2}"#;
        let s = Stored::decode(text).unwrap();
        assert!(s.record.get().is_none(), "decoded on first use");
        let record = s.record().unwrap().clone();
        let by_map = Envelope::deserialize(&Value::Object(record.clone())).unwrap();
        assert_eq!(s.envelope, by_map);
        assert_eq!(s.envelope.device_id.as_deref(), Some("d"));
        assert!(s.is_deleted());
        assert_eq!(record["title"], "x");
        assert_eq!(s, Stored::decode(text).unwrap(), "equal whatever was decoded");
        assert_eq!(Stored::decode(&format!("  {text}")).unwrap().envelope, s.envelope);

        let twice = r#"{"id":"t","version":1,"rev":10,"created_at":1,"updated_at":2,"deleted_at":null,"version":3}"#;
        let s = Stored::decode(twice).unwrap();
        assert_eq!(s.envelope.version, 3, "the last member wins, as in a map");
        assert_eq!(s.record().unwrap()["version"], 3);

        let array = r#"["t",1,10,1,2,null,null]"#;
        assert!(Envelope::deserialize(&mut serde_json::Deserializer::from_str(array)).is_ok(), "a struct reads arrays");
        assert!(Stored::decode(array).unwrap_err().contains("expected a map"), "but a record is an object");
    }
}
