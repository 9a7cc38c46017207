//! Inbound access control for the Auth API, which defines none: a CIDR
//! allowlist, a shared secret (bearer or basic, compared in constant time) and
//! a per-client-IP rate limit, both on the client's address as resolved
//! behind trusted proxies (see [`crate::app::client_addr`]).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use secrecy::ExposeSecret;

use super::{codes, error_body};
use crate::app::client_addr::ClientAddr;
use crate::config::{AccessKind, AccessSettings, ConfigError, read_secret};
use crate::metrics::Metrics;
use crate::secrets::{digest, matches};

/// The compiled access rules.
pub struct Access {
    allow: Vec<IpNet>,
    /// SHA-256 of the exact `Authorization` header value expected, if any.
    expected: Option<[u8; 32]>,
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Where refusals are counted.
    metrics: Metrics,
}

impl Access {
    /// The rules of `s`, counting refusals in `metrics`; secrets are read
    /// here.
    pub fn new(s: &AccessSettings, metrics: Metrics) -> Result<Self, ConfigError> {
        let allow = s.allow_cidrs.clone();
        let secret = read_secret(
            ("server.access.secret_env", s.secret_env.as_deref()),
            ("server.access.secret_file", s.secret_file.as_deref()),
        )?;
        let expected = match (s.kind, secret) {
            (AccessKind::Bearer, Some(secret)) => Some(digest(
                format!("Bearer {}", secret.expose_secret()).as_bytes(),
            )),
            (AccessKind::Basic, Some(secret)) => {
                let user = s.username.as_deref().unwrap_or_default();
                let pair = base64::engine::general_purpose::STANDARD
                    .encode(format!("{user}:{}", secret.expose_secret()));
                Some(digest(format!("Basic {pair}").as_bytes()))
            }
            _ => None,
        };
        let limiter = NonZeroU32::new(s.rate_limit_per_ip).map(|rate| {
            let burst = NonZeroU32::new(s.rate_limit_burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Ok(Self {
            allow,
            expected,
            limiter,
            metrics,
        })
    }

    /// True when no rule is configured (the middleware is then skipped).
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.expected.is_none() && self.limiter.is_none()
    }

    fn check(&self, peer: Option<IpAddr>, authorization: Option<&[u8]>) -> Result<(), Denied> {
        if !self.allow.is_empty()
            && !peer.is_some_and(|ip| self.allow.iter().any(|net| net.contains(&ip)))
        {
            return Err(Denied::Network);
        }
        if let Some(expected) = &self.expected
            && !authorization.is_some_and(|presented| matches(presented, expected))
        {
            return Err(Denied::Credentials);
        }
        if let (Some(limiter), Some(ip)) = (&self.limiter, peer)
            && limiter.check_key(&ip).is_err()
        {
            return Err(Denied::RateLimited);
        }
        Ok(())
    }
}

/// Why a caller was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denied {
    Network,
    Credentials,
    RateLimited,
}

impl Denied {
    fn response(self, metrics: &Metrics) -> Response {
        let denied = |reason| {
            metrics
                .counter_with("authbridge_access_denied_total", &[("reason", reason)])
                .increment(1);
        };
        match self {
            Denied::Network => {
                denied("network");
                error_body(
                    StatusCode::FORBIDDEN,
                    codes::FORBIDDEN,
                    "Caller network not allowed",
                )
            }
            Denied::Credentials => {
                denied("credentials");
                let mut response = error_body(
                    StatusCode::UNAUTHORIZED,
                    codes::UNAUTHORIZED,
                    "Missing or wrong credentials",
                );
                response.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer, Basic"),
                );
                response
            }
            Denied::RateLimited => {
                metrics
                    .counter_with("authbridge_shed_total", &[("reason", "rate_limited")])
                    .increment(1);
                error_body(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::RATE_LIMITED,
                    "Too many requests",
                )
            }
        }
    }
}

/// The middleware: runs the checks before the handler, on the request's
/// [`ClientAddr`] (the client behind trusted proxies; the peer when the
/// request did not come through the accept loop, as in router tests).
/// The state is the worker's own `Arc` around the shared rules (see
/// `app::router`).
pub async fn guard(
    State(access): State<Arc<Arc<Access>>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = ClientAddr::of(request.extensions());
    let authorization = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    match access.check(peer, authorization) {
        Ok(()) => next.run(request).await,
        Err(denied) => denied.response(&access.metrics),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_secret_and_rate_limit() {
        let access = Access {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            expected: Some(digest(b"Bearer s3cret")),
            limiter: Some(RateLimiter::keyed(Quota::per_second(
                NonZeroU32::new(1).unwrap(),
            ))),
            metrics: Metrics::new(),
        };
        let inside: IpAddr = "10.1.2.3".parse().unwrap();
        let outside: IpAddr = "192.168.0.1".parse().unwrap();
        assert_eq!(
            access.check(Some(outside), Some(b"Bearer s3cret")),
            Err(Denied::Network)
        );
        assert_eq!(
            access.check(Some(inside), Some(b"Bearer wrong")),
            Err(Denied::Credentials)
        );
        assert_eq!(access.check(Some(inside), None), Err(Denied::Credentials));
        assert!(access.check(Some(inside), Some(b"Bearer s3cret")).is_ok());
        assert_eq!(
            access.check(Some(inside), Some(b"Bearer s3cret")),
            Err(Denied::RateLimited)
        );
        let metrics = &access.metrics;
        assert_eq!(Denied::Network.response(metrics).status(), 403);
        assert_eq!(Denied::Credentials.response(metrics).status(), 401);
        assert_eq!(Denied::RateLimited.response(metrics).status(), 429);
    }
}
