//! The users front's Order history against a mock CRM: a history with items,
//! an empty one, an unknown user and CRM failures (always `error`, never a
//! list the platform would read as "no orders"), its own short cache (and
//! caching off at 0) in a key space apart from Get User Data, and no
//! identifier in logs or metrics.

use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate, Times};

use crate::helpers::{captured_logs, fixture, metrics_of, start, users_settings};

const KEY: &str = "orders-platform-key";
const SHOPPER: &str = "79991234567";
const ORDERS_PATH: &str = "/api/v1/customers/79991234567/orders";

struct Shop {
    address: String,
    crm: MockServer,
    _key: tempfile::NamedTempFile,
}

impl Shop {
    /// POSTs to the order history with the key in the body.
    async fn orders(&self, identifier: &str) -> (u16, Value) {
        self.post("/users/orders", identifier).await
    }

    async fn post(&self, route: &str, identifier: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{route}", self.address))
            .json(&json!({"userIdentifier": identifier, "key": KEY}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Mounts the CRM's orders answer for the shopper, expected `calls` times.
    async fn crm_orders(&self, answer: ResponseTemplate, calls: impl Into<Times>) {
        Mock::given(method("GET"))
            .and(path(ORDERS_PATH))
            .respond_with(answer)
            .expect(calls)
            .mount(&self.crm)
            .await;
    }
}

async fn shop(adjust: impl FnOnce(&mut authbridge::Settings)) -> Shop {
    let crm = MockServer::start().await;
    let (mut s, key) = users_settings(&crm.uri(), KEY);
    adjust(&mut s);
    Shop {
        address: start(s).await,
        crm,
        _key: key,
    }
}

/// The demo CRM's answer for the shopper (the golden fixture's input).
fn crm_history() -> Value {
    fixture("users/generic-bank-orders/anna.input.json")["steps"]["orders"].clone()
}

fn expected_history() -> Value {
    fixture("users/generic-bank-orders/anna.expected.json")
}

/// A failure in the platform's shape: non-2xx and exactly `{"error": {"message"}}`.
fn assert_error(status: u16, body: &Value, expected: u16) {
    assert_eq!(status, expected, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    assert!(body.get("orders").is_none(), "{body}");
}

#[tokio::test]
async fn a_history_with_items_is_sent_as_the_platform_reads_it() {
    let s = shop(|_| {}).await;
    s.crm_orders(ResponseTemplate::new(200).set_body_json(crm_history()), 1)
        .await;

    let (status, body) = s.orders(SHOPPER).await;

    assert_eq!((status, &body), (200, &expected_history()));
    let first = &body["orders"][0];
    assert_eq!(first["createdOn"], "1595872396", "Unix seconds, as digits");
    assert_eq!(first["price"], json!(1003.33));
    assert_eq!(first["items"][0]["privateId"], "6527");
}

#[tokio::test]
async fn a_known_user_without_orders_gets_an_empty_list() {
    let s = shop(|_| {}).await;
    s.crm_orders(
        ResponseTemplate::new(200).set_body_json(json!({"customerId": "C-1001", "orders": []})),
        1,
    )
    .await;

    assert_eq!(s.orders(SHOPPER).await, (200, json!({"orders": []})));
}

#[tokio::test]
async fn an_unknown_user_is_an_error_not_an_empty_history() {
    let s = shop(|_| {}).await;
    Mock::given(path("/api/v1/customers/70000000000/orders"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&s.crm)
        .await;

    let (status, body) = s.orders("70000000000").await;

    assert_error(status, &body, 404);
}

#[tokio::test]
async fn crm_failures_and_answers_of_another_shape_are_errors() {
    for (answer, expected) in [
        (ResponseTemplate::new(500), 502),
        (ResponseTemplate::new(503), 502),
        (
            ResponseTemplate::new(200).set_body_raw("<html>oops", "application/json"),
            502,
        ),
        // A 200 without the orders array must not pass for "no orders".
        (
            ResponseTemplate::new(200).set_body_json(json!({"error": "database is down"})),
            500,
        ),
        // An order without its items array is as broken.
        (
            ResponseTemplate::new(200).set_body_json(json!({"orders": [{"number": "1", "createdAt": 1595872396, "status": "NEW", "total": 1}]})),
            500,
        ),
    ] {
        let s = shop(|_| {}).await;
        let shown = format!("{answer:?}");
        // At least once: the transport may retry a 5xx.
        s.crm_orders(answer, 1..).await;

        let (status, body) = s.orders(SHOPPER).await;

        assert_eq!(status, expected, "{shown}");
        assert_error(status, &body, expected);
        assert!(!body.to_string().contains(SHOPPER), "{body}");
    }
}

#[tokio::test]
async fn a_second_request_within_the_ttl_is_served_from_the_cache() {
    let s = shop(|u| u.users_api.orders_ttl = Duration::from_secs(60)).await;
    s.crm_orders(ResponseTemplate::new(200).set_body_json(crm_history()), 1)
        .await;

    let first = s.orders(SHOPPER).await;
    let second = s.orders(SHOPPER).await;

    assert_eq!(first, (200, expected_history()));
    assert_eq!(second, first);
    // `.expect(1)` is checked when the mock server drops.
}

#[tokio::test]
async fn ttl_zero_asks_the_crm_every_time() {
    let s = shop(|u| u.users_api.orders_ttl = Duration::from_secs(0)).await;
    s.crm_orders(ResponseTemplate::new(200).set_body_json(crm_history()), 3)
        .await;

    for _ in 0..3 {
        assert_eq!(s.orders(SHOPPER).await, (200, expected_history()));
    }
}

#[tokio::test]
async fn profiles_and_histories_do_not_share_cache_keys() {
    let s = shop(|_| {}).await;
    Mock::given(method("GET"))
        .and(path("/api/v1/customers/79991234567"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("users/customer-anna.json")))
        .expect(1)
        .mount(&s.crm)
        .await;
    s.crm_orders(ResponseTemplate::new(200).set_body_json(crm_history()), 1)
        .await;

    // The profile is cached first; the history for the same identifier is
    // still the CRM's history, and each is then a hit of its own.
    let (status, profile) = s.post("/users/get", SHOPPER).await;
    assert_eq!((status, &profile["user"]["id"]), (200, &json!("C-1001")));
    assert_eq!(s.orders(SHOPPER).await, (200, expected_history()));
    assert_eq!(s.post("/users/get", SHOPPER).await, (200, profile));
    assert_eq!(s.orders(SHOPPER).await, (200, expected_history()));
}

#[tokio::test]
async fn the_identifier_stays_out_of_logs_and_metrics() {
    let s = shop(|_| {}).await;
    let identifier = format!(
        "7{}",
        9_000_000_000u64 + (uuid::Uuid::new_v4().as_u128() % 800_000_000) as u64
    );
    let found = format!("/api/v1/customers/{identifier}/orders");
    Mock::given(path(found.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(crm_history()))
        .mount(&s.crm)
        .await;
    let failing = format!("78{}", &identifier[2..]);
    Mock::given(path(format!("/api/v1/customers/{failing}/orders").as_str()))
        .respond_with(ResponseTemplate::new(500))
        .mount(&s.crm)
        .await;

    assert_eq!(s.orders(&identifier).await.0, 200);
    assert_eq!(s.orders(&identifier).await.0, 200);
    assert_eq!(s.orders(&failing).await.0, 502);
    assert_eq!(s.orders("79990000404").await.0, 404);

    let logs = captured_logs();
    let metrics = metrics_of(&s.address).await;
    for id in [&identifier, &failing] {
        assert!(
            !logs.contains(id.as_str()),
            "an identifier reached the logs"
        );
        assert!(
            !metrics.contains(id.as_str()),
            "an identifier reached the metrics"
        );
    }
    assert!(
        metrics.contains("authbridge_users_requests_total{operation=\"orders\",outcome=\"found\"}"),
        "{metrics}"
    );
}
