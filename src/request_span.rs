//! The per-request span: method, matched route (never the URI, which holds
//! the token) and request id, at DEBUG.
//!
//! At the default INFO level the span's callsite is disabled once and for
//! all, so a request pays one branch: no span, no field formatting, no clock
//! read, no wrapped body (what a full `TraceLayer` costs even when its
//! events are off). Failures are logged where they are understood (the
//! lookup, the CRM transport), once, not once more per response here.

use std::task::{Context, Poll};

use axum::extract::MatchedPath;
use axum::http::Request;
use tower::{Layer, Service};
use tracing::instrument::{Instrument, Instrumented};

/// Wraps each request's handling in its span.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpanLayer;

impl<S> Layer<S> for RequestSpanLayer {
    type Service = RequestSpan<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSpan { inner }
    }
}

/// The service of [`RequestSpanLayer`].
#[derive(Debug, Clone)]
pub struct RequestSpan<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for RequestSpan<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // Field values are only evaluated when the span is enabled.
        let span = tracing::debug_span!(
            "request",
            method = %req.method(),
            route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or("unmatched", MatchedPath::as_str),
            request_id = req
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        );
        let future = span.in_scope(|| self.inner.call(req));
        future.instrument(span)
    }
}
