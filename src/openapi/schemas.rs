//! JSON Schema (2020-12, as OpenAPI 3.1 uses it) from the schema
//! descriptors: the same `ObjectSchema` tables the mapping compiler checks
//! cards against, so the published shapes cannot drift from the served ones.

use serde_json::{Map, Value, json};

use crate::schema::{ApiVersion, FieldSchema, FieldType, ObjectSchema};

/// A reference to the component schema `name`.
pub fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// The JSON Schema of one field type; nested objects are references.
fn field_type(ty: FieldType) -> Value {
    match ty {
        FieldType::String => json!({"type": "string"}),
        FieldType::Integer => json!({"type": "integer", "format": "int64"}),
        FieldType::Number => json!({"type": "number"}),
        FieldType::Boolean => json!({"type": "boolean"}),
        FieldType::Date => json!({"type": "string", "format": "date"}),
        FieldType::Timestamp => json!({
            "type": "string",
            "pattern": "^[0-9]+$",
            "description": "Unix seconds as a string of digits",
        }),
        FieldType::Object(inner) => reference(inner.name),
        FieldType::List(inner) => json!({"type": "array", "items": reference(inner.name)}),
        FieldType::StringMap => {
            json!({"type": "object", "additionalProperties": {"type": "string"}})
        }
        FieldType::StringList => json!({"type": "array", "items": {"type": "string"}}),
    }
}

/// How one object is published.
#[derive(Debug, Clone, Copy)]
pub struct Publish {
    /// Fields introduced after this version are left out (the server drops
    /// them at load for an older `auth_api.api_version`).
    pub version: ApiVersion,
    /// The users API's `extra` field is not a key of the answer: its
    /// entries are sent beside the named fields (`#[serde(flatten)]`), so it
    /// becomes `additionalProperties` of strings.
    pub flatten_extra: bool,
}

/// The object as a JSON Schema: its fields in descriptor order, the
/// required ones listed, nothing else allowed.
pub fn object(schema: &ObjectSchema, publish: Publish, description: &str) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    let mut extra = false;
    for field in schema.fields.iter().filter(|f| f.since <= publish.version) {
        if publish.flatten_extra && field.name == "extra" {
            extra = true;
            continue;
        }
        properties.insert(field.name.to_owned(), property(field));
        if field.required {
            required.push(field.name);
        }
    }
    let mut out = json!({
        "type": "object",
        "description": description,
        "properties": properties,
    });
    if !required.is_empty() {
        out["required"] = json!(required);
    }
    out["additionalProperties"] = if extra {
        json!({"type": "string"})
    } else {
        json!(false)
    };
    out
}

fn property(field: &FieldSchema) -> Value {
    let mut value = field_type(field.ty);
    if field.since > ApiVersion::V1_0 {
        // `$ref` takes siblings in 2020-12: the note stays beside it.
        value["description"] = json!(format!("Since Auth API {}.", field.since));
    }
    if let (FieldType::StringMap, "fields") = (field.ty, field.name) {
        value["deprecated"] = json!(true);
        value["description"] = json!("Deprecated by the Auth API: use fieldList.");
    }
    value
}

/// Every object reachable from `root` through the fields `version` has
/// (itself included), each once.
pub fn reachable(root: &'static ObjectSchema, version: ApiVersion) -> Vec<&'static ObjectSchema> {
    let mut out: Vec<&'static ObjectSchema> = Vec::new();
    let mut queue = vec![root];
    while let Some(object) = queue.pop() {
        if out.iter().any(|o| std::ptr::eq(*o, object)) {
            continue;
        }
        out.push(object);
        for field in object.fields.iter().filter(|f| f.since <= version) {
            if let FieldType::Object(inner) | FieldType::List(inner) = field.ty {
                queue.push(inner);
            }
        }
    }
    out
}
