//! `authbridge scaffold`: a draft mapping from a CRM sample the tool has
//! never seen. Each card field gets the sample path that fits it best by
//! name and value shape, the runners-up as comments, and a `TODO` where
//! nothing fits; a required field with no candidate still gets a valid rule
//! (a constant), so the draft passes `authbridge check` as written and the
//! integrator edits from a working file.

mod fields;
mod sample;

use std::collections::HashSet;
use std::fmt::Write;

use serde_json::Value;

use fields::{Shape, Table, Target};
use sample::{Leaf, Sample, Seg, jq_path, jsonpath};

/// How good a candidate must be to be used or offered.
const THRESHOLD: f64 = 0.45;

/// The draft mapping for the CRM answer `crm`, as TOML text.
pub fn draft(crm: &Value) -> String {
    let all = Sample::of(crm);
    let mut out = String::from(HEADER);
    let client: Vec<Leaf> = all
        .leaves
        .iter()
        .filter(|l| {
            !fields::under(&l.segs, fields::company_like)
                && !fields::under(&l.segs, fields::branch_like)
                && !fields::under(&l.segs, fields::group_like)
        })
        .cloned()
        .collect();
    let mut used = HashSet::new();
    let picks = pick_all(fields::targets(Table::Client), &client, &mut used);
    out.push_str("\n[client]\n");
    let found = |name: &str| {
        picks
            .iter()
            .find(|p| p.target.field == name)
            .and_then(|p| p.best.as_ref())
    };
    let (surname, first, middle) = (found("surname"), found("firstName"), found("patronymic"));
    for p in &picks {
        match p.target.field.as_str() {
            // A bare `name` key is as often a first name: a template of the
            // parts is the safer full name when the parts are there.
            "name" if surname.is_some() && p.best.as_ref().is_none_or(|b| b.score < 0.9) => {
                let parts: Vec<String> = [surname, first, middle]
                    .into_iter()
                    .flatten()
                    .map(|l| format!("{{{}}}", jsonpath('$', &l.segs)))
                    .collect();
                let template = toml_str(&parts.join(" "));
                let _ = writeln!(out, "name = {{ template = {template}, default = \"\" }}");
                p.comment_others(&mut out, '$', &[]);
            }
            "shortName" if p.best.is_none() && surname.is_some() && first.is_some() => {
                let jq = short_name_jq(surname, first, middle);
                let _ = writeln!(out, "shortName = {{ jq = {} }}", toml_str(&jq));
            }
            _ => p.write(&mut out, "client", '$', &[]),
        }
    }
    contacts(&mut out, &client, &mut used);
    branch(&mut out, &all);
    field_list(&mut out, &client, &used);
    group(&mut out, &all);
    company_list(&mut out, &all);
    out
}

const HEADER: &str = "\
# Draft mapping written by `authbridge scaffold` from one CRM sample.
# Every rule is a guess by field name and value shape: check each one, act on
# each TODO, then `authbridge map --mapping THIS --input SAMPLE` and compare.
# Other candidates follow a rule as `# also:` comments. The language and the
# card's fields: docs/mapping.md.

[meta]
name = \"draft\"
description = \"Drafted by authbridge scaffold; review before use\"
";

/// A field's best leaf and the runners-up.
struct Pick<'a> {
    target: &'static Target,
    best: Option<Scored<'a>>,
    others: Vec<Scored<'a>>,
}

struct Scored<'a> {
    leaf: &'a Leaf,
    score: f64,
}

impl std::ops::Deref for Scored<'_> {
    type Target = Leaf;
    fn deref(&self) -> &Leaf {
        self.leaf
    }
}

/// A [`pick`] for each of `targets` in turn, so an earlier target's best
/// leaf is not a later one's.
fn pick_all<'a>(
    targets: &'static [Target],
    leaves: &'a [Leaf],
    used: &mut HashSet<String>,
) -> Vec<Pick<'a>> {
    targets.iter().map(|t| pick(t, leaves, used)).collect()
}

/// The leaves of `leaves` that fit `target`, best first; the best is marked
/// used so a less specific field does not take it too.
fn pick<'a>(target: &'static Target, leaves: &'a [Leaf], used: &mut HashSet<String>) -> Pick<'a> {
    let mut scored: Vec<Scored> = leaves
        .iter()
        .map(|leaf| Scored {
            leaf,
            score: fields::score(target, leaf),
        })
        .filter(|s| s.score >= THRESHOLD)
        .collect();
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    let at = scored
        .iter()
        .position(|s| !used.contains(&jsonpath('$', &s.segs)));
    let best = at.map(|i| scored.remove(i));
    if let Some(b) = &best {
        used.insert(jsonpath('$', &b.segs));
    }
    scored.truncate(3);
    Pick {
        target,
        best,
        others: scored,
    }
}

/// Fields a valid object must carry, with the constant a draft uses when
/// the sample has nothing for them.
fn required_default(object: &str, field: &str) -> Option<&'static str> {
    match (object, field) {
        ("client", "id" | "name" | "surname" | "firstName" | "patronymic") => Some("\"\""),
        ("client", "type") => Some("\"0\""),
        ("client", "enabled") => Some("true"),
        _ => None,
    }
}

impl Pick<'_> {
    /// Writes `field = rule` (paths from `root`, below `prefix`), or the
    /// placeholder and its TODO.
    fn write(&self, out: &mut String, object: &str, root: char, prefix: &[Seg]) {
        let field = self.target.field.as_str();
        let required = required_default(object, field);
        let Some(best) = &self.best else {
            match required {
                Some(value) => {
                    let _ = writeln!(
                        out,
                        "# TODO {field}: required, nothing in the sample looks like it; a constant for now"
                    );
                    let _ = writeln!(out, "{field} = {{ const = {value} }}");
                }
                None => {
                    let _ = writeln!(out, "# TODO {field}: nothing in the sample looks like it");
                }
            }
            return;
        };
        let path = toml_str(&jsonpath(root, &[prefix, &best.segs].concat()));
        let rule = match (self.target.shape, required) {
            (Shape::Date, _) => {
                let format = fields::date_format(&best.value).unwrap_or("iso");
                format!("{{ path = {path}, date = {} }}", toml_str(format))
            }
            (_, Some(value)) => format!("{{ path = {path}, default = {value} }}"),
            (Shape::Phone, None) if object == "contacts" => format!(
                "{{ path = {path}, replace = {{ pattern = \"[^0-9+]\", with = \"\" }}, skip_empty = true }}"
            ),
            _ => path,
        };
        let _ = writeln!(out, "{field} = {rule}");
        self.comment_others(out, root, prefix);
    }

    fn comment_others(&self, out: &mut String, root: char, prefix: &[Seg]) {
        if self.others.is_empty() {
            return;
        }
        let others: Vec<String> = self
            .others
            .iter()
            .map(|o| {
                let path = jsonpath(root, &[prefix, &o.segs].concat());
                format!("{path} ({})", sample_text(&o.value))
            })
            .collect();
        let _ = writeln!(out, "#   also: {}", others.join(", "));
    }
}

/// A short sample value for a comment (one line, at most 40 characters).
fn sample_text(value: &Value) -> String {
    let text = value.to_string().replace(['\n', '\r'], " ");
    match text.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// `Surname F. P.` from the parts found, in jq (initials have no rule key).
fn short_name_jq(
    surname: Option<&Scored>,
    first: Option<&Scored>,
    middle: Option<&Scored>,
) -> String {
    let initial = |l: Option<&Scored>| {
        l.map(|l| {
            format!(
                ", (({} // \"\") | .[0:1] | if . == \"\" then . else . + \".\" end)",
                jq_path(&l.segs)
            )
        })
        .unwrap_or_default()
    };
    format!(
        "[({} // \"\"){}{}] | map(select(. != \"\")) | join(\" \")",
        surname.map(|l| jq_path(&l.segs)).unwrap_or_default(),
        initial(first),
        initial(middle)
    )
}

/// `[client.contacts]` from the client's leaves.
fn contacts(out: &mut String, client: &[Leaf], used: &mut HashSet<String>) {
    let picks = pick_all(fields::targets(Table::Contacts), client, used);
    if picks.iter().all(|p| p.best.is_none()) {
        out.push_str("\n# TODO [client.contacts]: no phone, e-mail or messenger found\n");
        return;
    }
    out.push_str("\n[client.contacts]\n");
    for p in &picks {
        p.write(out, "contacts", '$', &[]);
    }
}

/// `[client.branch]` from leaves under a branch-like key.
fn branch(out: &mut String, all: &Sample) {
    let leaves: Vec<Leaf> = all
        .leaves
        .iter()
        .filter(|l| fields::under(&l.segs, fields::branch_like))
        .cloned()
        .collect();
    let picks = pick_all(fields::targets(Table::Branch), &leaves, &mut HashSet::new());
    if picks.iter().all(|p| p.best.is_none()) {
        out.push_str("\n# TODO [client.branch]: no branch or office object found\n");
        return;
    }
    out.push_str("\n[client.branch]\n");
    for p in picks.iter().filter(|p| p.best.is_some()) {
        p.write(out, "branch", '$', &[]);
    }
}

/// `[[client.fieldList]]`: the job title when there is one; the rest is the
/// integrator's choice of what the operator should see.
fn field_list(out: &mut String, client: &[Leaf], used: &HashSet<String>) {
    let mut taken = used.clone();
    let p = pick(&fields::targets(Table::JobTitle)[0], client, &mut taken);
    out.push_str(
        "\n# TODO [[client.fieldList]]: the extra lines the operator should see, one table each.\n",
    );
    if let Some(best) = &p.best {
        let _ = writeln!(
            out,
            "[[client.fieldList]]\nname  = {{ const = \"Job title\" }}\nvalue = {}",
            toml_str(&jsonpath('$', &best.segs))
        );
    }
}

/// The best array of objects for a list: its key passes `like` (or its
/// parent's does, for `{"companies": {"results": [...]}}`), its first item
/// has an integer id; an item with a name is preferred.
fn list<'a>(
    all: &'a Sample,
    like: fn(&str) -> bool,
    targets: &'static [Target],
) -> Option<(&'a sample::Array, Sample)> {
    all.arrays
        .iter()
        .filter(|a| {
            let keys: Vec<String> = sample::keys(&a.segs).map(sample::normalize).collect();
            keys.iter().rev().take(2).any(|k| like(k))
        })
        .map(|a| {
            let item = Sample::of(&a.value);
            let has = |i: usize| {
                item.leaves
                    .iter()
                    .any(|l| fields::score(&targets[i], l) >= THRESHOLD)
            };
            let rank = u8::from(has(0)) * 2 + u8::from(has(1));
            (rank, a, item)
        })
        .filter(|(rank, ..)| *rank >= 2)
        .max_by_key(|(rank, a, _)| (*rank, std::cmp::Reverse(a.segs.len())))
        .map(|(_, a, item)| (a, item))
}

/// `[client.group]` from an array of tags or groups.
fn group(out: &mut String, all: &Sample) {
    let Some((array, item)) = list(all, fields::group_like, fields::targets(Table::Group)) else {
        out.push_str("\n# TODO [client.group]: no array of groups or tags with ids found\n");
        return;
    };
    let _ = writeln!(
        out,
        "\n[client.group]\neach = {}\n[client.group.item]",
        toml_str(&format!("{}[*]", jsonpath('$', &array.segs)))
    );
    write_item(out, fields::targets(Table::Group), &item);
}

/// `companyList` from an array of companies, else from one company object.
fn company_list(out: &mut String, all: &Sample) {
    if let Some((array, item)) = list(all, fields::company_like, fields::targets(Table::Company)) {
        let _ = writeln!(
            out,
            "\n[companyList]\neach = {}\n[companyList.item]",
            toml_str(&format!("{}[*]", jsonpath('$', &array.segs)))
        );
        write_item(out, fields::targets(Table::Company), &item);
        return;
    }
    // One company as an object: an explicit item, left out when its id is
    // missing.
    let single = all
        .objects
        .iter()
        .filter(|o| {
            sample::keys(&o.segs)
                .map(sample::normalize)
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .take(2)
                .any(|k| fields::company_like(k))
        })
        .find_map(|o| {
            let inner = Sample::of(&o.value);
            let mut used = HashSet::new();
            let id = pick(
                &fields::targets(Table::Company)[0],
                &inner.leaves,
                &mut used,
            );
            id.best.is_some().then_some((o, inner))
        });
    let Some((object, inner)) = single else {
        out.push_str("\n# TODO companyList: no array of organisations with ids found\n");
        return;
    };
    out.push_str(
        "\n# One company, read from an object (an explicit list item).\n[[companyList]]\n",
    );
    for p in pick_all(
        fields::targets(Table::Company),
        &inner.leaves,
        &mut HashSet::new(),
    ) {
        if p.best.is_some() {
            p.write(out, "company", '$', &object.segs);
        }
    }
}

/// The fields of a list item, relative (`@`).
fn write_item(out: &mut String, targets: &'static [Target], item: &Sample) {
    for p in pick_all(targets, &item.leaves, &mut HashSet::new()) {
        if p.best.is_some() {
            p.write(out, "item", '@', &[]);
        }
    }
}

#[cfg(test)]
mod tests;
