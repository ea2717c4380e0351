//! `GET /api/openapi.json`: the OpenAPI 3.1 description, generated from the routing
//! table and the entity specs so it cannot drift from what the worker serves. Pure.

use serde_json::{json, Map, Value};

use crate::endpoints::{Auth, Endpoint, Param, ENDPOINTS};
use crate::entities::{Entity, Kind, ENTITIES};
use crate::envelope::{UserId, FIELDS, ID_PATTERN, MAX_SAFE_INT};
use crate::parse::{Limits, DEFAULT_LIMIT, MAX_LIMIT};

/// JSON Schema of one field.
fn field_schema(kind: Kind) -> Value {
    let id = json!({"type": "string", "pattern": ID_PATTERN});
    match kind {
        Kind::Str { max } => json!({"type": "string", "maxLength": max}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Int => json!({"type": "integer", "minimum": -MAX_SAFE_INT, "maximum": MAX_SAFE_INT}),
        Kind::NullableInt => json!({"type": ["integer", "null"], "minimum": -MAX_SAFE_INT, "maximum": MAX_SAFE_INT}),
        Kind::NullableId => json!({"oneOf": [id, {"type": "null"}]}),
        Kind::Enum(values) => json!({"type": "string", "enum": values}),
        Kind::Json { max_bytes } => {
            json!({"description": format!("any JSON value, serialized at most {max_bytes} bytes")})
        }
    }
}

/// `deleted_at` in a change: null (live) or a positive time in ms (a delete; the server
/// stamps its own time). Any other value is a 400, never a delete.
fn deleted_at_schema() -> Value {
    json!({"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SAFE_INT,
        "description": "null: live; a positive time in ms marks a delete (the server stamps its own time)"})
}

fn title(e: &Entity) -> String {
    let mut c = e.name.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// Where a change is sent: `POST /api/sync` (any type, deletes allowed; `type` may be
/// left out only for tasks) or a per-type endpoint's live records (`type` optional,
/// no deletes).
#[derive(Clone, Copy, PartialEq)]
enum Use {
    Sync,
    Live,
}

/// The record a client sends for type `e`, as the parser in `protocol` accepts it.
fn input_schema(e: &Entity, usage: Use) -> Value {
    let mut props = Map::new();
    props.insert("type".into(), json!({"const": e.name}));
    props.insert("id".into(), json!({"$ref": "#/components/schemas/Id"}));
    props.insert("version".into(), json!({"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SAFE_INT}));
    props.insert("device_id".into(), json!({"type": ["string", "null"], "maxLength": 128}));
    for ignored in ["created_at", "updated_at", "rev"] {
        props.insert(ignored.into(), json!({"description": "accepted and ignored (server-authoritative)"}));
    }
    let mut fields = Vec::new();
    let mut not = Vec::new();
    for f in e.fields {
        props.insert(f.name.into(), field_schema(f.kind));
        for alias in f.aliases {
            let mut alias_schema = field_schema(f.kind);
            alias_schema["description"] = format!("alias of {}", f.name).into();
            props.insert((*alias).into(), alias_schema);
            not.push(json!({"required": [f.name, alias]}));
        }
        if f.required {
            fields.push(f.name);
        }
    }
    let mut schema = json!({"type": "object", "additionalProperties": false, "required": ["id"]});
    match usage {
        Use::Sync => {
            props.insert("deleted".into(), json!({"type": ["boolean", "null"]}));
            props.insert("deleted_at".into(), deleted_at_schema());
            // A delete (deleted: true or a deleted_at) needs no fields; anything else needs
            // the required ones; deleted: false with a deleted_at contradicts itself.
            let deleting = json!([
                {"required": ["deleted"], "properties": {"deleted": {"const": true}}},
                {"required": ["deleted_at"], "properties": {"deleted_at": {"not": {"type": "null"}}}},
            ]);
            let mut alternatives = deleting.as_array().cloned().unwrap_or_default();
            alternatives.push(json!({"required": fields}));
            schema["anyOf"] = Value::Array(alternatives);
            not.push(json!({"required": ["deleted", "deleted_at"], "properties": {"deleted": {"const": false}, "deleted_at": {"not": {"type": "null"}}}}));
            if e.name != "tasks" {
                schema["required"] = json!(["id", "type"]);
            }
            schema["description"] = format!("A change to a {} record: its full field set (missing optional fields take their defaults), or a delete (id, optional version, deleted: true).", e.name).into();
        }
        Use::Live => {
            props.insert("deleted".into(), json!({"enum": [false, null]}));
            props.insert("deleted_at".into(), json!({"type": "null"}));
            let mut required = vec!["id"];
            required.extend(fields);
            schema["required"] = json!(required);
            schema["description"] =
                format!("A live {} record (its full field set; `type`, if given, must be {}).", e.name, e.name).into();
        }
    }
    if !not.is_empty() {
        schema["not"] = json!({"anyOf": not});
    }
    schema["properties"] = Value::Object(props);
    schema
}

/// The record the server returns for type `e`.
fn record_schema(e: &Entity) -> Value {
    let mut props = Map::new();
    props.insert("type".into(), json!({"const": e.name, "description": "present in POST /api/sync updates"}));
    props.insert("id".into(), json!({"$ref": "#/components/schemas/Id"}));
    for k in ["version", "rev", "created_at", "updated_at"] {
        props.insert(k.into(), json!({"type": "integer"}));
    }
    props.insert("deleted_at".into(), json!({"type": ["integer", "null"]}));
    props.insert("device_id".into(), json!({"type": ["string", "null"]}));
    for f in e.fields {
        props.insert(f.name.into(), field_schema(f.kind));
    }
    let mut required: Vec<&str> = FIELDS.to_vec();
    required.extend(e.fields.iter().map(|f| f.name));
    json!({"type": "object", "properties": props, "required": required})
}

fn problem(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
}

fn ok(desc: &str, schema: Value) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": schema}}})
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn one_of_entities(suffix: &str) -> Value {
    json!({"oneOf": ENTITIES.iter().map(|e| reference(&format!("{}{suffix}", title(e)))).collect::<Vec<_>>()})
}

fn any_of_entities(suffix: &str) -> Value {
    json!({"anyOf": ENTITIES.iter().map(|e| reference(&format!("{}{suffix}", title(e)))).collect::<Vec<_>>()})
}

fn query(name: &str, required: bool, schema: Value, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": schema, "description": desc})
}

/// The JSON Schema of a query parameter, from its declaration.
fn param(p: Param) -> Value {
    match p {
        Param::Since => query(
            p.name(),
            true,
            json!({"type": "integer", "minimum": 0, "maximum": MAX_SAFE_INT}),
            "cursor; 0 = from the beginning",
        ),
        Param::Limit => query(
            p.name(),
            false,
            json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}),
            "page size",
        ),
        Param::After => query(p.name(), false, reference("Id"), "last id of the previous page"),
        Param::User => query(
            p.name(),
            true,
            json!({"type": "string", "minLength": 1, "maxLength": 128}),
            "the user id (a token's `sub`)",
        ),
    }
}

/// The operation object of one endpoint at one of its paths; `e` is the entity of a
/// per-type path. Summary, parameters, conditional GETs and security come from the
/// endpoint's declaration; the body and reply schemas from its handler.
fn operation(ep: &Endpoint, path: &str, e: Option<&Entity>) -> Value {
    let t = e.map(title).unwrap_or_default();
    let json_body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
    let mut params: Vec<Value> = ep.query.iter().map(|p| param(*p)).collect();
    if ep.conditional {
        params.push(json!({"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}, "description": "a state token from ETag; a match gives 304"}));
    }
    let schema = |name: &str| reference(&name.replace("{T}", &t));
    let body = ep.request_schema.map(|name| json_body(schema(name)));
    let mut responses = Map::new();
    responses.insert("200".into(), ok(ep.reply, schema(ep.reply_schema)));
    if ep.conditional {
        responses.insert("304".into(), json!({"description": "not modified"}));
    }
    let errors: &[(&str, &str)] = match ep.auth {
        Auth::Public => &[],
        Auth::Dev => &[
            ("400", "invalid_json or invalid_field"),
            ("404", "not_found: DEV_MODE is off"),
            ("415", "unsupported_media_type"),
        ],
        Auth::Admin => &[
            ("400", "invalid_json or invalid_field"),
            ("401", "unauthorized"),
            ("404", "not_found: no ADMIN_TOKEN configured"),
            ("413", "payload_too_large"),
            ("415", "unsupported_media_type"),
            ("503", "busy: a bucket being moved between databases for a moment (reshard); see Retry-After"),
        ],
        Auth::User => &[
            ("400", "invalid_json or invalid_field"),
            ("401", "unauthorized"),
            ("404", "not_found: unknown entity type"),
            ("409", "sync_conflict: the server has newer changes; version_exhausted: a record is at version 2^53-1 (full upload)"),
            ("410", "reset_required: cursor older than the purge horizon"),
            ("413", "payload_too_large"),
            ("415", "unsupported_media_type"),
            ("429", "rate_limited"),
            ("503", "degraded (daily quota) or busy (concurrent pushes); see Retry-After"),
        ],
    };
    for (code, desc) in errors {
        responses.insert((*code).into(), problem(desc));
    }
    responses.insert("500".into(), problem("internal"));
    let id = format!("{}{}", ep.method.to_lowercase(), path.replace(['/', '.'], "_"));
    let mut op = json!({"summary": ep.summary, "operationId": id, "parameters": params, "responses": responses});
    if let Some(b) = body {
        op["requestBody"] = b;
    }
    op["security"] = match ep.auth {
        Auth::Public | Auth::Dev => json!([]),
        Auth::User => json!([{"bearerAuth": []}]),
        Auth::Admin => json!([{"adminToken": []}]),
    };
    op
}

/// What the worker's build script passes as `limits`: it serializes the document at build
/// time and writes the deployment's `MAX_CHANGES` and `MAX_UPLOAD_RECORDS` in place of
/// these numbers (which nothing else in the document can be: no other bound is near them)
/// when it first serves it.
pub const LIMIT_SLOTS: Limits = Limits { max_changes: 987_654_321, max_upload_records: 987_654_322 };

/// The document for a deployment: `limits` are its `MAX_CHANGES` and `MAX_UPLOAD_RECORDS`,
/// `dev` whether the development-only endpoints are served (`DEV_MODE`). The worker serves
/// it as serialized at build time (its `build.rs`).
pub fn document(limits: Limits, dev: bool) -> Value {
    let (max_changes, max_upload_records) = (limits.max_changes, limits.max_upload_records);
    let mut paths: Map<String, Value> = Map::new();
    // A per-type endpoint is described once per type, so each body and reply has that
    // type's exact schema (a `{type}` template could not tie the schema to the type).
    for ep in ENDPOINTS.iter().filter(|ep| dev || ep.auth != Auth::Dev) {
        for path in ep.paths() {
            let concrete: Vec<(String, Option<&Entity>)> = if path.contains("{type}") {
                ENTITIES.iter().map(|e| (path.replace("{type}", e.name), Some(e))).collect()
            } else {
                vec![(path.to_string(), None)]
            };
            for (path, e) in concrete {
                let op = operation(ep, &path, e);
                let entry = paths.entry(path).or_insert_with(|| json!({}));
                entry[ep.method.to_lowercase()] = op;
            }
        }
    }

    let mut schemas = Map::new();
    // null counts as absent; aliases are alternatives: give at most one of them.
    let one_of = |names: &[&str]| {
        let pairs: Vec<Value> = names
            .iter()
            .enumerate()
            .flat_map(|(i, a)| names[i + 1..].iter().map(move |b| json!({"required": [a, b]})))
            .collect();
        json!({"anyOf": pairs})
    };
    let int = json!({"type": ["integer", "null"], "minimum": 0, "maximum": MAX_SAFE_INT});
    let nullable_list = |items: Value| json!({"type": ["array", "null"], "maxItems": max_changes, "items": items});
    for e in ENTITIES {
        let t = title(e);
        schemas.insert(format!("{t}Change"), input_schema(e, Use::Sync));
        schemas.insert(format!("{t}Live"), input_schema(e, Use::Live));
        schemas.insert(format!("{t}Record"), record_schema(e));
        let records = json!({"type": "array", "items": reference(&format!("{t}Record"))});
        schemas.insert(
            format!("{t}DownloadResponse"),
            json!({"allOf": [reference("DownloadResponse"), {"properties": {"data": records}}]}),
        );
        schemas.insert(
            format!("{t}ChangesResponse"),
            json!({"allOf": [reference("ChangesResponse"), {"properties": {"changes": {"properties": {"created": records, "updated": records}}}}]}),
        );
        let live = reference(&format!("{t}Live"));
        schemas.insert(
            format!("{t}FullUpload"),
            json!({"type": "object", "additionalProperties": false, "required": ["data"], "not": one_of(&["cursor", "timestamp"]), "properties": {
                "data": {"type": "array", "maxItems": max_upload_records, "items": live}, "cursor": int, "timestamp": int}}),
        );
        let delete_item = json!({"oneOf": [reference("Id"), {"type": "object", "additionalProperties": false, "required": ["id"], "properties": {
            "id": reference("Id"), "version": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SAFE_INT},
            "type": {"const": e.name}, "deleted": {"enum": [true, null]}, "deleted_at": deleted_at_schema(),
            "device_id": {"type": ["string", "null"], "maxLength": 128}}}]});
        schemas.insert(
            format!("{t}DeltaPush"),
            json!({"type": "object", "additionalProperties": false, "required": ["changes"], "not": one_of(&["cursor", "since", "last_sync"]), "properties": {
                "changes": {"type": "object", "additionalProperties": false,
                    "description": "at most MAX_CHANGES changes (each list's maxItems) in created, updated and deleted together; more is a 413", "properties": {
                    "created": nullable_list(live.clone()), "updated": nullable_list(live), "deleted": nullable_list(delete_item)}},
                "cursor": int, "since": int, "last_sync": int}}),
        );
    }

    let extra = json!({
        "Id": {"type": "string", "pattern": ID_PATTERN},
        "DevLoginRequest": {"type": "object", "additionalProperties": false, "required": ["user"], "properties": {"user": {"type": "string", "minLength": 1, "maxLength": UserId::MAX_LEN}}},
        "UsageReport": {"type": "object"},
        "ReshardRequest": {"type": "object", "additionalProperties": false, "required": ["step"], "properties": {
            "step": {"type": "string", "enum": ["locate", "begin", "copy", "switch", "clean"]},
            "bucket": {"type": "integer", "minimum": 0, "maximum": crate::shards::BUCKETS - 1},
            "user": {"type": "string", "minLength": 1, "maxLength": UserId::MAX_LEN},
            "to": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"}, "from": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]{0,63}$"},
            "after": {"type": ["string", "null"]}, "limit": {"type": "integer", "minimum": 1, "maximum": 100}}},
        "ReshardReply": {"type": "object"},
        "RecordsExport": {"type": "object"},
        "OpenApiDocument": {"type": "object"},
        "DevLogin": {"type": "object", "properties": {"token": {"type": "string"}, "user": {"type": "string"}, "expires_at": {"type": "integer"}}},
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "error", "timestamp"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "timestamp": {"type": "integer"},
            "error": {"type": "string", "enum": ["invalid_json", "invalid_field", "unsupported_media_type", "payload_too_large", "unauthorized", "not_found", "method_not_allowed", "sync_conflict", "version_exhausted", "reset_required", "rate_limited", "degraded", "busy", "internal"]},
            "field": {"type": "string", "description": "JSON path of the offending input"}}},
        "Health": {"type": "object", "properties": {"status": {"const": "healthy"}, "timestamp": {"type": "integer"}, "degraded": {"type": "boolean"}}},
        "Check": {"type": "object", "properties": {"etag": {"type": "string"}, "cursor": {"type": "integer"}, "server_time": {"type": "integer"}}},
        "SyncRequest": {"type": "object", "additionalProperties": false, "not": one_of(&["cursor", "last_sync"]), "properties": {
            "cursor": int, "last_sync": int,
            "changes": nullable_list(any_of_entities("Change")),
            "limit": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_LIMIT}}},
        "Applied": {"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "version": {"type": "integer"}, "rev": {"type": "integer"}}},
        "Conflict": {"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "reason": {"enum": ["stale_version", "version_exhausted"]}, "server": {"oneOf": [one_of_entities("Record"), {"type": "null"}]}}},
        "SyncResponse": {"type": "object", "properties": {
            "applied": {"type": "array", "items": reference("Applied")},
            "conflicts": {"type": "array", "items": reference("Conflict")},
            "updates": {"type": "array", "items": one_of_entities("Record")},
            "deleted": {"type": "array", "items": {"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "rev": {"type": "integer"}}}},
            "cursor": {"type": "integer"}, "has_more": {"type": "boolean"}, "etag": {"type": ["string", "null"]},
            "server_time": {"type": "integer"}, "degraded": {"type": "boolean"}}},
        "DownloadResponse": {"type": "object", "properties": {"success": {"type": "boolean"}, "data": {"type": "array", "items": one_of_entities("Record")}, "count": {"type": "integer"}, "cursor": {"type": "integer"}, "has_more": {"type": "boolean"}, "timestamp": {"type": "integer"}}},
        "ChangesResponse": {"type": "object", "properties": {"success": {"type": "boolean"}, "changes": {"type": "object", "properties": {
            "created": {"type": "array", "items": one_of_entities("Record")}, "updated": {"type": "array", "items": one_of_entities("Record")}, "deleted": {"type": "array", "items": reference("Id")}}},
            "cursor": {"type": "integer"}, "has_more": {"type": "boolean"}, "since": {"type": "integer"}, "timestamp": {"type": "integer"}, "total_changes": {"type": "integer"}}},
        "FullUploadResponse": {"type": "object", "properties": {"success": {"type": "boolean"}, "uploaded": {"type": "integer"}, "deleted": {"type": "integer"}, "cursor": {"type": "integer"}}},
        "DeltaResponse": {"type": "object", "properties": {"success": {"type": "boolean"},
            "processed": {"type": "object", "properties": {"created": {"type": "integer"}, "updated": {"type": "integer"}, "deleted": {"type": "integer"}}},
            "applied": {"type": "array", "items": reference("Applied")},
            "conflicts": {"type": "array", "items": reference("Conflict")}, "cursor": {"type": ["integer", "null"]}}},
    });
    if let Value::Object(extra) = extra {
        schemas.extend(extra);
    }

    json!({
        "openapi": "3.1.0",
        "info": {"title": "edgesync", "version": env!("CARGO_PKG_VERSION"), "description": "Multi-device sync backend on Cloudflare Workers, D1 and KV. Every response carries X-Sync-Ops and Server-Timing; authenticated GETs carry ETag."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "ADMIN_TOKEN"},
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_changes: 1000, max_upload_records: 1000 };

    #[test]
    fn every_route_is_described_and_nothing_else() {
        let doc = document(LIMITS, true);
        let paths = doc["paths"].as_object().unwrap();
        let mut described = 0;
        for (path, ops) in paths {
            for (method, _) in ops.as_object().unwrap() {
                described += 1;
                let served = matches!(
                    crate::endpoints::resolve(&method.to_uppercase(), path, |_| true),
                    crate::endpoints::Match::Found { .. }
                );
                assert!(served, "{method} {path} is described but not served");
                assert!(!path.contains('{'), "{path}: per-type routes are described per type");
            }
        }
        let expected: usize = ENDPOINTS
            .iter()
            .flat_map(|ep| ep.paths())
            .map(|p| if p.contains("{type}") { ENTITIES.len() } else { 1 })
            .sum();
        assert_eq!(described, expected, "every served route (per type) is described");
    }

    #[test]
    fn every_schema_the_endpoint_table_names_exists() {
        let doc = document(LIMITS, true);
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for ep in ENDPOINTS {
            let names: Vec<&str> = ep.request_schema.into_iter().chain([ep.reply_schema]).collect();
            for name in names {
                let concrete: Vec<String> = if name.contains("{T}") {
                    ENTITIES.iter().map(|e| name.replace("{T}", &title(e))).collect()
                } else {
                    vec![name.to_string()]
                };
                for n in concrete {
                    assert!(
                        schemas.contains_key(&n),
                        "{} {} names schema {n}, which is not defined",
                        ep.method,
                        ep.path
                    );
                }
            }
        }
    }

    #[test]
    fn schemas_follow_the_entity_specs() {
        let doc = document(LIMITS, false);
        assert!(doc["paths"].get("/api/dev/login").is_none(), "dev endpoints only under DEV_MODE");
        let small = document(Limits { max_changes: 7, max_upload_records: 9 }, false);
        let schemas = &small["components"]["schemas"];
        assert_eq!(
            schemas["TasksFullUpload"]["properties"]["data"]["maxItems"], 9,
            "a full upload: MAX_UPLOAD_RECORDS"
        );
        assert_eq!(schemas["SyncRequest"]["properties"]["changes"]["maxItems"], 7, "a push: MAX_CHANGES");
        assert_eq!(schemas["TasksDeltaPush"]["properties"]["changes"]["properties"]["created"]["maxItems"], 7);
        let task = &doc["components"]["schemas"]["TasksChange"];
        assert_eq!(task["properties"]["title"]["maxLength"], 1000);
        assert_eq!(task["required"], json!(["id"]));
        assert_eq!(task["anyOf"][2]["required"], json!(["title"]));
        assert_eq!(doc["components"]["schemas"]["ListsChange"]["required"], json!(["id", "type"]));
        assert_eq!(doc["components"]["schemas"]["TasksLive"]["required"], json!(["id", "title"]));
        assert!(doc["paths"]["/api/sync/notes/delta"]["post"]["requestBody"].to_string().contains("NotesDeltaPush"));
        assert_eq!(doc["components"]["schemas"]["SettingsRecord"]["required"][7], "value");
    }
}
