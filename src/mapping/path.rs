//! JSONPath sources (RFC 9535, via `serde_json_path`), absolute or relative.
//!
//! RFC 9535 only knows `$` (the document). Inside a collection the mapping also
//! needs "the current item", so a path written `@...` is evaluated against the
//! item instead; the rest of the syntax is pure RFC 9535.

use serde_json::Value;
use serde_json_path::JsonPath;

/// The values a source reads from: the whole CRM document and, inside a
/// collection, the current item.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The whole CRM payload (`$`).
    pub root: &'a Value,
    /// The current collection item (`@`), if any.
    pub item: Option<&'a Value>,
}

impl<'a> Scope<'a> {
    /// The scope of a whole document.
    pub fn root(root: &'a Value) -> Self {
        Self { root, item: None }
    }

    /// The current item inside a list, else the whole document: the input of
    /// jq expressions.
    pub fn current(&self) -> &'a Value {
        self.item.unwrap_or(self.root)
    }

    /// The same document with `item` as the current item.
    pub fn with_item(self, item: &'a Value) -> Self {
        Self {
            root: self.root,
            item: Some(item),
        }
    }
}

/// One step of a plain path.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(i64),
}

/// A compiled JSONPath. Most mapping paths are plain chains of names and
/// indices (`$.client.lastName`, `@.phones[0]`); those are walked directly,
/// without the general evaluator's node lists, which is most of the cost of
/// applying a mapping. Everything else goes through `serde_json_path`.
#[derive(Debug, Clone)]
pub struct Path {
    /// The path as written in the mapping (for `map --explain`'s source chains).
    text: Box<str>,
    relative: bool,
    path: JsonPath,
    plain: Option<Vec<Step>>,
}

/// The steps of a plain path (`$` then `.name`, `['name']` or `[n]` only).
fn plain_steps(rfc: &str) -> Option<Vec<Step>> {
    let mut rest = rfc.strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            let name = &after[..end];
            if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                return None;
            }
            steps.push(Step::Key(name.to_owned()));
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("['") {
            let end = after.find('\'')?;
            let name = &after[..end];
            if name.contains('\\') {
                return None;
            }
            steps.push(Step::Key(name.to_owned()));
            rest = after[end + 1..].strip_prefix(']')?;
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let index: i64 = after[..end].parse().ok()?;
            steps.push(Step::Index(index));
            rest = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

fn walk<'a>(mut v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    for step in steps {
        v = match (step, v) {
            (Step::Key(k), Value::Object(o)) => o.get(k)?,
            (Step::Index(i), Value::Array(a)) => {
                let i = if *i < 0 {
                    a.len().checked_sub(i.unsigned_abs() as usize)?
                } else {
                    *i as usize
                };
                a.get(i)?
            }
            _ => return None,
        };
    }
    Some(v)
}

impl Path {
    /// Parses `$...` (absolute) or `@...` (relative to the current item).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (relative, rfc) = match text.as_bytes().first() {
            Some(b'$') => (false, text.to_owned()),
            Some(b'@') => (true, format!("${}", &text[1..])),
            _ => {
                return Err(format!(
                    "`{text}` is not a JSONPath: it must start with `$` (the CRM document) or `@` (the current item)"
                ));
            }
        };
        let path = JsonPath::parse(&rfc).map_err(|e| format!("invalid JSONPath `{text}`: {e}"))?;
        let plain = plain_steps(&rfc);
        Ok(Self {
            text: text.into(),
            relative,
            path,
            plain,
        })
    }

    /// The path as written in the mapping.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// True when the path reads from the current item.
    pub fn is_relative(&self) -> bool {
        self.relative
    }

    fn base<'a>(&self, scope: Scope<'a>) -> Option<&'a Value> {
        if self.relative {
            scope.item
        } else {
            Some(scope.root)
        }
    }

    /// The first node the path selects that is not JSON `null`.
    pub fn first<'a>(&self, scope: Scope<'a>) -> Option<&'a Value> {
        let base = self.base(scope)?;
        match &self.plain {
            Some(steps) => walk(base, steps).filter(|v| !v.is_null()),
            None => self
                .path
                .query(base)
                .all()
                .into_iter()
                .find(|v| !v.is_null()),
        }
    }

    /// Every non-null node the path selects, in order (without spreading an
    /// array: the candidates of a fallback, where `first` takes the first).
    pub fn every<'a>(&self, scope: Scope<'a>) -> Vec<&'a Value> {
        let Some(base) = self.base(scope) else {
            return Vec::new();
        };
        match &self.plain {
            Some(steps) => walk(base, steps)
                .filter(|v| !v.is_null())
                .into_iter()
                .collect(),
            None => {
                let mut nodes = self.path.query(base).all();
                nodes.retain(|v| !v.is_null());
                nodes
            }
        }
    }

    /// Every node the path selects. A path that selects one array yields that
    /// array's elements, so `$.companies` and `$.companies[*]` mean the same.
    pub fn all<'a>(&self, scope: Scope<'a>) -> Vec<&'a Value> {
        let Some(base) = self.base(scope) else {
            return Vec::new();
        };
        let nodes = self.path.query(base).all();
        match nodes.as_slice() {
            [Value::Array(items)] => items.iter().collect(),
            _ => nodes.into_iter().filter(|v| !v.is_null()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn absolute_and_relative_paths() {
        let doc = json!({"a": {"b": 1}, "items": [{"x": null}, {"x": 2}]});
        let abs = Path::parse("$.a.b").unwrap();
        assert_eq!(abs.first(Scope::root(&doc)), Some(&json!(1)));
        let rel = Path::parse("@.x").unwrap();
        let item = &doc["items"][1];
        assert_eq!(
            rel.first(Scope::root(&doc).with_item(item)),
            Some(&json!(2))
        );
        assert_eq!(rel.first(Scope::root(&doc)), None);
    }

    #[test]
    fn nulls_are_skipped_and_arrays_spread() {
        let doc = json!({"items": [1, 2], "n": null});
        assert_eq!(Path::parse("$.n").unwrap().first(Scope::root(&doc)), None);
        assert_eq!(
            Path::parse("$.items").unwrap().all(Scope::root(&doc)).len(),
            2
        );
        assert_eq!(
            Path::parse("$.items[*]")
                .unwrap()
                .all(Scope::root(&doc))
                .len(),
            2
        );
    }

    #[test]
    fn plain_paths_agree_with_the_general_evaluator() {
        let doc = json!({"a": {"b c": [10, {"d": 20}], "e_1": null}, "arr": [1, 2, 3]});
        for text in [
            "$.a",
            "$['a']['b c'][1].d",
            "$.arr[-1]",
            "$.arr[0]",
            "$.a.e_1",
            "$.missing.x",
            "$.arr[9]",
        ] {
            let p = Path::parse(text).unwrap();
            assert!(p.plain.is_some(), "{text} is plain");
            let general = p.path.query(&doc).all().into_iter().find(|v| !v.is_null());
            assert_eq!(p.first(Scope::root(&doc)), general, "{text}");
        }
        for text in [
            "$.arr[*]",
            "$..d",
            "$.arr[0:2]",
            "$[?@.b]",
            "$.a['b c', 'x']",
        ] {
            assert!(
                Path::parse(text).unwrap().plain.is_none(),
                "{text} is not plain"
            );
        }
    }

    #[test]
    fn rejects_non_paths() {
        assert!(Path::parse("client.id").is_err());
        assert!(Path::parse("$[").is_err());
    }
}
