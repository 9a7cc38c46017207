//! `authbridge playground`: one page, served by the binary itself, where an
//! integrator edits a mapping and a CRM sample side by side and sees, as they
//! type, the card, where each field came from, and every error at its line.
//!
//! The page posts the pair to `/api/run`, which is [`tools::trial`]: the same
//! explained dry run as `authbridge map`. It shows CRM values, so it listens
//! on loopback only, and its assets are embedded (no CDN: it works offline).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::config::AuthApiSettings;
use crate::schema::ApiVersion;
use crate::tools;

/// The page, with its script and style inline.
const PAGE: &str = include_str!("page.html");

/// What the playground starts with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where it listens; a loopback address (`127.0.0.1:0` picks a port).
    pub listen: String,
    /// The API version preselected on the page.
    pub version: ApiVersion,
    /// A preloaded mapping: its file name and text.
    pub mapping: Option<(String, String)>,
    /// A preloaded CRM sample.
    pub input: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".into(),
            version: ApiVersion::V1_2,
            mapping: None,
            input: None,
        }
    }
}

/// What the page loads first: the preloaded pair and version.
#[derive(Debug, Clone, Serialize)]
struct Initial {
    name: String,
    mapping: String,
    input: String,
    version: ApiVersion,
}

/// One run the page asks for.
#[derive(Debug, Deserialize)]
struct Run {
    /// The mapping's file name (it picks the users API schema for
    /// `*login`, and names the file in messages).
    name: String,
    mapping: String,
    input: String,
    version: ApiVersion,
}

/// A bound, not yet serving playground.
#[derive(Debug)]
pub struct Playground {
    listener: TcpListener,
    initial: Arc<Initial>,
}

impl Playground {
    /// Binds the listener (refusing any address but loopback: the page shows
    /// CRM values).
    pub async fn bind(options: Options) -> Result<Self, String> {
        let addr: SocketAddr = options
            .listen
            .parse()
            .map_err(|e| format!("--listen {}: {e}", options.listen))?;
        if !addr.ip().is_loopback() {
            return Err(format!(
                "--listen {addr}: the playground shows CRM values, so it listens on loopback only (127.0.0.1 or ::1)"
            ));
        }
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let (name, mapping) = options
            .mapping
            .unwrap_or_else(|| ("mapping.toml".into(), String::new()));
        Ok(Self {
            listener,
            initial: Arc::new(Initial {
                name,
                mapping,
                input: options.input.unwrap_or_else(|| "{}".into()),
                version: options.version,
            }),
        })
    }

    /// The page's address (`http://127.0.0.1:PORT/`).
    pub fn url(&self) -> String {
        match self.listener.local_addr() {
            Ok(addr) => format!("http://{addr}/"),
            Err(_) => String::new(),
        }
    }

    /// Serves until the process ends.
    pub async fn run(self) -> std::io::Result<()> {
        axum::serve(self.listener, router(self.initial)).await
    }
}

/// The page, its first pair and the run endpoint.
fn router(initial: Arc<Initial>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/initial", get(first))
        .route("/api/run", post(run))
        .with_state(initial)
}

async fn page() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            // Nothing on the page comes from elsewhere.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
        ],
        Html(PAGE),
    )
}

async fn first(State(initial): State<Arc<Initial>>) -> Json<Initial> {
    Json((*initial).clone())
}

/// The explained dry run of the pair; off the async workers, as a jq rule
/// may compute for its whole budget.
async fn run(Json(run): Json<Run>) -> impl IntoResponse {
    let trial = tokio::task::spawn_blocking(move || {
        let settings = AuthApiSettings {
            api_version: run.version,
            ..Default::default()
        };
        tools::trial(&run.name, &run.mapping, &settings, &run.input)
    })
    .await
    .unwrap_or_else(|e| tools::Trial {
        input_error: Some(format!("the run failed: {e}")),
        ..Default::default()
    });
    Json(trial)
}
