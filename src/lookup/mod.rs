//! One lookup: cache, then a coalesced CRM fetch, mapping and serialisation,
//! with stale cards as a fallback when the CRM fails.
//!
//! A known customer whose card is past its TTL but inside its grace window
//! waits for the CRM at most `cache.stale_after_ms`, then gets the stale
//! card while the fetch goes on.
//!
//! Concurrent misses for one key share one fetch. The fetch runs in its own
//! task, so it finishes (and fills the cache) even when every caller that
//! asked for it has hung up; later callers then hit the cache instead of
//! starting the same CRM call again.
//!
//! What a lookup runs with (mapping, pipeline, TTLs, token limits) is an
//! [`Engine`], swapped atomically on reload: a lookup uses one engine from
//! start to end, and cards made by an older mapping are never served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use serde_json::Value;
use tracing::Instrument as _;

use crate::error::LookupError;
use crate::lookup::cache::{
    Answer, AnswerCache, CacheKey, CachePolicy, Entry, KeyBuildHasher, KeyHasher,
};
use crate::lookup::hot_set::{HotSet, TokenKey};
use crate::lookup::shared_cache::{Lock, SharedCache};
use crate::metrics::Metrics;
use crate::telemetry::{otel, record};
use crate::upstream::{Crm, Fetched, Pipeline, Transport};

pub mod cache;
pub mod hot_set;
pub mod shared_cache;

/// Turns the CRM's JSON into the bytes a front sends: its mapping, its
/// protocol adjustments and its typed schema check. One per front.
pub trait CardProducer: Send + Sync + 'static {
    /// The serialised card for one CRM payload.
    fn produce(&self, crm: &Value) -> Result<Vec<u8>, LookupError>;

    /// Whether the mapping has a jq rule (see [`crate::mapping_pool`]).
    fn uses_jq(&self) -> bool {
        false
    }
}

/// Per-request limits of a front.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_token_bytes: usize,
    pub request_timeout: Duration,
    pub token_pattern: Option<regex::Regex>,
}

/// Everything a lookup runs with that a reload may change.
pub struct Engine {
    pub producer: Arc<dyn CardProducer>,
    /// Where the mapping runs (see [`crate::mapping_pool`]).
    pub pool: Arc<crate::mapping_pool::MappingPool>,
    pub pipeline: Pipeline,
    pub policy: CachePolicy,
    pub limits: Limits,
    /// Identifies the mapping (file text and protocol options): a new value
    /// makes every cached card a miss.
    pub mapping_digest: [u8; 32],
    /// The mapping file, for stats.
    pub mapping_file: String,
    /// Bumped when a swap changes the mapping; cards carry the generation of
    /// the engine that made them, read from that same engine.
    pub generation: u64,
}

type InFlight = Shared<BoxFuture<'static, Result<Answer, LookupError>>>;

/// Where an answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A fresh cache entry.
    Cache,
    /// The CRM, just now.
    Crm,
    /// A cache entry past its TTL, because the CRM failed.
    StaleIfError,
    /// A cache entry past its TTL, because the CRM took longer than
    /// `cache.stale_after_ms`; the fetch goes on and refreshes the cache.
    StaleIfSlow,
    /// A cache entry past its TTL, refreshed in the background.
    StaleWhileRevalidate,
}

impl Source {
    /// The cache state the request's record reports (the access log's
    /// `cache` field and the span's `authbridge.cache`).
    pub fn label(self) -> &'static str {
        match self {
            Source::Cache => "hit",
            Source::Crm => "miss",
            Source::StaleIfError => "stale_if_error",
            Source::StaleIfSlow => "stale_if_slow",
            Source::StaleWhileRevalidate => "stale_while_revalidate",
        }
    }
}

/// The lookup service of one front.
#[derive(Clone)]
pub struct Lookup {
    inner: Arc<Inner>,
}

struct Inner {
    namespace: &'static str,
    hasher: KeyHasher,
    cache: AnswerCache,
    transport: Arc<Transport>,
    engine: ArcSwap<Engine>,
    /// The workers' own copies of fresh answers; advanced after every drop
    /// from `cache`.
    hot: HotSet,
    shared: Option<SharedCache>,
    in_flight: Mutex<HashMap<CacheKey, InFlight, KeyBuildHasher>>,
    /// The application's registry (its hot handles resolved there).
    metrics: Metrics,
}

impl Lookup {
    /// A lookup service; `namespace` separates this front's cache keys. It
    /// records into the transport's registry: one per application.
    pub fn new(
        namespace: &'static str,
        hasher: KeyHasher,
        cache: AnswerCache,
        transport: Arc<Transport>,
        engine: Engine,
        shared: Option<SharedCache>,
    ) -> Self {
        let metrics = transport.metrics().clone();
        Self {
            inner: Arc::new(Inner {
                namespace,
                hasher,
                cache,
                transport,
                engine: ArcSwap::from_pointee(engine),
                hot: HotSet::default(),
                shared,
                in_flight: Mutex::new(HashMap::with_hasher(KeyBuildHasher)),
                metrics,
            }),
        }
    }

    /// The cache, for stats.
    pub fn cache(&self) -> &AnswerCache {
        &self.inner.cache
    }

    /// The application's registry.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The CRM transport, for stats.
    pub fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// The current engine.
    pub fn engine(&self) -> Arc<Engine> {
        self.inner.engine.load_full()
    }

    /// The current engine, borrowed: unlike [`Self::engine`], taking it
    /// writes no reference count that every worker shares (arc-swap marks
    /// it in this thread's own slot), so a cache hit stays off shared lines.
    pub fn engine_ref(&self) -> arc_swap::Guard<Arc<Engine>> {
        self.inner.engine.load()
    }

    /// The mapping generation cached cards must carry.
    pub fn generation(&self) -> u64 {
        self.inner.engine.load().generation
    }

    /// Installs a new engine. A different mapping drops every cached card:
    /// cards made by the old engine keep its generation and are ignored.
    pub fn swap_engine(&self, mut engine: Engine) -> bool {
        let old = self.inner.engine.load();
        let mapping_changed = old.mapping_digest != engine.mapping_digest;
        engine.generation = old.generation + u64::from(mapping_changed);
        self.inner.engine.store(Arc::new(engine));
        if mapping_changed {
            self.clear_memory();
        }
        mapping_changed
    }

    /// Drops every cached answer, in memory and in the shared level.
    pub async fn purge_all(&self) {
        self.clear_memory();
        if let Some(shared) = &self.inner.shared {
            shared.clear().await;
        }
    }

    /// Drops the cached answer for `token`; true if there was one.
    pub async fn purge(&self, token: &str) -> bool {
        let key = self.inner.hasher.key(self.inner.namespace, token);
        if let Some(shared) = &self.inner.shared {
            shared.remove(&key).await;
        }
        let removed = self.inner.cache.remove(&key).await;
        // After the removal: a worker that read the entry before keeps it
        // under the old epoch, never served.
        self.inner.hot.advance();
        removed
    }

    /// Drops every answer held in this process.
    fn clear_memory(&self) {
        self.inner.cache.clear();
        self.inner.hot.advance();
    }

    /// The answer for `token`, from cache or from the CRM.
    pub async fn get(&self, token: &str) -> Result<(Answer, Source), LookupError> {
        let engine = self.engine_ref();
        self.get_with(&engine, token, Instant::now()).await
    }

    /// As [`get`](Self::get), with the engine the caller already holds, so
    /// the whole lookup (limits, cache generation, TTLs, the fetch itself)
    /// runs with one engine. A fresh hit (fresh at `now`, when the request
    /// came) returns at once, from this worker's own copy when it has one
    /// ([`hot_set`]); everything slower (the shared level, the CRM) is
    /// bounded by the engine's request timeout.
    pub async fn get_with(
        &self,
        engine: &Arc<Engine>,
        token: &str,
        now: Instant,
    ) -> Result<(Answer, Source), LookupError> {
        let hot = &self.inner.hot;
        let kept_as = TokenKey::of(token);
        let epoch = hot.epoch();
        if let Some(answer) = hot.get(kept_as, engine.generation, epoch, now) {
            self.fresh_hit();
            return Ok((answer, Source::Cache));
        }
        let key = self.inner.hasher.key(self.inner.namespace, token);
        let cached = self
            .inner
            .cache
            .get(&key)
            .await
            .filter(|e| e.generation == engine.generation);
        if let Some(entry) = &cached
            && now < entry.fresh_until
        {
            hot.keep(kept_as, entry, epoch, now);
            self.fresh_hit();
            return Ok((entry.answer.clone(), Source::Cache));
        }
        let deadline = engine.limits.request_timeout;
        let resolved = tokio::time::timeout(deadline, self.resolve(engine, key, token, cached))
            .await
            .unwrap_or(Err(LookupError::Deadline));
        // Past a fresh hit, a failure is a miss that found nothing to serve.
        record::cache(
            resolved
                .as_ref()
                .map_or("miss", |(_, source)| source.label()),
        );
        resolved
    }

    fn fresh_hit(&self) {
        self.inner.metrics.hot().cache_hits.increment(1);
        record::cache(Source::Cache.label());
    }

    /// A lookup that is not a fresh hit: the shared level, a stale entry's
    /// rules, or the CRM.
    async fn resolve(
        &self,
        engine: &Arc<Engine>,
        key: CacheKey,
        token: &str,
        mut cached: Option<Entry>,
    ) -> Result<(Answer, Source), LookupError> {
        let generation = engine.generation;
        if cached.is_none()
            && let Some(shared) = &self.inner.shared
        {
            cached = shared.get(&key, &engine.mapping_digest, generation).await;
            if let Some(entry) = &cached {
                self.inner
                    .metrics
                    .counter("authbridge_cache_shared_hits_total")
                    .increment(1);
                self.inner.cache.insert(key, entry.clone()).await;
            }
        }
        let metrics = &self.inner.metrics;
        let hot = metrics.hot();
        let Some(entry) = cached else {
            hot.cache_misses.increment(1);
            return self
                .fetch(engine, key, token)
                .await
                .map(|a| (a, Source::Crm));
        };
        if entry.is_fresh() {
            hot.cache_hits.increment(1);
            return Ok((entry.answer, Source::Cache));
        }
        // Past its TTL, inside its grace window (only cards have one).
        if matches!(entry.answer, Answer::NotFound) {
            hot.cache_misses.increment(1);
            return self
                .fetch(engine, key, token)
                .await
                .map(|a| (a, Source::Crm));
        }
        if engine.policy.stale_while_revalidate {
            metrics
                .counter_with("authbridge_stale_served_total", &[("reason", "revalidate")])
                .increment(1);
            metrics.counter("authbridge_refreshes_total").increment(1);
            // Joins the refresh already running for this key, if any.
            drop(self.start_fetch(engine, key, token));
            return Ok((entry.answer, Source::StaleWhileRevalidate));
        }
        hot.cache_misses.increment(1);
        let fetch = self.fetch(engine, key, token);
        let fetched = match engine.policy.stale_after {
            // The fetch is its own task: given up on here, it still
            // finishes and refreshes the cache.
            Some(wait) => match tokio::time::timeout(wait, fetch).await {
                Ok(fetched) => fetched,
                Err(_) => {
                    metrics
                        .counter_with("authbridge_stale_served_total", &[("reason", "slow")])
                        .increment(1);
                    return Ok((entry.answer, Source::StaleIfSlow));
                }
            },
            None => fetch.await,
        };
        match fetched {
            Ok(answer) => Ok((answer, Source::Crm)),
            Err(LookupError::Upstream(e)) if e.is_crm_failure() => {
                metrics
                    .counter_with("authbridge_stale_served_total", &[("reason", "error")])
                    .increment(1);
                tracing::info!(kind = e.label(), "CRM failed: serving a stale card");
                Ok((entry.answer, Source::StaleIfError))
            }
            Err(e) => Err(e),
        }
    }

    async fn fetch(
        &self,
        engine: &Arc<Engine>,
        key: CacheKey,
        token: &str,
    ) -> Result<Answer, LookupError> {
        self.start_fetch(engine, key, token).await
    }

    /// The shared fetch for `key`: the running one, or a new one.
    fn start_fetch(&self, engine: &Arc<Engine>, key: CacheKey, token: &str) -> InFlight {
        let mut in_flight = self.inner.in_flight.lock().expect("in-flight map lock");
        in_flight
            .entry(key)
            .or_insert_with(|| self.spawn_fetch(engine.clone(), key, token.to_owned()))
            .clone()
    }

    fn spawn_fetch(&self, engine: Arc<Engine>, key: CacheKey, token: String) -> InFlight {
        let inner = Arc::clone(&self.inner);
        // The fetch works for the request that started it: its CRM calls
        // count in that request's record, and its span is a child of that
        // request's in the trace, without holding the request's span open
        // when the caller stops waiting (a stale answer, a hang-up).
        let record = record::current();
        let span = tracing::debug_span!(parent: None, "crm.fetch", otel.name = "crm fetch");
        otel::follow_current(&span);
        let task = tokio::spawn(record::Scoped::new(
            record,
            async move {
                // Whatever happens (a panic included), the in-flight entry goes.
                let guard = InFlightGuard {
                    inner: Arc::clone(&inner),
                    key,
                };
                let generation = engine.generation;
                // Another replica may be fetching this card: wait for it a moment.
                let mut held = None;
                if let Some(shared) = &inner.shared {
                    match shared.lock(&key).await {
                        Lock::Held(token) => held = Some(token),
                        Lock::Busy => {
                            if let Some(entry) = shared
                                .wait_for(&key, &engine.mapping_digest, generation)
                                .await
                            {
                                inner.cache.insert(key, entry.clone()).await;
                                drop(guard);
                                return Ok(entry.answer);
                            }
                        }
                        Lock::Unavailable => {}
                    }
                }
                let result = inner.fetch(&engine, &token).await;
                if let Err(e) = &result {
                    // Logged once per fetch, however many callers wait for it.
                    tracing::warn!(error = %e, outcome = e.outcome(), "CRM lookup failed");
                }
                if let Ok(answer) = &result
                    && let Some(entry) = engine.policy.entry(answer.clone(), generation)
                {
                    if let Some(shared) = &inner.shared {
                        shared.put(&key, &entry, &engine.mapping_digest).await;
                    }
                    inner.cache.insert(key, entry).await;
                }
                if let (Some(shared), Some(token)) = (&inner.shared, &held) {
                    shared.unlock(&key, token).await;
                }
                // Removed only after the cache holds the answer, so a caller that
                // misses the cache from now on finds either this entry or the card.
                drop(guard);
                result
            }
            .instrument(span),
        ));
        async move {
            task.await
                .unwrap_or_else(|_| Err(LookupError::Internal("the CRM fetch task failed".into())))
        }
        .boxed()
        .shared()
    }
}

/// Removes a fetch's in-flight entry when the fetch ends, however it ends.
struct InFlightGuard {
    inner: Arc<Inner>,
    key: CacheKey,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut in_flight) = self.inner.in_flight.lock() {
            in_flight.remove(&self.key);
        }
    }
}

impl Inner {
    async fn fetch(&self, engine: &Engine, token: &str) -> Result<Answer, LookupError> {
        match engine.pipeline.run(&self.transport, token).await? {
            Fetched::NotFound => Ok(Answer::NotFound),
            Fetched::Found(Crm {
                json: crm,
                body_bytes,
            }) => {
                let offload = engine.pool.offloads(engine.producer.uses_jq(), body_bytes);
                let producer = Arc::clone(&engine.producer);
                let card = engine
                    .pool
                    .run(offload, &self.metrics, move || producer.produce(&crm))
                    .await?;
                Ok(Answer::Card(Bytes::from(card)))
            }
        }
    }
}
