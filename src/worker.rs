//! The worker model: `server.workers` accept loops, each a thread with its
//! own single-threaded tokio runtime and its own `SO_REUSEPORT` listening
//! socket. The kernel spreads connections over the sockets; a request, its
//! CRM call and the answer then run on one thread, with no wake-ups or
//! cache-line traffic between threads (nginx's one worker per core).
//!
//! Per-thread resources (the CRM connection pools) are indexed by the
//! worker number this module keeps in a thread-local.

use std::cell::Cell;

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
