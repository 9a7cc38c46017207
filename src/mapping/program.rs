//! A compiled mapping and how it is applied to one CRM payload.
//!
//! The program mirrors the target schema: one slot per target field, in output
//! order, each already bound to its parsed JSONPath and its target type, so
//! applying it is a walk with no lookups by name and no re-parsing.

use serde_json::{Map, Value};

use super::coerce::coerce;
use super::error::ApplyError;
use super::path::{Path, Scope};
use crate::schema::FieldType;

/// Where one scalar value comes from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A JSONPath into the CRM payload.
    Path(Path),
    /// A constant, already of the target type.
    Const(Value),
}

/// How one scalar target value is produced: the first source that yields a
/// non-null value wins; otherwise the default, if any.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub sources: Vec<Source>,
    pub default: Option<Value>,
}

impl Rule {
    fn eval(&self, scope: Scope<'_>, ty: FieldType) -> Result<Option<Value>, String> {
        for source in &self.sources {
            match source {
                Source::Const(v) => return Ok(Some(v.clone())),
                Source::Path(p) => {
                    if let Some(v) = p.first(scope) {
                        return coerce(v, ty).map(Some);
                    }
                }
            }
        }
        Ok(self.default.clone())
    }
}

/// How one target field is produced.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// A scalar from a rule, coerced to `ty`.
    Scalar { rule: Rule, ty: FieldType },
    /// A nested object.
    Object(ObjectProgram),
    /// A list with one item per node `each` selects; `@` is that node.
    Each { each: Path, item: ObjectProgram },
    /// A list of explicitly written items; an item missing a required value is
    /// left out (so "label + source" lists skip empty sources).
    Items(Vec<ObjectProgram>),
    /// A string-to-string map of named rules; empty values are left out.
    StringMap(Vec<(String, Rule)>),
}

/// One target field.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub name: &'static str,
    pub required: bool,
    pub node: Node,
}

/// A target object: its slots in output order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ObjectProgram {
    pub slots: Vec<Slot>,
    /// True when the object has required fields: then an empty result is an
    /// error, not an absent object.
    pub has_required: bool,
}

/// A breadcrumb to the field being produced, rendered only on error.
#[derive(Clone, Copy)]
enum Trail<'a> {
    Root,
    Field(&'a Trail<'a>, &'static str),
    Index(&'a Trail<'a>, usize),
}

impl Trail<'_> {
    fn render(&self) -> String {
        match self {
            Trail::Root => String::new(),
            Trail::Field(parent, name) => {
                let p = parent.render();
                if p.is_empty() {
                    (*name).to_owned()
                } else {
                    format!("{p}.{name}")
                }
            }
            Trail::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

/// Failure inside an object: a required value absent (which an explicit list
/// item tolerates) or any other error.
enum Failure {
    Missing(ApplyError),
    Invalid(ApplyError),
}

impl Failure {
    fn into_error(self) -> ApplyError {
        match self {
            Failure::Missing(e) | Failure::Invalid(e) => e,
        }
    }
}

impl ObjectProgram {
    /// Applies the program to a whole CRM payload.
    pub(crate) fn apply_root(&self, root: &Value) -> Result<Map<String, Value>, ApplyError> {
        self.apply(Scope::root(root), &Trail::Root)
            .map(Option::unwrap_or_default)
            .map_err(Failure::into_error)
    }

    fn apply(
        &self,
        scope: Scope<'_>,
        trail: &Trail<'_>,
    ) -> Result<Option<Map<String, Value>>, Failure> {
        let mut out = Map::with_capacity(self.slots.len());
        for slot in &self.slots {
            let here = Trail::Field(trail, slot.name);
            let value = slot.node.produce(scope, &here)?;
            match value {
                Some(v) => {
                    out.insert(slot.name.to_owned(), v);
                }
                None if slot.required => {
                    return Err(Failure::Missing(ApplyError::new(
                        here.render(),
                        "required, but the mapping produced no value (add a source that the CRM fills, or a `default`)",
                    )));
                }
                None => {}
            }
        }
        Ok(if out.is_empty() && !self.has_required {
            None
        } else {
            Some(out)
        })
    }
}

impl Node {
    fn produce(&self, scope: Scope<'_>, trail: &Trail<'_>) -> Result<Option<Value>, Failure> {
        match self {
            Node::Scalar { rule, ty } => rule
                .eval(scope, *ty)
                .map_err(|m| Failure::Invalid(ApplyError::new(trail.render(), m))),
            Node::Object(program) => Ok(program.apply(scope, trail)?.map(Value::Object)),
            Node::Each { each, item } => {
                let nodes = each.all(scope);
                let mut list = Vec::with_capacity(nodes.len());
                for (i, node) in nodes.into_iter().enumerate() {
                    let at = Trail::Index(trail, i);
                    if let Some(obj) = item.apply(scope.with_item(node), &at)? {
                        list.push(Value::Object(obj));
                    }
                }
                Ok((!list.is_empty()).then_some(Value::Array(list)))
            }
            Node::Items(items) => {
                let mut list = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let at = Trail::Index(trail, i);
                    match item.apply(scope, &at) {
                        Ok(Some(obj)) => list.push(Value::Object(obj)),
                        Ok(None) | Err(Failure::Missing(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok((!list.is_empty()).then_some(Value::Array(list)))
            }
            Node::StringMap(entries) => {
                let mut map = Map::new();
                for (name, rule) in entries {
                    let v = rule.eval(scope, FieldType::String).map_err(|m| {
                        Failure::Invalid(ApplyError::new(format!("{}.{name}", trail.render()), m))
                    })?;
                    if let Some(Value::String(s)) = v
                        && !s.is_empty()
                    {
                        map.insert(name.clone(), Value::String(s));
                    }
                }
                Ok((!map.is_empty()).then_some(Value::Object(map)))
            }
        }
    }
}
