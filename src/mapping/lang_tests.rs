//! Tests of the integrators' language additions: fallbacks past empty and
//! null-like values, `null_values`, object entries and parent cycles, each
//! through a whole mapping as a file would say it.

use super::*;
use crate::schema::auth_api::RESPONSE;
use serde_json::json;

use super::tests::{HEAD, mapping, person, with_head};

/// Asserts that `rest` under the common head fails to load with each of
/// `expected` in its diagnostics.
#[track_caller]
fn assert_rejected(rest: &str, expected: &[&str]) {
    super::tests::assert_rejected(&with_head(rest), expected)
}

#[test]
fn skip_empty_falls_through_a_list_of_paths_to_the_first_non_empty() {
    let m = mapping(
        r#"
[client.contacts]
phone = { path = ["$.mobile", "$.phones[*].value"], trim = true, skip_empty = true }
email = ["$.email", "$.email2"]
"#,
    );
    let card = m
        .apply(&person(json!({
            "mobile": " ",
            "phones": [{"value": "", "primary": true}, {"value": "+7 999"}],
            "email": "", "email2": "b@x"
        })))
        .unwrap();
    // Without skip_empty a list still stops at "", as before.
    assert_eq!(
        card["client"]["contacts"],
        json!({"phone": "+7 999", "email": ""})
    );
    let card = m
        .apply(&person(json!({"phones": [{"value": ""}]})))
        .unwrap();
    assert_eq!(card["client"].get("contacts"), None, "{card}");
}

#[test]
fn null_values_per_mapping_and_per_rule_count_as_absent() {
    let text = format!(
        "null_values = [\"0001-01-01T00:00:00\", \"00000000-0000-0000-0000-000000000000\"]\n{HEAD}{}",
        r#"
birthdate = { path = ["$.born", "$.registered"], date = "iso" }
extRef = "$.ref"
cardRef = { path = "$.card", null_values = ["-"], default = "none" }
inn = { path = "$.inn", null_values = [] }
"#
    );
    let m = Mapping::parse("t.toml", &text, &RESPONSE, ApiVersion::V1_2).unwrap();
    let card = m
        .apply(&person(json!({
            "born": "0001-01-01T00:00:00", "registered": "1990-05-06",
            "ref": "00000000-0000-0000-0000-000000000000",
            "card": "-",
            "inn": "00000000-0000-0000-0000-000000000000"
        })))
        .unwrap();
    let client = &card["client"];
    assert_eq!(client["birthdate"], json!("1990-05-06"));
    assert_eq!(client.get("extRef"), None, "{client}");
    assert_eq!(client["cardRef"], json!("none"));
    // `null_values = []` opts a rule out of the mapping's list.
    assert_eq!(client["inn"], json!("00000000-0000-0000-0000-000000000000"));
    // The explained chain names the step.
    let explained = m.explain(&person(
        json!({"born": "0001-01-01T00:00:00", "registered": "1990-05-06"}),
    ));
    let birth = explained
        .sources
        .iter()
        .find(|s| s.field == "client.birthdate")
        .unwrap();
    assert!(
        birth.source.starts_with("$.registered | null_values"),
        "{}",
        birth.source
    );
}

#[test]
fn new_keys_are_checked_like_the_others() {
    assert_rejected(
        "inn = { path = \"$.inn\", null_value = [\"0\"] }\n",
        &["did you mean `null_values`"],
    );
    assert_rejected(
        "inn = { path = \"$.inn\", null_values = \"0\" }\n",
        &["`null_values` is a list"],
    );
    let err = Mapping::parse(
        "t.toml",
        &format!("null_values = [{{ a = 1 }}]\n{HEAD}"),
        &RESPONSE,
        ApiVersion::V1_2,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("strings, numbers or booleans"), "{err}");
}

#[test]
fn a_parent_cycle_drops_the_link_that_closes_it_and_explain_says_so() {
    let m = mapping(
        r#"
[client.group]
each = "$.groups[*]"
item = { id = "@.id", parentGroup = { lookup = "$.groups[*]", key = "@.id", match = "@.parentId" } }
"#,
    );
    let crm = person(json!({"groups": [
        {"id": 1, "parentId": 2},
        {"id": 2, "parentId": 1},
        {"id": 3, "parentId": 3}
    ]}));
    let card = m.apply(&crm).unwrap();
    assert_eq!(
        card["client"]["group"],
        json!([
            {"id": 1, "parentGroup": {"id": 2}},
            {"id": 2, "parentGroup": {"id": 1}},
            {"id": 3}
        ])
    );
    let explained = m.explain(&crm);
    assert_eq!(explained.card.as_ref(), Some(&card));
    let cuts: Vec<_> = explained
        .sources
        .iter()
        .filter(|s| s.source.starts_with("parent cycle"))
        .map(|s| s.field.as_str())
        .collect();
    assert_eq!(
        cuts,
        [
            "client.group[0].parentGroup.parentGroup",
            "client.group[1].parentGroup.parentGroup",
            "client.group[2].parentGroup"
        ]
    );
}

#[test]
fn entries_iterate_an_objects_keys_and_values() {
    let m = mapping(
        r#"
fieldList = [
    { name = { const = "Segment" }, value = "$.segment" },
    { entries = "$.customFields", where = { path = "@.key", not_equals = "internal" }, item = { name = "@.key", value = { path = "@.value", as = "string" } } },
]
"#,
    );
    let crm = person(json!({
        "segment": "Retail",
        "customFields": {"Manager": "Orlova", "internal": "x", "Visits": 3}
    }));
    let card = m.apply(&crm).unwrap();
    assert_eq!(
        card["client"]["fieldList"],
        json!([
            {"name": "Segment", "value": "Retail"},
            {"name": "Manager", "value": "Orlova"},
            {"name": "Visits", "value": "3"}
        ])
    );
    let explained = m.explain(&crm);
    assert_eq!(explained.card.as_ref(), Some(&card));
    assert!(
        explained
            .sources
            .iter()
            .any(|s| s.source == "entries of $.customFields → @.key"),
        "{:#?}",
        explained.sources
    );
    assert_rejected(
        "[[client.fieldList]]\neach = \"$.a\"\nentries = \"$.b\"\nitem = { name = \"@.key\", value = \"@.value\" }\n",
        &["not both"],
    );
}
