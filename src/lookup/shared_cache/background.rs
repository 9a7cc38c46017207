//! A connection made in the background: a caller waits for it only within
//! its own short timeout, and a caller that gives up does not abort it, so a
//! connect slower than one call's timeout (finding a master through the
//! sentinels, learning a cluster's slot map) still completes for the next
//! call. One connect runs at a time, bounded; a failed one is retried by the
//! next caller that needs the connection.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::{BoxFuture, Shared};
use redis::{ErrorKind, RedisError, RedisResult};

/// A connection of type `C` and the connect that makes it.
pub(super) struct Background<C> {
    slot: Arc<Slot<C>>,
    /// How long one connect may take in all.
    bound: Duration,
}

struct Slot<C> {
    /// The connection, with the number of the connect that made it.
    current: Mutex<Option<(u64, C)>>,
    /// The running connect, if any.
    connecting: Mutex<Option<Shared<BoxFuture<'static, ()>>>>,
    /// Numbers connections, so a stale failure never drops a newer one.
    made: AtomicU64,
}

fn lost() -> RedisError {
    RedisError::from((ErrorKind::Io, "no connection to Redis yet"))
}

impl<C: Clone + Send + 'static> Background<C> {
    /// No connection yet; connects take at most `bound`.
    pub(super) fn new(bound: Duration) -> Self {
        Self {
            slot: Arc::new(Slot {
                current: Mutex::new(None),
                connecting: Mutex::new(None),
                made: AtomicU64::new(0),
            }),
            bound,
        }
    }

    /// The connection and its number, connecting (with `connect`) first if
    /// there is none. Cancelling this future leaves the connect running.
    pub(super) async fn get<F, Fut>(&self, connect: F) -> RedisResult<(u64, C)>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = RedisResult<C>> + Send + 'static,
    {
        if let Some(current) = self.current() {
            return Ok(current);
        }
        self.start(connect).await;
        self.current().ok_or_else(lost)
    }

    fn current(&self) -> Option<(u64, C)> {
        self.slot.current.lock().expect("connection slot").clone()
    }

    /// The running connect, or a new one.
    fn start<F, Fut>(&self, connect: F) -> Shared<BoxFuture<'static, ()>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = RedisResult<C>> + Send + 'static,
    {
        // Held while the task is spawned and recorded, so the task's own
        // clearing of `connecting` always comes after it is recorded.
        let mut connecting = self.slot.connecting.lock().expect("connect slot");
        if let Some(running) = &*connecting {
            return running.clone();
        }
        // Another caller's connect may have finished since `get` looked.
        if self.current().is_some() {
            return futures_util::future::ready(()).boxed().shared();
        }
        let slot = Arc::clone(&self.slot);
        let attempt = tokio::time::timeout(self.bound, connect());
        let task = tokio::spawn(async move {
            if let Ok(Ok(conn)) = attempt.await {
                let number = slot.made.fetch_add(1, Ordering::Relaxed) + 1;
                *slot.current.lock().expect("connection slot") = Some((number, conn));
            }
            *slot.connecting.lock().expect("connect slot") = None;
        });
        let running = async move {
            let _ = task.await;
        }
        .boxed()
        .shared();
        *connecting = Some(running.clone());
        running
    }

    /// Drops connection number `number` (if it is still the current one),
    /// so that the next call connects again.
    pub(super) fn forget(&self, number: u64) {
        let mut current = self.slot.current.lock().expect("connection slot");
        if current.as_ref().is_some_and(|(n, _)| *n == number) {
            *current = None;
        }
    }
}
