//! `[redis]`: the optional shared cache level for replicas.

use std::path::PathBuf;

use serde::Deserialize;

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
