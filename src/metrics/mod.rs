//! One application's Prometheus metrics: its own registry, rendered by its own
//! `/metrics`. Labels are fixed sets (outcomes, status classes, configured
//! step names), never tokens or personal data.
//!
//! Not the `metrics` facade's process-global recorder: two applications in
//! one process (the integration tests run dozens at once) would count into
//! one registry and read each other's numbers. So the application builds a
//! [`Metrics`] and hands a clone to each component that records (the lookup,
//! the CRM transport and its breaker, the server, the fronts); nothing
//! records through the facade's macros (`clippy.toml` forbids them).
//!
//! What every lookup records is resolved once per application ([`Hot`]): a
//! handle is one atomic add, where a lookup by name hashes the key (labels
//! included) and searches the registry. Rarer events look their series up
//! when they happen, as the facade's macros do; the per-lookup ones are
//! kept per worker ([`sharded`]) and summed when `/metrics` renders.

use std::sync::{Arc, OnceLock};

pub mod sharded;

use metrics::{Counter, Gauge, Histogram, IntoLabels, Key, KeyName, Metadata, Recorder, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use sharded::{ShardedCounter, ShardedHistogram};

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Where a series was registered from; the Prometheus recorder ignores it.
const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// An application's registry and its pre-resolved handles; cloning shares
/// them.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    hot: OnceLock<Hot>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// An empty registry with the HELP texts and latency buckets.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("bucket list is not empty")
            .build_recorder();
        describe(&recorder);
        Self {
            inner: Arc::new(Inner {
                recorder,
                hot: OnceLock::new(),
            }),
        }
    }

    /// The registry in Prometheus' text format, the per-worker series
    /// summed into it.
    pub fn render(&self) -> String {
        let hot = self.inner.hot.get();
        if let Some(hot) = hot {
            for counter in [
                &hot.found_cached,
                &hot.found,
                &hot.not_found,
                &hot.cache_hits,
                &hot.cache_misses,
            ] {
                counter.publish();
            }
        }
        let mut text = self.inner.recorder.handle().render();
        if let Some(hot) = hot {
            if !text.is_empty() && !text.ends_with("\n\n") {
                text.push('\n');
            }
            hot.duration.render(&mut text);
        }
        text
    }

    /// The handles every lookup touches, registered on first use (so they
    /// appear in `/metrics` once the first lookup ran, as they always did).
    pub fn hot(&self) -> &Hot {
        self.inner.hot.get_or_init(|| {
            let outcome = |o: &'static str| {
                ShardedCounter::new(
                    self.counter_with("authbridge_requests_total", &[("outcome", o)]),
                )
            };
            Hot {
                found_cached: outcome("found_cached"),
                found: outcome("found"),
                not_found: outcome("not_found"),
                duration: ShardedHistogram::new(
                    "authbridge_request_duration_seconds",
                    "Lookup latency",
                    LATENCY_BUCKETS,
                ),
                cache_hits: ShardedCounter::new(self.counter("authbridge_cache_hits_total")),
                cache_misses: ShardedCounter::new(self.counter("authbridge_cache_misses_total")),
            }
        })
    }

    /// The unlabelled counter `name`, looked up now (for rare events).
    pub fn counter(&self, name: &'static str) -> Counter {
        self.register(name, &NO_LABELS, PrometheusRecorder::register_counter)
    }

    /// The counter `name` with `labels`, looked up now (for rare events).
    pub fn counter_with(&self, name: &'static str, labels: impl IntoLabels) -> Counter {
        self.register(name, labels, PrometheusRecorder::register_counter)
    }

    /// The unlabelled gauge `name`, looked up now.
    pub fn gauge(&self, name: &'static str) -> Gauge {
        self.register(name, &NO_LABELS, PrometheusRecorder::register_gauge)
    }

    /// The unlabelled histogram `name`, looked up now.
    pub fn histogram(&self, name: &'static str) -> Histogram {
        self.register(name, &NO_LABELS, PrometheusRecorder::register_histogram)
    }

    /// The histogram `name` with `labels`, looked up now.
    pub fn histogram_with(&self, name: &'static str, labels: impl IntoLabels) -> Histogram {
        self.register(name, labels, PrometheusRecorder::register_histogram)
    }

    /// The one way a series is looked up: its key from `name` and `labels`,
    /// handed to the recorder's `register_*` of its kind.
    fn register<T>(
        &self,
        name: &'static str,
        labels: impl IntoLabels,
        register: impl FnOnce(&PrometheusRecorder, &Key, &Metadata<'static>) -> T,
    ) -> T {
        register(
            &self.inner.recorder,
            &Key::from_parts(name, labels),
            &METADATA,
        )
    }
}

/// The labels of an unlabelled series.
const NO_LABELS: [(&str, &str); 0] = [];

/// The HELP texts (and the unit of the latency histograms).
fn describe(recorder: &PrometheusRecorder) {
    let counter = |name, help| {
        recorder.describe_counter(KeyName::from_const_str(name), None, help);
    };
    counter(
        "authbridge_requests_total",
        "Lookups answered, by outcome".into(),
    );
    counter(
        "authbridge_upstream_requests_total",
        "CRM requests, by status class or failure".into(),
    );
    counter(
        "authbridge_cache_hits_total",
        "Lookups answered from cache".into(),
    );
    counter(
        "authbridge_cache_misses_total",
        "Lookups not in cache".into(),
    );
    let histogram = |name, help: &'static str| {
        recorder.describe_histogram(
            KeyName::from_const_str(name),
            Some(Unit::Seconds),
            help.into(),
        );
    };
    // authbridge_request_duration_seconds is rendered by `Hot` itself.
    histogram(
        "authbridge_upstream_duration_seconds",
        "CRM request latency",
    );
    let gauge = |name, help: &'static str| {
        recorder.describe_gauge(KeyName::from_const_str(name), None, help.into());
    };
    gauge("authbridge_cache_entries", "Entries in the answer cache");
    gauge(
        "authbridge_cache_bytes",
        "Bytes charged to the answer cache",
    );
}

/// The series every lookup touches, resolved once per application and
/// counted per worker: an add on the worker's own cache line.
pub struct Hot {
    pub found_cached: ShardedCounter,
    pub found: ShardedCounter,
    pub not_found: ShardedCounter,
    /// `authbridge_request_duration_seconds`.
    pub duration: ShardedHistogram,
    pub cache_hits: ShardedCounter,
    pub cache_misses: ShardedCounter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_registries_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.hot().found.increment(2);
        a.hot().duration.record(std::time::Duration::from_millis(2));
        a.counter_with("authbridge_shed_total", &[("reason", "rate_limited")])
            .increment(1);
        let text = a.render();
        assert!(
            text.contains("authbridge_requests_total{outcome=\"found\"} 2"),
            "{text}"
        );
        assert!(text.contains("# HELP authbridge_requests_total Lookups answered, by outcome"));
        assert!(text.contains("authbridge_shed_total{reason=\"rate_limited\"} 1"));
        assert!(text.contains("\n\n# HELP authbridge_request_duration_seconds Lookup latency\n"));
        assert!(text.contains("authbridge_request_duration_seconds_bucket{le=\"0.0025\"} 1\n"));
        assert!(text.contains("authbridge_request_duration_seconds_count 1\n"));
        assert!(!b.render().contains("authbridge_"), "{}", b.render());
    }
}
