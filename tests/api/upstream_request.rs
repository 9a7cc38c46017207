//! The CRM request as configured: auth schemes, static headers, POST bodies.

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockBuilder};

use crate::helpers::{TestApp, alice, crm_path, file, spawn_app_with};
use authbridge::Settings;
use authbridge::config::{AuthKind, HttpMethod};

/// An app whose CRM requests carry the secret `secret` as `kind`, with
/// `adjust` setting the rest; the secret file lives as long as the app.
async fn app_with_secret(
    kind: AuthKind,
    secret: &str,
    adjust: impl FnOnce(&mut Settings),
) -> (TestApp, tempfile::NamedTempFile) {
    let secret = file(secret);
    let secret_path = secret.path().to_owned();
    let app = spawn_app_with(move |s| {
        s.upstream.auth.kind = kind;
        s.upstream.auth.secret_file = Some(secret_path);
        adjust(s);
    })
    .await;
    (app, secret)
}

/// The CRM answers Alice once to a request `matcher` accepts.
async fn crm_expects(app: &TestApp, matcher: MockBuilder) {
    matcher
        .respond_with(alice())
        .expect(1)
        .mount(&app.crm)
        .await;
}

/// A scheme's case: the scheme, the secret file's content, the scheme's
/// other settings, the token looked up, and the one request the CRM must
/// receive (checked when the case's app drops).
type Case = (
    AuthKind,
    &'static str,
    fn(&mut Settings),
    &'static str,
    MockBuilder,
);

/// Every scheme sends the secret from its file where the CRM reads it.
#[tokio::test]
async fn every_auth_scheme_and_static_headers_are_sent() {
    let cases: [Case; 4] = [
        (
            AuthKind::Bearer,
            "crm-bearer-123\n",
            |s| {
                s.upstream
                    .headers
                    .insert("X-Caller".into(), "authbridge".into());
            },
            "t1",
            Mock::given(path(crm_path("t1")))
                .and(header("authorization", "Bearer crm-bearer-123"))
                .and(header("x-caller", "authbridge")),
        ),
        (
            AuthKind::Basic,
            "p@ss:word",
            |s| s.upstream.auth.username = Some("bridge".into()),
            "t2",
            // base64("bridge:p@ss:word")
            Mock::given(header("authorization", "Basic YnJpZGdlOnBAc3M6d29yZA==")),
        ),
        (
            AuthKind::ApiKey,
            "key-789",
            |s| s.upstream.auth.header = Some("X-Api-Token".into()),
            "t3",
            Mock::given(header("x-api-token", "key-789")),
        ),
        (
            AuthKind::ApiKey,
            "qk-456",
            |s| s.upstream.auth.query_param = Some("api_key".into()),
            "t4",
            Mock::given(path(crm_path("t4"))).and(query_param("api_key", "qk-456")),
        ),
    ];
    for (kind, secret, adjust, token, matcher) in cases {
        let (app, _secret) = app_with_secret(kind, secret, adjust).await;
        crm_expects(&app, matcher).await;

        assert_eq!(app.lookup(token).await.status(), 200, "{token}");
    }
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
    crm_expects(
        &app,
        Mock::given(method("POST"))
            .and(path("/api/v1/client/search"))
            .and(header("content-type", "application/json"))
            .and(body_json(
                json!({"session": {"token": token}, "include": ["companies"]}),
            )),
    )
    .await;

    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    assert_eq!(app.lookup(&encoded.replace('+', "%20")).await.status(), 200);
}

#[tokio::test]
async fn missing_secret_refuses_to_start() {
    let mut settings = crate::helpers::test_settings("http://127.0.0.1:9");
    settings.upstream.auth.kind = AuthKind::Bearer;
    settings.upstream.auth.secret_file = Some("/nonexistent/authbridge-secret".into());
    let err = crate::helpers::refusal(settings).await;
    assert!(
        err.contains("upstream.auth.secret_file: cannot read"),
        "{err}"
    );
}
