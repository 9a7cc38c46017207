//! `[upstream]`: the CRM: request, limits, credentials, TLS, retries,
//! breaker, "not found" rules; their typed values and their own checks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::de;
use super::validate::Checks;

/// HTTP method of the CRM request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum HttpMethod {
    #[default]
    #[serde(alias = "get")]
    GET,
    #[serde(alias = "post")]
    POST,
    #[serde(alias = "put")]
    PUT,
    #[serde(alias = "patch")]
    PATCH,
}

/// The CRM request and how its answer is classified.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSettings {
    /// Scheme, host, port and optional path prefix of the CRM API; `None`
    /// until set (there is no sensible default: validation asks for it).
    #[serde(deserialize_with = "de::base_url")]
    pub base_url: Option<Url>,
    /// GET or POST.
    #[serde(deserialize_with = "de::choice")]
    pub method: HttpMethod,
    /// Path appended to `base_url`; `{token}` is replaced by the token,
    /// percent-encoded as one path segment.
    pub path: String,
    /// Query parameters; values may contain `{token}`.
    pub query: BTreeMap<String, String>,
    /// Static request headers.
    pub headers: BTreeMap<String, String>,
    /// JSON body template for POST; `{token}` inside string values is replaced.
    pub body: Option<String>,
    #[serde(rename = "connect_timeout_ms", deserialize_with = "de::millis")]
    pub connect_timeout: Duration,
    /// Whole-request timeout, body included.
    #[serde(rename = "timeout_ms", deserialize_with = "de::millis")]
    pub timeout: Duration,
    /// Largest CRM response body accepted (per request).
    pub max_body_bytes: usize,
    /// Deadline for all CRM requests of one lookup (a whole pipeline).
    #[serde(rename = "deadline_ms", deserialize_with = "de::millis")]
    pub deadline: Duration,
    /// Most steps a mapping's pipeline may declare.
    pub max_steps: usize,
    /// Most requests one fan-out step may make.
    pub max_fan_out: usize,
    /// Most requests one fan-out step runs at once.
    pub max_concurrency: usize,
    /// Idle pooled CRM connections are closed after this; keep it below the
    /// CRM's own keep-alive timeout so a request never lands on a connection
    /// the CRM is closing.
    #[serde(rename = "pool_idle_timeout_ms", deserialize_with = "de::millis")]
    pub pool_idle_timeout: Duration,
    /// Idle connections kept per CRM host.
    pub pool_max_idle: usize,
    /// Speak HTTP/2 without TLS negotiation (h2c). Over TLS, HTTP/2 is chosen
    /// by ALPN when the CRM offers it.
    pub http2_prior_knowledge: bool,
    /// CRM requests in flight at most; more wait in a queue.
    pub max_in_flight: usize,
    /// Requests waiting for a slot at most; beyond it, 503 at once.
    pub max_queue: usize,
    pub not_found: NotFoundSettings,
    pub auth: UpstreamAuthSettings,
    pub tls: TlsSettings,
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
}

/// Retries of idempotent (GET) CRM requests.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Tries per request, the first included; 1 = no retries.
    pub max_attempts: usize,
    /// First backoff; doubles per retry, with jitter.
    #[serde(rename = "base_delay_ms", deserialize_with = "de::millis")]
    pub base_delay: Duration,
    #[serde(rename = "max_delay_ms", deserialize_with = "de::millis")]
    pub max_delay: Duration,
    /// Statuses worth retrying (besides connect errors and resets).
    pub statuses: Vec<u16>,
    /// Retries may add at most this share (percent) of the requests...
    pub budget_percent: f32,
    /// ...plus this many per second.
    pub budget_min_per_sec: u32,
}

impl Default for RetrySettings {
    fn default() -> Self {
        Self {
            max_attempts: 2,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            statuses: vec![502, 503, 504],
            budget_percent: 10.0,
            budget_min_per_sec: 5,
        }
    }
}

/// The circuit breaker in front of the CRM.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    pub enabled: bool,
    /// Opens when this share of the requests of the last `window_ms` failed...
    pub failure_ratio: f64,
    /// ...and there were at least this many in the window.
    pub min_requests: u32,
    #[serde(rename = "window_ms", deserialize_with = "de::millis")]
    pub window: Duration,
    /// Also opens after this many failures in a row (0 = off).
    pub consecutive_failures: u32,
    /// Stays open this long, then lets one probe through.
    #[serde(rename = "open_ms", deserialize_with = "de::millis")]
    pub open: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_ratio: 0.5,
            min_requests: 20,
            window: Duration::from_millis(10_000),
            consecutive_failures: 0,
            open: Duration::from_millis(5_000),
        }
    }
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            method: HttpMethod::GET,
            path: "/clients/by-token/{token}".into(),
            query: BTreeMap::new(),
            headers: BTreeMap::new(),
            body: None,
            connect_timeout: Duration::from_millis(1_000),
            timeout: Duration::from_millis(3_000),
            max_body_bytes: 1024 * 1024,
            deadline: Duration::from_millis(4_000),
            max_steps: 8,
            max_fan_out: 50,
            max_concurrency: 8,
            pool_idle_timeout: Duration::from_millis(4_000),
            pool_max_idle: 64,
            http2_prior_knowledge: false,
            max_in_flight: 256,
            max_queue: 512,
            not_found: NotFoundSettings::default(),
            auth: UpstreamAuthSettings::default(),
            tls: TlsSettings::default(),
            retry: RetrySettings::default(),
            breaker: BreakerSettings::default(),
        }
    }
}

/// Which CRM answers mean "no such client".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotFoundSettings {
    /// HTTP statuses that mean not found.
    pub statuses: Vec<u16>,
    /// For CRMs that answer 200 with an empty result: not found when this
    /// JSONPath selects nothing, `null`, `""`, `[]` or `{}`.
    pub when_empty: Option<String>,
    /// Not found when the JSONPath `path` selects a value equal to `value`.
    pub when_equals: Option<WhenEquals>,
}

impl Default for NotFoundSettings {
    fn default() -> Self {
        Self {
            statuses: vec![404],
            when_empty: None,
            when_equals: None,
        }
    }
}

/// A body condition: `path` selects `value`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhenEquals {
    pub path: String,
    pub value: serde_json::Value,
}

/// How authbridge authenticates to the CRM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKind {
    #[default]
    None,
    Bearer,
    Basic,
    ApiKey,
    #[serde(rename = "oauth2")]
    OAuth2,
}

/// How an OAuth2 client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form body.
    #[default]
    Body,
    /// HTTP Basic with `client_id:client_secret`.
    Basic,
}

/// CRM credentials. The secret (token, password, key or OAuth2 client
/// secret) comes from the env var named by `secret_env` or the file at
/// `secret_file`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamAuthSettings {
    #[serde(deserialize_with = "de::choice")]
    pub kind: AuthKind,
    /// User name for `basic`.
    pub username: Option<String>,
    /// Header name for `api_key` (default `X-API-Key`).
    pub header: Option<String>,
    /// Query parameter name for `api_key`, instead of a header.
    pub query_param: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// OAuth2 token endpoint.
    #[serde(deserialize_with = "de::token_url")]
    pub token_url: Option<Url>,
    /// OAuth2 client id.
    pub client_id: Option<String>,
    /// OAuth2 scope, if the CRM wants one.
    pub scope: Option<String>,
    /// OAuth2 audience, if the CRM wants one.
    pub audience: Option<String>,
    /// How the OAuth2 client authenticates at the token endpoint.
    #[serde(deserialize_with = "de::choice")]
    pub client_auth: ClientAuth,
}

/// TLS to the CRM: a client certificate for mutual TLS and a custom CA.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSettings {
    /// PEM client certificate (chain) for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of the client certificate (a secret: keep the file
    /// readable by authbridge only).
    pub client_key_file: Option<PathBuf>,
    /// PEM CA bundle trusted in addition to the built-in roots.
    pub ca_file: Option<PathBuf>,
}

/// Whether `url` is one the HTTP client can call.
fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

impl UpstreamSettings {
    /// The checks of `[upstream]` that its types cannot express.
    pub(super) fn validate(&self, c: &mut Checks) {
        match &self.base_url {
            Some(url) => {
                c.check(
                    is_http(url),
                    "upstream.base_url",
                    "must be an http:// or https:// URL",
                );
                c.check(
                    url.query().is_none() && url.fragment().is_none(),
                    "upstream.base_url",
                    "must not have a query or fragment (use upstream.query)",
                );
            }
            None => c.check(
                false,
                "upstream.base_url",
                "must be set to the CRM's URL, e.g. https://crm.bank.local/api",
            ),
        }
        c.check(
            self.path.starts_with('/'),
            "upstream.path",
            "must start with /",
        );
        c.check(
            !self.connect_timeout.is_zero(),
            "upstream.connect_timeout_ms",
            "must be at least 1",
        );
        c.check(
            !self.timeout.is_zero(),
            "upstream.timeout_ms",
            "must be at least 1",
        );
        c.check(
            self.connect_timeout <= self.timeout,
            "upstream.connect_timeout_ms",
            "must not exceed upstream.timeout_ms",
        );
        c.check(
            self.max_body_bytes > 0,
            "upstream.max_body_bytes",
            "must be at least 1",
        );
        c.check(
            self.not_found
                .statuses
                .iter()
                .all(|s| (100..=599).contains(s)),
            "upstream.not_found.statuses",
            "must be HTTP statuses (100-599)",
        );
        c.check(
            self.body.is_none() || self.method != HttpMethod::GET,
            "upstream.body",
            "is not sent with GET: use POST, PUT or PATCH",
        );
        c.check(
            self.max_in_flight > 0,
            "upstream.max_in_flight",
            "must be at least 1",
        );
        c.check(
            !self.deadline.is_zero(),
            "upstream.deadline_ms",
            "must be at least 1",
        );
        c.check(
            self.max_steps > 0,
            "upstream.max_steps",
            "must be at least 1",
        );
        c.check(
            self.max_fan_out > 0,
            "upstream.max_fan_out",
            "must be at least 1",
        );
        c.check(
            self.max_concurrency > 0,
            "upstream.max_concurrency",
            "must be at least 1",
        );
        c.check(
            self.tls.client_cert_file.is_some() == self.tls.client_key_file.is_some(),
            "upstream.tls.client_key_file",
            "mutual TLS needs both client_cert_file and client_key_file",
        );
        self.retry.validate(c);
        self.breaker.validate(c);
        self.auth.validate(c);
    }
}

impl RetrySettings {
    fn validate(&self, c: &mut Checks) {
        c.check(
            self.max_attempts > 0,
            "upstream.retry.max_attempts",
            "must be at least 1 (1 = no retries)",
        );
        c.check(
            (0.0..=1000.0).contains(&self.budget_percent),
            "upstream.retry.budget_percent",
            "must be 0 to 1000",
        );
    }
}

impl BreakerSettings {
    fn validate(&self, c: &mut Checks) {
        c.check(
            self.failure_ratio > 0.0 && self.failure_ratio <= 1.0,
            "upstream.breaker.failure_ratio",
            "must be above 0 and at most 1",
        );
        c.check(
            self.min_requests > 0,
            "upstream.breaker.min_requests",
            "must be at least 1",
        );
        c.check(
            self.window >= Duration::from_millis(100),
            "upstream.breaker.window_ms",
            "must be at least 100",
        );
    }
}

impl UpstreamAuthSettings {
    /// Each credential kind needs its own pieces, and no stray secret.
    fn validate(&self, c: &mut Checks) {
        let has_secret = self.secret_env.is_some() || self.secret_file.is_some();
        c.check(
            !(self.secret_env.is_some() && self.secret_file.is_some()),
            "upstream.auth.secret_env",
            "set secret_env or secret_file, not both",
        );
        match self.kind {
            AuthKind::None => c.check(
                !has_secret,
                "upstream.auth.kind",
                "is \"none\" but a secret is configured",
            ),
            AuthKind::Bearer => c.check(
                has_secret,
                "upstream.auth.secret_env",
                "this auth kind needs secret_env (an env var name) or secret_file (a path)",
            ),
            AuthKind::ApiKey => {
                c.check(
                    has_secret,
                    "upstream.auth.secret_env",
                    "this auth kind needs secret_env (an env var name) or secret_file (a path)",
                );
                c.check(
                    !(self.header.is_some() && self.query_param.is_some()),
                    "upstream.auth.query_param",
                    "set header or query_param, not both",
                );
            }
            AuthKind::OAuth2 => {
                c.check(
                    has_secret,
                    "upstream.auth.secret_env",
                    "oauth2 needs the client secret in secret_env or secret_file",
                );
                c.check(
                    self.client_id.is_some(),
                    "upstream.auth.client_id",
                    "oauth2 needs a client_id",
                );
                c.check(
                    self.token_url.as_ref().is_some_and(is_http),
                    "upstream.auth.token_url",
                    "oauth2 needs the token endpoint as an http(s) URL",
                );
            }
            AuthKind::Basic => {
                c.check(
                    has_secret,
                    "upstream.auth.secret_env",
                    "basic auth needs the password in secret_env or secret_file",
                );
                c.check(
                    self.username.is_some(),
                    "upstream.auth.username",
                    "basic auth needs a username",
                );
            }
        }
    }
}
