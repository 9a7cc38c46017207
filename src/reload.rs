//! Hot reload: on SIGHUP, on a change of the config or mapping file, or from
//! the admin API, the configuration and mapping are loaded and validated in
//! full, then swapped in atomically. An invalid version is rejected — logged
//! with its file:line diagnostics and counted — and the running one keeps
//! serving; no request fails during a reload.
//!
//! Reloadable: the mapping and its pipeline, the `[upstream]` request and its
//! timeouts and limits, cache TTLs / grace / jitter / stale-while-revalidate,
//! token checks and the request timeout, the TLS certificate (from the same
//! files). Anything else (listen addresses, CRM base URL, credentials, pool
//! and retry/breaker settings, cache size and key, access rules, Redis, the
//! users API and its mappings) needs a restart; a reload that changes it says
//! so in its answer and the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::config::Settings;
use crate::lookup::Lookup;
use crate::server::ReloadableCert;
use crate::startup::build_engine;

/// What a successful reload did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    /// True when the mapping changed (its cached cards were dropped).
    pub mapping_changed: bool,
    /// Settings that changed but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

/// Reloads one running server.
pub struct Reloader {
    config_file: Option<PathBuf>,
    /// The settings the server started with (used as is when there is no
    /// config file, as in tests and the demo).
    started_with: Settings,
    current: Mutex<Settings>,
    lookup: Lookup,
    cert: Option<Arc<ReloadableCert>>,
    /// Serialises reloads.
    busy: tokio::sync::Mutex<()>,
}

fn changed(a: &impl std::fmt::Debug, b: &impl std::fmt::Debug) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

impl Reloader {
    /// A reloader for a server started with `settings` (read from
    /// `config_file`, if any).
    pub fn new(
        config_file: Option<PathBuf>,
        settings: Settings,
        lookup: Lookup,
        cert: Option<Arc<ReloadableCert>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            config_file,
            current: Mutex::new(settings.clone()),
            started_with: settings,
            lookup,
            cert,
            busy: tokio::sync::Mutex::new(()),
        })
    }

    fn load(&self) -> Result<Settings, String> {
        match &self.config_file {
            Some(file) => Settings::load(Some(file)).map_err(|e| e.to_string()),
            None => Ok(self.started_with.clone()),
        }
    }

    /// Loads, validates and swaps in the new version, or keeps the old one.
    pub async fn reload(&self) -> Result<Reloaded, String> {
        let _one_at_a_time = self.busy.lock().await;
        let result = self.try_reload();
        match &result {
            Ok(r) => {
                metrics::counter!("authbridge_reloads_total", "result" => "ok").increment(1);
                tracing::info!(mapping_changed = r.mapping_changed, needs_restart = ?r.needs_restart, "reloaded");
            }
            Err(e) => {
                metrics::counter!("authbridge_reloads_total", "result" => "failed").increment(1);
                tracing::error!(error = %e, "reload rejected; the running configuration keeps serving");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<Reloaded, String> {
        let settings = self.load()?;
        let engine = build_engine(&settings).map_err(|e| e.to_string())?;
        if let Some(cert) = &self.cert {
            cert.reload()?;
        }
        let mut current = self.current.lock().expect("settings lock");
        let old = &*current;
        let mut needs_restart = Vec::new();
        for (name, differs) in [
            ("server.listen", old.server.listen != settings.server.listen),
            (
                "server.max_connections",
                old.server.max_connections != settings.server.max_connections,
            ),
            (
                "server.header_read_timeout_ms",
                old.server.header_read_timeout_ms != settings.server.header_read_timeout_ms,
            ),
            (
                "server.access",
                changed(&old.server.access, &settings.server.access),
            ),
            (
                "upstream.base_url",
                old.upstream.base_url != settings.upstream.base_url,
            ),
            (
                "upstream.auth",
                changed(&old.upstream.auth, &settings.upstream.auth),
            ),
            (
                "upstream.tls",
                changed(&old.upstream.tls, &settings.upstream.tls),
            ),
            (
                "upstream.retry",
                changed(&old.upstream.retry, &settings.upstream.retry),
            ),
            (
                "upstream.breaker",
                changed(&old.upstream.breaker, &settings.upstream.breaker),
            ),
            (
                "upstream.max_in_flight",
                old.upstream.max_in_flight != settings.upstream.max_in_flight,
            ),
            (
                "cache.max_bytes",
                old.cache.max_bytes != settings.cache.max_bytes,
            ),
            (
                "cache.hash_key",
                old.cache.hash_key_env != settings.cache.hash_key_env
                    || old.cache.hash_key_file != settings.cache.hash_key_file,
            ),
            ("server.tls", changed(&old.server.tls, &settings.server.tls)),
            (
                "upstream.connect_timeout_ms",
                old.upstream.connect_timeout_ms != settings.upstream.connect_timeout_ms,
            ),
            (
                "upstream.pool",
                old.upstream.pool_idle_timeout_ms != settings.upstream.pool_idle_timeout_ms
                    || old.upstream.pool_max_idle != settings.upstream.pool_max_idle
                    || old.upstream.http2_prior_knowledge
                        != settings.upstream.http2_prior_knowledge,
            ),
            (
                "upstream.max_queue",
                old.upstream.max_queue != settings.upstream.max_queue,
            ),
            ("redis", changed(&old.redis, &settings.redis)),
            ("users_api", changed(&old.users_api, &settings.users_api)),
            ("telemetry", changed(&old.telemetry, &settings.telemetry)),
            ("admin", changed(&old.admin, &settings.admin)),
        ] {
            if differs {
                needs_restart.push(name);
            }
        }
        let mapping_changed = self.lookup.swap_engine(engine);
        *current = settings;
        Ok(Reloaded {
            mapping_changed,
            needs_restart,
        })
    }

    /// The files whose change triggers a reload.
    fn watched(&self) -> Vec<PathBuf> {
        let current = self.current.lock().expect("settings lock");
        let mut files = vec![current.auth_api.mapping.clone()];
        files.extend(self.config_file.clone());
        files.extend(current.server.tls.cert_file.clone());
        files.extend(current.server.tls.key_file.clone());
        files
    }

    /// Reloads on every SIGHUP, for the life of the process.
    pub fn on_sighup(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                let Ok(mut hup) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                else {
                    return;
                };
                while hup.recv().await.is_some() {
                    let _ = this.reload().await;
                }
            });
        }
    }

    /// Reloads when a watched file changes (debounced: editors write files in
    /// several steps). The watcher lives as long as the returned handle.
    pub fn watch_files(self: &Arc<Self>) -> Option<notify::RecommendedWatcher> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let files = self.watched();
        let names: Vec<PathBuf> = files.iter().map(|f| canonical(f)).collect();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && event.paths.iter().any(|p| names.contains(&canonical(p)))
                {
                    let _ = tx.send(());
                }
            })
            .map_err(|e| tracing::warn!(error = %e, "cannot watch files; reload with SIGHUP"))
            .ok()?;
        for dir in files.iter().filter_map(|f| f.parent()) {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot watch a folder; reload with SIGHUP");
            }
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            while rx.recv().await.is_some() {
                tokio::time::sleep(Duration::from_millis(200)).await;
                while rx.try_recv().is_ok() {}
                let _ = this.reload().await;
            }
        });
        Some(watcher)
    }
}

fn canonical(p: &Path) -> PathBuf {
    // A file being replaced may briefly not exist: fall back to its parent.
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        let name = p.file_name().map(PathBuf::from).unwrap_or_default();
        p.parent()
            .and_then(|d| {
                std::fs::canonicalize(if d.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    d
                })
                .ok()
            })
            .map_or_else(|| p.to_owned(), |d| d.join(name))
    })
}
