//! The per-request layer: the request id, the request's span and the panic
//! guard, in one pass.
//!
//! The id is the caller's `x-request-id` when it sent one, else a new one
//! ([`crate::app::request_id`]); it is set on the answer either way. The span
//! (method, matched route — never the URI, which holds the token — and the
//! id) is at DEBUG: at the default INFO level its callsite is disabled once
//! and for all, so a request pays one branch for it, no allocation, no field
//! formatting, no clock read, no wrapped body (what `TraceLayer` plus the
//! two request-id layers cost even with their events off). Failures are
//! logged where they are understood (the lookup, the CRM transport), once.
//!
//! A panic in a handler becomes the Auth API's JSON 500 without the panic
//! text (which may hold request data); unlike `CatchPanicLayer`, the body of
//! every other answer passes through unboxed.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use futures_util::FutureExt;
use futures_util::future::CatchUnwind;
use tower::{Layer, Service};
use tracing::instrument::{Instrument, Instrumented};

use crate::front::auth_api::{codes, error_body};
use crate::metrics::Metrics;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives each request its id and span.
#[derive(Debug, Clone)]
pub struct RequestSpanLayer {
    /// The application's registry, where panics are counted.
    metrics: Metrics,
}

impl RequestSpanLayer {
    /// The layer of the application that records into `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service of [`RequestSpanLayer`].
#[derive(Debug, Clone)]
pub struct RequestSpan<S> {
    inner: S,
    metrics: Metrics,
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
        // Field values are only evaluated when the span is enabled.
        let span = tracing::debug_span!(
            "request",
            method = %req.method(),
            route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str),
            request_id = id.to_str().unwrap_or(""),
        );
        let inner = &mut self.inner;
        let future =
            span.in_scope(|| std::panic::catch_unwind(AssertUnwindSafe(|| inner.call(req))));
        // The future counts a panic of its own; the service is cloned for
        // each request anyway (axum's routes are), so this is one more
        // reference count, no lookup.
        let metrics = self.metrics.clone();
        match future {
            Ok(future) => WithId {
                inner: Some(AssertUnwindSafe(future).catch_unwind().instrument(span)),
                id: Some(id),
                metrics,
            },
            Err(_) => WithId {
                inner: None,
                id: Some(id),
                metrics,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`RequestSpan`], with the request id set on it; `None`
    /// when the handler panicked before returning its future.
    pub struct WithId<F> {
        #[pin]
        inner: Option<Instrumented<CatchUnwind<AssertUnwindSafe<F>>>>,
        id: Option<HeaderValue>,
        metrics: Metrics,
    }
}

impl<F, E> Future for WithId<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = match this.inner.as_pin_mut() {
            None => Ok(panicked(this.metrics)),
            Some(inner) => match ready!(inner.poll(cx)) {
                Ok(result) => result,
                Err(_panic) => Ok(panicked(this.metrics)),
            },
        };
        if let (Ok(response), Some(id)) = (&mut result, this.id.take()) {
            response.headers_mut().insert(X_REQUEST_ID, id);
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
        let service = RequestSpanLayer::new(metrics.clone()).layer(tower::service_fn(boom));
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
