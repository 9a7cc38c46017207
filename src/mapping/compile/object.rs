//! Compiling the shape: the root, nested objects, fields, lists, `each`
//! items and parent lookups, each checked against the target schema.

use super::*;

/// A target object to compile: its TOML table and where it stands, the
/// schema it is checked against, where it stands (its label and whether it
/// is inside a list's `item`), and the table's keys that are not fields. One
/// value, since a parent lookup compiles its enclosing object again from all
/// of it.
#[derive(Clone)]
pub(super) struct ObjectSite<'a, 'de> {
    table: &'a DeTable<'de>,
    span: Range<usize>,
    schema: &'static ObjectSchema,
    at: Place<'a>,
    reserved: &'a [&'a str],
}

impl Compiler<'_> {
    pub(super) fn root(
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
        if let Some(v) = doc.get("null_values") {
            self.null_values = self.null_values(v, "null_values");
        }
        self.object(ObjectSite {
            table: doc,
            span,
            schema,
            at: Place {
                label: "",
                in_item: false,
            },
            reserved: &["meta", "step", "null_values"],
        })
    }

    /// A target object written as a TOML table of `field = rule`, plus an
    /// optional `when`.
    pub(super) fn object(&mut self, site: ObjectSite<'_, '_>) -> ObjectProgram {
        let ObjectSite {
            table,
            schema,
            at,
            reserved,
            ..
        } = site;
        let label = at.label;
        let mut program = ObjectProgram::default();
        let mut compiled: Vec<(&'static str, Node, usize)> = Vec::new();
        // Fields written but not compiled (already reported): not "missing".
        let mut attempted: Vec<&'static str> = Vec::new();
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            if reserved.contains(&name) {
                continue;
            }
            if name == "when" && !label.is_empty() {
                program.when = self.condition(value, at.named(&join(label, "when")));
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
                    self.lookup((key, value), t, field.name, &site)
                }
                _ => self.field(field.ty, value, at.named(&field_label)),
            };
            if let Some(Node::List { required, .. }) = &mut node {
                *required = field.required;
            }
            if let Some(node) = node {
                compiled.push((field.name, node, key.span().start));
            }
        }
        let version = self.options.version;
        for (index, field) in schema
            .fields
            .iter()
            .enumerate()
            .filter(|(_, f)| f.since <= version || self.options.keep.contains(&f.name))
        {
            program.has_required |= field.required;
            match compiled.iter().position(|(n, ..)| *n == field.name) {
                Some(i) => {
                    let (name, node, at) = compiled.swap_remove(i);
                    program.slots.push(Slot {
                        name,
                        index,
                        required: field.required,
                        node,
                        at: u32::try_from(at).unwrap_or(u32::MAX),
                    });
                }
                None if field.required && !attempted.contains(&field.name) => {
                    let what = if label.is_empty() {
                        "the mapping"
                    } else {
                        label
                    };
                    self.error(
                        site.span.clone(),
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
    pub(super) fn lookup(
        &mut self,
        (key, value): Entry<'_, '_>,
        t: &DeTable<'_>,
        name: &'static str,
        enclosing: &ObjectSite<'_, '_>,
    ) -> Option<Node> {
        let field_label = join(enclosing.at.label, key.get_ref());
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
            let p = c.path(s, v.span(), Place::item(&field_label))?;
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
        let before = self.diagnostics.count();
        let mut skip: Vec<&str> = enclosing.reserved.to_vec();
        skip.push(name);
        let fields = self.object(ObjectSite {
            at: Place::item(enclosing.at.label),
            reserved: &skip,
            ..enclosing.clone()
        });
        self.diagnostics.truncate(before);
        Some(Node::Lookup(Lookup {
            table: table?,
            key: key_path?,
            matches: matches?,
            fields: Box::new(fields),
            name,
            index: enclosing
                .schema
                .fields
                .iter()
                .position(|f| f.name == name)?,
        }))
    }

    pub(super) fn field(
        &mut self,
        ty: FieldType,
        value: &Spanned<DeValue<'_>>,
        at: Place<'_>,
    ) -> Option<Node> {
        let label = at.label;
        match ty {
            FieldType::Object(schema) => match value.get_ref() {
                DeValue::Table(t) => Some(Node::Object(self.object(ObjectSite {
                    table: t,
                    span: value.span(),
                    schema,
                    at,
                    reserved: &[],
                }))),
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
            FieldType::List(schema) => self.list(schema, value, at),
            FieldType::StringMap => match value.get_ref() {
                DeValue::Table(t) => {
                    let mut entries = Vec::new();
                    for (k, v) in t.iter() {
                        let entry_label = format!("{label}.{}", k.get_ref());
                        if let Some(rule) = self.rule(v, FieldType::String, at.named(&entry_label))
                        {
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
            scalar => self.rule(value, scalar, at).map(|rule| Node::Scalar {
                rule: Box::new(rule),
                ty: scalar,
            }),
        }
    }

    /// A list: one `{ each, item, where }` table, or an array whose elements are
    /// explicit items or such tables.
    pub(super) fn list(
        &mut self,
        schema: &'static ObjectSchema,
        value: &Spanned<DeValue<'_>>,
        at: Place<'_>,
    ) -> Option<Node> {
        let label = at.label;
        match value.get_ref() {
            DeValue::Table(t) => Some(Node::List {
                parts: vec![self.each(schema, t, value.span(), at)?],
                required: false,
            }),
            DeValue::Array(items) => {
                let mut parts = Vec::new();
                for (i, it) in items.iter().enumerate() {
                    let item_label = format!("{label}[{i}]");
                    match it.get_ref() {
                        DeValue::Table(t)
                            if t.contains_key("each") || t.contains_key("entries") =>
                        {
                            parts.extend(self.each(schema, t, it.span(), at.named(&item_label)));
                        }
                        DeValue::Table(t) => {
                            parts.push(ListPart::Item(self.object(ObjectSite {
                                table: t,
                                span: it.span(),
                                schema,
                                at: at.named(&item_label),
                                reserved: &[],
                            })));
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

    pub(super) fn each(
        &mut self,
        schema: &'static ObjectSchema,
        t: &DeTable<'_>,
        span: Range<usize>,
        at: Place<'_>,
    ) -> Option<ListPart> {
        let label = at.label;
        self.unknown_keys(t, EACH_KEYS, "a list mapping", label);
        let entries = t.contains_key("entries");
        if entries && t.contains_key("each") {
            self.error(
                span.clone(),
                label,
                "a list part takes `each` (an array) or `entries` (an object), not both",
            );
        }
        let key = if entries { "entries" } else { "each" };
        let each = match t.get(key) {
            Some(v) => match v.get_ref() {
                DeValue::String(s) if entries => self
                    .path(s, v.span(), at)
                    .map(|p| (Box::new(p.clone()), Box::new(p))),
                DeValue::String(s) => self
                    .path(s, v.span(), at)
                    .map(|p| (Box::new(p.clone()), Box::new(array_of(s).unwrap_or(p)))),
                other => {
                    self.error(
                        v.span(),
                        label,
                        format!(
                            "`{key}` must be a JSONPath string, got {}",
                            other.type_str()
                        ),
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
            .and_then(|w| self.condition(w, Place::item(&join(label, "where"))));
        let item = match t.get("item") {
            Some(v) => match v.get_ref() {
                DeValue::Table(it) => Some(self.object(ObjectSite {
                    table: it,
                    span: v.span(),
                    schema,
                    at: Place::item(&join(label, "item")),
                    reserved: &[],
                })),
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
            entries,
        })
    }
}
