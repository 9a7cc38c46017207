//! `[upstream]`: the CRM: request, limits, credentials, TLS, retries,
//! breaker, "not found" rules.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

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
    /// Scheme, host, port and optional path prefix of the CRM API.
    pub base_url: String,
    /// GET or POST.
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
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, body included.
    pub timeout_ms: u64,
    /// Largest CRM response body accepted (per request).
    pub max_body_bytes: usize,
    /// Deadline for all CRM requests of one lookup (a whole pipeline).
    pub deadline_ms: u64,
    /// Most steps a mapping's pipeline may declare.
    pub max_steps: usize,
    /// Most requests one fan-out step may make.
    pub max_fan_out: usize,
    /// Most requests one fan-out step runs at once.
    pub max_concurrency: usize,
    /// Idle pooled CRM connections are closed after this; keep it below the
    /// CRM's own keep-alive timeout so a request never lands on a connection
    /// the CRM is closing.
    pub pool_idle_timeout_ms: u64,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySettings {
    /// Tries per request, the first included; 1 = no retries.
    pub max_attempts: usize,
    /// First backoff; doubles per retry, with jitter.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
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
            base_delay_ms: 50,
            max_delay_ms: 500,
            statuses: vec![502, 503, 504],
            budget_percent: 10.0,
            budget_min_per_sec: 5,
        }
    }
}

/// The circuit breaker in front of the CRM.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    pub enabled: bool,
    /// Opens when this share of the requests of the last `window_ms` failed...
    pub failure_ratio: f64,
    /// ...and there were at least this many in the window.
    pub min_requests: u32,
    pub window_ms: u64,
    /// Also opens after this many failures in a row (0 = off).
    pub consecutive_failures: u32,
    /// Stays open this long, then lets one probe through.
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_ratio: 0.5,
            min_requests: 20,
            window_ms: 10_000,
            consecutive_failures: 0,
            open_ms: 5_000,
        }
    }
}

impl Default for UpstreamSettings {
    fn default() -> Self {
        Self {
            base_url: String::new(),
            method: HttpMethod::GET,
            path: "/clients/by-token/{token}".into(),
            query: BTreeMap::new(),
            headers: BTreeMap::new(),
            body: None,
            connect_timeout_ms: 1_000,
            timeout_ms: 3_000,
            max_body_bytes: 1024 * 1024,
            deadline_ms: 4_000,
            max_steps: 8,
            max_fan_out: 50,
            max_concurrency: 8,
            pool_idle_timeout_ms: 4_000,
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
    pub token_url: Option<String>,
    /// OAuth2 client id.
    pub client_id: Option<String>,
    /// OAuth2 scope, if the CRM wants one.
    pub scope: Option<String>,
    /// OAuth2 audience, if the CRM wants one.
    pub audience: Option<String>,
    /// How the OAuth2 client authenticates at the token endpoint.
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
