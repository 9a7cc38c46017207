//! `[mapping]`: the budget of applying a mapping, and where it runs.

use std::time::Duration;

use serde::Deserialize;

use super::de;

/// The budget of applying a mapping to one CRM answer (both fronts), and
/// where big applications run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MappingSettings {
    /// Evaluation steps at most (fields, list items, lookup hops, jq steps).
    pub max_steps: u64,
    /// Wall time at most (`max_ms`).
    #[serde(rename = "max_ms", deserialize_with = "de::millis")]
    pub max_time: Duration,
    /// Longest array or object a jq rule may build.
    pub max_jq_items: usize,
    /// Longest string a jq rule may build, in bytes.
    pub max_jq_string_bytes: usize,
    /// CRM bodies from this size (a pipeline's steps counted together), and
    /// every mapping with a jq rule, are mapped on a separate pool of
    /// threads, off the request workers.
    pub offload_body_bytes: usize,
    /// Threads of that pool (0 = one per CPU); it also bounds how many such
    /// applications run at once.
    pub pool_threads: usize,
}

impl Default for MappingSettings {
    fn default() -> Self {
        Self {
            max_steps: 2_000_000,
            max_time: Duration::from_millis(1_000),
            max_jq_items: 100_000,
            max_jq_string_bytes: 1 << 20,
            offload_body_bytes: 64 * 1024,
            pool_threads: 0,
        }
    }
}

impl MappingSettings {
    /// The budget of one application.
    pub fn budget(&self) -> crate::mapping::budget::Budget {
        crate::mapping::budget::Budget {
            max_steps: self.max_steps,
            max_time: self.max_time,
            max_items: self.max_jq_items,
            max_string_bytes: self.max_jq_string_bytes,
        }
    }
}
