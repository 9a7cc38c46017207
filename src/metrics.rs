//! Prometheus metrics through the `metrics` facade. Labels are fixed sets
//! (outcomes, status classes), never tokens or personal data.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process-wide recorder's handle, installing the recorder on first use
/// (the `metrics` facade has one global recorder per process).
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then ours renders empty.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("authbridge_requests_total", "Lookups answered, by outcome");
    describe_counter!(
        "authbridge_upstream_requests_total",
        "CRM requests, by status class or failure"
    );
    describe_counter!("authbridge_cache_hits_total", "Lookups answered from cache");
    describe_counter!("authbridge_cache_misses_total", "Lookups not in cache");
    describe_histogram!(
        "authbridge_request_duration_seconds",
        Unit::Seconds,
        "Lookup latency"
    );
    describe_histogram!(
        "authbridge_upstream_duration_seconds",
        Unit::Seconds,
        "CRM request latency"
    );
    describe_gauge!("authbridge_cache_entries", "Entries in the answer cache");
    describe_gauge!(
        "authbridge_cache_bytes",
        "Bytes charged to the answer cache"
    );
}

/// Handles of the metrics every lookup touches, resolved once. The
/// `counter!` macro builds its key (labels included) and looks it up in the
/// registry on every call; a handle is one atomic add.
pub struct Hot {
    pub found_cached: metrics::Counter,
    pub found: metrics::Counter,
    pub not_found: metrics::Counter,
    pub duration: metrics::Histogram,
    pub cache_hits: metrics::Counter,
    pub cache_misses: metrics::Counter,
}

static HOT: OnceLock<Hot> = OnceLock::new();

/// The hot-path handles (registered with the recorder installed by
/// [`handle`], which the application calls before it serves).
pub fn hot() -> &'static Hot {
    HOT.get_or_init(|| {
        let outcome =
            |o: &'static str| metrics::counter!("authbridge_requests_total", "outcome" => o);
        Hot {
            found_cached: outcome("found_cached"),
            found: outcome("found"),
            not_found: outcome("not_found"),
            duration: metrics::histogram!("authbridge_request_duration_seconds"),
            cache_hits: metrics::counter!("authbridge_cache_hits_total"),
            cache_misses: metrics::counter!("authbridge_cache_misses_total"),
        }
    })
}
