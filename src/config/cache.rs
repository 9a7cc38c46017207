//! `[cache]`: TTLs, grace, stale rules, size and key of the card cache.

use std::path::PathBuf;

use serde::Deserialize;

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
