//! Where a mapping is applied: inline on the request worker when it is
//! cheap for sure, else on a bounded pool of blocking threads.
//!
//! The request workers are one single-threaded runtime per core: an
//! application that computes for 200 ms there would hold every other request
//! of that worker (`/healthz` and `/metrics` included) for as long. Mapping
//! cost is linear in the CRM body and bounded by the budget, but a jq rule
//! can compute for the whole budget on a small body, and a 1 MiB body takes
//! tens of milliseconds. So mappings with a jq rule, and bodies from
//! `mapping.offload_body_bytes` (the bytes the transport read, a pipeline's
//! steps counted together: no walk of the parsed JSON to estimate them), go
//! to tokio's blocking threads, at most `mapping.pool_threads` at once; the
//! rest (the common small card) stays inline, where a thread hand-off would
//! cost more than the mapping.

use std::sync::{Arc, OnceLock};

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

    /// Whether applying a mapping to a CRM answer read from `body_bytes`
    /// bytes of bodies leaves the request worker.
    pub fn offloads(&self, uses_jq: bool, body_bytes: usize) -> bool {
        uses_jq || body_bytes >= self.offload_bytes
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
