//! Pipelines: several CRM requests per lookup, against a mock CRM that counts
//! calls and concurrent requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::helpers::{
    assert_error, card_at, file, init_logs, lookup_at, metrics_of, start, test_settings,
};

/// A bank CRM spread over three endpoints, with knobs for failure injection.
#[derive(Default)]
struct Crm {
    calls: AtomicUsize,
    company_calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    /// Delay of every answer, in ms.
    delay_ms: AtomicUsize,
    /// Status of the optional limits endpoint.
    limits_status: AtomicUsize,
}

type Shared = Arc<Crm>;

async fn pause(crm: &Crm) {
    crm.calls.fetch_add(1, Ordering::SeqCst);
    let ms = crm.delay_ms.load(Ordering::SeqCst) as u64;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn session(State(crm): State<Shared>, Path(token): Path<String>) -> Response {
    pause(&crm).await;
    match token.as_str() {
        "unknown" => StatusCode::NOT_FOUND.into_response(),
        "no-client-id" => axum::Json(json!({"sessionId": "s"})).into_response(),
        t => axum::Json(json!({"clientId": format!("cl-{t}")})).into_response(),
    }
}

async fn client(State(crm): State<Shared>, Path(id): Path<String>) -> Response {
    pause(&crm).await;
    let many = id.ends_with("many");
    let ids: Vec<Value> = if many {
        (1..=8).map(Value::from).collect()
    } else {
        (1..=5).map(Value::from).collect()
    };
    axum::Json(json!({
        "id": id, "lastName": "Ivanova", "firstName": "Anna", "middleName": "S.",
        "active": true, "companyIds": ids
    }))
    .into_response()
}

async fn company(State(crm): State<Shared>, Path(id): Path<u64>) -> Response {
    crm.company_calls.fetch_add(1, Ordering::SeqCst);
    let now = crm.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    crm.max_in_flight.fetch_max(now, Ordering::SeqCst);
    pause(&crm).await;
    // Held until the fan-out's full width (5) has been seen in flight, so
    // requests meant to overlap do overlap however slow the machine; bounded
    // (under the 1 s CRM timeout) for fan-outs narrower than 5.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let held = tokio::time::Instant::now();
    while crm.max_in_flight.load(Ordering::SeqCst) < 5
        && held.elapsed() < Duration::from_millis(600)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    crm.in_flight.fetch_sub(1, Ordering::SeqCst);
    if id == 4 {
        return StatusCode::NOT_FOUND.into_response();
    }
    axum::Json(json!({"id": id, "title": format!("Company {id}")})).into_response()
}

async fn limits(State(crm): State<Shared>) -> Response {
    pause(&crm).await;
    match crm.limits_status.load(Ordering::SeqCst) {
        0 | 200 => axum::Json(json!({"daily": 100000})).into_response(),
        s => StatusCode::from_u16(s as u16).unwrap().into_response(),
    }
}

async fn start_crm() -> (Shared, String) {
    let crm: Shared = Arc::default();
    let app = Router::new()
        .route("/sessions/{token}", get(session))
        .route("/clients/{id}", get(client))
        .route("/clients/{id}/limits", get(limits))
        .route("/companies/{id}", get(company))
        .with_state(crm.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (crm, format!("http://{addr}"))
}

const MAPPING: &str = r#"
[[step]]
name = "session"
path = "/sessions/{token}"

[[step]]
name = "client"
path = "/clients/{$.steps.session.clientId}"

[[step]]
name = "companies"
for_each = "$.steps.client.companyIds[*]"
path = "/companies/{@}"
concurrency = 5

[[step]]
name = "limits"
path = "/clients/{$.steps.session.clientId}/limits"
required = false

[client]
id = "$.steps.client.id"
name = { template = "{$.steps.client.lastName} {$.steps.client.firstName} {$.steps.client.middleName}" }
surname = "$.steps.client.lastName"
firstName = "$.steps.client.firstName"
patronymic = { path = "$.steps.client.middleName", default = "" }
type = { const = "0" }
enabled = "$.steps.client.active"

[[client.fieldList]]
name = { const = "Daily limit" }
value = "$.steps.limits.daily"

[companyList]
each = "$.steps.companies[*]"
item = { id = "@.id", name = "@.title" }
"#;

async fn spawn(
    adjust: impl FnOnce(&mut authbridge::Settings),
) -> (Shared, String, tempfile::NamedTempFile) {
    init_logs();
    let (crm, url) = start_crm().await;
    let mapping = file(MAPPING);
    let mut settings = test_settings(&url);
    settings.auth_api.mapping = mapping.path().to_owned();
    settings.upstream.deadline = Duration::from_millis(3_000);
    adjust(&mut settings);
    let address = start(settings).await;
    (crm, address, mapping)
}

async fn lookup(address: &str, token: &str) -> reqwest::Response {
    lookup_at(address, token).await
}

#[tokio::test]
async fn three_steps_and_a_concurrent_fan_out_build_one_card() {
    let (crm, address, _m) = spawn(|_| {}).await;

    let card = card_at(&address, "t1").await;

    assert_eq!(card["client"]["id"], "cl-t1");
    assert_eq!(card["client"]["name"], "Ivanova Anna S.");
    assert_eq!(
        card["client"]["fieldList"],
        json!([{"name": "Daily limit", "value": "100000"}])
    );
    // Company 4 is unknown to the CRM: left out; the order is the CRM's.
    let ids: Vec<i64> = card["companyList"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 2, 3, 5]);
    assert_eq!(crm.company_calls.load(Ordering::SeqCst), 5);
    assert_eq!(
        crm.max_in_flight.load(Ordering::SeqCst),
        5,
        "the five company requests ran together"
    );
    // session + client + limits + 5 companies
    assert_eq!(crm.calls.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn fan_out_concurrency_is_bounded() {
    let (crm, address, _m) = spawn(|_| {}).await;

    let response = lookup(&address, "t-many").await;

    assert_eq!(response.status(), 200);
    assert_eq!(crm.company_calls.load(Ordering::SeqCst), 8);
    assert_eq!(
        crm.max_in_flight.load(Ordering::SeqCst),
        5,
        "never more than `concurrency` at once"
    );
}

#[tokio::test]
async fn fan_out_beyond_the_limit_fails_cleanly() {
    let (crm, address, _m) = spawn(|s| s.upstream.max_fan_out = 4).await;

    let text = assert_error(lookup(&address, "t2").await, 502, "1007").await;

    assert_eq!(text, "CRM response lists more than 4 items to fetch");
    assert_eq!(crm.company_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_failing_optional_step_leaves_its_fields_out() {
    let (crm, address, _m) = spawn(|_| {}).await;
    crm.limits_status.store(500, Ordering::SeqCst);

    let card = card_at(&address, "t3").await;

    assert!(card["client"].get("fieldList").is_none(), "{card}");
    assert_eq!(card["companyList"].as_array().unwrap().len(), 4);
    let metrics = metrics_of(&address).await;
    assert!(
        metrics.contains("authbridge_pipeline_optional_failures_total{step=\"limits\"}"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_required_step_not_found_is_client_not_found() {
    let (crm, address, _m) = spawn(|_| {}).await;

    assert_error(lookup(&address, "unknown").await, 404, "1001").await;

    assert_eq!(
        crm.calls.load(Ordering::SeqCst),
        1,
        "nothing after the session step"
    );
}

#[tokio::test]
async fn a_missing_value_for_a_required_step_is_502() {
    let (_crm, address, _m) = spawn(|_| {}).await;

    let text = assert_error(lookup(&address, "no-client-id").await, 502, "1007").await;

    assert_eq!(
        text,
        "CRM response lacks a value a later request needs ($.steps.session.clientId)"
    );
}

#[tokio::test]
async fn the_overall_deadline_holds_even_when_each_step_is_in_time() {
    // Each answer takes 300 ms, well within its 1 s timeout; three steps in a
    // row take 900 ms, past the 600 ms deadline.
    let (crm, address, _m) = spawn(|s| {
        s.upstream.deadline = Duration::from_millis(600);
        s.upstream.timeout = Duration::from_millis(500);
        s.server.request_timeout = Duration::from_millis(5_000);
    })
    .await;
    crm.delay_ms.store(300, Ordering::SeqCst);

    let text = assert_error(lookup(&address, "slow").await, 504, "1004").await;

    assert_eq!(text, "CRM did not answer in time");
}

#[tokio::test]
async fn a_pipeline_is_fetched_once_for_concurrent_lookups() {
    let (crm, address, _m) = spawn(|_| {}).await;

    let lookups = (0..20).map(|_| lookup(&address, "shared"));
    let responses = futures_util::future::join_all(lookups).await;

    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(
        crm.calls.load(Ordering::SeqCst),
        8,
        "one pipeline run for all 20"
    );
}

/// Where a pipeline's mapping runs is decided by the size of every body its
/// steps read (the pool takes 64 KiB and more, the process's default): two
/// 40 KiB answers go to the pool, though neither alone would.
#[tokio::test]
async fn the_offload_threshold_counts_the_bodies_of_every_step() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let crm = MockServer::start().await;
    for (token, kib) in [("small", 20), ("large", 40)] {
        let pad = "x".repeat(kib * 1024);
        Mock::given(path(format!("/sessions/{token}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"clientId": token, "pad": pad})),
            )
            .mount(&crm)
            .await;
        Mock::given(path(format!("/clients/{token}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": token, "lastName": "Ivanova", "firstName": "Anna", "active": true, "pad": pad
            })))
            .mount(&crm)
            .await;
    }
    let mapping = file(crate::helpers::SESSION_THEN_CLIENT);
    let mut settings = test_settings(&crm.uri());
    settings.auth_api.mapping = mapping.path().to_owned();
    let address = start(settings).await;
    let offloaded = || async {
        crate::helpers::metric_in(
            &metrics_of(&address).await,
            "authbridge_mapping_offloaded_total",
        )
    };

    assert_eq!(card_at(&address, "small").await["client"]["id"], "small");
    assert_eq!(offloaded().await, 0.0, "2 x 20 KiB stays on the worker");
    assert_eq!(card_at(&address, "large").await["client"]["id"], "large");
    assert_eq!(offloaded().await, 1.0, "2 x 40 KiB goes to the pool");
}
