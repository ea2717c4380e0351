//! The collections declaration, `collections.json` at the repository root: parsed,
//! validated and turned into the Rust table that [`crate::entities`] includes, at build time.
//!
//! `crates/core/build.rs` uses this file as a `#[path]` module, and the core crate compiles
//! it again for its unit tests only (it is not part of the library, so not of the wasm).
//! So it uses nothing but std, serde and serde_json; the unit tests of `entities` check
//! that its copies of crate facts (envelope fields, the largest safe integer, the routes
//! beside `/api/sync/{type}`) agree with the crate.
//!
//! The format (every key other than `name` and `kind` optional, unknown keys refused):
//!
//! ```json
//! { "enums": [{ "name": "priorities", "values": ["low", "medium", "high"] }],
//!   "collections": [
//!     { "name": "tasks", "fields": [
//!         { "name": "title", "kind": "string", "max": 1000, "required": true, "aliases": ["content"] },
//!         { "name": "priority", "kind": "enum", "values": "priorities", "default": "medium" } ] } ] }
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;

/// The declaration's file name, at the repository root.
pub const FILE_NAME: &str = "collections.json";
/// Overrides the file (absolute, or relative to the repository root), for test builds.
pub const ENV_VAR: &str = "EDGESYNC_COLLECTIONS";

/// 2^53 − 1, as `crate::envelope::MAX_SAFE_INT`: integer defaults stay within it.
pub const MAX_SAFE_INT: i64 = 9_007_199_254_740_991;
/// Longest collection, field, alias or enum name.
pub const MAX_NAME_LEN: usize = 64;
/// Largest `max` of a string field, in characters: at 4 bytes a character, a D1 value
/// (at most 2,000,000 bytes) still holds it.
pub const MAX_STRING_CHARS: u64 = 500_000;
/// Largest `max_bytes` of a json field: a D1 value holds at most 2,000,000 bytes.
pub const MAX_JSON_BYTES: u64 = 2_000_000;

/// Keys a change carries besides its collection's fields: the sync envelope
/// (`crate::envelope::FIELDS`) and `type` / `deleted`. A field or alias may not take them.
pub const RESERVED_FIELDS: &[&str] =
    &["id", "version", "rev", "created_at", "updated_at", "deleted_at", "device_id", "type", "deleted"];
/// How many of [`RESERVED_FIELDS`] are the envelope, in `crate::envelope::FIELDS` order.
pub const ENVELOPE: usize = 7;
/// Fixed paths beside `/api/sync/{type}` (`GET /api/sync/check`): no collection may take them.
pub const RESERVED_COLLECTIONS: &[&str] = &["check"];
/// A change without `type` is a task (the contract, §3.1): this collection must exist.
pub const DEFAULT_COLLECTION: &str = "tasks";
/// Named enums become Rust constants in upper case beside `ENTITIES`.
pub const RESERVED_ENUMS: &[&str] = &["entities"];
/// The kinds a field can have.
pub const KINDS: &[&str] = &["string", "bool", "int", "nullable_int", "nullable_id", "enum", "json"];

/// A validated declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Declaration {
    pub enums: Vec<NamedEnum>,
    pub collections: Vec<Collection>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NamedEnum {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    pub name: String,
    pub fields: Vec<Field>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    pub required: bool,
    pub default: Default,
    pub aliases: Vec<String>,
}

/// A field's kind, as `crate::entities::Kind`.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Str {
        max: u64,
    },
    Bool,
    Int,
    NullableInt,
    NullableId,
    /// `named`: the enum of `enums` the values come from, if any.
    Enum {
        named: Option<String>,
        values: Vec<String>,
    },
    Json {
        max_bytes: u64,
    },
}

/// A field's default, as `crate::entities::Default`.
#[derive(Debug, Clone, PartialEq)]
pub enum Default {
    Str(String),
    Bool(bool),
    Int(i64),
    Null,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    enums: Vec<RawEnum>,
    collections: Vec<RawCollection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnum {
    name: String,
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollection {
    name: String,
    fields: Vec<RawField>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    kind: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    aliases: Vec<String>,
    max: Option<u64>,
    max_bytes: Option<u64>,
    /// The name of an entry of `enums`, or the values themselves.
    values: Option<Value>,
    /// Absent or null: the kind's (empty string, false, 0, null; an enum has none).
    default: Option<Value>,
}

/// Why `name` is not a valid name, if it is not: `[a-z][a-z0-9_]*`, at most [`MAX_NAME_LEN`].
fn bad_name(name: &str) -> Option<String> {
    let mut bytes = name.bytes();
    let ok = matches!(bytes.next(), Some(b'a'..=b'z')) && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'));
    if !ok {
        Some(format!("name {name:?} must match [a-z][a-z0-9_]*"))
    } else if name.len() > MAX_NAME_LEN {
        Some(format!("name {name:?} is longer than {MAX_NAME_LEN} characters"))
    } else {
        None
    }
}

/// Validates a list of enum values.
fn check_values(values: &[String], at: &str, errors: &mut Vec<String>) {
    if values.is_empty() {
        errors.push(format!("{at}: values must not be empty"));
    }
    let mut seen = BTreeSet::new();
    for v in values {
        if v.is_empty() {
            errors.push(format!("{at}: values must not contain an empty string"));
        } else if !seen.insert(v.as_str()) {
            errors.push(format!("{at}: value {v:?} is given twice"));
        }
    }
}

/// Parses and validates a declaration; every problem found, each a line naming where it is.
pub fn parse(text: &str) -> Result<Declaration, Vec<String>> {
    let raw: RawFile = serde_json::from_str(text).map_err(|e| vec![format!("not a valid declaration: {e}")])?;
    let mut errors = Vec::new();

    let mut enums = Vec::new();
    let mut enum_names = BTreeSet::new();
    for (i, e) in raw.enums.iter().enumerate() {
        let at = format!("enums[{i}] {:?}", e.name);
        if let Some(why) = bad_name(&e.name) {
            errors.push(format!("{at}: {why}"));
        } else if RESERVED_ENUMS.contains(&e.name.as_str()) {
            errors.push(format!("{at}: the name {:?} is reserved", e.name));
        } else if !enum_names.insert(e.name.as_str()) {
            errors.push(format!("{at}: an enum named {:?} is declared twice", e.name));
        }
        check_values(&e.values, &at, &mut errors);
        enums.push(NamedEnum { name: e.name.clone(), values: e.values.clone() });
    }

    if raw.collections.is_empty() {
        errors.push("collections must not be empty".into());
    }
    let mut collections = Vec::new();
    let mut collection_names = BTreeSet::new();
    for (i, c) in raw.collections.iter().enumerate() {
        let at = format!("collections[{i}] {:?}", c.name);
        if let Some(why) = bad_name(&c.name) {
            errors.push(format!("{at}: {why}"));
        } else if RESERVED_COLLECTIONS.contains(&c.name.as_str()) {
            errors.push(format!("{at}: the name {:?} is taken by a route (/api/sync/{})", c.name, c.name));
        } else if !collection_names.insert(c.name.as_str()) {
            errors.push(format!("{at}: a collection named {:?} is declared twice", c.name));
        }
        if c.fields.is_empty() {
            errors.push(format!("{at}: fields must not be empty"));
        }
        // Names and aliases share one namespace: a client key must name one field.
        let mut keys = BTreeSet::new();
        let mut fields = Vec::new();
        for (j, f) in c.fields.iter().enumerate() {
            let at = format!("{at}, fields[{j}] {:?}", f.name);
            for (what, name) in std::iter::once(("name", &f.name)).chain(f.aliases.iter().map(|a| ("alias", a))) {
                if let Some(why) = bad_name(name) {
                    errors.push(format!("{at}: {what}: {why}"));
                } else if RESERVED_FIELDS.contains(&name.as_str()) {
                    errors.push(format!(
                        "{at}: {what} {name:?} is a sync field every record already has (reserved: {})",
                        RESERVED_FIELDS.join(", ")
                    ));
                } else if !keys.insert(name.as_str()) {
                    errors.push(format!("{at}: {what} {name:?} is already a field name or alias of {:?}", c.name));
                }
            }
            if let Some(field) = check_field(f, &enums, &at, &mut errors) {
                fields.push(field);
            }
        }
        collections.push(Collection { name: c.name.clone(), fields });
    }
    if !raw.collections.iter().any(|c| c.name == DEFAULT_COLLECTION) {
        errors.push(format!(
            "a collection named {DEFAULT_COLLECTION:?} is required: a change without `type` is one of its records"
        ));
    }
    if errors.is_empty() {
        Ok(Declaration { enums, collections })
    } else {
        Err(errors)
    }
}

/// A field's kind and default, checked; `None` (with errors) when they are not valid.
fn check_field(f: &RawField, enums: &[NamedEnum], at: &str, errors: &mut Vec<String>) -> Option<Field> {
    let before = errors.len();
    let kind_name = f.kind.as_str();
    if !KINDS.contains(&kind_name) {
        errors.push(format!("{at}: unknown kind {kind_name:?} (one of: {})", KINDS.join(", ")));
        return None;
    }
    // Each kind's own key: required there, refused elsewhere.
    let own: &[(&str, bool)] =
        &[("max", f.max.is_some()), ("max_bytes", f.max_bytes.is_some()), ("values", f.values.is_some())];
    let needs = match kind_name {
        "string" => Some("max"),
        "json" => Some("max_bytes"),
        "enum" => Some("values"),
        _ => None,
    };
    for (key, given) in own {
        if Some(*key) == needs && !given {
            errors.push(format!("{at}: a field of kind {kind_name:?} needs {key:?}"));
        } else if Some(*key) != needs && *given {
            errors.push(format!("{at}: {key:?} does not apply to kind {kind_name:?}"));
        }
    }
    let bounded = |key: &str, n: Option<u64>, limit: u64, errors: &mut Vec<String>| {
        let n = n.unwrap_or(1);
        if !(1..=limit).contains(&n) {
            errors.push(format!("{at}: {key} must be between 1 and {limit}, not {n}"));
        }
        n
    };
    let kind = match kind_name {
        "string" => Kind::Str { max: bounded("max", f.max, MAX_STRING_CHARS, errors) },
        "bool" => Kind::Bool,
        "int" => Kind::Int,
        "nullable_int" => Kind::NullableInt,
        "nullable_id" => Kind::NullableId,
        "json" => Kind::Json { max_bytes: bounded("max_bytes", f.max_bytes, MAX_JSON_BYTES, errors) },
        _ => match &f.values {
            Some(Value::String(name)) => match enums.iter().find(|e| &e.name == name) {
                Some(e) => Kind::Enum { named: Some(name.clone()), values: e.values.clone() },
                None => {
                    errors.push(format!("{at}: values names no entry of enums: {name:?}"));
                    return None;
                }
            },
            Some(Value::Array(items)) => {
                let values: Vec<String> = items.iter().filter_map(|v| v.as_str().map(String::from)).collect();
                if values.len() != items.len() {
                    errors.push(format!("{at}: values must all be strings"));
                }
                check_values(&values, at, errors);
                Kind::Enum { named: None, values }
            }
            Some(_) => {
                errors.push(format!("{at}: values must be the name of an entry of enums or a list of strings"));
                return None;
            }
            None => return None,
        },
    };
    if errors.len() != before {
        return None; // a default is checked against a valid kind only
    }
    let default = match check_default(&kind, f.default.as_ref()) {
        Ok(d) => d,
        Err(why) => {
            errors.push(format!("{at}: {why}"));
            return None;
        }
    };
    Some(Field { name: f.name.clone(), kind, required: f.required, default, aliases: f.aliases.clone() })
}

/// The default a field takes, checked against its kind.
fn check_default(kind: &Kind, given: Option<&Value>) -> Result<Default, String> {
    let shown = |v: &Value| v.to_string();
    match (kind, given) {
        (Kind::Str { .. }, None) => Ok(Default::Str(String::new())),
        (Kind::Bool, None) => Ok(Default::Bool(false)),
        (Kind::Int, None) => Ok(Default::Int(0)),
        (Kind::NullableInt | Kind::NullableId, None) => Ok(Default::Null),
        (Kind::Json { max_bytes }, None) if *max_bytes >= 4 => Ok(Default::Null),
        (Kind::Json { max_bytes }, None) => Err(format!("the default null serializes to more than {max_bytes} bytes")),
        (Kind::Enum { values, .. }, None) => {
            Err(format!("an enum field needs a default, one of: {}", values.join(", ")))
        }
        (Kind::Str { max }, Some(Value::String(s))) if s.chars().count() as u64 <= *max => Ok(Default::Str(s.clone())),
        (Kind::Str { max }, Some(Value::String(_))) => Err(format!("default is longer than max ({max} characters)")),
        (Kind::Bool, Some(Value::Bool(b))) => Ok(Default::Bool(*b)),
        (Kind::Int | Kind::NullableInt, Some(v @ Value::Number(n))) => match n.as_i64() {
            Some(i) if (-MAX_SAFE_INT..=MAX_SAFE_INT).contains(&i) => Ok(Default::Int(i)),
            _ => Err(format!("default {} is not an integer within ±(2^53-1)", shown(v))),
        },
        (Kind::Enum { values, .. }, Some(Value::String(s))) if values.contains(s) => Ok(Default::Str(s.clone())),
        (Kind::Enum { values, .. }, Some(v)) => {
            Err(format!("default {} is not one of: {}", shown(v), values.join(", ")))
        }
        (Kind::Json { max_bytes }, Some(v)) => {
            let d = match v {
                Value::String(s) => Default::Str(s.clone()),
                Value::Bool(b) => Default::Bool(*b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) if (-MAX_SAFE_INT..=MAX_SAFE_INT).contains(&i) => Default::Int(i),
                    _ => return Err(format!("default {} is not an integer within ±(2^53-1)", shown(v))),
                },
                _ => return Err("a json field's default must be null, a string, a boolean or an integer".into()),
            };
            if shown(v).len() as u64 > *max_bytes {
                return Err(format!("default {} serializes to more than {max_bytes} bytes", shown(v)));
            }
            Ok(d)
        }
        (Kind::NullableId, Some(v)) => Err(format!("default {}: a nullable_id field defaults to null", shown(v))),
        (_, Some(v)) => Err(format!("default {} is not a value of this kind", shown(v))),
    }
}

/// A Rust string literal.
fn lit(s: &str) -> String {
    format!("{s:?}")
}

fn list(values: &[String]) -> String {
    format!("&[{}]", values.iter().map(|v| lit(v)).collect::<Vec<_>>().join(", "))
}

/// The Rust items `entities.rs` includes: one constant per named enum (its name in upper
/// case) and `ENTITIES`, in the declaration's order.
pub fn rust_table(d: &Declaration, source: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "// Generated by crates/core/build.rs from {source}. Do not edit: edit the declaration.");
    for e in &d.enums {
        let _ = writeln!(out, "/// The values of the declaration's enum {:?}.", e.name);
        let _ = writeln!(out, "pub const {}: &[&str] = {};", e.name.to_uppercase(), list(&e.values));
    }
    out.push_str("/// The collections, in the declaration's order.\npub static ENTITIES: &[Entity] = &[\n");
    for c in &d.collections {
        let _ = writeln!(out, "    Entity {{\n        name: {},\n        fields: &[", lit(&c.name));
        for f in &c.fields {
            let kind = match &f.kind {
                Kind::Str { max } => format!("Kind::Str {{ max: {max} }}"),
                Kind::Bool => "Kind::Bool".into(),
                Kind::Int => "Kind::Int".into(),
                Kind::NullableInt => "Kind::NullableInt".into(),
                Kind::NullableId => "Kind::NullableId".into(),
                Kind::Enum { named: Some(name), .. } => format!("Kind::Enum({})", name.to_uppercase()),
                Kind::Enum { named: None, values } => format!("Kind::Enum({})", list(values)),
                Kind::Json { max_bytes } => format!("Kind::Json {{ max_bytes: {max_bytes} }}"),
            };
            let default = match &f.default {
                Default::Str(s) => format!("Default::Str({})", lit(s)),
                Default::Bool(b) => format!("Default::Bool({b})"),
                Default::Int(i) => format!("Default::Int({i})"),
                Default::Null => "Default::Null".into(),
            };
            let _ = writeln!(
                out,
                "            Field {{ name: {}, kind: {kind}, required: {}, default: {default}, aliases: {} }},",
                lit(&f.name),
                f.required,
                list(&f.aliases)
            );
        }
        // The record's members in key order: envelope names, then the fields, each by its
        // place in that sequence (names are unique: the declaration was checked).
        let names: Vec<&str> =
            RESERVED_FIELDS[..ENVELOPE].iter().copied().chain(c.fields.iter().map(|f| f.name.as_str())).collect();
        let mut order: Vec<usize> = (0..names.len()).collect();
        order.sort_by_key(|&i| names[i]);
        let order: Vec<String> = order.iter().map(usize::to_string).collect();
        let _ = writeln!(out, "        ],\n        order: &[{}],\n    }},", order.join(", "));
    }
    out.push_str("];\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A declaration of `tasks` (one field) and a collection `things` with the given fields.
    fn with(things: &str) -> String {
        format!(
            r#"{{"collections": [
                {{"name": "tasks", "fields": [{{"name": "title", "kind": "string", "max": 10}}]}},
                {{"name": "things", "fields": [{things}]}}
            ]}}"#
        )
    }

    fn errors(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(d) => panic!("accepted: {d:?}"),
            Err(e) => e,
        }
    }

    /// The one error `text` has, which must contain `needle`.
    #[track_caller]
    fn fails(text: &str, needle: &str) {
        let e = errors(text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].contains(needle), "{:?} does not say {needle:?}", e[0]);
    }

    #[test]
    fn the_shipped_file_generates_the_table() {
        let d = parse(include_str!("../../../collections.json")).unwrap();
        let tasks = &d.collections[0];
        assert_eq!(tasks.fields[0].aliases, ["content"]);
        assert!(tasks.fields[0].required);
        assert_eq!(tasks.fields[0].default, Default::Str(String::new()));
        assert_eq!(tasks.fields[4].default, Default::Str("medium".into()));
        let rust = rust_table(&d, FILE_NAME);
        assert!(rust.contains("pub const PRIORITIES: &[&str] = &[\"low\", \"medium\", \"high\"];"), "{rust}");
        assert!(rust.contains("kind: Kind::Enum(PRIORITIES), required: false, default: Default::Str(\"medium\")"));
        assert!(rust.contains("Field { name: \"title\", kind: Kind::Str { max: 1000 }, required: true, default: Default::Str(\"\"), aliases: &[\"content\"] }"));
        assert!(rust.contains("kind: Kind::Json { max_bytes: 16384 }, required: false, default: Default::Null"));
        assert!(rust.contains("from collections.json"));
        assert_eq!(ENV_VAR, "EDGESYNC_COLLECTIONS", "the README's and tests/helpers/source.mjs's name for it");
    }

    #[test]
    fn every_kind_and_default_can_be_declared() {
        let d = parse(&with(
            r#"{"name": "label", "kind": "string", "max": 8, "default": "say \"hi\""},
               {"name": "on", "kind": "bool", "default": true},
               {"name": "n", "kind": "int", "default": -9007199254740991},
               {"name": "at", "kind": "nullable_int", "default": 5},
               {"name": "at2", "kind": "nullable_int", "default": null},
               {"name": "ref", "kind": "nullable_id"},
               {"name": "size", "kind": "enum", "values": ["s", "m"], "default": "m", "required": true},
               {"name": "blob", "kind": "json", "max_bytes": 8, "default": "abc"},
               {"name": "x2", "kind": "json", "max_bytes": 4}"#,
        ))
        .unwrap();
        let f = &d.collections[1].fields;
        assert_eq!(
            f.iter().map(|f| f.default.clone()).collect::<Vec<_>>(),
            [
                Default::Str("say \"hi\"".into()),
                Default::Bool(true),
                Default::Int(-MAX_SAFE_INT),
                Default::Int(5),
                Default::Null,
                Default::Null,
                Default::Str("m".into()),
                Default::Str("abc".into()),
                Default::Null,
            ]
        );
        let rust = rust_table(&d, "extra.json");
        assert!(rust.contains(r#"default: Default::Str("say \"hi\"")"#), "{rust}");
        assert!(rust.contains(r#"kind: Kind::Enum(&["s", "m"]), required: true"#), "{rust}");
        assert!(rust.contains("name: \"things\""));
    }

    #[test]
    fn syntax_and_unknown_keys() {
        fails("{\"collections\": [", "line 1 column");
        fails("[]", "not a valid declaration");
        fails(&with(r#"{"name": "a", "kind": "bool", "requried": true}"#), "unknown field `requried`");
        fails(&with(r#"{"name": "a", "kind": "bool", "required": "yes"}"#), "invalid type");
        fails(&with(r#"{"kind": "bool"}"#), "missing field `name`");
        fails(r#"{"collections": [], "extra": 1}"#, "unknown field `extra`");
        fails(&with(r#"{"name": "a", "name": "b", "kind": "bool"}"#), "duplicate field `name`");
    }

    #[test]
    fn names() {
        for bad in ["Title", "1a", "my-field", "", "ünï", "a b"] {
            let f = format!(r#"{{"name": {bad:?}, "kind": "bool"}}"#);
            fails(&with(&f), "must match [a-z][a-z0-9_]*");
            fails(&with(&format!(r#"{{"name": "ok", "kind": "bool", "aliases": [{bad:?}]}}"#)), "alias: name");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        fails(&with(&format!(r#"{{"name": "{long}", "kind": "bool"}}"#)), "longer than 64");
        assert!(parse(&with(&format!(r#"{{"name": "{}", "kind": "bool"}}"#, &long[1..]))).is_ok());
        assert!(parse(&with(r#"{"name": "a_1", "kind": "bool"}"#)).is_ok());
        let bad_collection = r#"{"collections": [
            {"name": "tasks", "fields": [{"name": "a", "kind": "bool"}]},
            {"name": "My-Things", "fields": [{"name": "a", "kind": "bool"}]}]}"#;
        fails(bad_collection, r#"collections[1] "My-Things": name "My-Things" must match"#);
    }

    #[test]
    fn envelope_names_are_reserved() {
        for name in ["id", "version", "rev", "created_at", "updated_at", "deleted_at", "device_id", "type", "deleted"] {
            fails(
                &with(&format!(r#"{{"name": "{name}", "kind": "int"}}"#)),
                "is a sync field every record already has",
            );
            fails(&with(&format!(r#"{{"name": "n", "kind": "int", "aliases": ["{name}"]}}"#)), "alias");
        }
    }

    #[test]
    fn duplicates() {
        fails(
            &with(r#"{"name": "a", "kind": "bool"}, {"name": "a", "kind": "int"}"#),
            r#"name "a" is already a field"#,
        );
        fails(&with(r#"{"name": "a", "kind": "bool"}, {"name": "b", "kind": "int", "aliases": ["a"]}"#), "alias \"a\"");
        fails(
            &with(r#"{"name": "a", "kind": "bool", "aliases": ["c"]}, {"name": "b", "kind": "int", "aliases": ["c"]}"#),
            "alias \"c\" is already",
        );
        fails(&with(r#"{"name": "a", "kind": "bool", "aliases": ["a"]}"#), "alias \"a\" is already");
        let twice = r#"{"collections": [
            {"name": "tasks", "fields": [{"name": "a", "kind": "bool"}]},
            {"name": "tasks", "fields": [{"name": "a", "kind": "bool"}]}]}"#;
        fails(twice, r#"collections[1] "tasks": a collection named "tasks" is declared twice"#);
        let enums = r#"{"enums": [{"name": "e", "values": ["a"]}, {"name": "e", "values": ["b"]}],
            "collections": [{"name": "tasks", "fields": [{"name": "a", "kind": "bool"}]}]}"#;
        fails(enums, r#"enums[1] "e": an enum named "e" is declared twice"#);
    }

    #[test]
    fn collections_level_rules() {
        let e = errors(r#"{"collections": []}"#);
        assert_eq!(
            e,
            [
                "collections must not be empty".to_string(),
                "a collection named \"tasks\" is required: a change without `type` is one of its records".to_string()
            ]
        );
        fails(
            r#"{"collections": [{"name": "notes", "fields": [{"name": "a", "kind": "bool"}]}]}"#,
            r#"named "tasks" is required"#,
        );
        fails(&with(""), "fields must not be empty");
        let check = r#"{"collections": [
            {"name": "tasks", "fields": [{"name": "a", "kind": "bool"}]},
            {"name": "check", "fields": [{"name": "a", "kind": "bool"}]}]}"#;
        fails(check, "taken by a route (/api/sync/check)");
    }

    #[test]
    fn kinds_and_their_keys() {
        fails(&with(r#"{"name": "a", "kind": "text"}"#), r#"unknown kind "text" (one of: string, bool, int"#);
        fails(&with(r#"{"name": "a", "kind": "string"}"#), r#"a field of kind "string" needs "max""#);
        fails(&with(r#"{"name": "a", "kind": "json"}"#), r#"a field of kind "json" needs "max_bytes""#);
        fails(&with(r#"{"name": "a", "kind": "enum", "default": "x"}"#), r#"a field of kind "enum" needs "values""#);
        fails(&with(r#"{"name": "a", "kind": "bool", "max": 3}"#), r#""max" does not apply to kind "bool""#);
        fails(&with(r#"{"name": "a", "kind": "string", "max": 3, "max_bytes": 3}"#), r#""max_bytes" does not apply"#);
        fails(&with(r#"{"name": "a", "kind": "int", "values": ["x"]}"#), r#""values" does not apply to kind "int""#);
        fails(&with(r#"{"name": "a", "kind": "string", "max": 0}"#), "max must be between 1 and 500000, not 0");
        fails(&with(r#"{"name": "a", "kind": "string", "max": 500001}"#), "max must be between 1 and 500000");
        fails(&with(r#"{"name": "a", "kind": "string", "max": -1}"#), "invalid value");
        fails(
            &with(r#"{"name": "a", "kind": "json", "max_bytes": 2000001}"#),
            "max_bytes must be between 1 and 2000000",
        );
    }

    #[test]
    fn enums() {
        let named = |values: &str, field: &str| {
            format!(
                r#"{{"enums": [{{"name": "sizes", "values": {values}}}],
                "collections": [{{"name": "tasks", "fields": [{field}]}}]}}"#
            )
        };
        let ok = named(r#"["s", "m"]"#, r#"{"name": "a", "kind": "enum", "values": "sizes", "default": "s"}"#);
        let d = parse(&ok).unwrap();
        assert_eq!(
            d.collections[0].fields[0].kind,
            Kind::Enum { named: Some("sizes".into()), values: vec!["s".into(), "m".into()] }
        );
        assert!(rust_table(&d, "x").contains("pub const SIZES: &[&str] = &[\"s\", \"m\"];"));
        assert!(rust_table(&d, "x").contains("kind: Kind::Enum(SIZES)"));
        fails(
            &named(r#"["s"]"#, r#"{"name": "a", "kind": "enum", "values": "colours", "default": "s"}"#),
            r#"values names no entry of enums: "colours""#,
        );
        fails(&named(r#"[]"#, r#"{"name": "a", "kind": "bool"}"#), "values must not be empty");
        fails(&named(r#"["s", "s"]"#, r#"{"name": "a", "kind": "bool"}"#), r#"value "s" is given twice"#);
        fails(&named(r#"["s", ""]"#, r#"{"name": "a", "kind": "bool"}"#), "must not contain an empty string");
        fails(
            &named(r#"["s"]"#, r#"{"name": "a", "kind": "enum", "values": "sizes"}"#),
            "an enum field needs a default, one of: s",
        );
        fails(
            &named(r#"["s"]"#, r#"{"name": "a", "kind": "enum", "values": "sizes", "default": "xl"}"#),
            r#"default "xl" is not one of: s"#,
        );
        fails(
            &with(r#"{"name": "a", "kind": "enum", "values": ["s", 1], "default": "s"}"#),
            "values must all be strings",
        );
        fails(&with(r#"{"name": "a", "kind": "enum", "values": [], "default": "s"}"#), "values must not be empty");
        fails(
            &with(r#"{"name": "a", "kind": "enum", "values": 3, "default": "s"}"#),
            "values must be the name of an entry",
        );
        let reserved = r#"{"enums": [{"name": "entities", "values": ["a"]}],
            "collections": [{"name": "tasks", "fields": [{"name": "a", "kind": "bool"}]}]}"#;
        fails(reserved, r#"the name "entities" is reserved"#);
        let bad_name = r#"{"enums": [{"name": "Sizes", "values": ["a"]}],
            "collections": [{"name": "tasks", "fields": [{"name": "a", "kind": "bool"}]}]}"#;
        fails(bad_name, "must match");
    }

    #[test]
    fn bad_defaults() {
        fails(
            &with(r#"{"name": "a", "kind": "string", "max": 2, "default": "abc"}"#),
            "default is longer than max (2 characters)",
        );
        assert!(
            parse(&with(r#"{"name": "a", "kind": "string", "max": 2, "default": "éé"}"#)).is_ok(),
            "characters, not bytes"
        );
        fails(
            &with(r#"{"name": "a", "kind": "string", "max": 2, "default": 1}"#),
            "default 1 is not a value of this kind",
        );
        fails(&with(r#"{"name": "a", "kind": "bool", "default": "yes"}"#), r#"default "yes" is not a value"#);
        fails(
            &with(r#"{"name": "a", "kind": "int", "default": 1.5}"#),
            "default 1.5 is not an integer within ±(2^53-1)",
        );
        fails(&with(r#"{"name": "a", "kind": "int", "default": 9007199254740992}"#), "not an integer within");
        fails(&with(r#"{"name": "a", "kind": "nullable_int", "default": -9007199254740992}"#), "not an integer within");
        fails(&with(r#"{"name": "a", "kind": "int", "default": "0"}"#), "is not a value of this kind");
        fails(
            &with(r#"{"name": "a", "kind": "nullable_id", "default": "t1"}"#),
            "a nullable_id field defaults to null",
        );
        fails(
            &with(r#"{"name": "a", "kind": "json", "max_bytes": 100, "default": {"a": 1}}"#),
            "must be null, a string",
        );
        fails(&with(r#"{"name": "a", "kind": "json", "max_bytes": 100, "default": [1]}"#), "must be null, a string");
        fails(
            &with(r#"{"name": "a", "kind": "json", "max_bytes": 4, "default": "abcd"}"#),
            "serializes to more than 4 bytes",
        );
        fails(
            &with(r#"{"name": "a", "kind": "json", "max_bytes": 3}"#),
            "the default null serializes to more than 3 bytes",
        );
    }

    /// One run reports every problem, each naming its collection and field.
    #[test]
    fn reports_every_problem() {
        let e = errors(&with(
            r#"{"name": "id", "kind": "int"}, {"name": "b", "kind": "strin"}, {"name": "c", "kind": "bool", "default": 0}"#,
        ));
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(e[0].starts_with(r#"collections[1] "things", fields[0] "id": name "id" is a sync field"#), "{}", e[0]);
        assert!(e[1].starts_with(r#"collections[1] "things", fields[1] "b": unknown kind "strin""#), "{}", e[1]);
        assert!(e[2].starts_with(r#"collections[1] "things", fields[2] "c": default 0"#), "{}", e[2]);
    }
}
