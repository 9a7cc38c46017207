//! Behind a load balancer: the client address the allowlist and the per-IP
//! rate limit use comes from `X-Forwarded-For` / `Forwarded` only when the
//! TCP peer is a trusted proxy. Every request here comes from 127.0.0.1;
//! the addresses in headers are documentation ranges, never contacted.

use authbridge::Settings;
use authbridge::config::ClientIpHeader;
use wiremock::MockServer;

use crate::helpers::{
    alice, captured_logs, crm_answering, http, metric_in, metrics_of, start, status_of,
    test_settings,
};

const XFF: &str = "x-forwarded-for";
const FORWARDED: &str = "forwarded";
/// Trusted: the nearest proxy (every request here comes from 127.0.0.1) and
/// the inner hops' network.
const PROXY_AND_HOPS: &[&str] = &["127.0.0.1/32", "10.0.0.0/8"];

/// An app in front of a CRM that always finds Alice, with `trusted` proxies
/// and `allow` networks.
async fn app(
    trusted: &[&str],
    allow: &[&str],
    adjust: impl FnOnce(&mut Settings),
) -> (String, MockServer) {
    let crm = crm_answering(alice()).await;
    let mut settings = test_settings(&crm.uri());
    settings.server.trusted_proxies = trusted.iter().map(|n| n.parse().unwrap()).collect();
    settings.server.access.allow_cidrs = allow.iter().map(|n| n.parse().unwrap()).collect();
    adjust(&mut settings);
    (start(settings).await, crm)
}

/// An app behind `trusted` proxies whose per-IP rate limit allows one
/// lookup a second after a burst of `burst`.
async fn rate_limited_app(trusted: &[&str], burst: u32) -> (String, MockServer) {
    app(trusted, &[], |s| {
        s.server.access.rate_limit_per_ip = 1;
        s.server.access.rate_limit_burst = burst;
    })
    .await
}

/// The status of a lookup carrying `headers`.
async fn status(address: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = http().get(format!("{address}/rest/chat/client/id/t"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    status_of(request).await
}

/// Asserts the status of a lookup carrying each `(value, status)`'s value
/// in the header `name`.
async fn assert_statuses(address: &str, name: &str, cases: &[(&str, u16)]) {
    for (value, expected) in cases {
        let status = status(address, &[(name, value)]).await;
        assert_eq!(status, *expected, "{name}: {value}");
    }
}

/// Sends lookups with `headers` until one is refused with 429 (bounded);
/// returns how many were served first.
async fn served_until_limited(address: &str, headers: &[(&str, &str)]) -> u32 {
    let mut served = 0;
    loop {
        match status(address, headers).await {
            200 => served += 1,
            429 => return served,
            other => panic!("unexpected status {other}"),
        }
        assert!(served <= 20, "the rate limit never refused");
    }
}

#[tokio::test]
async fn a_spoofed_header_from_an_untrusted_peer_passes_no_allowlist() {
    // 127.0.0.1 is not a trusted proxy: its headers are the client's words.
    let (address, crm) = app(&["192.0.2.0/24"], &["198.51.100.0/24"], |_| {}).await;
    for headers in [[(XFF, "198.51.100.7")], [(FORWARDED, "for=198.51.100.7")]] {
        assert_eq!(status(&address, &headers).await, 403, "{headers:?}");
    }
    assert_eq!(crm.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn a_spoofed_header_from_an_untrusted_peer_cannot_escape_the_rate_limit() {
    let (address, _crm) = rate_limited_app(&["192.0.2.0/24"], 2).await;
    // A new spoofed address on every request: all share the peer's budget.
    let started = std::time::Instant::now();
    let mut served = 0u64;
    for i in 0..=20 {
        let spoofed = format!("198.51.100.{i}");
        match status(&address, &[(XFF, &spoofed)]).await {
            200 => served += 1,
            429 => break,
            other => panic!("unexpected status {other}"),
        }
        assert!(i < 20, "the rate limit never refused");
    }
    // The burst, plus at most one per second a stalled machine took.
    assert!(
        served <= 2 + started.elapsed().as_secs(),
        "{served} served: the spoofed addresses got budgets of their own"
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_budget() {
    let (address, _crm) = rate_limited_app(&["127.0.0.1/32"], 1).await;
    let a = [(XFF, "198.51.100.7")];
    let b = [(XFF, "203.0.113.9")];
    assert!(served_until_limited(&address, &a).await >= 1);
    // A is limited now; B, behind the same proxy, still has its budget.
    assert_eq!(status(&address, &b).await, 200);
    // And so does the proxy itself (a request without the header).
    assert_eq!(status(&address, &[]).await, 200);
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_allowlist_judges_the_forwarded_client() {
    let (address, _crm) = app(&["127.0.0.1/32"], &["198.51.100.0/24"], |_| {}).await;
    assert_statuses(
        &address,
        XFF,
        &[
            ("198.51.100.7", 200),
            ("203.0.113.9", 403),
            // A client that writes an allowed address itself: the proxy
            // appended the one it saw, and that one is judged.
            ("198.51.100.7, 203.0.113.9", 403),
        ],
    )
    .await;
    // The proxy itself is not in the allowlist.
    assert_eq!(status(&address, &[]).await, 403);
    // The other header is not read: these proxies write X-Forwarded-For.
    assert_statuses(&address, FORWARDED, &[("for=198.51.100.7", 403)]).await;
}

#[tokio::test]
async fn forwarded_header_variants() {
    let (address, _crm) = app(PROXY_AND_HOPS, &["198.51.100.0/24", "2001:db8::/32"], |s| {
        s.server.client_ip_header = ClientIpHeader::Forwarded
    })
    .await;
    let cases = [
        ("for=198.51.100.7", 200),
        ("For=\"198.51.100.7:4711\";proto=https;by=10.0.0.5", 200),
        ("for=\"[2001:db8::1]:4711\"", 200),
        ("for=\"[2001:db8:cafe::17]\"", 200),
        ("for=203.0.113.9", 403),
        // The client's own claim, then the address the proxy saw.
        ("for=198.51.100.7, for=203.0.113.9", 403),
        ("for=203.0.113.9, for=198.51.100.7", 200),
        // A trusted hop between: skipped.
        ("for=198.51.100.7, for=10.1.1.1", 200),
        // The proxy does not know its client: attributed to the proxy,
        // not to whatever stands further left.
        ("for=198.51.100.7, for=unknown", 403),
        ("for=198.51.100.7, for=_hidden", 403),
    ];
    assert_statuses(&address, FORWARDED, &cases).await;
    // Two header lines are one list, the last nearest.
    assert_eq!(
        status(
            &address,
            &[
                (FORWARDED, "for=203.0.113.9"),
                (FORWARDED, "for=198.51.100.7")
            ]
        )
        .await,
        200
    );
    // X-Forwarded-For is not read in this mode.
    assert_eq!(status(&address, &[(XFF, "198.51.100.7")]).await, 403);
}

#[tokio::test]
async fn a_chain_of_trusted_hops_is_walked_to_the_first_untrusted_address() {
    let (address, _crm) = app(PROXY_AND_HOPS, &["198.51.100.0/24", "10.1.1.0/24"], |_| {}).await;
    let cases = [
        // Two inner proxies between the client and the last one.
        ("203.0.113.9, 198.51.100.7, 10.1.1.1, 10.2.2.2", 200),
        ("198.51.100.7, 203.0.113.9, 10.1.1.1, 10.2.2.2", 403),
        // Every hop trusted: the leftmost is the client.
        ("10.1.1.1, 10.2.2.2", 200),
        ("10.2.2.2, 10.1.1.1", 403),
    ];
    assert_statuses(&address, XFF, &cases).await;
}

#[tokio::test]
async fn an_unreadable_header_falls_back_to_the_peer_unlogged_and_counted() {
    // Only the proxy's own network is allowed: a readable header names a
    // client outside it (403); an unreadable one leaves the proxy (200).
    let (address, _crm) = app(&["127.0.0.1/32"], &["127.0.0.0/8"], |_| {}).await;
    let cases = [
        ("198.51.100.7", 403),
        ("198.51.100.7, bogus-xff-QZJW", 200),
        ("198.51.100.7:notaport", 200),
    ];
    assert_statuses(&address, XFF, &cases).await;

    let (forwarded, _crm) = app(&["127.0.0.1/32"], &["127.0.0.0/8"], |s| {
        s.server.client_ip_header = ClientIpHeader::Forwarded;
    })
    .await;
    let cases = [
        ("for=198.51.100.7", 403),
        ("for=\"198.51.100.7;bogus-fwd-QZJW", 200),
    ];
    assert_statuses(&forwarded, FORWARDED, &cases).await;

    assert_eq!(
        metric_in(
            &metrics_of(&address).await,
            "authbridge_forwarded_invalid_total"
        ),
        2.0
    );
    assert_eq!(
        metric_in(
            &metrics_of(&forwarded).await,
            "authbridge_forwarded_invalid_total"
        ),
        1.0
    );
    let logs = captured_logs();
    assert!(
        logs.contains("unreadable forwarding header"),
        "said at DEBUG"
    );
    // Not hex: no request id or hash in the shared capture can hold it.
    assert!(!logs.contains("QZJW"), "a header value reached the logs");
}

#[tokio::test]
async fn without_trusted_proxies_no_header_is_read() {
    let (address, _crm) = app(&[], &["198.51.100.0/24"], |_| {}).await;
    assert_eq!(status(&address, &[(XFF, "198.51.100.7")]).await, 403);
}
