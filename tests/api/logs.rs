//! The token never appears in logs, at any level.

use wiremock::matchers::any;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{captured_logs, crm_path, fixture, spawn_app_with};
use wiremock::matchers::path;

#[tokio::test]
async fn tokens_are_absent_from_trace_logs() {
    let app = spawn_app_with(|s| {
        s.upstream.query.insert("session".into(), "{token}".into());
    })
    .await;
    let found = format!("leakcheck-found-{}", uuid::Uuid::new_v4().simple());
    let missing = format!("leakcheck-missing-{}", uuid::Uuid::new_v4().simple());
    let broken = format!("leakcheck-broken-{}", uuid::Uuid::new_v4().simple());
    Mock::given(path(crm_path(&found)))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("generic-bank/alice.input.json")),
        )
        .mount(&app.crm)
        .await;
    Mock::given(path(crm_path(&broken)))
        .respond_with(ResponseTemplate::new(500))
        .mount(&app.crm)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(404))
        .mount(&app.crm)
        .await;

    assert_eq!(app.lookup(&found).await.status(), 200);
    assert_eq!(app.lookup(&found).await.status(), 200);
    assert_eq!(app.lookup(&missing).await.status(), 404);
    assert_eq!(app.lookup(&broken).await.status(), 502);

    let logs = captured_logs();
    // The capture works: our request spans are in it, at TRACE detail.
    assert!(
        logs.contains("/rest/chat/client/id/{*token}"),
        "no request spans captured"
    );
    for token in [&found, &missing, &broken] {
        assert!(!logs.contains(token.as_str()), "token leaked into logs");
        // Nor any distinctive part of it (e.g. in an encoded URL).
        assert!(
            !logs.contains(&token[token.len() - 12..]),
            "token fragment leaked into logs"
        );
    }
    // Nor personal data from the card.
    assert!(!logs.contains("Иванова"));
}

#[tokio::test]
async fn verbose_events_of_the_http_stack_are_held_back() {
    crate::helpers::init_logs();
    let id = uuid::Uuid::new_v4().simple().to_string();
    tracing::debug!(target: "reqwest::connect", "probe-debug-{id} http://crm/clients/secret");
    tracing::trace!(target: "hyper_util::client", "probe-trace-{id}");
    tracing::warn!(target: "reqwest::connect", "probe-warn-{id}");
    tracing::debug!(target: "authbridge::probe", "probe-own-{id}");

    let logs = captured_logs();
    assert!(!logs.contains(&format!("probe-debug-{id}")));
    assert!(!logs.contains(&format!("probe-trace-{id}")));
    assert!(
        logs.contains(&format!("probe-warn-{id}")),
        "warnings still pass"
    );
    assert!(
        logs.contains(&format!("probe-own-{id}")),
        "our own DEBUG passes"
    );
}

/// On every way a CRM call can fail (timeout, connection refused, connection
/// reset, 500) and with every kind of CRM credential (API key in the query,
/// Bearer, Basic) behind an inbound shared secret, no log line holds the
/// token, the CRM secret or the inbound secret.
#[tokio::test]
async fn secrets_and_tokens_stay_out_of_logs_on_every_crm_failure() {
    use authbridge::config::{AccessKind, AuthKind};
    use std::time::Duration;
    // A CRM that accepts and drops every connection (a reset).
    let resetting = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let reset_url = format!("http://{}", resetting.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = resetting.accept().await {
            drop(tcp);
        }
    });
    let crm_secret = format!("crm-secret-{}", uuid::Uuid::new_v4().simple());
    let inbound = format!("inbound-secret-{}", uuid::Uuid::new_v4().simple());
    let crm_file = crate::helpers::file(&crm_secret);
    let inbound_file = crate::helpers::file(&inbound);
    let mut tokens = Vec::new();
    for (fault, auth) in [
        ("timeout", AuthKind::ApiKey),
        ("refused", AuthKind::Bearer),
        ("reset", AuthKind::Basic),
        ("500", AuthKind::ApiKey),
    ] {
        let (crm_file, inbound_file, reset_url) = (
            crm_file.path().to_owned(),
            inbound_file.path().to_owned(),
            reset_url.clone(),
        );
        let app = spawn_app_with(move |s| {
            s.upstream.auth.kind = auth;
            s.upstream.auth.username = Some("authbridge".into());
            s.upstream.auth.query_param = (auth == AuthKind::ApiKey).then(|| "apikey".into());
            s.upstream.auth.secret_file = Some(crm_file);
            s.server.access.kind = AccessKind::Bearer;
            s.server.access.secret_file = Some(inbound_file);
            s.upstream.timeout = Duration::from_millis(300);
            s.upstream.connect_timeout = Duration::from_millis(300);
            s.upstream.retry.max_attempts = 1;
            match fault {
                "refused" => s.upstream.base_url = Some("http://127.0.0.1:9".parse().unwrap()),
                "reset" => s.upstream.base_url = Some(reset_url.parse().unwrap()),
                _ => {}
            }
        })
        .await;
        let template = match fault {
            "timeout" => ResponseTemplate::new(200).set_delay(Duration::from_secs(2)),
            _ => ResponseTemplate::new(500),
        };
        Mock::given(any())
            .respond_with(template)
            .mount(&app.crm)
            .await;
        let token = format!("leakcheck-{fault}-{}", uuid::Uuid::new_v4().simple());
        let answer = app
            .http
            .get(format!("{}/rest/chat/client/id/{token}", app.address))
            .bearer_auth(&inbound)
            .send()
            .await
            .unwrap();
        let expected = if fault == "timeout" { 504 } else { 502 };
        assert_eq!(answer.status(), expected, "{fault}");
        // A wrong inbound secret is refused without being logged either.
        let refused = app
            .http
            .get(format!("{}/rest/chat/client/id/{token}", app.address))
            .bearer_auth(format!("{inbound}-wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{fault}");
        tokens.push(token);
    }
    let logs = captured_logs();
    assert!(
        logs.contains("CRM lookup failed"),
        "the failures were logged"
    );
    for secret in tokens.iter().chain([&crm_secret, &inbound]) {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret or token reached the logs"
        );
        assert!(
            !logs.contains(&secret[secret.len() - 12..]),
            "a fragment of a secret or token reached the logs"
        );
    }
}
