//! The chat server's Auth API: `GET /rest/chat/client/id/{token}` answers the
//! client card or `{"errorCode", "errorText"}`.
//!
//! The route takes the rest of the path as the token, so a token with a raw
//! `/` still reaches us whole; axum percent-decodes it.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use bytes::Bytes;

use crate::error::LookupError;
use crate::json_response::json;
use crate::lookup::Source;
use crate::lookup::cache::Answer;
use crate::lookup::{Limits, Lookup};
use crate::metrics::Metrics;

pub mod access;
pub mod card;
mod error;

pub use error::{ApiError, ErrorRow, Scope, TABLE as ERRORS, codes, error_body};

/// This front's cache key space.
pub const NAMESPACE: &str = "auth-api";

/// Where a card came from: `hit`, `miss`, or `stale` (with why), so ops and
/// the chat server's logs can tell a stale card from a fresh one.
const CACHE_STATUS: HeaderName = HeaderName::from_static("x-authbridge-cache");
const HIT: HeaderValue = HeaderValue::from_static("hit");
const MISS: HeaderValue = HeaderValue::from_static("miss");
const STALE_IF_ERROR: HeaderValue = HeaderValue::from_static("stale; reason=crm-error");
const STALE_IF_SLOW: HeaderValue = HeaderValue::from_static("stale; reason=crm-slow");
const STALE_WHILE_REVALIDATE: HeaderValue = HeaderValue::from_static("stale; reason=revalidating");
const NOT_FOUND_BODY: &[u8] = br#"{"errorCode":"1001","errorText":"Client not found"}"#;

/// The Auth API routes, with their own state: a request clones one `Arc`
/// (the lookup service), not the application's whole state. The `Arc` is
/// new here, so each worker's router (see `app::router`) counts
/// its requests' clones on its own cache line.
pub fn routes<S>(lookup: Lookup) -> Router<S> {
    Router::new()
        .route(
            "/rest/chat/client/id/{*token}",
            get(client_by_token).fallback(wrong_method),
        )
        .route(
            "/rest/chat/client/id",
            get(empty_token).fallback(wrong_method),
        )
        .route(
            "/rest/chat/client/id/",
            get(empty_token).fallback(wrong_method),
        )
        .with_state(Arc::new(lookup))
}

/// A known path asked with a method it does not serve, in this front's shape
/// (also the application's answer for its other routes).
pub async fn wrong_method() -> Response {
    error_body(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::BAD_METHOD,
        "Method not allowed",
    )
}

/// The checks a percent-decoded token passes before any cache or CRM work.
/// Public (hidden) only so `examples/fuzz.rs` drives this very function.
#[doc(hidden)]
pub fn check_token(token: &str, limits: &Limits) -> Result<(), LookupError> {
    let max_bytes = limits.max_token_bytes;
    if token.is_empty() {
        return Err(LookupError::BadToken("the token is empty".into()));
    }
    if token.len() > max_bytes {
        return Err(LookupError::BadToken(format!(
            "the token is longer than {max_bytes} bytes"
        )));
    }
    if token.chars().any(char::is_control) {
        return Err(LookupError::BadToken(
            "the token contains control characters".into(),
        ));
    }
    if let Some(pattern) = &limits.token_pattern
        && !pattern.is_match(token)
    {
        return Err(LookupError::BadToken(
            "the token does not match server.token_pattern".into(),
        ));
    }
    Ok(())
}

/// Counts one answered lookup in the application's registry (the common
/// outcomes through pre-resolved handles, the rare ones by name) and
/// reports its outcome to the request's record.
fn record(metrics: &Metrics, outcome: &'static str, started: Instant) {
    crate::telemetry::record::outcome(outcome);
    let hot = metrics.hot();
    match outcome {
        "found_cached" => hot.found_cached.increment(1),
        "found" => hot.found.increment(1),
        "not_found" => hot.not_found.increment(1),
        other => metrics
            .counter_with("authbridge_requests_total", &[("outcome", other)])
            .increment(1),
    }
    hot.duration.record(started.elapsed());
}

async fn client_by_token(
    State(auth): State<Arc<Lookup>>,
    token: Result<Path<String>, PathRejection>,
) -> Response {
    let started = crate::telemetry::record::started().unwrap_or_else(Instant::now);
    // One engine from start to end of this lookup.
    let engine = auth.engine_ref();
    let limits = &engine.limits;
    let result = match token {
        Ok(Path(token)) => match check_token(&token, limits) {
            // Bounded by the request timeout inside, past a fresh hit.
            Ok(()) => auth.get_with(&engine, &token, started).await,
            Err(e) => Err(e),
        },
        Err(_) => Err(LookupError::BadToken(
            "the token is not valid percent-encoded UTF-8".into(),
        )),
    };
    match result {
        Ok((Answer::Card(bytes), source)) => {
            let (outcome, cache) = match source {
                Source::Cache => ("found_cached", HIT),
                Source::Crm => ("found", MISS),
                Source::StaleIfError => ("found_stale", STALE_IF_ERROR),
                Source::StaleIfSlow => ("found_stale", STALE_IF_SLOW),
                Source::StaleWhileRevalidate => ("found_stale", STALE_WHILE_REVALIDATE),
            };
            record(auth.metrics(), outcome, started);
            let mut response = json(StatusCode::OK, bytes);
            response.headers_mut().insert(CACHE_STATUS, cache);
            response
        }
        Ok((Answer::NotFound, _)) => {
            record(auth.metrics(), "not_found", started);
            // A prebuilt body, not an ApiError: its code is reported here.
            crate::telemetry::record::error_code(codes::NOT_FOUND);
            json(StatusCode::NOT_FOUND, Bytes::from_static(NOT_FOUND_BODY))
        }
        Err(err) => {
            let outcome = err.outcome();
            record(auth.metrics(), outcome, started);
            tracing::debug!(outcome, "lookup failed");
            ApiError::from(&err).into_response()
        }
    }
}

async fn empty_token(State(auth): State<Arc<Lookup>>) -> Response {
    record(auth.metrics(), "bad_token", Instant::now());
    error_body(
        StatusCode::BAD_REQUEST,
        codes::BAD_TOKEN,
        "invalid token: the token is empty",
    )
}
