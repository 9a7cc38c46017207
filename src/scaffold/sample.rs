//! A CRM sample seen as the scaffold needs it: every scalar leaf with the path
//! that reaches it, and every array of objects, walked once.
//!
//! Only the first element of an array is walked: a draft reads "the first
//! phone", and a sample's later elements repeat the first one's shape.

use serde_json::Value;

/// One step of a path into the sample.
#[derive(Debug, Clone, PartialEq)]
pub enum Seg {
    Key(String),
    /// The first element of an array.
    First,
}

/// A value of the sample and where it is.
#[derive(Debug, Clone)]
pub struct Found {
    pub segs: Vec<Seg>,
    pub value: Value,
}

/// A scalar leaf.
pub type Leaf = Found;
/// An array whose first element is an object (a candidate list); `value`
/// is that first element.
pub type Array = Found;
/// An object reached by keys (a candidate single company or branch).
pub type Object = Found;

/// Everything found in one walk.
#[derive(Debug, Default)]
pub struct Sample {
    pub leaves: Vec<Leaf>,
    pub arrays: Vec<Array>,
    pub objects: Vec<Object>,
}

impl Sample {
    /// Walks `value` from its root.
    pub fn of(value: &Value) -> Self {
        let mut sample = Sample::default();
        sample.walk(value, &mut Vec::new());
        sample
    }

    fn walk(&mut self, value: &Value, at: &mut Vec<Seg>) {
        match value {
            Value::Object(map) => {
                if !at.is_empty() {
                    self.objects.push(found(at, value));
                }
                for (k, v) in map {
                    at.push(Seg::Key(k.clone()));
                    self.walk(v, at);
                    at.pop();
                }
            }
            Value::Array(items) => {
                let Some(first) = items.first() else { return };
                if first.is_object() {
                    self.arrays.push(found(at, first));
                }
                at.push(Seg::First);
                self.walk(first, at);
                at.pop();
            }
            Value::Null => {}
            scalar => self.leaves.push(found(at, scalar)),
        }
    }
}

fn found(at: &[Seg], value: &Value) -> Found {
    Found {
        segs: at.to_vec(),
        value: value.clone(),
    }
}

/// The keys along `segs`, outermost first.
pub fn keys(segs: &[Seg]) -> impl Iterator<Item = &str> {
    segs.iter().filter_map(|s| match s {
        Seg::Key(k) => Some(k.as_str()),
        Seg::First => None,
    })
}

/// A key as the scaffold compares names: lower case, letters and digits
/// only, trailing digits dropped (`LAST_NAME` = `lastName` = `lastname`,
/// `emailaddress1` = `emailAddress`).
pub fn normalize(key: &str) -> String {
    let s: String = key
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric())
        .collect();
    s.trim_end_matches(|c: char| c.is_ascii_digit()).to_owned()
}

/// Keys that say nothing of their content (`{"type": "PHONE", "value": …}`):
/// such a leaf is named by its parent's key instead.
const GENERIC: &[&str] = &["value", "val", "text", "values", "data", "v"];

/// The name a leaf is known by: its key, or its parent's for generic keys.
pub fn leaf_name(segs: &[Seg]) -> String {
    let keys: Vec<&str> = keys(segs).collect();
    match keys.as_slice() {
        [.., parent, last] if GENERIC.contains(&normalize(last).as_str()) => normalize(parent),
        [.., last] => normalize(last),
        [] => String::new(),
    }
}

/// The JSONPath of `segs` from `root` (`$` or `@`), in RFC 9535 syntax:
/// shorthand for plain ASCII names, brackets for the rest.
pub fn jsonpath(root: char, segs: &[Seg]) -> String {
    render(root.to_string(), segs, |k| {
        format!("['{}']", k.replace('\\', "\\\\").replace('\'', "\\'"))
    })
}

/// The jq path of `segs` from the document's root (`.a.b[0]`).
pub fn jq_path(segs: &[Seg]) -> String {
    let out = render(String::new(), segs, |k| {
        format!(".[{}]", serde_json::Value::String(k.to_owned()))
    });
    if out.is_empty() { ".".into() } else { out }
}

/// `segs` appended to `out`: `[0]` for a first element, `.name` for a
/// plain name, `quoted(name)` for any other.
fn render(mut out: String, segs: &[Seg], quoted: impl Fn(&str) -> String) -> String {
    for s in segs {
        match s {
            Seg::First => out.push_str("[0]"),
            Seg::Key(k) if is_plain(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Key(k) => out.push_str(&quoted(k)),
        }
    }
    out
}

fn is_plain(key: &str) -> bool {
    let mut chars = key.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
