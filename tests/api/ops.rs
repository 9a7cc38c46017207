//! Health, readiness, metrics and graceful shutdown.

use std::time::Duration;

use authbridge::Application;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer};

use crate::helpers::{alice, crm_path, eventually, init_logs, spawn_app, test_settings};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), r#"{"status":"ok"}"#);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), r#"{"status":"ready"}"#);
}

#[tokio::test]
async fn metrics_count_requests_cache_and_crm_without_tokens() {
    let app = spawn_app().await;
    app.crm_answers("metric-token-abc", alice(), 1).await;
    let first = app.lookup("metric-token-abc").await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-authbridge-cache"], "miss");
    let second = app.lookup("metric-token-abc").await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["x-authbridge-cache"], "hit");
    assert_eq!(app.crm_calls().await, 1);

    let text = app.get("/metrics").await.text().await.unwrap();

    for name in [
        "authbridge_requests_total{outcome=\"found\"}",
        "authbridge_requests_total{outcome=\"found_cached\"}",
        "authbridge_upstream_requests_total{status=\"200\"}",
        "authbridge_cache_hits_total",
        "authbridge_cache_misses_total",
        "authbridge_request_duration_seconds_bucket",
        "authbridge_upstream_duration_seconds_bucket",
        "authbridge_cache_entries",
        "authbridge_cache_bytes",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(!text.contains("metric-token-abc"));
}

#[tokio::test]
async fn shutdown_finishes_in_flight_requests_then_stops() {
    init_logs();
    let crm = MockServer::start().await;
    Mock::given(path(crm_path("slow")))
        .respond_with(alice().set_delay(Duration::from_millis(400)))
        .mount(&crm)
        .await;
    let app = Application::build(test_settings(&crm.uri())).await.unwrap();
    let address = format!("http://{}", app.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_with_shutdown(async {
        let _ = stopped.await;
    }));

    let in_flight = tokio::spawn(reqwest::get(format!("{address}/rest/chat/client/id/slow")));
    // Stop once the lookup is in flight (the CRM has it), not after a
    // guessed time a stalled machine may not have reached it in.
    eventually(
        "the lookup is in flight",
        Duration::from_secs(10),
        || async { !crm.received_requests().await.unwrap().is_empty() },
    )
    .await;
    stop.send(()).unwrap();

    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the in-flight lookup completes");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops after draining")
        .unwrap()
        .unwrap();
    assert!(
        reqwest::get(format!("{address}/healthz")).await.is_err(),
        "no longer listening"
    );
}
