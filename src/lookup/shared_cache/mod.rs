//! The optional second cache level, shared by replicas: Redis, behind the
//! in-process moka cache and in front of the CRM. One server, a master found
//! through Redis Sentinel, or a Redis Cluster (see [`link`]).
//!
//! Keys are the same keyed token hashes as moka's (so replicas need the same
//! `cache.hash_key`), under the prefix of their key space: each front (and
//! each cached users-API call) has its own ([`SharedCache::scoped`]).
//! Values carry their freshness as absolute time and the mapping digest,
//! and keep their TTL in Redis (`PX`). With an encryption key they are
//! sealed (see [`seal`]): personal data at rest.
//!
//! Redis is a helper, never a dependency: every call has a short timeout, and
//! after a failure Redis is skipped for a second, so an outage (or a
//! failover) costs at most one timeout per second and lookups go on from
//! moka and the CRM. Replicas coalesce misses best-effort with a short
//! `SET NX` lock.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::config::{ConfigError, NodeAddr, RedisSettings};
use crate::lookup::cache::{Answer, CacheKey, Entry};
use crate::metrics::Metrics;
use credentials::{Auth, Connect};
use link::Link;
use seal::Sealer;

mod background;
mod cluster;
mod credentials;
mod link;
mod seal;
mod sentinel;

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

/// The Redis cache level of one key space; its clones and scopes share one
/// connection and one back-off.
#[derive(Clone)]
pub struct SharedCache {
    core: Arc<Core>,
    /// `redis.key_prefix`, then the key space's name for all but the first.
    prefix: Arc<str>,
}

/// What every key space of the application shares.
struct Core {
    link: Link,
    key_prefix: String,
    timeout: Duration,
    lock: Duration,
    sealer: Sealer,
    down_until: std::sync::Mutex<Option<Instant>>,
    /// Where Redis errors are counted.
    metrics: Metrics,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether `rest` (a key name after a scope's prefix) is one of that scope's
/// own keys: a value (64 hex digits) or its lock, not another scope's key
/// that merely shares the prefix.
fn own_key(rest: &str) -> bool {
    let hash = rest.strip_prefix("lock:").unwrap_or(rest);
    hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

impl SharedCache {
    /// The shared cache of `s` (the Auth API's key space, directly under
    /// `redis.key_prefix`), or `None` when Redis is off; its errors are
    /// counted in `metrics`. Does not connect: Redis may come up after
    /// authbridge.
    pub fn new(s: &RedisSettings, metrics: &Metrics) -> Result<Option<Self>, ConfigError> {
        let Some(topology) = s.topology() else {
            return Ok(None);
        };
        let connect = Connect {
            auth: Auth::from_settings(s)?,
            timeout: s.timeout,
            // Finding a master or a slot map may take longer than one call; a
            // connect gets the back-off's second, when Redis is skipped anyway.
            bound: BACK_OFF.max(s.timeout),
        };
        let link = Link::new(topology, &connect)?;
        Ok(Some(Self {
            core: Arc::new(Core {
                link,
                key_prefix: s.key_prefix.clone(),
                timeout: s.timeout,
                lock: s.lock,
                sealer: Sealer::from_settings(s)?,
                down_until: std::sync::Mutex::new(None),
                metrics: metrics.clone(),
            }),
            prefix: s.key_prefix.as_str().into(),
        }))
    }

    /// The same Redis for another key space, `redis.key_prefix` + `space` +
    /// `:`, sharing this one's connection and back-off.
    pub fn scoped(&self, space: &str) -> Self {
        Self {
            core: Arc::clone(&self.core),
            prefix: format!("{}{space}:", self.core.key_prefix).into(),
        }
    }

    fn name(&self, key: &CacheKey) -> String {
        format!("{}{}", self.prefix, hex::encode(key))
    }

    /// Runs one command with the timeout; `None` (and a back-off) on failure.
    async fn run<T: redis::FromRedisValue>(&self, op: &'static str, cmd: redis::Cmd) -> Option<T> {
        self.run_on(op, None, cmd).await
    }

    /// As [`run`](Self::run), on `node` of a cluster.
    async fn run_on<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        node: Option<&NodeAddr>,
        cmd: redis::Cmd,
    ) -> Option<T> {
        let core = &*self.core;
        if core.is_down() {
            return None;
        }
        match tokio::time::timeout(core.timeout, core.link.query_on(node, &cmd)).await {
            Ok(Ok(v)) => Some(v),
            _ => {
                core.link.failed();
                core.failed(op);
                None
            }
        }
    }

    /// The entry for `key` made by the mapping `digest`, fresh or stale.
    pub async fn get(&self, key: &CacheKey, digest: &[u8; 32], generation: u64) -> Option<Entry> {
        let name = self.name(key);
        let stored: Option<Vec<u8>> = self
            .run("get", redis::cmd("GET").arg(&name).clone())
            .await?;
        let plain = self.core.sealer.open(&name, &stored?)?;
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
        let Some(value) = self.core.sealer.seal(&name, plain) else {
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
        let ms = self.core.lock.as_millis() as u64;
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

    /// Drops every entry and lock of this key space (admin purge-all),
    /// scanning in batches, on every master of a cluster (a `SCAN` sees one
    /// node); best effort like every Redis call.
    pub async fn clear(&self) {
        let Some(nodes) = self.nodes().await else {
            return;
        };
        for node in &nodes {
            if !self.clear_on(node.as_ref()).await {
                return;
            }
        }
    }

    /// The nodes to scan, `None` standing for the one node; `None` overall
    /// when Redis is not answering.
    async fn nodes(&self) -> Option<Vec<Option<NodeAddr>>> {
        let core = &*self.core;
        if core.is_down() {
            return None;
        }
        match tokio::time::timeout(core.timeout, core.link.scan_nodes()).await {
            Ok(Ok(nodes)) => Some(nodes),
            _ => {
                core.failed("scan");
                None
            }
        }
    }

    /// Clears this key space's keys on `node`; false if Redis failed.
    async fn clear_on(&self, node: Option<&NodeAddr>) -> bool {
        let pattern = format!("{}*", self.prefix);
        let mut cursor: u64 = 0;
        loop {
            let scan = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(500)
                .clone();
            let Some((next, mut keys)) =
                self.run_on::<(u64, Vec<String>)>("scan", node, scan).await
            else {
                return false;
            };
            // Other key spaces may share the prefix (`authbridge:` holds
            // `authbridge:users-api:…`): only this one's keys go.
            keys.retain(|k| k.strip_prefix(&*self.prefix).is_some_and(own_key));
            // A cluster client splits a many-key DEL by slot.
            if !keys.is_empty()
                && self
                    .run::<i64>("del", redis::cmd("DEL").arg(keys).clone())
                    .await
                    .is_none()
            {
                return false;
            }
            if next == 0 {
                return true;
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
        let deadline = Instant::now() + self.core.lock;
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

impl Core {
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
}

#[cfg(test)]
mod tests {
    use super::own_key;

    #[test]
    fn a_scope_clears_its_values_and_locks_and_not_a_longer_scopes_keys() {
        let hash = "ab".repeat(32);
        assert!(own_key(&hash));
        assert!(own_key(&format!("lock:{hash}")));
        assert!(!own_key(&format!("users-api:{hash}")));
        assert!(!own_key(&format!("users-api:lock:{hash}")));
        assert!(!own_key("lock:"));
    }
}
