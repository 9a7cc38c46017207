//! Where a mapping is applied: inline on the request worker when it is
//! cheap for sure, else on a bounded pool of blocking threads.
//!
//! The request workers are one single-threaded runtime per core: an
//! application that computes for 200 ms there would hold every other request
//! of that worker (`/healthz` and `/metrics` included) for as long. Mapping
//! cost is linear in the CRM body and bounded by the budget, but a jq rule
//! can compute for the whole budget on a small body, and a 1 MiB body takes
//! tens of milliseconds. So mappings with a jq rule, and bodies from
//! `mapping.offload_body_bytes`, go to tokio's blocking threads, at most
//! `mapping.pool_threads` at once; the rest (the common small card) stays
//! inline, where a thread hand-off would cost more than the mapping.

use std::sync::{Arc, OnceLock};

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::config::MappingSettings;
use crate::error::LookupError;
use crate::metrics::Metrics;

/// The process's mapping pool.
#[derive(Debug)]
pub struct MappingPool {
    slots: Semaphore,
    offload_bytes: usize,
}

static POOL: OnceLock<Arc<MappingPool>> = OnceLock::new();

impl MappingPool {
    /// The process's pool, made from the first settings given (its size
    /// needs a restart to change).
    pub fn shared(settings: &MappingSettings) -> Arc<Self> {
        POOL.get_or_init(|| {
            let threads = crate::worker::count(settings.pool_threads);
            Arc::new(Self {
                slots: Semaphore::new(threads),
                offload_bytes: settings.offload_body_bytes,
            })
        })
        .clone()
    }

    /// Whether applying a mapping to `crm` leaves the request worker.
    pub fn offloads(&self, uses_jq: bool, crm: &Value) -> bool {
        uses_jq || larger_than(crm, self.offload_bytes)
    }

    /// Runs `f` inline, or on the pool when `offload`, counted in the
    /// caller's `metrics` (the pool is the process's, the count the
    /// application's); a panic in `f` is an internal error of this lookup.
    pub async fn run<T: Send + 'static>(
        &self,
        offload: bool,
        metrics: &Metrics,
        f: impl FnOnce() -> Result<T, LookupError> + Send + 'static,
    ) -> Result<T, LookupError> {
        if !offload {
            return f();
        }
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| LookupError::Internal("the mapping pool is closed".into()))?;
        metrics
            .counter("authbridge_mapping_offloaded_total")
            .increment(1);
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|_| Err(LookupError::Internal("the mapping task failed".into())))
    }
}

/// Whether `v` would serialise to more than `limit` bytes (roughly), looking
/// at no more of it than that: the cost is bounded by the limit, and small
/// bodies are walked in well under a microsecond per KiB.
pub fn larger_than(v: &Value, limit: usize) -> bool {
    fn walk(v: &Value, budget: &mut usize) -> bool {
        let cost = match v {
            Value::Null | Value::Bool(_) => 5,
            Value::Number(_) => 8,
            Value::String(s) => s.len() + 2,
            Value::Array(items) => {
                *budget = budget.saturating_sub(2 + items.len());
                if *budget == 0 {
                    return true;
                }
                return items.iter().any(|i| walk(i, budget));
            }
            Value::Object(map) => {
                *budget = budget.saturating_sub(2);
                for (k, item) in map {
                    *budget = budget.saturating_sub(k.len() + 4);
                    if *budget == 0 || walk(item, budget) {
                        return true;
                    }
                }
                return *budget == 0;
            }
        };
        *budget = budget.saturating_sub(cost);
        *budget == 0
    }
    let mut budget = limit;
    walk(v, &mut budget)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn estimates_the_body_size_with_an_early_exit() {
        let small = json!({"client": {"id": 1, "name": "Anna", "phones": ["+7 999"]}});
        assert!(!larger_than(&small, 1024));
        let big = json!({"items": vec!["x".repeat(100); 1000]});
        assert!(larger_than(&big, 64 * 1024));
        assert!(!larger_than(&big, 200 * 1024));
    }
}
