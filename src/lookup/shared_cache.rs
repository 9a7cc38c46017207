//! The optional second cache level, shared by replicas: Redis, behind the
//! in-process moka cache and in front of the CRM.
//!
//! Keys are the same keyed token hashes as moka's (so replicas need the same
//! `cache.hash_key`); values carry their freshness as absolute time and the
//! mapping digest, and keep their TTL in Redis (`PX`). With an encryption key
//! they are sealed with AES-256-GCM (the key name as associated data, so a
//! value cannot be replayed under another key): personal data at rest.
//!
//! Redis is a helper, never a dependency: every call has a short timeout, and
//! after a failure Redis is skipped for a second, so an outage costs at most
//! one timeout per second and lookups go on from moka and the CRM. Replicas
//! coalesce misses best-effort with a short `SET NX` lock.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use bytes::Bytes;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret;

use crate::config::{ConfigError, RedisSettings, read_secret};
use crate::lookup::cache::{Answer, CacheKey, Entry};
use crate::metrics::Metrics;

const FORMAT: u8 = 1;
/// How long Redis is left alone after a failed call.
const BACK_OFF: Duration = Duration::from_secs(1);

/// The outcome of [`SharedCache::lock`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lock {
    /// This replica fetches; release with this token.
    Held(String),
    /// Another replica is fetching.
    Busy,
    /// Redis is not answering: fetch without coordination.
    Unavailable,
}

/// The Redis cache level.
pub struct SharedCache {
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    prefix: String,
    timeout: Duration,
    lock: Duration,
    cipher: Option<Aes256Gcm>,
    down_until: std::sync::Mutex<Option<Instant>>,
    /// Where Redis errors are counted.
    metrics: Metrics,
}

fn invalid(key: &str, msg: &str) -> ConfigError {
    ConfigError::Invalid(vec![(key.to_owned(), msg.to_owned())])
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl SharedCache {
    /// The shared cache of `s`, or `None` when `redis.url` is empty; its
    /// errors are counted in `metrics`. Does not connect: Redis may come up
    /// after authbridge.
    pub fn new(s: &RedisSettings, metrics: &Metrics) -> Result<Option<Self>, ConfigError> {
        if !s.enabled() {
            return Ok(None);
        }
        let client = redis::Client::open(s.url.as_str())
            .map_err(|_| invalid("redis.url", "is not a redis:// URL"))?;
        let key = read_secret(
            ("redis.encryption_key_env", s.encryption_key_env.as_deref()),
            (
                "redis.encryption_key_file",
                s.encryption_key_file.as_deref(),
            ),
        )?;
        let cipher = match key {
            None => None,
            Some(key) => {
                let bytes = hex::decode(key.expose_secret().trim()).map_err(|_| {
                    invalid(
                        "redis.encryption_key_env",
                        "must be 64 hex digits (32 bytes)",
                    )
                })?;
                if bytes.len() != 32 {
                    return Err(invalid(
                        "redis.encryption_key_env",
                        "must be 64 hex digits (32 bytes)",
                    ));
                }
                Some(
                    Aes256Gcm::new_from_slice(&bytes)
                        .map_err(|_| invalid("redis.encryption_key_env", "bad key"))?,
                )
            }
        };
        Ok(Some(Self {
            client,
            connection: tokio::sync::Mutex::new(None),
            prefix: s.key_prefix.clone(),
            timeout: s.timeout,
            lock: s.lock,
            cipher,
            down_until: std::sync::Mutex::new(None),
            metrics: metrics.clone(),
        }))
    }

    fn name(&self, key: &CacheKey) -> String {
        format!("{}{}", self.prefix, hex::encode(key))
    }

    fn is_down(&self) -> bool {
        let mut down = self.down_until.lock().expect("redis state lock");
        match *down {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *down = None;
                false
            }
            None => false,
        }
    }

    fn failed(&self, op: &'static str) {
        self.metrics
            .counter_with("authbridge_redis_errors_total", &[("op", op)])
            .increment(1);
        let mut down = self.down_until.lock().expect("redis state lock");
        if down.is_none() {
            tracing::warn!(
                op,
                "Redis unavailable: using the in-process cache only for a while"
            );
        }
        *down = Some(Instant::now() + BACK_OFF);
    }

    /// Runs one command with the timeout; `None` (and a back-off) on failure.
    async fn run<T: redis::FromRedisValue>(&self, op: &'static str, cmd: redis::Cmd) -> Option<T> {
        if self.is_down() {
            return None;
        }
        let result = tokio::time::timeout(self.timeout, async {
            let mut slot = self.connection.lock().await;
            if slot.is_none() {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                *slot = Some(
                    self.client
                        .get_connection_manager_with_config(config)
                        .await?,
                );
            }
            let mut conn = slot.clone().expect("connected above");
            drop(slot);
            cmd.query_async::<T>(&mut conn).await
        })
        .await;
        match result {
            Ok(Ok(v)) => Some(v),
            _ => {
                self.failed(op);
                None
            }
        }
    }

    fn seal(&self, name: &str, plain: Vec<u8>) -> Option<Vec<u8>> {
        let Some(cipher) = &self.cipher else {
            return Some(plain);
        };
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).ok()?;
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: name.as_bytes(),
                },
            )
            .ok()?;
        Some([nonce.as_slice(), &sealed].concat())
    }

    fn open(&self, name: &str, stored: &[u8]) -> Option<Vec<u8>> {
        let Some(cipher) = &self.cipher else {
            return Some(stored.to_vec());
        };
        let (nonce, sealed) = stored.split_at_checked(12)?;
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .ok()
    }

    /// The entry for `key` made by the mapping `digest`, fresh or stale.
    pub async fn get(&self, key: &CacheKey, digest: &[u8; 32], generation: u64) -> Option<Entry> {
        let name = self.name(key);
        let stored: Option<Vec<u8>> = self
            .run("get", redis::cmd("GET").arg(&name).clone())
            .await?;
        let plain = self.open(&name, &stored?)?;
        let (header, payload) = plain.split_at_checked(18)?;
        if header[0] != FORMAT || header[10..18] != digest[..8] {
            return None;
        }
        let fresh_until_ms = u64::from_be_bytes(header[2..10].try_into().ok()?);
        let answer = match header[1] {
            1 => Answer::Card(Bytes::copy_from_slice(payload)),
            _ => Answer::NotFound,
        };
        let fresh_for = Duration::from_millis(fresh_until_ms.saturating_sub(now_ms()));
        // -2 (gone) or -1 (no TTL): not an entry we can trust.
        let ttl: i64 = self
            .run("pttl", redis::cmd("PTTL").arg(&name).clone())
            .await?;
        let ttl = u64::try_from(ttl).ok().filter(|t| *t > 0)?;
        Some(Entry::restored(
            answer,
            fresh_for,
            Duration::from_millis(ttl),
            generation,
        ))
    }

    /// Stores `entry` for the rest of its lifetime.
    pub async fn put(&self, key: &CacheKey, entry: &Entry, digest: &[u8; 32]) {
        let name = self.name(key);
        let (kind, payload): (u8, &[u8]) = match &entry.answer {
            Answer::Card(b) => (1, b),
            Answer::NotFound => (0, &[]),
        };
        let fresh_until = now_ms()
            + entry
                .fresh_until
                .saturating_duration_since(Instant::now())
                .as_millis() as u64;
        let mut plain = Vec::with_capacity(18 + payload.len());
        plain.push(FORMAT);
        plain.push(kind);
        plain.extend_from_slice(&fresh_until.to_be_bytes());
        plain.extend_from_slice(&digest[..8]);
        plain.extend_from_slice(payload);
        let Some(value) = self.seal(&name, plain) else {
            return;
        };
        let ms = entry.remaining_lifetime().as_millis().max(1) as u64;
        let _: Option<()> = self
            .run(
                "set",
                redis::cmd("SET")
                    .arg(&name)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .clone(),
            )
            .await;
    }

    /// Tries to become the replica that fetches `key` (best effort).
    pub async fn lock(&self, key: &CacheKey) -> Lock {
        let name = format!("{}lock:{}", self.prefix, hex::encode(key));
        let mut token = [0u8; 16];
        if getrandom::fill(&mut token).is_err() {
            return Lock::Unavailable;
        }
        let token = hex::encode(token);
        let ms = self.lock.as_millis() as u64;
        let reply: Option<Option<String>> = self
            .run(
                "lock",
                redis::cmd("SET")
                    .arg(&name)
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .clone(),
            )
            .await;
        match reply {
            Some(Some(_)) => Lock::Held(token),
            Some(None) => Lock::Busy,
            None => Lock::Unavailable,
        }
    }

    /// Releases a lock this replica holds, and only that one: if it expired
    /// and another replica took it, theirs stays (compare-and-delete).
    pub async fn unlock(&self, key: &CacheKey, token: &str) {
        const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";
        let name = format!("{}lock:{}", self.prefix, hex::encode(key));
        let _: Option<i64> = self
            .run(
                "unlock",
                redis::cmd("EVAL")
                    .arg(RELEASE)
                    .arg(1)
                    .arg(name)
                    .arg(token)
                    .clone(),
            )
            .await;
    }

    /// Drops every entry under the prefix (admin purge-all), scanning in
    /// batches; best effort like every Redis call.
    pub async fn clear(&self) {
        let mut cursor: u64 = 0;
        loop {
            let reply: Option<(u64, Vec<String>)> = self
                .run(
                    "scan",
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(format!("{}*", self.prefix))
                        .arg("COUNT")
                        .arg(500)
                        .clone(),
                )
                .await;
            let Some((next, keys)) = reply else { return };
            if !keys.is_empty() {
                let _: Option<i64> = self.run("del", redis::cmd("DEL").arg(keys).clone()).await;
            }
            if next == 0 {
                return;
            }
            cursor = next;
        }
    }

    /// Waits (polling, up to the lock time) for another replica's fetch of `key`.
    pub async fn wait_for(
        &self,
        key: &CacheKey,
        digest: &[u8; 32],
        generation: u64,
    ) -> Option<Entry> {
        let deadline = Instant::now() + self.lock;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if let Some(e) = self.get(key, digest, generation).await
                && e.is_fresh()
            {
                return Some(e);
            }
        }
        None
    }

    /// Drops `key`'s entry.
    pub async fn remove(&self, key: &CacheKey) {
        let _: Option<i64> = self
            .run("del", redis::cmd("DEL").arg(self.name(key)).clone())
            .await;
    }
}
