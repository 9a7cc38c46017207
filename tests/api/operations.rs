//! Operating authbridge: inbound access control, connection limits, the admin
//! API, hot reload under load, TLS termination with certificate reload.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::MockServer;

use crate::helpers::{
    alice, assert_error, card_at, crm_answering, eventually, file, http, lookup_at, metrics_of,
    repo_path, start, start_with_admin, status_of, test_settings, type_one,
};
use authbridge::config::{AccessKind, Settings};

async fn crm() -> MockServer {
    crm_answering(alice()).await
}

#[tokio::test]
async fn a_shared_secret_guards_the_auth_api_but_not_health() {
    let crm = crm().await;
    let secret = file("chat-s3cret");
    let mut settings = test_settings(&crm.uri());
    settings.server.access.kind = AccessKind::Bearer;
    settings.server.access.secret_file = Some(secret.path().to_owned());
    let address = start(settings).await;
    let url = format!("{address}/rest/chat/client/id/t");

    let none = http().get(&url).send().await.unwrap();
    let text = assert_error(none, 401, "1012").await;
    assert_eq!(text, "Missing or wrong credentials");
    assert_error(
        http().get(&url).bearer_auth("nope").send().await.unwrap(),
        401,
        "1012",
    )
    .await;
    assert_eq!(
        status_of(http().get(&url).bearer_auth("chat-s3cret")).await,
        200
    );
    assert_eq!(
        status_of(http().get(format!("{address}/healthz"))).await,
        200
    );
    assert_eq!(crm.received_requests().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_cidr_allowlist_and_a_per_ip_rate_limit() {
    let crm = crm().await;
    let mut settings = test_settings(&crm.uri());
    settings.server.access.allow_cidrs = vec!["10.0.0.0/8".parse().unwrap()];
    let closed = start(settings).await;
    let text = assert_error(lookup_at(&closed, "t").await, 403, "1013").await;
    assert_eq!(text, "Caller network not allowed");

    let mut settings = test_settings(&crm.uri());
    settings.server.access.allow_cidrs =
        vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
    settings.server.access.rate_limit_per_ip = 1;
    settings.server.access.rate_limit_burst = 2;
    let open = start(settings).await;
    // The burst of 2 is served, then the limiter refuses. A stalled machine
    // may refill a token (1 a second) between requests: it then serves at
    // most one more per second that passed, never more.
    let started = std::time::Instant::now();
    let mut served = 0;
    loop {
        let r = lookup_at(&open, "t").await;
        if r.status() != 200 {
            assert_error(r, 429, "1011").await;
            break;
        }
        served += 1;
        assert!(served <= 20, "the rate limit never refused");
    }
    let refills = started.elapsed().as_secs();
    assert!(served >= 2, "the burst was served: {served}");
    assert!(
        served <= 2 + refills,
        "{served} served in {refills} s: more than the burst and the rate allow"
    );
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_slow_headers_cut_off() {
    let crm = crm().await;
    let mut settings = test_settings(&crm.uri());
    settings.server.max_connections = 1;
    // Long enough that the refusal below comes well before it, even on a
    // stalled machine.
    settings.server.header_read_timeout = Duration::from_millis(3_000);
    let address = start(settings).await;
    let addr = address.trim_start_matches("http://").to_owned();

    // A client that sends half a request and stalls holds the only slot...
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // ...so another connection is closed at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = http().get(format!("{address}/healthz")).send().await;
    assert!(refused.is_err(), "over the connection cap");
    // The header-read timeout then drops the slow client and frees the slot.
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), slow.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(read, Ok(0) | Err(_)) || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408")
    );
    drop(slow);
    // The slot frees once the server has closed its side: waited for.
    eventually("the freed slot serves", Duration::from_secs(10), || async {
        matches!(http().get(format!("{address}/healthz")).send().await, Ok(r) if r.status() == 200)
    })
    .await;
}

async fn admin_app(
    crm: &MockServer,
    mapping: &std::path::Path,
) -> (String, String, tempfile::NamedTempFile) {
    admin_app_with(crm, |s| s.auth_api.mapping = mapping.to_owned()).await
}

async fn admin_app_with(
    crm: &MockServer,
    adjust: impl FnOnce(&mut Settings),
) -> (String, String, tempfile::NamedTempFile) {
    let token = file("adm1n-token");
    let mut settings = test_settings(&crm.uri());
    adjust(&mut settings);
    settings.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.admin.token_file = Some(token.path().to_owned());
    let (address, admin) = start_with_admin(settings).await;
    (address, admin.expect("admin API on"), token)
}

/// POSTs `body` to the admin API at `admin` + `path`, with the test token.
async fn admin_post(admin: &str, path: &str, body: Value) -> reqwest::Response {
    http()
        .post(format!("{admin}{path}"))
        .bearer_auth("adm1n-token")
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_admin_api_purges_reloads_and_reports() {
    let crm = crm().await;
    let (address, admin, _token) = admin_app(&crm, &repo_path("mappings/generic-bank.toml")).await;
    let lookup = |t: &'static str| card_at(&address, t);
    let admin_post = |p: &'static str, body: Value| admin_post(&admin, p, body);

    assert_eq!(
        status_of(http().get(format!("{admin}/admin/stats"))).await,
        401
    );
    assert_eq!(
        status_of(
            http()
                .get(format!("{admin}/admin/stats"))
                .bearer_auth("wrong")
        )
        .await,
        401
    );
    lookup("a").await;
    lookup("a").await;
    lookup("b").await;
    assert_eq!(crm.received_requests().await.unwrap().len(), 2);

    let stats: Value = http()
        .get(format!("{admin}/admin/stats"))
        .bearer_auth("adm1n-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["cache"]["entries"], 2);
    assert_eq!(stats["breaker"]["state"], "closed");

    let purged: Value = admin_post("/admin/cache/purge", json!({"token": "a"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(purged, json!({"purged": true}));
    lookup("a").await;
    lookup("b").await;
    assert_eq!(
        crm.received_requests().await.unwrap().len(),
        3,
        "only a was fetched again"
    );

    admin_post("/admin/cache/purge-all", json!({})).await;
    lookup("b").await;
    assert_eq!(crm.received_requests().await.unwrap().len(), 4);

    let reloaded: Value = admin_post("/admin/reload", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(reloaded["reloaded"], true);
    assert_eq!(reloaded["mapping_changed"], false);
}

/// A worker answers a token it answered before from its own copy of the
/// card (`lookup::hot_set`); a purge must reach those copies too. One
/// worker, so the lookups after a purge meet the copy the ones before made.
#[tokio::test]
async fn purges_reach_the_copies_a_worker_keeps() {
    let crm = crm().await;
    let (address, admin, _token) = admin_app_with(&crm, |s| s.server.workers = 1).await;
    let calls = || async { crm.received_requests().await.unwrap().len() };
    let purge = |p: &'static str, body: Value| admin_post(&admin, p, body);
    for _ in 0..3 {
        card_at(&address, "a").await;
    }
    assert_eq!(calls().await, 1, "the second and third lookups hit");

    purge("/admin/cache/purge", json!({"token": "a"})).await;
    card_at(&address, "a").await;
    card_at(&address, "a").await;
    assert_eq!(calls().await, 2, "a purged token is fetched again, once");

    purge("/admin/cache/purge-all", json!({})).await;
    card_at(&address, "a").await;
    assert_eq!(calls().await, 3, "purge-all reaches the kept copy too");
}

#[tokio::test]
async fn reloading_under_load_loses_no_request() {
    let crm = crm().await;
    let original = std::fs::read_to_string(repo_path("mappings/generic-bank.toml")).unwrap();
    let mapping = file(&original);
    let (address, admin, _token) = admin_app(&crm, mapping.path()).await;
    let reload = || admin_post(&admin, "/admin/reload", json!({}));

    // Requests fire continuously over a few tokens until stopped (bounded:
    // at most 60 s, far more than a stalled machine needs).
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (stop, failures, total, address) = (
            stop.clone(),
            failures.clone(),
            total.clone(),
            address.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = http();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                let r = client
                    .get(format!("{address}/rest/chat/client/id/w{w}-{}", i % 5))
                    .send()
                    .await;
                total.fetch_add(1, Ordering::Relaxed);
                if !matches!(r, Ok(ref r) if r.status() == 200) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                i += 1;
            }
        }));
    }
    let requests_pass = |than: usize| {
        let total = total.clone();
        eventually(
            "requests keep running",
            Duration::from_secs(20),
            move || {
                let total = total.clone();
                async move { total.load(Ordering::Relaxed) > than }
            },
        )
    };
    requests_pass(10).await;

    // A valid change: cards made by the old mapping are dropped.
    std::fs::write(mapping.path(), type_one(&original)).unwrap();
    // The load runs around each reload: requests done before it, more after.
    let before = total.load(Ordering::Relaxed);
    assert!(before > 0, "requests were running before the reload");
    let ok: Value = reload().await.json().await.unwrap();
    assert_eq!(ok["mapping_changed"], true, "{ok}");
    // Requests kept running after the reload.
    requests_pass(before + 10).await;
    let card = card_at(&address, "w0-0").await;
    assert_eq!(card["client"]["type"], "1", "served by the new mapping");

    // An invalid change: rejected with its position; the running one keeps serving.
    std::fs::write(
        mapping.path(),
        "[client]\nid = \"$.client.id\"\nsurnme = \"$.x\"\n",
    )
    .unwrap();
    let before = total.load(Ordering::Relaxed);
    let rejected = reload().await;
    assert_eq!(rejected.status(), 422);
    let body: Value = rejected.json().await.unwrap();
    assert!(
        body["errors"]
            .to_string()
            .contains(":3:1: client.surnme: unknown field"),
        "{body}"
    );
    // Requests kept running across the rejected reload.
    requests_pass(before + 10).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    assert!(total.load(Ordering::Relaxed) > 20, "the load ran");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no request failed during the reloads"
    );
    let card = card_at(&address, "w1-1").await;
    assert_eq!(card["client"]["type"], "1", "still the last valid mapping");
    let metrics = metrics_of(&address).await;
    assert!(metrics.contains("authbridge_reloads_total{result=\"failed\"}"));
    assert!(metrics.contains("authbridge_reloads_total{result=\"ok\"}"));
}

#[tokio::test]
async fn a_changed_mapping_file_is_picked_up_by_the_watcher() {
    let crm = crm().await;
    let original = std::fs::read_to_string(repo_path("mappings/generic-bank.toml")).unwrap();
    let mapping = file(&original);
    let mut settings = test_settings(&crm.uri());
    settings.auth_api.mapping = mapping.path().to_owned();
    settings.reload.watch_files = true;
    let address = start(settings).await;
    assert_eq!(card_at(&address, "t").await["client"]["type"], "0");

    std::fs::write(mapping.path(), type_one(&original)).unwrap();

    // Bounded wait for the watcher (debounced 200 ms).
    eventually(
        "the new mapping serves",
        Duration::from_secs(10),
        || async { card_at(&address, "t").await["client"]["type"] == "1" },
    )
    .await;
}
