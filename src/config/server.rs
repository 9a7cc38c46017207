//! `[server]` (listener, limits, TLS, inbound access), `[admin]` and
//! `[reload]`: their typed values and their own checks.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use regex::Regex;
use serde::Deserialize;

use super::de;
use super::validate::Checks;

/// The HTTP listener and per-request limits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address to listen on.
    #[serde(deserialize_with = "de::listen")]
    pub listen: SocketAddr,
    /// Longest accepted token, in bytes after percent-decoding.
    pub max_token_bytes: usize,
    /// Deadline for one lookup, CRM call included; past it the caller gets 504.
    #[serde(rename = "request_timeout_ms", deserialize_with = "de::millis")]
    pub request_timeout: Duration,
    /// A regex every token must match (e.g. `^[A-Za-z0-9_-]+$`); others get 400.
    #[serde(deserialize_with = "de::regex")]
    pub token_pattern: Option<Regex>,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers, counted from the
    /// connection's accept (a socket that never sends a byte is cut too) and
    /// again from the end of each answer on a kept-alive connection.
    #[serde(rename = "header_read_timeout_ms", deserialize_with = "de::millis")]
    pub header_read_timeout: Duration,
    /// On SIGTERM, `/readyz` answers 503 at once while everything is still
    /// served for this long (load balancers stop routing here), then the
    /// listener closes and in-flight requests drain.
    #[serde(rename = "shutdown_delay_ms", deserialize_with = "de::millis")]
    pub shutdown_delay: Duration,
    /// Longest wait for in-flight requests after the listener closes.
    #[serde(rename = "drain_timeout_ms", deserialize_with = "de::millis")]
    pub drain_timeout: Duration,
    /// Accept loops, each on its own single-threaded runtime and its own
    /// `SO_REUSEPORT` socket, so a request, its CRM call and its answer stay
    /// on one thread (nginx's worker model); 0 = one per CPU.
    pub workers: usize,
    /// Whether each worker thread is bound to a CPU of its own (nginx's
    /// `worker_cpu_affinity auto`): see [`PinWorkers`].
    #[serde(deserialize_with = "de::choice")]
    pub pin_workers: PinWorkers,
    /// Load balancers and reverse proxies (CIDR) whose forwarding header is
    /// believed: a request from one of them is attributed to the client the
    /// header names (see `app::client_addr`); empty = the TCP peer always.
    #[serde(deserialize_with = "de::cidrs")]
    pub trusted_proxies: Vec<IpNet>,
    /// The header those proxies write; only this one is read.
    #[serde(deserialize_with = "de::choice")]
    pub client_ip_header: ClientIpHeader,
    pub tls: ServerTlsSettings,
    pub access: AccessSettings,
}

/// Whether the workers are bound to CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinWorkers {
    /// Bound when the process may run on exactly as many CPUs as there are
    /// workers (a dedicated cpuset, or a whole machine at one worker per
    /// CPU): each then has one, and two workers never queue for the same
    /// CPU while another idles. A worker count below the CPU set (a CPU
    /// quota, an explicit `workers`) is left to the kernel.
    Auto,
    /// Worker `n` bound to the `n`-th allowed CPU (round robin).
    On,
    /// Never bound: the kernel places the workers (the default; on a
    /// machine shared with other busy processes, binding measured no
    /// better, see the README's "Workers").
    #[default]
    Off,
}

/// The forwarding header trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

impl ClientIpHeader {
    /// The header's name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            ClientIpHeader::XForwardedFor => "x-forwarded-for",
            ClientIpHeader::Forwarded => "forwarded",
        }
    }
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
    #[serde(deserialize_with = "de::choice")]
    pub kind: AccessKind,
    /// User name for `basic`.
    pub username: Option<String>,
    pub secret_env: Option<String>,
    pub secret_file: Option<PathBuf>,
    /// Networks allowed to call (CIDR, e.g. `10.0.0.0/8`); empty = any.
    #[serde(deserialize_with = "de::cidrs")]
    pub allow_cidrs: Vec<IpNet>,
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
    /// Address of the admin API; empty (`None`) = off.
    #[serde(deserialize_with = "de::listen_or_off")]
    pub listen: Option<SocketAddr>,
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
    #[serde(rename = "debounce_ms", deserialize_with = "de::millis")]
    pub debounce: Duration,
}

impl Default for ReloadSettings {
    fn default() -> Self {
        Self {
            watch_files: true,
            debounce: Duration::from_millis(2_000),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)),
            max_token_bytes: 512,
            request_timeout: Duration::from_millis(5_000),
            token_pattern: None,
            max_connections: 10_000,
            header_read_timeout: Duration::from_millis(5_000),
            shutdown_delay: Duration::from_millis(5_000),
            drain_timeout: Duration::from_millis(10_000),
            workers: 0,
            pin_workers: PinWorkers::default(),
            trusted_proxies: Vec::new(),
            client_ip_header: ClientIpHeader::default(),
            tls: ServerTlsSettings::default(),
            access: AccessSettings::default(),
        }
    }
}

impl ServerSettings {
    /// The checks of `[server]` that its types cannot express.
    pub(super) fn validate(&self, c: &mut Checks) {
        c.check(
            self.max_token_bytes > 0,
            "server.max_token_bytes",
            "must be at least 1",
        );
        c.check(
            !self.request_timeout.is_zero(),
            "server.request_timeout_ms",
            "must be at least 1",
        );
        c.check(
            self.max_connections > 0,
            "server.max_connections",
            "must be at least 1",
        );
        c.check(
            self.tls.cert_file.is_some() == self.tls.key_file.is_some(),
            "server.tls.key_file",
            "TLS needs both cert_file and key_file",
        );
        // A proxy network of every address would let any client name the
        // address it is seen with (and escape the allowlist and the rate
        // limit).
        c.check(
            self.trusted_proxies.iter().all(|net| net.prefix_len() > 0),
            "server.trusted_proxies",
            "a /0 network trusts every client to name its own address; list the proxies' networks",
        );
        self.access.validate(c);
    }
}

impl AccessSettings {
    fn validate(&self, c: &mut Checks) {
        let has_secret = self.secret_env.is_some() || self.secret_file.is_some();
        c.check(
            (self.kind == AccessKind::None) != has_secret,
            "server.access.secret_env",
            "bearer and basic access need secret_env or secret_file; kind none takes none",
        );
        c.check(
            self.kind != AccessKind::Basic || self.username.is_some(),
            "server.access.username",
            "basic access needs a username",
        );
    }
}

impl AdminSettings {
    /// The admin API needs its token once it listens.
    pub(super) fn validate(&self, c: &mut Checks) {
        c.check(
            self.listen.is_none() || self.token_env.is_some() || self.token_file.is_some(),
            "admin.token_env",
            "the admin API needs a token: token_env or token_file",
        );
    }
}
