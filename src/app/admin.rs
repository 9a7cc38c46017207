//! The admin API, on its own listen address (off unless `admin.listen` is
//! set) and guarded by a bearer token compared in constant time: purge one
//! token's card, purge all, reload, and show cache and breaker state.
//!
//! The token to purge travels in the request body, never in the path, so it
//! stays out of access logs.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;

use crate::app::reload::Reloader;
use crate::config::{AdminSettings, ConfigError, read_secret};
use crate::lookup::Lookup;
use crate::secrets::{digest, matches};

/// What the admin handlers reach.
#[derive(Clone)]
pub struct AdminState {
    pub lookup: Lookup,
    pub reloader: Arc<Reloader>,
    token: [u8; 32],
}

impl AdminState {
    /// The admin state; reads the admin token.
    pub fn new(
        s: &AdminSettings,
        lookup: Lookup,
        reloader: Arc<Reloader>,
    ) -> Result<Self, ConfigError> {
        let token = read_secret(
            ("admin.token_env", s.token_env.as_deref()),
            ("admin.token_file", s.token_file.as_deref()),
        )?
        .ok_or_else(|| {
            ConfigError::Invalid(vec![(
                "admin.token_env".into(),
                "the admin API needs a token".into(),
            )])
        })?;
        Ok(Self {
            lookup,
            reloader,
            token: digest(format!("Bearer {}", token.expose_secret()).as_bytes()),
        })
    }
}

/// The admin routes.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/admin/cache/purge", post(purge))
        .route("/admin/cache/purge-all", post(purge_all))
        .route("/admin/reload", post(reload))
        .route("/admin/stats", get(stats))
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn guard(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(AUTHORIZATION).map(|v| v.as_bytes());
    if presented.is_some_and(|p| matches(p, &state.token)) {
        next.run(request).await
    } else {
        state
            .lookup
            .metrics()
            .counter_with("authbridge_access_denied_total", &[("reason", "admin")])
            .increment(1);
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "missing or wrong admin token"})),
        )
            .into_response()
    }
}

#[derive(Deserialize)]
struct Purge {
    token: String,
}

async fn purge(
    State(state): State<AdminState>,
    body: Result<Json<Purge>, axum::extract::rejection::JsonRejection>,
) -> Response {
    match body {
        Ok(Json(p)) => Json(json!({"purged": state.lookup.purge(&p.token).await})).into_response(),
        Err(_) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "body must be {\"token\": \"...\"}"})),
        )
            .into_response(),
    }
}

async fn purge_all(State(state): State<AdminState>) -> Response {
    state.lookup.purge_all().await;
    Json(json!({"purged": "all"})).into_response()
}

async fn reload(State(state): State<AdminState>) -> Response {
    match state.reloader.reload().await {
        Ok(r) => Json(json!({
            "reloaded": true,
            "mapping_changed": r.mapping_changed,
            "users_mappings_changed": r.users_mappings_changed,
            "needs_restart": r.needs_restart,
        }))
        .into_response(),
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({"reloaded": false, "errors": e.lines().collect::<Vec<_>>()})),
        )
            .into_response(),
    }
}

async fn stats(State(state): State<AdminState>) -> Response {
    let cache = state.lookup.cache();
    cache.sync().await;
    let engine = state.lookup.engine();
    Json(json!({
        "cache": {"entries": cache.entry_count(), "bytes": cache.weighted_size()},
        "breaker": {"state": state.lookup.transport().breaker_state().name()},
        "mapping": {"file": engine.mapping_file, "generation": state.lookup.generation()},
    }))
    .into_response()
}
