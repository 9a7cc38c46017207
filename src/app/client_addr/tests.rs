//! The walk and the two parsers, on header values alone.

use axum::http::HeaderValue;
use proptest::prelude::*;

use super::*;

const LB: &str = "10.0.0.5";

fn proxies(header: ClientIpHeader) -> TrustedProxies {
    let nets: Vec<IpNet> = ["10.0.0.0/24", "fd00::/64"]
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    TrustedProxies::new(&nets, header, Metrics::new())
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// The client of a request from `peer` carrying `lines` of `header`.
fn client(header: ClientIpHeader, peer: &str, lines: &[&str]) -> IpAddr {
    let name = match header {
        ClientIpHeader::XForwardedFor => X_FORWARDED_FOR,
        ClientIpHeader::Forwarded => FORWARDED,
    };
    let mut headers = HeaderMap::new();
    for line in lines {
        headers.append(name.clone(), HeaderValue::from_str(line).unwrap());
    }
    proxies(header).resolve(ip(peer), &headers).0
}

fn xff(lines: &[&str]) -> IpAddr {
    client(ClientIpHeader::XForwardedFor, LB, lines)
}

fn fwd(lines: &[&str]) -> IpAddr {
    client(ClientIpHeader::Forwarded, LB, lines)
}

#[test]
fn an_untrusted_peer_is_the_client_whatever_it_sends() {
    let spoofed = "198.51.100.1";
    for header in [ClientIpHeader::XForwardedFor, ClientIpHeader::Forwarded] {
        assert_eq!(
            client(header, "203.0.113.9", &[spoofed, "for=198.51.100.1"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            proxies(header).fixed(ip("203.0.113.9")),
            Some(ClientAddr(ip("203.0.113.9")))
        );
    }
    assert_eq!(proxies(ClientIpHeader::Forwarded).fixed(ip(LB)), None);
}

#[test]
fn no_trusted_proxies_fix_every_peer() {
    let none = TrustedProxies::new(&[], ClientIpHeader::XForwardedFor, Metrics::new());
    assert_eq!(none.fixed(ip(LB)), Some(ClientAddr(ip(LB))));
}

/// The same hops, written in `X-Forwarded-For` and in `Forwarded`, name the
/// same client: the walk is one, whichever header carries the list.
#[test]
fn both_headers_are_walked_right_to_left_past_trusted_hops() {
    // (X-Forwarded-For lines, the same hops as Forwarded lines, the client)
    let cases: &[(&[&str], &[&str], &str)] = &[
        (&["198.51.100.7"], &["for=198.51.100.7"], "198.51.100.7"),
        // The client's own claim (left) is not believed over what the proxy saw.
        (
            &["1.1.1.1, 198.51.100.7"],
            &["for=1.1.1.1, for=198.51.100.7"],
            "198.51.100.7",
        ),
        // Several trusted hops are skipped.
        (
            &["1.1.1.1, 198.51.100.7, 10.0.0.9, 10.0.0.8"],
            &["for=1.1.1.1, for=198.51.100.7, for=10.0.0.9, for=10.0.0.8"],
            "198.51.100.7",
        ),
        // Separate header lines are one list, the last line nearest.
        (
            &["1.1.1.1", "198.51.100.7, 10.0.0.9"],
            &["for=1.1.1.1", "for=198.51.100.7, for=10.0.0.9"],
            "198.51.100.7",
        ),
        // Every hop trusted: the leftmost.
        (
            &["10.0.0.3, 10.0.0.9"],
            &["for=10.0.0.3, for=10.0.0.9"],
            "10.0.0.3",
        ),
        // No header from a trusted peer: the peer itself.
        (&[], &[], LB),
    ];
    for (x_forwarded_for, forwarded, want) in cases {
        assert_eq!(xff(x_forwarded_for), ip(want), "{x_forwarded_for:?}");
        assert_eq!(fwd(forwarded), ip(want), "{forwarded:?}");
    }
}

#[test]
fn x_forwarded_for_takes_ports_ipv6_and_empty_elements() {
    assert_eq!(xff(&["198.51.100.7:4711"]), ip("198.51.100.7"));
    assert_eq!(xff(&["2001:db8::1"]), ip("2001:db8::1"));
    assert_eq!(xff(&["[2001:db8::1]"]), ip("2001:db8::1"));
    assert_eq!(xff(&["[2001:db8::1]:4711, ,"]), ip("2001:db8::1"));
    assert_eq!(xff(&["fd00::3, ::ffff:198.51.100.7"]), ip("198.51.100.7"));
}

#[test]
fn garbage_left_of_the_client_is_never_read() {
    assert_eq!(xff(&["not-an-ip, 198.51.100.7"]), ip("198.51.100.7"));
}

#[test]
fn an_unreadable_x_forwarded_for_falls_back_to_the_peer() {
    let metrics = Metrics::new();
    let p = TrustedProxies::new(
        &["10.0.0.0/24".parse().unwrap()],
        ClientIpHeader::XForwardedFor,
        metrics.clone(),
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        X_FORWARDED_FOR,
        HeaderValue::from_static("198.51.100.7, nonsense"),
    );
    assert_eq!(p.resolve(ip(LB), &headers), ClientAddr(ip(LB)));
    headers.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4.5"));
    assert_eq!(p.resolve(ip(LB), &headers), ClientAddr(ip(LB)));
    assert!(
        metrics
            .render()
            .contains("authbridge_forwarded_invalid_total 2"),
        "{}",
        metrics.render()
    );
}

#[test]
fn forwarded_for_values_of_every_form() {
    for line in [
        "for=198.51.100.7",
        "For=\"198.51.100.7:4711\"",
        "proto=http; for=198.51.100.7",
        "host=\"a,b;c\";for=198.51.100.7",
        "for=\"198.51.100.\\7\"",
        "for=1.1.1.1, for=198.51.100.7;proto=https, for=10.0.0.9",
        ",for=198.51.100.7,,",
    ] {
        assert_eq!(fwd(&[line]), ip("198.51.100.7"), "{line}");
    }
    for line in [
        "for=\"[2001:db8::1]:4711\";proto=https;by=10.0.0.5",
        "for=\"[2001:db8::1]\"",
        // Unquoted brackets and ports, as some proxies write them.
        "for=[2001:db8::1]:80",
    ] {
        assert_eq!(fwd(&[line]), ip("2001:db8::1"), "{line}");
    }
    assert_eq!(
        fwd(&["for=1.1.1.1", "for=198.51.100.7, for=\"[fd00::9]\""]),
        ip("198.51.100.7")
    );
}

#[test]
fn a_hidden_node_ends_the_walk_at_the_hop_that_wrote_it() {
    assert_eq!(fwd(&["for=198.51.100.7, for=unknown"]), ip(LB));
    assert_eq!(
        fwd(&["for=198.51.100.7, for=_hidden-1, for=10.0.0.9"]),
        ip("10.0.0.9")
    );
    assert_eq!(fwd(&["for=198.51.100.7, for=\"_x:_p\""]), ip(LB));
    assert_eq!(fwd(&["for=198.51.100.7, proto=https"]), ip(LB));
    // Right of the hidden node, an untrusted address is the client as usual.
    assert_eq!(fwd(&["for=unknown, for=198.51.100.7"]), ip("198.51.100.7"));
}

#[test]
fn an_unreadable_forwarded_line_falls_back_to_the_peer() {
    for bad in [
        "for=\"198.51.100.7",
        "for=2001:db8::1",
        "for=198.51.100.7:99999",
        "for=198.51.100.7;for=198.51.100.8",
        "for=",
        "for",
        "=198.51.100.7",
        "for=198.51.100.7 proto=http",
        "for=\"[2001:db8::1\"",
        "for=\"[2001:db8::1]x\"",
        "for=_",
        "for=_a b",
        "for=example.com",
    ] {
        assert_eq!(fwd(&[bad]), ip(LB), "{bad}");
    }
}

#[test]
fn ipv4_mapped_peers_match_ipv4_networks() {
    assert_eq!(
        client(
            ClientIpHeader::XForwardedFor,
            "::ffff:10.0.0.5",
            &["198.51.100.7"]
        ),
        ip("198.51.100.7")
    );
    assert_eq!(
        proxies(ClientIpHeader::XForwardedFor).fixed(ip("::ffff:203.0.113.9")),
        Some(ClientAddr(ip("203.0.113.9")))
    );
}

proptest! {
    /// Whatever a header holds, resolving never panics.
    #[test]
    fn resolving_never_panics(lines in proptest::collection::vec("[ -~]{0,60}", 0..3),
                              forwarded in any::<bool>()) {
        let header = if forwarded { ClientIpHeader::Forwarded } else { ClientIpHeader::XForwardedFor };
        let mut headers = HeaderMap::new();
        let name = if forwarded { FORWARDED } else { X_FORWARDED_FOR };
        for line in &lines {
            if let Ok(v) = HeaderValue::from_str(line) {
                headers.append(name.clone(), v);
            }
        }
        let _ = proxies(header).resolve(ip(LB), &headers);
    }

    /// Header-shaped input: fragments of real syntax in random order.
    #[test]
    fn resolving_syntax_soup_never_panics(parts in proptest::collection::vec(
        prop_oneof![
            Just("for="), Just("\""), Just("["), Just("]"), Just(":"), Just(","),
            Just(";"), Just("\\"), Just("_"), Just("unknown"), Just("2001:db8::1"),
            Just("198.51.100.7"), Just("10.0.0.9"), Just("4711"), Just(" "),
        ], 0..24),
        forwarded in any::<bool>()) {
        let line: String = parts.concat();
        let header = if forwarded { ClientIpHeader::Forwarded } else { ClientIpHeader::XForwardedFor };
        let name = if forwarded { FORWARDED } else { X_FORWARDED_FOR };
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(&line).unwrap());
        let client = proxies(header).resolve(ip(LB), &headers).0;
        // An address comes from the header's IPv4 literals or a text with
        // colons (IPv6, `::` included); otherwise the peer is the client.
        prop_assert!(client == ip(LB) || line.contains("198.51.100.7")
            || line.contains("10.0.0.9") || line.contains(':'));
    }
}
