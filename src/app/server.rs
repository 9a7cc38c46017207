//! Accepting connections: a cap on open connections, a header-read timeout so
//! slow or idle clients cannot hold the server, optional TLS termination with
//! certificates that can be reloaded without a restart, the peer address for
//! access control, and graceful shutdown.
//!
//! `axum::serve` has none of these knobs, so the accept loop is ours, built on
//! hyper-util's connection builder and graceful-shutdown watcher.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::app::client_addr::{ClientAddr, TrustedProxies};
use crate::app::conn_io::ConnIo;
use crate::app::request_span::App;
use crate::config::PinWorkers;
use crate::metrics::Metrics;
use arc_swap::ArcSwap;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// Connection-level limits, and whose forwarding headers are believed.
#[derive(Debug, Clone)]
pub struct ConnLimits {
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (from the accept, and
    /// after each answer).
    pub header_read_timeout: Duration,
    /// How long in-flight requests may take to finish after the listener
    /// closes.
    pub drain: Duration,
    /// Resolves each request's [`ClientAddr`]; `None` when nothing reads it
    /// (no inbound access rules and no access log, both fixed at start-up),
    /// so a request then carries no extension of ours.
    pub proxies: Option<TrustedProxies>,
}

/// A server certificate that can be swapped while the server runs.
#[derive(Debug)]
pub struct ReloadableCert {
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
}

impl ReloadableCert {
    /// Loads the certificate chain and key (PEM).
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Arc<Self>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = ArcSwap::from_pointee(certified_key(&provider, cert_file, key_file)?);
        Ok(Arc::new(Self {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider,
            current,
        }))
    }

    /// Re-reads the files; on any error the current certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        let key = certified_key(&self.provider, &self.cert_file, &self.key_file)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// The rustls server configuration that serves this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, String> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn certified_key(
    provider: &CryptoProvider,
    cert_file: &Path,
    key_file: &Path,
) -> Result<CertifiedKey, String> {
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            format!(
                "server.tls.cert_file: cannot read a PEM certificate chain from {}: {e}",
                cert_file.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls.cert_file: {} holds no certificate",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        format!(
            "server.tls.key_file: cannot read a PEM private key from {}: {e}",
            key_file.display()
        )
    })?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("server.tls.key_file: unusable key: {e}"))?;
    let certified = CertifiedKey::new(certs, key);
    certified
        .keys_match()
        .map_err(|e| format!("server.tls.key_file: the key does not match the certificate: {e}"))?;
    Ok(certified)
}

/// A listening socket on `addr` that other sockets of this process may share
/// (`SO_REUSEPORT`: the kernel spreads connections over them).
pub fn bind_shared(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// How many accept loops, and whether each is bound to a CPU.
#[derive(Debug, Clone, Copy)]
pub struct Workers {
    pub count: usize,
    pub pin: PinWorkers,
}

/// Starts `workers` accept loops (see [`crate::worker`]): the first on
/// `first`, the others on new sockets bound to the same address. Each
/// builds its router with `make_app`, so that what a request clones is its
/// worker's own (see `app::router`). Each runs
/// until `stop` turns true, then drains its connections. The connection cap
/// is shared by all; refused and timed-out connections count in `metrics`.
pub fn spawn_workers(
    first: std::net::TcpListener,
    workers: Workers,
    make_app: Arc<dyn Fn() -> App + Send + Sync>,
    limits: ConnLimits,
    tls: Option<Arc<ReloadableCert>>,
    stop: tokio::sync::watch::Receiver<bool>,
    metrics: Metrics,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers.count.max(1) {
        listeners.push(bind_shared(addr)?);
    }
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let count = listeners.len();
    let mut handles = Vec::with_capacity(count);
    for (i, listener) in listeners.into_iter().enumerate() {
        let (make_app, limits, tls, slots) =
            (make_app.clone(), limits.clone(), tls.clone(), slots.clone());
        let metrics = metrics.clone();
        let mut stop = stop.clone();
        // Sockets and timers only: with `enable_all` every park would also
        // check for exited child processes (the signal driver's job), and
        // the workers start none and handle no signal.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            // Before a worker sleeps in epoll it lets whatever else is
            // runnable on its core go first: under load the next request has
            // usually arrived by then, and the worker runs on instead of
            // paying a sleep and a wake-up. A/B at saturation (wrk, two
            // binaries side by side, both orders): CPU per hit 12.7 → 11.4 µs,
            // per /healthz 11.1 → 9.4, per miss 80 → 69. Idle, it is one
            // extra syscall before a long sleep.
            .on_thread_park(std::thread::yield_now)
            .build()?;
        let handle = std::thread::Builder::new()
            .name(format!("authbridge-worker-{}", i + 1))
            .spawn(move || {
                crate::worker::enter(i + 1);
                let cpu = crate::worker::pin(i + 1, count, workers.pin);
                tracing::debug!(worker = i + 1, ?cpu, "worker started");
                let app = make_app();
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(error = %e, "worker cannot use its socket");
                            return;
                        }
                    };
                    let stopped = async move {
                        let _ = stop.wait_for(|s| *s).await;
                    };
                    if let Err(e) = serve(listener, app, limits, tls, slots, metrics, stopped).await
                    {
                        tracing::error!(error = %e, "worker stopped");
                    }
                });
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight
/// requests finish (up to `limits.drain`). `slots` caps open connections;
/// refused, cut and failed ones count in `metrics`.
pub async fn serve(
    listener: TcpListener,
    app: App,
    limits: ConnLimits,
    tls: Option<Arc<ReloadableCert>>,
    slots: Arc<Semaphore>,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = match &tls {
        Some(cert) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(
            cert.server_config().map_err(std::io::Error::other)?,
        ))),
        None => None,
    };
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off, don't spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics
                .counter("authbridge_connections_refused_total")
                .increment(1);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        // The client address is stored before any middleware runs (the
        // only extension we add: each one is a map insert per request), and
        // only when something reads it. From an untrusted peer it is fixed
        // for the connection: no header is read.
        let proxies = limits.proxies.clone();
        let fixed = proxies.as_ref().and_then(|p| p.fixed(peer.ip()));
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut req: axum::http::Request<hyper::body::Incoming>| {
                if let Some(proxies) = &proxies {
                    let client = fixed.unwrap_or_else(|| proxies.resolve(peer.ip(), req.headers()));
                    req.extensions_mut().insert::<ClientAddr>(client);
                }
                req
            },
        ));
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let header_read_timeout = limits.header_read_timeout;
        let watcher = graceful.watcher();
        // One clone per connection, not per request: for the rare cut or
        // failed one.
        let metrics = metrics.clone();
        tokio::spawn(async move {
            match acceptor {
                None => {
                    let io = ConnIo::new(tcp, header_read_timeout, metrics);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Some(acceptor) => {
                    // The TLS handshake is bounded like header reading.
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    else {
                        metrics
                            .counter("authbridge_tls_handshake_failures_total")
                            .increment(1);
                        return;
                    };
                    let io = ConnIo::new(stream, header_read_timeout, metrics);
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {},
        () = tokio::time::sleep(limits.drain) => tracing::warn!("shutdown: connections still open after the drain time"),
    }
    Ok(())
}
