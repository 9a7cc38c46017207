//! `[redis]`: the optional shared cache level for replicas; its typed values
//! and its own checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::de;
use super::validate::Checks;

/// The optional shared cache level for replicas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://host:port/db`; empty = off.
    pub url: String,
    /// Prefix of authbridge's keys.
    pub key_prefix: String,
    /// Timeout of each Redis call; a slow Redis is skipped, not waited for.
    #[serde(rename = "timeout_ms", deserialize_with = "de::millis")]
    pub timeout: Duration,
    /// How long a replica fetching a card holds the cross-replica lock.
    #[serde(rename = "lock_ms", deserialize_with = "de::millis")]
    pub lock: Duration,
    /// AES-256-GCM key (64 hex digits) for values at rest, from env or file.
    pub encryption_key_env: Option<String>,
    pub encryption_key_file: Option<PathBuf>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: String::new(),
            key_prefix: "authbridge:".into(),
            timeout: Duration::from_millis(50),
            lock: Duration::from_millis(1_000),
            encryption_key_env: None,
            encryption_key_file: None,
        }
    }
}

impl RedisSettings {
    /// Whether the shared level is on.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }

    /// The checks of `[redis]` alone (its fit in the lookup deadline is a
    /// cross-section check).
    pub(super) fn validate(&self, c: &mut Checks) {
        c.check(
            !self.enabled() || !self.timeout.is_zero(),
            "redis.timeout_ms",
            "must be at least 1",
        );
    }
}
