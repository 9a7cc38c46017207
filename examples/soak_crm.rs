//! A fault-injecting mock CRM for `tools/soak`: the token's prefix picks the
//! answer, so one wrk script can mix every CRM behaviour the adapter must
//! survive for hours, each with its documented status:
//!
//! | token prefix | CRM answer                           | authbridge answers |
//! |--------------|--------------------------------------|--------------------|
//! | `nf-`        | 404                                  | 404 / 1001         |
//! | `e500-`      | 500                                  | 502 / 1006 (or 503 while the breaker is open) |
//! | `junk-`      | 200 with a body that is not JSON     | 502 / 1007         |
//! | `slow-`      | the card after `SLOW_MS` (2000)      | 504 / 1004 past `upstream.timeout_ms` |
//! | anything else| the generic-bank card                | 200                |
//!
//! Connection refused is the soak stopping this process for an outage window.
//! `GET /calls` counts the lookups served.
//!
//! Run: `cargo run --release --example soak_crm -- PORT` (env `SLOW_MS`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[derive(Clone)]
struct Crm {
    card: &'static str,
    slow: Duration,
    calls: Arc<AtomicU64>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "0".into())
        .parse()?;
    let slow_ms: u64 = std::env::var("SLOW_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let card: &'static str = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/generic-bank/alice.input.json"
    ))?
    .leak();
    let crm = Crm {
        card,
        slow: Duration::from_millis(slow_ms),
        calls: Arc::new(AtomicU64::new(0)),
    };
    let app =
        Router::new()
            .route("/api/v1/sessions/{token}/client", get(client))
            .route(
                "/calls",
                get(|State(crm): State<Crm>| async move {
                    crm.calls.load(Ordering::Relaxed).to_string()
                }),
            )
            .with_state(crm);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("soak_crm listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn client(State(crm): State<Crm>, Path(token): Path<String>) -> Response {
    crm.calls.fetch_add(1, Ordering::Relaxed);
    let json = [("content-type", "application/json")];
    if token.starts_with("nf-") {
        (
            StatusCode::NOT_FOUND,
            json,
            r#"{"error":"no such session"}"#,
        )
            .into_response()
    } else if token.starts_with("e500-") {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json,
            r#"{"error":"db down"}"#,
        )
            .into_response()
    } else if token.starts_with("junk-") {
        (StatusCode::OK, json, "{\"client\": {\"id\": 1, <html>").into_response()
    } else if token.starts_with("slow-") {
        tokio::time::sleep(crm.slow).await;
        (StatusCode::OK, json, crm.card).into_response()
    } else {
        (StatusCode::OK, json, crm.card).into_response()
    }
}
