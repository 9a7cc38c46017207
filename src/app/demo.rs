//! `authbridge demo`: a built-in CRM on loopback with three sample clients,
//! and authbridge in front of it, so a newcomer sees the whole flow with one
//! command and a few curl calls.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::{Application, StartupError};
use crate::config::{ConfigError, Settings};

/// The demo's tokens and what the CRM knows about them.
pub const CLIENTS: &[(&str, &str)] = &[
    (
        "demo-alice",
        include_str!("../../tests/fixtures/generic-bank/alice.input.json"),
    ),
    (
        "demo-bob",
        include_str!("../../tests/fixtures/generic-bank/bob-disabled.input.json"),
    ),
];

/// The mappings the demo uses, embedded so the demo runs from any directory.
const MAPPING: &str = include_str!("../../mappings/generic-bank.toml");
const USERS_MAPPINGS: &[(&str, &str)] = &[
    (
        "get",
        include_str!("../../mappings/users/generic-bank-get.toml"),
    ),
    (
        "update",
        include_str!("../../mappings/users/generic-bank-update.toml"),
    ),
    (
        "otp-request",
        include_str!("../../mappings/users/generic-bank-otp-request.toml"),
    ),
    (
        "otp-confirm",
        include_str!("../../mappings/users/generic-bank-otp-confirm.toml"),
    ),
    (
        "login",
        include_str!("../../mappings/users/generic-bank-login.toml"),
    ),
    (
        "orders",
        include_str!("../../mappings/users/generic-bank-orders.toml"),
    ),
];

/// The commerce platform's key in the demo.
pub const USERS_KEY: &str = "demo-platform-key";
/// The demo shopper (phone number as the platform sends it), their code and password.
const SHOPPER: &str = "79991234567";
const SHOPPER_CODE: &str = "123456";
const SHOPPER_PASSWORD: &str = "demo-password";
const CUSTOMER: &str = include_str!("../../tests/fixtures/users/customer-anna.json");
/// The shopper's orders, as the golden fixture's CRM answer has them.
const ORDERS: &str = include_str!("../../tests/fixtures/users/generic-bank-orders/anna.input.json");

fn customer() -> serde_json::Value {
    serde_json::from_str(CUSTOMER).unwrap_or_default()
}

async fn crm_customer(Path(id): Path<String>) -> Response {
    if id == SHOPPER {
        axum::Json(customer()).into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn crm_orders(Path(id): Path<String>) -> Response {
    if id == SHOPPER {
        let fixture: serde_json::Value = serde_json::from_str(ORDERS).unwrap_or_default();
        axum::Json(fixture["steps"]["orders"].clone()).into_response()
    } else {
        // An unknown customer: the platform gets an error, not "no orders".
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn crm_update(
    Path(id): Path<String>,
    axum::Json(changes): axum::Json<serde_json::Value>,
) -> Response {
    if id != SHOPPER {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut c = customer();
    for (from, to) in [
        ("fullName", "fullName"),
        ("phone", "phone"),
        ("email", "email"),
    ] {
        if let Some(v) = changes.get(from) {
            c["customer"][to] = v.clone();
        }
    }
    axum::Json(c).into_response()
}

async fn crm_otp_send(axum::Json(body): axum::Json<serde_json::Value>) -> Response {
    if body["phone"] == SHOPPER {
        axum::Json(serde_json::json!({"sent": true, "resendAfter": 60, "attempts": 3, "length": 6, "maskedPhone": "7999***4567"}))
            .into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn crm_otp_verify(axum::Json(body): axum::Json<serde_json::Value>) -> Response {
    if body["phone"] == SHOPPER && body["code"] == SHOPPER_CODE {
        let mut c = customer();
        c["verified"] = serde_json::Value::Bool(true);
        axum::Json(c).into_response()
    } else {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"verified": false})),
        )
            .into_response()
    }
}

async fn crm_login(axum::Json(body): axum::Json<serde_json::Value>) -> Response {
    if body["login"] == SHOPPER && body["password"] == SHOPPER_PASSWORD {
        axum::Json(customer()).into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

async fn crm_client(Path(token): Path<String>) -> Response {
    match CLIENTS.iter().find(|(t, _)| *t == token) {
        Some((_, body)) => ([("content-type", "application/json")], *body).into_response(),
        None => (StatusCode::NOT_FOUND, r#"{"error":"unknown session"}"#).into_response(),
    }
}

/// The demo CRM's routes (the generic bank CRM shape).
pub fn crm_router() -> Router {
    Router::new()
        .route("/api/v1/sessions/{token}/client", get(crm_client))
        .route(
            "/api/v1/customers/{id}",
            get(crm_customer).patch(crm_update),
        )
        .route("/api/v1/customers/{id}/orders", get(crm_orders))
        .route("/api/v1/otp/send", post(crm_otp_send))
        .route("/api/v1/otp/verify", post(crm_otp_verify))
        .route("/api/v1/auth/login", post(crm_login))
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

/// Settings for authbridge in front of the demo CRM at `crm`; the mappings
/// and the platform key are written into `dir`.
pub fn settings(
    crm: SocketAddr,
    listen: SocketAddr,
    dir: &std::path::Path,
) -> std::io::Result<Settings> {
    let mapping = dir.join("generic-bank.toml");
    std::fs::write(&mapping, MAPPING)?;
    let mut s = Settings::default();
    s.server.listen = listen;
    s.upstream.base_url = Some(
        format!("http://{crm}")
            .parse()
            .map_err(std::io::Error::other)?,
    );
    s.upstream.path = "/api/v1/sessions/{token}/client".into();
    s.auth_api.mapping = mapping;
    s.reload.watch_files = false;
    // Nothing routes to a demo through a load balancer: Ctrl-C stops at once.
    s.server.shutdown_delay = std::time::Duration::ZERO;
    // The second front, with its own mappings and key.
    let dir = dir.join("users");
    std::fs::create_dir_all(&dir)?;
    for (name, text) in USERS_MAPPINGS {
        std::fs::write(dir.join(format!("generic-bank-{name}.toml")), text)?;
    }
    let key = dir.join("platform.key");
    std::fs::write(&key, USERS_KEY)?;
    let u = &mut s.users_api;
    u.enabled = true;
    u.api_key_file = Some(key);
    for (op, name) in [
        (&mut u.get, "get"),
        (&mut u.update, "update"),
        (&mut u.otp_request, "otp-request"),
        (&mut u.otp_confirm, "otp-confirm"),
        (&mut u.login, "login"),
        (&mut u.orders, "orders"),
    ] {
        op.mapping = dir.join(format!("generic-bank-{name}.toml"));
    }
    Ok(s)
}

/// Runs the demo until Ctrl-C.
pub async fn run(listen: &str) -> Result<(), StartupError> {
    // The command line's address, read as the config's `server.listen` is.
    let listen: SocketAddr = listen.parse().map_err(|_| {
        ConfigError::invalid("server.listen", "must be an address like 0.0.0.0:8080")
    })?;
    let crm = start_crm().await?;
    // Removed when `run` returns, Ctrl-C and SIGTERM included (both end the
    // server normally); only a SIGKILL leaves it behind.
    let files = tempfile::Builder::new()
        .prefix("authbridge-demo-")
        .tempdir()?;
    let settings = settings(crm, listen, files.path())?;
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.local_addr());
    println!(
        "\nauthbridge demo\n  demo CRM:   http://{crm}/api/v1/sessions/{{token}}/client\n  authbridge: {base}\n\nTry:\n  \
         curl -i {base}/rest/chat/client/id/demo-alice     # 200: card with two companies\n  \
         curl -i {base}/rest/chat/client/id/demo-bob       # 200: a disabled client (enabled=false)\n  \
         curl -i {base}/rest/chat/client/id/demo-nobody    # 404: errorCode 1001 Client not found\n  \
         curl -i {base}/rest/chat/client/id/bad%0Atoken    # 400: errorCode 1002 (control character)\n  \
         curl -s {base}/metrics | grep authbridge_         # Prometheus metrics\n\n\
         The commerce platform's users API (key {USERS_KEY}):\n  \
         curl -s {base}/users/get -H 'authorization: Bearer {USERS_KEY}' --json '{{\"userIdentifier\":\"{SHOPPER}\"}}'\n  \
         curl -s {base}/users/otp/request -H 'authorization: Bearer {USERS_KEY}' --json '{{\"userIdentifier\":\"{SHOPPER}\"}}'\n  \
         curl -s {base}/users/otp/confirm -H 'authorization: Bearer {USERS_KEY}' --json '{{\"userIdentifier\":\"{SHOPPER}\",\"otp\":\"{SHOPPER_CODE}\"}}'\n  \
         curl -s {base}/users/otp/confirm -H 'authorization: Bearer {USERS_KEY}' --json '{{\"userIdentifier\":\"{SHOPPER}\",\"otp\":\"000000\"}}'   # error\n  \
         curl -s {base}/users/login -H 'authorization: Bearer {USERS_KEY}' --json '{{\"login\":\"{SHOPPER}\",\"password\":\"{SHOPPER_PASSWORD}\"}}'\n  \
         curl -s {base}/users/orders -H 'authorization: Bearer {USERS_KEY}' --json '{{\"userIdentifier\":\"{SHOPPER}\"}}'\n  \
         curl -s {base}/users/orders -H 'authorization: Bearer {USERS_KEY}' --json '{{\"userIdentifier\":\"70000000000\"}}'   # error: unknown user\n  \
         curl -s -X PATCH {base}/users/update -H 'authorization: Bearer {USERS_KEY}' --json '{{\"userIdentifier\":\"{SHOPPER}\",\"name\":\"Иванова Анна Сергеевна\"}}'\n\n\
         Ctrl-C stops.\n"
    );
    app.run_until_stopped().await?;
    drop(files);
    Ok(())
}
