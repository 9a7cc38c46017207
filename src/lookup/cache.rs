//! The answer cache: moka, keyed by an HMAC of the token, holding finished
//! response bytes so a hit does no JSON work.
//!
//! Found cards and "not found" answers live for different TTLs; errors are never
//! stored. Capacity is bounded in bytes through a weigher, not in entries,
//! because cards differ in size by two orders of magnitude.
//!
//! A large cache is split into shards of at most [`SHARD_BYTES`], each its
//! own moka cache. moka's hash table marks removed entries as tombstones
//! and, once a segment holds enough of them, copies the whole segment to a
//! new table, on the request whose write tipped it. A full cache removes
//! an entry for each one it takes in, so that copy comes every few seconds,
//! and its length grows with the segment: with 1 GiB in one moka cache
//! (~480,000 cards, 64 segments) lookups of a full cache took over 1 ms
//! ~150 times per 250,000 and up to 5 ms, stalling every request on that
//! worker; in 64 MiB shards none did (`cargo bench --bench cache_churn`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;

use crate::config::{CacheSettings, ConfigError, read_secret};

/// A cache key: HMAC-SHA256 of the front's namespace and the token.
pub type CacheKey = [u8; 32];

/// Hashes a [`CacheKey`] by taking its first eight bytes. The key is already
/// a keyed MAC, uniform and unpredictable without the secret, so hashing it
/// again (SipHash, on every probe) buys no spread and no flood resistance.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyBuildHasher;

/// The hasher of [`KeyBuildHasher`].
#[derive(Debug, Default)]
pub struct KeyHash(u64);

impl std::hash::Hasher for KeyHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Length prefixes and short writes fold in too, so any key type works.
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
    }
}

impl std::hash::BuildHasher for KeyBuildHasher {
    type Hasher = KeyHash;

    fn build_hasher(&self) -> KeyHash {
        KeyHash(0)
    }
}

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

/// A cached answer with its freshness.
#[derive(Debug, Clone)]
pub struct Entry {
    pub answer: Answer,
    /// Served as a hit until then; afterwards only as a stale fallback.
    pub fresh_until: Instant,
    /// The mapping generation that made it; another generation is a miss.
    pub generation: u64,
    /// The stale window after `fresh_until`.
    grace: Duration,
}

impl Entry {
    /// True while the entry may be served as a plain hit.
    pub fn is_fresh(&self) -> bool {
        Instant::now() < self.fresh_until
    }

    /// The end of its grace window: afterwards it is as good as gone, though
    /// the cache may hold it a while longer.
    fn ends_at(&self) -> Instant {
        self.fresh_until + self.grace
    }

    fn is_alive(&self) -> bool {
        Instant::now() < self.ends_at()
    }

    /// An entry read back from the shared cache: fresh for `fresh_for`,
    /// kept for `lifetime`.
    pub fn restored(
        answer: Answer,
        fresh_for: Duration,
        lifetime: Duration,
        generation: u64,
    ) -> Self {
        Self {
            answer,
            fresh_until: Instant::now() + fresh_for,
            generation,
            grace: lifetime.saturating_sub(fresh_for),
        }
    }

    /// How much longer the entry is kept (for the shared cache's TTL).
    pub fn remaining_lifetime(&self) -> Duration {
        self.ends_at().saturating_duration_since(Instant::now())
    }
}

/// How long answers live: reloadable, so it is applied per entry.
#[derive(Debug, Clone)]
pub struct CachePolicy {
    pub found_ttl: Duration,
    pub not_found_ttl: Duration,
    pub grace: Duration,
    pub jitter: f64,
    pub stale_while_revalidate: bool,
    /// How long a lookup with a stale card waits for the CRM (`None`: up
    /// to the CRM's timeout).
    pub stale_after: Option<Duration>,
}

impl CachePolicy {
    /// The policy of `s`.
    pub fn new(s: &CacheSettings) -> Self {
        Self {
            found_ttl: s.found_ttl,
            not_found_ttl: s.not_found_ttl,
            grace: s.grace,
            jitter: s.ttl_jitter,
            stale_while_revalidate: s.stale_while_revalidate,
            stale_after: (!s.stale_after.is_zero()).then_some(s.stale_after),
        }
    }

    /// The entry for a fresh answer, or `None` when it is not to be cached.
    pub fn entry(&self, answer: Answer, generation: u64) -> Option<Entry> {
        let (ttl, grace) = match answer {
            Answer::Card(_) => (self.found_ttl, self.grace),
            // A "not found" may turn into a client any moment: no grace.
            Answer::NotFound => (self.not_found_ttl, Duration::ZERO),
        };
        if ttl.is_zero() {
            return None;
        }
        // Spread expiries (±jitter) so entries made together don't expire together.
        let factor = 1.0 + self.jitter * (fastrand::f64() * 2.0 - 1.0);
        let ttl = ttl.mul_f64(factor.max(0.0));
        Some(Entry {
            answer,
            fresh_until: Instant::now() + ttl,
            generation,
            grace,
        })
    }
}

/// Bytes an entry is charged: the body plus the measured per-entry overhead
/// (key, entry, moka's bookkeeping: `cargo bench --bench memory` measured
/// 2,210–2,237 bytes of RSS per 1507-byte card), so `max_bytes` bounds real
/// memory.
pub fn weight(value: &Entry) -> u32 {
    const OVERHEAD: usize = 736;
    let body = match &value.answer {
        Answer::Card(b) => b.len(),
        Answer::NotFound => 0,
    };
    u32::try_from(body + OVERHEAD).unwrap_or(u32::MAX)
}

/// The most one shard of the cache holds; see the module doc.
pub const SHARD_BYTES: u64 = 64 * 1024 * 1024;

/// The most shards: an empty moka cache costs ~32 KB, so 1,024 of them
/// (64 GiB and more) cost ~32 MB; past that, shards grow beyond
/// [`SHARD_BYTES`] rather than their number without bound.
const MAX_SHARDS: u64 = 1024;

type Shard = moka::future::Cache<CacheKey, Entry, KeyBuildHasher>;

/// The answer cache.
#[derive(Clone)]
pub struct AnswerCache {
    shards: Arc<[Shard]>,
}

impl AnswerCache {
    /// A cache bounded by `s.max_bytes`, whose entries leave at the
    /// settings' [`retention`](CacheSettings::retention).
    ///
    /// One time-to-live for all, not moka's per-entry expiry: moka keeps
    /// per-entry expiries in a timer wheel and, each time its clock passes a
    /// wheel's tick, moves that whole slot (every entry due in the same
    /// minute) in one maintenance run, on whichever request's worker ran
    /// it: ~30 ms every second with 8,000 entries a second expiring in a
    /// micro-benchmark, and proportionally more for the default hour-long
    /// lifetimes. A single time-to-live is kept in write order and expired
    /// in bounded batches. Each entry's own lifetime (shorter TTLs, a
    /// reload that shortened them) is checked on read.
    pub fn new(s: &CacheSettings) -> Self {
        let count = s.max_bytes.div_ceil(SHARD_BYTES).clamp(1, MAX_SHARDS);
        let each = s.max_bytes.div_ceil(count);
        let shards = (0..count)
            .map(|_| {
                moka::future::Cache::builder()
                    .max_capacity(each)
                    .weigher(|_k, v| weight(v))
                    .time_to_live(s.retention().max(Duration::from_secs(1)))
                    .build_with_hasher(KeyBuildHasher)
            })
            .collect();
        Self { shards }
    }

    /// How many moka caches hold the entries.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard that holds `key`: chosen by the key's last eight bytes,
    /// as moka places entries by the first eight ([`KeyBuildHasher`]); both
    /// are uniform, the key being a MAC.
    fn shard(&self, key: &CacheKey) -> &Shard {
        let (_, tail) = key.split_last_chunk::<8>().expect("a key has 32 bytes");
        let n = u64::from_le_bytes(*tail) % self.shards.len() as u64;
        &self.shards[n as usize]
    }

    /// The entry for `key`, fresh or stale (within its grace window).
    pub async fn get(&self, key: &CacheKey) -> Option<Entry> {
        self.shard(key).get(key).await.filter(Entry::is_alive)
    }

    /// Stores an entry.
    pub async fn insert(&self, key: CacheKey, entry: Entry) {
        self.shard(&key).insert(key, entry).await;
    }

    /// Drops one entry; true if there was one. Only through `Lookup`, which
    /// then makes the workers' copies of it unservable.
    pub(super) async fn remove(&self, key: &CacheKey) -> bool {
        self.shard(key).remove(key).await.is_some()
    }

    /// Drops every entry. Only through `Lookup`, as `remove`.
    pub(super) fn clear(&self) {
        for shard in self.shards.iter() {
            shard.invalidate_all();
        }
    }

    /// Applies moka's pending evictions and expirations so the counts below
    /// are current (called before reporting them).
    pub async fn sync(&self) {
        for shard in self.shards.iter() {
            shard.run_pending_tasks().await;
        }
    }

    /// Entries currently held (approximate, as moka counts lazily).
    pub fn entry_count(&self) -> u64 {
        self.shards.iter().map(Shard::entry_count).sum()
    }

    /// Bytes currently charged (approximate).
    pub fn weighted_size(&self) -> u64 {
        self.shards.iter().map(Shard::weighted_size).sum()
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

    /// The cache keeps everything for its one retention; an entry past its
    /// own lifetime is not served even while the cache still holds it.
    #[tokio::test]
    async fn entries_are_not_read_past_their_own_lifetime() {
        let cache = AnswerCache::new(&CacheSettings::default());
        let card = || Answer::Card(Bytes::from_static(b"{}"));
        let (short, long) = ([1; 32], [2; 32]);
        let hour = Duration::from_secs(3_600);
        cache
            .insert(
                short,
                Entry::restored(card(), Duration::ZERO, Duration::from_millis(1), 0),
            )
            .await;
        cache
            .insert(long, Entry::restored(card(), Duration::ZERO, hour, 0))
            .await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(cache.get(&short).await.is_none(), "past its lifetime");
        let kept = cache.get(&long).await.expect("in its grace window");
        assert!(!kept.is_fresh());
        assert_eq!(
            CacheSettings::default().retention(),
            Duration::from_secs(330 + 3_600)
        );
    }

    /// A cache over one shard's bound is split; each shard takes its share
    /// of the keys and serves them back, and the counts add up.
    #[tokio::test]
    async fn a_large_cache_is_split_and_every_shard_serves() {
        assert_eq!(
            AnswerCache::new(&CacheSettings::default()).shard_count(),
            1,
            "the default 64 MiB is one shard"
        );
        let cache = AnswerCache::new(&CacheSettings {
            max_bytes: 1 << 30,
            ..Default::default()
        });
        assert_eq!(cache.shard_count(), 16);
        let unbounded = AnswerCache::new(&CacheSettings {
            max_bytes: u64::MAX,
            ..Default::default()
        });
        assert_eq!(
            unbounded.shard_count(),
            1024,
            "the number of shards is capped"
        );
        let hasher = KeyHasher::new(b"0123456789abcdef");
        let keys: Vec<CacheKey> = (0..200)
            .map(|i| hasher.key("auth", &i.to_string()))
            .collect();
        for key in &keys {
            let entry = Entry::restored(
                Answer::Card(Bytes::from_static(b"{}")),
                Duration::from_secs(60),
                Duration::from_secs(60),
                0,
            );
            cache.insert(*key, entry).await;
        }
        for key in &keys {
            assert!(cache.get(key).await.is_some());
        }
        cache.sync().await;
        assert_eq!(cache.entry_count(), 200);
        assert!(cache.shards.iter().all(|s| s.entry_count() > 0));
        assert_eq!(cache.weighted_size(), 200 * (2 + 736));
    }

    #[test]
    fn policy_jitters_ttls_and_gives_only_cards_grace() {
        let policy = CachePolicy::new(&CacheSettings {
            found_ttl: Duration::from_secs(100),
            not_found_ttl: Duration::ZERO,
            grace: Duration::from_secs(50),
            ttl_jitter: 0.1,
            ..Default::default()
        });
        assert!(
            policy.entry(Answer::NotFound, 0).is_none(),
            "not-found TTL 0: not cached"
        );
        let lifetimes: Vec<Duration> = (0..50)
            .map(|_| {
                policy
                    .entry(Answer::Card(Bytes::from_static(b"{}")), 0)
                    .unwrap()
                    .remaining_lifetime()
            })
            .collect();
        assert!(
            lifetimes
                .iter()
                .all(|l| *l >= Duration::from_secs(139) && *l <= Duration::from_secs(160))
        );
        assert!(lifetimes.iter().any(|l| *l != lifetimes[0]), "jittered");
    }
}
