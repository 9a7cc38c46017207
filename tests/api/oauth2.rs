//! OAuth2 client credentials against a mock token endpoint: one token for many
//! concurrent lookups, reused until expiry, renewed once on a 401.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use tempfile::NamedTempFile;

use crate::helpers::{TestApp, alice, assert_error, file, spawn_app_with};
use authbridge::config::{AuthKind, ClientAuth};

fn token(access: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": access, "token_type": "Bearer", "expires_in": expires_in
    }))
}

/// The IdP answers `response` to token requests: the first `first_only` of
/// them only when `Some(n)`, each expected `times` when given.
async fn idp_answers(
    idp: &MockServer,
    response: ResponseTemplate,
    first_only: Option<u64>,
    times: Option<u64>,
) {
    let mut mock = Mock::given(path("/oauth2/token")).respond_with(response);
    if let Some(n) = first_only {
        mock = mock.up_to_n_times(n);
    }
    if let Some(n) = times {
        mock = mock.expect(n);
    }
    mock.mount(idp).await;
}

/// The CRM answers `response` to requests bearing `bearer`, `times` times.
async fn crm_answers_bearer(app: &TestApp, bearer: &str, response: ResponseTemplate, times: u64) {
    Mock::given(header("authorization", format!("Bearer {bearer}").as_str()))
        .respond_with(response)
        .expect(times)
        .mount(&app.crm)
        .await;
}

/// An app whose CRM takes OAuth2 tokens from `idp`; the client secret file
/// lives as long as the app.
async fn app_with_oauth(idp: &MockServer, client_auth: ClientAuth) -> (TestApp, NamedTempFile) {
    let secret = file("client-secret-xyz");
    let token_url = format!("{}/oauth2/token", idp.uri());
    let secret_path = secret.path().to_owned();
    let app = spawn_app_with(move |s| {
        s.upstream.auth.kind = AuthKind::OAuth2;
        s.upstream.auth.token_url = Some(token_url.parse().unwrap());
        s.upstream.auth.client_id = Some("authbridge".into());
        s.upstream.auth.scope = Some("crm.read".into());
        s.upstream.auth.client_auth = client_auth;
        s.upstream.auth.secret_file = Some(secret_path);
    })
    .await;
    (app, secret)
}

#[tokio::test]
async fn one_token_for_a_hundred_concurrent_lookups() {
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth2/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=authbridge"))
        .and(body_string_contains("client_secret=client-secret-xyz"))
        .and(body_string_contains("scope=crm.read"))
        .respond_with(token("at-1", 3600).set_delay(Duration::from_millis(200)))
        .expect(1)
        .mount(&idp)
        .await;
    let (app, _secret) = app_with_oauth(&idp, ClientAuth::Body).await;
    crm_answers_bearer(&app, "at-1", alice(), 100).await;

    // 100 different tokens: no lookup coalescing, 100 CRM requests.
    let lookups = (0..100).map(|i| app.lookup_owned(format!("user-{i}")));
    let responses = futures_util::future::join_all(lookups).await;

    assert!(responses.iter().all(|r| r.status() == 200));
    idp.verify().await;
}

#[tokio::test]
async fn the_token_is_reused_until_it_expires() {
    let idp = MockServer::start().await;
    // 3 s: the two lookups that reuse it are far inside its life even on a
    // stalled machine.
    idp_answers(&idp, token("at-1", 3), Some(1), Some(1)).await;
    idp_answers(&idp, token("at-2", 3600), None, Some(1)).await;
    let (app, _secret) = app_with_oauth(&idp, ClientAuth::Body).await;
    crm_answers_bearer(&app, "at-1", alice(), 2).await;
    crm_answers_bearer(&app, "at-2", alice(), 1).await;

    assert_eq!(app.lookup("a").await.status(), 200);
    assert_eq!(app.lookup("b").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_eq!(app.lookup("c").await.status(), 200);
}

#[tokio::test]
async fn a_401_renews_the_token_once() {
    let idp = MockServer::start().await;
    idp_answers(&idp, token("revoked", 3600), Some(1), None).await;
    idp_answers(&idp, token("fresh", 3600), None, None).await;
    let (app, _secret) = app_with_oauth(&idp, ClientAuth::Basic).await;
    crm_answers_bearer(&app, "revoked", ResponseTemplate::new(401), 1).await;
    crm_answers_bearer(&app, "fresh", alice(), 2).await;

    assert_eq!(app.lookup("a").await.status(), 200);
    assert_eq!(app.lookup("b").await.status(), 200);

    let token_requests = idp.received_requests().await.unwrap();
    assert_eq!(token_requests.len(), 2, "the first token, and one renewal");
    // client_auth = basic: base64("authbridge:client-secret-xyz"), not in the body.
    assert_eq!(
        token_requests[0].headers["authorization"],
        "Basic YXV0aGJyaWRnZTpjbGllbnQtc2VjcmV0LXh5eg=="
    );
    assert!(!String::from_utf8_lossy(&token_requests[0].body).contains("client_secret"));
}

#[tokio::test]
async fn a_crm_that_refuses_fresh_tokens_is_an_auth_error() {
    let idp = MockServer::start().await;
    idp_answers(&idp, token("t", 3600), None, None).await;
    let (app, _secret) = app_with_oauth(&idp, ClientAuth::Body).await;
    app.crm_answers("x", ResponseTemplate::new(401), 2).await;

    let text = assert_error(app.lookup("x").await, 502, "1008").await;
    assert_eq!(
        text,
        "CRM authentication failed: the CRM refused a fresh access token"
    );
}

#[tokio::test]
async fn a_failing_token_endpoint_is_an_auth_error_without_secrets() {
    let idp = MockServer::start().await;
    let refusal = ResponseTemplate::new(400).set_body_json(json!({"error": "invalid_client"}));
    idp_answers(&idp, refusal, None, None).await;
    let (app, _secret) = app_with_oauth(&idp, ClientAuth::Body).await;

    let text = assert_error(app.lookup("x").await, 502, "1008").await;

    assert_eq!(
        text,
        "CRM authentication failed: the token endpoint refused the client credentials"
    );
    assert_eq!(app.crm_calls().await, 0);
    assert!(!crate::helpers::captured_logs().contains("client-secret-xyz"));
}
