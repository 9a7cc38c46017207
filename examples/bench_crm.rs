//! A fast mock CRM for `tools/load-bench`: answers
//! `GET /api/v1/sessions/{token}/client` with the generic-bank fixture for any
//! token, and `GET /calls` with how many such requests it has served, so the
//! bench can prove that every authbridge miss reached the CRM.
//!
//! It runs as its own process so that its CPU time is measured apart from
//! the adapter in front of it.
//!
//! Run: `cargo run --release --example bench_crm -- PORT` (or env `PORT`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
        .unwrap_or_else(|| "0".into())
        .parse()?;
    let body: &'static str = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/generic-bank/alice.input.json"
    ))?
    .leak();
    let calls = Arc::new(AtomicU64::new(0));
    let counted = calls.clone();
    let app = Router::new()
        .route(
            "/api/v1/sessions/{token}/client",
            get(move || {
                counted.fetch_add(1, Ordering::Relaxed);
                async move { ([("content-type", "application/json")], body) }
            }),
        )
        .route(
            "/calls",
            get(move || async move { calls.load(Ordering::Relaxed).to_string() }),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("bench_crm listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
