//! What the scaffold looks for: for each card field, the names CRMs give it
//! (English and Russian, each with a weight) and the shape its value must
//! have, kept as data in `names.toml`; and the score of a sample leaf as
//! that field.
//!
//! A name alone misleads (`name` is a full name in one CRM, a first name in
//! another), a shape alone too (any 10 digits are not an INN): the score is
//! their product, so both must fit.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::Value;

use super::sample::{Leaf, Seg, leaf_name};

/// The shape a field's value must have in the sample.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// A non-empty string or an integer.
    Id,
    /// An integer or a string of digits (Company, Group and Branch ids).
    IntId,
    Text,
    /// One word of a name: text without inner spaces (a full name in a
    /// `name` key is not a first name).
    Word,
    Bool,
    /// A value one of the `date` formats reads; see [`date_format`].
    Date,
    /// 10 or 12 digits (a Russian tax number).
    Inn,
    Email,
    Phone,
    Url,
    /// A code such as `0`/`1` (the client type).
    Code,
}

/// One card field the scaffold fills from a leaf.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The field's key in its mapping table.
    pub field: String,
    /// Normalized names (see `sample::normalize`) and how sure each is.
    pub names: BTreeMap<String, f64>,
    pub shape: Shape,
}

/// The tables the scaffold fills, as `names.toml` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    /// `[client]`.
    Client,
    /// `[client.contacts]`.
    Contacts,
    /// `[client.branch]`, looked for under a branch-like key only.
    Branch,
    /// A Company, relative to its item.
    Company,
    /// A Group, relative to its item.
    Group,
    /// The job title, the one extra line (`[[client.fieldList]]`) a draft
    /// offers the operator.
    JobTitle,
}

/// `names.toml`, read once.
static TARGETS: LazyLock<BTreeMap<Table, Vec<Target>>> = LazyLock::new(|| {
    toml::from_str(include_str!("names.toml")).expect("names.toml parses (a unit test reads it)")
});

/// The fields looked for in `table`, most specific first: a leaf taken by
/// one is not offered to the next (`surname` before the ambiguous `name`).
pub fn targets(table: Table) -> &'static [Target] {
    TARGETS.get(&table).map_or(&[], Vec::as_slice)
}

/// Keys of a company, an array of them, or the object holding one.
pub fn company_like(key: &str) -> bool {
    [
        "compan",
        "account",
        "organi",
        "компан",
        "организ",
        "employer",
    ]
    .iter()
    .any(|w| key.contains(w))
        || matches!(key, "org" | "orgs")
}

/// Keys of a branch.
pub fn branch_like(key: &str) -> bool {
    ["branch", "office", "filial", "филиал", "отделени"]
        .iter()
        .any(|w| key.contains(w))
}

/// Keys of a list of groups.
pub fn group_like(key: &str) -> bool {
    [
        "tag",
        "group",
        "segment",
        "группы",
        "групп",
        "теги",
        "категор",
    ]
    .iter()
    .any(|w| key.contains(w))
}

/// How well `leaf` fits `target`, 0 (not at all) to about 1.
pub fn score(target: &Target, leaf: &Leaf) -> f64 {
    let name = leaf_name(&leaf.segs);
    let by_name = target
        .names
        .iter()
        .map(|(word, weight)| {
            if name == *word {
                *weight
            } else {
                let sim = strsim::jaro_winkler(&name, word);
                if sim >= 0.9 { 0.8 * weight * sim } else { 0.0 }
            }
        })
        .fold(0.0, f64::max);
    // An address or a phone number says what it is wherever it sits.
    let by_name = match target.shape {
        Shape::Email if by_name == 0.0 => 0.5,
        _ => by_name,
    };
    let depth = leaf.segs.len() as f64 * 0.01;
    by_name * fits(target.shape, &leaf.value) - depth
}

/// How well `value` has `shape`: 0, a half, or 1.
pub fn fits(shape: Shape, value: &Value) -> f64 {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return 0.0,
    };
    let digits = !text.is_empty() && text.chars().all(|c| c.is_ascii_digit());
    match shape {
        Shape::Id => f64::from(!text.is_empty() && !value.is_boolean()),
        Shape::IntId => f64::from((value.is_i64() || value.is_u64() || digits) && text.len() <= 18),
        Shape::Text => match value {
            Value::String(s) if !s.trim().is_empty() => 1.0,
            Value::Number(_) => 0.5,
            _ => 0.0,
        },
        Shape::Word => match value {
            Value::String(_) if text.contains(char::is_whitespace) => 0.4,
            Value::String(_) if !text.is_empty() => 1.0,
            _ => 0.0,
        },
        Shape::Bool => match value {
            Value::Bool(_) => 1.0,
            _ if matches!(
                text.to_ascii_lowercase().as_str(),
                "y" | "n" | "yes" | "no" | "true" | "false" | "0" | "1"
            ) =>
            {
                0.8
            }
            _ => 0.0,
        },
        Shape::Date => f64::from(date_format(value).is_some()),
        Shape::Inn if digits && matches!(text.len(), 10 | 12) => 1.0,
        Shape::Inn if digits && (9..=12).contains(&text.len()) => 0.5,
        Shape::Inn => 0.0,
        Shape::Email => f64::from(text.contains('@') && !text.contains(' ')),
        Shape::Phone => {
            let n = text.chars().filter(char::is_ascii_digit).count();
            f64::from(
                (7..=15).contains(&n)
                    && text
                        .chars()
                        .all(|c| c.is_ascii_digit() || " +-()".contains(c)),
            )
        }
        Shape::Url => f64::from(text.starts_with("http://") || text.starts_with("https://")),
        Shape::Code => f64::from(digits && text.len() <= 2),
    }
}

/// The `date` format that reads `value`, if it looks like a date: ISO 8601,
/// dotted `DD.MM.YYYY`, slashed (month first unless the first number is over
/// 12), compact `YYYYMMDD`, or Unix seconds / milliseconds.
pub fn date_format(value: &Value) -> Option<&'static str> {
    let text = match value {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => return None,
    };
    let b = text.as_bytes();
    let d = |i: usize| b.get(i).is_some_and(u8::is_ascii_digit);
    let all = |r: std::ops::Range<usize>| r.clone().all(d);
    if b.len() >= 10 && all(0..4) && b[4] == b'-' && all(5..7) && b[7] == b'-' && all(8..10) {
        return Some("iso");
    }
    if b.len() == 10 && all(0..2) && b[2] == b'.' && all(3..5) && b[5] == b'.' && all(6..10) {
        return Some("%d.%m.%Y");
    }
    if b.len() == 10 && all(0..2) && b[2] == b'/' && all(3..5) && b[5] == b'/' && all(6..10) {
        let first: u32 = text[..2].parse().ok()?;
        return Some(if first > 12 { "%d/%m/%Y" } else { "%m/%d/%Y" });
    }
    if b.len() == 8 && all(0..8) && matches!(&text[..2], "19" | "20") {
        return Some("%Y%m%d");
    }
    if all(0..b.len()) && matches!(b.len(), 9 | 10) {
        return Some("epoch_seconds");
    }
    if all(0..b.len()) && matches!(b.len(), 12 | 13) {
        return Some("epoch_millis");
    }
    None
}

/// Whether any key along `segs` (the leaf's own excluded) passes `like`.
pub fn under(segs: &[Seg], like: fn(&str) -> bool) -> bool {
    let keys: Vec<String> = super::sample::keys(segs)
        .map(super::sample::normalize)
        .collect();
    let n = keys.len().saturating_sub(1);
    keys[..n].iter().any(|k| like(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaffold::sample::normalize;
    use crate::schema::auth_api;

    /// `names.toml` parses; each field it names is a field of its table in
    /// the Auth API schema, each name is as `normalize` makes leaf names,
    /// and each weight is a score.
    #[test]
    fn every_target_is_a_schema_field_of_its_table() {
        let tables = [
            (Table::Client, &auth_api::CLIENT),
            (Table::Contacts, &auth_api::CONTACTS),
            (Table::Branch, &auth_api::BRANCH),
            (Table::Company, &auth_api::COMPANY),
            (Table::Group, &auth_api::GROUP),
            (Table::JobTitle, &auth_api::FIELD),
        ];
        assert_eq!(TARGETS.len(), tables.len());
        for (table, schema) in tables {
            let targets = super::targets(table);
            assert!(!targets.is_empty(), "{}", schema.name);
            for target in targets {
                let field = &target.field;
                assert!(schema.field(field).is_some(), "{}.{field}", schema.name);
                assert!(!target.names.is_empty(), "{field}");
                for (name, weight) in &target.names {
                    assert_eq!(*name, normalize(name), "{field}");
                    assert!(*weight > 0.0 && *weight <= 1.0, "{field}: {name}");
                }
            }
        }
    }
}
