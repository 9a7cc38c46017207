//! Request templates: where the token goes in the CRM request.
//!
//! The token is untrusted text. In the path it is percent-encoded as exactly
//! one segment (every byte but the RFC 3986 unreserved set), in the query it is
//! form-encoded by `url`, in a JSON body it is substituted into already-parsed
//! string values. No token can add a path segment, a query parameter, a host
//! or a JSON key.
//!
//! Encoding for the URL is not enough when the CRM puts a query value into its
//! own query language (a SOQL `WHERE`, an OData `$filter`): there a `'` in the
//! token would end the string literal. `{token|soql}` and `{token|odata}` escape
//! the token for those string literals first.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;

/// Everything but RFC 3986 "unreserved" is encoded in a path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The placeholders a template may use.
const PLACEHOLDERS: &[&str] = &["token"];

/// How the token is escaped before it is encoded for its place.
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
    fn apply<'a>(self, token: &'a str) -> std::borrow::Cow<'a, str> {
        match self {
            Escape::None => token.into(),
            Escape::Soql => token.replace('\\', "\\\\").replace('\'', "\\'").into(),
            Escape::OData => token.replace('\'', "''").into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Token(Escape),
}

/// A string with `{token}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// Parses `text`; `{name}` is a placeholder, anything else is literal.
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
            let (name, escape) = match inner.split_once('|') {
                None => (inner, Escape::None),
                Some((name, "soql")) => (name, Escape::Soql),
                Some((name, "odata")) => (name, Escape::OData),
                Some((_, other)) => {
                    return Err(format!(
                        "unknown escape `|{other}` in `{text}`; known: |soql, |odata"
                    ));
                }
            };
            if name != "token" {
                return Err(format!(
                    "unknown placeholder `{{{name}}}` in `{text}`; known: {}",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(Part::Token(escape));
            rest = &after[close + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// True when the template uses the token.
    pub fn uses_token(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Token(_)))
    }

    /// The text with the token inserted as `encode` renders it.
    fn render_with(&self, token: &str, encode: impl Fn(&str, &mut String)) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Token(escape) => encode(&escape.apply(token), &mut out),
            }
        }
        out
    }

    /// The text with the token inserted verbatim (for query values, which the
    /// URL serializer encodes, and JSON string values).
    pub fn render_raw(&self, token: &str) -> String {
        self.render_with(token, |t, out| out.push_str(t))
    }

    /// The text with the token percent-encoded as one path segment.
    pub fn render_path(&self, token: &str) -> String {
        self.render_with(token, |t, out| out.extend(utf8_percent_encode(t, SEGMENT)))
    }
}

/// A JSON body whose string values may hold placeholders.
#[derive(Debug, Clone)]
pub struct BodyTemplate {
    value: Value,
}

impl BodyTemplate {
    /// Parses the template as JSON and checks every placeholder in it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        fn check(v: &Value) -> Result<(), String> {
            match v {
                Value::String(s) => Template::parse(s).map(|_| ()),
                Value::Array(a) => a.iter().try_for_each(check),
                Value::Object(o) => o.values().try_for_each(check),
                _ => Ok(()),
            }
        }
        check(&value)?;
        Ok(Self { value })
    }

    /// The body bytes with the token substituted into string values.
    pub fn render(&self, token: &str) -> Vec<u8> {
        fn fill(v: &Value, token: &str) -> Value {
            match v {
                Value::String(s) if s.contains('{') => match Template::parse(s) {
                    Ok(t) => Value::String(t.render_raw(token)),
                    Err(_) => v.clone(),
                },
                Value::Array(a) => Value::Array(a.iter().map(|x| fill(x, token)).collect()),
                Value::Object(o) => {
                    Value::Object(o.iter().map(|(k, x)| (k.clone(), fill(x, token))).collect())
                }
                other => other.clone(),
            }
        }
        serde_json::to_vec(&fill(&self.value, token)).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_encoding_keeps_the_token_in_one_segment() {
        let t = Template::parse("/clients/{token}/card").unwrap();
        assert_eq!(
            t.render_path("a/b?c#d e%"),
            "/clients/a%2Fb%3Fc%23d%20e%25/card"
        );
        assert_eq!(
            t.render_path("тест"),
            "/clients/%D1%82%D0%B5%D1%81%D1%82/card"
        );
    }

    #[test]
    fn query_language_escapes() {
        let soql = Template::parse("WHERE T__c = '{token|soql}'").unwrap();
        assert_eq!(
            soql.render_raw(r"x' OR Name != '\"),
            r"WHERE T__c = 'x\' OR Name != \'\\'"
        );
        let odata = Template::parse("t eq '{token|odata}'").unwrap();
        assert_eq!(
            odata.render_raw("x' or true or 'y"),
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
    }

    #[test]
    fn body_substitution_cannot_inject_json() {
        let b = BodyTemplate::parse(r#"{"session": "{token}", "n": 1}"#).unwrap();
        let body: Value =
            serde_json::from_slice(&b.render(r#"x", "admin": true, "y": ""#)).unwrap();
        assert_eq!(body["session"], r#"x", "admin": true, "y": ""#);
        assert!(body.get("admin").is_none());
    }
}
