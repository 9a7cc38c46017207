//! The access log: one INFO event per request, target `authbridge::access`,
//! from the request's [`Record`] and its answer. It names the route (never
//! the URI, which holds the token) and nothing the caller sent but the
//! request id.

use std::time::Duration;

use tracing::Level;

use super::record::{Record, Report};

/// The log target: `RUST_LOG=authbridge::access=off` silences the lines.
pub const TARGET: &str = "authbridge::access";

/// Whether the level filter lets access lines through: a cached callsite
/// check, one branch once the callsite is registered.
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, Level::INFO)
}

/// What the request layer knows of the answer.
pub struct Answered<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
}

/// Writes the line of one answered request.
pub fn log(answered: &Answered<'_>, record: &Record, report: &Report, took: Duration) {
    tracing::info!(
        target: TARGET,
        request_id = answered.request_id,
        method = answered.method,
        route = answered.route,
        status = answered.status,
        error_code = report.error_code,
        outcome = report.outcome,
        cache = report.cache,
        duration_us = took.as_micros() as u64,
        crm_calls = report.crm_calls,
        crm_status = report.crm_status,
        client = record.client.map(tracing::field::display),
    );
}
