//! The shipped pipeline mappings end to end: every fixture's step answers are
//! served by a mock CRM at the paths the mapping requests, and the server's
//! card must equal the expected card.

use serde_json::Value;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    fixture, fixture_pairs, init_logs, lookup_at, repo_path, start, test_settings,
};

/// The fixture cases of mapping `name` (non-empty, each with its expected
/// card: see [`fixture_pairs`]).
fn cases(name: &str) -> Vec<String> {
    fixture_pairs(&repo_path(&format!("tests/fixtures/{name}")))
        .iter()
        .map(|(input, _)| {
            let file = input.file_name().unwrap().to_string_lossy();
            file.strip_suffix(".input.json").unwrap().to_owned()
        })
        .collect()
}

fn json(v: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(v)
}

async fn card(base_url: &str, mapping: &str, token: &str) -> (u16, Value) {
    let mut settings = test_settings(base_url);
    settings.auth_api.mapping = repo_path(&format!("mappings/{mapping}.toml"));
    let response = lookup_at(&start(settings).await, token).await;
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn bitrix24_contact_then_company() {
    init_logs();
    for case in cases("bitrix24") {
        let input = fixture(&format!("bitrix24/{case}.input.json"));
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

        let (status, card) = card(&format!("{}/rest/1/hook", crm.uri()), "bitrix24", &token).await;

        assert_eq!(status, 200, "{case}: {card}");
        assert_eq!(
            card,
            fixture(&format!("bitrix24/{case}.expected.json")),
            "{case}"
        );
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
    for case in cases("hubspot") {
        let input = fixture(&format!("hubspot/{case}.input.json"));
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

        let (status, card) = card(&crm.uri(), "hubspot", &token).await;

        assert_eq!(status, 200, "{case}: {card}");
        assert_eq!(
            card,
            fixture(&format!("hubspot/{case}.expected.json")),
            "{case}"
        );
    }
}
