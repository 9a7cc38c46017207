//! Found cards: the full Auth API card, company lists, not found.

use serde_json::json;
use wiremock::ResponseTemplate;

use crate::helpers::{alice, assert_error, bob, fixture, spawn_app, spawn_app_with};

#[tokio::test]
async fn full_card_with_companies_matches_the_auth_api_schema() {
    // Arrange
    let app = spawn_app().await;
    app.crm_answers("sess-alice", alice(), 1).await;

    // Act
    let response = app.lookup("sess-alice").await;

    // Assert
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let card = crate::helpers::json_ok(response).await;
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
    app.crm_always("sess-bob", bob()).await;

    let card = app.card("sess-bob").await;

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
    app.crm_answers(
        "nobody",
        ResponseTemplate::new(404).set_body_string("no such session"),
        1,
    )
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
    app.crm_always("gone", ResponseTemplate::new(410)).await;
    let empty = json!({"client": null, "companies": []});
    app.crm_always("empty", ResponseTemplate::new(200).set_body_json(empty))
        .await;
    app.crm_always("plain404", ResponseTemplate::new(404)).await;

    assert_error(app.lookup("gone").await, 404, "1001").await;
    assert_error(app.lookup("empty").await, 404, "1001").await;
    // 404 is no longer a "not found" status here: it is an unexpected status.
    assert_error(app.lookup("plain404").await, 502, "1006").await;
}

#[tokio::test]
async fn older_api_version_drops_newer_fields() {
    let app =
        spawn_app_with(|s| s.auth_api.api_version = authbridge::schema::ApiVersion::V1_0).await;
    app.crm_always("sess-alice", alice()).await;

    let card = app.card("sess-alice").await;

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
    app.crm_always("sess-bob", bob()).await;

    let card = app.card("sess-bob").await;

    assert_eq!(
        card["client"]["fields"],
        json!({"Segment": "Mass", "Personal manager": "Сидорова Е."})
    );
    assert!(
        card["client"].get("fieldList").is_none(),
        "1.0 has no fieldList"
    );
}
