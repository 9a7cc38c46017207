//! The budget of one mapping application: steps, time, and the size of
//! values jq builds.
//!
//! Applying a mapping is synchronous and runs on one thread from start to
//! end, so the meter is a thread-local set for the duration of one
//! [`metered`] call: the declarative walk charges a step per field, list
//! item, lookup hop and index entry; the jq evaluator charges its own steps
//! and checks the values it builds. A charge over the budget fails with
//! [`Exceeded`], which the caller turns into the mapping error naming the
//! field, and the computation stops there: nothing keeps running.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The limits of one application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Evaluation steps at most.
    pub max_steps: u64,
    /// Wall time at most.
    pub max_time: Duration,
    /// Longest array or object a jq rule may build.
    pub max_items: usize,
    /// Longest string a jq rule may build, in bytes.
    pub max_string_bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            max_steps: 2_000_000,
            max_time: Duration::from_millis(1_000),
            max_items: 100_000,
            max_string_bytes: 1 << 20,
        }
    }
}

/// The budget ran out (the message says which limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exceeded(pub String);

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exceeded its budget ({})", self.0)
    }
}

#[derive(Clone, Copy)]
struct Meter {
    budget: Budget,
    started: Instant,
}

thread_local! {
    /// The budget of the application running on this thread, if any.
    static METER: Cell<Option<Meter>> = const { Cell::new(None) };
    /// Steps left (the hot counter: one decrement per step).
    static FUEL: Cell<u64> = const { Cell::new(u64::MAX) };
    /// The clock is read when the fuel falls below this.
    static NEXT_CLOCK: Cell<u64> = const { Cell::new(0) };
    /// Set once exceeded, so every later charge fails at once.
    static SPENT: Cell<bool> = const { Cell::new(false) };
}

/// The clock is read once per this many steps: a step must stay cheap.
const CLOCK_EVERY: u64 = 1_024;

/// Runs `f` under `budget` on this thread.
pub fn metered<T>(budget: Budget, f: impl FnOnce() -> T) -> T {
    struct Reset(Option<Meter>, u64, u64, bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            METER.with(|m| m.set(self.0));
            FUEL.with(|c| c.set(self.1));
            NEXT_CLOCK.with(|c| c.set(self.2));
            SPENT.with(|c| c.set(self.3));
        }
    }
    let _reset = Reset(
        METER.with(|m| {
            m.replace(Some(Meter {
                budget,
                started: Instant::now(),
            }))
        }),
        FUEL.with(|c| c.replace(budget.max_steps)),
        NEXT_CLOCK.with(|c| c.replace(budget.max_steps.saturating_sub(CLOCK_EVERY))),
        SPENT.with(|c| c.replace(false)),
    );
    f()
}

/// Runs `f` under the current meter, or under the default budget when
/// there is none (a jq expression evaluated outside a mapping application).
pub fn metered_or_default<T>(f: impl FnOnce() -> T) -> T {
    if METER.with(|m| m.get().is_some()) {
        f()
    } else {
        metered(Budget::default(), f)
    }
}

/// Charges `n` steps; `Err` once the step or time budget is spent. Free
/// outside [`metered`] (the fuel is then unlimited).
#[inline]
pub fn charge(n: u64) -> Result<(), Exceeded> {
    let fuel = FUEL.with(Cell::get);
    if fuel >= n && fuel - n > NEXT_CLOCK.with(Cell::get) {
        FUEL.with(|c| c.set(fuel - n));
        return Ok(());
    }
    charge_slow(fuel, n)
}

/// Out of fuel, or time to read the clock.
#[cold]
fn charge_slow(fuel: u64, n: u64) -> Result<(), Exceeded> {
    let Some(meter) = METER.with(Cell::get) else {
        return Ok(());
    };
    if SPENT.with(Cell::get) {
        return Err(Exceeded("already spent".into()));
    }
    let result = if fuel < n {
        Err(Exceeded(format!(
            "more than {} evaluation steps",
            meter.budget.max_steps
        )))
    } else if meter.started.elapsed() > meter.budget.max_time {
        Err(Exceeded(format!(
            "more than {} ms",
            meter.budget.max_time.as_millis()
        )))
    } else {
        FUEL.with(|c| c.set(fuel - n));
        NEXT_CLOCK.with(|c| c.set((fuel - n).saturating_sub(CLOCK_EVERY)));
        Ok(())
    };
    if result.is_err() {
        SPENT.with(|c| c.set(true));
        // Later charges take the slow path and fail at once.
        FUEL.with(|c| c.set(0));
        NEXT_CLOCK.with(|c| c.set(u64::MAX));
    }
    result
}

/// Checks the size of a value jq built: `items` elements, `bytes` of text.
pub fn check_size(items: usize, bytes: usize) -> Result<(), Exceeded> {
    METER.with(|m| {
        let Some(meter) = m.get() else {
            return Ok(());
        };
        if items > meter.budget.max_items {
            return Err(Exceeded(format!(
                "a value of more than {} items",
                meter.budget.max_items
            )));
        }
        if bytes > meter.budget.max_string_bytes {
            return Err(Exceeded(format!(
                "a string of more than {} bytes",
                meter.budget.max_string_bytes
            )));
        }
        Ok(())
    })
}

/// Steps charged so far in this application (0 outside one).
pub fn steps() -> u64 {
    METER.with(|m| {
        m.get()
            .map_or(0, |m| m.budget.max_steps - FUEL.with(Cell::get))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_run_out_and_stay_out() {
        let budget = Budget {
            max_steps: 10,
            ..Budget::default()
        };
        metered(budget, || {
            assert!(charge(10).is_ok());
            let e = charge(1).unwrap_err();
            assert!(
                e.to_string().contains("more than 10 evaluation steps"),
                "{e}"
            );
            assert!(charge(0).is_err(), "spent stays spent");
        });
        assert!(charge(u64::MAX).is_ok(), "outside a metered call, free");
    }

    #[test]
    fn time_runs_out() {
        let budget = Budget {
            max_time: Duration::ZERO,
            ..Budget::default()
        };
        metered(budget, || {
            std::thread::sleep(Duration::from_millis(2));
            let e = charge(CLOCK_EVERY).unwrap_err();
            assert!(e.to_string().contains("more than 0 ms"), "{e}");
        });
    }

    #[test]
    fn nested_calls_restore_the_outer_meter() {
        metered(Budget::default(), || {
            charge(5).unwrap();
            metered(Budget::default(), || charge(1).unwrap());
            assert_eq!(steps(), 5);
        });
    }
}
