//! Building and running the server: state from settings, the router, the tower
//! stack, the listener and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio::net::TcpListener;

use crate::app::client_addr::TrustedProxies;
use crate::app::reload::Reloader;
pub use crate::app::request_span::App;
use crate::app::request_span::RequestSpanLayer;
use crate::config::{Settings, UsersApiSettings};
use crate::front::auth_api::access::{self, Access};
use crate::front::auth_api::{self, codes};
use crate::front::users_api::{self, UsersState};
use crate::json_response::json;
use crate::lookup::Lookup;
use crate::lookup::cache::{AnswerCache, KeyHasher};
use crate::lookup::shared_cache::SharedCache;
use crate::metrics::Metrics;
use crate::upstream::Transport;
use admin::AdminState;
use server::{ConnLimits, ReloadableCert};
use tower::Layer as _;

pub mod admin;
pub mod auth_engine;
pub mod client_addr;
pub mod conn_io;
pub mod demo;
pub mod first_bytes;
pub mod http_refusals;
pub mod reload;
pub mod request_id;
pub mod request_span;
pub mod server;
pub mod startup_error;

pub use crate::app::auth_engine::build_engine;
pub use crate::app::startup_error::StartupError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub auth: Lookup,
    /// The users API (its settings, for the paths) when enabled.
    pub users: Option<(Arc<UsersApiSettings>, UsersState)>,
    pub access: Arc<Access>,
    pub ready: Arc<AtomicBool>,
    /// This application's own registry: everything it serves, fetches and
    /// runs in the background counts here, and only here.
    pub metrics: Metrics,
    /// The OpenAPI document of this configuration, made at start-up and
    /// made again by each reload (see [`crate::openapi::after_reload`]).
    pub openapi: Arc<ArcSwap<Bytes>>,
}

impl AppState {
    /// Loads the mapping, reads secrets and builds the clients; everything
    /// that can be wrong with the configuration fails here, before listening.
    pub fn from_settings(settings: &Settings) -> Result<Self, StartupError> {
        let metrics = Metrics::new();
        let engine = build_engine(settings)?;
        let transport = Arc::new(Transport::with_workers(
            &settings.upstream,
            crate::worker::count(settings.server.workers),
            metrics.clone(),
        )?);
        let hasher = KeyHasher::from_settings(&settings.cache)?;
        let cache = AnswerCache::new(&settings.cache);
        let shared = SharedCache::new(&settings.redis, &metrics)?;
        let users = if settings.users_api.enabled {
            Some((
                Arc::new(settings.users_api.clone()),
                UsersState::new(settings, transport.clone(), shared.as_ref())?,
            ))
        } else {
            None
        };
        let auth = Lookup::new(
            auth_api::NAMESPACE,
            hasher,
            cache,
            transport,
            engine,
            shared,
        );
        Ok(Self {
            auth,
            users,
            access: Arc::new(Access::new(&settings.server.access, metrics.clone())?),
            ready: Arc::new(AtomicBool::new(false)),
            metrics,
            openapi: Arc::new(ArcSwap::from_pointee(Bytes::from(
                crate::openapi::to_bytes(settings),
            ))),
        })
    }
}

/// The routes, without middleware.
///
/// axum clones a route's state for each request (with the route, then in
/// the `State` extractor). Every state here is wrapped in an `Arc` made by
/// this call, and each worker builds its own router (see
/// [`server::spawn_workers`]): those clones then write only this worker's
/// reference counts. Clones of the shared handles themselves would write
/// one cache line from every worker on every request, and under load that
/// line moves between cores each time.
pub fn router(state: AppState) -> Router {
    let mut auth = auth_api::routes(state.auth.clone());
    if !state.access.is_open() {
        auth = auth.route_layer(axum::middleware::from_fn_with_state(
            Arc::new(state.access.clone()),
            access::guard,
        ));
    }
    let mut router = Router::new().merge(auth);
    if let Some((settings, users)) = &state.users {
        router = router.merge(users_api::routes(settings, users.clone()));
    }
    router
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(crate::openapi::OPENAPI_PATH, get(openapi))
        .fallback(no_route)
        .method_not_allowed_fallback(auth_api::wrong_method)
        .with_state(Arc::new(state))
}

/// The middleware: one layer around the router (see
/// [`crate::app::request_span`]) that gives each request its id (the
/// caller's `x-request-id` or a new one, set on the answer) and its DEBUG
/// span (named by the matched route, never the URI, which holds the token),
/// writes its access line when `access_log`, and answers a panic with a JSON
/// 500 without the panic text (counted in `metrics`). The routes report
/// their route to it only when something can use it.
pub fn with_middleware(router: Router, metrics: Metrics, access_log: bool) -> App {
    let router = if access_log || request_span::span_can_be_on() {
        router.route_layer(axum::middleware::from_fn(request_span::report_route))
    } else {
        router
    };
    RequestSpanLayer::new(metrics, access_log).layer(router)
}

async fn healthz() -> Response {
    json(StatusCode::OK, r#"{"status":"ok"}"#)
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        json(StatusCode::OK, r#"{"status":"ready"}"#)
    } else {
        json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#)
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let cache = state.auth.cache();
    cache.sync().await;
    let metrics = &state.metrics;
    metrics
        .gauge("authbridge_cache_entries")
        .set(cache.entry_count() as f64);
    metrics
        .gauge("authbridge_cache_bytes")
        .set(cache.weighted_size() as f64);
    let mut response = state.metrics.render().into_response();
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Open like the probes: the document holds no secret, and the bank's
/// integrators read it before they hold the chat server's credentials.
async fn openapi(State(state): State<Arc<AppState>>) -> Response {
    json(StatusCode::OK, Bytes::clone(&state.openapi.load()))
}

async fn no_route() -> Response {
    auth_api::error_body(StatusCode::NOT_FOUND, codes::NO_ROUTE, "No such endpoint")
}

/// A server bound to its port(s), not yet serving.
pub struct Application {
    /// The first workers' socket (`SO_REUSEPORT`; the others join it).
    listener: std::net::TcpListener,
    local_addr: SocketAddr,
    workers: server::Workers,
    state: AppState,
    limits: ConnLimits,
    cert: Option<Arc<ReloadableCert>>,
    reloader: Arc<Reloader>,
    /// Watch the files, reloading once they are quiet this long.
    watch_files: Option<Duration>,
    admin: Option<(TcpListener, AdminState)>,
    /// Readiness 503 while still serving, after the stop signal.
    shutdown_delay: Duration,
    /// `telemetry.access_log`.
    access_log: bool,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartupError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

/// The serving socket, shareable by the workers.
fn bind_shared(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr), StartupError> {
    let listener = server::bind_shared(addr).map_err(|source| StartupError::Bind {
        addr: addr.to_string(),
        source,
    })?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

impl Application {
    /// Builds the state and binds the listeners (port 0 picks a free port).
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_config_file(settings, None).await
    }

    /// As [`build`](Self::build), remembering the config file to re-read on reload.
    pub async fn build_with_config_file(
        settings: Settings,
        config_file: Option<PathBuf>,
    ) -> Result<Self, StartupError> {
        let state = AppState::from_settings(&settings)?;
        let cert = match (
            &settings.server.tls.cert_file,
            &settings.server.tls.key_file,
        ) {
            (Some(cert), Some(key)) => {
                Some(ReloadableCert::load(cert, key).map_err(StartupError::Tls)?)
            }
            _ => None,
        };
        // Read by the access rules and the access line only; both are fixed
        // at start-up (a reload swaps neither).
        let reads_client = !state.access.is_open() || settings.telemetry.access_log;
        let proxies = reads_client.then(|| {
            TrustedProxies::new(
                &settings.server.trusted_proxies,
                settings.server.client_ip_header,
                state.metrics.clone(),
            )
        });
        let (listener, local_addr) = bind_shared(settings.server.listen)?;
        let reloader = Reloader::new(
            config_file,
            settings.clone(),
            reload::Parts {
                lookup: state.auth.clone(),
                users: state.users.as_ref().map(|(_, users)| users.clone()),
                cert: cert.clone(),
                openapi: state.openapi.clone(),
            },
        );
        let admin = match settings.admin.listen {
            None => None,
            Some(addr) => {
                let admin_state =
                    AdminState::new(&settings.admin, state.auth.clone(), reloader.clone())?;
                Some((bind(addr).await?.0, admin_state))
            }
        };
        Ok(Self {
            listener,
            local_addr,
            workers: server::Workers {
                count: crate::worker::count(settings.server.workers),
                pin: settings.server.pin_workers,
            },
            state,
            limits: ConnLimits {
                max_connections: settings.server.max_connections,
                header_read_timeout: settings.server.header_read_timeout,
                drain: settings.server.drain_timeout,
                proxies,
            },
            cert,
            reloader,
            watch_files: settings
                .reload
                .watch_files
                .then_some(settings.reload.debounce),
            admin,
            shutdown_delay: settings.server.shutdown_delay,
            access_log: settings.telemetry.access_log,
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

    /// The admin API's bound address, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|(l, _)| l.local_addr().ok())
    }

    /// The reloader (for tests and embedders).
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// Serves until Ctrl-C or SIGTERM; reloads on SIGHUP.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.reloader.on_sighup();
        self.run_with_shutdown(shutdown_signal()).await
    }

    /// Serves until `signal` completes: readiness flips to not-ready first
    /// and requests are still served for `server.shutdown_delay_ms`; then the
    /// listener closes and in-flight requests finish.
    pub async fn run_with_shutdown(
        self,
        signal: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let ready = Arc::clone(&self.state.ready);
        let metrics = self.state.metrics.clone();
        let (state, access_log) = (self.state, self.access_log);
        let app_metrics = metrics.clone();
        let make_app =
            move || with_middleware(router(state.clone()), app_metrics.clone(), access_log);
        let _watcher = self
            .watch_files
            .and_then(|debounce| self.reloader.watch_files(debounce));
        let (stop_admin, admin_stopped) = tokio::sync::watch::channel(false);
        if let Some((listener, admin_state)) = self.admin {
            let admin_app = admin::router(admin_state);
            let mut stopped = admin_stopped.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, admin_app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.changed().await;
                    })
                    .await;
            });
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let workers = server::spawn_workers(
            self.listener,
            self.workers,
            Arc::new(make_app),
            self.limits,
            self.cert.clone(),
            stopped,
            metrics,
        )?;
        ready.store(true, Ordering::Release);
        tracing::info!(
            addr = %self.local_addr,
            tls = self.cert.is_some(),
            workers = workers.len(),
            "authbridge listening"
        );
        signal.await;
        ready.store(false, Ordering::Release);
        if !self.shutdown_delay.is_zero() {
            // Load balancers see 503 on /readyz and stop routing here; the
            // requests they still send meanwhile are served, not refused.
            tracing::info!(
                delay_ms = self.shutdown_delay.as_millis() as u64,
                "shutting down: not ready, still serving until the delay ends"
            );
            tokio::select! {
                () = tokio::time::sleep(self.shutdown_delay) => {},
                () = shutdown_signal() => tracing::info!("second stop signal: skipping the delay"),
            }
        }
        tracing::info!("shutting down: listener closed, finishing in-flight requests");
        let _ = stop.send(true);
        // The workers drain their connections (bounded by the drain time).
        let _ = tokio::task::spawn_blocking(move || {
            for worker in workers {
                let _ = worker.join();
            }
        })
        .await;
        let _ = stop_admin.send(true);
        Ok(())
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
