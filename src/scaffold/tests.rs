//! The scaffold's guesses on small samples: each heuristic the brief names,
//! one test each.

use serde_json::json;

use super::draft;

fn line<'a>(text: &'a str, field: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("{field} =")))
        .unwrap_or_else(|| panic!("no `{field} =` in\n{text}"))
}

#[test]
fn surname_is_found_under_any_of_its_names() {
    for key in ["lastName", "last_name", "surname", "Фамилия", "LAST_NAME"] {
        let text = draft(&json!({"client": {key: "Petrova", "id": 7}}));
        let expected = if key.is_ascii() {
            format!("$.client.{key}")
        } else {
            format!("$.client['{key}']")
        };
        assert!(line(&text, "surname").contains(&expected), "{key}:\n{text}");
    }
}

#[test]
fn a_tax_number_needs_its_name_and_ten_or_twelve_digits() {
    let text = draft(&json!({"taxId": "7701028744", "code": "7701028745"}));
    assert_eq!(line(&text, "inn"), "inn = \"$.taxId\"");
    let text = draft(&json!({"inn": "77"}));
    assert!(text.contains("# TODO inn"), "{text}");
}

#[test]
fn dates_get_the_format_they_are_written_in() {
    let text = draft(&json!({"birthDate": "02.09.1973"}));
    assert!(
        line(&text, "birthdate").contains("date = \"%d.%m.%Y\""),
        "{text}"
    );
    let text = draft(&json!({"dob": "1973-09-02T00:00:00+03:00"}));
    assert!(
        line(&text, "birthdate").contains("date = \"iso\""),
        "{text}"
    );
}

#[test]
fn an_array_of_companies_with_ids_and_names_becomes_company_list() {
    let text = draft(&json!({
        "person": {"id": "p1"},
        "organizations": [{"orgId": 12, "title": "Liga", "inn": "7701028744"}]
    }));
    assert!(
        text.contains("[companyList]\neach = \"$.organizations[*]\""),
        "{text}"
    );
    assert!(text.contains("id = \"@.orgId\""), "{text}");
    assert!(text.contains("name = \"@.title\""), "{text}");
    assert!(text.contains("inn = \"@.inn\""), "{text}");
}

#[test]
fn a_required_field_without_candidate_gets_a_constant_and_a_todo() {
    let text = draft(&json!({}));
    assert!(text.contains("# TODO id: required"), "{text}");
    assert_eq!(line(&text, "id"), "id = { const = \"\" }");
    assert_eq!(line(&text, "enabled"), "enabled = { const = true }");
}
