//! Resilience with fault-injecting CRMs: stale-if-error, stale-while-
//! revalidate, retries and their budget, the circuit breaker, the in-flight
//! cap, with exact call counts and statuses.

use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{alice, assert_error, eventually, metric_in, spawn_app_with};

/// Short TTLs, no retries, no jitter: call counts are exact.
fn quick(s: &mut authbridge::Settings) {
    s.cache.found_ttl = Duration::from_secs(1);
    s.cache.grace = Duration::from_secs(60);
    s.cache.ttl_jitter = 0.0;
    s.upstream.retry.max_attempts = 1;
}

async fn past_ttl() {
    tokio::time::sleep(Duration::from_millis(1_150)).await;
}

/// A lookup of "t" answers 200 with `card`, marked with the stale `reason`.
async fn assert_stale(app: &crate::helpers::TestApp, card: &Value, reason: &str, what: &str) {
    let stale = app.lookup("t").await;
    assert_eq!(stale.status(), 200, "{what}");
    assert_eq!(stale.headers()["x-authbridge-cache"], reason, "{what}");
    assert_eq!(&stale.json::<Value>().await.unwrap(), card, "{what}");
}

#[tokio::test]
async fn stale_if_error_serves_the_old_card_when_the_crm_fails() {
    for (fault, failure) in [
        ("5xx", ResponseTemplate::new(503)),
        (
            "garbage",
            ResponseTemplate::new(200).set_body_string("<html>oops"),
        ),
        ("slow", alice().set_delay(Duration::from_secs(3))),
    ] {
        let app = spawn_app_with(|s| {
            quick(s);
            s.upstream.timeout = Duration::from_millis(300);
            s.upstream.connect_timeout = Duration::from_millis(100);
        })
        .await;
        app.crm_answers_first("t", alice(), failure).await;

        let first = app.lookup("t").await;
        assert_eq!(first.headers()["x-authbridge-cache"], "miss");
        let card: Value = first.json().await.unwrap();
        past_ttl().await;

        assert_stale(&app, &card, "stale; reason=crm-error", fault).await;
        assert_eq!(app.crm_calls().await, 2, "{fault}");
    }
}

#[tokio::test]
async fn without_grace_a_failing_crm_is_an_error() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.cache.grace = Duration::from_secs(0);
    })
    .await;
    app.crm_answers_first("t", alice(), ResponseTemplate::new(503))
        .await;

    assert_eq!(app.lookup("t").await.status(), 200);
    past_ttl().await;
    assert_error(app.lookup("t").await, 502, "1006").await;
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.cache.stale_while_revalidate = true;
        s.upstream.timeout = Duration::from_millis(5_000);
    })
    .await;
    // The refresh takes 2 s: long enough that all ten callers below arrive
    // while it runs, even on a stalled machine.
    app.crm_answers_first("t", alice(), alice().set_delay(Duration::from_secs(2)))
        .await;

    assert_eq!(app.cache_state("t").await, (200, "miss".into()));
    past_ttl().await;
    // Ten callers at once past the TTL: all get the stale card, one refresh runs.
    let stale = futures_util::future::join_all((0..10).map(|_| app.cache_state("t"))).await;
    for r in stale {
        assert_eq!(r, (200, "stale; reason=revalidating".into()));
    }
    // The refresh lands (waited for, not guessed) and is then a hit.
    eventually(
        "the refreshed card is a hit",
        Duration::from_secs(10),
        || async { app.cache_state("t").await.1 == "hit" },
    )
    .await;
    assert_eq!(app.crm_calls().await, 2);
}

#[tokio::test]
async fn retries_cover_5xx_storms_up_to_max_attempts() {
    let app = spawn_app_with(|s| {
        s.upstream.retry.max_attempts = 3;
        s.upstream.retry.base_delay = Duration::from_millis(10);
        s.upstream.retry.budget_min_per_sec = 100;
    })
    .await;
    app.crm_answers("storm", ResponseTemplate::new(503), 3)
        .await;
    app.crm_answers_first("flaky", ResponseTemplate::new(502), alice())
        .await;
    app.crm_answers("plain500", ResponseTemplate::new(500), 1)
        .await;
    app.crm_answers("nobody", ResponseTemplate::new(404), 1)
        .await;

    assert_error(app.lookup("storm").await, 502, "1006").await;
    assert_eq!(
        app.lookup("flaky").await.status(),
        200,
        "the retry succeeded"
    );
    assert_eq!(app.crm_calls().await, 5, "flaky: one failure, one retry");
    assert_error(app.lookup("plain500").await, 502, "1006").await;
    assert_error(app.lookup("nobody").await, 404, "1001").await;
}

#[tokio::test]
async fn post_requests_are_never_retried() {
    let app = spawn_app_with(|s| {
        s.upstream.retry.max_attempts = 3;
        s.upstream.method = authbridge::config::HttpMethod::POST;
        s.upstream.path = "/search".into();
        s.upstream.body = Some(r#"{"t": "{token}"}"#.into());
    })
    .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&app.crm)
        .await;

    assert_error(app.lookup("x").await, 502, "1006").await;
}

#[tokio::test]
async fn an_empty_retry_budget_stops_retries() {
    let app = spawn_app_with(|s| {
        s.upstream.retry.max_attempts = 3;
        s.upstream.retry.budget_percent = 0.0;
        s.upstream.retry.budget_min_per_sec = 0;
    })
    .await;
    app.crm_answers("x", ResponseTemplate::new(503), 1).await;

    assert_error(app.lookup("x").await, 502, "1006").await;
    let metrics = app.metrics().await;
    let exhausted = "authbridge_retries_total{result=\"budget_exhausted\"}";
    assert_eq!(metric_in(&metrics, exhausted), 1.0, "{metrics}");
}

#[tokio::test]
async fn the_breaker_opens_fails_fast_keeps_hits_and_recovers() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.cache.found_ttl = Duration::from_secs(60);
        s.upstream.breaker.consecutive_failures = 3;
        // Long enough that the asserts made while it is open cannot outlast
        // it on a stalled machine; the recovery below is waited for.
        s.upstream.breaker.open = Duration::from_millis(3_000);
    })
    .await;
    app.crm_answers("cached", alice(), 1).await;
    assert_eq!(app.lookup("cached").await.status(), 200);
    // A 5xx storm: three failures open the breaker.
    let storm = Mock::given(wiremock::matchers::path(crate::helpers::crm_path("storm")))
        .respond_with(ResponseTemplate::new(500))
        .expect(3)
        .mount_as_scoped(&app.crm)
        .await;
    for _ in 0..3 {
        assert_error(app.lookup("storm").await, 502, "1006").await;
    }

    // Open: misses fail fast without a CRM call; hits are still served.
    let text = assert_error(app.lookup("storm").await, 503, "1009").await;
    assert_eq!(text, "CRM is failing; requests are paused (circuit open)");
    assert_eq!(app.lookup("cached").await.status(), 200);
    drop(storm);
    assert_eq!(app.crm_calls().await, 4);
    let metrics = app.metrics().await;
    assert_eq!(
        metric_in(&metrics, "authbridge_breaker_state"),
        2.0,
        "open is exported as 2"
    );

    // The CRM recovers; after open_ms one probe closes the breaker. Until
    // then every miss still fails fast (503, no CRM call).
    app.crm_answers("storm", alice(), 1).await;
    let fast_fails = std::cell::Cell::new(0);
    eventually(
        "the breaker closes after open_ms",
        Duration::from_secs(15),
        || async {
            let r = app.lookup("storm").await;
            if r.status() == 200 {
                return true;
            }
            assert_error(r, 503, "1009").await;
            fast_fails.set(fast_fails.get() + 1);
            false
        },
    )
    .await;
    assert_eq!(
        app.crm_calls().await,
        5,
        "one probe, after {} fast failures",
        fast_fails.get()
    );
    let metrics = app.metrics().await;
    for to in ["open", "half_open", "closed"] {
        let sample = format!("authbridge_breaker_transitions_total{{to=\"{to}\"}}");
        assert_eq!(metric_in(&metrics, &sample), 1.0, "{metrics}");
    }
    assert_eq!(metric_in(&metrics, "authbridge_breaker_state"), 0.0);
}

#[tokio::test]
async fn an_open_breaker_still_serves_stale_cards() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.upstream.breaker.consecutive_failures = 1;
        s.upstream.breaker.open = Duration::from_millis(60_000);
    })
    .await;
    app.crm_answers("t", alice(), 1).await;
    app.crm_always("other", ResponseTemplate::new(500)).await;
    let card = app.card("t").await;
    assert_error(app.lookup("other").await, 502, "1006").await;
    past_ttl().await;

    assert_stale(&app, &card, "stale; reason=crm-error", "breaker open").await;
    assert_eq!(
        app.crm_calls().await,
        2,
        "the open breaker made no CRM call"
    );
}

#[tokio::test]
async fn beyond_the_in_flight_cap_and_queue_requests_are_shed_at_once() {
    let app = spawn_app_with(|s| {
        s.upstream.max_in_flight = 1;
        s.upstream.max_queue = 1;
        s.upstream.timeout = Duration::from_millis(5_000);
        s.server.request_timeout = Duration::from_millis(10_000);
    })
    .await;
    // Slow enough that all five requests arrive while the first two are
    // still with the CRM, even on a stalled machine.
    app.crm_answers_all(alice().set_delay(Duration::from_millis(1_500)))
        .await;

    let responses =
        futures_util::future::join_all((0..5).map(|i| app.lookup_owned(format!("u{i}")))).await;

    let ok = responses.iter().filter(|r| r.status() == 200).count();
    let shed: Vec<_> = responses
        .into_iter()
        .filter(|r| r.status() == 503)
        .collect();
    assert_eq!(ok, 2, "one in flight, one queued");
    assert_eq!(shed.len(), 3);
    for r in shed {
        assert_error(r, 503, "1010").await;
    }
    assert_eq!(app.crm_calls().await, 2);
}

/// The default breaker counts a failure ratio over a minimum volume: five
/// customers whose records make the CRM answer 500 are a small share of the
/// traffic and open it for nobody.
#[tokio::test]
async fn five_failing_customers_among_healthy_traffic_leave_the_breaker_closed() {
    let app = spawn_app_with(quick).await;
    for i in 0..5 {
        app.crm_always(&format!("broken-{i}"), ResponseTemplate::new(500))
            .await;
    }
    app.crm_answers_all(alice()).await;
    for round in 0..3 {
        for i in 0..5 {
            assert_error(app.lookup(&format!("broken-{i}")).await, 502, "1006").await;
        }
        for i in 0..20 {
            let r = app.lookup(&format!("healthy-{round}-{i}")).await;
            assert_eq!(r.status(), 200, "round {round}, lookup {i}");
        }
    }
    // (An open breaker would have answered 503 without a CRM call.)
    assert_eq!(app.crm_calls().await, 75, "every lookup reached the CRM");
}

/// A real outage is a high failure ratio: after `min_requests` (20) the
/// breaker opens and misses fail fast.
#[tokio::test]
async fn an_outage_opens_the_ratio_breaker_after_the_minimum_volume() {
    let app = spawn_app_with(quick).await;
    app.crm_answers_all(ResponseTemplate::new(503)).await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        statuses.push(app.lookup(&format!("t-{i}")).await.status().as_u16());
    }
    assert!(statuses[..20].iter().all(|s| *s == 502), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 503), "{statuses:?}");
    assert_eq!(app.crm_calls().await, 20, "no CRM call once open");
}

/// A retry's back-off sleeps without holding a CRM slot: with one slot, a
/// lookup waiting to retry does not block another customer's lookup.
#[tokio::test]
async fn back_off_sleeps_without_a_crm_slot() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.upstream.max_in_flight = 1;
        s.upstream.retry.max_attempts = 2;
        s.upstream.retry.base_delay = Duration::from_millis(1_500);
        s.upstream.retry.max_delay = Duration::from_millis(1_500);
        s.server.request_timeout = Duration::from_millis(10_000);
    })
    .await;
    app.crm_answers("retrying", ResponseTemplate::new(503), 2)
        .await;
    app.crm_answers("other", alice(), 1).await;
    let app = std::sync::Arc::new(app);
    let retrying = tokio::spawn({
        let app = app.clone();
        async move { app.lookup("retrying").await.status().as_u16() }
    });
    // Its first attempt has failed; it is now in back-off.
    app.wait_for_crm_calls(1).await;
    assert_eq!(app.lookup("other").await.status(), 200);
    assert!(
        !retrying.is_finished(),
        "the other lookup was served during the first one's back-off"
    );
    assert_eq!(retrying.await.unwrap(), 502);
    assert_eq!(
        app.crm_calls().await,
        3,
        "two attempts and the other lookup"
    );
}

/// A frozen CRM (accepts, never answers in time): customers with a stale
/// card get it after `cache.stale_after_ms`, not after the CRM timeout, and
/// the fetch goes on (one CRM call for all of them) and refreshes the cache
/// once the CRM answers. Also: a redirect is a CRM failure, stale-eligible.
#[tokio::test]
async fn a_slow_crm_costs_customers_with_a_stale_card_only_the_stale_wait() {
    let app = spawn_app_with(|s| {
        quick(s);
        s.upstream.timeout = Duration::from_millis(5_000);
        s.server.request_timeout = Duration::from_millis(6_000);
        s.cache.stale_after = Duration::from_millis(200);
    })
    .await;
    // Frozen for 2 s, then an answer (with the typeCode changed).
    let mut fresher = crate::helpers::fixture("generic-bank/alice.input.json");
    fresher["client"]["typeCode"] = "1".into();
    let frozen = ResponseTemplate::new(200)
        .set_body_json(fresher)
        .set_delay(Duration::from_secs(2));
    app.crm_answers_first("t", alice(), frozen).await;
    let card = app.card("t").await;
    past_ttl().await;

    let app = std::sync::Arc::new(app);
    let mut waits = Vec::new();
    let started = std::time::Instant::now();
    let lookups: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let t = std::time::Instant::now();
                let r = app.lookup("t").await;
                let cache = r.headers()["x-authbridge-cache"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                (
                    r.status().as_u16(),
                    cache,
                    r.json::<Value>().await.unwrap(),
                    t.elapsed(),
                )
            })
        })
        .collect();
    for l in lookups {
        let (status, cache, body, took) = l.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(
            cache, "stale; reason=crm-slow",
            "cut by the stale wait, not the CRM timeout"
        );
        assert_eq!(body, card);
        waits.push(took);
    }
    waits.sort();
    eprintln!(
        "20 stale lookups on a frozen CRM: p50 {:?}, max {:?} (stale_after_ms 200, CRM timeout 5 s)",
        waits[10], waits[19]
    );
    assert_eq!(app.crm_calls().await, 2, "one fetch for all twenty");
    // The fetch finished on its own and refreshed the cache.
    // Polled (bounded), so a slow machine only waits longer.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(started.elapsed())).await;
    let mut refreshed = app.lookup("t").await;
    for _ in 0..50 {
        if refreshed.headers()["x-authbridge-cache"] == "hit" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        refreshed = app.lookup("t").await;
    }
    assert_eq!(refreshed.headers()["x-authbridge-cache"], "hit");
    assert_eq!(
        refreshed.json::<Value>().await.unwrap()["client"]["type"],
        "1"
    );
}

#[tokio::test]
async fn a_redirect_is_a_crm_failure_that_allows_a_stale_card() {
    let app = spawn_app_with(quick).await;
    let redirect = ResponseTemplate::new(302).insert_header("location", "http://127.0.0.1:9/login");
    app.crm_answers_first("t", alice(), redirect).await;
    let card = app.card("t").await;
    past_ttl().await;
    assert_stale(&app, &card, "stale; reason=crm-error", "redirect").await;
}
