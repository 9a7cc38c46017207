//! One lookup: cache, then a coalesced CRM fetch, mapping and serialisation.
//!
//! Concurrent misses for one key share one fetch. The fetch runs in its own
//! task, so it finishes (and fills the cache) even when every caller that
//! asked for it has hung up; later callers then hit the cache instead of
//! starting the same CRM call again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use serde_json::Value;

use crate::cache::{Answer, AnswerCache, CacheKey, KeyHasher};
use crate::error::LookupError;
use crate::upstream::{Fetched, UpstreamClient};

/// Turns the CRM's JSON into the bytes a front sends: its mapping, its
/// protocol adjustments and its typed schema check. One per front.
pub trait CardProducer: Send + Sync + 'static {
    /// The serialised card for one CRM payload.
    fn produce(&self, crm: &Value) -> Result<Vec<u8>, LookupError>;
}

type InFlight = Shared<BoxFuture<'static, Result<Answer, LookupError>>>;

/// Whether an answer came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    Crm,
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
    upstream: UpstreamClient,
    producer: Arc<dyn CardProducer>,
    in_flight: Mutex<HashMap<CacheKey, InFlight>>,
}

impl Lookup {
    /// A lookup service; `namespace` separates this front's cache keys.
    pub fn new(
        namespace: &'static str,
        hasher: KeyHasher,
        cache: AnswerCache,
        upstream: UpstreamClient,
        producer: Arc<dyn CardProducer>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                namespace,
                hasher,
                cache,
                upstream,
                producer,
                in_flight: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The cache, for stats.
    pub fn cache(&self) -> &AnswerCache {
        &self.inner.cache
    }

    /// The answer for `token`, from cache or from the CRM.
    pub async fn get(&self, token: &str) -> Result<(Answer, Source), LookupError> {
        let key = self.inner.hasher.key(self.inner.namespace, token);
        if let Some(answer) = self.inner.cache.get(&key).await {
            metrics::counter!("authbridge_cache_hits_total").increment(1);
            return Ok((answer, Source::Cache));
        }
        metrics::counter!("authbridge_cache_misses_total").increment(1);
        let fetch = {
            let mut in_flight = self.inner.in_flight.lock().expect("in-flight map lock");
            in_flight
                .entry(key)
                .or_insert_with(|| self.spawn_fetch(key, token.to_owned()))
                .clone()
        };
        fetch.await.map(|a| (a, Source::Crm))
    }

    fn spawn_fetch(&self, key: CacheKey, token: String) -> InFlight {
        let inner = Arc::clone(&self.inner);
        let task = tokio::spawn(async move {
            let result = inner.fetch(&token).await;
            if let Ok(answer) = &result {
                inner.cache.insert(key, answer.clone()).await;
            }
            // Removed only after the cache holds the answer, so a caller that
            // misses the cache from now on finds either this entry or the card.
            inner
                .in_flight
                .lock()
                .expect("in-flight map lock")
                .remove(&key);
            result
        });
        async move {
            task.await
                .unwrap_or_else(|_| Err(LookupError::Internal("the CRM fetch task failed".into())))
        }
        .boxed()
        .shared()
    }
}

impl Inner {
    async fn fetch(&self, token: &str) -> Result<Answer, LookupError> {
        match self.upstream.fetch(token).await? {
            Fetched::NotFound => Ok(Answer::NotFound),
            Fetched::Found(crm) => Ok(Answer::Card(Bytes::from(self.producer.produce(&crm)?))),
        }
    }
}
