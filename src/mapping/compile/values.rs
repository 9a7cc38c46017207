//! Compiling the small values rules are made of: JSONPaths, typed
//! constants, strings, choices, booleans and conditions.

use super::*;

impl Compiler<'_> {
    pub(super) fn path(&mut self, text: &str, span: Range<usize>, at: Place<'_>) -> Option<Path> {
        match Path::parse(text) {
            Ok(p) if p.is_relative() && !at.in_item => {
                self.error(span, at.label, format!("`{text}` reads the current item (`@`), but this field is not inside a list's `item`"));
                None
            }
            Ok(p) => Some(p),
            Err(msg) => {
                let msg = if text.starts_with(['$', '@']) {
                    msg
                } else {
                    format!("{msg}; for a constant string write {{ const = \"{text}\" }}")
                };
                self.error(span, at.label, msg);
                None
            }
        }
    }

    pub(super) fn paths(&mut self, value: &Spanned<DeValue<'_>>, at: Place<'_>) -> Vec<Path> {
        let label = at.label;
        match value.get_ref() {
            DeValue::String(s) => self.path(s, value.span(), at).into_iter().collect(),
            DeValue::Array(list) => {
                let mut out = Vec::new();
                for v in list.iter() {
                    match v.get_ref() {
                        DeValue::String(s) => out.extend(self.path(s, v.span(), at)),
                        other => self.error(
                            v.span(),
                            label,
                            format!(
                                "a source list holds JSONPath strings, got {}",
                                other.type_str()
                            ),
                        ),
                    }
                }
                out
            }
            other => {
                self.error(
                    value.span(),
                    label,
                    format!(
                        "`path` must be a JSONPath string or a list of them, got {}",
                        other.type_str()
                    ),
                );
                Vec::new()
            }
        }
    }

    /// A constant of the field's type (checked now, so a wrong type is a load
    /// error rather than a failed lookup).
    pub(super) fn typed_constant(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        ty: FieldType,
        label: &str,
        what: &str,
    ) -> Option<Value> {
        let json = to_json(value.get_ref());
        match coerce(&json, ty) {
            Ok(v) => Some(v),
            Err(_) => {
                let msg = format!(
                    "{what} is {}, but the field takes {}",
                    kind(&json),
                    ty.describe()
                );
                self.error(value.span(), label, msg);
                None
            }
        }
    }

    pub(super) fn string(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        label: &str,
        key: &str,
    ) -> Option<String> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.error(
                    value.span(),
                    label,
                    format!("`{key}` must be a string, got {}", other.type_str()),
                );
                None
            }
        }
    }

    /// One of a fixed set of string values, e.g. `case = "upper"`.
    pub(super) fn choice<T: Copy>(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        label: &str,
        key: &str,
        options: &[(&str, T)],
    ) -> Option<T> {
        let text = self.string(value, label, key)?;
        let found = options
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, v)| *v);
        if found.is_none() {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            let msg = format!("`{key}` is {}, got \"{text}\"", names.join(" or "));
            self.error(value.span(), label, msg);
        }
        found
    }

    pub(super) fn boolean(&mut self, value: &Spanned<DeValue<'_>>, label: &str, key: &str) -> bool {
        match value.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                self.error(
                    value.span(),
                    label,
                    format!("`{key}` must be true or false, got {}", other.type_str()),
                );
                false
            }
        }
    }

    /// `when` / `where`: `"$.path"` (present), or a table with `path` and
    /// `equals` / `not_equals` / `in`, or `{ jq = "..." }`.
    pub(super) fn condition(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        at: Place<'_>,
    ) -> Option<Condition> {
        let label = at.label;
        match value.get_ref() {
            DeValue::String(s) => self.path(s, value.span(), at).map(Condition::Present),
            DeValue::Table(t) => {
                self.unknown_keys(t, CONDITION_KEYS, "a condition", label);
                if let Some(code) = t.get("jq") {
                    let code = self.string(code, label, "jq")?;
                    return match Jq::compile(&code) {
                        Ok(jq) => {
                            self.uses_jq = true;
                            Some(Condition::Jq(jq))
                        }
                        Err(msg) => {
                            self.error(value.span(), label, msg);
                            None
                        }
                    };
                }
                let Some(p) = t.get("path") else {
                    self.error(
                        value.span(),
                        label,
                        "a condition needs `path` (with `equals`, `not_equals` or `in`) or `jq`",
                    );
                    return None;
                };
                let path_text = self.string(p, label, "path")?;
                let path = self.path(&path_text, p.span(), at)?;
                let texts = |c: &mut Self, v: &Spanned<DeValue<'_>>| -> Vec<String> {
                    let values = match to_json(v.get_ref()) {
                        Value::Array(a) => a,
                        single => vec![single],
                    };
                    values
                        .iter()
                        .filter_map(|x| {
                            let t = key_text(x);
                            if t.is_none() {
                                c.error(
                                    v.span(),
                                    label,
                                    "compare with scalars (strings, numbers, booleans)",
                                );
                            }
                            t
                        })
                        .collect()
                };
                let chosen = ["equals", "not_equals", "in"]
                    .iter()
                    .filter(|k| t.contains_key(**k))
                    .count();
                if chosen > 1 {
                    self.error(
                        value.span(),
                        label,
                        "use one of `equals`, `not_equals`, `in`",
                    );
                }
                if let Some(v) = t.get("equals").or_else(|| t.get("in")) {
                    Some(Condition::In(path, texts(self, v)))
                } else if let Some(v) = t.get("not_equals") {
                    Some(Condition::NotIn(path, texts(self, v)))
                } else {
                    Some(Condition::Present(path))
                }
            }
            other => {
                self.error(
                    value.span(),
                    label,
                    format!(
                        "a condition is a JSONPath string or a table, got {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }
}
