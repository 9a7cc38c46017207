//! Building and running the server: state from settings, the router, the tower
//! stack, the listener and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::cache::{AnswerCache, KeyHasher};
use crate::config::{ConfigError, Settings};
use crate::error::codes;
use crate::front::auth_api;
use crate::front::auth_card::CardBuilder;
use crate::lookup::Lookup;
use crate::mapping::LoadError;
use crate::upstream::{Pipeline, UpstreamClient};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("mapping {0}")]
    Mapping(#[from] LoadError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Per-request limits, taken out of the settings once.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_token_bytes: usize,
    pub request_timeout: Duration,
    pub token_pattern: Option<regex::Regex>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub auth: Lookup,
    pub limits: Limits,
    pub ready: Arc<AtomicBool>,
    pub metrics: PrometheusHandle,
}

impl AppState {
    /// Loads the mapping, reads secrets and builds the clients; everything
    /// that can be wrong with the configuration fails here, before listening.
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        settings.validate()?;
        let cards = CardBuilder::load(&settings.auth_api)?;
        let pipeline = Pipeline::from_mapping_file(&settings.auth_api.mapping, &settings.upstream)?;
        let upstream = UpstreamClient::new(&settings.upstream, pipeline)?;
        let hasher = KeyHasher::from_settings(&settings.cache)?;
        let cache = AnswerCache::new(&settings.cache);
        let auth = Lookup::new(
            auth_api::NAMESPACE,
            hasher,
            cache,
            upstream,
            Arc::new(cards),
        );
        Ok(Self {
            auth,
            limits: Limits {
                max_token_bytes: settings.server.max_token_bytes,
                request_timeout: Duration::from_millis(settings.server.request_timeout_ms),
                // Validated with the settings above.
                token_pattern: settings
                    .server
                    .token_pattern
                    .as_deref()
                    .and_then(|p| regex::Regex::new(p).ok()),
            },
            ready: Arc::new(AtomicBool::new(false)),
            metrics: crate::metrics::handle(),
        })
    }
}

/// The routes, without middleware.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(auth_api::routes())
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(bad_method)
        .with_state(state)
}

/// The tower stack, outermost first: request id → trace (span named by the
/// matched route, never the URI, which holds the token) → propagate the id →
/// catch panics (answered as JSON 500 without the panic text).
pub fn with_middleware(router: Router) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str);
                    let request_id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), route, request_id)
                }),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(CatchPanicLayer::custom(|_panic| {
                auth_api::error_body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::INTERNAL,
                    "Internal error",
                )
            })),
    )
}

async fn healthz() -> Response {
    json_status(StatusCode::OK, r#"{"status":"ok"}"#)
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        json_status(StatusCode::OK, r#"{"status":"ready"}"#)
    } else {
        json_status(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#)
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let cache = state.auth.cache();
    cache.sync().await;
    metrics::gauge!("authbridge_cache_entries").set(cache.entry_count() as f64);
    metrics::gauge!("authbridge_cache_bytes").set(cache.weighted_size() as f64);
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

fn json_status(status: StatusCode, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

async fn no_route() -> Response {
    auth_api::error_body(StatusCode::NOT_FOUND, codes::NO_ROUTE, "No such endpoint")
}

async fn bad_method() -> Response {
    auth_api::error_body(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::BAD_METHOD,
        "Method not allowed",
    )
}

/// A server bound to its port, not yet serving.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: AppState,
}

impl Application {
    /// Builds the state and binds the listener (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let state = AppState::from_settings(&settings)?;
        let addr = settings.server.listen.clone();
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { addr, source })?;
        Ok(Self {
            listener,
            local_addr,
            state,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.local_addr.port()
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_with_shutdown(shutdown_signal()).await
    }

    /// Serves until `signal` completes: readiness flips to not-ready first, then
    /// in-flight requests finish.
    pub async fn run_with_shutdown(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let ready = Arc::clone(&self.state.ready);
        let app = with_middleware(router(self.state));
        ready.store(true, Ordering::Release);
        tracing::info!(addr = %self.local_addr, "authbridge listening");
        axum::serve(self.listener, app)
            .with_graceful_shutdown(async move {
                signal.await;
                ready.store(false, Ordering::Release);
                tracing::info!("shutting down: finishing in-flight requests");
            })
            .await
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
