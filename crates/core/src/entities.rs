//! The collections (entity types), declared once as data.
//!
//! Everything type-specific (validation, defaults, the OpenAPI schemas) is derived from
//! [`ENTITIES`]. Records are stored packed ([`crate::pages`]): a type has no table.

/// How a field is validated, stored and returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 string of at most `max` characters; stored as TEXT.
    Str { max: usize },
    /// JSON boolean; stored as INTEGER 0/1.
    Bool,
    /// Integer within ±(2^53 − 1) so JavaScript clients read it exactly; stored as INTEGER.
    Int,
    /// Integer (ms since the epoch) or null.
    NullableInt,
    /// A record id (same syntax as `id`) or null: a reference to another record.
    NullableId,
    /// One of a fixed set of strings.
    Enum(&'static [&'static str]),
    /// Any JSON value whose serialization is at most `max_bytes`; stored as JSON text.
    Json { max_bytes: usize },
}

#[derive(Debug, Clone, Copy)]
pub enum Default {
    Str(&'static str),
    Bool(bool),
    Int(i64),
    Null,
}

#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub default: Default,
    /// Other names clients may send for this field (the briefs' `content` for a task title).
    pub aliases: &'static [&'static str],
}

#[derive(Debug)]
pub struct Entity {
    /// Name in URLs and in `type` of a change; also the table name.
    pub name: &'static str,
    pub fields: &'static [Field],
}

const fn field(name: &'static str, kind: Kind, default: Default) -> Field {
    Field { name, kind, required: false, default, aliases: &[] }
}

pub const PRIORITIES: &[&str] = &["low", "medium", "high"];

// One entry per collection, one field per line: a table to read, kept as written.
#[rustfmt::skip]
pub static ENTITIES: &[Entity] = &[
    Entity {
        name: "tasks",
        fields: &[
            Field {
                name: "title",
                kind: Kind::Str { max: 1_000 },
                required: true,
                default: Default::Str(""),
                aliases: &["content"],
            },
            field("description", Kind::Str { max: 10_000 }, Default::Str("")),
            field("completed", Kind::Bool, Default::Bool(false)),
            field("pinned", Kind::Bool, Default::Bool(false)),
            field("priority", Kind::Enum(PRIORITIES), Default::Str("medium")),
            field("due_date", Kind::NullableInt, Default::Null),
            field("list_id", Kind::NullableId, Default::Null),
            field("sort_order", Kind::Int, Default::Int(0)),
        ],
    },
    Entity {
        name: "lists",
        fields: &[
            Field {
                name: "name",
                kind: Kind::Str { max: 200 },
                required: true,
                default: Default::Str(""),
                aliases: &[],
            },
            field("color", Kind::Str { max: 32 }, Default::Str("")),
            field("icon", Kind::Str { max: 64 }, Default::Str("")),
            field("sort_order", Kind::Int, Default::Int(0)),
        ],
    },
    Entity {
        name: "notes",
        fields: &[
            field("title", Kind::Str { max: 1_000 }, Default::Str("")),
            field("body", Kind::Str { max: 100_000 }, Default::Str("")),
            field("pinned", Kind::Bool, Default::Bool(false)),
            field("list_id", Kind::NullableId, Default::Null),
        ],
    },
    Entity {
        name: "settings",
        fields: &[field("value", Kind::Json { max_bytes: 16 * 1024 }, Default::Null)],
    },
];

/// Types are identified by name.
impl PartialEq for Entity {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

pub fn entity(name: &str) -> Option<&'static Entity> {
    ENTITIES.iter().find(|e| e.name == name)
}

impl Entity {
    /// The field a client key names, by name or alias.
    pub fn field(&self, key: &str) -> Option<&'static Field> {
        // `fields` is 'static, so the reference outlives `self`.
        let fields: &'static [Field] = self.fields;
        fields.iter().find(|f| f.name == key || f.aliases.contains(&key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_resolve() {
        let tasks = entity("tasks").unwrap();
        assert_eq!(tasks.field("content").unwrap().name, "title");
        assert!(tasks.field("nope").is_none());
        assert!(entity("widgets").is_none());
    }
}
