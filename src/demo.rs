//! `authbridge demo`: a built-in CRM on loopback with three sample clients,
//! and authbridge in front of it, so a newcomer sees the whole flow with one
//! command and a few curl calls.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::config::Settings;
use crate::startup::{Application, StartupError};

/// The demo's tokens and what the CRM knows about them.
pub const CLIENTS: &[(&str, &str)] = &[
    (
        "demo-alice",
        include_str!("../tests/fixtures/generic-bank/alice.input.json"),
    ),
    (
        "demo-bob",
        include_str!("../tests/fixtures/generic-bank/bob-disabled.input.json"),
    ),
];

/// The mapping the demo uses, embedded so the demo runs from any directory.
const MAPPING: &str = include_str!("../mappings/generic-bank.toml");

async fn crm_client(Path(token): Path<String>) -> Response {
    match CLIENTS.iter().find(|(t, _)| *t == token) {
        Some((_, body)) => ([("content-type", "application/json")], *body).into_response(),
        None => (StatusCode::NOT_FOUND, r#"{"error":"unknown session"}"#).into_response(),
    }
}

/// The demo CRM's routes (the generic bank CRM shape).
pub fn crm_router() -> Router {
    Router::new().route("/api/v1/sessions/{token}/client", get(crm_client))
}

/// Starts the demo CRM on an ephemeral loopback port; returns its address.
pub async fn start_crm() -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, crm_router()).await;
    });
    Ok(addr)
}

/// Settings for authbridge in front of the demo CRM at `crm`.
pub fn settings(crm: SocketAddr, listen: &str) -> std::io::Result<Settings> {
    let mapping = std::env::temp_dir().join(format!("authbridge-demo-{}.toml", std::process::id()));
    std::fs::write(&mapping, MAPPING)?;
    let mut s = Settings::default();
    s.server.listen = listen.to_owned();
    s.upstream.base_url = format!("http://{crm}");
    s.upstream.path = "/api/v1/sessions/{token}/client".into();
    s.auth_api.mapping = mapping;
    Ok(s)
}

/// Runs the demo until Ctrl-C.
pub async fn run(listen: &str) -> Result<(), StartupError> {
    let crm = start_crm().await?;
    let settings = settings(crm, listen)?;
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.local_addr());
    println!(
        "\nauthbridge demo\n  demo CRM:   http://{crm}/api/v1/sessions/{{token}}/client\n  authbridge: {base}\n\nTry:\n  \
         curl -i {base}/rest/chat/client/id/demo-alice     # 200: card with two companies\n  \
         curl -i {base}/rest/chat/client/id/demo-bob       # 200: a disabled client (enabled=false)\n  \
         curl -i {base}/rest/chat/client/id/demo-nobody    # 404: errorCode 1001 Client not found\n  \
         curl -i {base}/rest/chat/client/id/bad%0Atoken    # 400: errorCode 1002 (control character)\n  \
         curl -s {base}/metrics | grep authbridge_         # Prometheus metrics\n\nCtrl-C stops.\n"
    );
    Ok(app.run_until_stopped().await?)
}
