//! The worker model: `server.workers` accept loops, each a thread with its
//! own single-threaded tokio runtime and its own `SO_REUSEPORT` listening
//! socket. The kernel spreads connections over the sockets; a request, its
//! CRM call and the answer then run on one thread, with no wake-ups or
//! cache-line traffic between threads (nginx's one worker per core).
//!
//! Per-thread resources (the CRM connection pools) are indexed by the
//! worker number this module keeps in a thread-local. Where each worker can
//! have a CPU of its own and ops ask for it, it is bound to it ([`pin`]).

use std::cell::Cell;

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

use crate::config::PinWorkers;

thread_local! {
    /// 0 off the workers (the control runtime, tests, tools); 1.. on them.
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The number of workers for the `server.workers` setting (0 = one per CPU).
pub fn count(configured: usize) -> usize {
    if configured > 0 {
        configured
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// This thread's worker number: 1..=count on a worker, 0 elsewhere.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// Marks this thread as worker `n` (1-based).
pub fn enter(n: usize) {
    WORKER.with(|w| w.set(n));
}

/// Binds the calling thread, worker `n` (1-based) of `workers`, to one of
/// the CPUs it may run on, as `mode` says; returns that CPU, or `None` when
/// the kernel keeps placing it.
///
/// Why: unbound, the scheduler sometimes runs both workers on one CPU while
/// something else holds the other, and a worker that wakes then waits out
/// the other's time slice (milliseconds). On CPUs the process has to itself
/// that cannot happen; on two CPUs shared with a load generator and a mock
/// CRM the measurements were mixed (see the README's "Workers"), so it is
/// an ops choice, off by default.
pub fn pin(n: usize, workers: usize, mode: PinWorkers) -> Option<usize> {
    if mode == PinWorkers::Off {
        return None;
    }
    let allowed = sched_getaffinity(None).ok()?;
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| allowed.is_set(c))
        .collect();
    if cpus.is_empty() || (mode == PinWorkers::Auto && cpus.len() != workers) {
        return None;
    }
    let cpu = cpus[(n.max(1) - 1) % cpus.len()];
    let mut only = CpuSet::new();
    only.set(cpu);
    match sched_setaffinity(None, &only) {
        Ok(()) => Some(cpu),
        Err(e) => {
            tracing::warn!(worker = n, cpu, error = %e, "cannot bind the worker to its CPU; the kernel places it");
            None
        }
    }
}
