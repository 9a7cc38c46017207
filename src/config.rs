//! Settings, layered with the `config` crate: built-in defaults →
//! `config/default.toml` in the working directory (if present) → `--config
//! FILE` → env `AUTHBRIDGE__SECTION__KEY`.
//!
//! The built-in defaults are the shipped `config/default.toml`, compiled into
//! the binary and read as the first layer, key by key: a file that sets one
//! key of a section (`[users_api.get] mapping = ...`) keeps the defaults of
//! the others, from any working directory. (Serde's own `default` would fill
//! a missing section, not a missing key of a section that is present.) A
//! unit test keeps the file equal to the `Default` impls below.
//!
//! Secrets are never values in a config file: the file names an env var or a
//! file that holds the secret, and the secret is read into a `SecretString`
//! that prints as `[REDACTED]`. Unknown keys are rejected, so a typo cannot
//! silently fall back to a default.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

use crate::schema::ApiVersion;

/// Everything the server needs to run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth_api: AuthApiSettings,
    pub upstream: UpstreamSettings,
    pub cache: CacheSettings,
    pub telemetry: TelemetrySettings,
    pub admin: AdminSettings,
    pub reload: ReloadSettings,
    pub redis: RedisSettings,
    pub users_api: UsersApiSettings,
    pub mapping: MappingSettings,
}

/// The budget of applying a mapping to one CRM answer (both fronts), and
/// where big applications run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingSettings {
    /// Evaluation steps at most (fields, list items, lookup hops, jq steps).
    pub max_steps: u64,
    /// Wall time at most, in milliseconds.
    pub max_ms: u64,
    /// Longest array or object a jq rule may build.
    pub max_jq_items: usize,
    /// Longest string a jq rule may build, in bytes.
    pub max_jq_string_bytes: usize,
    /// CRM bodies from this size, and every mapping with a jq rule, are
    /// mapped on a separate pool of threads, off the request workers.
    pub offload_body_bytes: usize,
    /// Threads of that pool (0 = one per CPU); it also bounds how many such
    /// applications run at once.
    pub pool_threads: usize,
}

impl Default for MappingSettings {
    fn default() -> Self {
        Self {
            max_steps: 2_000_000,
            max_ms: 1_000,
            max_jq_items: 100_000,
            max_jq_string_bytes: 1 << 20,
            offload_body_bytes: 64 * 1024,
            pool_threads: 0,
        }
    }
}

impl MappingSettings {
    /// The budget of one application.
    pub fn budget(&self) -> crate::mapping::budget::Budget {
        crate::mapping::budget::Budget {
            max_steps: self.max_steps,
            max_time: std::time::Duration::from_millis(self.max_ms),
            max_items: self.max_jq_items,
            max_string_bytes: self.max_jq_string_bytes,
        }
    }
}

/// The second front: the mobile-commerce platform's users webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersApiSettings {
    /// Mount the users API (off by default).
    pub enabled: bool,
    /// The platform's API key (`key` in the body or `Authorization: Bearer`).
    pub api_key_env: Option<String>,
    pub api_key_file: Option<PathBuf>,
    /// Longest accepted `userIdentifier` / `login`, in bytes.
    pub max_identifier_bytes: usize,
    /// Largest request body the front reads; a larger one is refused (413)
    /// in the platform's error shape before anything is parsed.
    pub max_body_bytes: usize,
    pub get: UsersOperation,
    pub update: UsersOperation,
    pub otp_request: UsersOperation,
    pub otp_confirm: UsersOperation,
    pub login: UsersOperation,
    pub orders: UsersOperation,
    /// How long Get User Data answers are cached (a separate key space).
    pub found_ttl_secs: u64,
    pub not_found_ttl_secs: u64,
    /// Bounds each of the front's two caches (profiles, order histories).
    pub cache_max_bytes: u64,
    /// How long an order history is cached, in its own key space; 0 = not
    /// cached (every call asks the CRM). Short: an order's status moves.
    pub orders_ttl_secs: u64,
    pub messages: UsersMessages,
}

/// One users-API call: where it is mounted and the mapping file (with its
/// `[[step]]` requests) that serves it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersOperation {
    pub path: String,
    pub mapping: PathBuf,
}

/// The texts users see in `{"error": {"message": ...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersMessages {
    pub invalid_code: String,
    pub wrong_credentials: String,
    pub unknown_user: String,
    pub bad_request: String,
    pub unauthorized: String,
    pub unavailable: String,
}

impl Default for UsersMessages {
    fn default() -> Self {
        Self {
            invalid_code: "Неверный код".into(),
            wrong_credentials: "Неверный логин или пароль".into(),
            unknown_user: "Пользователь не найден".into(),
            bad_request: "Некорректный запрос".into(),
            unauthorized: "Нет доступа".into(),
            unavailable: "Сервис временно недоступен, попробуйте позже".into(),
        }
    }
}

impl Default for UsersApiSettings {
    fn default() -> Self {
        let op = |path: &str, file: &str| UsersOperation {
            path: path.into(),
            mapping: PathBuf::from(format!("mappings/users/{file}")),
        };
        Self {
            enabled: false,
            api_key_env: None,
            api_key_file: None,
            max_identifier_bytes: 256,
            max_body_bytes: 64 * 1024,
            get: op("/users/get", "generic-bank-get.toml"),
            update: op("/users/update", "generic-bank-update.toml"),
            otp_request: op("/users/otp/request", "generic-bank-otp-request.toml"),
            otp_confirm: op("/users/otp/confirm", "generic-bank-otp-confirm.toml"),
            login: op("/users/login", "generic-bank-login.toml"),
            orders: op("/users/orders", "generic-bank-orders.toml"),
            found_ttl_secs: 300,
            not_found_ttl_secs: 30,
            cache_max_bytes: 32 * 1024 * 1024,
            orders_ttl_secs: 60,
            messages: UsersMessages::default(),
        }
    }
}

/// The optional shared cache level for replicas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:port/db`; empty = off.
    pub url: String,
    /// Prefix of authbridge's keys.
    pub key_prefix: String,
    /// Timeout of each Redis call; a slow Redis is skipped, not waited for.
    pub timeout_ms: u64,
    /// How long a replica fetching a card holds the cross-replica lock.
    pub lock_ms: u64,
    /// AES-256-GCM key (64 hex digits) for values at rest, from env or file.
    pub encryption_key_env: Option<String>,
    pub encryption_key_file: Option<PathBuf>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            key_prefix: "authbridge:".into(),
            timeout_ms: 50,
            lock_ms: 1_000,
            encryption_key_env: None,
            encryption_key_file: None,
        }
    }
}

/// The HTTP listener and per-request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on.
    pub listen: String,
    /// Longest accepted token, in bytes after percent-decoding.
    pub max_token_bytes: usize,
    /// Deadline for one lookup, CRM call included; past it the caller gets 504.
    pub request_timeout_ms: u64,
    /// A regex every token must match (e.g. `^[A-Za-z0-9_-]+$`); others get 400.
    pub token_pattern: Option<String>,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, counted from the
    /// connection's accept (a socket that never sends a byte is cut too) and
    /// again from the end of each answer on a kept-alive connection.
    pub header_read_timeout_ms: u64,
    /// On SIGTERM, `/readyz` answers 503 at once while everything is still
    /// served for this long (load balancers stop routing here), then the
    /// listener closes and in-flight requests drain.
    pub shutdown_delay_ms: u64,
    /// Longest wait for in-flight requests after the listener closes.
    pub drain_timeout_ms: u64,
    /// Accept loops, each on its own single-threaded runtime and its own
    /// `SO_REUSEPORT` socket, so a request, its CRM call and its answer stay
    /// on one thread (nginx's worker model); 0 = one per CPU.
    pub workers: usize,
    pub tls: ServerTlsSettings,
    pub access: AccessSettings,
}

/// TLS termination for the Auth API (off unless both files are set).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsSettings {
    /// PEM certificate chain; re-read on reload.
    pub cert_file: Option<PathBuf>,
    /// PEM private key; re-read on reload.
    pub key_file: Option<PathBuf>,
}

/// Who may call the Auth API (the spec defines no auth; a bank needs some).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessSettings {
    /// `none`, `bearer` or `basic`: a shared secret the chat server sends.
    pub kind: AccessKind,
    /// User name for `basic`.
    pub username: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// Networks allowed to call (CIDR, e.g. `10.0.0.0/8`); empty = any.
    pub allow_cidrs: Vec<String>,
    /// Requests per second per client IP; 0 = no limit.
    pub rate_limit_per_ip: u32,
    /// Burst above the per-IP rate.
    pub rate_limit_burst: u32,
}

/// Inbound shared-secret kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessKind {
    #[default]
    None,
    Bearer,
    Basic,
}

/// The admin API (cache purge, reload, stats) on its own address.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Address of the admin API; empty = off.
    pub listen: String,
    /// The admin bearer token, from this env var or file.
    pub token_env: Option<String>,
    pub token_file: Option<PathBuf>,
}

/// Hot reload of the mapping and the reloadable settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadSettings {
    /// Also reload when the config or mapping file changes (SIGHUP always works).
    pub watch_files: bool,
    /// The watcher reloads once the files have been quiet this long.
    pub debounce_ms: u64,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        Self {
            watch_files: true,
            debounce_ms: 2_000,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".into(),
            max_token_bytes: 512,
            request_timeout_ms: 5_000,
            token_pattern: None,
            max_connections: 10_000,
            header_read_timeout_ms: 5_000,
            shutdown_delay_ms: 5_000,
            drain_timeout_ms: 10_000,
            workers: 0,
            tls: ServerTlsSettings::default(),
            access: AccessSettings::default(),
        }
    }
}

/// The chat Auth API front.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthApiSettings {
    /// The mapping file that turns CRM JSON into the card.
    pub mapping: PathBuf,
    /// The Auth API version the chat server speaks; newer fields are dropped.
    pub api_version: ApiVersion,
    /// Also send the deprecated `fields` map, derived from `fieldList`.
    pub derive_fields: bool,
}

impl Default for AuthApiSettings {
    fn default() -> Self {
        Self {
            mapping: PathBuf::from("mappings/generic-bank.toml"),
            api_version: ApiVersion::V1_2,
            derive_fields: false,
        }
    }
}

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

/// The in-process card cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Upper bound of cached response bytes (keys and overhead included).
    pub max_bytes: u64,
    /// How long a found card is served from cache.
    pub found_ttl_secs: u64,
    /// How long a "not found" answer is served from cache.
    pub not_found_ttl_secs: u64,
    /// After its TTL a card is kept this long more, to be served when the CRM
    /// fails (stale-if-error); 0 = off.
    pub grace_secs: u64,
    /// Serve a card past its TTL at once and refresh it in the background.
    pub stale_while_revalidate: bool,
    /// With a card in its grace window, wait at most this long for the CRM,
    /// then serve the stale card while the fetch goes on; 0 = wait for the
    /// CRM (up to its timeout).
    pub stale_after_ms: u64,
    /// TTLs vary by up to this share, so entries made together expire apart.
    pub ttl_jitter: f64,
    /// HMAC key for cache keys from this env var or file; random per process
    /// when neither is set. Replicas sharing a cache need the same key.
    pub hash_key_env: Option<String>,
    pub hash_key_file: Option<PathBuf>,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            max_bytes: 64 * 1024 * 1024,
            found_ttl_secs: 300,
            not_found_ttl_secs: 30,
            grace_secs: 3_600,
            stale_while_revalidate: false,
            stale_after_ms: 500,
            ttl_jitter: 0.1,
            hash_key_env: None,
            hash_key_file: None,
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// Level or filter directives; `RUST_LOG`, when set, wins.
    pub log_level: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
        }
    }
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type.
    #[error("configuration: {0}")]
    Load(String),
    /// Values that parse but do not make sense; each names its key.
    #[error("configuration: {}", .0.iter().map(|(k, m)| format!("{k}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
}

impl ConfigError {
    fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid(vec![(key.to_owned(), message.into())])
    }
}

/// The shipped `config/default.toml`, compiled in.
pub const BUILTIN_DEFAULTS: &str = include_str!("../config/default.toml");

/// The built-in defaults as the first configuration layer.
fn builtin() -> config::File<config::FileSourceString, config::FileFormat> {
    config::File::from_str(BUILTIN_DEFAULTS, config::FileFormat::Toml)
}

/// The env prefix, as in `AUTHBRIDGE__UPSTREAM__BASE_URL`.
pub const ENV_PREFIX: &str = "AUTHBRIDGE";

impl Settings {
    /// Loads defaults → `config/default.toml` → `file` → env, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder().add_source(builtin()).add_source(
            config::File::new("config/default.toml", config::FileFormat::Toml).required(false),
        );
        if let Some(file) = file {
            builder = builder.add_source(
                config::File::from(file)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("upstream.not_found.statuses")
                .with_list_parse_key("upstream.retry.statuses")
                .with_list_parse_key("server.access.allow_cidrs"),
        );
        let settings: Settings = builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Parses settings from TOML text over the built-in defaults (no file or
    /// env layers).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let settings: Settings = config::Config::builder()
            .add_source(builtin())
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that parse but cannot work, naming each key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut bad = Vec::new();
        let mut check = |ok: bool, key: &str, msg: &str| {
            if !ok {
                bad.push((key.to_owned(), msg.to_owned()));
            }
        };
        check(
            self.server.listen.parse::<SocketAddr>().is_ok(),
            "server.listen",
            "must be an address like 0.0.0.0:8080",
        );
        check(
            self.server.max_token_bytes > 0,
            "server.max_token_bytes",
            "must be at least 1",
        );
        check(
            self.server
                .token_pattern
                .as_deref()
                .is_none_or(|p| regex::Regex::new(p).is_ok()),
            "server.token_pattern",
            "is not a valid regex",
        );
        check(
            self.server.request_timeout_ms > 0,
            "server.request_timeout_ms",
            "must be at least 1",
        );
        let u = &self.upstream;
        match url::Url::parse(&u.base_url) {
            Ok(url) => {
                check(
                    matches!(url.scheme(), "http" | "https"),
                    "upstream.base_url",
                    "must be an http:// or https:// URL",
                );
                check(
                    url.query().is_none() && url.fragment().is_none(),
                    "upstream.base_url",
                    "must not have a query or fragment (use upstream.query)",
                );
            }
            Err(_) => check(
                false,
                "upstream.base_url",
                "must be set to the CRM's URL, e.g. https://crm.bank.local/api",
            ),
        }
        check(
            u.path.starts_with('/'),
            "upstream.path",
            "must start with /",
        );
        check(
            u.connect_timeout_ms > 0,
            "upstream.connect_timeout_ms",
            "must be at least 1",
        );
        check(
            u.timeout_ms > 0,
            "upstream.timeout_ms",
            "must be at least 1",
        );
        check(
            u.connect_timeout_ms <= u.timeout_ms,
            "upstream.connect_timeout_ms",
            "must not exceed upstream.timeout_ms",
        );
        check(
            u.max_body_bytes > 0,
            "upstream.max_body_bytes",
            "must be at least 1",
        );
        check(
            u.not_found.statuses.iter().all(|s| (100..=599).contains(s)),
            "upstream.not_found.statuses",
            "must be HTTP statuses (100-599)",
        );
        check(
            u.body.is_none() || u.method != HttpMethod::GET,
            "upstream.body",
            "is not sent with GET: use POST, PUT or PATCH",
        );
        check(
            u.max_in_flight > 0,
            "upstream.max_in_flight",
            "must be at least 1",
        );
        check(
            u.retry.max_attempts > 0,
            "upstream.retry.max_attempts",
            "must be at least 1 (1 = no retries)",
        );
        check(
            (0.0..=1000.0).contains(&u.retry.budget_percent),
            "upstream.retry.budget_percent",
            "must be 0 to 1000",
        );
        check(
            u.breaker.failure_ratio > 0.0 && u.breaker.failure_ratio <= 1.0,
            "upstream.breaker.failure_ratio",
            "must be above 0 and at most 1",
        );
        check(
            u.breaker.min_requests > 0,
            "upstream.breaker.min_requests",
            "must be at least 1",
        );
        check(
            u.breaker.window_ms >= 100,
            "upstream.breaker.window_ms",
            "must be at least 100",
        );
        check(
            (0.0..0.5).contains(&self.cache.ttl_jitter),
            "cache.ttl_jitter",
            "must be at least 0 and below 0.5",
        );
        check(
            self.server.max_connections > 0,
            "server.max_connections",
            "must be at least 1",
        );
        check(
            self.server.tls.cert_file.is_some() == self.server.tls.key_file.is_some(),
            "server.tls.key_file",
            "TLS needs both cert_file and key_file",
        );
        let access = &self.server.access;
        let access_secret = access.secret_env.is_some() || access.secret_file.is_some();
        check(
            (access.kind == AccessKind::None) != access_secret,
            "server.access.secret_env",
            "bearer and basic access need secret_env or secret_file; kind none takes none",
        );
        check(
            access.kind != AccessKind::Basic || access.username.is_some(),
            "server.access.username",
            "basic access needs a username",
        );
        check(
            access
                .allow_cidrs
                .iter()
                .all(|c| c.parse::<ipnet::IpNet>().is_ok()),
            "server.access.allow_cidrs",
            "must be CIDR networks like 10.0.0.0/8 or fd00::/8",
        );
        check(
            self.admin.listen.is_empty() || self.admin.listen.parse::<SocketAddr>().is_ok(),
            "admin.listen",
            "must be empty (off) or an address like 127.0.0.1:9090",
        );
        check(
            self.admin.listen.is_empty()
                || self.admin.token_env.is_some()
                || self.admin.token_file.is_some(),
            "admin.token_env",
            "the admin API needs a token: token_env or token_file",
        );
        check(
            self.redis.url.is_empty()
                || self.cache.hash_key_env.is_some()
                || self.cache.hash_key_file.is_some(),
            "cache.hash_key_env",
            "replicas sharing Redis need the same cache key: set hash_key_env or hash_key_file",
        );
        check(
            self.redis.url.is_empty() || self.redis.timeout_ms > 0,
            "redis.timeout_ms",
            "must be at least 1",
        );
        // A replica may wait lock_ms for another's card, then run the whole
        // pipeline: both must fit in the caller's deadline, or a stale card
        // that could have been served becomes a 504.
        check(
            self.redis.url.is_empty()
                || self.redis.lock_ms + self.upstream.deadline_ms <= self.server.request_timeout_ms,
            "redis.lock_ms",
            "redis.lock_ms + upstream.deadline_ms must not exceed server.request_timeout_ms",
        );
        let users = &self.users_api;
        check(
            !users.enabled || users.api_key_env.is_some() || users.api_key_file.is_some(),
            "users_api.api_key_env",
            "the users API checks the platform's key: set api_key_env or api_key_file",
        );
        check(
            users.max_body_bytes >= 1024,
            "users_api.max_body_bytes",
            "must be at least 1024",
        );
        for (name, op) in [
            ("get", &users.get),
            ("update", &users.update),
            ("otp_request", &users.otp_request),
            ("otp_confirm", &users.otp_confirm),
            ("login", &users.login),
            ("orders", &users.orders),
        ] {
            check(
                !users.enabled || op.path.starts_with('/'),
                &format!("users_api.{name}.path"),
                "must start with /",
            );
        }
        check(
            u.deadline_ms > 0,
            "upstream.deadline_ms",
            "must be at least 1",
        );
        check(u.max_steps > 0, "upstream.max_steps", "must be at least 1");
        check(
            u.max_fan_out > 0,
            "upstream.max_fan_out",
            "must be at least 1",
        );
        check(
            u.max_concurrency > 0,
            "upstream.max_concurrency",
            "must be at least 1",
        );
        check(
            u.tls.client_cert_file.is_some() == u.tls.client_key_file.is_some(),
            "upstream.tls.client_key_file",
            "mutual TLS needs both client_cert_file and client_key_file",
        );
        check(
            self.cache.max_bytes > 0,
            "cache.max_bytes",
            "must be at least 1",
        );
        check(
            self.cache.found_ttl_secs > 0,
            "cache.found_ttl_secs",
            "must be at least 1",
        );
        check(
            !(self.cache.hash_key_env.is_some() && self.cache.hash_key_file.is_some()),
            "cache.hash_key_env",
            "set hash_key_env or hash_key_file, not both",
        );
        let auth = &u.auth;
        let has_secret = auth.secret_env.is_some() || auth.secret_file.is_some();
        check(
            !(auth.secret_env.is_some() && auth.secret_file.is_some()),
            "upstream.auth.secret_env",
            "set secret_env or secret_file, not both",
        );
        match auth.kind {
            AuthKind::None => check(
                !has_secret,
                "upstream.auth.kind",
                "is \"none\" but a secret is configured",
            ),
            AuthKind::Bearer => check(
                has_secret,
                "upstream.auth.secret_env",
                "this auth kind needs secret_env (an env var name) or secret_file (a path)",
            ),
            AuthKind::ApiKey => {
                check(
                    has_secret,
                    "upstream.auth.secret_env",
                    "this auth kind needs secret_env (an env var name) or secret_file (a path)",
                );
                check(
                    !(auth.header.is_some() && auth.query_param.is_some()),
                    "upstream.auth.query_param",
                    "set header or query_param, not both",
                );
            }
            AuthKind::OAuth2 => {
                check(
                    has_secret,
                    "upstream.auth.secret_env",
                    "oauth2 needs the client secret in secret_env or secret_file",
                );
                check(
                    auth.client_id.is_some(),
                    "upstream.auth.client_id",
                    "oauth2 needs a client_id",
                );
                check(
                    auth.token_url
                        .as_deref()
                        .and_then(|u| url::Url::parse(u).ok())
                        .is_some_and(|u| matches!(u.scheme(), "http" | "https")),
                    "upstream.auth.token_url",
                    "oauth2 needs the token endpoint as an http(s) URL",
                );
            }
            AuthKind::Basic => {
                check(
                    has_secret,
                    "upstream.auth.secret_env",
                    "basic auth needs the password in secret_env or secret_file",
                );
                check(
                    auth.username.is_some(),
                    "upstream.auth.username",
                    "basic auth needs a username",
                );
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(bad))
        }
    }
}

/// Reads a secret from the env var named by a `*_env` setting or the file named
/// by a `*_file` setting (trailing newline trimmed). Each argument is
/// (setting key, value); errors name the setting, never the secret.
pub fn read_secret(
    env: (&str, Option<&str>),
    file: (&str, Option<&Path>),
) -> Result<Option<SecretString>, ConfigError> {
    let (key, raw) = match (env, file) {
        ((key, Some(var)), _) => (
            key,
            std::env::var(var).map_err(|_| {
                ConfigError::invalid(key, format!("env var {var} is not set or not UTF-8"))
            })?,
        ),
        (_, (key, Some(path))) => (
            key,
            std::fs::read_to_string(path).map_err(|e| {
                ConfigError::invalid(key, format!("cannot read {}: {e}", path.display()))
            })?,
        ),
        _ => return Ok(None),
    };
    let trimmed = raw.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(ConfigError::invalid(key, "the secret is empty"));
    }
    Ok(Some(SecretString::from(trimmed.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_values_name_their_keys() {
        let err = Settings::from_toml("[upstream]\nbase_url = \"ftp://x\"\ntimeout_ms = 0\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("upstream.base_url: must be an http"), "{msg}");
        assert!(
            msg.contains("upstream.timeout_ms: must be at least 1"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Settings::from_toml("[upstream]\nbase_url = \"http://x\"\ntoken = \"s3cr3t\"\n")
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `token`"), "{msg}");
        assert!(!msg.contains("s3cr3t"), "{msg}");
    }

    #[test]
    fn auth_needs_a_secret_source() {
        let err = Settings::from_toml(
            "[upstream]\nbase_url = \"http://x\"\n[upstream.auth]\nkind = \"bearer\"\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("upstream.auth.secret_env"),
            "{err}"
        );
    }

    #[test]
    fn shipped_default_toml_equals_builtin_defaults() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
                .unwrap();
        let text = format!("{text}\n"); // default.toml leaves base_url unset: it must be given
        let file: Settings = config::Config::builder()
            .add_source(config::File::from_str(&text, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert_eq!(format!("{file:?}"), format!("{:?}", Settings::default()));
    }

    #[test]
    fn query_and_header_names_keep_their_case() {
        let s = Settings::from_toml(
            "[upstream]\nbase_url = \"http://x\"\n[upstream.query]\nsessionId = \"{token}\"\n[upstream.headers]\nX-Source = \"chat\"\n",
        )
        .unwrap();
        assert!(
            s.upstream.query.contains_key("sessionId"),
            "{:?}",
            s.upstream.query
        );
    }
}
