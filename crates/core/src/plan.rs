//! The write rule (contract §4.1): decides, for each change of a push, whether it is
//! applied, an idempotent replay, or a conflict, and assigns revs. Pure: it sees the
//! stored records the store read, and returns the rows the store must write.

use crate::hash::HashMap;

use edgesync_codec::Verbatim;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::entities::Entity;
use crate::envelope::{self as env, Held, Record, RecordId, Stored, MAX_SAFE_INT};
use crate::error::ApiError;
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
fn same_content(entity: &Entity, stored: &Stored, op: &Op) -> Result<bool, ApiError> {
    Ok(match op {
        Op::Delete => stored.is_deleted(),
        Op::Upsert(_) if stored.is_deleted() => false,
        Op::Upsert(values) => {
            stored.same_members(entity.fields.iter().map(|f| f.name).zip(values)).map_err(ApiError::Internal)?
        }
    })
}

/// The version rule. `stored` is None when the record does not exist (version 0).
/// A change without a version whose content equals the stored record is a replay too,
/// so resending a versionless push does not mint new revs. A record at the largest
/// version a JavaScript client holds exactly (2^53 − 1) takes no versionless edit:
/// minting 2^53 would hand clients a version they cannot send back.
/// The content is compared only where the version leaves the answer open: a change that
/// raises the version is applied without it (and without decoding the stored record).
pub fn decide(entity: &Entity, stored: Option<&Stored>, change: &Change) -> Result<Decision, ApiError> {
    let s = stored.map_or(0, |r| r.envelope.version);
    let same = || stored.map_or(Ok(false), |r| same_content(entity, r, &change.op));
    Ok(match change.version {
        Some(v) if v > s => Decision::Apply { version: v },
        Some(_) if same()? => Decision::Replay,
        Some(_) => Decision::Conflict { reason: STALE_VERSION },
        None if same()? => Decision::Replay,
        None if s >= MAX_SAFE_INT => Decision::Conflict { reason: VERSION_EXHAUSTED },
        None => Decision::Apply { version: s + 1 },
    })
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

/// A record a push writes, in its final state, serialized once: the pages store its text.
#[derive(Debug, Clone)]
pub struct Write {
    pub id: RecordId,
    pub rev: i64,
    /// The record's `deleted_at`: `Some` exactly when it is a tombstone.
    pub deleted_at: Option<i64>,
    /// The record as clients see it, its keys in the order a [`Record`] map has them.
    pub record: Box<RawValue>,
}

impl Write {
    /// Whether the record is a tombstone.
    pub fn deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// The record decoded again, for a later change of the same key in the same push.
    fn stored(&self) -> Result<Stored, ApiError> {
        Stored::decode(self.record.get()).map_err(ApiError::Internal)
    }
}

/// What a push does: the final state of every record it changes, and its report.
#[derive(Debug, Default)]
pub struct Plan {
    /// Records to write, grouped by entity; each key appears once with its final state.
    pub writes: Vec<(&'static Entity, Vec<Write>)>,
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

/// A full upload (contract §4.3) as the changes it makes, to be planned over `stored` (every
/// stored record of the type): each given record as it is (a client version is ignored:
/// versions are the server's to pick), then a delete of each live record it leaves out, in
/// id order. Returns the changes and how many of them are those deletes.
pub fn upload(
    e: &'static Entity,
    records: &[Change],
    stored: &HashMap<Key, Stored>,
) -> Result<(Vec<Change>, usize), ApiError> {
    let mut changes: Vec<Change> = records.iter().map(|c| Change { version: None, ..c.clone() }).collect();
    // The upload's ids sorted and searched (the sort `dropped` takes too), not a
    // HashSet<&str>: a hash table of its own in the wasm (298,832 -> 298,279 B gzip).
    let mut given: Vec<&str> = records.iter().map(|c| c.id.as_str()).collect();
    given.sort_unstable();
    let mut dropped: Vec<&str> = stored
        .values()
        .filter(|s| !s.is_deleted() && given.binary_search(&s.envelope.id.as_str()).is_err())
        .map(|s| s.envelope.id.as_str())
        .collect();
    dropped.sort_unstable();
    let deleted = dropped.len();
    for id in dropped {
        let id = RecordId::parse(id).ok_or_else(|| ApiError::Internal(format!("stored id {id:?} is not an id")))?;
        changes.push(Change { entity: e, id, version: None, device_id: None, op: Op::Delete });
    }
    Ok((changes, deleted))
}

/// Applies `changes` in order over `stored` (the current records of every key the push
/// names). Revs continue the user's sequence `seq`: the first is `max(now, seq + 1)`,
/// each next one is one more, so they stay strictly increasing whatever the clock does.
pub fn plan(changes: &[Change], stored: HashMap<Key, Stored>, seq: i64, now: i64) -> Result<Plan, ApiError> {
    let mut out = Plan { base: seq, seq, ..Plan::default() };
    let mut next_rev = now.max(seq + 1);
    // Each key's latest write, in first-write order so the rows written are
    // deterministic, and where it is by key (a Vec scan made 1,000-change pushes quadratic).
    let mut writes: Vec<(&'static Entity, Write)> = Vec::new();
    let mut written: HashMap<Key, usize> = HashMap::default();

    for c in changes {
        let key: Key = (c.entity.name, c.id.as_str().to_owned());
        // A key this push already wrote is decoded from that write: rare, and cheaper
        // than keeping every write as a map too.
        let rewritten = written.get(&key).map(|&i| writes[i].1.stored()).transpose()?;
        let current = rewritten.as_ref().or_else(|| stored.get(&key));
        let decision = decide(c.entity, current, c)?;
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
                server: current.map(|r| r.record().cloned()).transpose().map_err(ApiError::Internal)?,
            }),
            Decision::Apply { version } => {
                let rev = next_rev;
                next_rev += 1;
                let write = apply(c, current, version, rev, now)?;
                out.applied.push(Applied { entity: c.entity.name, id: c.id.clone(), version, rev });
                out.revs.push(rev);
                out.seq = rev;
                match written.get(&key) {
                    Some(&i) => writes[i].1 = write,
                    None => {
                        written.insert(key, writes.len());
                        writes.push((c.entity, write));
                    }
                }
            }
        }
    }

    for (entity, write) in writes {
        match out.writes.iter_mut().find(|(e, _)| e.name == entity.name) {
            Some((_, rows)) => rows.push(write),
            None => out.writes.push((entity, vec![write])),
        }
    }
    Ok(out)
}

/// A member of a record being written.
#[derive(Clone, Copy)]
enum Member<'a> {
    Int(i64),
    Str(&'a str),
    Null,
    Json(&'a Value),
    /// Stored JSON text, written as it is.
    Text(&'a str),
}

/// A record's members sorted by key, serialized as a JSON object: the text a [`Record`]
/// map of the same members serializes to, without building the map (members of stored
/// text are written as stored: the same text for any record this code wrote).
struct Members<'a>(Vec<(&'a str, Member<'a>)>);

impl Serialize for Members<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (key, member) in &self.0 {
            match member {
                Member::Int(n) => map.serialize_entry(key, n)?,
                Member::Str(v) => map.serialize_entry(key, v)?,
                Member::Null => map.serialize_entry(key, &())?,
                Member::Json(v) => map.serialize_entry(key, v)?,
                Member::Text(v) => map.serialize_entry(key, &Verbatim(v))?,
            }
        }
        map.end()
    }
}

/// The record after an applied change. Deletes keep the last field values (a tombstone
/// still says what was deleted); created_at survives every later change.
fn apply(c: &Change, current: Option<&Stored>, version: i64, rev: i64, now: i64) -> Result<Write, ApiError> {
    let created_at = current.map_or(now, |cur| cur.envelope.created_at);
    let deleted_at = matches!(c.op, Op::Delete).then_some(now);
    static NULL: Value = Value::Null;
    // A delete keeps the stored record's last values; without a stored record (or for a
    // field it lacks) it takes the defaults.
    let (last, defaults): (Vec<Option<Held>>, Vec<Value>) = match c.op {
        Op::Delete => {
            let names: Vec<&str> = c.entity.fields.iter().map(|f| f.name).collect();
            let last = current.map(|s| s.members(&names)).transpose().map_err(ApiError::Internal)?;
            (last.unwrap_or_default(), c.entity.fields.iter().map(default_for).collect())
        }
        Op::Upsert(_) => (Vec::new(), Vec::new()),
    };
    let mut members = Vec::with_capacity(env::FIELDS.len() + c.entity.fields.len());
    members.extend([
        (env::ID, Member::Str(c.id.as_str())),
        (env::VERSION, Member::Int(version)),
        (env::REV, Member::Int(rev)),
        (env::CREATED_AT, Member::Int(created_at)),
        (env::UPDATED_AT, Member::Int(now)),
        (env::DELETED_AT, deleted_at.map_or(Member::Null, Member::Int)),
        (env::DEVICE_ID, c.device_id.as_deref().map_or(Member::Null, Member::Str)),
    ]);
    for (i, f) in c.entity.fields.iter().enumerate() {
        let member = match &c.op {
            Op::Upsert(values) => Member::Json(values.get(i).unwrap_or(&NULL)),
            Op::Delete => match last.get(i).copied().flatten() {
                Some(Held::Text(text)) => Member::Text(text),
                Some(Held::Value(v)) => Member::Json(v),
                None => Member::Json(defaults.get(i).unwrap_or(&NULL)),
            },
        };
        members.push((f.name, member));
    }
    // In key order, a map's (field names are unique and none is an envelope name: the
    // declaration is checked at build time, declaration.rs).
    debug_assert_eq!(c.entity.order.len(), members.len(), "{}: order names every member", c.entity.name);
    let members = c.entity.order.iter().filter_map(|&i| members.get(i).copied()).collect();
    let record = serde_json::value::to_raw_value(&Members(members))?;
    Ok(Write { id: c.id.clone(), rev, deleted_at, record })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_change;
    use serde_json::json;

    fn change(v: Value) -> Change {
        parse_change(&v, "c", None).unwrap()
    }

    /// The version rule on records that decode (the tests' stored records all do).
    fn decide(entity: &Entity, stored: Option<&Stored>, change: &Change) -> Decision {
        super::decide(entity, stored, change).unwrap()
    }

    /// A written record as JSON, to look at its members.
    fn row(w: &Write) -> Value {
        serde_json::from_str(w.record.get()).unwrap()
    }

    fn stored_task(version: i64, title: &str, deleted: bool) -> Stored {
        let c = change(json!({"id": "t", "title": title}));
        let r = apply(&c, None, version, 100, 50).unwrap().stored().unwrap();
        if !deleted {
            return r;
        }
        let mut record = r.record().unwrap().clone();
        record.insert("deleted_at".into(), 60.into());
        let r = Stored::decode(&serde_json::to_string(&record).unwrap()).unwrap();
        assert_eq!(r.envelope.deleted_at, Some(60));
        r
    }

    #[test]
    fn a_full_upload_is_its_records_then_a_delete_of_each_live_record_it_leaves_out() {
        let tasks = crate::entities::entity("tasks").unwrap();
        let stored_as = |id: &str, deleted: bool| {
            let mut record = stored_task(2, id, deleted).record().unwrap().clone();
            record.insert("id".into(), id.into());
            Stored::decode(&serde_json::to_string(&record).unwrap()).unwrap()
        };
        let stored: HashMap<Key, Stored> = [("e", false), ("a", false), ("b", true), ("c", false), ("d", false)]
            .map(|(id, deleted)| (("tasks", id.to_string()), stored_as(id, deleted)))
            .into_iter()
            .collect();
        let given = [
            change(json!({"id": "c", "title": "c2", "version": 7})),
            change(json!({"id": "a", "title": "a2"})),
            change(json!({"id": "x", "title": "new"})),
        ];
        let (changes, deleted) = upload(tasks, &given, &stored).unwrap();
        let ids: Vec<&str> = changes.iter().map(|c| c.id.as_str()).collect();
        // The records as given, then the deletes in id order; "b" is a tombstone already.
        assert_eq!(ids, ["c", "a", "x", "d", "e"]);
        assert_eq!(deleted, 2);
        assert!(changes.iter().all(|c| c.version.is_none()), "a client version is ignored");
        assert!(changes[..3].iter().all(|c| !matches!(c.op, Op::Delete)));
        assert!(changes[3..].iter().all(|c| matches!(c.op, Op::Delete) && c.entity.name == "tasks"));
        // Uploading nothing deletes every live record.
        assert_eq!(upload(tasks, &[], &stored).unwrap().1, 4);
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
        let p = plan(&changes, HashMap::default(), 1_000, 10).unwrap();
        assert_eq!(p.revs, vec![1_001, 1_002]);
        assert_eq!(p.seq, 1_002);
        // Clock ahead: revs read as the server time.
        let p = plan(&changes, HashMap::default(), 1_000, 5_000).unwrap();
        assert_eq!(p.revs, vec![5_000, 5_001]);
    }

    #[test]
    fn conflicts_carry_the_server_record_and_write_nothing() {
        let mut stored = HashMap::default();
        stored.insert(("tasks", "t".to_string()), stored_task(2, "server", false));
        let p = plan(&[change(json!({"id": "t", "title": "mine", "version": 2}))], stored, 100, 200).unwrap();
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
        let p = plan(&changes, HashMap::default(), 0, 10).unwrap();
        assert_eq!(p.applied.iter().map(|a| a.version).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(p.writes.len(), 1);
        let rows = &p.writes[0].1;
        assert_eq!(rows.len(), 1);
        assert!(rows[0].deleted());
        let r = row(&rows[0]);
        assert_eq!(r["version"], 3);
        assert_eq!(r["title"], "2", "a tombstone keeps the last fields");
        assert_eq!(r["deleted_at"], 10);
        assert_eq!(r["rev"], 12);
    }

    #[test]
    fn no_version_past_max_safe_int() {
        let mut stored = HashMap::default();
        stored.insert(("tasks", "t".to_string()), stored_task(MAX_SAFE_INT, "a", false));
        let edit = change(json!({"id": "t", "title": "b"}));
        let other = change(json!({"id": "u", "title": "fine"}));
        let p = plan(&[edit, other], stored.clone(), 100, 200).unwrap();
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!(p.conflicts[0].reason, VERSION_EXHAUSTED);
        assert_eq!(p.conflicts[0].server.as_ref().unwrap()["version"], MAX_SAFE_INT);
        assert_eq!(p.revs.len(), 1, "the rest of the push is applied");
        assert!(
            p.writes.iter().all(|(_, rows)| rows.iter().all(|r| row(r)["id"] == "u")),
            "the exhausted record is not written"
        );
        // A replay of the same content and an explicit stale version still answer as before.
        assert!(plan(&[change(json!({"id": "t", "title": "a"}))], stored.clone(), 100, 200)
            .unwrap()
            .conflicts
            .is_empty());
        let stale = plan(&[change(json!({"id": "t", "title": "b", "version": 5}))], stored, 100, 200).unwrap();
        assert_eq!(stale.conflicts[0].reason, STALE_VERSION);
    }

    #[test]
    fn a_written_record_is_the_text_its_map_serializes_to() {
        // Written directly, not through a `Record` map: the same bytes the map gives
        // (keys sorted, serde_json's formatting), so stored records do not change.
        let current = stored_task(2, "old \"one\"", false);
        for (c, cur) in [
            (change(json!({"id": "t", "title": "é\n\u{1}", "device_id": "d-1", "priority": "high"})), None),
            (change(json!({"id": "t", "deleted": true})), Some(&current)),
            (change(json!({"id": "t", "deleted": true})), None),
            (change(json!({"type": "settings", "id": "s", "value": {"b": [1, 2.5, null], "a": "x"}})), None),
        ] {
            let w = apply(&c, cur, 3, 7, 1_000).unwrap();
            let map: Record = serde_json::from_str(w.record.get()).unwrap();
            assert_eq!(serde_json::to_string(&map).unwrap(), w.record.get());
            assert_eq!((map["rev"].as_i64(), map["version"].as_i64()), (Some(7), Some(3)));
            assert_eq!(w.deleted(), !map["deleted_at"].is_null());
            // What the pages' `tomb` takes from the write instead of parsing its record.
            assert_eq!(w.deleted_at, edgesync_codec::deleted_at(w.record.get()).unwrap());
            assert_eq!(w.deleted_at, w.deleted().then_some(1_000));
        }
    }

    /// A tombstone keeps the stored members as they were stored (their text, not a map's
    /// rewrite of it), takes the defaults for fields the record lacks and drops members
    /// that are no field; a record decoded through its map (a member twice) keeps the last.
    #[test]
    fn a_delete_keeps_the_stored_members_as_stored() {
        let env = r#""created_at":1,"deleted_at":null,"device_id":null,"id":"t","rev":10"#;
        let del = change(json!({"id": "t", "deleted": true}));
        let tomb = |text: &str| {
            let stored = Stored::decode(text).unwrap();
            let w = apply(&del, Some(&stored), 3, 11, 1_000).unwrap();
            assert!(w.deleted());
            w.record.get().to_owned()
        };
        // A lone surrogate: JSON text that no `Value` holds. The delete no longer fails on it.
        let odd = r#"{"completed":true,"created_at":1,"deleted_at":null,"device_id":null,"extra":[1, 2],"id":"t","rev":10,"title":"\ud800 x","updated_at":2,"version":2}"#;
        let t = tomb(odd);
        assert!(t.contains(r#""title":"\ud800 x""#), "{t}");
        assert!(t.contains(r#""completed":true"#) && t.contains(r#""priority":"medium""#), "{t}");
        assert!(!t.contains("extra"), "{t}");
        assert!(t.contains(r#""deleted_at":1000"#) && t.contains(r#""rev":11"#), "{t}");

        // A json member with spacing, kept as stored: the tombstone reads back, and the
        // page codec carries it.
        let spaced = r#"{"created_at":1,"deleted_at":null,"device_id":null,"id":"s","rev":10,"updated_at":2,"value":{"a": [1, 2]},"version":2}"#;
        let stored = Stored::decode(spaced).unwrap();
        let w = apply(&change(json!({"type": "settings", "id": "s", "deleted": true})), Some(&stored), 3, 11, 1_000)
            .unwrap();
        assert!(w.record.get().contains(r#""value":{"a": [1, 2]}"#), "{}", w.record.get());
        let back = w.stored().unwrap();
        assert_eq!(
            (back.envelope.deleted_at, back.record().unwrap()["value"].clone()),
            (Some(1_000), json!({"a": [1, 2]}))
        );
        let entry = crate::pages::Entry::new("settings", "s".into(), 11, 10, true, w.record.clone());
        let decoded = crate::codec::decode(&crate::codec::encode(&[entry]).unwrap()).unwrap();
        assert_eq!(decoded[0].record().unwrap().get(), w.record.get());

        let twice = format!(r#"{{"title":"a",{env},"updated_at":2,"version":2,"title":"b"}}"#);
        let t: Value = serde_json::from_str(&tomb(&twice)).unwrap();
        assert_eq!((t["title"].as_str(), t["priority"].as_str()), (Some("b"), Some("medium")));
    }

    #[test]
    fn created_at_survives_updates() {
        let mut stored = HashMap::default();
        stored.insert(("tasks", "t".to_string()), stored_task(1, "a", false));
        let p = plan(&[change(json!({"id": "t", "title": "b"}))], stored, 100, 999).unwrap();
        let r = row(&p.writes[0].1[0]);
        assert_eq!(r["created_at"], 50);
        assert_eq!(r["updated_at"], 999);
    }
}
