//! SQL text, generated from the entity specs. Column names come only from
//! [`crate::entities`], never from a request; every value is a bound parameter, and
//! every statement is scoped by `user_id = ?1`. Bulk writes pass their rows as one JSON
//! parameter read with `json_each`, so a push costs the same number of statements
//! whatever its size (D1 allows 100 bound parameters per statement).

use crate::entities::{Entity, Kind, ENTITIES};

/// The JSON object a record is returned as (what clients see), built by SQLite so pulls
/// pass rows through without re-encoding. Booleans come back as JSON booleans and
/// JSON-valued fields as JSON, not text.
pub fn record_json(e: &Entity, with_type: bool) -> String {
    let mut parts = Vec::new();
    if with_type {
        parts.push(format!("'type','{}'", e.name));
    }
    for c in crate::envelope::FIELDS {
        parts.push(format!("'{c}',{c}"));
    }
    for f in e.fields {
        let expr = match f.kind {
            Kind::Bool => format!("json(iif({},'true','false'))", f.name),
            Kind::Json { .. } => format!("json({})", f.name),
            _ => f.name.to_string(),
        };
        parts.push(format!("'{}',{expr}", f.name));
    }
    format!("json_object({})", parts.join(","))
}

/// The user's sequence and purge horizon. ?1 user.
pub const STATE: &str = "SELECT seq, purge_horizon FROM user_state WHERE user_id = ?1";

/// Claims the next sequence value for a push: applies only if no other push committed
/// since this one read `seq` (?4), and stamps the push id (?3) that the push's row
/// writes check. RETURNING yields a row only when it applied. ?1 user, ?2 new seq.
pub const CLAIM: &str = "INSERT INTO user_state (user_id, seq, push_id) VALUES (?1, ?2, ?3) \
     ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq, push_id = excluded.push_id \
     WHERE user_state.seq = ?4 RETURNING seq";

/// Stored records with the given ids. ?1 user, ?2 JSON array of ids.
pub fn read_by_ids(e: &Entity) -> String {
    format!(
        "SELECT {} AS rec FROM {} WHERE user_id = ?1 AND id IN (SELECT value FROM json_each(?2))",
        record_json(e, false),
        e.name
    )
}

/// For a full upload: every live record, plus the given ids even when tombstoned.
/// ?1 user, ?2 JSON array of ids.
pub fn read_live_and_ids(e: &Entity) -> String {
    format!(
        "SELECT {} AS rec FROM {} WHERE user_id = ?1 \
         AND (deleted_at IS NULL OR id IN (SELECT value FROM json_each(?2)))",
        record_json(e, false),
        e.name
    )
}

/// Newest rev of a type (one index probe). ?1 user.
pub fn max_rev(e: &Entity) -> String {
    format!("SELECT max(rev) AS m FROM {} WHERE user_id = ?1", e.name)
}

/// Writes the rows of a push (?2, a JSON array of records in storage form) if the push
/// still owns the user's sequence (push id ?3). ?1 user. A record that comes back from a
/// tombstone counts as created again (`created_rev`), so delta pulls list it as created.
pub fn upsert(e: &Entity) -> String {
    let mut cols = vec!["user_id", "id", "version", "rev", "created_rev", "created_at", "updated_at"];
    cols.extend(["deleted_at", "device_id"]);
    cols.extend(e.fields.iter().map(|f| f.name));
    let mut vals = vec![
        "?1".to_string(),
        "j.value->>'id'".into(),
        "j.value->>'version'".into(),
        "j.value->>'rev'".into(),
        "j.value->>'rev'".into(),
        "j.value->>'created_at'".into(),
        "j.value->>'updated_at'".into(),
        "j.value->>'deleted_at'".into(),
        "j.value->>'device_id'".into(),
    ];
    // JSON-valued fields arrive pre-serialized as text, so `->>` fits every column.
    vals.extend(e.fields.iter().map(|f| format!("j.value->>'{}'", f.name)));
    let mut sets: Vec<String> = ["version", "rev", "updated_at", "deleted_at", "device_id"]
        .iter()
        .chain(e.fields.iter().map(|f| &f.name))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    sets.push(format!(
        "created_rev = CASE WHEN {t}.deleted_at IS NOT NULL AND excluded.deleted_at IS NULL \
         THEN excluded.rev ELSE {t}.created_rev END",
        t = e.name
    ));
    format!(
        "INSERT INTO {t} ({cols}) SELECT {vals} FROM json_each(?2) AS j \
         WHERE EXISTS (SELECT 1 FROM user_state WHERE user_id = ?1 AND push_id = ?3) \
         ON CONFLICT (user_id, id) DO UPDATE SET {sets}",
        t = e.name,
        cols = cols.join(", "),
        vals = vals.join(", "),
        sets = sets.join(", ")
    )
}

/// One page of a type's changes after a cursor, in rev order; reads rows in proportion
/// to the page through the (user_id, rev) index. ?1 user, ?2 since, ?3 limit.
pub fn changes(e: &Entity) -> String {
    format!(
        "SELECT rev, created_rev > ?2 AS created, deleted_at IS NOT NULL AS deleted, id, {} AS rec \
         FROM {} WHERE user_id = ?1 AND rev > ?2 ORDER BY rev LIMIT ?3",
        record_json(e, false),
        e.name
    )
}

/// One page of every type's changes after a cursor, leaving out the revs in ?3 (a JSON
/// array: the request's own writes). Each branch is limited before the merge, so at most
/// `types × limit` rows are read. ?1 user, ?2 since, ?4 limit.
pub fn changes_all() -> String {
    let branches: Vec<String> = ENTITIES
        .iter()
        .map(|e| {
            format!(
                "SELECT * FROM (SELECT '{t}' AS type, rev, deleted_at IS NOT NULL AS deleted, id, {rec} AS rec \
                 FROM {t} WHERE user_id = ?1 AND rev > ?2 AND rev NOT IN (SELECT value FROM json_each(?3)) \
                 ORDER BY rev LIMIT ?4)",
                t = e.name,
                rec = record_json(e, true)
            )
        })
        .collect();
    format!("{} ORDER BY rev LIMIT ?4", branches.join(" UNION ALL "))
}

/// One page of a type's live records in id order. ?1 user, ?2 after id ('' = start), ?3 limit.
pub fn download(e: &Entity) -> String {
    format!(
        "SELECT id, {} AS rec FROM {} WHERE user_id = ?1 AND id > ?2 AND deleted_at IS NULL \
         ORDER BY id LIMIT ?3",
        record_json(e, false),
        e.name
    )
}

/// Records in the form the upsert reads: booleans as 0/1 and JSON-valued fields as
/// their serialized text, so every column is a plain `->>` extraction. Serialized
/// straight from the plan's records, without copying them.
pub fn storage_rows(e: &Entity, records: &[crate::envelope::Record]) -> Result<String, serde_json::Error> {
    use serde::ser::{SerializeMap, SerializeSeq};
    use serde_json::Value;

    struct Row<'a>(&'a Entity, &'a crate::envelope::Record);
    impl serde::Serialize for Row<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.1.len()))?;
            for (k, v) in self.1 {
                match (self.0.fields.iter().find(|f| f.name == k).map(|f| f.kind), v) {
                    (Some(Kind::Bool), Value::Bool(b)) => m.serialize_entry(k, &i64::from(*b))?,
                    (Some(Kind::Json { .. }), Value::Null) => m.serialize_entry(k, v)?,
                    (Some(Kind::Json { .. }), v) => m.serialize_entry(k, &v.to_string())?,
                    _ => m.serialize_entry(k, v)?,
                }
            }
            m.end()
        }
    }
    struct Rows<'a>(&'a Entity, &'a [crate::envelope::Record]);
    impl serde::Serialize for Rows<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.1.len()))?;
            for r in self.1 {
                seq.serialize_element(&Row(self.0, r))?;
            }
            seq.end()
        }
    }
    serde_json::to_string(&Rows(e, records))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entities::entity;

    #[test]
    fn every_statement_is_scoped_by_user() {
        for e in ENTITIES {
            for sql in [read_by_ids(e), read_live_and_ids(e), max_rev(e), upsert(e), changes(e), download(e)] {
                assert!(sql.contains("user_id = ?1"), "{sql}");
            }
        }
        assert_eq!(changes_all().matches("user_id = ?1").count(), ENTITIES.len());
    }

    #[test]
    fn record_json_shapes_fields() {
        let sql = record_json(entity("tasks").unwrap(), true);
        assert!(sql.starts_with("json_object('type','tasks','id',id,"));
        assert!(sql.contains("'completed',json(iif(completed,'true','false'))"));
        assert!(record_json(entity("settings").unwrap(), false).contains("'value',json(value)"));
    }

    #[test]
    fn storage_form() {
        let mut r = crate::envelope::Record::new();
        r.insert("id".into(), "k".into());
        r.insert("value".into(), serde_json::json!({"a": true}));
        let rows = storage_rows(entity("settings").unwrap(), &[r]).unwrap();
        assert_eq!(rows, r#"[{"id":"k","value":"{\"a\":true}"}]"#);
        let mut t = crate::envelope::Record::new();
        t.insert("completed".into(), true.into());
        assert!(storage_rows(entity("tasks").unwrap(), &[t]).unwrap().contains(r#""completed":1"#));
    }

    #[test]
    fn upsert_keys_on_user_and_id() {
        let sql = upsert(entity("lists").unwrap());
        assert!(sql.contains("ON CONFLICT (user_id, id) DO UPDATE"));
        assert!(sql.contains("name = excluded.name"));
        assert!(!sql.contains("created_at = excluded"), "created_at is kept on update");
    }
}
