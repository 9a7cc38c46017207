//! Compiles a mapping file (TOML) into a [`Program`](super::program), checking
//! it against the target schema.
//!
//! Every mistake becomes a [`Diagnostic`] with `file:line:column` and the target
//! field, and the compiler keeps going so one run shows all of them: an
//! integrator fixes a file in one pass, not one error at a time.

use std::ops::Range;

use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::coerce::{coerce, kind};
use super::error::{Diagnostic, LoadError, line_col};
use super::path::Path;
use super::program::{Node, ObjectProgram, Rule, Slot, Source};
use crate::schema::{ApiVersion, FieldType, ObjectSchema, nearest};

/// The keys a scalar rule table may hold.
const RULE_KEYS: &[&str] = &["path", "const", "default"];
/// The keys of a list built from a CRM array.
const EACH_KEYS: &[&str] = &["each", "item"];
/// The keys of the optional `[meta]` table.
const META_KEYS: &[&str] = &["name", "description", "crm", "notes"];

/// Compiles `text` (the content of `file`) against `schema` for `version`.
pub(crate) fn compile(
    file: &str,
    text: &str,
    schema: &'static ObjectSchema,
    version: ApiVersion,
) -> Result<ObjectProgram, LoadError> {
    let mut c = Compiler {
        file,
        text,
        version,
        diagnostics: Vec::new(),
    };
    let program = match DeTable::parse(text) {
        Ok(doc) => {
            let span = doc.span();
            Some(c.root(doc.get_ref(), span, schema))
        }
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            c.error(span, "", format!("not valid TOML: {}", e.message()));
            None
        }
    };
    match program {
        Some(p) if c.diagnostics.is_empty() => Ok(p),
        _ => Err(LoadError {
            diagnostics: c.diagnostics,
        }),
    }
}

struct Compiler<'a> {
    file: &'a str,
    text: &'a str,
    version: ApiVersion,
    diagnostics: Vec<Diagnostic>,
}

fn join(label: &str, name: &str) -> String {
    if label.is_empty() {
        name.to_owned()
    } else {
        format!("{label}.{name}")
    }
}

fn hint(name: &str, candidates: &[&str]) -> String {
    match nearest(name, candidates.iter().copied()) {
        Some(n) => format!("; did you mean `{n}`?"),
        None => format!("; expected one of: {}", candidates.join(", ")),
    }
}

impl Compiler<'_> {
    fn error(&mut self, span: Range<usize>, field: &str, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.diagnostics.push(Diagnostic {
            file: self.file.to_owned(),
            line,
            column,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    fn root(
        &mut self,
        doc: &DeTable<'_>,
        span: Range<usize>,
        schema: &'static ObjectSchema,
    ) -> ObjectProgram {
        if let Some((key, meta)) = doc.get_key_value("meta") {
            match meta.get_ref() {
                DeValue::Table(t) => {
                    for (k, _) in t.iter() {
                        if !META_KEYS.contains(&k.get_ref().as_ref()) {
                            let msg = format!(
                                "unknown key `{}` in [meta]{}",
                                k.get_ref(),
                                hint(k.get_ref(), META_KEYS)
                            );
                            self.error(k.span(), "meta", msg);
                        }
                    }
                }
                _ => self.error(key.span(), "meta", "`meta` must be a table"),
            }
        }
        self.object(doc, span, schema, "", false, &["meta"])
    }

    /// A target object written as a TOML table of `field = rule`.
    fn object(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        schema: &'static ObjectSchema,
        label: &str,
        in_item: bool,
        reserved: &[&str],
    ) -> ObjectProgram {
        let mut compiled: Vec<(&'static str, Node)> = Vec::new();
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            if reserved.contains(&name) {
                continue;
            }
            let field_label = join(label, name);
            let Some(field) = schema.field(name) else {
                let names: Vec<&str> = schema.fields.iter().map(|f| f.name).collect();
                let msg = format!(
                    "unknown field `{name}` in {}{}",
                    schema.name,
                    hint(name, &names)
                );
                self.error(key.span(), &field_label, msg);
                continue;
            };
            if field.since > self.version {
                // An older chat server does not know this field: drop it.
                continue;
            }
            if let Some(node) = self.field(field.ty, value, &field_label, in_item) {
                compiled.push((field.name, node));
            }
        }
        let mut program = ObjectProgram::default();
        let version = self.version;
        for field in schema.fields.iter().filter(|f| f.since <= version) {
            program.has_required |= field.required;
            match compiled.iter().position(|(n, _)| *n == field.name) {
                Some(i) => {
                    let (name, node) = compiled.swap_remove(i);
                    program.slots.push(Slot {
                        name,
                        required: field.required,
                        node,
                    });
                }
                None if field.required => {
                    let what = if label.is_empty() {
                        "the mapping"
                    } else {
                        label
                    };
                    self.error(
                        span.clone(),
                        &join(label, field.name),
                        format!(
                            "required {} field `{}` is not mapped in {what}: give it a source or a `default`",
                            schema.name, field.name
                        ),
                    );
                }
                None => {}
            }
        }
        program
    }

    fn field(
        &mut self,
        ty: FieldType,
        value: &Spanned<DeValue<'_>>,
        label: &str,
        in_item: bool,
    ) -> Option<Node> {
        match ty {
            FieldType::Object(schema) => match value.get_ref() {
                DeValue::Table(t) => Some(Node::Object(self.object(
                    t,
                    value.span(),
                    schema,
                    label,
                    in_item,
                    &[],
                ))),
                other => {
                    self.error(
                        value.span(),
                        label,
                        format!(
                            "expected a table of {} fields, got {}",
                            schema.name,
                            other.type_str()
                        ),
                    );
                    None
                }
            },
            FieldType::List(schema) => self.list(schema, value, label, in_item),
            FieldType::StringMap => match value.get_ref() {
                DeValue::Table(t) => {
                    let mut entries = Vec::new();
                    for (k, v) in t.iter() {
                        let entry_label = format!("{label}.{}", k.get_ref());
                        if let Some(rule) = self.rule(v, FieldType::String, &entry_label, in_item) {
                            entries.push((k.get_ref().to_string(), rule));
                        }
                    }
                    Some(Node::StringMap(entries))
                }
                other => {
                    self.error(
                        value.span(),
                        label,
                        format!(
                            "expected a table of name = source, got {}",
                            other.type_str()
                        ),
                    );
                    None
                }
            },
            scalar => self
                .rule(value, scalar, label, in_item)
                .map(|rule| Node::Scalar { rule, ty: scalar }),
        }
    }

    /// A list: `{ each = "$.path", item = { ... } }` or an array of tables.
    fn list(
        &mut self,
        schema: &'static ObjectSchema,
        value: &Spanned<DeValue<'_>>,
        label: &str,
        in_item: bool,
    ) -> Option<Node> {
        match value.get_ref() {
            DeValue::Table(t) => {
                for (k, _) in t.iter() {
                    if !EACH_KEYS.contains(&k.get_ref().as_ref()) {
                        let msg = format!(
                            "unknown key `{}` in a list mapping{}",
                            k.get_ref(),
                            hint(k.get_ref(), EACH_KEYS)
                        );
                        self.error(k.span(), label, msg);
                    }
                }
                let each = match t.get("each") {
                    Some(v) => match v.get_ref() {
                        DeValue::String(s) => self.path(s, v.span(), label, in_item),
                        other => {
                            self.error(
                                v.span(),
                                label,
                                format!(
                                    "`each` must be a JSONPath string, got {}",
                                    other.type_str()
                                ),
                            );
                            None
                        }
                    },
                    None => {
                        self.error(
                            value.span(),
                            label,
                            "a list mapping needs `each` (a JSONPath to the CRM array) and `item`",
                        );
                        None
                    }
                };
                let item = match t.get("item") {
                    Some(v) => match v.get_ref() {
                        DeValue::Table(it) => Some(self.object(
                            it,
                            v.span(),
                            schema,
                            &format!("{label}.item"),
                            true,
                            &[],
                        )),
                        other => {
                            self.error(
                                v.span(),
                                label,
                                format!(
                                    "`item` must be a table of {} fields, got {}",
                                    schema.name,
                                    other.type_str()
                                ),
                            );
                            None
                        }
                    },
                    None => {
                        self.error(
                            value.span(),
                            label,
                            format!(
                                "a list mapping needs `item`, a table of {} fields",
                                schema.name
                            ),
                        );
                        None
                    }
                };
                Some(Node::Each {
                    each: each?,
                    item: item?,
                })
            }
            DeValue::Array(items) => {
                let mut programs = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    let item_label = format!("{label}[{i}]");
                    match it.get_ref() {
                        DeValue::Table(t) => programs.push(self.object(
                            t,
                            it.span(),
                            schema,
                            &item_label,
                            in_item,
                            &[],
                        )),
                        other => self.error(
                            it.span(),
                            &item_label,
                            format!(
                                "expected a table of {} fields, got {}",
                                schema.name,
                                other.type_str()
                            ),
                        ),
                    }
                }
                Some(Node::Items(programs))
            }
            other => {
                self.error(
                    value.span(),
                    label,
                    format!("expected a list mapping (`{{ each = ..., item = {{...}} }}` or [[{label}]] tables), got {}", other.type_str()),
                );
                None
            }
        }
    }

    fn path(&mut self, text: &str, span: Range<usize>, label: &str, in_item: bool) -> Option<Path> {
        match Path::parse(text) {
            Ok(p) if p.is_relative() && !in_item => {
                self.error(span, label, format!("`{text}` reads the current item (`@`), but this field is not inside a list's `item`"));
                None
            }
            Ok(p) => Some(p),
            Err(msg) => {
                let msg = if text.starts_with(['$', '@']) {
                    msg
                } else {
                    format!("{msg}; for a constant string write {{ const = \"{text}\" }}")
                };
                self.error(span, label, msg);
                None
            }
        }
    }

    fn constant(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        ty: FieldType,
        label: &str,
    ) -> Option<Value> {
        let json = to_json(value.get_ref());
        match coerce(&json, ty) {
            Ok(v) => Some(v),
            Err(_) => {
                let msg = format!(
                    "{} is {}, but the field takes {}",
                    "this constant",
                    kind(&json),
                    ty.describe()
                );
                self.error(value.span(), label, msg);
                None
            }
        }
    }

    fn paths(&mut self, value: &Spanned<DeValue<'_>>, label: &str, in_item: bool) -> Vec<Source> {
        match value.get_ref() {
            DeValue::String(s) => self
                .path(s, value.span(), label, in_item)
                .map(Source::Path)
                .into_iter()
                .collect(),
            DeValue::Array(list) => {
                let mut out = Vec::new();
                for v in list.iter() {
                    match v.get_ref() {
                        DeValue::String(s) => {
                            out.extend(self.path(s, v.span(), label, in_item).map(Source::Path))
                        }
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

    /// A scalar rule: `"$.path"`, `["$.a", "$.b"]`, a constant, or a table.
    fn rule(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        ty: FieldType,
        label: &str,
        in_item: bool,
    ) -> Option<Rule> {
        if !ty.is_scalar() {
            self.error(value.span(), label, format!("expected {}", ty.describe()));
            return None;
        }
        let errors_before = self.diagnostics.len();
        let rule = match value.get_ref() {
            DeValue::String(_) | DeValue::Array(_) => Rule {
                sources: self.paths(value, label, in_item),
                default: None,
            },
            DeValue::Table(t) => {
                let mut rule = Rule {
                    sources: Vec::new(),
                    default: None,
                };
                for (k, v) in t.iter() {
                    match k.get_ref().as_ref() {
                        "path" => rule.sources.extend(self.paths(v, label, in_item)),
                        "const" => rule
                            .sources
                            .extend(self.constant(v, ty, label).map(Source::Const)),
                        "default" => rule.default = self.constant(v, ty, label),
                        other => {
                            let msg = format!(
                                "unknown key `{other}` in a field rule{}",
                                hint(other, RULE_KEYS)
                            );
                            self.error(k.span(), label, msg);
                        }
                    }
                }
                if t.get("path").is_some() && t.get("const").is_some() {
                    self.error(
                        value.span(),
                        label,
                        "a rule takes `path` or `const`, not both (use `default` for a fallback)",
                    );
                }
                if t.get("path").is_none() && t.get("const").is_none() && t.get("default").is_none()
                {
                    self.error(
                        value.span(),
                        label,
                        "a rule needs a source: `path`, `const` or `default`",
                    );
                }
                rule
            }
            _ => Rule {
                sources: self
                    .constant(value, ty, label)
                    .map(Source::Const)
                    .into_iter()
                    .collect(),
                default: None,
            },
        };
        (self.diagnostics.len() == errors_before).then_some(rule)
    }
}

/// A TOML value as JSON (TOML dates become their RFC 3339 text).
pub(crate) fn to_json(value: &DeValue<'_>) -> Value {
    match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            i64::from_str_radix(&digits, i.radix()).map_or(Value::Null, Value::from)
        }
        DeValue::Float(f) => f
            .as_str()
            .replace('_', "")
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(a) => Value::Array(a.iter().map(|v| to_json(v.get_ref())).collect()),
        DeValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.get_ref().to_string(), to_json(v.get_ref())))
                .collect(),
        ),
    }
}
