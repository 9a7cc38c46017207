//! The cache: hits make no CRM call, misses coalesce, not-found is cached
//! briefly, errors are never cached, and a fetch outlives its caller.

use std::time::Duration;

use serde_json::Value;
use wiremock::ResponseTemplate;

use crate::helpers::{alice, assert_error, bob, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_cache_hit_makes_no_crm_call() {
    let app = spawn_app().await;
    app.crm_answers("hit", alice(), 1).await;

    let first = app.card("hit").await;
    let second = app.lookup("hit").await;

    assert_eq!(second.status(), 200);
    assert_eq!(second.headers()["cache-control"], "no-store");
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    assert_eq!(app.crm_calls().await, 1);
}

#[tokio::test]
async fn hundred_concurrent_misses_for_one_token_make_one_crm_call() {
    let app = spawn_app().await;
    app.crm_answers("burst", alice().set_delay(Duration::from_millis(300)), 1)
        .await;

    let requests = (0..100).map(|_| app.lookup("burst"));
    let responses = futures_util::future::join_all(requests).await;

    assert!(responses.iter().all(|r| r.status() == 200));
    assert_eq!(app.crm_calls().await, 1);
}

#[tokio::test]
async fn the_fetch_finishes_after_its_caller_disconnects() {
    let app = spawn_app().await;
    app.crm_answers(
        "impatient",
        alice().set_delay(Duration::from_millis(300)),
        1,
    )
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
    // The fetch did start (a caller that hung up before the server read its
    // request would leave nothing to outlive it).
    app.wait_for_crm_calls(1).await;
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
    app.crm_answers("ghost", ResponseTemplate::new(404), 2)
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
    app.crm_answers("short", alice(), 2).await;

    assert_eq!(app.lookup("short").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(app.lookup("short").await.status(), 200);
}

#[tokio::test]
async fn errors_are_never_cached() {
    let app = spawn_app_with(|s| s.upstream.retry.max_attempts = 1).await;
    app.crm_answers("flaky", ResponseTemplate::new(503), 2)
        .await;

    assert_error(app.lookup("flaky").await, 502, "1006").await;
    assert_error(app.lookup("flaky").await, 502, "1006").await;
}

#[tokio::test]
async fn different_tokens_do_not_share_entries() {
    let app = spawn_app().await;
    app.crm_answers("one", alice(), 1).await;
    app.crm_answers("two", bob(), 1).await;

    let one = app.card("one").await;
    let two = app.card("two").await;

    assert_eq!(one["client"]["id"], "100234");
    assert_eq!(two["client"]["id"], "100877");
}

#[tokio::test]
async fn workers_share_one_cache_and_one_fetch_per_token() {
    // Three accept loops on one port; each request on its own connection,
    // so the kernel spreads them over the workers' sockets.
    let app = spawn_app_with(|s| s.server.workers = 3).await;
    app.crm_answers("spread", alice().set_delay(Duration::from_millis(300)), 1)
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
