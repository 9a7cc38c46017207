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
