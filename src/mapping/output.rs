//! What applying a mapping produces: each object's fields in its target
//! descriptor's order, named by the descriptor's own `&'static str`s.
//!
//! The program walks the descriptor in order already, so its output needs no
//! map keyed by owned strings: the server writes the card from it straight to
//! bytes ([`Object::write`]: one pass, no key allocated, inserted or searched),
//! and the integrator's tools and the typed checks take it as a JSON object
//! ([`Object::into_value`]).

use serde_json::Value;

use crate::schema::write::{SchemaMismatch, list, string, write_value};
use crate::schema::{FieldType, ObjectSchema};

/// One mapped object: its fields in descriptor order.
#[derive(Debug, Default)]
pub struct Object {
    fields: Vec<Field>,
}

#[derive(Debug)]
struct Field {
    /// The field's position in its object's descriptor (the key of the order).
    index: u16,
    name: &'static str,
    value: Output,
}

/// One field's value.
#[derive(Debug)]
pub enum Output {
    /// A scalar, a list of strings or a string map: plain JSON.
    Value(Value),
    /// A nested object.
    Object(Object),
    /// A list of objects.
    List(Vec<Object>),
}

impl Output {
    /// The value as JSON.
    pub fn into_value(self) -> Value {
        match self {
            Output::Value(v) => v,
            Output::Object(o) => o.into_value(),
            Output::List(items) => {
                Value::Array(items.into_iter().map(Object::into_value).collect())
            }
        }
    }
}

impl Object {
    pub(super) fn with_capacity(fields: usize) -> Self {
        Self {
            fields: Vec::with_capacity(fields),
        }
    }

    /// Puts the field `name`, at position `index` of its descriptor, in its
    /// place: at the end when produced in order (every field but a lookup's
    /// parent, which is produced after its siblings).
    pub(super) fn insert(&mut self, index: usize, name: &'static str, value: Output) {
        // Descriptors are small static tables (tens of fields).
        let index = u16::try_from(index).expect("a descriptor has under 65,536 fields");
        let at = self.fields.partition_point(|f| f.index < index);
        self.fields.insert(at, Field { index, name, value });
    }

    pub(super) fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The object as a JSON object (for `apply`, the integrator's tools and
    /// the typed checks).
    pub fn into_value(self) -> Value {
        Value::Object(
            self.fields
                .into_iter()
                .map(|f| (f.name.to_owned(), f.value.into_value()))
                .collect(),
        )
    }

    /// Appends the object as `schema` to `out`, with the checks
    /// [`write_object`](crate::schema::write::write_object) makes of a map:
    /// every required field, no field the descriptor lacks, each value of its
    /// field's JSON type. The bytes are the same as that function's for the
    /// same object (a test holds them equal over the shipped fixtures).
    pub fn write(&self, schema: &ObjectSchema, out: &mut Vec<u8>) -> Result<(), SchemaMismatch> {
        let mismatch = |field: &str, problem| SchemaMismatch {
            object: schema.name,
            field: field.to_owned(),
            problem,
        };
        let mut fields = self.fields.iter().peekable();
        out.push(b'{');
        for (index, field) in schema.fields.iter().enumerate() {
            let value = fields.next_if(|f| usize::from(f.index) == index);
            let value = match value.map(|f| &f.value) {
                None | Some(Output::Value(Value::Null)) if field.required => {
                    return Err(mismatch(field.name, "required, but missing"));
                }
                None | Some(Output::Value(Value::Null)) => continue,
                Some(v) => v,
            };
            if out.last() != Some(&b'{') {
                out.push(b',');
            }
            string(field.name, out);
            out.push(b':');
            let written = match (value, field.ty) {
                (Output::Value(v), ty) => write_value(v, ty, out),
                (Output::Object(o), FieldType::Object(inner)) => {
                    o.write(inner, out).map_err(|_| "does not fit its object")
                }
                (Output::List(items), FieldType::List(inner)) => list(items, out, |item, out| {
                    item.write(inner, out)
                        .map_err(|_| "a list item does not fit")
                }),
                _ => Err("a value of the wrong JSON type"),
            };
            written.map_err(|problem| mismatch(field.name, problem))?;
        }
        out.push(b'}');
        match fields.next() {
            Some(f) => Err(mismatch(f.name, "not a field of this object")),
            None => Ok(()),
        }
    }
}
