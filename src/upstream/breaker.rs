//! A circuit breaker in front of the CRM: after N failures in a row, or a
//! failure ratio over the last requests, it opens and fails requests at once
//! (the caller answers 503 or a stale card) instead of queueing them on a
//! sick CRM; after `open_ms` it lets one probe through (half-open), and the
//! probe's outcome closes or re-opens it.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::BreakerSettings;

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

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive: u32,
    recent: VecDeque<bool>,
    opened_at: Instant,
    probe_in_flight: bool,
}

/// The breaker.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    inner: Mutex<Inner>,
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
    pub fn new(settings: &BreakerSettings) -> Self {
        metrics::gauge!("authbridge_breaker_state").set(0.0);
        Self {
            settings: settings.clone(),
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive: 0,
                recent: VecDeque::new(),
                opened_at: Instant::now(),
                probe_in_flight: false,
            }),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.inner.lock().expect("breaker lock").state
    }

    fn transition(inner: &mut Inner, to: State) {
        if inner.state != to {
            tracing::warn!(
                from = inner.state.name(),
                to = to.name(),
                "CRM circuit breaker"
            );
            metrics::counter!("authbridge_breaker_transitions_total", "to" => to.name())
                .increment(1);
            metrics::gauge!("authbridge_breaker_state").set(to.gauge());
            inner.state = to;
        }
    }

    /// May a request go to the CRM now?
    pub fn allow(&self) -> Option<Permit<'_>> {
        if !self.settings.enabled {
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
            State::Open
                if inner.opened_at.elapsed() >= Duration::from_millis(self.settings.open_ms) =>
            {
                Self::transition(&mut inner, State::HalfOpen);
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

    /// Reports the outcome of a permitted request.
    pub fn record(&self, mut permit: Permit<'_>, success: bool) {
        permit.reported = true;
        if !self.settings.enabled {
            return;
        }
        let mut inner = self.inner.lock().expect("breaker lock");
        if permit.probe {
            inner.probe_in_flight = false;
            if success {
                inner.consecutive = 0;
                inner.recent.clear();
                Self::transition(&mut inner, State::Closed);
            } else {
                inner.opened_at = Instant::now();
                Self::transition(&mut inner, State::Open);
            }
            return;
        }
        if inner.state != State::Closed {
            // A request let through before the breaker opened.
            return;
        }
        inner.consecutive = if success { 0 } else { inner.consecutive + 1 };
        inner.recent.push_back(success);
        while inner.recent.len() > self.settings.window as usize {
            inner.recent.pop_front();
        }
        let failures = inner.recent.iter().filter(|ok| !**ok).count();
        let full = inner.recent.len() >= self.settings.window as usize;
        let ratio_tripped =
            full && failures as f64 / inner.recent.len() as f64 >= self.settings.failure_ratio;
        if inner.consecutive >= self.settings.consecutive_failures || ratio_tripped {
            inner.opened_at = Instant::now();
            Self::transition(&mut inner, State::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(open_ms: u64) -> Breaker {
        Breaker::new(&BreakerSettings {
            enabled: true,
            consecutive_failures: 3,
            failure_ratio: 0.5,
            window: 10,
            open_ms,
        })
    }

    fn outcome(b: &Breaker, ok: bool) {
        let p = b.allow().expect("allowed");
        b.record(p, ok);
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
        b.record(probe, true);
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn a_failed_probe_reopens() {
        let b = breaker(60_000);
        for _ in 0..3 {
            outcome(&b, false);
        }
        assert!(b.allow().is_none(), "open: fail fast");
        let b = breaker(0);
        for _ in 0..3 {
            outcome(&b, false);
        }
        let probe = b.allow().unwrap();
        b.record(probe, false);
        assert_eq!(b.state(), State::Open);
    }

    #[test]
    fn a_cancelled_probe_frees_the_probe_slot() {
        let b = breaker(0);
        for _ in 0..3 {
            outcome(&b, false);
        }
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
}
