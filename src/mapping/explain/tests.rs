//! Explained applications: every error at its rule with value and
//! expectation, the same card as `apply` when all is well, and the source
//! chain of each field.

use serde_json::json;

use crate::mapping::Mapping;
use crate::schema::ApiVersion;
use crate::schema::auth_api::RESPONSE;

const MAPPING: &str = r#"[client]
id = "$.id"
name = "$.fullName"
surname = "$.last"
birthdate = { path = "$.born", date = ["%d.%m.%Y", "iso"] }
inn = { path = ["$.taxId", "$.inn"], replace = [{ pattern = "[^0-9]", with = "" }] }
enabled = { path = "$.active", default = true }
firstName = { const = "" }
patronymic = { const = "" }
type = { const = "0" }

[client.branch]
id = "$.branch"

[companyList]
each = "$.orgs[*]"
item = { id = "@.id", name = "@.title" }
"#;

fn mapping() -> Mapping {
    Mapping::parse("m.toml", MAPPING, &RESPONSE, ApiVersion::V1_2).unwrap()
}

#[test]
fn collects_every_error_with_position_value_and_expectation() {
    let crm = json!({
        "id": 1, "fullName": "A", "last": "B",
        "born": "1973/09/02",
        "branch": "9223372036854775808",
        "orgs": [{"id": "x7", "title": "Org"}]
    });
    let m = mapping();
    let first = m.apply(&crm).unwrap_err();
    let explained = m.explain(&crm);
    assert_eq!(explained.card, None);
    let lines: Vec<String> = explained.errors.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    // The first is the one `apply` stops at, with its value-free message.
    assert_eq!(explained.errors[0].field, first.field);
    assert_eq!(explained.errors[0].message, first.message);
    // Each line: its file position and field, then what is wrong with it.
    let expected: [(&str, &[&str]); 3] = [
        (
            "m.toml:5:1: client.birthdate: ",
            &[
                "value: \"1973/09/02\"",
                "expected: a date in one of the formats [%d.%m.%Y, iso]",
            ],
        ),
        (
            "m.toml:13:1: client.branch.id: ",
            &[
                "out of range for a 64-bit integer",
                "value: \"9223372036854775808\"",
            ],
        ),
        ("m.toml:17:", &["companyList[0].id", "value: \"x7\""]),
    ];
    for (line, (start, parts)) in lines.iter().zip(expected) {
        assert!(line.starts_with(start), "{line}");
        for part in parts {
            assert!(line.contains(part), "{part} not in {line}");
        }
    }
}

#[test]
fn a_clean_run_gives_the_same_card_and_every_source() {
    let crm = json!({
        "id": 1, "fullName": "A", "last": "B", "born": "02.09.1973",
        "inn": "77-01", "branch": 12,
        "orgs": [{"id": 5, "title": "Org"}]
    });
    let m = mapping();
    let explained = m.explain(&crm);
    assert!(explained.errors.is_empty(), "{:?}", explained.errors);
    assert_eq!(explained.card, Some(m.apply(&crm).unwrap()));
    let source = |field: &str| {
        explained
            .sources
            .iter()
            .find(|s| s.field == field)
            .map(|s| s.source.clone())
            .unwrap_or_else(|| panic!("no source for {field}: {:#?}", explained.sources))
    };
    assert_eq!(source("client.birthdate"), "$.born | date [%d.%m.%Y, iso]");
    assert_eq!(source("client.inn"), "$.inn | replace /[^0-9]/ → \"\"");
    assert_eq!(source("client.enabled"), "default true");
    assert_eq!(source("companyList[0].name"), "$.orgs[*] → @.title");
}

#[test]
fn a_missing_required_value_says_where_it_was_looked_for() {
    let explained = mapping().explain(&json!({"id": 1, "fullName": "A"}));
    let line = explained.errors[0].to_string();
    assert!(
        line.starts_with("m.toml:4:1: client.surname: required")
            && line.ends_with("(expected: a value at $.last)"),
        "{line}"
    );
}
