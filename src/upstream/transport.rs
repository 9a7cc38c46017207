//! One HTTP exchange with the CRM: the per-worker clients (see
//! [`super::client`]: timeouts, no redirects, no proxy, optional mutual TLS),
//! authentication (with one retry after a 401 when the token can be
//! renewed), the body size cap, and the classification of the answer as
//! found, not found or a named error.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use reqwest::header::{CONTENT_LENGTH, HeaderMap, HeaderValue, USER_AGENT};
use serde_json::Value;
use url::Url;

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};
use tower::retry::budget::{Budget as _, TpsBudget};

use super::auth::Auth;
use super::breaker::{self, Breaker, Health};
use super::client::{self, ClientSettings, CrmClient};
use super::error::UpstreamError;
use super::outcome::NotFoundRule;
use crate::config::{BreakerSettings, ConfigError, RetrySettings, TlsSettings, UpstreamSettings};
use crate::metrics::Metrics;
use crate::telemetry::{otel, record};

/// What the CRM said.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The CRM's JSON.
    Found(Crm),
    /// The CRM does not know what was asked for.
    NotFound,
}

/// The CRM's JSON, with the size of the bodies it was parsed from (all of
/// them, for a pipeline): what decides where the mapping runs, known here
/// without walking the JSON again.
#[derive(Debug, Clone, PartialEq)]
pub struct Crm {
    pub json: Value,
    pub body_bytes: usize,
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: reqwest::Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
    pub timeout: Duration,
    pub max_body_bytes: usize,
}

/// What one [`Transport::send`] carries down through its retries, the token
/// renewal and each exchange: the request and how its answer is read.
#[derive(Clone, Copy)]
struct Call<'a> {
    request: &'a Request,
    not_found: &'a NotFoundRule,
}

/// The CRM endpoint, its credentials, and the protections around it.
#[derive(Debug)]
pub struct Transport {
    /// One client (one connection pool) per worker thread plus one for the
    /// rest, so a CRM connection is driven by the thread that uses it.
    clients: Vec<CrmClient>,
    /// The CRM's base URL, parsed once; requests only set its path and query.
    base: Url,
    auth: Auth,
    breaker: Breaker,
    gate: Gate,
    /// Swapped whole on reload; a request keeps the policy it started with.
    retry: ArcSwap<Retry>,
    /// The application's registry: CRM requests, retries and sheds.
    metrics: Metrics,
}

/// How failed requests are retried, and the budget that bounds it.
#[derive(Debug)]
struct Retry {
    settings: RetrySettings,
    /// Kept across reloads that leave its knobs alone, so a reload does not
    /// hand out a fresh allowance during an outage.
    budget: Arc<TpsBudget>,
}

impl Retry {
    fn new(settings: &RetrySettings, old: Option<&Retry>) -> Self {
        let budget = match old {
            Some(old)
                if old.settings.budget_percent == settings.budget_percent
                    && old.settings.budget_min_per_sec == settings.budget_min_per_sec =>
            {
                old.budget.clone()
            }
            _ => Arc::new(TpsBudget::new(
                Duration::from_secs(10),
                settings.budget_min_per_sec,
                settings.budget_percent / 100.0,
            )),
        };
        Self {
            settings: settings.clone(),
            budget,
        }
    }
}

/// A cap on CRM requests in flight with a bounded queue in front of it:
/// beyond the queue, callers are refused at once instead of piling up.
#[derive(Debug)]
struct Gate {
    slots: Semaphore,
    waiting: AtomicUsize,
    max_queue: usize,
    metrics: Metrics,
}

/// Decrements the queue length however the wait ends (cancelled included).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    async fn enter(&self) -> Result<SemaphorePermit<'_>, UpstreamError> {
        if let Ok(permit) = self.slots.try_acquire() {
            return Ok(permit);
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.metrics
                .counter_with("authbridge_shed_total", &[("reason", "crm_queue_full")])
                .increment(1);
            return Err(UpstreamError::Overloaded);
        }
        let _waiting = Waiting(&self.waiting);
        self.slots
            .acquire()
            .await
            .map_err(|_| UpstreamError::Overloaded)
    }
}

fn read(key: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::invalid(key, format!("cannot read {}: {e}", path.display())))
}

/// The CRM's TLS material (extra roots, client identity), read once and
/// given to every worker's client.
struct TlsMaterial {
    roots: Vec<reqwest::Certificate>,
    identity: Option<reqwest::Identity>,
    /// The same, as PEM, for the rustls configuration of the CRM clients.
    roots_pem: Option<Vec<u8>>,
    identity_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsMaterial {
    fn load(tls: &TlsSettings) -> Result<Self, ConfigError> {
        let mut roots = Vec::new();
        let mut roots_pem = None;
        let mut identity_pem = None;
        if let Some(ca) = &tls.ca_file {
            let pem = read("upstream.tls.ca_file", ca)?;
            roots_pem = Some(pem.clone());
            roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                ConfigError::invalid("upstream.tls.ca_file", "is not a PEM certificate bundle")
            })?;
            if roots.is_empty() {
                return Err(ConfigError::invalid(
                    "upstream.tls.ca_file",
                    "holds no certificate",
                ));
            }
        }
        let mut identity = None;
        if let (Some(cert), Some(key)) = (&tls.client_cert_file, &tls.client_key_file) {
            let chain = read("upstream.tls.client_cert_file", cert)?;
            let key = read("upstream.tls.client_key_file", key)?;
            let mut pem = chain.clone();
            pem.push(b'\n');
            pem.extend(&key);
            identity_pem = Some((chain, key));
            identity = Some(reqwest::Identity::from_pem(&pem).map_err(|_| {
                ConfigError::invalid(
                    "upstream.tls.client_cert_file",
                    "client certificate and key must be PEM (certificate chain, then a PKCS#8, PKCS#1 or SEC1 key)",
                )
            })?);
        }
        Ok(Self {
            roots,
            identity,
            roots_pem,
            identity_pem,
        })
    }

    /// The rustls configuration of the CRM clients.
    fn rustls(&self) -> Result<rustls::ClientConfig, ConfigError> {
        client::tls_config(
            self.roots_pem.as_deref(),
            self.identity_pem
                .as_ref()
                .map(|(c, k)| (c.as_slice(), k.as_slice())),
        )
    }

    fn apply(&self, mut builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        for cert in &self.roots {
            builder = builder.add_root_certificate(cert.clone());
        }
        if let Some(identity) = &self.identity {
            builder = builder.identity(identity.clone());
        }
        builder
    }
}

impl Transport {
    /// The client for `s`, recording into `metrics`; certificates, keys and
    /// secrets are read here.
    pub fn new(s: &UpstreamSettings, metrics: Metrics) -> Result<Self, ConfigError> {
        Self::with_workers(s, 0, metrics)
    }

    /// As [`new`](Self::new), with a connection pool for each of `workers`
    /// worker threads (see [`crate::worker`]).
    pub fn with_workers(
        s: &UpstreamSettings,
        workers: usize,
        metrics: Metrics,
    ) -> Result<Self, ConfigError> {
        let base = s.base_url.clone().ok_or_else(|| {
            ConfigError::invalid(
                "upstream.base_url",
                "must be set to the CRM's URL, e.g. https://crm.bank.local/api",
            )
        })?;
        let material = TlsMaterial::load(&s.tls)?;
        // reqwest only for the OAuth2 token endpoint (rare calls).
        let oauth_http = {
            let builder = reqwest::Client::builder()
                .use_rustls_tls()
                .connect_timeout(s.connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .user_agent(concat!("authbridge/", env!("CARGO_PKG_VERSION")));
            material.apply(builder).build().map_err(|e| {
                ConfigError::invalid("upstream", format!("cannot build the HTTP client: {e}"))
            })?
        };
        let tls = material.rustls()?;
        let settings = ClientSettings {
            connect_timeout: s.connect_timeout,
            pool_idle_timeout: s.pool_idle_timeout,
            pool_max_idle: s.pool_max_idle,
            http2_prior_knowledge: s.http2_prior_knowledge,
        };
        let clients = (0..=workers)
            .map(|_| client::build(tls.clone(), &settings))
            .collect::<Vec<_>>();
        let auth = Auth::new(&s.auth, &oauth_http, &metrics)?;
        Ok(Self {
            base,
            clients,
            auth,
            breaker: Breaker::new(&s.breaker, metrics.clone()),
            gate: Gate {
                slots: Semaphore::new(s.max_in_flight),
                waiting: AtomicUsize::new(0),
                max_queue: s.max_queue,
                metrics: metrics.clone(),
            },
            retry: ArcSwap::from_pointee(Retry::new(&s.retry, None)),
            metrics,
        })
    }

    /// The URL for a rendered path and query. Built on the parsed base URL
    /// (only the path and query are parsed per request: no host parsing or
    /// IDNA), and checked to still be under the configured path prefix
    /// (dot segments are resolved by the parser).
    pub fn url(&self, path: &str, query: &[(String, String)]) -> Result<Url, UpstreamError> {
        let mut url = self.base.clone();
        let prefix = self.base.path().trim_end_matches('/');
        let slash = if path.starts_with('/') { "" } else { "/" };
        url.set_path(&format!("{prefix}{slash}{path}"));
        url.set_query(None);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                pairs.append_pair(name, value);
            }
        }
        if !url.path().starts_with(prefix) {
            return Err(UpstreamError::Unrepresentable(
                "it would change the CRM address",
            ));
        }
        Ok(url)
    }

    /// Sends `request`, classifying the answer with `not_found`; records
    /// metrics.
    pub async fn send(
        &self,
        request: &Request,
        not_found: &NotFoundRule,
    ) -> Result<Fetched, UpstreamError> {
        let started = Instant::now();
        let result = self.send_with_retries(Call { request, not_found }).await;
        let label = match &result {
            Ok((status, _)) => status_label(*status),
            Err(e) => e.label(),
        };
        self.metrics
            .counter_with("authbridge_upstream_requests_total", &[("status", label)])
            .increment(1);
        self.metrics
            .histogram("authbridge_upstream_duration_seconds")
            .record(started.elapsed().as_secs_f64());
        result.map(|(_, fetched)| fetched)
    }

    /// This thread's client.
    fn client(&self) -> &CrmClient {
        self.clients
            .get(crate::worker::current())
            .unwrap_or(&self.clients[0])
    }

    /// The application's registry (the pipeline counts its steps there).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The breaker's state, for the admin API.
    pub fn breaker_state(&self) -> breaker::State {
        self.breaker.state()
    }

    /// Applies reloaded retry and breaker settings (requests under way
    /// finish with the retry policy they started with; see
    /// [`Breaker::reconfigure`] for the breaker's state).
    pub fn reconfigure(&self, retry: &RetrySettings, breaker: &BreakerSettings) {
        let old = self.retry.load();
        if old.settings != *retry {
            self.retry.store(Arc::new(Retry::new(retry, Some(&old))));
        }
        self.breaker.reconfigure(breaker);
    }

    fn retryable(retry: &RetrySettings, request: &Request, e: &UpstreamError) -> bool {
        // Only idempotent requests; timeouts are not retried, since a slow
        // CRM would only get slower with more load.
        request.method == reqwest::Method::GET
            && match e {
                UpstreamError::Unreachable | UpstreamError::Body => true,
                UpstreamError::Status(s) => retry.statuses.contains(s),
                _ => false,
            }
    }

    /// Sends through the breaker, retrying connect errors, resets and the
    /// configured statuses with jittered exponential backoff, while the retry
    /// budget (a share of recent requests) allows.
    async fn send_with_retries(&self, call: Call<'_>) -> Result<(u16, Fetched), UpstreamError> {
        use backon::BackoffBuilder as _;
        let retry = self.retry.load_full();
        retry.budget.deposit();
        let mut delays = backon::ExponentialBuilder::default()
            .with_min_delay(retry.settings.base_delay)
            .with_max_delay(retry.settings.max_delay)
            .with_jitter()
            .with_max_times(retry.settings.max_attempts.saturating_sub(1))
            .build();
        loop {
            let result = {
                // One slot per attempt: the back-off below sleeps without
                // one, so a struggling CRM's retries do not starve lookups.
                let _slot = self.gate.enter().await?;
                let Some(permit) = self.breaker.allow() else {
                    self.metrics
                        .counter_with("authbridge_shed_total", &[("reason", "circuit_open")])
                        .increment(1);
                    return Err(UpstreamError::CircuitOpen);
                };
                let result = self.send_authenticated(call).await;
                let health = match &result {
                    Err(e) if e.is_crm_sick() => Health::Failing,
                    _ => Health::Healthy,
                };
                self.breaker.record(permit, health);
                result
            };
            match result {
                Err(e) if Self::retryable(&retry.settings, call.request, &e) => {
                    let Some(delay) = delays.next() else {
                        return Err(e);
                    };
                    if !retry.budget.withdraw() {
                        self.metrics
                            .counter_with(
                                "authbridge_retries_total",
                                &[("result", "budget_exhausted")],
                            )
                            .increment(1);
                        return Err(e);
                    }
                    self.metrics
                        .counter_with("authbridge_retries_total", &[("result", "retried")])
                        .increment(1);
                    tracing::debug!(
                        kind = e.label(),
                        delay_ms = delay.as_millis() as u64,
                        "retrying CRM request"
                    );
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    async fn send_authenticated(&self, call: Call<'_>) -> Result<(u16, Fetched), UpstreamError> {
        let Auth::OAuth2(oauth) = &self.auth else {
            return self.exchange(call, None).await;
        };
        let token = oauth.header().await?;
        match self.exchange(call, Some(&token)).await {
            // The token may have been revoked or expired early: renew once.
            Err(UpstreamError::Status(401)) => {
                let renewed = oauth.renew(&token).await?;
                match self.exchange(call, Some(&renewed)).await {
                    Err(UpstreamError::Status(401)) => {
                        Err(UpstreamError::Auth("the CRM refused a fresh access token"))
                    }
                    other => other,
                }
            }
            other => other,
        }
    }

    /// One HTTP exchange, reported to the request's record (a CRM call and
    /// its status) and, with traces on, to the CRM step's span.
    async fn exchange(
        &self,
        call: Call<'_>,
        token: Option<&HeaderValue>,
    ) -> Result<(u16, Fetched), UpstreamError> {
        let result = self.exchange_once(call, token).await;
        let status = match &result {
            Ok((status, _)) => Some(*status),
            Err(UpstreamError::Status(status) | UpstreamError::Redirect(status)) => Some(*status),
            Err(_) => None,
        };
        record::crm_call(status);
        if let Some(status) = status {
            otel::crm_status(status);
        }
        result
    }

    async fn exchange_once(
        &self,
        Call { request, not_found }: Call<'_>,
        token: Option<&HeaderValue>,
    ) -> Result<(u16, Fetched), UpstreamError> {
        let mut url = request.url.clone();
        if let Auth::Query(name, key) = &self.auth {
            use secrecy::ExposeSecret;
            url.query_pairs_mut().append_pair(name, key.expose_secret());
        }
        let uri: hyper::Uri = url
            .as_str()
            .parse()
            .map_err(|_| UpstreamError::Unrepresentable("not a valid URL"))?;
        let mut headers = request.headers.clone();
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        // The CRM step's span as the CRM's parent (with traces on).
        otel::inject(&mut headers);
        match (&self.auth, token) {
            (Auth::Header(name, value), _) => {
                headers.insert(name.clone(), value.clone());
            }
            (_, Some(token)) => {
                headers.insert(super::oauth2::HEADER, token.clone());
            }
            _ => {}
        }
        let mut outgoing = hyper::Request::new(Full::new(
            request.body.clone().map(Bytes::from).unwrap_or_default(),
        ));
        *outgoing.method_mut() = request.method.clone();
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = headers;
        let limit = request.max_body_bytes;
        // One timeout around the whole exchange, body included.
        let exchange = async {
            let response = self.client().request(outgoing).await.map_err(|e| {
                let err = classify(&e);
                tracing::debug!(kind = err.label(), "CRM request failed");
                err
            })?;
            let status = response.status().as_u16();
            if not_found.status_means_not_found(status) {
                return Ok((status, None));
            }
            if response.status().is_redirection() {
                return Err(UpstreamError::Redirect(status));
            }
            if !response.status().is_success() {
                return Err(UpstreamError::Status(status));
            }
            let declared = response
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            if declared.is_some_and(|n| n > limit) {
                return Err(UpstreamError::TooLarge(limit));
            }
            let mut body = BytesMut::with_capacity(declared.unwrap_or(8 * 1024).min(limit));
            let mut incoming = response.into_body();
            while let Some(frame) = incoming.frame().await {
                let frame = frame.map_err(|_| UpstreamError::Body)?;
                if let Some(chunk) = frame.data_ref() {
                    if body.len() + chunk.len() > limit {
                        return Err(UpstreamError::TooLarge(limit));
                    }
                    body.extend_from_slice(chunk);
                }
            }
            Ok((status, Some(body)))
        };
        let (status, body) = tokio::time::timeout(request.timeout, exchange)
            .await
            .unwrap_or(Err(UpstreamError::Timeout))?;
        let Some(body) = body else {
            return Ok((status, Fetched::NotFound));
        };
        let json: Value = serde_json::from_slice(&body).map_err(|_| UpstreamError::InvalidJson)?;
        if not_found.body_means_not_found(&json) {
            return Ok((status, Fetched::NotFound));
        }
        Ok((
            status,
            Fetched::Found(Crm {
                json,
                body_bytes: body.len(),
            }),
        ))
    }
}

const USER_AGENT_VALUE: &str = concat!("authbridge/", env!("CARGO_PKG_VERSION"));

/// Names a failed request without its text (it may hold the URL): an I/O
/// timeout anywhere in the cause (the connect timeout) is a timeout, any
/// other failure to get an answer is unreachable.
fn classify(e: &hyper_util::client::legacy::Error) -> UpstreamError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return UpstreamError::Timeout;
        }
        cause = c.source();
    }
    UpstreamError::Unreachable
}

/// Status labels from a fixed set, so a CRM cannot blow up metric cardinality.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201..=299 => "2xx",
        404 => "404",
        400..=499 => "4xx",
        _ => "other",
    }
}
