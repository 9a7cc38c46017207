//! The per-request layer: the request id and the request's span, in one pass.
//!
//! The id is the caller's `x-request-id` when it sent one, else a new one
//! ([`crate::request_id`]); it is set on the answer either way. The span
//! (method, matched route — never the URI, which holds the token — and the
//! id) is at DEBUG: at the default INFO level its callsite is disabled once
//! and for all, so a request pays one branch for it, no allocation, no field
//! formatting, no clock read, no wrapped body (what `TraceLayer` plus the
//! two request-id layers cost even with their events off). Failures are
//! logged where they are understood (the lookup, the CRM transport), once.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Request, Response};
use tower::{Layer, Service};
use tracing::instrument::{Instrument, Instrumented};

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives each request its id and span.
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

impl<S, ReqB, ResB> Service<Request<ReqB>> for RequestSpan<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
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
            None => crate::request_id::next(),
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
        let future = span.in_scope(|| self.inner.call(req));
        WithId {
            inner: future.instrument(span),
            id: Some(id),
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`RequestSpan`], with the request id set on it.
    pub struct WithId<F> {
        #[pin]
        inner: Instrumented<F>,
        id: Option<HeaderValue>,
    }
}

impl<F, B, E> Future for WithId<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        if let (Ok(response), Some(id)) = (&mut result, this.id.take()) {
            response.headers_mut().insert(X_REQUEST_ID, id);
        }
        Poll::Ready(result)
    }
}
