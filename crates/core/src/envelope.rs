//! The sync envelope: the fields every record carries besides its collection's own, named
//! once here, and the newtypes request input becomes once parsed (record id, user id).
//! Stored records are decoded into [`Stored`], which fails loudly on a malformed row
//! instead of reading a missing number as 0.

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

/// A stored record: its decoded envelope and the whole record as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub envelope: Envelope,
    pub record: Record,
}

impl Stored {
    /// Decodes a record read back from storage; fails with the reason.
    pub fn decode(record: Record) -> Result<Stored, String> {
        // Deserialized from a borrow of the record (serde_json reads a `&Value`), not from
        // a copy of it: an edit's lookup decodes every stored record it touches.
        let record = Value::Object(record);
        let envelope =
            Envelope::deserialize(&record).map_err(|e| format!("stored record without a valid envelope: {e}"))?;
        match record {
            Value::Object(record) => Ok(Stored { envelope, record }),
            _ => Err("stored record is not an object".into()),
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.envelope.deleted_at.is_some()
    }
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
        let s = Stored::decode(ok.as_object().unwrap().clone()).unwrap();
        assert_eq!((s.envelope.version, s.envelope.rev, s.is_deleted()), (2, 10, false));
        let mut bad = ok.as_object().unwrap().clone();
        bad.remove("version");
        assert!(Stored::decode(bad).unwrap_err().contains("version"));
        let mut bad = ok.as_object().unwrap().clone();
        bad.insert("rev".into(), json!("ten"));
        assert!(Stored::decode(bad).is_err());
    }
}
