//! A circuit breaker in front of the CRM: when a share of the requests of
//! the last `window_ms` failed, over a minimum volume (`min_requests`), it
//! opens and fails requests at once (the caller answers 503 or a stale card)
//! instead of queueing them on a sick CRM; after `open_ms` it lets one probe
//! through (half-open), and the probe's outcome closes or re-opens it.
//!
//! Only answers about the CRM's health count (see [`Health`]): a few
//! customers whose records make the CRM fail cannot open it for everyone,
//! since they stay a small share of the traffic. The older "N failures in a
//! row" rule is there for CRMs with little traffic, off by default.
//!
//! Its settings are reloadable ([`Breaker::reconfigure`]). A reload keeps
//! the state and the counts and judges the next outcome by the new
//! thresholds: the counts are what the CRM did, true under any rule, and
//! resetting them would close an open breaker and send a sick CRM a burst
//! of misses the moment someone tunes a threshold. An open breaker waits
//! out the new `open_ms`, counted from when it opened. Two exceptions: a new
//! `window_ms` starts an empty window (its slices are sized from it, so the
//! old counts cannot be re-sliced), and a disabled breaker is closed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::BreakerSettings;
use crate::metrics::Metrics;

/// The breaker's state, as exported (`authbridge_breaker_state`: 0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    HalfOpen,
    Open,
}

impl State {
    /// The name used in the admin API and logs.
    pub fn name(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::HalfOpen => "half_open",
            State::Open => "open",
        }
    }

    fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::HalfOpen => 1.0,
            State::Open => 2.0,
        }
    }
}

/// What one CRM exchange says about the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// It answered as a working CRM does (found, not found, a 4xx about the
    /// request).
    Healthy,
    /// Unreachable, timed out, broke the connection, 5xx, or redirected.
    Failing,
}

/// Outcomes of one slice of the window.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which slice of time (`elapsed / slice`) the counts are for.
    epoch: u64,
    ok: u32,
    failed: u32,
}

/// Slices per window: the window slides in steps of a tenth.
const BUCKETS: usize = 10;

#[derive(Debug)]
struct Inner {
    settings: BreakerSettings,
    /// One slice of the window: `window / BUCKETS`.
    slice: Duration,
    state: State,
    consecutive: u32,
    buckets: [Bucket; BUCKETS],
    opened_at: Instant,
    probe_in_flight: bool,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    /// `settings.enabled`, read without the lock: a disabled breaker costs
    /// a request no lock.
    enabled: AtomicBool,
    /// Where the state gauge and the transitions are counted.
    metrics: Metrics,
    started: Instant,
    inner: Mutex<Inner>,
}

fn slice_of(window: Duration) -> Duration {
    (window / BUCKETS as u32).max(Duration::from_millis(1))
}

/// Permission to send one request; report its outcome with [`Breaker::record`].
/// A probe permit dropped without a report (its request was cancelled) frees
/// the probe slot, so the breaker cannot stay half-open forever.
#[derive(Debug)]
#[must_use]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            self.breaker
                .inner
                .lock()
                .expect("breaker lock")
                .probe_in_flight = false;
        }
    }
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: &BreakerSettings, metrics: Metrics) -> Self {
        metrics.gauge("authbridge_breaker_state").set(0.0);
        Self {
            enabled: AtomicBool::new(settings.enabled),
            metrics,
            started: Instant::now(),
            inner: Mutex::new(Inner {
                settings: settings.clone(),
                slice: slice_of(settings.window),
                state: State::Closed,
                consecutive: 0,
                buckets: [Bucket::default(); BUCKETS],
                opened_at: Instant::now(),
                probe_in_flight: false,
            }),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.inner.lock().expect("breaker lock").state
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        if inner.state != to {
            tracing::warn!(
                from = inner.state.name(),
                to = to.name(),
                "CRM circuit breaker"
            );
            self.metrics
                .counter_with("authbridge_breaker_transitions_total", &[("to", to.name())])
                .increment(1);
            self.metrics
                .gauge("authbridge_breaker_state")
                .set(to.gauge());
            inner.state = to;
        }
    }

    /// Applies new settings (see the module doc for what is kept).
    pub fn reconfigure(&self, settings: &BreakerSettings) {
        let mut inner = self.inner.lock().expect("breaker lock");
        if inner.settings == *settings {
            return;
        }
        if inner.settings.window != settings.window || !settings.enabled {
            inner.buckets = [Bucket::default(); BUCKETS];
            inner.slice = slice_of(settings.window);
        }
        if !settings.enabled {
            inner.consecutive = 0;
            inner.probe_in_flight = false;
            self.transition(&mut inner, State::Closed);
        }
        inner.settings = settings.clone();
        self.enabled.store(settings.enabled, Ordering::Relaxed);
    }

    /// May a request go to the CRM now?
    pub fn allow(&self) -> Option<Permit<'_>> {
        if !self.enabled.load(Ordering::Relaxed) {
            return Some(Permit {
                breaker: self,
                probe: false,
                reported: false,
            });
        }
        let mut inner = self.inner.lock().expect("breaker lock");
        match inner.state {
            State::Closed => Some(Permit {
                breaker: self,
                probe: false,
                reported: false,
            }),
            State::Open if inner.opened_at.elapsed() >= inner.settings.open => {
                self.transition(&mut inner, State::HalfOpen);
                inner.probe_in_flight = true;
                Some(Permit {
                    breaker: self,
                    probe: true,
                    reported: false,
                })
            }
            State::HalfOpen if !inner.probe_in_flight => {
                inner.probe_in_flight = true;
                Some(Permit {
                    breaker: self,
                    probe: true,
                    reported: false,
                })
            }
            State::Open | State::HalfOpen => None,
        }
    }

    /// Reports what a permitted request said about the CRM's health.
    pub fn record(&self, mut permit: Permit<'_>, health: Health) {
        permit.reported = true;
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let success = health == Health::Healthy;
        let mut inner = self.inner.lock().expect("breaker lock");
        if permit.probe {
            inner.probe_in_flight = false;
            if success {
                inner.consecutive = 0;
                inner.buckets = [Bucket::default(); BUCKETS];
                self.transition(&mut inner, State::Closed);
            } else {
                inner.opened_at = Instant::now();
                self.transition(&mut inner, State::Open);
            }
            return;
        }
        if inner.state != State::Closed {
            // A request let through before the breaker opened.
            return;
        }
        inner.consecutive = if success { 0 } else { inner.consecutive + 1 };
        let epoch = (self.started.elapsed().as_nanos() / inner.slice.as_nanos().max(1)) as u64;
        let bucket = &mut inner.buckets[(epoch % BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket {
                epoch,
                ..Bucket::default()
            };
        }
        if success {
            bucket.ok += 1;
        } else {
            bucket.failed += 1;
        }
        // The slices of the last window (older ones are stale leftovers).
        let (ok, failed) = inner
            .buckets
            .iter()
            .filter(|b| epoch - b.epoch.min(epoch) < BUCKETS as u64)
            .fold((0u64, 0u64), |(o, f), b| {
                (o + u64::from(b.ok), f + u64::from(b.failed))
            });
        let total = ok + failed;
        let settings = &inner.settings;
        let ratio_tripped = !success
            && total >= u64::from(settings.min_requests)
            && failed as f64 >= settings.failure_ratio * total as f64;
        let consecutive_tripped =
            settings.consecutive_failures > 0 && inner.consecutive >= settings.consecutive_failures;
        if ratio_tripped || consecutive_tripped {
            inner.opened_at = Instant::now();
            self.transition(&mut inner, State::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_ms: u64) -> Breaker {
        Breaker::new(
            &BreakerSettings {
                enabled: true,
                consecutive_failures: 3,
                failure_ratio: 0.5,
                min_requests: 10,
                window: Duration::from_millis(60_000),
                open: Duration::from_millis(open_ms),
            },
            Metrics::new(),
        )
    }

    fn ratio_only() -> Breaker {
        Breaker::new(
            &BreakerSettings {
                enabled: true,
                consecutive_failures: 0,
                failure_ratio: 0.5,
                min_requests: 20,
                window: Duration::from_millis(10_000),
                open: Duration::from_millis(60_000),
            },
            Metrics::new(),
        )
    }

    fn outcome(b: &Breaker, ok: bool) {
        let p = b.allow().expect("allowed");
        b.record(p, if ok { Health::Healthy } else { Health::Failing });
    }

    #[test]
    fn opens_after_consecutive_failures_and_recovers_through_a_probe() {
        let b = breaker(0);
        outcome(&b, false);
        outcome(&b, false);
        assert_eq!(b.state(), State::Closed);
        outcome(&b, false);
        assert_eq!(b.state(), State::Open);
        // open_ms = 0: the next request is the probe; others wait for it.
        let probe = b.allow().expect("probe");
        assert_eq!(b.state(), State::HalfOpen);
        assert!(b.allow().is_none(), "one probe at a time");
        b.record(probe, Health::Healthy);
        assert_eq!(b.state(), State::Closed);
    }

    /// A breaker opened by three consecutive failures.
    fn tripped(open_ms: u64) -> Breaker {
        let b = breaker(open_ms);
        for _ in 0..3 {
            outcome(&b, false);
        }
        b
    }

    #[test]
    fn a_failed_probe_reopens() {
        assert!(tripped(60_000).allow().is_none(), "open: fail fast");
        let b = tripped(0);
        let probe = b.allow().unwrap();
        b.record(probe, Health::Failing);
        assert_eq!(b.state(), State::Open);
    }

    #[test]
    fn a_cancelled_probe_frees_the_probe_slot() {
        let b = tripped(0);
        drop(b.allow().expect("probe"));
        assert!(b.allow().is_some(), "another probe may go");
    }

    #[test]
    fn opens_on_a_failure_ratio() {
        let b = breaker(60_000);
        for i in 0..10 {
            outcome(&b, i % 2 == 0);
        }
        assert_eq!(b.state(), State::Open, "5 of 10 failed, never 3 in a row");
    }

    #[test]
    fn a_few_failures_among_healthy_traffic_leave_it_closed() {
        let b = ratio_only();
        for i in 0..200 {
            // Five failing customers in a row, then now and then.
            outcome(&b, !(i < 5 || i % 40 == 0));
        }
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn a_reconfigured_breaker_keeps_its_counts_and_judges_by_the_new_thresholds() {
        let b = breaker(60_000);
        outcome(&b, false);
        outcome(&b, false);
        let mut s = b.inner.lock().unwrap().settings.clone();
        s.consecutive_failures = 2;
        b.reconfigure(&s);
        assert_eq!(b.state(), State::Closed, "judged at the next outcome");
        outcome(&b, false);
        assert_eq!(b.state(), State::Open, "3 in a row, over the new 2");
        // Open stays open; a shorter open_ms counts from when it opened.
        s.open = Duration::ZERO;
        b.reconfigure(&s);
        assert_eq!(b.state(), State::Open);
        assert!(b.allow().is_some_and(|p| p.probe));
    }

    #[test]
    fn a_new_window_starts_empty_and_disabling_closes() {
        let b = ratio_only();
        for _ in 0..19 {
            outcome(&b, false);
        }
        let mut s = b.inner.lock().unwrap().settings.clone();
        s.window = Duration::from_millis(20_000);
        b.reconfigure(&s);
        outcome(&b, false);
        assert_eq!(b.state(), State::Closed, "1 in the new window < 20");
        s.min_requests = 1;
        b.reconfigure(&s);
        outcome(&b, false);
        assert_eq!(b.state(), State::Open);
        s.enabled = false;
        b.reconfigure(&s);
        assert_eq!(b.state(), State::Closed);
        assert!(b.allow().is_some());
    }

    #[test]
    fn below_the_minimum_volume_it_stays_closed() {
        let b = ratio_only();
        for _ in 0..19 {
            outcome(&b, false);
        }
        assert_eq!(b.state(), State::Closed, "19 < min_requests");
        outcome(&b, false);
        assert_eq!(b.state(), State::Open);
    }
}
