//! A scalar field rule: where the value comes from and the transforms it
//! passes through, in a fixed, documented order:
//!
//! `when` → source (`path` | `const` | `template` | current value) → `jq` →
//! `trim` → `case` → `replace` → `skip_empty` / `null_values` → `as` →
//! `map` / `fallback` → `date` → `default` (if still no value) → conversion to
//! the field's type.
//!
//! `skip_empty` and `null_values` make a value count as absent: with a list
//! of paths (or a path selecting several nodes) the next alternative is then
//! tried, as for `null`, so a rule says "the first non-empty of these".
//!
//! A fixed order keeps each rule readable as a table; anything that needs
//! another order is one `jq` expression.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

use super::coerce::coerce;
use super::condition::{Condition, key_text};
use super::date::{DateFormat, parse_date, parse_timestamp};
use super::jq::Jq;
use super::path::{Path, Scope};
use super::template::Template;
use crate::schema::FieldType;

/// Where a value comes from.
#[derive(Debug)]
pub enum Source {
    /// JSONPaths tried in order; the first non-null value wins (the first
    /// one kept, when the rule skips empty or null-like values).
    Paths(Vec<Path>),
    /// A constant.
    Const(Value),
    /// A template over JSONPaths.
    Template(Template),
    /// The current item (in a list) or the whole document: the input of a
    /// rule that is only a `jq` expression.
    Current,
}

/// Letter case conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    Upper,
    Lower,
}

/// A value map with an optional fallback for values it does not list.
#[derive(Debug)]
pub struct ValueMap {
    pub entries: HashMap<String, Value>,
    pub fallback: Option<Value>,
}

/// A compiled scalar rule.
#[derive(Debug)]
pub struct Rule {
    pub when: Option<Condition>,
    pub source: Source,
    pub jq: Option<Jq>,
    pub trim: bool,
    pub case: Option<Case>,
    pub replace: Vec<(Regex, String)>,
    pub skip_empty: bool,
    /// Texts that mean "no value" (1C's `0001-01-01T00:00:00`, a zero GUID),
    /// compared with the value's text after the string edits.
    pub null_values: Vec<String>,
    pub as_type: Option<FieldType>,
    pub map: Option<ValueMap>,
    pub date: Vec<DateFormat>,
    /// `date` yields Unix seconds instead of `YYYY-MM-DD` (a timestamp field).
    pub date_as_timestamp: bool,
    pub default: Option<Value>,
}

impl Rule {
    /// A rule that only reads `source`.
    pub fn from_source(source: Source) -> Self {
        Self {
            when: None,
            source,
            jq: None,
            trim: false,
            case: None,
            replace: Vec::new(),
            skip_empty: false,
            null_values: Vec::new(),
            as_type: None,
            map: None,
            date: Vec::new(),
            date_as_timestamp: false,
            default: None,
        }
    }

    /// True when the rule only copies a value (the common case, kept
    /// allocation-free apart from the final conversion).
    fn is_plain(&self) -> bool {
        self.when.is_none()
            && self.jq.is_none()
            && !self.trim
            && self.case.is_none()
            && self.replace.is_empty()
            && !self.skips()
            && self.as_type.is_none()
            && self.map.is_none()
            && self.date.is_empty()
    }

    /// Whether some values count as absent, so that alternatives are tried
    /// past them.
    pub(super) fn skips(&self) -> bool {
        self.skip_empty || !self.null_values.is_empty()
    }

    /// Whether an edited value counts as no value (`skip_empty`,
    /// `null_values`).
    fn is_nothing(&self, value: &Value) -> bool {
        if self.null_values.is_empty() {
            return self.skip_empty && value.as_str() == Some("");
        }
        let text = match value {
            Value::String(s) => Cow::Borrowed(s.as_str()),
            Value::Number(_) | Value::Bool(_) => Cow::Owned(value.to_string()),
            _ => return false,
        };
        (self.skip_empty && text.is_empty()) || self.null_values.iter().any(|n| *n == *text)
    }

    /// A candidate through `jq` and the string edits; `None` when it yields
    /// no value or one that counts as none.
    pub(super) fn kept(&self, candidate: Option<Cow<'_, Value>>) -> Result<Option<Value>, String> {
        let value = match &self.jq {
            Some(jq) => jq.first(candidate.as_deref().unwrap_or(&Value::Null))?,
            None => candidate.map(Cow::into_owned),
        };
        let Some(mut value) = value else {
            return Ok(None);
        };
        if let Value::String(s) = &mut value {
            self.edit(s);
        }
        Ok((!self.is_nothing(&value)).then_some(value))
    }

    /// The first candidate kept (see [`kept`](Self::kept)) and the path it
    /// came from: every node of every path in order, then, if none is kept,
    /// what `jq` makes of no value.
    pub(super) fn first_kept<'a>(
        &'a self,
        scope: Scope<'_>,
    ) -> Result<(Option<&'a Path>, Option<Value>), String> {
        if let Source::Paths(paths) = &self.source {
            for path in paths {
                for node in path.every(scope) {
                    if let Some(v) = self.kept(Some(Cow::Borrowed(node)))? {
                        return Ok((Some(path), Some(v)));
                    }
                }
            }
            return Ok((None, self.kept(None)?));
        }
        Ok((None, self.kept(self.source(scope))?))
    }

    pub(super) fn source<'a>(&'a self, scope: Scope<'a>) -> Option<Cow<'a, Value>> {
        match &self.source {
            Source::Paths(paths) => paths.iter().find_map(|p| p.first(scope)).map(Cow::Borrowed),
            Source::Const(v) => Some(Cow::Borrowed(v)),
            Source::Template(t) => t.render(scope).map(|s| Cow::Owned(Value::String(s))),
            Source::Current => Some(Cow::Borrowed(scope.current())),
        }
    }

    /// The value for `ty`, or `None` when the rule yields nothing.
    pub fn eval(&self, scope: Scope<'_>, ty: FieldType) -> Result<Option<Value>, String> {
        if self.is_plain() {
            return match self.source(scope) {
                Some(v) => coerce(&v, ty).map(Some),
                None => Ok(self.default.clone()),
            };
        }
        if let Some(cond) = &self.when
            && !cond.holds(scope)?
        {
            return Ok(None);
        }
        let value = if self.skips() {
            self.first_kept(scope)?.1
        } else {
            self.kept(self.source(scope))?
        };
        let value = match value {
            Some(v) => self.transform(v)?,
            None => None,
        };
        match value.or_else(|| self.default.clone()) {
            Some(v) => coerce(&v, ty).map(Some),
            None => Ok(None),
        }
    }

    /// `trim`, `case` and `replace`, in that order.
    pub(super) fn edit(&self, s: &mut String) {
        if self.trim {
            let t = s.trim();
            if t.len() != s.len() {
                *s = t.to_owned();
            }
        }
        match self.case {
            Some(Case::Upper) => *s = s.to_uppercase(),
            Some(Case::Lower) => *s = s.to_lowercase(),
            None => {}
        }
        for (re, with) in &self.replace {
            if let Cow::Owned(new) = re.replace_all(s, with.as_str()) {
                *s = new;
            }
        }
    }

    /// `map`, with its `fallback` for values it does not list.
    pub(super) fn remap(&self, value: &mut Value) {
        if let Some(map) = &self.map {
            let mapped = key_text(value).and_then(|k| map.entries.get(&k));
            match (mapped, &map.fallback) {
                (Some(v), _) => *value = v.clone(),
                (None, Some(fallback)) => *value = fallback.clone(),
                (None, None) => {}
            }
        }
    }

    /// `as`, `map` and `date` on a kept value.
    fn transform(&self, mut value: Value) -> Result<Option<Value>, String> {
        if let Some(ty) = self.as_type {
            value = coerce(&value, ty)?;
        }
        self.remap(&mut value);
        if !self.date.is_empty() {
            value = if self.date_as_timestamp {
                parse_timestamp(&value, &self.date)?
            } else {
                parse_date(&value, &self.date)?
            };
        }
        Ok((!value.is_null()).then_some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(p: &str) -> Source {
        Source::Paths(vec![Path::parse(p).unwrap()])
    }

    #[test]
    fn string_transforms_then_map_then_default() {
        let mut rule = Rule::from_source(path("$.kind"));
        rule.trim = true;
        rule.case = Some(Case::Upper);
        rule.map = Some(ValueMap {
            entries: HashMap::from([
                ("INDIVIDUAL".into(), json!("0")),
                ("LEGAL".into(), json!("1")),
            ]),
            fallback: Some(json!("0")),
        });
        rule.default = Some(json!("0"));
        let eval = |doc: Value| rule.eval(Scope::root(&doc), FieldType::String).unwrap();
        assert_eq!(eval(json!({"kind": " legal "})), Some(json!("1")));
        assert_eq!(eval(json!({"kind": "partner"})), Some(json!("0")));
        assert_eq!(eval(json!({})), Some(json!("0")));
    }

    #[test]
    fn regex_replace_and_skip_empty() {
        let mut rule = Rule::from_source(path("$.phone"));
        rule.replace = vec![(Regex::new(r"[^0-9+]").unwrap(), String::new())];
        rule.skip_empty = true;
        let eval = |doc: Value| rule.eval(Scope::root(&doc), FieldType::String).unwrap();
        assert_eq!(
            eval(json!({"phone": "+7 (999) 123-45-67"})),
            Some(json!("+79991234567"))
        );
        assert_eq!(eval(json!({"phone": "n/a"})), None);
    }

    #[test]
    fn skip_empty_and_null_values_move_on_to_the_next_alternative() {
        let mut rule = Rule::from_source(Source::Paths(vec![
            Path::parse("$.phones[*].value").unwrap(),
            Path::parse("$.phone").unwrap(),
        ]));
        rule.trim = true;
        rule.skip_empty = true;
        rule.null_values = vec!["-".into(), "0".into()];
        rule.default = Some(json!("none"));
        let eval = |doc: Value| rule.eval(Scope::root(&doc), FieldType::String).unwrap();
        let doc = json!({"phones": [{"value": ""}, {"value": "  "}, {"value": "+7 1"}]});
        assert_eq!(eval(doc), Some(json!("+7 1")));
        let doc = json!({"phones": [{"value": "", "primary": true}], "phone": "+7 2"});
        assert_eq!(eval(doc), Some(json!("+7 2")));
        // A null-like value, numbers compared by their text.
        assert_eq!(
            eval(json!({"phones": [{"value": "-"}], "phone": 0})),
            Some(json!("none"))
        );
        // Without skip_empty, "" is a value and stops the search.
        rule.skip_empty = false;
        rule.null_values.clear();
        let doc = json!({"phones": [{"value": ""}], "phone": "+7 2"});
        assert_eq!(
            rule.eval(Scope::root(&doc), FieldType::String).unwrap(),
            Some(json!(""))
        );
    }

    #[test]
    fn when_gates_the_value() {
        let mut rule = Rule::from_source(path("$.inn"));
        rule.when = Some(Condition::In(
            Path::parse("$.type").unwrap(),
            vec!["LEGAL".into()],
        ));
        let eval = |doc: Value| rule.eval(Scope::root(&doc), FieldType::String).unwrap();
        assert_eq!(
            eval(json!({"type": "LEGAL", "inn": "77"})),
            Some(json!("77"))
        );
        assert_eq!(eval(json!({"type": "PERSON", "inn": "77"})), None);
    }

    #[test]
    fn jq_on_the_current_value() {
        let mut rule = Rule::from_source(Source::Current);
        rule.jq = Some(Jq::compile("[.a, .b] | join(\"-\")").unwrap());
        let doc = json!({"a": "x", "b": "y"});
        assert_eq!(
            rule.eval(Scope::root(&doc), FieldType::String).unwrap(),
            Some(json!("x-y"))
        );
    }
}
