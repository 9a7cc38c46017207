//! `authbridge check`'s warnings about jq rules whose work can grow without
//! bound from the CRM's data, where that can be told from the text: a
//! `range` whose bound is read from the input, loops driven by the input
//! (`repeat`, `recurse`, `while`, `until`), a `limit` whose count is read
//! from the input, a string repeated by a computed count. The mapping budget
//! stops such rules at run time (the lookup fails with 1003); the warning
//! says so before a CRM record finds it.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostics::{Diagnostic, Diagnostics};

/// Warnings for every `jq = "..."` in the mapping text.
pub fn lint(file: &str, text: &str) -> Vec<Diagnostic> {
    let Ok(doc) = DeTable::parse(text) else {
        return Vec::new();
    };
    let mut found = Diagnostics::new(file, text);
    walk_table(doc.get_ref(), "", &mut |field, code, at| {
        for message in risks(code) {
            found.report(
                at..at,
                field,
                format!("warning: {message}; the mapping budget stops it at run time (errorCode 1003), cap it in the rule"),
            );
        }
    });
    found.into_vec()
}

fn walk_table(table: &DeTable<'_>, at: &str, f: &mut dyn FnMut(&str, &str, usize)) {
    for (key, value) in table.iter() {
        let name: &str = key.get_ref();
        let field = if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        };
        if name == "jq"
            && let DeValue::String(code) = value.get_ref()
        {
            f(at, code, value.span().start);
            continue;
        }
        walk_value(value, &field, f);
    }
}

fn walk_value(value: &Spanned<DeValue<'_>>, at: &str, f: &mut dyn FnMut(&str, &str, usize)) {
    match value.get_ref() {
        DeValue::Table(t) => walk_table(t, at, f),
        DeValue::Array(items) => {
            for item in items {
                walk_value(item, at, f);
            }
        }
        _ => {}
    }
}

/// The arguments of each call of `name(` in `code` (up to the matching
/// parenthesis).
fn calls<'c>(code: &'c str, name: &str) -> Vec<&'c str> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find(name) {
        let start = from + i;
        from = start + name.len();
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[from..];
        if !rest.starts_with('(') {
            out.push("");
            continue;
        }
        let mut depth = 0;
        for (j, c) in rest.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        out.push(&rest[1..j]);
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// Whether jq text reads from the input or a variable (not only literals).
fn from_input(args: &str) -> bool {
    args.contains('.') && args.chars().any(|c| c.is_ascii_alphabetic() || c == '[')
        || args.contains('$')
        || args.contains("length")
        || args.contains("tonumber")
}

/// What in `code` can grow without bound from the input.
fn risks(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    if calls(code, "range").iter().any(|a| from_input(a)) {
        out.push(
            "jq `range` over a value from the CRM's data can run for as long as that value says"
                .to_owned(),
        );
    }
    for name in ["repeat", "recurse", "while", "until"] {
        if !calls(code, name).is_empty() && !code.contains("limit(") {
            out.push(format!(
                "jq `{name}` without a `limit` loops for as long as the CRM's data allows"
            ));
        }
    }
    if calls(code, "limit")
        .iter()
        .any(|a| from_input(a.split(';').next().unwrap_or("")))
    {
        out.push("jq `limit` with a count from the CRM's data is no bound".to_owned());
    }
    if code.contains("\" *") || code.contains("\"*") {
        out.push("jq string repetition (`\"...\" * n`) by a computed count can build a string of any size".to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_about_input_driven_growth_only() {
        assert_eq!(risks("[range(.count)] | length").len(), 1);
        assert_eq!(risks("[range($n)]").len(), 1);
        assert!(risks("[range(3)] | map(. * 2)").is_empty());
        assert_eq!(risks("[recurse(.children[])] | length").len(), 1);
        assert!(risks("[limit(10; recurse(.children[]))]").is_empty());
        assert_eq!(risks("\"x\" * .n").len(), 1);
        assert!(risks(".client.phones | map(select(.primary)) | .[0].number").is_empty());
        assert!(risks("ascii_downcase | strange_range(1)").is_empty());
    }

    #[test]
    fn points_at_the_rule() {
        let text =
            "[client]\nid = \"$.id\"\nsecretWord = { jq = \"[range(.n)] | length | tostring\" }\n";
        let found = lint("m.toml", text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].line, found[0].field.as_str()),
            (3, "client.secretWord")
        );
        assert!(found[0].message.starts_with("warning: jq `range`"));
    }
}
