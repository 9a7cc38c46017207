//! `[server]` (listener, limits, TLS, inbound access), `[admin]` and
//! `[reload]`.

use std::path::PathBuf;

use serde::Deserialize;

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
