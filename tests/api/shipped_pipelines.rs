//! The shipped pipeline mappings end to end: every fixture's step answers are
//! served by a mock CRM at the paths the mapping requests, and the server's
//! card must equal the expected card.

use serde_json::Value;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    fixture, fixture_pairs, init_logs, lookup_at, read_json, repo_path, start, test_settings,
};

/// The fixture cases of mapping `name`, each with its input (the CRM's
/// step answers); non-empty, each with its expected card: see
/// [`fixture_pairs`].
fn cases(name: &str) -> Vec<(String, Value)> {
    fixture_pairs(&repo_path(&format!("tests/fixtures/{name}")))
        .iter()
        .map(|(input, _)| {
            let file = input.file_name().unwrap().to_string_lossy();
            let case = file.strip_suffix(".input.json").unwrap().to_owned();
            (case, read_json(input))
        })
        .collect()
}

fn json(v: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(v)
}

/// Asserts that an app with mapping `name` in front of `base_url` serves
/// `case`'s expected card for `token`.
async fn assert_expected_card(base_url: &str, name: &str, case: &str, token: &str) {
    let mut settings = test_settings(base_url);
    settings.auth_api.mapping = repo_path(&format!("mappings/{name}.toml"));
    let response = lookup_at(&start(settings).await, token).await;
    let status = response.status().as_u16();
    let card: Value = response.json().await.unwrap();

    assert_eq!(status, 200, "{case}: {card}");
    assert_eq!(
        card,
        fixture(&format!("{name}/{case}.expected.json")),
        "{case}"
    );
}

#[tokio::test]
async fn bitrix24_contact_then_company() {
    init_logs();
    for (case, input) in cases("bitrix24") {
        let crm = MockServer::start().await;
        let contact = &input["steps"]["contact"];
        let token = contact["result"]["ID"].as_str().unwrap().to_owned();
        Mock::given(method("GET"))
            .and(path("/rest/1/hook/crm.contact.get.json"))
            .and(query_param("ID", token.as_str()))
            .respond_with(json(contact))
            .expect(1)
            .mount(&crm)
            .await;
        let company_calls = match contact["result"]["COMPANY_ID"].as_str() {
            None => 0,
            Some(id) => {
                let company = &input["steps"]["company"];
                // A null company answer in the fixture: the company step failed.
                let answer = if company.is_null() {
                    ResponseTemplate::new(500)
                } else {
                    json(company)
                };
                Mock::given(path("/rest/1/hook/crm.company.get.json"))
                    .and(query_param("ID", id))
                    .respond_with(answer)
                    .expect(1)
                    .mount(&crm)
                    .await;
                1
            }
        };

        let base_url = format!("{}/rest/1/hook", crm.uri());
        assert_expected_card(&base_url, "bitrix24", &case, &token).await;
        assert_eq!(
            crm.received_requests().await.unwrap().len(),
            1 + company_calls,
            "{case}"
        );
    }
}

#[tokio::test]
async fn hubspot_contact_then_companies_fan_out() {
    init_logs();
    for (case, input) in cases("hubspot") {
        let crm = MockServer::start().await;
        let token = format!("tok-{case}");
        Mock::given(method("GET"))
            .and(path(format!("/crm/v3/objects/contacts/{token}")))
            .and(query_param("idProperty", "chat_auth_token"))
            .and(query_param("associations", "companies"))
            .respond_with(json(&input["steps"]["contact"]))
            .expect(1)
            .mount(&crm)
            .await;
        match &input["steps"]["companies"] {
            Value::Array(companies) => {
                for company in companies {
                    let id = company["id"].as_str().unwrap();
                    Mock::given(path(format!("/crm/v3/objects/companies/{id}")))
                        .respond_with(json(company))
                        .expect(1)
                        .mount(&crm)
                        .await;
                }
            }
            // A null answer in the fixture: the fan-out failed (rate limited).
            _ => {
                Mock::given(wiremock::matchers::path_regex(
                    "^/crm/v3/objects/companies/",
                ))
                .respond_with(ResponseTemplate::new(429))
                .mount(&crm)
                .await;
            }
        }

        assert_expected_card(&crm.uri(), "hubspot", &case, &token).await;
    }
}
