//! Compiling one scalar field's rule: its source and its transforms
//! (dates, maps, replacements, jq, cases), in their fixed order.

use super::*;

impl Compiler<'_> {
    /// A scalar rule: `"$.path"`, `["$.a", "$.b"]`, a constant, or a table.
    pub(super) fn rule(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        ty: FieldType,
        at: Place<'_>,
    ) -> Option<Rule> {
        let label = at.label;
        if !ty.is_scalar() {
            self.error(value.span(), label, format!("expected {}", ty.describe()));
            return None;
        }
        let errors_before = self.diagnostics.count();
        let rule = match value.get_ref() {
            DeValue::String(_) | DeValue::Array(_) => {
                let mut rule = Rule::from_source(Source::Paths(self.paths(value, at)));
                rule.null_values = self.null_values.clone();
                rule
            }
            DeValue::Table(t) => self.rule_table(t, value.span(), ty, at),
            _ => Rule::from_source(Source::Const(
                self.typed_constant(value, ty, label, "this constant")
                    .unwrap_or(Value::Null),
            )),
        };
        (self.diagnostics.count() == errors_before).then_some(rule)
    }

    pub(super) fn rule_table(
        &mut self,
        t: &DeTable<'_>,
        span: Range<usize>,
        ty: FieldType,
        at: Place<'_>,
    ) -> Rule {
        let label = at.label;
        let allowed: Vec<&str> = RULE_KEYS.iter().chain(TRANSFORM_KEYS).copied().collect();
        self.unknown_keys(t, &allowed, "a field rule", label);
        let sources: Vec<&str> = ["path", "const", "template"]
            .into_iter()
            .filter(|k| t.contains_key(*k))
            .collect();
        if sources.len() > 1 {
            self.error(
                span.clone(),
                label,
                format!(
                    "a rule takes one source, got {} (use `default` for a fallback)",
                    sources.join(" and ")
                ),
            );
        }
        let has_transform = TRANSFORM_KEYS.iter().any(|k| t.contains_key(*k));
        if sources.is_empty() && !t.contains_key("jq") && !t.contains_key("default") {
            self.error(
                span.clone(),
                label,
                "a rule needs a source: `path`, `const`, `template`, `jq` or `default`",
            );
        }
        let source = if let Some(v) = t.get("path") {
            Source::Paths(self.paths(v, at))
        } else if let Some(v) = t.get("const") {
            let c = if has_transform {
                Some(to_json(v.get_ref()))
            } else {
                self.typed_constant(v, ty, label, "this constant")
            };
            Source::Const(c.unwrap_or(Value::Null))
        } else if let Some(v) = t.get("template") {
            match self
                .string(v, label, "template")
                .map(|s| Template::parse(&s))
            {
                Some(Ok(tpl)) => {
                    if !at.in_item && tpl.paths().any(|p| p.is_relative()) {
                        self.error(v.span(), label, "the template reads the current item (`@`), but this field is not inside a list's `item`");
                    }
                    Source::Template(tpl)
                }
                Some(Err(msg)) => {
                    self.error(v.span(), label, msg);
                    Source::Paths(Vec::new())
                }
                None => Source::Paths(Vec::new()),
            }
        } else if t.contains_key("jq") {
            Source::Current
        } else {
            Source::Paths(Vec::new())
        };
        let mut rule = Rule::from_source(source);
        if let Some(v) = t.get("jq")
            && let Some(code) = self.string(v, label, "jq")
        {
            match Jq::compile(&code) {
                Ok(jq) => {
                    self.uses_jq = true;
                    rule.jq = Some(jq);
                }
                Err(msg) => self.error(v.span(), label, msg),
            }
        }
        if let Some(v) = t.get("when") {
            rule.when = self.condition(v, at);
        }
        if let Some(v) = t.get("trim") {
            rule.trim = self.boolean(v, label, "trim");
        }
        if let Some(v) = t.get("skip_empty") {
            rule.skip_empty = self.boolean(v, label, "skip_empty");
        }
        // A rule's own list replaces the mapping's (`null_values = []` opts
        // a field out); a constant is never "nothing".
        rule.null_values = match t.get("null_values") {
            Some(v) => self.null_values(v, label),
            None if !matches!(rule.source, Source::Const(_)) => self.null_values.clone(),
            None => Vec::new(),
        };
        if let Some(v) = t.get("case") {
            rule.case = self.choice(
                v,
                label,
                "case",
                &[("upper", Case::Upper), ("lower", Case::Lower)],
            );
        }
        if let Some(v) = t.get("replace") {
            rule.replace = self.replacements(v, label);
        }
        if let Some(v) = t.get("as") {
            rule.as_type = self.choice(
                v,
                label,
                "as",
                &[
                    ("string", FieldType::String),
                    ("integer", FieldType::Integer),
                    ("boolean", FieldType::Boolean),
                ],
            );
        }
        if let Some(v) = t.get("date") {
            if !matches!(
                ty,
                FieldType::Date | FieldType::String | FieldType::Timestamp
            ) {
                self.error(
                    v.span(),
                    label,
                    format!(
                        "`date` produces a YYYY-MM-DD string, but the field takes {}",
                        ty.describe()
                    ),
                );
            }
            rule.date_as_timestamp = matches!(ty, FieldType::Timestamp);
            let formats = match v.get_ref() {
                DeValue::Array(a) => a.iter().collect::<Vec<_>>(),
                _ => vec![v],
            };
            for f in formats {
                if let Some(text) = self.string(f, label, "date") {
                    match DateFormat::parse(&text) {
                        Ok(fmt) => rule.date.push(fmt),
                        Err(msg) => self.error(f.span(), label, msg),
                    }
                }
            }
        }
        // Values that reach the field unchanged must already fit its type.
        let final_ty = if rule.date.is_empty() {
            ty
        } else {
            FieldType::String
        };
        if let Some(v) = t.get("map") {
            match v.get_ref() {
                DeValue::Table(entries) => {
                    let mut map = HashMap::new();
                    for (k, out) in entries.iter() {
                        let json = if rule.date.is_empty() {
                            self.typed_constant(
                                out,
                                final_ty,
                                label,
                                &format!("the map value for `{}`", k.get_ref()),
                            )
                        } else {
                            Some(to_json(out.get_ref()))
                        };
                        map.insert(k.get_ref().to_string(), json.unwrap_or(Value::Null));
                    }
                    let fallback = t
                        .get("fallback")
                        .and_then(|f| self.typed_constant(f, final_ty, label, "the fallback"));
                    rule.map = Some(ValueMap {
                        entries: map,
                        fallback,
                    });
                }
                other => self.error(
                    v.span(),
                    label,
                    format!(
                        "`map` must be a table of CRM value = card value, got {}",
                        other.type_str()
                    ),
                ),
            }
        } else if let Some(f) = t.get("fallback") {
            self.error(
                f.span(),
                label,
                "`fallback` applies to values a `map` does not list; this rule has no `map`",
            );
        }
        if let Some(v) = t.get("default") {
            rule.default = self.typed_constant(v, ty, label, "the default");
        }
        if let (Some(as_ty), None, true) = (rule.as_type, &rule.map, rule.date.is_empty()) {
            let fits = matches!(
                (as_ty, ty),
                (_, FieldType::String)
                    | (
                        FieldType::Integer,
                        FieldType::Integer
                            | FieldType::Number
                            | FieldType::Boolean
                            | FieldType::Timestamp
                    )
                    | (FieldType::Boolean, FieldType::Boolean)
                    | (FieldType::String, _)
            );
            if !fits {
                self.error(
                    span,
                    label,
                    format!(
                        "`as = {}` cannot become {}",
                        as_ty.describe(),
                        ty.describe()
                    ),
                );
            }
        }
        rule
    }

    /// `null_values = ["0001-01-01T00:00:00", 0]`: the texts of scalars.
    pub(super) fn null_values(&mut self, value: &Spanned<DeValue<'_>>, label: &str) -> Vec<String> {
        let DeValue::Array(items) = value.get_ref() else {
            self.error(
                value.span(),
                label,
                "`null_values` is a list of strings, numbers or booleans",
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match to_json(item.get_ref()) {
                v @ (Value::String(_) | Value::Number(_) | Value::Bool(_)) => {
                    out.extend(key_text(&v));
                }
                _ => self.error(
                    item.span(),
                    label,
                    "`null_values` holds strings, numbers or booleans",
                ),
            }
        }
        out
    }

    /// `replace = { pattern = "...", with = "..." }` or a list of them.
    pub(super) fn replacements(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        label: &str,
    ) -> Vec<(Regex, String)> {
        let items = match value.get_ref() {
            DeValue::Array(a) => a.iter().collect::<Vec<_>>(),
            _ => vec![value],
        };
        let mut out = Vec::new();
        for item in items {
            let DeValue::Table(t) = item.get_ref() else {
                self.error(
                    item.span(),
                    label,
                    "`replace` is { pattern = \"regex\", with = \"text\" } or a list of them",
                );
                continue;
            };
            self.unknown_keys(t, &["pattern", "with"], "a replacement", label);
            let pattern = t
                .get("pattern")
                .and_then(|p| self.string(p, label, "pattern").map(|s| (s, p.span())));
            let with = t
                .get("with")
                .and_then(|w| self.string(w, label, "with"))
                .unwrap_or_default();
            match pattern {
                Some((p, span)) => match Regex::new(&p) {
                    Ok(re) => out.push((re, with)),
                    Err(e) => {
                        // regex's message is multi-line with a caret; keep its last line.
                        let text = e.to_string();
                        let why = text
                            .lines()
                            .last()
                            .unwrap_or_default()
                            .trim_start_matches("error: ");
                        self.error(span, label, format!("invalid regex `{p}`: {why}"))
                    }
                },
                None => self.error(item.span(), label, "a replacement needs `pattern`"),
            }
        }
        out
    }
}
