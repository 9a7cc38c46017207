//! Conditions: `when` on a field or object, `where` on a list's items.
//!
//! Comparisons use the value's text (`1` equals `"1"`, `true` equals
//! `"true"`), because CRMs are loose about JSON types.

use serde_json::Value;

use super::jq::Jq;
use super::path::{Path, Scope};

/// A predicate over the CRM document (and current item).
#[derive(Debug)]
pub enum Condition {
    /// The path has a value that is not `null`, `false` or `""`.
    Present(Path),
    /// The path's value equals one of these (by text).
    In(Path, Vec<String>),
    /// The path's value equals none of these (by text); true when absent.
    NotIn(Path, Vec<String>),
    /// The jq expression's first output is truthy.
    Jq(Jq),
}

/// The text a scalar compares by.
pub fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some("null".into()),
        _ => None,
    }
}

fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false)) && v.as_str() != Some("")
}

impl Condition {
    /// Evaluates the condition.
    pub fn holds(&self, scope: Scope<'_>) -> Result<bool, String> {
        Ok(match self {
            Condition::Present(p) => p.first(scope).is_some_and(truthy),
            Condition::In(p, set) => p
                .first(scope)
                .and_then(key_text)
                .is_some_and(|t| set.contains(&t)),
            Condition::NotIn(p, set) => !p
                .first(scope)
                .and_then(key_text)
                .is_some_and(|t| set.contains(&t)),
            Condition::Jq(jq) => jq.first(scope.current())?.as_ref().is_some_and(truthy),
        })
    }
}
