//! The counters and the latency histogram every lookup updates, kept per
//! worker so that two workers never write the same cache line.
//!
//! A registry handle is one atomic add, but on a line that every worker
//! writes: under load the line moves between cores on each request (the
//! `found_cached` counter, the cache-hit counter and the latency histogram
//! made three such moves per hit). Here each worker adds to its own slot
//! ([`crate::worker::current`]); `/metrics` sums the slots when it renders,
//! so a scrape sees every request counted up to that moment.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics::Counter;

/// Slots per series: worker `n` writes slot `n % SLOTS` (0 is every thread
/// that is not a worker). More workers than slots share slots, correctly.
const SLOTS: usize = 16;

/// One slot on a cache line of its own (128 bytes: adjacent-line
/// prefetching pairs 64-byte lines).
#[derive(Default)]
#[repr(align(128))]
struct Slot(AtomicU64);

fn slot() -> usize {
    crate::worker::current() % SLOTS
}

/// A counter series of the registry, counted in per-worker slots and
/// published to the registry when it renders.
pub struct ShardedCounter {
    slots: Box<[Slot; SLOTS]>,
    registry: Counter,
}

impl ShardedCounter {
    pub(super) fn new(registry: Counter) -> Self {
        Self {
            slots: Box::default(),
            registry,
        }
    }

    /// Adds `n` in this worker's slot.
    pub fn increment(&self, n: u64) {
        self.slots[slot()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The sum of the slots.
    pub fn get(&self) -> u64 {
        self.slots.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }

    /// Sets the registry's series to the sum (a counter only grows, so
    /// publishing twice is harmless).
    pub(super) fn publish(&self) {
        self.registry.absolute(self.get());
    }
}

/// Buckets a histogram can have, the one above every bound included.
const MAX_BUCKETS: usize = 24;

/// One worker's part of a histogram: a count per bucket (not cumulative;
/// the one after the last bound is above every bound) and the sum in
/// nanoseconds. Inline, so no two workers' counts share a line.
#[derive(Default)]
#[repr(align(128))]
struct HistogramSlot {
    buckets: [AtomicU64; MAX_BUCKETS],
    sum_nanos: AtomicU64,
}

/// A latency histogram in per-worker slots, rendered in the Prometheus text
/// format the registry uses for its own histograms.
pub struct ShardedHistogram {
    name: &'static str,
    help: &'static str,
    /// Upper bounds, seconds (as written in `le`) and nanoseconds (compared).
    bounds: &'static [f64],
    bounds_nanos: Vec<u64>,
    slots: Box<[HistogramSlot]>,
}

impl ShardedHistogram {
    pub(super) fn new(name: &'static str, help: &'static str, bounds: &'static [f64]) -> Self {
        assert!(bounds.len() < MAX_BUCKETS, "{name}: too many buckets");
        let slots = (0..SLOTS).map(|_| HistogramSlot::default()).collect();
        Self {
            name,
            help,
            bounds,
            bounds_nanos: bounds.iter().map(|b| (b * 1e9) as u64).collect(),
            slots,
        }
    }

    /// Counts one observation in this worker's slot.
    pub fn record(&self, value: Duration) {
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self.bounds_nanos.partition_point(|&b| b < nanos);
        let slot = &self.slots[slot()];
        slot.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        slot.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The series in the text format: HELP, TYPE, cumulative buckets, sum
    /// and count.
    pub(super) fn render(&self, out: &mut String) {
        let mut counts = vec![0u64; self.bounds.len() + 1];
        let mut sum_nanos = 0u128;
        for slot in &self.slots {
            for (total, bucket) in counts.iter_mut().zip(&slot.buckets) {
                *total += bucket.load(Ordering::Relaxed);
            }
            sum_nanos += u128::from(slot.sum_nanos.load(Ordering::Relaxed));
        }
        let name = self.name;
        let _ = writeln!(out, "# HELP {name} {}", self.help);
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&counts) {
            cumulative += count;
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += counts[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        let _ = writeln!(out, "{name}_sum {}", sum_nanos as f64 / 1e9);
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_bounds_inclusive() {
        let h = ShardedHistogram::new("t_seconds", "Test", &[0.001, 0.01]);
        h.record(Duration::from_micros(1000)); // on the bound: le="0.001"
        h.record(Duration::from_millis(5));
        h.record(Duration::from_secs(1));
        let mut text = String::new();
        h.render(&mut text);
        assert_eq!(
            text,
            "# HELP t_seconds Test\n# TYPE t_seconds histogram\n\
             t_seconds_bucket{le=\"0.001\"} 1\nt_seconds_bucket{le=\"0.01\"} 2\n\
             t_seconds_bucket{le=\"+Inf\"} 3\nt_seconds_sum 1.006\nt_seconds_count 3\n"
        );
    }

    #[test]
    fn workers_count_in_their_own_slots_and_the_sum_has_them_all() {
        let counter = ShardedCounter::new(Counter::noop());
        std::thread::scope(|s| {
            for n in 1..=3 {
                let counter = &counter;
                s.spawn(move || {
                    crate::worker::enter(n);
                    counter.increment(n as u64);
                });
            }
        });
        counter.increment(10);
        assert_eq!(counter.get(), 16);
        assert_eq!(counter.slots[2].0.load(Ordering::Relaxed), 2);
    }
}
