//! The source tree's shape, checked: no import cycle between `src/` files
//! and no file over 600 lines.
//!
//! A file depends on another when it names a path into it (`crate::a::b`,
//! `super::c`, in a `use` or inline). A module's `mod.rs` may re-export its
//! children; a child naming only its siblings through `super::` is not an
//! edge to `mod.rs`. Then every strongly connected component of the graph
//! must be a single file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::helpers::repo_path;

/// Every `.rs` file under `src/`, by its module path (`front::auth_api`).
fn modules() -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, at: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut inner = at.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if name == "main" {
                    continue;
                }
                let mut module = at.to_vec();
                if !matches!(name.as_str(), "mod" | "lib") {
                    module.push(name);
                }
                out.insert(module, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&repo_path("src"), &[], &mut out);
    out
}

/// The paths a file names after `crate::` or `super::` (brace groups
/// expanded one level: `crate::a::{b, c::D}` gives `a::b` and `a::c::D`).
fn named_paths(text: &str, here: &[String], is_mod_rs: bool) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    for (anchor, up) in [("crate::", None), ("super::", Some(()))] {
        let mut from = 0;
        while let Some(i) = text[from..].find(anchor) {
            let start = from + i;
            from = start + anchor.len();
            if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
                continue;
            }
            // The base module the path starts from.
            let mut base: Vec<String> = if up.is_some() {
                // `super` of a mod.rs is its parent's parent.
                let mut b = here.to_vec();
                if !is_mod_rs || !b.is_empty() {
                    b.pop();
                }
                if is_mod_rs {
                    b.pop();
                }
                b
            } else {
                Vec::new()
            };
            let rest = &text[from..];
            let segment_end = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(rest.len());
            let chain = &rest[..segment_end];
            base.extend(
                chain
                    .split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            if rest[segment_end..].starts_with('{') {
                let group_end = rest[segment_end..]
                    .find('}')
                    .map_or(rest.len(), |j| segment_end + j);
                for item in rest[segment_end + 1..group_end].split(',') {
                    let item = item.trim();
                    let mut p = base.clone();
                    p.extend(
                        item.split("::")
                            .map(|s| s.trim().trim_start_matches('{'))
                            .filter(|s| !s.is_empty() && *s != "self")
                            .map(str::to_owned),
                    );
                    out.push(p);
                }
            } else {
                out.push(base);
            }
        }
    }
    out
}

/// The file a path lands in: the longest module prefix that is a file.
fn resolve<'m>(
    path: &[String],
    modules: &'m BTreeMap<Vec<String>, PathBuf>,
) -> Option<&'m Vec<String>> {
    (0..=path.len())
        .rev()
        .find_map(|n| modules.get_key_value(&path[..n]).map(|(k, _)| k))
}

fn graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules = modules();
    let mut edges = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).unwrap();
        // Tests inside a file may reach anywhere; they are not the layout.
        let text = text.split("#[cfg(test)]").next().unwrap_or(&text);
        let is_mod_rs = file.file_name().is_some_and(|n| n == "mod.rs");
        let mut to = BTreeSet::new();
        for path in named_paths(text, module, is_mod_rs) {
            if let Some(target) = resolve(&path, &modules)
                && target != module
                // A child reaching its own mod.rs only for a sibling's path
                // resolves to the sibling; reaching the root (lib.rs) for a
                // re-export is not an edge either.
                && !target.is_empty()
            {
                to.insert(target.clone());
            }
        }
        edges.insert(module.clone(), to);
    }
    edges
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        next: usize,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Vec<String>) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            let Some((w, _)) = s.edges.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(if w.is_empty() {
                    "lib".to_owned()
                } else {
                    w.join("::")
                });
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_import_cycle_between_source_files() {
    let edges = graph();
    assert!(edges.len() > 20, "the source tree was read");
    let found = cycles(&edges);
    assert!(found.is_empty(), "import cycles: {found:#?}");
}

#[test]
fn no_source_file_over_600_lines() {
    let long: Vec<(String, usize)> = modules()
        .values()
        .map(|f| {
            let lines = std::fs::read_to_string(f).unwrap().lines().count();
            (
                f.strip_prefix(repo_path(""))
                    .unwrap_or(f)
                    .display()
                    .to_string(),
                lines,
            )
        })
        .filter(|(_, n)| *n > 600)
        .collect();
    assert!(long.is_empty(), "files over 600 lines: {long:?}");
}
