//! The write rule (contract §4.1): decides, for each change of a push, whether it is
//! applied, an idempotent replay, or a conflict, and assigns revs. Pure: it sees the
//! stored records the store read, and returns the rows the store must write.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::entities::Entity;
use crate::envelope::{self as env, Envelope, Record, RecordId, Stored, MAX_SAFE_INT};
use crate::parse::{default_for, Change, Op};

/// Key of a record within one user's data.
pub type Key = (&'static str, String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Apply {
        version: i64,
    },
    Replay,
    /// Not applied; reported in `conflicts` with the server's record and this reason.
    Conflict {
        reason: &'static str,
    },
}

/// The change's version is not above the stored one (and its content differs).
pub const STALE_VERSION: &str = "stale_version";
/// The record is at version 2^53 − 1, the largest a JavaScript client holds exactly:
/// minting 2^53 would hand clients a version they cannot send back, so it takes no
/// more edits.
pub const VERSION_EXHAUSTED: &str = "version_exhausted";

/// True when the change would leave the stored record's content as it is.
fn same_content(entity: &Entity, stored: &Stored, op: &Op) -> bool {
    match op {
        Op::Delete => stored.is_deleted(),
        Op::Upsert(values) => {
            !stored.is_deleted()
                && entity.fields.iter().zip(values).all(|(f, v)| stored.record.get(f.name).unwrap_or(&Value::Null) == v)
        }
    }
}

/// The version rule. `stored` is None when the record does not exist (version 0).
/// A change without a version whose content equals the stored record is a replay too,
/// so resending a versionless push does not mint new revs. A record at the largest
/// version a JavaScript client holds exactly (2^53 − 1) takes no versionless edit:
/// minting 2^53 would hand clients a version they cannot send back.
pub fn decide(entity: &Entity, stored: Option<&Stored>, change: &Change) -> Decision {
    let s = stored.map_or(0, |r| r.envelope.version);
    let same = stored.is_some_and(|r| same_content(entity, r, &change.op));
    match change.version {
        None if same => Decision::Replay,
        None if s >= MAX_SAFE_INT => Decision::Conflict { reason: VERSION_EXHAUSTED },
        None => Decision::Apply { version: s + 1 },
        Some(v) if v > s => Decision::Apply { version: v },
        Some(_) if same => Decision::Replay,
        Some(_) => Decision::Conflict { reason: STALE_VERSION },
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    #[serde(rename = "type")]
    pub entity: &'static str,
    pub id: RecordId,
    pub version: i64,
    pub rev: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conflict {
    #[serde(rename = "type")]
    pub entity: &'static str,
    pub id: RecordId,
    pub reason: &'static str,
    pub server: Option<Record>,
}

/// What a push does: the final state of every record it changes, and its report.
#[derive(Debug, Default)]
pub struct Plan {
    /// Records to write, grouped by entity; each key appears once with its final state.
    pub writes: Vec<(&'static Entity, Vec<Record>)>,
    pub applied: Vec<Applied>,
    pub conflicts: Vec<Conflict>,
    /// The decision for each change, in request order.
    pub decisions: Vec<Decision>,
    /// Revs handed out by this push (to leave the push's own rows out of its pull).
    pub revs: Vec<i64>,
    /// The user's sequence before the push, as read.
    pub base: i64,
    /// The user's sequence after the push (unchanged when nothing was applied).
    pub seq: i64,
}

impl Plan {
    pub fn changes_anything(&self) -> bool {
        !self.revs.is_empty()
    }
}

/// Applies `changes` in order over `stored` (the current records of every key the push
/// names). Revs continue the user's sequence `seq`: the first is `max(now, seq + 1)`,
/// each next one is one more, so they stay strictly increasing whatever the clock does.
pub fn plan(changes: &[Change], mut stored: HashMap<Key, Stored>, seq: i64, now: i64) -> Plan {
    let mut out = Plan { base: seq, seq, ..Plan::default() };
    let mut next_rev = now.max(seq + 1);
    // Keys in first-write order, so the rows written are deterministic; the set keeps
    // the membership test O(1) (a Vec scan made 1,000-change pushes quadratic).
    let mut written: Vec<Key> = Vec::new();
    let mut seen: std::collections::HashSet<Key> = std::collections::HashSet::new();

    for c in changes {
        let key: Key = (c.entity.name, c.id.as_str().to_owned());
        let current = stored.get(&key);
        let decision = decide(c.entity, current, c);
        out.decisions.push(decision);
        match decision {
            Decision::Replay => out.applied.push(Applied {
                entity: c.entity.name,
                id: c.id.clone(),
                version: current.map_or(0, |r| r.envelope.version),
                rev: current.map_or(0, |r| r.envelope.rev),
            }),
            Decision::Conflict { reason } => out.conflicts.push(Conflict {
                entity: c.entity.name,
                id: c.id.clone(),
                reason,
                server: current.map(|r| r.record.clone()),
            }),
            Decision::Apply { version } => {
                let rev = next_rev;
                next_rev += 1;
                let record = apply(c, current, version, rev, now);
                out.applied.push(Applied { entity: c.entity.name, id: c.id.clone(), version, rev });
                out.revs.push(rev);
                out.seq = rev;
                if seen.insert(key.clone()) {
                    written.push(key.clone());
                }
                stored.insert(key, record);
            }
        }
    }

    for key in written {
        let Some(Stored { record, .. }) = stored.remove(&key) else { continue };
        let Some(entity) = crate::entities::entity(key.0) else { continue };
        match out.writes.iter_mut().find(|(e, _)| e.name == entity.name) {
            Some((_, rows)) => rows.push(record),
            None => out.writes.push((entity, vec![record])),
        }
    }
    out
}

/// The record after an applied change. Deletes keep the last field values (a tombstone
/// still says what was deleted); created_at survives every later change.
fn apply(c: &Change, current: Option<&Stored>, version: i64, rev: i64, now: i64) -> Stored {
    let envelope = Envelope {
        id: c.id.as_str().to_owned(),
        version,
        rev,
        created_at: current.map_or(now, |cur| cur.envelope.created_at),
        updated_at: now,
        deleted_at: matches!(c.op, Op::Delete).then_some(now),
        device_id: c.device_id.clone(),
    };
    let mut r = Record::new();
    r.insert(env::ID.into(), envelope.id.clone().into());
    r.insert(env::VERSION.into(), version.into());
    r.insert(env::REV.into(), rev.into());
    r.insert(env::CREATED_AT.into(), envelope.created_at.into());
    r.insert(env::UPDATED_AT.into(), now.into());
    r.insert(env::DELETED_AT.into(), envelope.deleted_at.map_or(Value::Null, Value::from));
    r.insert(env::DEVICE_ID.into(), envelope.device_id.clone().map_or(Value::Null, Value::from));
    for (i, f) in c.entity.fields.iter().enumerate() {
        let v = match &c.op {
            Op::Upsert(values) => values.get(i).cloned().unwrap_or(Value::Null),
            Op::Delete => match current.and_then(|cur| cur.record.get(f.name)) {
                Some(v) => v.clone(),
                None => default_for(f),
            },
        };
        r.insert(f.name.into(), v);
    }
    Stored { envelope, record: r }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_change;
    use serde_json::json;

    fn change(v: Value) -> Change {
        parse_change(&v, "c", None).unwrap()
    }

    fn stored_task(version: i64, title: &str, deleted: bool) -> Stored {
        let c = change(json!({"id": "t", "title": title}));
        let mut r = apply(&c, None, version, 100, 50);
        if deleted {
            r.record.insert("deleted_at".into(), 60.into());
            r.envelope.deleted_at = Some(60);
        }
        r
    }

    #[test]
    fn version_rule() {
        let tasks = crate::entities::entity("tasks").unwrap();
        let s = stored_task(3, "a", false);
        let d = |v: Value| decide(tasks, Some(&s), &change(v));
        assert_eq!(d(json!({"id": "t", "title": "b"})), Decision::Apply { version: 4 });
        assert_eq!(d(json!({"id": "t", "title": "a"})), Decision::Replay);
        assert_eq!(d(json!({"id": "t", "title": "b", "version": 4})), Decision::Apply { version: 4 });
        assert_eq!(d(json!({"id": "t", "title": "a", "version": 9})), Decision::Apply { version: 9 });
        assert_eq!(d(json!({"id": "t", "title": "b", "version": 3})), Decision::Conflict { reason: STALE_VERSION });
        assert_eq!(d(json!({"id": "t", "title": "a", "version": 2})), Decision::Replay);
        assert_eq!(d(json!({"id": "t", "deleted": true, "version": 3})), Decision::Conflict { reason: STALE_VERSION });
        assert_eq!(d(json!({"id": "t", "deleted": true})), Decision::Apply { version: 4 });
        assert_eq!(decide(tasks, None, &change(json!({"id": "t", "title": "x"}))), Decision::Apply { version: 1 });
        assert_eq!(
            decide(tasks, None, &change(json!({"id": "t", "title": "x", "version": 5}))),
            Decision::Apply { version: 5 }
        );
        let gone = stored_task(4, "a", true);
        assert_eq!(decide(tasks, Some(&gone), &change(json!({"id": "t", "deleted": true}))), Decision::Replay);
        assert_eq!(
            decide(tasks, Some(&gone), &change(json!({"id": "t", "title": "a", "version": 5}))),
            Decision::Apply { version: 5 },
            "a higher version resurrects"
        );
        assert_eq!(
            decide(tasks, Some(&gone), &change(json!({"id": "t", "title": "a", "version": 4}))),
            Decision::Conflict { reason: STALE_VERSION },
            "a stale edit does not undo a delete"
        );
    }

    #[test]
    fn revs_follow_the_sequence_not_the_clock() {
        let changes = vec![change(json!({"id": "a", "title": "1"})), change(json!({"id": "b", "title": "2"}))];
        // Clock behind the sequence: revs continue from seq.
        let p = plan(&changes, HashMap::new(), 1_000, 10);
        assert_eq!(p.revs, vec![1_001, 1_002]);
        assert_eq!(p.seq, 1_002);
        // Clock ahead: revs read as the server time.
        let p = plan(&changes, HashMap::new(), 1_000, 5_000);
        assert_eq!(p.revs, vec![5_000, 5_001]);
    }

    #[test]
    fn conflicts_carry_the_server_record_and_write_nothing() {
        let mut stored = HashMap::new();
        stored.insert(("tasks", "t".to_string()), stored_task(2, "server", false));
        let p = plan(&[change(json!({"id": "t", "title": "mine", "version": 2}))], stored, 100, 200);
        assert!(!p.changes_anything());
        assert_eq!(p.seq, 100);
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!(p.conflicts[0].server.as_ref().unwrap()["title"], "server");
        assert!(p.writes.is_empty());
    }

    #[test]
    fn repeated_key_in_one_push_writes_its_final_state_once() {
        let changes = vec![
            change(json!({"id": "t", "title": "1"})),
            change(json!({"id": "t", "title": "2"})),
            change(json!({"id": "t", "deleted": true})),
        ];
        let p = plan(&changes, HashMap::new(), 0, 10);
        assert_eq!(p.applied.iter().map(|a| a.version).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(p.writes.len(), 1);
        let rows = &p.writes[0].1;
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["version"], 3);
        assert_eq!(rows[0]["title"], "2", "a tombstone keeps the last fields");
        assert_eq!(rows[0]["deleted_at"], 10);
        assert_eq!(rows[0]["rev"], 12);
    }

    #[test]
    fn no_version_past_max_safe_int() {
        let mut stored = HashMap::new();
        stored.insert(("tasks", "t".to_string()), stored_task(MAX_SAFE_INT, "a", false));
        let edit = change(json!({"id": "t", "title": "b"}));
        let other = change(json!({"id": "u", "title": "fine"}));
        let p = plan(&[edit, other], stored.clone(), 100, 200);
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!(p.conflicts[0].reason, VERSION_EXHAUSTED);
        assert_eq!(p.conflicts[0].server.as_ref().unwrap()["version"], MAX_SAFE_INT);
        assert_eq!(p.revs.len(), 1, "the rest of the push is applied");
        assert!(
            p.writes.iter().all(|(_, rows)| rows.iter().all(|r| r["id"] == "u")),
            "the exhausted record is not written"
        );
        // A replay of the same content and an explicit stale version still answer as before.
        assert!(plan(&[change(json!({"id": "t", "title": "a"}))], stored.clone(), 100, 200).conflicts.is_empty());
        let stale = plan(&[change(json!({"id": "t", "title": "b", "version": 5}))], stored, 100, 200);
        assert_eq!(stale.conflicts[0].reason, STALE_VERSION);
    }

    #[test]
    fn created_at_survives_updates() {
        let mut stored = HashMap::new();
        stored.insert(("tasks", "t".to_string()), stored_task(1, "a", false));
        let p = plan(&[change(json!({"id": "t", "title": "b"}))], stored, 100, 999);
        let row = &p.writes[0].1[0];
        assert_eq!(row["created_at"], 50);
        assert_eq!(row["updated_at"], 999);
    }
}
