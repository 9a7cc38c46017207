//! The client's address, resolved once per request: the TCP peer, or —
//! when the peer is one of `server.trusted_proxies` — the address its
//! forwarding header (`server.client_ip_header`: `X-Forwarded-For` or RFC
//! 7239 `Forwarded`) names. The accept loop stores it on every request as
//! [`ClientAddr`], before any middleware runs, so access control, rate
//! limits and logs all see the same address.
//!
//! Only one header is read, the one the proxies are configured to write: a
//! proxy that appends to `X-Forwarded-For` passes a client's own
//! `Forwarded` through untouched, so believing both would let any client
//! choose its address.
//!
//! The chain is read right to left, each hop being what the hop to its
//! right saw: addresses that are trusted proxies are skipped, the first
//! untrusted one is the client; if every hop is trusted, the leftmost is.
//! What lies left of the client was written by the client: in
//! `X-Forwarded-For` it is never read, so garbage there cannot change the
//! result. A `Forwarded` line is parsed whole (a quoted string can only be
//! found from the left), so a broken line is unreadable even when the
//! broken part is the client's. A `Forwarded` node that
//! names no address (`unknown`, an obfuscated `_name`, an element without
//! `for=`) ends the walk at the hop that wrote it: nothing further left can
//! be vouched for. A header that cannot be read where it matters falls back
//! to the peer, counted (`authbridge_forwarded_invalid_total`) and said at
//! DEBUG without its value.
//!
//! Peers that are not trusted — every peer, when the list is empty — cost
//! nothing per request: the address is fixed per connection and no header
//! is looked at. Addresses are canonical (an IPv4 client of a dual-stack
//! listener is `10.0.0.1`, not `::ffff:10.0.0.1`), so IPv4 networks match.
//!
//! The `Forwarded` parser is ours: the registry's parsers (`rfc7239`,
//! `forwarded-header-value`) are 0.1 releases that split on commas inside
//! quoted strings or refuse obfuscated names RFC 7239 §6.3 allows, and the
//! walk above needs the elements of one header line from the right.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::http::HeaderMap;
use axum::http::header::{FORWARDED, HeaderName};
use ipnet::IpNet;

use crate::config::ClientIpHeader;
use crate::metrics::Metrics;

/// The address a request is attributed to (see the module doc); a request
/// extension on every request the server accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    /// The address a request is attributed to: its [`ClientAddr`], else
    /// (a request that did not come through the accept loop, as in router
    /// tests) its TCP peer, IPv4-mapped addresses as IPv4.
    pub fn of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
        match extensions.get::<ClientAddr>() {
            Some(ClientAddr(ip)) => Some(*ip),
            None => extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|axum::extract::ConnectInfo(addr)| addr.ip().to_canonical()),
        }
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The proxies whose forwarding header is believed; cheap to clone.
#[derive(Debug, Clone)]
pub struct TrustedProxies {
    nets: Arc<[IpNet]>,
    header: ClientIpHeader,
    /// Where unreadable headers are counted.
    metrics: Metrics,
}

/// A forwarding header that cannot be read where the walk needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Malformed;

/// One hop of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Ip(IpAddr),
    /// `unknown`, an obfuscated name, or no `for=` at all.
    Hidden,
}

impl TrustedProxies {
    /// Believes `header` from peers in `nets` (none: never), counting
    /// unreadable headers in `metrics`.
    pub fn new(nets: &[IpNet], header: ClientIpHeader, metrics: Metrics) -> Self {
        Self {
            nets: nets.iter().map(IpNet::trunc).collect(),
            header,
            metrics,
        }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client of every request on a connection from `peer`, when its
    /// headers are not to be read (the peer is not trusted); `None` when
    /// each request must be [`resolve`](Self::resolve)d.
    pub fn fixed(&self, peer: IpAddr) -> Option<ClientAddr> {
        let peer = peer.to_canonical();
        (!self.trusts(peer)).then_some(ClientAddr(peer))
    }

    /// The client of one request from `peer`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return ClientAddr(peer);
        }
        match self.walk(peer, headers) {
            Ok(client) => ClientAddr(client),
            Err(Malformed) => {
                self.metrics
                    .counter("authbridge_forwarded_invalid_total")
                    .increment(1);
                tracing::debug!(
                    header = self.header.name(),
                    "unreadable forwarding header from a trusted proxy; the proxy is taken as the client"
                );
                ClientAddr(peer)
            }
        }
    }

    /// The walk of the module doc, from the last header line backwards.
    fn walk(&self, peer: IpAddr, headers: &HeaderMap) -> Result<IpAddr, Malformed> {
        let name = match self.header {
            ClientIpHeader::XForwardedFor => X_FORWARDED_FOR,
            ClientIpHeader::Forwarded => FORWARDED,
        };
        let mut nearest = peer;
        for line in headers.get_all(name).iter().rev() {
            let found = match self.header {
                ClientIpHeader::XForwardedFor => {
                    self.step(&mut nearest, x_forwarded_for(line.as_bytes()))
                }
                ClientIpHeader::Forwarded => {
                    let line = line.to_str().map_err(|_| Malformed)?;
                    self.step(&mut nearest, forwarded(line)?.into_iter().rev().map(Ok))
                }
            };
            if let Some(client) = found? {
                return Ok(client);
            }
        }
        Ok(nearest)
    }

    /// Walks `nodes` (right to left): the client once one is found, else
    /// `None` with `nearest` at the leftmost trusted hop.
    fn step(
        &self,
        nearest: &mut IpAddr,
        nodes: impl Iterator<Item = Result<Node, Malformed>>,
    ) -> Result<Option<IpAddr>, Malformed> {
        for node in nodes {
            match node? {
                Node::Hidden => return Ok(Some(*nearest)),
                Node::Ip(ip) => {
                    let ip = ip.to_canonical();
                    if !self.trusts(ip) {
                        return Ok(Some(ip));
                    }
                    *nearest = ip;
                }
            }
        }
        Ok(None)
    }
}

/// The hops of one `X-Forwarded-For` line, right to left and parsed only
/// as far as they are read (there are no quoted strings to get in the
/// way): addresses, with an optional port (`1.2.3.4:80`,
/// `[2001:db8::1]:80`) as some proxies write them. Empty elements are
/// skipped (list syntax allows them).
fn x_forwarded_for(line: &[u8]) -> impl Iterator<Item = Result<Node, Malformed>> + '_ {
    line.rsplit(|b| *b == b',')
        .map(|e| std::str::from_utf8(e).map(str::trim))
        .filter(|e| !matches!(e, Ok("")))
        .map(|e| e.map_err(|_| Malformed).and_then(address).map(Node::Ip))
}

fn address(text: &str) -> Result<IpAddr, Malformed> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(ip);
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr.ip());
    }
    text.strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .and_then(|t| t.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
        .ok_or(Malformed)
}

/// The `for=` node of each element of one `Forwarded` line, left to right
/// (RFC 7239 §4: elements separated by commas, pairs by semicolons, values
/// tokens or quoted strings). Unquoted values may hold `:` and brackets,
/// which some proxies write without the quotes the RFC asks for.
fn forwarded(line: &str) -> Result<Vec<Node>, Malformed> {
    let mut nodes = Vec::new();
    let mut rest = line;
    loop {
        let (node, after) = element(rest)?;
        // An empty element (",,") is allowed by the list syntax.
        if let Some(node) = node {
            nodes.push(node);
        }
        match after.strip_prefix(',') {
            Some(next) => rest = next,
            None if after.is_empty() => return Ok(nodes),
            None => return Err(Malformed),
        }
    }
}

/// One element up to the next top-level comma: its `for` node (`Hidden`
/// when it has none; `None` when the element is empty), and what follows.
fn element(text: &str) -> Result<(Option<Node>, &str), Malformed> {
    let mut rest = text.trim_start_matches([' ', '\t']);
    let mut for_node = None;
    let mut pairs = 0;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() || rest.starts_with(',') {
            break;
        }
        if let Some(next) = rest.strip_prefix(';') {
            rest = next;
            continue;
        }
        let eq = rest.find('=').ok_or(Malformed)?;
        let name = &rest[..eq];
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(Malformed);
        }
        let (value, after) = value(&rest[eq + 1..])?;
        if name.eq_ignore_ascii_case("for") {
            // Each parameter at most once per element (§4).
            if for_node.is_some() {
                return Err(Malformed);
            }
            for_node = Some(node(&value)?);
        }
        pairs += 1;
        rest = after.trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with([',', ';'])) {
            return Err(Malformed);
        }
    }
    let node = (pairs > 0).then(|| for_node.unwrap_or(Node::Hidden));
    Ok((node, rest))
}

/// A token or a quoted string (unescaped), and what follows it.
fn value(text: &str) -> Result<(std::borrow::Cow<'_, str>, &str), Malformed> {
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text
            .find(|c: char| !(c.is_ascii() && (is_tchar(c as u8) || matches!(c, ':' | '[' | ']'))))
            .unwrap_or(text.len());
        if end == 0 {
            return Err(Malformed);
        }
        return Ok((text[..end].into(), &text[end..]));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out.into(), &quoted[i + 1..])),
            '\\' => out.push(chars.next().ok_or(Malformed)?.1),
            c => out.push(c),
        }
    }
    Err(Malformed)
}

/// RFC 7230 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A `for=` value (RFC 7239 §6): `unknown`, an obfuscated `_name`, an IPv4
/// address or a bracketed IPv6 one, each with an optional port (a number
/// or an obfuscated `_port`).
fn node(value: &str) -> Result<Node, Malformed> {
    let (name, port) = match value.strip_prefix('[') {
        Some(inner) => {
            let close = inner.find(']').ok_or(Malformed)?;
            let after = &inner[close + 1..];
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or(Malformed)?),
            };
            (&value[..close + 2], port)
        }
        None => match value.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (value, None),
        },
    };
    if let Some(port) = port
        && !(is_port(port) || is_obfuscated(port))
    {
        return Err(Malformed);
    }
    if name.eq_ignore_ascii_case("unknown") || is_obfuscated(name) {
        return Ok(Node::Hidden);
    }
    if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return v6
            .parse::<Ipv6Addr>()
            .map(|ip| Node::Ip(IpAddr::V6(ip)))
            .map_err(|_| Malformed);
    }
    name.parse::<Ipv4Addr>()
        .map(|ip| Node::Ip(IpAddr::V4(ip)))
        .map_err(|_| Malformed)
}

fn is_port(text: &str) -> bool {
    (1..=5).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_digit())
        && text.parse::<u16>().is_ok()
}

/// `"_" 1*(ALPHA / DIGIT / "." / "_" / "-")`.
fn is_obfuscated(text: &str) -> bool {
    text.strip_prefix('_').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    })
}

#[cfg(test)]
mod tests;
