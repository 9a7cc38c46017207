//! A scalar field rule: where the value comes from and the transforms it
//! passes through, in a fixed, documented order:
//!
//! `when` → source (`path` | `const` | `template` | current value) → `jq` →
//! `trim` → `case` → `replace` → `skip_empty` → `as` → `map` / `fallback` →
//! `date` → `default` (if still no value) → conversion to the field's type.
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
    /// JSONPaths tried in order; the first non-null value wins.
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
            && !self.skip_empty
            && self.as_type.is_none()
            && self.map.is_none()
            && self.date.is_empty()
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
        let mut value = self.source(scope);
        if let Some(jq) = &self.jq {
            let input = value.as_deref().unwrap_or(&Value::Null);
            value = jq.first(input)?.map(Cow::Owned);
        }
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

    fn transform(&self, value: Cow<'_, Value>) -> Result<Option<Value>, String> {
        let mut value = value.into_owned();
        if let Value::String(s) = &mut value {
            self.edit(s);
            if self.skip_empty && s.is_empty() {
                return Ok(None);
            }
        }
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
