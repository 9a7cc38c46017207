//! OAuth2 client credentials: an access token fetched from the CRM's token
//! endpoint, cached until shortly before it expires, refreshed once when the
//! CRM answers 401, with concurrent refreshes coalesced into one request.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::Instrument as _;
use url::Url;

use super::error::UpstreamError;
use crate::config::{ClientAuth, UpstreamAuthSettings};
use crate::metrics::Metrics;

/// Lifetime assumed when the token endpoint does not say (`expires_in`).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);
/// A token is renewed this long before it expires (at most 10% of its life).
const RENEW_BEFORE: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct Token {
    header: HeaderValue,
    renew_at: Instant,
}

/// An OAuth2 client-credentials token source.
pub struct OAuth2 {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    secret: SecretString,
    scope: Option<String>,
    audience: Option<String>,
    client_auth: ClientAuth,
    current: RwLock<Option<Token>>,
    /// Held while a token is fetched, so concurrent callers wait for that
    /// one request instead of each starting their own.
    refresh: tokio::sync::Mutex<()>,
    /// Where token requests are counted.
    metrics: Metrics,
}

impl std::fmt::Debug for OAuth2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth2")
            .field("token_url", &self.token_url.as_str())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl OAuth2 {
    /// A token source from validated settings and the client secret.
    pub fn new(
        http: reqwest::Client,
        token_url: Url,
        s: &UpstreamAuthSettings,
        secret: SecretString,
        metrics: Metrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            http,
            token_url,
            client_id: s.client_id.clone().unwrap_or_default(),
            secret,
            scope: s.scope.clone(),
            audience: s.audience.clone(),
            client_auth: s.client_auth,
            current: RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            metrics,
        })
    }

    fn cached(&self) -> Option<HeaderValue> {
        let guard = self.current.read().expect("token lock");
        guard
            .as_ref()
            .filter(|t| Instant::now() < t.renew_at)
            .map(|t| t.header.clone())
    }

    /// The `Authorization` header value to send: cached, or fetched once for
    /// all concurrent callers.
    pub async fn header(&self) -> Result<HeaderValue, UpstreamError> {
        if let Some(h) = self.cached() {
            return Ok(h);
        }
        let _one_at_a_time = self.refresh.lock().await;
        if let Some(h) = self.cached() {
            return Ok(h);
        }
        self.fetch().await
    }

    /// After the CRM refused `rejected` with 401: a new token, unless another
    /// caller has already replaced it.
    pub async fn renew(&self, rejected: &HeaderValue) -> Result<HeaderValue, UpstreamError> {
        let _one_at_a_time = self.refresh.lock().await;
        if let Some(h) = self.cached()
            && h != rejected
        {
            return Ok(h);
        }
        self.fetch().await
    }

    async fn fetch(&self) -> Result<HeaderValue, UpstreamError> {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(scope) = &self.scope {
            form.push(("scope", scope));
        }
        if let Some(audience) = &self.audience {
            form.push(("audience", audience));
        }
        let mut request = self.http.post(self.token_url.clone());
        match self.client_auth {
            ClientAuth::Body => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", self.secret.expose_secret()));
            }
            ClientAuth::Basic => {
                request = request.basic_auth(&self.client_id, Some(self.secret.expose_secret()));
            }
        }
        // A client span of its own, whose traceparent the token endpoint gets.
        let span = tracing::debug_span!(
            "crm.oauth2_token",
            otel.name = "crm oauth2 token",
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = "POST",
            http.response.status_code = tracing::field::Empty,
        );
        let mut trace_headers = reqwest::header::HeaderMap::new();
        span.in_scope(|| crate::telemetry::otel::inject(&mut trace_headers));
        let request = request.headers(trace_headers).form(&form);
        let result = self.exchange(request).instrument(span.clone()).await;
        if result.is_err() {
            span.record("otel.status_code", "error");
        }
        let label = if result.is_ok() { "ok" } else { "failed" };
        self.metrics
            .counter_with(
                "authbridge_oauth2_token_requests_total",
                &[("result", label)],
            )
            .increment(1);
        let (header, lifetime) = result?;
        let renew_before = RENEW_BEFORE.min(lifetime / 10);
        *self.current.write().expect("token lock") = Some(Token {
            header: header.clone(),
            renew_at: Instant::now() + lifetime - renew_before,
        });
        Ok(header)
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(HeaderValue, Duration), UpstreamError> {
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e.without_url(), "OAuth2 token request failed");
            UpstreamError::Auth("the token endpoint is unreachable")
        })?;
        crate::telemetry::otel::crm_status(response.status().as_u16());
        if !response.status().is_success() {
            tracing::warn!(
                status = response.status().as_u16(),
                "OAuth2 token endpoint refused"
            );
            return Err(UpstreamError::Auth(
                "the token endpoint refused the client credentials",
            ));
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|_| UpstreamError::Auth("the token endpoint's answer is not a token"))?;
        if body
            .token_type
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
        {
            return Err(UpstreamError::Auth(
                "the token endpoint issued a token that is not a bearer token",
            ));
        }
        let mut header =
            HeaderValue::try_from(format!("Bearer {}", body.access_token)).map_err(|_| {
                UpstreamError::Auth("the token endpoint's token is not a valid header value")
            })?;
        header.set_sensitive(true);
        // Bounded: a token endpoint's 0 or absurd value must neither make every
        // request fetch a token nor overflow the clock.
        let lifetime = body.expires_in.map_or(DEFAULT_LIFETIME, |s| {
            Duration::from_secs(s.clamp(1, 86_400))
        });
        Ok((header, lifetime))
    }
}

/// The header name OAuth2 tokens go in.
pub const HEADER: reqwest::header::HeaderName = AUTHORIZATION;
