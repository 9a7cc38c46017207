//! The per-request layer: the request id, the request's span, its access
//! log line and the panic guard, in one pass.
//!
//! The layer wraps the whole router, not each route: a route layer would
//! box each request's route future and clone its route service a second
//! time. The matched route (for the span and the access line — never the
//! URI, which holds the token) is therefore learnt from the answer: when the
//! span can be on or the access log is, [`report_route`] runs on each route
//! and copies the route onto its answer; otherwise nothing needs it.
//!
//! The id is the caller's `x-request-id` when it sent one, else a new one
//! ([`crate::app::request_id`]); it is set on the answer either way. The span
//! (method, matched route and the id) is at DEBUG: at the default INFO level, and with traces off, its
//! callsite is disabled once and for all, so a request pays one branch for
//! it, no allocation, no field formatting, no clock read, no wrapped body
//! (what `TraceLayer` plus the two request-id layers cost even with their
//! events off). With traces on, the traces layer enables it whatever the log
//! level, and it continues the caller's `traceparent`. Failures are logged
//! where they are understood (the lookup, the CRM transport), once.
//!
//! When the access log or the span is on, the request gets a
//! [`Record`]: current while the request runs, so the handlers, the lookup
//! and the CRM transport report to it what they did; when the answer is
//! ready, its facts become the span's attributes and the access log line.
//! Off, there is no record: no allocation and no clock read.
//!
//! A panic in a handler becomes the Auth API's JSON 500 without the panic
//! text (which may hold request data); unlike `CatchPanicLayer`, the body of
//! every other answer passes through unboxed.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use tower::{Layer, Service};
use tracing::Span;
use tracing::field::Empty;
use tracing::instrument::{Instrument, Instrumented};

use crate::app::client_addr::ClientAddr;
use crate::front::auth_api::{codes, error_body};
use crate::metrics::Metrics;
use crate::telemetry::access::{self, Answered};
use crate::telemetry::otel;
use crate::telemetry::record::{Record, Scoped};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives each request its id and span.
#[derive(Debug, Clone)]
pub struct RequestSpanLayer {
    /// The application's registry, where panics are counted; in an `Arc` of
    /// this layer's own, so that a worker's per-request clones count on its
    /// own line (see `app::router`).
    metrics: Arc<Metrics>,
    /// `telemetry.access_log`.
    access_log: bool,
}

impl RequestSpanLayer {
    /// The layer of the application that records into `metrics` and writes
    /// access lines when `access_log` (and the level filter lets them).
    pub fn new(metrics: Metrics, access_log: bool) -> Self {
        Self {
            metrics: Arc::new(metrics),
            access_log,
        }
    }
}

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan {
            inner,
            metrics: self.metrics.clone(),
            access_log: self.access_log,
        }
    }
}

/// The service of [`RequestSpanLayer`].
#[derive(Debug, Clone)]
pub struct RequestSpan<S> {
    inner: S,
    metrics: Arc<Metrics>,
    access_log: bool,
}

/// What the access line needs from the request, kept while it runs.
struct Meta {
    record: Arc<Record>,
    method: Method,
    /// Whether to write the access line (else the record is for the span).
    access: bool,
}

/// The answer to a request whose handler panicked.
fn panicked(metrics: &Metrics) -> Response<Body> {
    metrics.counter("authbridge_panics_total").increment(1);
    error_body(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::INTERNAL,
        "Internal error",
    )
}

impl<S, ReqB> Service<Request<ReqB>> for RequestSpan<S>
where
    S: Service<Request<ReqB>, Response = Response<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = WithId<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let id = match req.headers().get(X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => crate::app::request_id::next(),
        };
        // Field values are only evaluated when the span is enabled; the
        // route is known once the router has answered (see the module docs).
        let span = request_span(&req);
        if !span.is_disabled() {
            span.record("request_id", id.to_str().unwrap_or(""));
        }
        otel::continue_trace(&span, req.headers());
        let access = self.access_log && access::enabled();
        let meta = (access || !span.is_disabled()).then(|| Meta {
            record: Record::new(ClientAddr::of(req.extensions())),
            method: req.method().clone(),
            access,
        });
        let record = meta.as_ref().map(|m| m.record.clone());
        let inner = &mut self.inner;
        let future =
            span.in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))));
        // The future counts a panic of its own; the service is cloned for
        // each request anyway (axum's routes are), so this is one more
        // reference count, no lookup.
        let metrics = self.metrics.clone();
        let inner = future.ok().map(|future| {
            Scoped::new(
                record,
                AssertUnwindSafe(future)
                    .catch_unwind()
                    .instrument(span.clone()),
            )
        });
        WithId {
            inner,
            id: Some(id),
            metrics,
            span,
            meta,
        }
    }
}

/// The application as the server runs it: the router inside this layer.
pub type App = RequestSpan<axum::Router>;

/// The request's span, its route and answer still to be recorded.
fn request_span<B>(req: &Request<B>) -> Span {
    tracing::debug_span!(
        "request",
        otel.name = Empty,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %req.method(),
        http.route = Empty,
        request_id = Empty,
        http.response.status_code = Empty,
        authbridge.outcome = Empty,
        authbridge.cache = Empty,
        authbridge.error_code = Empty,
        authbridge.crm_calls = Empty,
        authbridge.crm_status = Empty,
    )
}

/// Whether a request's span can ever be on in this process (the filters
/// are fixed at start-up): if not, and without the access log, no route
/// needs [`report_route`].
pub fn span_can_be_on() -> bool {
    !request_span(&Request::new(())).is_disabled()
}

/// A route layer: copies the matched route onto the answer, where
/// [`RequestSpan`], outside the router, finds it.
pub async fn report_route(req: Request<Body>, next: axum::middleware::Next) -> Response<Body> {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(req).await;
    if let Some(route) = route {
        response.extensions_mut().insert(route);
    }
    response
}

/// A matched route's name; `unmatched` for a request no route took.
fn route_name(matched: Option<&MatchedPath>) -> &str {
    matched.map_or("unmatched", MatchedPath::as_str)
}

/// Turns the request's record and answer into the span's attributes and
/// the access line.
fn finish(meta: &Meta, span: &Span, response: &Response<Body>) {
    let report = meta.record.report();
    let status = response.status().as_u16();
    let route = route_name(response.extensions().get::<MatchedPath>());
    if !span.is_disabled() {
        otel::rename(span, &format!("{} {route}", meta.method));
        span.record("http.route", route);
        // Numbers as i64: the OpenTelemetry layer would make a u64 a string.
        span.record("http.response.status_code", i64::from(status));
        span.record("authbridge.outcome", report.outcome);
        span.record("authbridge.cache", report.cache);
        span.record("authbridge.error_code", report.error_code);
        span.record("authbridge.crm_calls", i64::from(report.crm_calls));
        span.record("authbridge.crm_status", report.crm_status.map(i64::from));
        if status >= 500 {
            span.record("otel.status_code", "error");
        }
    }
    if meta.access {
        let answered = Answered {
            request_id: response
                .headers()
                .get(X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
            method: meta.method.as_str(),
            route,
            status,
        };
        access::log(
            &answered,
            &meta.record,
            &report,
            meta.record.started.elapsed(),
        );
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`RequestSpan`], with the request id set on it; `None`
    /// when the handler panicked before returning its future.
    pub struct WithId<F> {
        #[pin]
        inner: Option<Scoped<Instrumented<CatchUnwind<AssertUnwindSafe<F>>>>>,
        id: Option<HeaderValue>,
        metrics: Arc<Metrics>,
        span: Span,
        meta: Option<Meta>,
    }
}

impl<F, E> Future for WithId<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut panicked_here = false;
        let mut result = match this.inner.as_pin_mut() {
            None => {
                panicked_here = true;
                Ok(panicked(this.metrics))
            }
            Some(inner) => match ready!(inner.poll(cx)) {
                Ok(result) => result,
                Err(_panic) => {
                    panicked_here = true;
                    Ok(panicked(this.metrics))
                }
            },
        };
        if let Ok(response) = &mut result {
            if let Some(id) = this.id.take() {
                response.headers_mut().insert(X_REQUEST_ID, id);
            }
            if let Some(meta) = this.meta.take() {
                if panicked_here {
                    meta.record.with(|r| {
                        r.outcome = Some("panic");
                        r.error_code = Some(codes::INTERNAL);
                    });
                }
                finish(&meta, this.span, response);
            }
        }
        Poll::Ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn boom(_req: Request<Body>) -> Result<Response<Body>, std::convert::Infallible> {
        panic!("a panic text with a token-like secret");
    }

    #[tokio::test]
    async fn a_panicking_handler_gets_a_json_500_with_an_id_and_no_panic_text() {
        let metrics = Metrics::new();
        let service = RequestSpanLayer::new(metrics.clone(), true).layer(tower::service_fn(boom));
        let response = service.oneshot(Request::new(Body::empty())).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(response.headers().contains_key(X_REQUEST_ID));
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(
            &body[..],
            br#"{"errorCode":"1000","errorText":"Internal error"}"#
        );
        assert!(metrics.render().contains("authbridge_panics_total 1"));
    }
}
