//! Mapping language tests: every source, transform and collection form, and
//! every kind of mistake caught at load with its position.

use super::*;
use crate::schema::auth_api::RESPONSE;
use crate::schema::users_api::ORDERS_RESPONSE;
use serde_json::json;

/// The Client fields every test mapping starts with, up to `enabled`,
/// which HEAD and BASIC each map their own way.
macro_rules! required_head {
    () => {
        r#"
[client]
id = "$.id"
name = "$.fullName"
surname = "$.last"
firstName = "$.first"
patronymic = { path = "$.middle", default = "" }
type = { const = "0" }
"#
    };
}

const BASIC: &str = concat!(
    required_head!(),
    r#"enabled = { path = ["$.active", "$.enabled"], default = true }
birthdate = "$.born"

[client.branch]
id = "$.branch.code"

[companyList]
each = "$.orgs[*]"
item = { id = "@.id", name = "@.title", resident = "@.resident" }
"#
);

fn map(text: &str, input: Value) -> Result<Value, ApplyError> {
    Mapping::parse("t.toml", text, &RESPONSE, ApiVersion::V1_2)
        .unwrap()
        .apply(&input)
}

pub(super) fn load_err(text: &str) -> String {
    Mapping::parse("t.toml", text, &RESPONSE, ApiVersion::V1_2)
        .unwrap_err()
        .to_string()
}

/// Asserts that `text` fails to load and that its diagnostics hold each of
/// `expected`.
#[track_caller]
pub(super) fn assert_rejected(text: &str, expected: &[&str]) {
    let err = load_err(text);
    for e in expected {
        assert!(err.contains(e), "missing `{e}` in:\n{err}");
    }
}

#[test]
fn maps_sources_constants_defaults_and_arrays() {
    let card = map(
        BASIC,
        json!({"id": 7, "fullName": "A B", "last": "A", "first": "B",
                   "enabled": "N", "born": "1990-01-02", "branch": {"code": "12"},
                   "orgs": [{"id": "5", "title": "X", "resident": "Y"}, {"id": 6}]}),
    )
    .unwrap();
    assert_eq!(
        card,
        json!({
            "client": {"id": "7", "name": "A B", "surname": "A", "firstName": "B",
                       "patronymic": "", "type": "0", "enabled": false,
                       "birthdate": "1990-01-02", "branch": {"id": 12}},
            "companyList": [{"id": 5, "name": "X", "resident": true}, {"id": 6}]
        })
    );
}

#[test]
fn missing_required_value_names_the_field() {
    let err = map(BASIC, json!({"id": 7, "fullName": "A", "first": "B"})).unwrap_err();
    assert_eq!(err.field, "client.surname");
    let err = map(
            BASIC,
            json!({"id": 7, "fullName": "A", "last": "A", "first": "B", "orgs": [{"id": 1}, {"title": "x"}]}),
        )
        .unwrap_err();
    assert_eq!(err.field, "companyList[1].id");
}

#[test]
fn type_errors_at_apply_name_the_field() {
    let err = map(
        BASIC,
        json!({"id": 7, "fullName": "A", "last": "A", "first": "B", "born": "31.12.1990"}),
    )
    .unwrap_err();
    assert_eq!(err.field, "client.birthdate");
}

#[test]
fn unknown_fields_are_rejected_with_a_suggestion_and_position() {
    assert_rejected(
        &BASIC.replace("firstName =", "firstname ="),
        &[
            "t.toml:6:1: client.firstname: unknown field `firstname` in Client; did you mean `firstName`?",
            "required Client field `firstName` is not mapped",
        ],
    );
}

#[test]
fn bad_paths_and_constants_are_load_errors() {
    assert_rejected(
        &BASIC.replace(r#"id = "$.id""#, r#"id = "$.id[""#),
        &["t.toml:3:6: client.id: invalid JSONPath"],
    );
    assert_rejected(
        &BASIC.replace(r#"id = "$.branch.code""#, r#"id = { const = "main" }"#),
        &["client.branch.id: this constant is a string, but the field takes integer"],
    );
    assert_rejected(
        &BASIC.replace(r#"id = "$.id""#, r#"id = "@.id""#),
        &["not inside a list's `item`"],
    );
    assert_rejected(
        &BASIC.replace(r#"id = "$.id""#, r#"id = "client.id""#),
        &[r#"for a constant string write { const = "client.id" }"#],
    );
}

#[test]
fn older_api_versions_drop_newer_fields() {
    let text = format!("{BASIC}\n[client.contacts]\nphone = \"$.phone\"\n");
    let input = json!({"id": 1, "fullName": "A", "last": "A", "first": "B", "phone": "+7"});
    let v12 = Mapping::parse("t", &text, &RESPONSE, ApiVersion::V1_2).unwrap();
    assert_eq!(
        v12.apply(&input).unwrap()["client"]["contacts"]["phone"],
        "+7"
    );
    let v10 = Mapping::parse("t", &text, &RESPONSE, ApiVersion::V1_0).unwrap();
    assert!(
        v10.apply(&input).unwrap()["client"]
            .get("contacts")
            .is_none()
    );
}

#[test]
fn invalid_toml_reports_position() {
    let err = load_err("[client\nid = 1");
    assert!(err.starts_with("t.toml:1:"), "{err}");
}

pub(super) const HEAD: &str = concat!(required_head!(), "enabled = true\n");

pub(super) fn with_head(rest: &str) -> String {
    format!("{HEAD}{rest}")
}

/// The mapping of `rest` under the common head.
pub(super) fn mapping(rest: &str) -> Mapping {
    Mapping::parse("t.toml", &with_head(rest), &RESPONSE, ApiVersion::V1_2)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A CRM answer that fills the head's required fields, with `extra` merged in.
pub(super) fn person(extra: Value) -> Value {
    let mut crm = json!({"id": 1, "fullName": "A B", "last": "A", "first": "B"});
    crm.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    crm
}

#[test]
fn template_builds_the_full_name_skipping_empty_parts() {
    let text = BASIC.replace(
        r#"name = "$.fullName""#,
        r#"name = { template = "{$.last} {$.first} {$.middle}" }"#,
    );
    let card = map(&text, json!({"id": 1, "last": "Ivanov", "first": "Ivan"})).unwrap();
    assert_eq!(card["client"]["name"], "Ivanov Ivan");
}

#[test]
fn value_maps_with_fallback_and_boolean_flags() {
    let text = HEAD
        .replace(
            r#"type = { const = "0" }"#,
            r#"type = { path = "$.kind", map = { INDIVIDUAL = "0", LEGAL = "1" }, fallback = "0" }"#,
        )
        .replace(
            "enabled = true",
            r#"enabled = { path = "$.status", map = { ACTIVE = true, BLOCKED = false }, fallback = false }"#,
        );
    let mut crm = person(json!({"kind": "LEGAL", "status": "ACTIVE"}));
    let card = map(&text, crm.clone()).unwrap();
    assert_eq!(card["client"]["type"], "1");
    assert_eq!(card["client"]["enabled"], true);
    crm["kind"] = json!("PARTNER");
    crm["status"] = json!("WHATEVER");
    let card = map(&text, crm).unwrap();
    assert_eq!(card["client"]["type"], "0");
    assert_eq!(card["client"]["enabled"], false);
}

#[test]
fn dates_in_crm_forms() {
    let m =
        mapping(r#"birthdate = { path = "$.born", date = ["%d.%m.%Y", "iso", "epoch_millis"] }"#);
    for born in [
        json!("02.09.1973"),
        json!("1973-09-02T00:00:00+03:00"),
        json!(115_776_000_000_i64),
    ] {
        let card = m.apply(&person(json!({ "born": born }))).unwrap();
        assert_eq!(card["client"]["birthdate"], "1973-09-02");
    }
    let err = m.apply(&person(json!({"born": "someday"}))).unwrap_err();
    assert_eq!(err.field, "client.birthdate");
}

#[test]
fn trim_case_replace_and_skip_empty() {
    let m = mapping(
        r#"
inn = { path = "$.inn", trim = true, skip_empty = true }
[client.contacts]
phone = { path = "$.phone", replace = { pattern = "[^0-9+]", with = "" } }
email = { path = "$.email", trim = true, case = "lower" }
"#,
    );
    let crm = person(json!({
        "inn": "   ", "phone": "+7 (999) 000-11-22", "email": "  Anna@Example.COM "
    }));
    let card = m.apply(&crm).unwrap();
    assert!(card["client"].get("inn").is_none());
    assert_eq!(card["client"]["contacts"]["phone"], "+79990001122");
    assert_eq!(card["client"]["contacts"]["email"], "anna@example.com");
}

#[test]
fn conditions_on_fields_objects_and_list_items() {
    let m = mapping(
        r#"
inn = { path = "$.inn", when = { path = "$.kind", equals = "LEGAL" } }
[client.branch]
when = "$.branch.active"
name = "$.branch.name"
[companyList]
each = "$.orgs[*]"
where = { path = "@.role", in = ["OWNER", "DIRECTOR"] }
item = { id = "@.id" }
"#,
    );
    let mut crm = person(json!({
        "inn": "77", "kind": "PERSON", "branch": {"active": false, "name": "X"},
        "orgs": [{"id": 1, "role": "OWNER"}, {"id": 2, "role": "GUEST"}, {"id": 3, "role": "DIRECTOR"}]
    }));
    let card = m.apply(&crm).unwrap();
    assert!(card["client"].get("inn").is_none());
    assert!(card["client"].get("branch").is_none());
    assert_eq!(card["companyList"], json!([{"id": 1}, {"id": 3}]));
    crm["kind"] = json!("LEGAL");
    crm["branch"]["active"] = json!(true);
    let card = m.apply(&crm).unwrap();
    assert_eq!(card["client"]["inn"], "77");
    assert_eq!(card["client"]["branch"]["name"], "X");
}

#[test]
fn jq_escape_hatch() {
    let crm = person(json!({
        "last": "Ivanova", "first": "Anna",
        "emails": [{"value": "x@a", "primary": false}, {"value": "y@b", "primary": true}]
    }));
    let card = mapping(
        r#"
shortName = { jq = '.last + " " + (.first[0:1]) + "."' }
[client.contacts]
email = { path = "$.emails", jq = 'map(select(.primary)) | first | .value' }
"#,
    )
    .apply(&crm)
    .unwrap();
    assert_eq!(card["client"]["shortName"], "Ivanova A.");
    assert_eq!(card["client"]["contacts"]["email"], "y@b");
}

#[test]
fn field_list_from_explicit_pairs_and_an_attribute_array() {
    let crm = person(json!({
        "segment": "VIP",
        "manager": null,
        "attributes": [
            {"label": "Tariff", "value": "Gold", "visible": true},
            {"label": "Internal", "value": "x", "visible": false},
            {"label": "Limit", "value": 100000, "visible": true}
        ]
    }));
    let m = mapping(
        r#"
[[client.fieldList]]
name = { const = "Segment" }
value = "$.segment"

[[client.fieldList]]
name = { const = "Manager" }
value = "$.manager"

[[client.fieldList]]
each = "$.attributes[*]"
where = "@.visible"
item = { name = "@.label", value = "@.value" }
"#,
    );
    assert_eq!(
        m.apply(&crm).unwrap()["client"]["fieldList"],
        json!([
            {"name": "Segment", "value": "VIP"},
            {"name": "Tariff", "value": "Gold"},
            {"name": "Limit", "value": "100000"}
        ])
    );
}

#[test]
fn contacts_from_a_typed_contact_array() {
    let crm = person(json!({"contacts": [
        {"type": "EMAIL", "value": "a@x"},
        {"type": "MOBILE", "value": "+7001"},
        {"type": "MOBILE", "value": "+7002"}
    ]}));
    let card = mapping(
        r#"
[client.contacts]
phone = "$.contacts[?@.type == 'MOBILE'].value"
email = "$.contacts[?@.type == 'EMAIL'].value"
"#,
    )
    .apply(&crm)
    .unwrap();
    assert_eq!(
        card["client"]["contacts"],
        json!({"phone": "+7001", "email": "a@x"})
    );
}

/// The card written from the mapping's ordered output (what the server
/// sends) is byte for byte the one written from its JSON map, a parent put
/// in by a lookup after its siblings included.
fn written_in_descriptor_order(m: &Mapping, crm: &Value) {
    let mut ordered = Vec::new();
    m.apply_ordered(crm)
        .unwrap()
        .write(&RESPONSE, &mut ordered)
        .unwrap();
    let mut from_map = Vec::new();
    let card = m.apply(crm).unwrap();
    crate::schema::write::write_object(card.as_object().unwrap(), &RESPONSE, &mut from_map)
        .unwrap();
    assert_eq!(String::from_utf8(ordered), String::from_utf8(from_map));
}

#[test]
fn groups_with_parents_from_nested_objects_and_flat_lists() {
    let crm = person(json!({
        "groups": [{"id": 2, "name": "VIP", "parent": {"id": 1, "name": "Retail"}}]
    }));
    let nested = r#"
[client.group]
each = "$.groups[*]"
item = { id = "@.id", name = "@.name", parentGroup = { id = "@.parent.id", name = "@.parent.name" } }
"#;
    let card = mapping(nested).apply(&crm).unwrap();
    written_in_descriptor_order(&mapping(nested), &crm);
    assert_eq!(
        card["client"]["group"],
        json!([{"id": 2, "parentGroup": {"id": 1, "name": "Retail"}, "name": "VIP"}])
    );

    let flat = mapping(
        r#"
[client.group]
each = "$.memberships[*]"
[client.group.item]
id = "@.id"
name = "@.title"
priority = "@.prio"
parentGroup = { lookup = "$.memberships[*]", key = "@.id", match = "@.parentId" }
"#,
    );
    let mut crm = person(json!({"memberships": [
        {"id": 3, "title": "Premium", "parentId": "2", "prio": 5},
        {"id": 2, "title": "VIP", "parentId": 1},
        {"id": 1, "title": "Retail", "parentId": null}
    ]}));
    let card = flat.apply(&crm).unwrap();
    written_in_descriptor_order(&flat, &crm);
    assert_eq!(
        card["client"]["group"][0],
        json!({"id": 3, "name": "Premium", "priority": 5,
               "parentGroup": {"id": 2, "name": "VIP",
                               "parentGroup": {"id": 1, "name": "Retail"}}})
    );
    // A cycle in the CRM's data is cut where it closes (see lang_tests).
    crm["memberships"][2]["parentId"] = json!(3);
    let card = flat.apply(&crm).unwrap();
    written_in_descriptor_order(&flat, &crm);
    assert_eq!(
        card["client"]["group"][2],
        json!({"id": 1, "name": "Retail",
               "parentGroup": {"id": 3, "name": "Premium", "priority": 5,
                               "parentGroup": {"id": 2, "name": "VIP"}}})
    );
}

#[test]
fn every_kind_of_mistake_is_reported_with_its_position() {
    let text = r#"[client]
id = "$.id"
name = { template = "{$.a" }
surname = { path = "$.s", jq = ".a | " }
firstName = { path = "$.f", replace = { pattern = "([a-z", with = "" } }
patronymic = { path = "$.p", date = "%Q" }
type = { path = "$.t", map = { A = [1] } }
enabled = { path = "$.e", default = "maybe" }
extRef = { path = "$.x", cas = "upper" }
birthdate = { path = "$.b", as = "integer" }
inn = { path = "$.i", fallback = "0" }
"#;
    let err = load_err(text);
    for expected in [
        "t.toml:3:21: client.name: unclosed `{` in template",
        "t.toml:4:32: client.surname: invalid jq expression `.a | `: expected term at the end",
        "t.toml:5:51: client.firstName: invalid regex `([a-z`: unclosed character class",
        "t.toml:6:37: client.patronymic: invalid date pattern `%Q`",
        "t.toml:7:36: client.type: the map value for `A` is an array, but the field takes string",
        "t.toml:8:37: client.enabled: the default is a string, but the field takes boolean",
        "t.toml:9:26: client.extRef: unknown key `cas` in a field rule; did you mean `case`?",
        "t.toml:10:13: client.birthdate: `as = integer` cannot become date (YYYY-MM-DD)",
        "t.toml:11:34: client.inn: `fallback` applies to values a `map` does not list",
    ] {
        assert!(err.contains(expected), "missing: {expected}\n{err}");
    }
    assert!(
        !err.contains("is not mapped"),
        "a field with a broken rule is not also reported missing:\n{err}"
    );
    assert_eq!(err.lines().count(), 9, "{err}");
}

#[test]
fn a_date_transform_on_a_non_date_field_is_a_load_error() {
    assert_rejected(
        &with_head("[client.branch]\nid = { path = \"$.b\", date = \"%d.%m.%Y\" }\n"),
        &["client.branch.id: `date` produces a YYYY-MM-DD string, but the field takes integer"],
    );
}

#[test]
fn conditions_and_lookups_are_validated() {
    assert_rejected(
        &with_head(r#"inn = { path = "$.i", when = { path = "$.k", equal = "X" } }"#),
        &["unknown key `equal` in a condition; did you mean `equals`?"],
    );
    assert_rejected(
        &with_head(
            "[client.group]\neach = \"$.g[*]\"\nitem = { id = \"@.id\", parentGroup = { lookup = \"$.g[*]\", key = \"$.id\", match = \"@.p\" } }\n",
        ),
        &["`key` is read from each candidate: write it with `@`"],
    );
}

#[test]
fn unmapped_list_item_fields_are_required_where_the_schema_says_so() {
    assert_rejected(
        &with_head("[companyList]\neach = \"$.c[*]\"\nitem = { name = \"@.n\" }\n"),
        &["companyList.item.id: required Company field `id` is not mapped"],
    );
}

#[test]
fn keep_lets_a_front_derive_older_fields() {
    let text = with_head("[[client.fieldList]]\nname = { const = \"Segment\" }\nvalue = \"$.s\"\n");
    let options = Options {
        version: ApiVersion::V1_0,
        keep: vec!["fieldList"],
    };
    let mapping = Mapping::parse_with("t", &text, &RESPONSE, &options).unwrap();
    let card = mapping.apply(&person(json!({"s": "VIP"}))).unwrap();
    assert_eq!(card["client"]["fieldList"][0]["value"], "VIP");
}

/// An order history mapping of the users API.
const ORDERS: &str = r#"
[orders]
each = "$.orders[?@.visible == true]"
[orders.item]
id = "@.id"
createdOn = { path = "@.at", date = "iso" }
status = "@.status"
price = "@.total"
items = { each = "@.lines[*]", item = { privateId = "@.sku", name = "@.title", quantity = "@.qty", subtotal = "@.sum" } }
"#;

/// The order history's lists are required: empty is the CRM's word, absent
/// is an answer of another shape and must fail, never pass for "no orders".
#[test]
fn required_lists_are_empty_only_when_the_crm_array_is() {
    let mapping = Mapping::parse("o.toml", ORDERS, &ORDERS_RESPONSE, ApiVersion::V1_2).unwrap();
    assert_eq!(
        mapping.apply(&json!({"orders": []})).unwrap(),
        json!({"orders": []})
    );
    // Every order filtered out: still the CRM's own (empty) array.
    assert_eq!(
        mapping
            .apply(&json!({"orders": [{"visible": false}]}))
            .unwrap(),
        json!({"orders": []})
    );
    let err = mapping.apply(&json!({"error": "db down"})).unwrap_err();
    assert!(err.to_string().contains("orders"), "{err}");
    let order = json!({"visible": true, "id": 1, "at": "2020-07-27T17:53:16Z", "status": "ok", "total": 1.5});
    let mut with_lines = order.clone();
    with_lines["lines"] = json!([]);
    assert_eq!(
        mapping.apply(&json!({"orders": [with_lines]})).unwrap(),
        json!({"orders": [{"id": "1", "createdOn": "1595872396", "status": "ok", "price": 1.5, "items": []}]})
    );
    let err = mapping.apply(&json!({"orders": [order]})).unwrap_err();
    assert!(err.to_string().contains("orders[0].items"), "{err}");
}

#[test]
fn date_on_a_number_field_is_a_load_error() {
    let text = ORDERS.replace(
        r#"price = "@.total""#,
        r#"price = { path = "@.total", date = "iso" }"#,
    );
    let err = Mapping::parse("o.toml", &text, &ORDERS_RESPONSE, ApiVersion::V1_2)
        .unwrap_err()
        .to_string();
    assert!(err.contains("orders.item.price"), "{err}");
}
