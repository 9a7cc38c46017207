//! Request templates: where the token, and values from earlier pipeline steps,
//! go in a CRM request.
//!
//! Placeholders: `{token}`; `{$.steps.NAME.path}` (a JSONPath into the answers
//! of earlier steps); `{@}` / `{@.path}` (the current item of a fan-out).
//!
//! Inserted values are untrusted text. In the path a value is percent-encoded
//! as exactly one segment (every byte but the RFC 3986 unreserved set), in the
//! query it is form-encoded by `url`, in a JSON body it is substituted into
//! already-parsed string values. No value can add a path segment, a query
//! parameter, a host or a JSON key.
//!
//! Encoding for the URL is not enough when the CRM puts a query value into its
//! own query language (a SOQL `WHERE`, an OData `$filter`): there a `'` would
//! end the string literal. `|soql` and `|odata` after a placeholder
//! (`{token|soql}`) escape the value for those string literals first.

use std::borrow::Cow;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

use super::error::UpstreamError;
use crate::mapping::path::{Path, Scope};

/// Everything but RFC 3986 "unreserved" is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// What a template is rendered with.
#[derive(Debug, Clone, Copy)]
pub struct Vars<'a> {
    /// The caller's token.
    pub token: &'a str,
    /// The answers so far (`$`) and the fan-out item (`@`).
    pub scope: Scope<'a>,
}

/// How a value is escaped before it is encoded for its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escape {
    /// As is.
    None,
    /// Inside a SOQL string literal: `\` and `'` get a backslash.
    Soql,
    /// Inside an OData string literal: `'` is doubled.
    OData,
}

impl Escape {
    fn apply(self, value: &str) -> Cow<'_, str> {
        match self {
            Escape::None => value.into(),
            Escape::Soql => value.replace('\\', "\\\\").replace('\'', "\\'").into(),
            Escape::OData => value.replace('\'', "''").into(),
        }
    }
}

#[derive(Debug, Clone)]
enum Source {
    Token,
    Path(Path, String),
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Value(Source, Escape),
}

/// A string with placeholders.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `{...}` is a placeholder, anything else is literal.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(open) = rest.find('{') {
            literal.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let Some(close) = after.find('}') else {
                return Err(format!("unclosed `{{` in `{text}`"));
            };
            let inner = &after[..close];
            let (name, escape) = match inner.rsplit_once('|') {
                None => (inner, Escape::None),
                Some((name, "soql")) => (name, Escape::Soql),
                Some((name, "odata")) => (name, Escape::OData),
                Some((_, other)) => {
                    return Err(format!(
                        "unknown escape `|{other}` in `{text}`; known: |soql, |odata"
                    ));
                }
            };
            let source = match name.trim() {
                "token" => Source::Token,
                p if p.starts_with(['$', '@']) => Source::Path(Path::parse(p)?, p.to_owned()),
                other => {
                    return Err(format!(
                        "unknown placeholder `{{{other}}}` in `{text}`; use {{token}}, {{$.steps.NAME...}} or {{@...}}"
                    ));
                }
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Value(source, escape));
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// The path, when the template is exactly one unescaped `{$...}`
    /// placeholder: in a JSON body that inserts the value itself, any type.
    fn whole_value(&self) -> Option<&Path> {
        match self.parts.as_slice() {
            [Part::Value(Source::Path(path, _), Escape::None)] => Some(path),
            _ => None,
        }
    }

    /// The JSONPaths the template reads, as written.
    pub fn paths(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Value(Source::Path(path, text), _) => Some((path, text.as_str())),
            _ => None,
        })
    }

    fn render_with(
        &self,
        vars: Vars<'_>,
        mut insert: impl FnMut(&str, &mut String) -> Result<(), UpstreamError>,
    ) -> Result<String, UpstreamError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Value(source, escape) => {
                    let value = match source {
                        Source::Token => Cow::Borrowed(vars.token),
                        Source::Path(path, text) => Cow::Owned(
                            path.first(vars.scope)
                                .and_then(scalar_text)
                                .ok_or_else(|| UpstreamError::MissingValue(text.clone()))?,
                        ),
                    };
                    insert(&escape.apply(&value), &mut out)?;
                }
            }
        }
        Ok(out)
    }

    /// The text with values inserted verbatim (for query values, which the
    /// URL serializer encodes, header values and JSON string values).
    pub fn render_raw(&self, vars: Vars<'_>) -> Result<String, UpstreamError> {
        self.render_with(vars, |v, out| {
            out.push_str(v);
            Ok(())
        })
    }

    /// The text with each value percent-encoded as one path segment.
    pub fn render_path(&self, vars: Vars<'_>) -> Result<String, UpstreamError> {
        self.render_with(vars, |v, out| {
            if matches!(v, "." | "..") {
                // URL parsers resolve "." and ".." (even percent-encoded) as dot segments.
                return Err(UpstreamError::Unrepresentable(
                    "a path segment cannot be `.` or `..`",
                ));
            }
            out.extend(utf8_percent_encode(v, SEGMENT));
            Ok(())
        })
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A JSON body whose string values may hold placeholders. A string that is
/// exactly one `"{$.path}"` placeholder inserts the value as it is (number,
/// object, ...), and when it has no value its key is left out, so partial
/// updates ("absent fields are not changed") pass through as such.
#[derive(Debug, Clone)]
pub enum BodyTemplate {
    /// A value without placeholders.
    Fixed(Value),
    /// A string with placeholders.
    Text(Template),
    /// A whole value from a JSONPath; absent = key left out.
    Whole(Template),
    Array(Vec<BodyTemplate>),
    Object(Vec<(String, BodyTemplate)>),
}

impl BodyTemplate {
    /// Parses the template as JSON and compiles every placeholder in it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        Self::compile(value)
    }

    fn compile(value: Value) -> Result<Self, String> {
        Ok(match value {
            Value::String(s) if s.contains('{') => {
                let t = Template::parse(&s)?;
                if t.whole_value().is_some() {
                    BodyTemplate::Whole(t)
                } else {
                    BodyTemplate::Text(t)
                }
            }
            Value::Array(a) => {
                BodyTemplate::Array(a.into_iter().map(Self::compile).collect::<Result<_, _>>()?)
            }
            Value::Object(o) => BodyTemplate::Object(
                o.into_iter()
                    .map(|(k, v)| Self::compile(v).map(|t| (k, t)))
                    .collect::<Result<_, _>>()?,
            ),
            other => BodyTemplate::Fixed(other),
        })
    }

    /// The JSONPaths the body reads.
    pub fn paths(&self) -> Vec<(&Path, &str)> {
        match self {
            BodyTemplate::Fixed(_) => Vec::new(),
            BodyTemplate::Text(t) | BodyTemplate::Whole(t) => t.paths().collect(),
            BodyTemplate::Array(a) => a.iter().flat_map(Self::paths).collect(),
            BodyTemplate::Object(o) => o.iter().flat_map(|(_, t)| t.paths()).collect(),
        }
    }

    /// The filled value; `None` for a whole-value placeholder without a value.
    fn fill(&self, vars: Vars<'_>) -> Result<Option<Value>, UpstreamError> {
        Ok(Some(match self {
            BodyTemplate::Fixed(v) => v.clone(),
            BodyTemplate::Text(t) => Value::String(t.render_raw(vars)?),
            BodyTemplate::Whole(t) => match t.whole_value().and_then(|p| p.first(vars.scope)) {
                Some(v) => v.clone(),
                None => return Ok(None),
            },
            BodyTemplate::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for t in a {
                    out.extend(t.fill(vars)?);
                }
                Value::Array(out)
            }
            BodyTemplate::Object(o) => {
                let mut out = serde_json::Map::new();
                for (k, t) in o {
                    if let Some(v) = t.fill(vars)? {
                        out.insert(k.clone(), v);
                    }
                }
                Value::Object(out)
            }
        }))
    }

    /// The body bytes with values substituted into string values.
    pub fn render(&self, vars: Vars<'_>) -> Result<Vec<u8>, UpstreamError> {
        let body = self.fill(vars)?.unwrap_or(Value::Null);
        Ok(serde_json::to_vec(&body).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars<'a>(token: &'a str, doc: &'a Value) -> Vars<'a> {
        Vars {
            token,
            scope: Scope::root(doc),
        }
    }

    #[test]
    fn path_encoding_keeps_the_token_in_one_segment() {
        let doc = json!({});
        let t = Template::parse("/clients/{token}/card").unwrap();
        assert_eq!(
            t.render_path(vars("a/b?c#d e%", &doc)).unwrap(),
            "/clients/a%2Fb%3Fc%23d%20e%25/card"
        );
        assert_eq!(
            t.render_path(vars("тест", &doc)).unwrap(),
            "/clients/%D1%82%D0%B5%D1%81%D1%82/card"
        );
        assert!(t.render_path(vars("..", &doc)).is_err());
    }

    #[test]
    fn values_from_earlier_steps_and_fan_out_items() {
        let doc = json!({"steps": {"session": {"clientId": 42, "bad": {"x": 1}}}});
        let item = json!({"id": "c/7"});
        let t = Template::parse("/clients/{$.steps.session.clientId}/companies/{@.id}").unwrap();
        let v = Vars {
            token: "t",
            scope: Scope::root(&doc).with_item(&item),
        };
        assert_eq!(t.render_path(v).unwrap(), "/clients/42/companies/c%2F7");
        let missing = Template::parse("/x/{$.steps.session.nope}").unwrap();
        assert_eq!(
            missing.render_path(v).unwrap_err(),
            UpstreamError::MissingValue("$.steps.session.nope".into())
        );
        let not_scalar = Template::parse("/x/{$.steps.session.bad}").unwrap();
        assert!(not_scalar.render_path(v).is_err());
    }

    #[test]
    fn query_language_escapes() {
        let doc = json!({});
        let soql = Template::parse("WHERE T__c = '{token|soql}'").unwrap();
        assert_eq!(
            soql.render_raw(vars(r"x' OR Name != '\", &doc)).unwrap(),
            r"WHERE T__c = 'x\' OR Name != \'\\'"
        );
        let odata = Template::parse("t eq '{token|odata}'").unwrap();
        assert_eq!(
            odata.render_raw(vars("x' or true or 'y", &doc)).unwrap(),
            "t eq 'x'' or true or ''y'"
        );
        assert!(
            Template::parse("{token|sql}")
                .unwrap_err()
                .contains("unknown escape `|sql`")
        );
    }

    #[test]
    fn unknown_placeholders_are_rejected() {
        assert!(
            Template::parse("/x/{tokn}")
                .unwrap_err()
                .contains("unknown placeholder `{tokn}`")
        );
        assert!(Template::parse("/x/{token").is_err());
        assert!(Template::parse("/x/{$.steps[}").is_err());
    }

    #[test]
    fn whole_value_placeholders_keep_types_and_drop_absent_keys() {
        let doc = json!({"input": {"name": "Anna", "bonus": 5, "tags": ["a"]}});
        let b = BodyTemplate::parse(
            r#"{"fullName": "{$.input.name}", "phone": "{$.input.phone}", "bonus": "{$.input.bonus}", "tags": "{$.input.tags}", "note": "n: {$.input.name}"}"#,
        )
        .unwrap();
        let body: Value = serde_json::from_slice(&b.render(vars("t", &doc)).unwrap()).unwrap();
        assert_eq!(
            body,
            json!({"fullName": "Anna", "bonus": 5, "tags": ["a"], "note": "n: Anna"})
        );
    }

    #[test]
    fn body_substitution_cannot_inject_json() {
        let doc = json!({});
        let b = BodyTemplate::parse(r#"{"session": "{token}", "n": 1}"#).unwrap();
        let body: Value = serde_json::from_slice(
            &b.render(vars(r#"x", "admin": true, "y": ""#, &doc))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(body["session"], r#"x", "admin": true, "y": ""#);
        assert!(body.get("admin").is_none());
    }
}
