//! `GET /api/openapi.json`: the OpenAPI 3.1 description, generated from the routing
//! table and the entity specs so it cannot drift from what the worker serves. Pure.

use serde_json::{json, Map, Value};

use crate::entities::{Entity, Kind, ENTITIES, MAX_SAFE_INT};
use crate::protocol::MAX_LIMIT;
use crate::routes::{Auth, Handler, Route, ROUTES};

/// JSON Schema of one field.
fn field_schema(kind: Kind) -> Value {
    let id = json!({"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"});
    match kind {
        Kind::Str { max } => json!({"type": "string", "maxLength": max}),
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Int => json!({"type": "integer", "minimum": -MAX_SAFE_INT, "maximum": MAX_SAFE_INT}),
        Kind::NullableInt => json!({"type": ["integer", "null"], "minimum": -MAX_SAFE_INT, "maximum": MAX_SAFE_INT}),
        Kind::NullableId => json!({"oneOf": [id, {"type": "null"}]}),
        Kind::Enum(values) => json!({"type": "string", "enum": values}),
        Kind::Json { max_bytes } => json!({"description": format!("any JSON value, serialized at most {max_bytes} bytes")}),
    }
}

fn title(e: &Entity) -> String {
    let mut c = e.name.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The record a client sends for type `e` (what `changes[]` items and `data[]` hold).
fn input_schema(e: &Entity) -> Value {
    let mut props = Map::new();
    props.insert("type".into(), json!({"const": e.name}));
    props.insert("id".into(), json!({"$ref": "#/components/schemas/Id"}));
    props.insert("version".into(), json!({"type": ["integer", "null"], "minimum": 1, "maximum": MAX_SAFE_INT}));
    props.insert("device_id".into(), json!({"type": ["string", "null"], "maxLength": 128}));
    props.insert("deleted".into(), json!({"type": ["boolean", "null"]}));
    for ignored in ["deleted_at", "created_at", "updated_at", "rev"] {
        props.insert(ignored.into(), json!({"description": "accepted and ignored (server-authoritative); a non-null deleted_at marks a delete"}));
    }
    let mut required = vec!["id"];
    for f in e.fields {
        props.insert(f.name.into(), field_schema(f.kind));
        for alias in f.aliases {
            props.insert((*alias).into(), json!({"description": format!("alias of {}", f.name)}));
        }
        if f.required {
            required.push(f.name);
        }
    }
    json!({
        "type": "object",
        "description": format!("A change to a {} record. A non-delete carries the full field set (missing optional fields take their defaults); a delete carries id, optional version and deleted: true.", e.name),
        "properties": props,
        "required": required,
        "additionalProperties": false,
    })
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
    let mut required: Vec<&str> = vec!["id", "version", "rev", "created_at", "updated_at", "deleted_at", "device_id"];
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

fn query(name: &str, required: bool, schema: Value, desc: &str) -> Value {
    json!({"name": name, "in": "query", "required": required, "schema": schema, "description": desc})
}

/// The operation object of one route.
fn operation(r: &Route) -> Value {
    let limit = query("limit", false, json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 500}), "page size");
    let inm = json!({"name": "If-None-Match", "in": "header", "required": false, "schema": {"type": "string"}, "description": "a state token from ETag; a match gives 304"});
    let type_param = json!({"name": "type", "in": "path", "required": true, "schema": {"type": "string", "enum": ENTITIES.iter().map(|e| e.name).collect::<Vec<_>>()}});
    let json_body = |schema: Value| json!({"required": true, "content": {"application/json": {"schema": schema}}});
    let (summary, params, body, success): (&str, Vec<Value>, Option<Value>, Vec<(&str, Value)>) = match r.handler {
        Handler::Health => ("Health and degradation state", vec![], None, vec![("200", ok("healthy", reference("Health")))]),
        Handler::Check => (
            "State check: 304 when nothing changed",
            vec![inm.clone()],
            None,
            vec![("200", ok("the current state token", reference("Check"))), ("304", json!({"description": "not modified"}))],
        ),
        Handler::Sync => (
            "Combined push and pull of every type",
            vec![],
            Some(json_body(reference("SyncRequest"))),
            vec![("200", ok("applied, conflicts and the changes since the cursor", reference("SyncResponse")))],
        ),
        Handler::Download => (
            "Full download of a type's live records, paged by id",
            vec![type_param.clone(), limit.clone(), query("after", false, reference("Id"), "last id of the previous page"), inm.clone()],
            None,
            vec![("200", ok("one page", reference("DownloadResponse"))), ("304", json!({"description": "not modified"}))],
        ),
        Handler::Upload => (
            "Full upload: replace a type's live set",
            vec![type_param.clone()],
            Some(json_body(reference("FullUpload"))),
            vec![("200", ok("replaced", reference("FullUploadResponse")))],
        ),
        Handler::Changes => (
            "Delta pull of a type after a cursor",
            vec![
                type_param.clone(),
                query("since", true, json!({"type": "integer", "minimum": 0, "maximum": MAX_SAFE_INT}), "cursor; 0 = from the beginning"),
                limit,
                inm,
            ],
            None,
            vec![("200", ok("one page of changes", reference("ChangesResponse"))), ("304", json!({"description": "not modified"}))],
        ),
        Handler::Delta => (
            "Delta push of a type",
            vec![type_param],
            Some(json_body(reference("DeltaPush"))),
            vec![("200", ok("processed", reference("DeltaResponse")))],
        ),
        Handler::OpenApi => ("This document", vec![], None, vec![("200", ok("OpenAPI 3.1", json!({"type": "object"})))]),
        Handler::AdminUsage => (
            "Today's usage against each quota",
            vec![],
            None,
            vec![("200", ok("usage report", json!({"type": "object"})))],
        ),
    };
    let mut responses = Map::new();
    for (code, v) in success {
        responses.insert(code.into(), v);
    }
    let errors: &[(&str, &str)] = match r.auth {
        Auth::Public => &[],
        Auth::Admin => &[("401", "unauthorized"), ("404", "not_found: no ADMIN_TOKEN configured")],
        Auth::User => &[
            ("400", "invalid_json or invalid_field"),
            ("401", "unauthorized"),
            ("404", "not_found: unknown entity type"),
            ("409", "sync_conflict: the server has newer changes (full upload)"),
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
    let mut op = json!({"summary": summary, "operationId": format!("{}{}", r.method.to_lowercase(), r.path.replace(['/', '{', '}', '.'], "_")), "parameters": params, "responses": responses});
    if let Some(b) = body {
        op["requestBody"] = b;
    }
    match r.auth {
        Auth::Public => op["security"] = json!([]),
        Auth::User => op["security"] = json!([{"bearerAuth": []}]),
        Auth::Admin => op["security"] = json!([{"adminToken": []}]),
    }
    op
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for r in ROUTES {
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.to_lowercase()] = operation(r);
    }

    let mut schemas = Map::new();
    for e in ENTITIES {
        schemas.insert(format!("{}Change", title(e)), input_schema(e));
        schemas.insert(format!("{}Record", title(e)), record_schema(e));
    }
    let int = json!({"type": "integer", "minimum": 0, "maximum": MAX_SAFE_INT});
    let extra = json!({
        "Id": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
        "Problem": {"type": "object", "required": ["type", "title", "status", "detail", "error", "timestamp"], "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
            "detail": {"type": "string"}, "timestamp": {"type": "integer"},
            "error": {"type": "string", "enum": ["invalid_json", "invalid_field", "unsupported_media_type", "payload_too_large", "unauthorized", "not_found", "method_not_allowed", "sync_conflict", "reset_required", "rate_limited", "degraded", "busy", "internal"]},
            "field": {"type": "string", "description": "JSON path of the offending input"}}},
        "Health": {"type": "object", "properties": {"status": {"const": "healthy"}, "timestamp": {"type": "integer"}, "degraded": {"type": "boolean"}}},
        "Check": {"type": "object", "properties": {"etag": {"type": "string"}, "cursor": {"type": "integer"}, "server_time": {"type": "integer"}}},
        "SyncRequest": {"type": "object", "additionalProperties": false, "properties": {
            "cursor": int, "last_sync": int,
            "changes": {"type": "array", "maxItems": 1000, "items": one_of_entities("Change")},
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}}},
        "Applied": {"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "version": {"type": "integer"}, "rev": {"type": "integer"}}},
        "Conflict": {"type": "object", "properties": {"type": {"type": "string"}, "id": {"type": "string"}, "reason": {"const": "stale_version"}, "server": {"oneOf": [one_of_entities("Record"), {"type": "null"}]}}},
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
        "FullUpload": {"type": "object", "additionalProperties": false, "required": ["data"], "properties": {
            "data": {"type": "array", "maxItems": 1000, "items": one_of_entities("Change")}, "cursor": int, "timestamp": int}},
        "FullUploadResponse": {"type": "object", "properties": {"success": {"type": "boolean"}, "uploaded": {"type": "integer"}, "deleted": {"type": "integer"}, "cursor": {"type": "integer"}}},
        "DeltaPush": {"type": "object", "additionalProperties": false, "required": ["changes"], "properties": {
            "changes": {"type": "object", "additionalProperties": false, "properties": {
                "created": {"type": "array", "items": one_of_entities("Change")},
                "updated": {"type": "array", "items": one_of_entities("Change")},
                "deleted": {"type": "array", "items": {"oneOf": [reference("Id"), {"type": "object", "required": ["id"], "properties": {"id": reference("Id"), "version": {"type": "integer", "minimum": 1}}}]}}}},
            "cursor": int, "since": int, "last_sync": int}},
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

    #[test]
    fn every_route_is_described_and_nothing_else() {
        let doc = document();
        let paths = doc["paths"].as_object().unwrap();
        let mut described = 0;
        for (path, ops) in paths {
            for (method, _) in ops.as_object().unwrap() {
                described += 1;
                let served = ROUTES.iter().any(|r| r.path == path && r.method.eq_ignore_ascii_case(method));
                assert!(served, "{method} {path} is described but not served");
            }
        }
        assert_eq!(described, ROUTES.len(), "every served route is described");
    }

    #[test]
    fn schemas_follow_the_entity_specs() {
        let doc = document();
        let task = &doc["components"]["schemas"]["TasksChange"];
        assert_eq!(task["properties"]["title"]["maxLength"], 1000);
        assert_eq!(task["required"], json!(["id", "title"]));
        assert_eq!(doc["components"]["schemas"]["SettingsRecord"]["required"][7], "value");
    }
}
