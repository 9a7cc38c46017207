//! `[cache]`: TTLs, grace, stale rules, size and key of the card cache;
//! their typed values and their own checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::de;
use super::validate::Checks;

/// The in-process card cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSettings {
    /// Upper bound of cached response bytes (keys and overhead included).
    pub max_bytes: u64,
    /// How long a found card is served from cache.
    #[serde(rename = "found_ttl_secs", deserialize_with = "de::secs")]
    pub found_ttl: Duration,
    /// How long a "not found" answer is served from cache.
    #[serde(rename = "not_found_ttl_secs", deserialize_with = "de::secs")]
    pub not_found_ttl: Duration,
    /// After its TTL a card is kept this long more, to be served when the CRM
    /// fails (stale-if-error); 0 = off.
    #[serde(rename = "grace_secs", deserialize_with = "de::secs")]
    pub grace: Duration,
    /// Serve a card past its TTL at once and refresh it in the background.
    pub stale_while_revalidate: bool,
    /// With a card in its grace window, wait at most this long for the CRM,
    /// then serve the stale card while the fetch goes on; 0 = wait for the
    /// CRM (up to its timeout).
    #[serde(rename = "stale_after_ms", deserialize_with = "de::millis")]
    pub stale_after: Duration,
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
            found_ttl: Duration::from_secs(300),
            not_found_ttl: Duration::from_secs(30),
            grace: Duration::from_secs(3_600),
            stale_while_revalidate: false,
            stale_after: Duration::from_millis(500),
            ttl_jitter: 0.1,
            hash_key_env: None,
            hash_key_file: None,
        }
    }
}

impl CacheSettings {
    /// The longest a card made under these settings lives: its TTL at the
    /// top of its jitter plus the grace window. The cache drops every entry
    /// at this age; each entry's own, shorter lifetime is checked when it
    /// is read. A "not found" is kept no longer than a card, whatever its
    /// own TTL says: dropped early it only costs one more CRM call, while a
    /// retention stretched to it would keep every card that long.
    pub fn retention(&self) -> Duration {
        self.found_ttl.mul_f64(1.0 + self.ttl_jitter.max(0.0)) + self.grace
    }

    /// The checks of `[cache]` that its types cannot express.
    pub(super) fn validate(&self, c: &mut Checks) {
        c.check(
            (0.0..0.5).contains(&self.ttl_jitter),
            "cache.ttl_jitter",
            "must be at least 0 and below 0.5",
        );
        c.check(self.max_bytes > 0, "cache.max_bytes", "must be at least 1");
        c.check(
            !self.found_ttl.is_zero(),
            "cache.found_ttl_secs",
            "must be at least 1",
        );
        c.check(
            !(self.hash_key_env.is_some() && self.hash_key_file.is_some()),
            "cache.hash_key_env",
            "set hash_key_env or hash_key_file, not both",
        );
    }
}
