//! Compiles a mapping file (TOML) into a [`program`](super::program), checking
//! it against the target schema.
//!
//! Every mistake becomes a [`Diagnostic`] with `file:line:column` and the target
//! field, and the compiler keeps going so one run shows all of them: an
//! integrator fixes a file in one pass, not one error at a time.

use std::collections::HashMap;
use std::ops::Range;

use regex::Regex;
use serde_json::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::coerce::{coerce, kind};
use super::condition::{Condition, key_text};
use super::date::DateFormat;
use super::error::{Diagnostic, LoadError, line_col};
use super::jq::Jq;
use super::path::Path;
use super::program::{ListPart, Lookup, Node, ObjectProgram, Slot};
use super::rule::{Case, Rule, Source, ValueMap};
use super::template::Template;
use crate::schema::{ApiVersion, FieldType, ObjectSchema, nearest};

/// The keys a scalar rule table may hold.
const RULE_KEYS: &[&str] = &[
    "path",
    "const",
    "template",
    "jq",
    "default",
    "when",
    "trim",
    "case",
    "replace",
    "skip_empty",
    "as",
    "map",
    "fallback",
    "date",
];
/// The keys of a list part built from a CRM array.
const EACH_KEYS: &[&str] = &["each", "item", "where"];
/// The keys of a condition table.
const CONDITION_KEYS: &[&str] = &["path", "equals", "not_equals", "in", "jq"];
/// The keys of a parent lookup.
const LOOKUP_KEYS: &[&str] = &["lookup", "key", "match"];
/// The keys of the optional `[meta]` table.
const META_KEYS: &[&str] = &["name", "description", "crm", "notes"];

/// What the compiler targets.
#[derive(Debug, Clone)]
pub struct Options {
    /// Fields newer than this version are dropped.
    pub version: ApiVersion,
    /// Fields kept even when newer than `version` (a front may derive older
    /// fields from them and drop them itself).
    pub keep: Vec<&'static str>,
}

/// Compiles `text` (the content of `file`) against `schema`.
pub(crate) fn compile(
    file: &str,
    text: &str,
    schema: &'static ObjectSchema,
    options: &Options,
) -> Result<ObjectProgram, LoadError> {
    let mut c = Compiler {
        file,
        text,
        options,
        diagnostics: Vec::new(),
        uses_jq: false,
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
        Some(mut p) if c.diagnostics.is_empty() => {
            p.uses_jq = c.uses_jq;
            Ok(p)
        }
        _ => {
            c.diagnostics.sort_by_key(|d| (d.line, d.column));
            Err(LoadError {
                diagnostics: c.diagnostics,
            })
        }
    }
}

struct Compiler<'a> {
    file: &'a str,
    text: &'a str,
    options: &'a Options,
    diagnostics: Vec<Diagnostic>,
    /// Whether any rule or condition is a jq expression.
    uses_jq: bool,
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

type Entry<'v, 'i> = (
    &'v Spanned<std::borrow::Cow<'i, str>>,
    &'v Spanned<DeValue<'i>>,
);

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

    fn unknown_keys(&mut self, table: &DeTable<'_>, allowed: &[&str], what: &str, label: &str) {
        for (k, _) in table.iter() {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                let msg = format!("unknown key `{key}` in {what}{}", hint(key, allowed));
                self.error(k.span(), label, msg);
            }
        }
    }

    fn root(
        &mut self,
        doc: &DeTable<'_>,
        span: Range<usize>,
        schema: &'static ObjectSchema,
    ) -> ObjectProgram {
        if let Some((key, meta)) = doc.get_key_value("meta") {
            match meta.get_ref() {
                DeValue::Table(t) => self.unknown_keys(t, META_KEYS, "[meta]", "meta"),
                _ => self.error(key.span(), "meta", "`meta` must be a table"),
            }
        }
        self.object(doc, span, schema, "", false, &["meta", "step"])
    }

    /// A target object written as a TOML table of `field = rule`, plus an
    /// optional `when`.
    fn object(
        &mut self,
        table: &DeTable<'_>,
        span: Range<usize>,
        schema: &'static ObjectSchema,
        label: &str,
        in_item: bool,
        reserved: &[&str],
    ) -> ObjectProgram {
        let mut program = ObjectProgram::default();
        let mut compiled: Vec<(&'static str, Node)> = Vec::new();
        // Fields written but not compiled (already reported): not "missing".
        let mut attempted: Vec<&'static str> = Vec::new();
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            if reserved.contains(&name) {
                continue;
            }
            if name == "when" && !label.is_empty() {
                program.when = self.condition(value, &join(label, "when"), in_item);
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
            if field.since > self.options.version && !self.options.keep.contains(&field.name) {
                // An older chat server does not know this field: drop it.
                continue;
            }
            attempted.push(field.name);
            let mut node = match (field.ty, value.get_ref()) {
                (FieldType::Object(inner), DeValue::Table(t))
                    if std::ptr::eq(inner, schema) && t.contains_key("lookup") =>
                {
                    self.lookup(
                        (key, value),
                        t,
                        field.name,
                        table,
                        span.clone(),
                        schema,
                        label,
                        in_item,
                        reserved,
                    )
                }
                _ => self.field(field.ty, value, &field_label, in_item),
            };
            if let Some(Node::List { required, .. }) = &mut node {
                *required = field.required;
            }
            if let Some(node) = node {
                compiled.push((field.name, node));
            }
        }
        let version = self.options.version;
        for field in schema
            .fields
            .iter()
            .filter(|f| f.since <= version || self.options.keep.contains(&f.name))
        {
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
                None if field.required && !attempted.contains(&field.name) => {
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

    /// `parentGroup = { lookup = "$.groups[*]", key = "@.id", match = "@.parentId" }`:
    /// the parent is the element of `lookup` whose `key` equals `match`, mapped
    /// with the enclosing object's other fields.
    #[allow(clippy::too_many_arguments)]
    fn lookup(
        &mut self,
        (key, value): Entry<'_, '_>,
        t: &DeTable<'_>,
        name: &'static str,
        enclosing: &DeTable<'_>,
        enclosing_span: Range<usize>,
        schema: &'static ObjectSchema,
        label: &str,
        in_item: bool,
        reserved: &[&str],
    ) -> Option<Node> {
        let field_label = join(label, key.get_ref());
        self.unknown_keys(t, LOOKUP_KEYS, "a parent lookup", &field_label);
        let path_of = |c: &mut Self, k: &str, relative_only: bool| -> Option<Path> {
            let Some(v) = t.get(k) else {
                c.error(
                    value.span(),
                    &field_label,
                    format!("a parent lookup needs `{k}`"),
                );
                return None;
            };
            let DeValue::String(s) = v.get_ref() else {
                c.error(
                    v.span(),
                    &field_label,
                    format!("`{k}` must be a JSONPath string"),
                );
                return None;
            };
            let p = c.path(s, v.span(), &field_label, true)?;
            if relative_only && !p.is_relative() {
                c.error(
                    v.span(),
                    &field_label,
                    format!("`{k}` is read from each candidate: write it with `@`"),
                );
                return None;
            }
            Some(p)
        };
        let table = path_of(self, "lookup", false);
        let key_path = path_of(self, "key", true);
        let matches = path_of(self, "match", false);
        // The parent is mapped with the same fields as this object, minus this
        // one (the lookup nests it). Compiled a second time; its diagnostics
        // would repeat the first pass's, so they are dropped.
        let before = self.diagnostics.len();
        let mut skip: Vec<&str> = reserved.to_vec();
        skip.push(name);
        let fields = self.object(
            enclosing,
            enclosing_span,
            schema,
            label,
            in_item.max(true),
            &skip,
        );
        self.diagnostics.truncate(before);
        Some(Node::Lookup(Lookup {
            table: table?,
            key: key_path?,
            matches: matches?,
            fields: Box::new(fields),
            name,
        }))
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
                .map(|rule| Node::Scalar {
                    rule: Box::new(rule),
                    ty: scalar,
                }),
        }
    }

    /// A list: one `{ each, item, where }` table, or an array whose elements are
    /// explicit items or such tables.
    fn list(
        &mut self,
        schema: &'static ObjectSchema,
        value: &Spanned<DeValue<'_>>,
        label: &str,
        in_item: bool,
    ) -> Option<Node> {
        match value.get_ref() {
            DeValue::Table(t) => Some(Node::List {
                parts: vec![self.each(schema, t, value.span(), label, in_item)?],
                required: false,
            }),
            DeValue::Array(items) => {
                let mut parts = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    let item_label = format!("{label}[{i}]");
                    match it.get_ref() {
                        DeValue::Table(t) if t.contains_key("each") => {
                            parts.extend(self.each(schema, t, it.span(), &item_label, in_item));
                        }
                        DeValue::Table(t) => {
                            parts.push(ListPart::Item(self.object(
                                t,
                                it.span(),
                                schema,
                                &item_label,
                                in_item,
                                &[],
                            )));
                        }
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
                Some(Node::List {
                    parts,
                    required: false,
                })
            }
            other => {
                self.error(
                    value.span(),
                    label,
                    format!(
                        "expected a list mapping (`{{ each = ..., item = {{...}} }}` or [[{label}]] tables), got {}",
                        other.type_str()
                    ),
                );
                None
            }
        }
    }

    fn each(
        &mut self,
        schema: &'static ObjectSchema,
        t: &DeTable<'_>,
        span: Range<usize>,
        label: &str,
        in_item: bool,
    ) -> Option<ListPart> {
        self.unknown_keys(t, EACH_KEYS, "a list mapping", label);
        let each = match t.get("each") {
            Some(v) => match v.get_ref() {
                DeValue::String(s) => self
                    .path(s, v.span(), label, in_item)
                    .map(|p| (p.clone(), Box::new(array_of(s).unwrap_or(p)))),
                other => {
                    self.error(
                        v.span(),
                        label,
                        format!("`each` must be a JSONPath string, got {}", other.type_str()),
                    );
                    None
                }
            },
            None => {
                self.error(
                    span.clone(),
                    label,
                    "a list mapping needs `each` (a JSONPath to the CRM array) and `item`",
                );
                None
            }
        };
        let filter = t
            .get("where")
            .and_then(|w| self.condition(w, &join(label, "where"), true));
        let item = match t.get("item") {
            Some(v) => match v.get_ref() {
                DeValue::Table(it) => {
                    Some(self.object(it, v.span(), schema, &join(label, "item"), true, &[]))
                }
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
                    span,
                    label,
                    format!(
                        "a list mapping needs `item`, a table of {} fields",
                        schema.name
                    ),
                );
                None
            }
        };
        let (each, array) = each?;
        Some(ListPart::Each {
            each,
            array,
            filter,
            item: item?,
        })
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

    fn paths(&mut self, value: &Spanned<DeValue<'_>>, label: &str, in_item: bool) -> Vec<Path> {
        match value.get_ref() {
            DeValue::String(s) => self
                .path(s, value.span(), label, in_item)
                .into_iter()
                .collect(),
            DeValue::Array(list) => {
                let mut out = Vec::new();
                for v in list.iter() {
                    match v.get_ref() {
                        DeValue::String(s) => out.extend(self.path(s, v.span(), label, in_item)),
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
    fn typed_constant(
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

    fn string(&mut self, value: &Spanned<DeValue<'_>>, label: &str, key: &str) -> Option<String> {
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
    fn choice<T: Copy>(
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

    fn boolean(&mut self, value: &Spanned<DeValue<'_>>, label: &str, key: &str) -> bool {
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
    fn condition(
        &mut self,
        value: &Spanned<DeValue<'_>>,
        label: &str,
        in_item: bool,
    ) -> Option<Condition> {
        match value.get_ref() {
            DeValue::String(s) => self
                .path(s, value.span(), label, in_item)
                .map(Condition::Present),
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
                let path = self.path(&path_text, p.span(), label, in_item)?;
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
            DeValue::String(_) | DeValue::Array(_) => {
                Rule::from_source(Source::Paths(self.paths(value, label, in_item)))
            }
            DeValue::Table(t) => self.rule_table(t, value.span(), ty, label, in_item),
            _ => Rule::from_source(Source::Const(
                self.typed_constant(value, ty, label, "this constant")
                    .unwrap_or(Value::Null),
            )),
        };
        (self.diagnostics.len() == errors_before).then_some(rule)
    }

    fn rule_table(
        &mut self,
        t: &DeTable<'_>,
        span: Range<usize>,
        ty: FieldType,
        label: &str,
        in_item: bool,
    ) -> Rule {
        self.unknown_keys(t, RULE_KEYS, "a field rule", label);
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
        let has_transform = [
            "jq",
            "trim",
            "case",
            "replace",
            "skip_empty",
            "as",
            "map",
            "date",
        ]
        .iter()
        .any(|k| t.contains_key(*k));
        if sources.is_empty() && !t.contains_key("jq") && !t.contains_key("default") {
            self.error(
                span.clone(),
                label,
                "a rule needs a source: `path`, `const`, `template`, `jq` or `default`",
            );
        }
        let source = if let Some(v) = t.get("path") {
            Source::Paths(self.paths(v, label, in_item))
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
                    if !in_item && tpl.paths().any(|p| p.is_relative()) {
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
            rule.when = self.condition(v, label, in_item);
        }
        if let Some(v) = t.get("trim") {
            rule.trim = self.boolean(v, label, "trim");
        }
        if let Some(v) = t.get("skip_empty") {
            rule.skip_empty = self.boolean(v, label, "skip_empty");
        }
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

    /// `replace = { pattern = "...", with = "..." }` or a list of them.
    fn replacements(&mut self, value: &Spanned<DeValue<'_>>, label: &str) -> Vec<(Regex, String)> {
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

/// The array an `each` path iterates: the path without its last selector
/// (`$.orders[*]` → `$.orders`, `@.items[?@.qty > 0]` → `@.items`), or the
/// path itself when it names the array (`$.orders`).
fn array_of(each: &str) -> Option<Path> {
    let parent = if let Some(rest) = each.strip_suffix(".*") {
        rest
    } else if each.ends_with(']') {
        &each[..each.rfind('[')?]
    } else {
        return None;
    };
    Path::parse(parent).ok()
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
