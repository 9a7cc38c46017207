//! String templates: `"{$.lastName} {$.firstName} {$.middleName}"`.
//!
//! Placeholders are JSONPaths; a placeholder without a value is skipped
//! together with the separator before it, so a missing middle name does not
//! leave a double space or a dangling comma. `{{` and `}}` are literal braces.

use serde_json::Value;

use super::path::{Path, Scope};

/// A compiled template: `prefix`, then values joined by the text written
/// between them, then `suffix`.
#[derive(Debug, Clone)]
pub struct Template {
    prefix: String,
    /// Each placeholder with the separator written before it.
    parts: Vec<(String, Path)>,
    suffix: String,
}

impl Template {
    /// Parses `text`; every `{...}` must hold a JSONPath.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut texts = vec![String::new()];
        let mut paths = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let literal = texts.last_mut().expect("texts is never empty");
            if rest.starts_with("{{") {
                literal.push('{');
                rest = &rest[2..];
            } else if rest.starts_with("}}") {
                literal.push('}');
                rest = &rest[2..];
            } else if c == '{' {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("unclosed `{{` in template `{text}`"))?;
                paths.push(Path::parse(rest[1..end].trim())?);
                texts.push(String::new());
                rest = &rest[end + 1..];
            } else if c == '}' {
                return Err(format!(
                    "unmatched `}}` in template `{text}` (write `}}}}` for a brace)"
                ));
            } else {
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        if paths.is_empty() {
            return Err(format!(
                "template `{text}` has no {{$.path}} placeholder; use `const` for fixed text"
            ));
        }
        let suffix = texts.pop().unwrap_or_default();
        let mut texts = texts.into_iter();
        let prefix = texts.next().unwrap_or_default();
        let parts = std::iter::once(String::new())
            .chain(texts)
            .zip(paths)
            .collect();
        Ok(Self {
            prefix,
            parts,
            suffix,
        })
    }

    /// The paths the template reads.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.parts.iter().map(|(_, p)| p)
    }

    /// Renders the template; `None` when no placeholder has a value.
    pub fn render(&self, scope: Scope<'_>) -> Option<String> {
        let mut out = self.prefix.clone();
        let mut any = false;
        for (separator, path) in &self.parts {
            let Some(text) = path.first(scope).and_then(scalar_text) else {
                continue;
            };
            if text.is_empty() {
                continue;
            }
            if any {
                out.push_str(separator);
            }
            out.push_str(&text);
            any = true;
        }
        any.then(|| out + &self.suffix)
    }
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, doc: Value) -> Option<String> {
        Template::parse(t).unwrap().render(Scope::root(&doc))
    }

    #[test]
    fn skips_empty_parts_and_their_separators() {
        let t = "{$.l} {$.f} {$.m}";
        assert_eq!(
            render(t, json!({"l": "Ivanov", "f": "Ivan", "m": "Ivanovich"})).unwrap(),
            "Ivanov Ivan Ivanovich"
        );
        assert_eq!(
            render(t, json!({"l": "Ivanov", "f": "Ivan", "m": null})).unwrap(),
            "Ivanov Ivan"
        );
        assert_eq!(render(t, json!({"l": "", "f": "Ivan"})).unwrap(), "Ivan");
        assert_eq!(render(t, json!({})), None);
        assert_eq!(
            render("{$.a}, {$.b} ({$.c})", json!({"a": "A", "c": "C"})).unwrap(),
            "A (C)"
        );
        assert_eq!(render("#{$.n}", json!({"n": 5})).unwrap(), "#5");
        assert_eq!(render("{{{$.n}}}", json!({"n": 5})).unwrap(), "{5}");
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::parse("no placeholders").is_err());
        assert!(Template::parse("{$.a").is_err());
        assert!(Template::parse("{name}").is_err());
    }
}
