//! The cache: hits make no CRM call, misses coalesce, not-found is cached
//! briefly, errors are never cached, and a fetch outlives its caller.

use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::path;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{alice, assert_error, crm_path, fixture, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_cache_hit_makes_no_crm_call() {
    let app = spawn_app().await;
    Mock::given(path(crm_path("hit")))
        .respond_with(alice())
        .expect(1)
        .mount(&app.crm)
        .await;

    let first: Value = app.lookup("hit").await.json().await.unwrap();
    let second = app.lookup("hit").await;

    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["cache-control"], "no-store");
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    assert_eq!(app.crm_calls().await, 1);
}

#[tokio::test]
async fn hundred_concurrent_misses_for_one_token_make_one_crm_call() {
    let app = spawn_app().await;
    Mock::given(path(crm_path("burst")))
        .respond_with(alice().set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(&app.crm)
        .await;

    let requests = (0..100).map(|_| app.lookup("burst"));
    let responses = futures_util::future::join_all(requests).await;

    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(app.crm_calls().await, 1);
}

#[tokio::test]
async fn the_fetch_finishes_after_its_caller_disconnects() {
    let app = spawn_app().await;
    Mock::given(path(crm_path("impatient")))
        .respond_with(alice().set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(&app.crm)
        .await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(50))
        .build()
        .unwrap();

    let gave_up = impatient
        .get(format!("{}/rest/chat/client/id/impatient", app.address))
        .send()
        .await;
    assert!(
        gave_up.is_err(),
        "the first caller hangs up before the CRM answers"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = app.lookup("impatient").await;

    assert_eq!(later.status(), 200);
    assert_eq!(
        app.crm_calls().await,
        1,
        "the card came from the detached fetch"
    );
}

#[tokio::test]
async fn not_found_is_cached_for_its_own_ttl() {
    let app = spawn_app_with(|s| s.cache.not_found_ttl = Duration::from_secs(1)).await;
    Mock::given(path(crm_path("ghost")))
        .respond_with(ResponseTemplate::new(404))
        .expect(2)
        .mount(&app.crm)
        .await;

    assert_error(app.lookup("ghost").await, 404, "1001").await;
    assert_error(app.lookup("ghost").await, 404, "1001").await;
    assert_eq!(
        app.crm_calls().await,
        1,
        "second answer came from the negative cache"
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_error(app.lookup("ghost").await, 404, "1001").await;
    assert_eq!(app.crm_calls().await, 2, "the not-found entry expired");
}

#[tokio::test]
async fn found_cards_expire_after_their_ttl() {
    let app = spawn_app_with(|s| s.cache.found_ttl = Duration::from_secs(1)).await;
    Mock::given(path(crm_path("short")))
        .respond_with(alice())
        .expect(2)
        .mount(&app.crm)
        .await;

    assert_eq!(app.lookup("short").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(app.lookup("short").await.status(), 200);
}

#[tokio::test]
async fn errors_are_never_cached() {
    let app = spawn_app_with(|s| s.upstream.retry.max_attempts = 1).await;
    Mock::given(path(crm_path("flaky")))
        .respond_with(ResponseTemplate::new(503))
        .expect(2)
        .mount(&app.crm)
        .await;

    assert_error(app.lookup("flaky").await, 502, "1006").await;
    assert_error(app.lookup("flaky").await, 502, "1006").await;
}

#[tokio::test]
async fn different_tokens_do_not_share_entries() {
    let app = spawn_app().await;
    Mock::given(path(crm_path("one")))
        .respond_with(alice())
        .expect(1)
        .mount(&app.crm)
        .await;
    Mock::given(path(crm_path("two")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("generic-bank/bob-disabled.input.json")),
        )
        .expect(1)
        .mount(&app.crm)
        .await;

    let one: Value = app.lookup("one").await.json().await.unwrap();
    let two: Value = app.lookup("two").await.json().await.unwrap();

    assert_eq!(one["client"]["id"], "100234");
    assert_eq!(two["client"]["id"], "100877");
}

#[tokio::test]
async fn workers_share_one_cache_and_one_fetch_per_token() {
    // Three accept loops on one port; each request on its own connection,
    // so the kernel spreads them over the workers' sockets.
    let app = spawn_app_with(|s| s.server.workers = 3).await;
    Mock::given(path(crm_path("spread")))
        .respond_with(alice().set_delay(Duration::from_millis(300)))
        .expect(1)
        .mount(&app.crm)
        .await;
    let url = format!("{}/rest/chat/client/id/spread", app.address);

    let calls = (0..60).map(|_| {
        let url = url.clone();
        async move {
            let fresh = reqwest::Client::builder()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap();
            fresh.get(url).send().await.unwrap().status().as_u16()
        }
    });
    let statuses = futures_util::future::join_all(calls).await;
    let again = app.lookup("spread").await;

    assert_eq!(statuses.len(), 60);
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(again.headers()["x-authbridge-cache"], "hit");
    assert_eq!(app.crm_calls().await, 1);
}
