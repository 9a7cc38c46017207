//! The answer cache: moka, keyed by an HMAC of the token, holding finished
//! response bytes so a hit does no JSON work.
//!
//! Found cards and "not found" answers live for different TTLs; errors are never
//! stored. Capacity is bounded in bytes through a weigher, not in entries,
//! because cards differ in size by two orders of magnitude.

use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use moka::Expiry;
use secrecy::ExposeSecret;

use crate::config::{CacheSettings, ConfigError, read_secret};

/// A cache key: HMAC-SHA256 of the front's namespace and the token.
pub type CacheKey = [u8; 32];

/// A cached answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The serialised card.
    Card(Bytes),
    /// The CRM does not know the token.
    NotFound,
}

/// Keyed hashing of tokens, so the cache (and anything that sees its keys)
/// never holds a raw token and a key cannot be computed without the secret.
#[derive(Clone)]
pub struct KeyHasher {
    mac: hmac::Hmac<sha2::Sha256>,
}

impl std::fmt::Debug for KeyHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyHasher([REDACTED])")
    }
}

impl KeyHasher {
    /// A hasher with `key`.
    pub fn new(key: &[u8]) -> Self {
        Self {
            mac: hmac::Hmac::new_from_slice(key).expect("HMAC accepts any key length"),
        }
    }

    /// A hasher with a random per-process key.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        Self::new(&key)
    }

    /// From settings: the configured key, or a random one.
    pub fn from_settings(s: &CacheSettings) -> Result<Self, ConfigError> {
        let key = read_secret(
            ("cache.hash_key_env", s.hash_key_env.as_deref()),
            ("cache.hash_key_file", s.hash_key_file.as_deref()),
        )?;
        match key {
            Some(key) if key.expose_secret().len() < 16 => Err(ConfigError::Invalid(vec![(
                "cache.hash_key_env".into(),
                "the cache hash key must be at least 16 bytes".into(),
            )])),
            Some(key) => Ok(Self::new(key.expose_secret().as_bytes())),
            None => Ok(Self::random()),
        }
    }

    /// The key for `token` in the key space `namespace`.
    pub fn key(&self, namespace: &str, token: &str) -> CacheKey {
        let mut mac = self.mac.clone();
        mac.update(namespace.as_bytes());
        mac.update(&[0]);
        mac.update(token.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

struct PerOutcomeTtl {
    found: Duration,
    not_found: Duration,
}

impl Expiry<CacheKey, Answer> for PerOutcomeTtl {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Answer,
        _now: Instant,
    ) -> Option<Duration> {
        Some(match value {
            Answer::Card(_) => self.found,
            Answer::NotFound => self.not_found,
        })
    }
}

/// Bytes an entry is charged: the body, the key and moka's per-entry overhead
/// (an estimate; it keeps `max_bytes` an honest bound on memory).
fn weight(value: &Answer) -> u32 {
    const OVERHEAD: usize = 32 + 96;
    let body = match value {
        Answer::Card(b) => b.len(),
        Answer::NotFound => 0,
    };
    u32::try_from(body + OVERHEAD).unwrap_or(u32::MAX)
}

/// The answer cache.
#[derive(Clone)]
pub struct AnswerCache {
    inner: moka::future::Cache<CacheKey, Answer>,
    cache_not_found: bool,
}

impl AnswerCache {
    /// A cache bounded and timed as configured.
    pub fn new(s: &CacheSettings) -> Self {
        let inner = moka::future::Cache::builder()
            .max_capacity(s.max_bytes)
            .weigher(|_k, v| weight(v))
            .expire_after(PerOutcomeTtl {
                found: Duration::from_secs(s.found_ttl_secs),
                not_found: Duration::from_secs(s.not_found_ttl_secs),
            })
            .build();
        Self {
            inner,
            cache_not_found: s.not_found_ttl_secs > 0,
        }
    }

    /// The cached answer for `key`, if fresh.
    pub async fn get(&self, key: &CacheKey) -> Option<Answer> {
        self.inner.get(key).await
    }

    /// Stores an answer (a "not found" only when its TTL is not zero).
    pub async fn insert(&self, key: CacheKey, answer: Answer) {
        if matches!(answer, Answer::NotFound) && !self.cache_not_found {
            return;
        }
        self.inner.insert(key, answer).await;
    }

    /// Applies moka's pending evictions and expirations so the counts below
    /// are current (called before reporting them).
    pub async fn sync(&self) {
        self.inner.run_pending_tasks().await;
    }

    /// Entries currently held (approximate, as moka counts lazily).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Bytes currently charged (approximate).
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_secret_namespace_and_token() {
        let a = KeyHasher::new(b"0123456789abcdef");
        let b = KeyHasher::new(b"fedcba9876543210");
        assert_eq!(a.key("auth", "t"), a.key("auth", "t"));
        assert_ne!(a.key("auth", "t"), b.key("auth", "t"));
        assert_ne!(a.key("auth", "t"), a.key("users", "t"));
        assert_ne!(a.key("auth", "t1"), a.key("auth", "t2"));
        assert!(!format!("{a:?}").contains("0123"));
    }

    #[tokio::test]
    async fn not_found_is_not_stored_with_zero_ttl() {
        let cache = AnswerCache::new(&CacheSettings {
            not_found_ttl_secs: 0,
            ..Default::default()
        });
        cache.insert([1; 32], Answer::NotFound).await;
        assert_eq!(cache.get(&[1; 32]).await, None);
        cache
            .insert([2; 32], Answer::Card(Bytes::from_static(b"{}")))
            .await;
        assert!(cache.get(&[2; 32]).await.is_some());
    }
}
