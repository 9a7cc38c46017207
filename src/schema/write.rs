//! Writes a mapped object straight to JSON bytes in the order its descriptor
//! gives, checking it against the descriptor on the way: no unknown fields,
//! every required field, each value of its field's JSON type.
//!
//! This is the typed structs' check (`serde_json::from_value` into
//! `auth_api::Response`, then `to_vec`) in one pass over the map, without
//! moving every value into a struct and serialising that again; a test keeps
//! the bytes equal to the typed structs' for every shipped fixture.

use serde_json::{Map, Value};

use super::{FieldType, ObjectSchema};

/// Why a mapped object does not fit its descriptor (names only, no values).
#[derive(Debug, thiserror::Error)]
#[error("{object}.{field}: {problem}")]
pub struct SchemaMismatch {
    pub object: &'static str,
    pub field: String,
    pub problem: &'static str,
}

/// Appends `object` as `schema` to `out`.
pub fn write_object(
    object: &Map<String, Value>,
    schema: &ObjectSchema,
    out: &mut Vec<u8>,
) -> Result<(), SchemaMismatch> {
    let mismatch = |field: &str, problem| SchemaMismatch {
        object: schema.name,
        field: field.to_owned(),
        problem,
    };
    let mut seen = 0;
    out.push(b'{');
    for field in schema.fields {
        let value = match object.get(field.name) {
            Some(Value::Null) | None if field.required => {
                return Err(mismatch(field.name, "required, but missing"));
            }
            Some(Value::Null) => {
                seen += 1;
                continue;
            }
            None => continue,
            Some(v) => v,
        };
        seen += 1;
        if out.last() != Some(&b'{') {
            out.push(b',');
        }
        string(field.name, out);
        out.push(b':');
        write_value(value, field.ty, out).map_err(|problem| mismatch(field.name, problem))?;
    }
    out.push(b'}');
    if seen != object.len() {
        let unknown = object
            .keys()
            .find(|k| schema.field(k).is_none())
            .map_or_else(String::new, Clone::clone);
        return Err(mismatch(&unknown, "not a field of this object"));
    }
    Ok(())
}

/// Appends one value of a field typed `ty` (objects and lists of objects as
/// maps), or says why it does not fit.
pub fn write_value(value: &Value, ty: FieldType, out: &mut Vec<u8>) -> Result<(), &'static str> {
    match (ty, value) {
        (FieldType::String | FieldType::Date | FieldType::Timestamp, Value::String(s)) => {
            string(s, out)
        }
        (FieldType::Number, Value::Number(n)) => out.extend_from_slice(n.to_string().as_bytes()),
        (FieldType::Integer, Value::Number(n)) => {
            let n = n.as_i64().ok_or("not a 64-bit integer")?;
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
        }
        (FieldType::Boolean, Value::Bool(b)) => {
            out.extend_from_slice(if *b { b"true" } else { b"false" });
        }
        (FieldType::Object(inner), Value::Object(map)) => {
            write_object(map, inner, out).map_err(|_| "does not fit its object")?;
        }
        (FieldType::List(inner), Value::Array(items)) => list(items, out, |item, out| {
            let Value::Object(map) = item else {
                return Err("a list item is not an object");
            };
            write_object(map, inner, out).map_err(|_| "a list item does not fit")
        })?,
        (FieldType::StringMap, Value::Object(map)) => {
            out.push(b'{');
            // serde_json's map is ordered by key, as the typed BTreeMap is.
            for (i, (k, v)) in map.iter().enumerate() {
                let Value::String(v) = v else {
                    return Err("a map value is not a string");
                };
                if i > 0 {
                    out.push(b',');
                }
                string(k, out);
                out.push(b':');
                string(v, out);
            }
            out.push(b'}');
        }
        (FieldType::StringList, Value::Array(items)) => list(items, out, |item, out| {
            let Value::String(s) = item else {
                return Err("a list item is not a string");
            };
            string(s, out);
            Ok(())
        })?,
        _ => return Err("a value of the wrong JSON type"),
    }
    Ok(())
}

/// A JSON array of `items`, each written by `each`.
pub fn list<T>(
    items: &[T],
    out: &mut Vec<u8>,
    mut each: impl FnMut(&T, &mut Vec<u8>) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        each(item, out)?;
    }
    out.push(b']');
    Ok(())
}

/// A JSON string, escaped as serde_json escapes it.
pub fn string(s: &str, out: &mut Vec<u8>) {
    // Writing a &str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::auth_api::{RESPONSE, Response};

    fn write(v: &Value) -> Result<Vec<u8>, SchemaMismatch> {
        let mut out = Vec::new();
        write_object(v.as_object().unwrap(), &RESPONSE, &mut out).map(|()| out)
    }

    #[test]
    fn bytes_equal_the_typed_structs() {
        let card = json!({
            "companyList": [{"id": 7, "name": "ООО \"Ромашка\"\n", "resident": true}],
            "client": {
                "id": "C-1", "name": "Анна", "surname": "S", "firstName": "F",
                "patronymic": "", "type": "0", "enabled": false,
                "birthdate": "1985-04-12", "branch": {"id": -3, "name": "b"},
                "fields": {"z": "1", "a": "2"}, "fieldList": [{"name": "n", "value": "v"}],
                "group": [{"id": 1, "parentGroup": {"id": 0}, "priority": 2}],
                "contacts": null
            }
        });
        let typed: Response = serde_json::from_value(card.clone()).unwrap();
        assert_eq!(write(&card).unwrap(), serde_json::to_vec(&typed).unwrap());
    }

    #[test]
    fn refuses_what_the_typed_structs_refuse() {
        let base = json!({"id": "1", "name": "n", "surname": "s", "firstName": "f",
                          "patronymic": "", "type": "0", "enabled": true});
        for (key, value) in [
            ("id", json!(null)),
            ("enabled", json!("yes")),
            ("unknownField", json!("x")),
            ("branch", json!({"id": 1.5})),
            ("fields", json!({"a": 1})),
            ("group", json!([{"id": 18446744073709551615u64}])),
        ] {
            let mut client = base.clone();
            client[key] = value;
            let card = json!({"client": client});
            assert!(write(&card).is_err(), "{key}");
            assert!(serde_json::from_value::<Response>(card).is_err(), "{key}");
        }
    }
}
