//! An application that tells everything, for the integrator's tools (`map`,
//! the playground): every apply error with the mapping's `line:column` of the
//! rule, the offending value and what was expected, and for each card field
//! the chain of source and transforms its value came through.
//!
//! Values appear here because these tools run on the integrator's own sample;
//! the server never builds this log (its [`ApplyError`]s stay value-free).

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use super::coerce::coerce;
use super::date::{parse_date, parse_timestamp};
use super::error::ApplyError;
use super::path::Scope;
use super::rule::{Case, Rule, Source};
use crate::diagnostics::line_col;
use crate::schema::FieldType;

/// One apply error, with where the rule is and what it met.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ExplainedError {
    /// The mapping file, as given to the loader.
    pub file: String,
    /// 1-based line of the rule's field (1 when no field is to blame).
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// The card field (`client.birthdate`, `companyList[1].id`).
    pub field: String,
    /// What went wrong (the server's own, value-free message).
    pub message: String,
    /// The value the failing step received, when there was one.
    pub value: Option<Value>,
    /// What that step accepts (the date formats tried, the integer range).
    pub expected: Option<String>,
}

/// Longest rendering of an offending value; a whole CRM subtree would
/// drown the line.
const VALUE_CHARS: usize = 200;

impl fmt::Display for ExplainedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)?;
        let value = self.value.as_ref().map(|v| {
            let text = v.to_string();
            match text.char_indices().nth(VALUE_CHARS) {
                Some((cut, _)) => format!("{}…", &text[..cut]),
                None => text,
            }
        });
        match (value, &self.expected) {
            (Some(v), Some(e)) => write!(f, " (value: {v}, expected: {e})"),
            (Some(v), None) => write!(f, " (value: {v})"),
            (None, Some(e)) => write!(f, " (expected: {e})"),
            (None, None) => Ok(()),
        }
    }
}

/// Where one card field's value came from.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldSource {
    /// The card field (`client.phone`, `companyList[0].id`).
    pub field: String,
    /// The source and transforms, e.g. `$.contacts[*] → @.value | trim`.
    pub source: String,
    /// The value the field got.
    pub value: Value,
}

/// What an explained application found.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Explained {
    /// The card, exactly as [`Mapping::apply`](super::Mapping::apply) makes
    /// it; `None` when there are errors.
    pub card: Option<Value>,
    /// Every apply error, in the order the fields were tried.
    pub errors: Vec<ExplainedError>,
    /// Each produced scalar field's source chain, in card order.
    pub sources: Vec<FieldSource>,
}

/// A logged failure before its position is resolved against the text.
#[derive(Debug)]
struct Raw {
    at: Option<u32>,
    field: String,
    message: String,
    value: Option<Value>,
    expected: Option<String>,
}

/// What an explained application logs as it walks the program.
#[derive(Debug, Default)]
pub(crate) struct Log {
    errors: Vec<Raw>,
    sources: Vec<FieldSource>,
    /// The lists and lookups the walk is inside (`$.companies[*]`), outer first.
    within: Vec<String>,
}

/// Where the log stood: to forget what a left-out list item logged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark(usize, usize);

impl Log {
    pub(crate) fn mark(&self) -> Mark {
        Mark(self.errors.len(), self.sources.len())
    }

    pub(crate) fn rewind(&mut self, mark: Mark) {
        self.errors.truncate(mark.0);
        self.sources.truncate(mark.1);
    }

    pub(crate) fn enter(&mut self, context: String) {
        self.within.push(context);
    }

    pub(crate) fn leave(&mut self) {
        self.within.pop();
    }

    fn chain(&self, rule: &Rule, scope: Scope<'_>) -> String {
        let mut out = String::new();
        for context in &self.within {
            out.push_str(context);
            out.push_str(" → ");
        }
        out.push_str(&chain(rule, scope));
        out
    }

    /// A field produced `value` through `rule`: logs its source chain.
    pub(crate) fn produced(&mut self, field: String, rule: &Rule, scope: Scope<'_>, value: &Value) {
        let source = self.chain(rule, scope);
        self.sources.push(FieldSource {
            field,
            source,
            value: value.clone(),
        });
    }

    /// A parent lookup met a parent already on its chain and dropped the
    /// link: listed with the sources, so `map --explain` and the playground
    /// show where the CRM's data has a cycle.
    pub(crate) fn cut_cycle(&mut self, field: String, key: &str, wanted: String) {
        let source =
            format!("parent cycle: no element whose {key} = this id is taken again; link dropped");
        self.sources.push(FieldSource {
            field,
            source,
            value: Value::String(wanted),
        });
    }

    /// Logs a failure once (a nested object's failure reaches each
    /// enclosing field on its way up; the innermost, logged first, is kept).
    /// `at` is the byte offset of the field's rule; `rule`, the scalar rule
    /// that failed (and whether for want of a value), is replayed for the
    /// value and what was expected.
    pub(crate) fn failed(
        &mut self,
        at: Option<u32>,
        error: &ApplyError,
        rule: Option<((&Rule, FieldType), bool)>,
        scope: Scope<'_>,
    ) {
        let seen = self
            .errors
            .iter()
            .any(|e| e.field == error.field && e.message == error.message);
        if seen {
            return;
        }
        let (value, expected) = match rule {
            Some(((rule, _), true)) => (None, Some(wanted(rule))),
            Some(((rule, ty), false)) => diagnose(rule, scope, ty),
            None => (None, None),
        };
        self.errors.push(Raw {
            at,
            field: error.field.clone(),
            message: error.message.clone(),
            value,
            expected,
        });
    }

    /// The explanation, with positions resolved in the mapping's `text`.
    pub(crate) fn finish(self, file: &str, text: &str, card: Option<Value>) -> Explained {
        let errors: Vec<ExplainedError> = self
            .errors
            .into_iter()
            .map(|raw| {
                let (line, column) = raw.at.map_or((1, 1), |at| line_col(text, at as usize));
                ExplainedError {
                    file: file.to_owned(),
                    line,
                    column,
                    field: raw.field,
                    message: raw.message,
                    value: raw.value,
                    expected: raw.expected,
                }
            })
            .collect();
        Explained {
            card: if errors.is_empty() { card } else { None },
            errors,
            sources: self.sources,
        }
    }
}

/// The paths a rule reads, for "expected a value from …".
fn wanted(rule: &Rule) -> String {
    match &rule.source {
        Source::Paths(paths) if !paths.is_empty() => format!(
            "a value at {}",
            paths
                .iter()
                .map(|p| p.text())
                .collect::<Vec<_>>()
                .join(" or ")
        ),
        _ => "a value".into(),
    }
}

/// The rule as a chain of steps, with the path that matched in `scope`.
fn chain(rule: &Rule, scope: Scope<'_>) -> String {
    let mut steps: Vec<String> = Vec::new();
    let found = rule.source(scope).is_some();
    match &rule.source {
        Source::Paths(_) if rule.skips() => {
            if let Ok((Some(p), _)) = rule.first_kept(scope) {
                steps.push(p.text().to_owned());
            }
        }
        Source::Paths(paths) => {
            if let Some(p) = paths.iter().find(|p| p.first(scope).is_some()) {
                steps.push(p.text().to_owned());
            }
        }
        Source::Const(v) => steps.push(format!("const {v}")),
        Source::Template(t) => steps.push(format!(
            "template({})",
            t.paths().map(|p| p.text()).collect::<Vec<_>>().join(", ")
        )),
        Source::Current => steps.push(if scope.item.is_some() { "@" } else { "$" }.into()),
    }
    if let Some(jq) = &rule.jq {
        steps.push(format!("jq `{}`", jq.code()));
    }
    if found || rule.jq.is_some() {
        if rule.trim {
            steps.push("trim".into());
        }
        match rule.case {
            Some(Case::Upper) => steps.push("case upper".into()),
            Some(Case::Lower) => steps.push("case lower".into()),
            None => {}
        }
        for (re, with) in &rule.replace {
            steps.push(format!("replace /{}/ → \"{with}\"", re.as_str()));
        }
        if rule.skip_empty {
            steps.push("skip_empty".into());
        }
        if !rule.null_values.is_empty() {
            steps.push(format!("null_values {:?}", rule.null_values));
        }
        if let Some(ty) = rule.as_type {
            steps.push(format!("as {}", ty.describe()));
        }
        if rule.map.is_some() {
            steps.push("map".into());
        }
        if !rule.date.is_empty() {
            steps.push(format!("date {}", formats(rule)));
        }
    }
    if let Some(d) = &rule.default
        && (steps.is_empty() || !found)
    {
        steps.push(format!("default {d}"));
    }
    steps.join(" | ")
}

fn formats(rule: &Rule) -> String {
    let names: Vec<&str> = rule.date.iter().map(|f| f.name()).collect();
    format!("[{}]", names.join(", "))
}

/// Replays a failed rule step by step: the value the failing step received
/// and what that step accepts.
fn diagnose(rule: &Rule, scope: Scope<'_>, ty: FieldType) -> (Option<Value>, Option<String>) {
    if let Some(cond) = &rule.when
        && cond.holds(scope).is_err()
    {
        return (None, Some("a `when` condition that evaluates".into()));
    }
    if rule.skips() {
        return match rule.first_kept(scope) {
            Ok((_, value)) => finish(rule, value, ty),
            Err(_) => (None, Some("an input the jq expression accepts".into())),
        };
    }
    let mut value = rule.source(scope).map(Cow::into_owned);
    if let Some(jq) = &rule.jq {
        let input = value.take().unwrap_or(Value::Null);
        match jq.first(&input) {
            Ok(v) => value = v,
            Err(_) => {
                return (
                    Some(input),
                    Some("an input the jq expression accepts".into()),
                );
            }
        }
    }
    if let Some(Value::String(s)) = value.as_mut() {
        rule.edit(s);
    }
    finish(rule, value, ty)
}

/// [`diagnose`] from the value the string edits left: `as`, `map`, `date`,
/// `default` and the field's type.
fn finish(rule: &Rule, mut value: Option<Value>, ty: FieldType) -> (Option<Value>, Option<String>) {
    if let Some(v) = value.as_mut() {
        if let Some(as_ty) = rule.as_type {
            match coerce(v, as_ty) {
                Ok(c) => *v = c,
                Err(_) => return (value, Some(expected(as_ty))),
            }
        }
        rule.remap(v);
        if !rule.date.is_empty() {
            let parsed = if rule.date_as_timestamp {
                parse_timestamp(v, &rule.date)
            } else {
                parse_date(v, &rule.date)
            };
            match parsed {
                Ok(d) => *v = d,
                Err(_) => {
                    return (
                        value,
                        Some(format!("a date in one of the formats {}", formats(rule))),
                    );
                }
            }
        }
    }
    match value
        .filter(|v| !v.is_null())
        .or_else(|| rule.default.clone())
    {
        Some(v) if coerce(&v, ty).is_err() => (Some(v), Some(expected(ty))),
        other => (other, None),
    }
}

/// What a field type accepts, said fully (the server's messages only name
/// the type).
fn expected(ty: FieldType) -> String {
    match ty {
        FieldType::Integer => format!(
            "an integer from {} to {} (a number or a string of digits)",
            i64::MIN,
            i64::MAX
        ),
        FieldType::Number => "a number, or a string holding one".into(),
        FieldType::Boolean => "true/false, 1/0, yes/no or y/n".into(),
        FieldType::Date => {
            "a date YYYY-MM-DD, optionally with an ISO time (add a `date` format for other forms)"
                .into()
        }
        FieldType::Timestamp => {
            "Unix seconds as a whole number (add a `date` format for other forms)".into()
        }
        FieldType::String => "a string, number or boolean".into(),
        FieldType::StringList => "a string or a list of strings".into(),
        other => other.describe().to_string(),
    }
}

#[cfg(test)]
mod tests;
