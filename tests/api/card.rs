//! Found cards: the full Auth API card, company lists, not found.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{assert_error, crm_path, fixture, spawn_app, spawn_app_with};

#[tokio::test]
async fn full_card_with_companies_matches_the_auth_api_schema() {
    // Arrange
    let app = spawn_app().await;
    Mock::given(method("GET"))
        .and(path(crm_path("sess-alice")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("generic-bank/alice.input.json")),
        )
        .expect(1)
        .mount(&app.crm)
        .await;

    // Act
    let response = app.lookup("sess-alice").await;

    // Assert
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let card: Value = response.json().await.unwrap();
    assert_eq!(card, fixture("generic-bank/alice.expected.json"));
    assert_eq!(card["companyList"].as_array().unwrap().len(), 2);
    assert_eq!(
        card["companyList"][1]["id"],
        json!(124612),
        "string id coerced to integer"
    );
    assert_eq!(card["client"]["enabled"], json!(true));
}

#[tokio::test]
async fn absent_optionals_and_empty_company_list_are_omitted() {
    let app = spawn_app().await;
    Mock::given(path(crm_path("sess-bob")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("generic-bank/bob-disabled.input.json")),
        )
        .mount(&app.crm)
        .await;

    let card: Value = app.lookup("sess-bob").await.json().await.unwrap();

    assert_eq!(card, fixture("generic-bank/bob-disabled.expected.json"));
    assert!(card.get("companyList").is_none());
    assert!(
        card["client"].get("inn").is_none(),
        "null in the CRM is omitted"
    );
}

#[tokio::test]
async fn crm_404_is_client_not_found() {
    let app = spawn_app().await;
    Mock::given(path(crm_path("nobody")))
        .respond_with(ResponseTemplate::new(404).set_body_string("no such session"))
        .expect(1)
        .mount(&app.crm)
        .await;

    let text = assert_error(app.lookup("nobody").await, 404, "1001").await;
    assert_eq!(text, "Client not found");
}

#[tokio::test]
async fn configured_not_found_statuses_and_body_conditions() {
    let app = spawn_app_with(|s| {
        s.upstream.not_found.statuses = vec![410];
        s.upstream.not_found.when_empty = Some("$.client".into());
    })
    .await;
    Mock::given(path(crm_path("gone")))
        .respond_with(ResponseTemplate::new(410))
        .mount(&app.crm)
        .await;
    Mock::given(path(crm_path("empty")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"client": null, "companies": []})),
        )
        .mount(&app.crm)
        .await;
    Mock::given(path(crm_path("plain404")))
        .respond_with(ResponseTemplate::new(404))
        .mount(&app.crm)
        .await;

    assert_error(app.lookup("gone").await, 404, "1001").await;
    assert_error(app.lookup("empty").await, 404, "1001").await;
    // 404 is no longer a "not found" status here: it is an unexpected status.
    assert_error(app.lookup("plain404").await, 502, "1006").await;
}

#[tokio::test]
async fn older_api_version_drops_newer_fields() {
    let app =
        spawn_app_with(|s| s.auth_api.api_version = authbridge::schema::ApiVersion::V1_0).await;
    Mock::given(path(crm_path("sess-alice")))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("generic-bank/alice.input.json")),
        )
        .mount(&app.crm)
        .await;

    let card: Value = app.lookup("sess-alice").await.json().await.unwrap();

    let client = card["client"].as_object().unwrap();
    for newer in ["shortName", "fieldList", "contacts", "secretWord", "group"] {
        assert!(
            !client.contains_key(newer),
            "{newer} is not in Auth API 1.0"
        );
    }
    assert_eq!(client["surname"], "Иванова");
}

#[tokio::test]
async fn derive_fields_serves_old_chat_servers_the_fields_map() {
    let app = spawn_app_with(|s| {
        s.auth_api.api_version = authbridge::schema::ApiVersion::V1_0;
        s.auth_api.derive_fields = true;
    })
    .await;
    Mock::given(path(crm_path("sess-bob")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("generic-bank/bob-disabled.input.json")),
        )
        .mount(&app.crm)
        .await;

    let card: Value = app.lookup("sess-bob").await.json().await.unwrap();

    assert_eq!(
        card["client"]["fields"],
        json!({"Segment": "Mass", "Personal manager": "Сидорова Е."})
    );
    assert!(
        card["client"].get("fieldList").is_none(),
        "1.0 has no fieldList"
    );
}
