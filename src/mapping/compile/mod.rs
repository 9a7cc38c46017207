//! Compiles a mapping file (TOML) into a [`program`](super::program), checking
//! it against the target schema.
//!
//! Every mistake is reported to the shared [`Diagnostics`] collector with its
//! span and the target field, and the compiler keeps going so one run shows
//! all of them: an integrator fixes a file in one pass, not one error at a
//! time.

use std::collections::HashMap;
use std::ops::Range;

use regex::Regex;
use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::coerce::{coerce, kind};
use super::condition::{Condition, key_text};
use super::date::DateFormat;
use super::jq::Jq;
use super::path::Path;
use super::program::{ListPart, Lookup, Node, ObjectProgram, Slot};
use super::rule::{Case, Rule, Source, ValueMap};
use super::template::Template;

mod object;
mod rule;
mod values;
use crate::diagnostics::{Diagnostics, LoadError};
use crate::schema::{ApiVersion, FieldType, ObjectSchema, nearest};

/// The keys of a scalar rule that change the value it found.
const TRANSFORM_KEYS: &[&str] = &[
    "jq",
    "trim",
    "case",
    "replace",
    "skip_empty",
    "null_values",
    "as",
    "map",
    "date",
];
/// The keys a scalar rule table may hold besides [`TRANSFORM_KEYS`].
const RULE_KEYS: &[&str] = &["path", "const", "template", "default", "when", "fallback"];
/// The keys of a list part built from a CRM array (or an object's entries).
const EACH_KEYS: &[&str] = &["each", "entries", "item", "where"];
/// The keys of a condition table.
const CONDITION_KEYS: &[&str] = &["path", "equals", "not_equals", "in", "jq"];
/// The keys of a parent lookup.
const LOOKUP_KEYS: &[&str] = &["lookup", "key", "match"];
/// The keys of the optional `[meta]` table.
const META_KEYS: &[&str] = &["name", "description", "crm", "notes"];

/// What the compiler targets.
#[derive(Debug, Clone)]
pub struct Options {
    /// Fields newer than this version are dropped.
    pub version: ApiVersion,
    /// Fields kept even when newer than `version` (a front may derive older
    /// fields from them and drop them itself).
    pub keep: Vec<&'static str>,
}

/// Compiles `text` (the content of `file`) against `schema`.
pub(crate) fn compile(
    file: &str,
    text: &str,
    schema: &'static ObjectSchema,
    options: &Options,
) -> Result<ObjectProgram, LoadError> {
    let mut c = Compiler {
        options,
        diagnostics: Diagnostics::new(file, text),
        uses_jq: false,
        null_values: Vec::new(),
    };
    let program = match DeTable::parse(text) {
        Ok(doc) => {
            let span = doc.span();
            Some(c.root(doc.get_ref(), span, schema))
        }
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            c.error(span, "", format!("not valid TOML: {}", e.message()));
            None
        }
    };
    match program {
        Some(mut p) if c.diagnostics.is_empty() => {
            p.uses_jq = c.uses_jq;
            Ok(p)
        }
        _ => Err(c.diagnostics.into_error()),
    }
}

struct Compiler<'a> {
    options: &'a Options,
    diagnostics: Diagnostics<'a>,
    /// Whether any rule or condition is a jq expression.
    uses_jq: bool,
    /// The mapping's top-level `null_values`: each scalar rule's unless it
    /// has its own.
    null_values: Vec<String>,
}

/// Where a rule or an object stands in the mapping: its label in
/// diagnostics (`client.branch.id`, empty at the root) and whether it is
/// inside a list's `item`, where `@` paths read the item. The two travel
/// together through every step of the compiler, so they are one copied value.
#[derive(Clone, Copy)]
struct Place<'a> {
    label: &'a str,
    in_item: bool,
}

impl Place<'_> {
    /// Under `label`, reading an item (a list's `item`, a lookup's candidate).
    fn item(label: &str) -> Place<'_> {
        Place {
            label,
            in_item: true,
        }
    }

    /// The same standing under another label.
    fn named(self, label: &str) -> Place<'_> {
        Place {
            label,
            in_item: self.in_item,
        }
    }
}

fn join(label: &str, name: &str) -> String {
    if label.is_empty() {
        name.to_owned()
    } else {
        format!("{label}.{name}")
    }
}

fn hint(name: &str, candidates: &[&str]) -> String {
    match nearest(name, candidates.iter().copied()) {
        Some(n) => format!("; did you mean `{n}`?"),
        None => format!("; expected one of: {}", candidates.join(", ")),
    }
}

type Entry<'v, 'i> = (
    &'v Spanned<std::borrow::Cow<'i, str>>,
    &'v Spanned<DeValue<'i>>,
);

impl Compiler<'_> {
    fn error(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        self.diagnostics.report(span, field, message);
    }

    fn unknown_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], what: &str, label: &str) {
        for (k, _) in table.iter() {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                let msg = format!("unknown key `{key}` in {what}{}", hint(key, allowed));
                self.error(k.span(), label, msg);
            }
        }
    }
}

/// The array an `each` path iterates: the path without its last selector
/// (`$.orders[*]` → `$.orders`, `@.items[?@.qty > 0]` → `@.items`), or the
/// path itself when it names the array (`$.orders`).
fn array_of(each: &str) -> Option<Path> {
    let parent = if let Some(rest) = each.strip_suffix(".*") {
        rest
    } else if each.ends_with(']') {
        &each[..each.rfind('[')?]
    } else {
        return None;
    };
    Path::parse(parent).ok()
}

/// A TOML value as JSON (TOML dates become their RFC 3339 text).
pub(crate) fn to_json(value: &DeValue<'_>) -> Value {
    match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix()).map_or(Value::Null, Value::from)
        }
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(a) => Value::Array(a.iter().map(|v| to_json(v.get_ref())).collect()),
        DeValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), to_json(v.get_ref())))
                .collect(),
        ),
    }
}
