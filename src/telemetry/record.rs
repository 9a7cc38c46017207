//! What one request did, for its access log line and its span: the outcome
//! and cache state the lookup and the handlers already count in metrics,
//! the `errorCode` of an error answer, and the CRM requests it made.
//!
//! Those facts are known deep down (the cache, the CRM transport), the line
//! is written at the top (the request layer): rather than thread a record
//! through every signature, the request layer makes the request's
//! [`Record`] *current* while it polls the request ([`Scoped`]), and the
//! code that knows a fact reports it to whatever record is current. A
//! detached CRM fetch carries its caller's record into its own task.
//!
//! When neither the access log nor traces are on, no record exists: a
//! report is then a thread-local read that finds none, with no allocation,
//! lock or clock read.

use std::cell::RefCell;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

/// The facts reported while a request runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// The outcome label the metrics count (`found_cached`, `not_found`, ...).
    pub outcome: Option<&'static str>,
    /// Where the answer came from: `hit`, `miss`, `stale_if_error`, ...
    pub cache: Option<&'static str>,
    /// The Auth API `errorCode` of an error answer.
    pub error_code: Option<&'static str>,
    /// CRM HTTP exchanges made (retries included; OAuth2 token requests not).
    pub crm_calls: u32,
    /// The status of the last CRM answer, if one came.
    pub crm_status: Option<u16>,
}

/// One request's record: what the request layer knew at the start, and the
/// facts reported since.
#[derive(Debug)]
pub struct Record {
    pub started: Instant,
    /// The client: for now the TCP peer.
    pub client: Option<IpAddr>,
    report: Mutex<Report>,
}

impl Record {
    /// A record started now.
    pub fn new(client: Option<IpAddr>) -> Arc<Self> {
        Arc::new(Self {
            started: Instant::now(),
            client,
            report: Mutex::new(Report::default()),
        })
    }

    /// The facts reported so far.
    pub fn report(&self) -> Report {
        *self.report.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the facts directly (for the request layer's own).
    pub fn with(&self, f: impl FnOnce(&mut Report)) {
        self.update(f);
    }

    fn update(&self, f: impl FnOnce(&mut Report)) {
        f(&mut self.report.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Record>>> = const { RefCell::new(None) };
}

fn with_current(f: impl FnOnce(&Record)) {
    CURRENT.with(|c| {
        if let Some(record) = c.borrow().as_ref() {
            f(record);
        }
    });
}

/// The current request's record, for a task that works for it.
pub fn current() -> Option<Arc<Record>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// When the current request arrived (`None` outside a request): a
/// handler's latency starts there, without reading the clock again.
pub fn started() -> Option<Instant> {
    CURRENT.with(|c| c.borrow().as_ref().map(|r| r.started))
}

/// Reports the request's outcome (the label its metrics count).
pub fn outcome(outcome: &'static str) {
    with_current(|r| r.update(|rep| rep.outcome = Some(outcome)));
}

/// Reports where the answer came from.
pub fn cache(state: &'static str) {
    with_current(|r| r.update(|rep| rep.cache = Some(state)));
}

/// Reports the `errorCode` of the error answer.
pub fn error_code(code: &'static str) {
    with_current(|r| r.update(|rep| rep.error_code = Some(code)));
}

/// Reports one CRM exchange and its status, if an answer came.
pub fn crm_call(status: Option<u16>) {
    with_current(|r| {
        r.update(|rep| {
            rep.crm_calls += 1;
            if status.is_some() {
                rep.crm_status = status;
            }
        });
    });
}

pin_project_lite::pin_project! {
    /// `inner` with `record` current while it is polled (nothing is done
    /// when there is no record).
    pub struct Scoped<F> {
        #[pin]
        inner: F,
        record: Option<Arc<Record>>,
    }
}

impl<F> Scoped<F> {
    /// `inner`, polled with `record` current.
    pub fn new(record: Option<Arc<Record>>, inner: F) -> Self {
        Self { inner, record }
    }
}

/// Puts the previous record back when the poll ends, however it ends.
struct Restore<'a> {
    slot: &'a mut Option<Arc<Record>>,
    previous: Option<Arc<Record>>,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        *self.slot = CURRENT.with(|c| c.replace(self.previous.take()));
    }
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.record.is_none() {
            return this.inner.poll(cx);
        }
        // Moved in and out (no reference count traffic per poll).
        let previous = CURRENT.with(|c| c.replace(this.record.take()));
        let _restore = Restore {
            slot: this.record,
            previous,
        };
        this.inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_reach_the_scoped_record_only() {
        let record = Record::new(None);
        let other = Record::new(None);
        Scoped::new(Some(record.clone()), async {
            outcome("found");
            cache("miss");
            // A task working for the request carries the record along.
            let carried = current();
            tokio::spawn(Scoped::new(carried, async {
                crm_call(Some(500));
                crm_call(None);
            }))
            .await
            .unwrap();
            Scoped::new(Some(other.clone()), async { error_code("1005") }).await;
        })
        .await;
        // Outside any scope, reports go nowhere.
        outcome("lost");
        assert_eq!(
            record.report(),
            Report {
                outcome: Some("found"),
                cache: Some("miss"),
                error_code: None,
                crm_calls: 2,
                crm_status: Some(500),
            }
        );
        assert_eq!(other.report().error_code, Some("1005"));
        assert!(current().is_none());
    }
}
