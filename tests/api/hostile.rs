//! Hostile tokens: whatever the token holds, it reaches the CRM as exactly one
//! percent-encoded path segment (or one query value) and nothing else.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::ResponseTemplate;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

/// (as sent in our URL, the decoded token, as the CRM must see it in its path)
const CASES: &[(&str, &str, &str)] = &[
    ("a/b", "a/b", "a%2Fb"),
    ("c%2Fd", "c/d", "c%2Fd"),
    ("%2E%2E%2F%2E%2E%2Fadmin", "../../admin", "..%2F..%2Fadmin"),
    ("q%3Fx%3D1%26y", "q?x=1&y", "q%3Fx%3D1%26y"),
    ("frag%23x", "frag#x", "frag%23x"),
    ("sp%20ace", "sp ace", "sp%20ace"),
    (
        "%D1%82%D0%BE%D0%BA%D0%B5%D0%BD",
        "токен",
        "%D1%82%D0%BE%D0%BA%D0%B5%D0%BD",
    ),
    ("pct%2541", "pct%41", "pct%2541"),
    (
        "%40evil.example%3A80",
        "@evil.example:80",
        "%40evil.example%3A80",
    ),
];

/// Looks up every case's token through `app` (its CRM knows none: 404),
/// asserting each answer; the CRM's requests, one per token, in order.
async fn crm_requests_for_every_case(app: &TestApp) -> Vec<wiremock::Request> {
    app.crm_answers_all(ResponseTemplate::new(404)).await;
    for (sent, _, _) in CASES {
        assert_error(app.lookup(sent).await, 404, "1001").await;
    }
    let received = app.crm.received_requests().await.unwrap();
    assert_eq!(received.len(), CASES.len(), "one CRM request per token");
    received
}

#[tokio::test]
async fn tokens_are_one_encoded_path_segment_on_the_wire() {
    let app = spawn_app().await;

    let received = crm_requests_for_every_case(&app).await;

    for (request, (_, _, on_wire)) in received.iter().zip(CASES) {
        assert_eq!(
            request.url.path(),
            format!("/api/v1/sessions/{on_wire}/client")
        );
        assert_eq!(request.url.query(), None);
        let crm_host = app.crm.address().to_string();
        assert_eq!(request.headers["host"].to_str().unwrap(), crm_host);
    }
}

#[tokio::test]
async fn tokens_in_the_query_are_one_form_encoded_value() {
    let app = spawn_app_with(|s| {
        s.upstream.path = "/api/v1/client".into();
        s.upstream.query.insert("session".into(), "{token}".into());
        s.upstream.query.insert("v".into(), "2".into());
    })
    .await;

    let received = crm_requests_for_every_case(&app).await;

    for (request, (_, decoded, _)) in received.iter().zip(CASES) {
        assert_eq!(request.url.path(), "/api/v1/client");
        let pairs: Vec<(String, String)> = request.url.query_pairs().into_owned().collect();
        assert_eq!(
            pairs,
            vec![
                ("session".into(), (*decoded).into()),
                ("v".into(), "2".into())
            ]
        );
    }
}

#[tokio::test]
async fn dot_segment_tokens_are_refused_not_resolved() {
    // HTTP clients normalise `..` away, so send the request line by hand.
    let app = spawn_app().await;
    let addr = app.address.trim_start_matches("http://");
    for token in ["..", "."] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "GET /rest/chat/client/id/{token} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
        assert!(answer.contains(r#""errorCode":"1002""#), "{answer}");
    }
    assert_eq!(app.crm_calls().await, 0);
}

#[tokio::test]
async fn token_pattern_rejects_before_the_crm_is_called() {
    let app = spawn_app_with(|s| {
        s.server.token_pattern = Some(regex::Regex::new("^[A-Za-z0-9_-]+$").unwrap())
    })
    .await;
    app.crm_answers_all(ResponseTemplate::new(404)).await;

    let text = assert_error(app.lookup("x'%20OR%20'1").await, 400, "1002").await;
    assert_eq!(
        text,
        "invalid token: the token does not match server.token_pattern"
    );
    assert_error(app.lookup("good_token-1").await, 404, "1001").await;
    assert_eq!(app.crm_calls().await, 1);
}

#[tokio::test]
async fn query_language_escapes_keep_the_token_inside_its_string_literal() {
    let app = spawn_app_with(|s| {
        s.upstream.path = "/query".into();
        s.upstream.query.insert(
            "q".into(),
            "SELECT Id FROM Contact WHERE Chat_Token__c = '{token|soql}' LIMIT 2".into(),
        );
        s.upstream
            .query
            .insert("$filter".into(), "new_chattoken eq '{token|odata}'".into());
    })
    .await;
    app.crm_answers_all(ResponseTemplate::new(404)).await;

    // x' OR LastName != '   (URL-encoded in our request path)
    assert_error(
        app.lookup("x'%20OR%20LastName%20!%3D%20'").await,
        404,
        "1001",
    )
    .await;

    let received = app.crm.received_requests().await.unwrap();
    let pairs: std::collections::HashMap<String, String> =
        received[0].url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs["q"],
        r"SELECT Id FROM Contact WHERE Chat_Token__c = 'x\' OR LastName != \'' LIMIT 2"
    );
    assert_eq!(pairs["$filter"], "new_chattoken eq 'x'' OR LastName != '''");
}
