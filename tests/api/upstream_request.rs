//! The CRM request as configured: auth schemes, static headers, POST bodies.

use serde_json::json;
use wiremock::Mock;
use wiremock::matchers::{body_json, header, method, path};

use crate::helpers::{alice, crm_path, spawn_app_with};
use authbridge::config::{AuthKind, HttpMethod};

fn secret_file(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, content.as_bytes()).unwrap();
    f
}

#[tokio::test]
async fn bearer_token_and_static_headers_are_sent() {
    let secret = secret_file("crm-bearer-123\n");
    let app = spawn_app_with(|s| {
        s.upstream.auth.kind = AuthKind::Bearer;
        s.upstream.auth.secret_file = Some(secret.path().to_owned());
        s.upstream
            .headers
            .insert("X-Caller".into(), "authbridge".into());
    })
    .await;
    Mock::given(path(crm_path("t1")))
        .and(header("authorization", "Bearer crm-bearer-123"))
        .and(header("x-caller", "authbridge"))
        .respond_with(alice())
        .expect(1)
        .mount(&app.crm)
        .await;

    assert_eq!(app.lookup("t1").await.status(), 200);
}

#[tokio::test]
async fn basic_auth_is_sent() {
    let secret = secret_file("p@ss:word");
    let app = spawn_app_with(|s| {
        s.upstream.auth.kind = AuthKind::Basic;
        s.upstream.auth.username = Some("bridge".into());
        s.upstream.auth.secret_file = Some(secret.path().to_owned());
    })
    .await;
    // base64("bridge:p@ss:word")
    Mock::given(header("authorization", "Basic YnJpZGdlOnBAc3M6d29yZA=="))
        .respond_with(alice())
        .expect(1)
        .mount(&app.crm)
        .await;

    assert_eq!(app.lookup("t2").await.status(), 200);
}

#[tokio::test]
async fn api_key_header_is_sent() {
    let secret = secret_file("key-789");
    let app = spawn_app_with(|s| {
        s.upstream.auth.kind = AuthKind::ApiKey;
        s.upstream.auth.header = Some("X-Api-Token".into());
        s.upstream.auth.secret_file = Some(secret.path().to_owned());
    })
    .await;
    Mock::given(header("x-api-token", "key-789"))
        .respond_with(alice())
        .expect(1)
        .mount(&app.crm)
        .await;

    assert_eq!(app.lookup("t3").await.status(), 200);
}

#[tokio::test]
async fn post_with_a_json_body_template() {
    let app = spawn_app_with(|s| {
        s.upstream.method = HttpMethod::POST;
        s.upstream.path = "/api/v1/client/search".into();
        s.upstream.body =
            Some(r#"{"session": {"token": "{token}"}, "include": ["companies"]}"#.into());
    })
    .await;
    let token = r#"tok"en\with"quotes"#;
    Mock::given(method("POST"))
        .and(path("/api/v1/client/search"))
        .and(header("content-type", "application/json"))
        .and(body_json(
            json!({"session": {"token": token}, "include": ["companies"]}),
        ))
        .respond_with(alice())
        .expect(1)
        .mount(&app.crm)
        .await;

    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    assert_eq!(app.lookup(&encoded.replace('+', "%20")).await.status(), 200);
}

#[tokio::test]
async fn missing_secret_refuses_to_start() {
    let mut settings = crate::helpers::test_settings("http://127.0.0.1:9");
    settings.upstream.auth.kind = AuthKind::Bearer;
    settings.upstream.auth.secret_file = Some("/nonexistent/authbridge-secret".into());
    let err = authbridge::Application::build(settings)
        .await
        .err()
        .expect("refuses to start");
    assert!(
        err.to_string()
            .contains("upstream.auth.secret_file: cannot read"),
        "{err}"
    );
}

#[tokio::test]
async fn api_key_query_parameter_is_sent() {
    let secret = secret_file("qk-456");
    let app = spawn_app_with(|s| {
        s.upstream.auth.kind = AuthKind::ApiKey;
        s.upstream.auth.query_param = Some("api_key".into());
        s.upstream.auth.secret_file = Some(secret.path().to_owned());
    })
    .await;
    Mock::given(path(crm_path("t4")))
        .and(wiremock::matchers::query_param("api_key", "qk-456"))
        .respond_with(alice())
        .expect(1)
        .mount(&app.crm)
        .await;

    assert_eq!(app.lookup("t4").await.status(), 200);
}
