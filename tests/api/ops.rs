//! Health, readiness, metrics and graceful shutdown.

use std::time::Duration;

use authbridge::Application;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer};

use crate::helpers::{alice, crm_path, eventually, init_logs, metric_in, spawn_app, test_settings};

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

    let text = app.metrics().await;

    // This app's own registry: exact counts, whatever other tests run.
    for (sample, value) in [
        ("authbridge_requests_total{outcome=\"found\"}", 1.0),
        ("authbridge_requests_total{outcome=\"found_cached\"}", 1.0),
        ("authbridge_upstream_requests_total{status=\"200\"}", 1.0),
        ("authbridge_cache_hits_total", 1.0),
        ("authbridge_cache_misses_total", 1.0),
        ("authbridge_request_duration_seconds_count", 2.0),
        ("authbridge_upstream_duration_seconds_count", 1.0),
        ("authbridge_cache_entries", 1.0),
    ] {
        assert_eq!(metric_in(&text, sample), value, "{sample} in:\n{text}");
    }
    for name in [
        "authbridge_request_duration_seconds_bucket",
        "authbridge_upstream_duration_seconds_bucket",
        "authbridge_cache_bytes",
        "# HELP authbridge_requests_total Lookups answered, by outcome",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    assert!(!text.contains("metric-token-abc"));
}

#[tokio::test]
async fn each_app_counts_only_its_own_requests() {
    // Two apps in one process, each in front of its own CRM: one finds a
    // customer, the other does not.
    let finds = spawn_app().await;
    Mock::given(path(crm_path("known")))
        .respond_with(alice())
        .mount(&finds.crm)
        .await;
    let misses = spawn_app().await;

    assert_eq!(finds.lookup("known").await.status(), 200);
    assert_eq!(finds.lookup("known").await.status(), 200);
    assert_eq!(misses.lookup("stranger").await.status(), 404);

    let (found, missed) = (finds.metrics().await, misses.metrics().await);
    let pairs = [
        ("authbridge_requests_total{outcome=\"found\"}", 1.0, 0.0),
        (
            "authbridge_requests_total{outcome=\"found_cached\"}",
            1.0,
            0.0,
        ),
        ("authbridge_requests_total{outcome=\"not_found\"}", 0.0, 1.0),
        (
            "authbridge_upstream_requests_total{status=\"200\"}",
            1.0,
            0.0,
        ),
        (
            "authbridge_upstream_requests_total{status=\"404\"}",
            0.0,
            1.0,
        ),
        ("authbridge_cache_hits_total", 1.0, 0.0),
        ("authbridge_cache_misses_total", 1.0, 1.0),
        ("authbridge_request_duration_seconds_count", 2.0, 1.0),
        ("authbridge_cache_entries", 1.0, 1.0),
    ];
    for (sample, in_finds, in_misses) in pairs {
        assert_eq!(metric_in(&found, sample), in_finds, "{sample} in:\n{found}");
        assert_eq!(
            metric_in(&missed, sample),
            in_misses,
            "{sample} in:\n{missed}"
        );
    }
    // Series the other app created are not even listed.
    assert!(!missed.contains("status=\"200\""), "{missed}");
    assert!(!found.contains("status=\"404\""), "{found}");
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
