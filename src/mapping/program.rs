//! A compiled mapping and how it is applied to one CRM payload.
//!
//! The program mirrors the target schema: one slot per target field, in output
//! order, each already bound to its parsed JSONPaths, transforms and target
//! type, so applying it is a walk with no lookups by name and no re-parsing.

use std::cell::RefCell;
use std::collections::HashMap;

use serde_json::Value;

use super::budget;
use super::condition::{Condition, key_text};
use super::error::ApplyError;
use super::explain::Log;
use super::output::{Object, Output};
use super::path::{Path, Scope};
use super::rule::Rule;
use super::trail::{Failure, Trail, spend};
use crate::schema::FieldType;

/// Longest chain of parents a `lookup` follows (a guard against chains
/// that are too long; cycles are cut as soon as they close, see
/// [`Lookup::produce`]).
pub const MAX_LOOKUP_DEPTH: usize = 16;

/// How one target field is produced.
#[derive(Debug)]
pub enum Node {
    /// A scalar from a rule, converted to `ty`.
    Scalar { rule: Box<Rule>, ty: FieldType },
    /// A nested object.
    Object(ObjectProgram),
    /// A list assembled from parts, in order. A `required` list is sent as
    /// `[]` when a part's CRM array exists but yields no item, and fails when
    /// none exists: a required list that is empty must be the CRM's word, not
    /// an answer of another shape (the order history reads "no orders" from
    /// it).
    List {
        parts: Vec<ListPart>,
        required: bool,
    },
    /// A string-to-string map of named rules; empty values are left out.
    StringMap(Vec<(String, Rule)>),
    /// An object found by id in a flat CRM array, mapped with the enclosing
    /// object's own fields, recursively (a parent group from `parentId`).
    Lookup(Lookup),
}

/// One part of a list.
#[derive(Debug)]
pub enum ListPart {
    /// One explicitly written item; left out when a required value is missing
    /// (so "label + source" lists skip empty sources).
    Item(ObjectProgram),
    /// One item per node `each` selects (`@` is that node), kept when `filter`
    /// holds.
    Each {
        each: Box<Path>,
        /// The array `each` iterates (`each` without its last selector);
        /// boxed, as it is read only for required lists that came out empty.
        array: Box<Path>,
        filter: Option<Condition>,
        item: ObjectProgram,
        /// `entries = "$.obj"`: one item per entry of the object(s) `each`
        /// selects, `@` being `{"key": k, "value": v}`.
        entries: bool,
    },
}

/// A parent found by key: the element of `table` whose `key` equals `matches`.
#[derive(Debug)]
pub struct Lookup {
    pub table: Path,
    pub key: Path,
    pub matches: Path,
    /// The enclosing object's other fields, applied to the found element.
    pub fields: Box<ObjectProgram>,
    /// This field's own name, to nest the parent's parent.
    pub name: &'static str,
    /// Its place in the enclosing descriptor, for the parent's parent.
    pub index: usize,
}

/// One target field.
#[derive(Debug)]
pub struct Slot {
    pub name: &'static str,
    /// The field's position in its object's descriptor.
    pub index: usize,
    pub required: bool,
    pub node: Node,
    /// Byte offset of the field's key in the mapping text: where an
    /// explained apply error points (`map`, the playground).
    pub at: u32,
}

/// A target object: its slots in output order.
#[derive(Debug, Default)]
pub struct ObjectProgram {
    pub slots: Vec<Slot>,
    /// True when the object has required fields: then an empty result is an
    /// error, not an absent object.
    pub has_required: bool,
    /// The object is emitted only when this holds.
    pub when: Option<Condition>,
    /// Set on the root: some rule or condition is a jq expression.
    pub uses_jq: bool,
}

/// What one application of a program keeps between fields: the index of
/// each `lookup` table, built once per document (a lookup per item would
/// otherwise scan the whole table: quadratic in the CRM body).
#[derive(Default)]
pub(crate) struct Ctx<'a> {
    /// Per lookup node and table scope: key text → the first element with it.
    indexes: RefCell<HashMap<(usize, usize), Index<'a>>>,
    /// Set only by an explained application: then a failed field is logged
    /// and the walk goes on, so one run reports every error. The server's
    /// applications leave it `None` and pay one branch per failure.
    explain: Option<&'a RefCell<Log>>,
}

impl<'a> Ctx<'a> {
    /// A context for values built during the application (an object's
    /// entries): the same log, its own lookup indexes.
    fn fork<'b>(&self) -> Ctx<'b>
    where
        'a: 'b,
    {
        Ctx {
            indexes: RefCell::default(),
            explain: self.explain,
        }
    }

    /// A failure met on the walk: a normal application stops with it; an
    /// explained one keeps the first and goes on, so one run sees every
    /// error. [`settled`] returns the kept one at the end.
    fn carry_on(&self, first: &mut Option<Failure>, failure: Failure) -> Result<(), Failure> {
        if self.explain.is_none() {
            return Err(failure);
        }
        first.get_or_insert(failure);
        Ok(())
    }
}

/// A lookup table's elements by key text.
type Index<'a> = HashMap<String, &'a Value>;

/// Where the walk stands: what its sources read (`scope`), the field it is
/// producing (`trail`, rendered only on error), how many parents deep a
/// `lookup` has gone, and the application's context. Copied down the walk:
/// each step hands on one value.
#[derive(Clone, Copy)]
struct At<'w, 'a> {
    scope: Scope<'a>,
    ctx: &'w Ctx<'a>,
    trail: &'w Trail<'w>,
    depth: usize,
}

impl<'w, 'a> At<'w, 'a> {
    /// The start of a walk over a whole document.
    fn root(root: &'a Value, ctx: &'w Ctx<'a>) -> Self {
        At {
            scope: Scope::root(root),
            ctx,
            trail: &Trail::Root,
            depth: 0,
        }
    }

    /// The same place, producing `trail` (a field or an item below it).
    fn on<'v>(self, trail: &'v Trail<'v>) -> At<'v, 'a>
    where
        'w: 'v,
    {
        At {
            scope: self.scope,
            ctx: self.ctx,
            trail,
            depth: self.depth,
        }
    }

    /// The same place, with `item` as `@`.
    fn within(self, item: &'a Value) -> Self {
        At {
            scope: self.scope.with_item(item),
            ..self
        }
    }

    fn invalid(self, message: String) -> Failure {
        Failure::invalid(self.trail, message)
    }
}

impl ObjectProgram {
    /// Applies the program to a whole CRM payload.
    pub(crate) fn apply_root(&self, root: &Value) -> Result<Object, ApplyError> {
        let ctx = Ctx::default();
        self.apply(At::root(root, &ctx))
            .map(Option::unwrap_or_default)
            .map_err(Failure::into_error)
    }

    /// Applies the program with every failure logged instead of returned at
    /// the first (see [`super::explain`]).
    pub(crate) fn apply_explained(&self, root: &Value) -> (Result<Object, ApplyError>, Log) {
        let log = RefCell::default();
        let ctx = Ctx {
            explain: Some(&log),
            ..Ctx::default()
        };
        let out = self
            .apply(At::root(root, &ctx))
            .map(Option::unwrap_or_default);
        drop(ctx);
        let mut log = log.into_inner();
        let out = out.map_err(|f| {
            // A failure no field caught (the budget, a root condition).
            log.failed(None, f.error(), None, Scope::root(root));
            f.into_error()
        });
        (out, log)
    }

    fn apply(&self, at: At<'_, '_>) -> Result<Option<Object>, Failure> {
        let (scope, ctx) = (at.scope, at.ctx);
        if let Some(cond) = &self.when
            && !cond.holds(scope).map_err(|m| at.invalid(m))?
        {
            return Ok(None);
        }
        let mut out = Object::with_capacity(self.slots.len());
        // An explained application's first failure, returned after the
        // remaining fields were tried (a normal one returns it at once).
        let mut first = None;
        for slot in &self.slots {
            let here = Trail::Field(at.trail, slot.name);
            spend(&here, 1)?;
            let failure = match slot.node.produce(at.on(&here)) {
                Ok(Some(v)) => {
                    if let (Some(log), Output::Value(v)) = (&ctx.explain, &v) {
                        log_produced(&mut log.borrow_mut(), slot, scope, &here, v);
                    }
                    out.insert(slot.index, slot.name, v);
                    continue;
                }
                Ok(None) if slot.required => Failure::Missing(ApplyError::new(
                    here.render(),
                    "required, but the mapping produced no value (add a source that the CRM fills, or a `default`)",
                )),
                Ok(None) => continue,
                Err(f) => f,
            };
            if let Some(log) = &ctx.explain {
                log_failed(&mut log.borrow_mut(), slot, scope, &failure);
            }
            ctx.carry_on(&mut first, failure)?;
        }
        settled(first)?;
        Ok(if out.is_empty() && !self.has_required {
            None
        } else {
            Some(out)
        })
    }
}

impl Node {
    fn produce(&self, at: At<'_, '_>) -> Result<Option<Output>, Failure> {
        match self {
            Node::Scalar { rule, ty } => Ok(rule
                .eval(at.scope, *ty)
                .map_err(|m| at.invalid(m))?
                .map(Output::Value)),
            Node::Object(program) => Ok(program.apply(at)?.map(Output::Object)),
            Node::List { parts, required } => {
                let mut list = Vec::new();
                let mut first = None;
                for part in parts {
                    if let Err(f) = part.produce(at, &mut list) {
                        at.ctx.carry_on(&mut first, f)?;
                    }
                }
                settled(first)?;
                let empty_but_there =
                    list.is_empty() && *required && parts.iter().any(|p| p.array_exists(at.scope));
                Ok((!list.is_empty() || empty_but_there).then_some(Output::List(list)))
            }
            Node::StringMap(entries) => {
                let mut map = serde_json::Map::new();
                for (name, rule) in entries {
                    let v = rule.eval(at.scope, FieldType::String).map_err(|m| {
                        Failure::Invalid(ApplyError::new(
                            format!("{}.{name}", at.trail.render()),
                            m,
                        ))
                    })?;
                    if let Some(Value::String(s)) = v
                        && !s.is_empty()
                    {
                        map.insert(name.clone(), Value::String(s));
                    }
                }
                Ok((!map.is_empty()).then_some(Output::Value(Value::Object(map))))
            }
            Node::Lookup(lookup) => Ok(lookup.produce(at, None)?.map(Output::Object)),
        }
    }
}

impl ListPart {
    fn produce(&self, at: At<'_, '_>, list: &mut Vec<Object>) -> Result<(), Failure> {
        let ctx = at.ctx;
        match self {
            ListPart::Item(item) => {
                let here = Trail::Index(at.trail, list.len());
                let mark = ctx.explain.as_ref().map(|log| log.borrow().mark());
                // A list item's own fields start a new chain of parents.
                let item_at = At {
                    depth: 0,
                    ..at.on(&here)
                };
                match item.apply(item_at) {
                    Ok(Some(obj)) => list.push(obj),
                    Ok(None) => {}
                    Err(Failure::Missing(_)) => {
                        // The item is left out, as a normal application
                        // leaves it: what its fields logged did not happen.
                        if let (Some(log), Some(mark)) = (&ctx.explain, mark) {
                            log.borrow_mut().rewind(mark);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            ListPart::Each {
                each,
                filter,
                item,
                entries: false,
                ..
            } => each_item(each.all(at.scope), each.text(), filter, item, at, list)?,
            ListPart::Each {
                each, filter, item, ..
            } => {
                // `{"key": k, "value": v}` per entry, built here: they live
                // shorter than the document, hence a forked context.
                let built: Vec<Value> = each
                    .all(at.scope)
                    .into_iter()
                    .filter_map(Value::as_object)
                    .flatten()
                    .map(|(k, v)| serde_json::json!({"key": k, "value": v}))
                    .collect();
                let nodes = built.iter().collect();
                let label = format!("entries of {}", each.text());
                let forked = ctx.fork();
                let at = At {
                    scope: at.scope,
                    ctx: &forked,
                    trail: at.trail,
                    depth: at.depth,
                };
                each_item(nodes, &label, filter, item, at, list)?;
            }
        }
        Ok(())
    }
}

/// One list item per node (`@` is the node) that passes `filter`.
fn each_item<'a>(
    nodes: Vec<&'a Value>,
    label: &str,
    filter: &Option<Condition>,
    item: &ObjectProgram,
    at: At<'_, 'a>,
    list: &mut Vec<Object>,
) -> Result<(), Failure> {
    let ctx = at.ctx;
    spend(at.trail, nodes.len() as u64)?;
    if let Some(log) = &ctx.explain {
        log.borrow_mut().enter(label.to_owned());
    }
    let mut first = None;
    for node in nodes {
        let inner = at.within(node);
        match filter.as_ref().map(|f| f.holds(inner.scope)) {
            None | Some(Ok(true)) => {}
            Some(Ok(false)) => continue,
            Some(Err(m)) => {
                ctx.carry_on(&mut first, at.invalid(m))?;
                continue;
            }
        }
        let here = Trail::Index(at.trail, list.len());
        match item.apply(At {
            depth: 0,
            ..inner.on(&here)
        }) {
            Ok(Some(obj)) => list.push(obj),
            Ok(None) => {}
            Err(f) => ctx.carry_on(&mut first, f)?,
        }
    }
    if let Some(log) = &ctx.explain {
        log.borrow_mut().leave();
    }
    settled(first)
}

/// The failure an explained walk kept, if any (see [`Ctx::carry_on`]).
fn settled(first: Option<Failure>) -> Result<(), Failure> {
    first.map_or(Ok(()), Err)
}

impl ListPart {
    /// True when this part reads a CRM array that is there (empty or not).
    fn array_exists(&self, scope: Scope<'_>) -> bool {
        match self {
            ListPart::Item(_) => false,
            ListPart::Each { array, entries, .. } => array.first(scope).is_some_and(|v| {
                if *entries {
                    v.is_object()
                } else {
                    v.is_array()
                }
            }),
        }
    }
}

impl Lookup {
    /// The element of the table whose key equals `wanted`, through the
    /// table's index (built on first use in this application).
    fn find<'a>(
        &self,
        at: At<'_, 'a>,
        wanted: &str,
    ) -> Result<Option<&'a Value>, budget::Exceeded> {
        let scope = at.scope;
        // The table depends on the document, or on the item for `@` paths.
        let table_scope = if self.table.is_relative() {
            scope.item.map_or(0, |v| std::ptr::from_ref(v) as usize)
        } else {
            std::ptr::from_ref(scope.root) as usize
        };
        let id = (std::ptr::from_ref(self) as usize, table_scope);
        let mut indexes = at.ctx.indexes.borrow_mut();
        if let Some(index) = indexes.get(&id) {
            return Ok(index.get(wanted).copied());
        }
        let candidates = self.table.all(scope);
        budget::charge(candidates.len() as u64)?;
        let index = indexes.entry(id).or_insert_with(|| {
            let mut index = HashMap::new();
            for candidate in candidates {
                if let Some(key) = self
                    .key
                    .first(scope.with_item(candidate))
                    .and_then(key_text)
                {
                    // The first element with a key wins, as a scan would find.
                    index.entry(key).or_insert(candidate);
                }
            }
            index
        });
        Ok(index.get(wanted).copied())
    }

    /// The parent of the current item. A parent already on the chain (the
    /// item itself, or a parent below) would close a cycle in the CRM's
    /// data: that link is dropped, so the card is served with the chain up
    /// to it, and an explained application says so.
    fn produce(&self, at: At<'_, '_>, below: Option<&Seen<'_>>) -> Result<Option<Object>, Failure> {
        spend(at.trail, 1)?;
        if at.depth >= MAX_LOOKUP_DEPTH {
            return Err(at.invalid(format!(
                "parent chain is longer than {MAX_LOOKUP_DEPTH} (a cycle in the CRM data?)"
            )));
        }
        let ctx = at.ctx;
        let Some(wanted) = self.matches.first(at.scope).and_then(key_text) else {
            return Ok(None);
        };
        let Some(parent) = self
            .find(at, &wanted)
            .map_err(|e| at.invalid(e.to_string()))?
        else {
            return Ok(None);
        };
        let seen = Seen {
            node: at.scope.current(),
            below,
        };
        if seen.holds(parent) {
            if let Some(log) = &ctx.explain {
                log.borrow_mut()
                    .cut_cycle(at.trail.render(), self.key.text(), wanted);
            }
            return Ok(None);
        }
        if let Some(log) = &ctx.explain {
            log.borrow_mut().enter(format!(
                "lookup {} where {} = {}",
                self.table.text(),
                self.key.text(),
                self.matches.text()
            ));
        }
        let out = self.parent(at.within(parent), &seen);
        if let Some(log) = &ctx.explain {
            log.borrow_mut().leave();
        }
        out
    }

    /// The found parent mapped with the enclosing object's fields, and its
    /// own parent nested.
    fn parent(&self, found: At<'_, '_>, seen: &Seen<'_>) -> Result<Option<Object>, Failure> {
        let inner = At {
            depth: found.depth + 1,
            ..found
        };
        let Some(mut obj) = self.fields.apply(inner)? else {
            return Ok(None);
        };
        let up = Trail::Field(inner.trail, self.name);
        if let Some(grand) = self.produce(inner.on(&up), Some(seen))? {
            obj.insert(self.index, self.name, Output::Object(grand));
        }
        Ok(Some(obj))
    }
}

/// The elements a parent chain has gone through, the latest first (on the
/// stack: a chain costs no allocation).
struct Seen<'s> {
    node: &'s Value,
    below: Option<&'s Seen<'s>>,
}

impl Seen<'_> {
    /// Whether `node` (the same element of the document) is on the chain.
    fn holds(&self, node: &Value) -> bool {
        let mut at = Some(self);
        while let Some(seen) = at {
            if std::ptr::eq(seen.node, node) {
                return true;
            }
            at = seen.below;
        }
        false
    }
}

/// Logs the source chain of a field an explained application produced
/// (scalars and string-map entries: objects and lists are made of those).
fn log_produced(log: &mut Log, slot: &Slot, scope: Scope<'_>, here: &Trail<'_>, value: &Value) {
    match &slot.node {
        Node::Scalar { rule, .. } => log.produced(here.render(), rule, scope, value),
        Node::StringMap(entries) => {
            let field = here.render();
            for (name, rule) in entries {
                if let Some(v) = value.get(name) {
                    log.produced(format!("{field}.{name}"), rule, scope, v);
                }
            }
        }
        _ => {}
    }
}

/// Logs a field's failure at its rule, with the rule to replay for the
/// value and the expectation.
fn log_failed(log: &mut Log, slot: &Slot, scope: Scope<'_>, failure: &Failure) {
    let error = failure.error();
    let rule = match &slot.node {
        Node::Scalar { rule, ty } => Some((&**rule, *ty)),
        Node::StringMap(entries) => entries
            .iter()
            .find(|(name, _)| {
                error
                    .field
                    .strip_suffix(name.as_str())
                    .is_some_and(|f| f.ends_with('.'))
            })
            .map(|(_, rule)| (rule, FieldType::String)),
        _ => None,
    };
    let missing = matches!(failure, Failure::Missing(_));
    log.failed(Some(slot.at), error, rule.map(|r| (r, missing)), scope);
}
