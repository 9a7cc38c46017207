//! Hot reload: on SIGHUP, on a change of the config or mapping file, or from
//! the admin API, the configuration and mapping are loaded and validated in
//! full, then swapped in atomically. An invalid version is rejected — logged
//! with its file:line diagnostics and counted — and the running one keeps
//! serving; no request fails during a reload.
//!
//! A version is known by the digest of the files it is read from. The file
//! watcher reloads only when that digest changes (reading the files must not
//! look like a change), and only once the files have been quiet for
//! `reload.debounce_ms`, so a file written in several steps is read whole. A
//! rejected version is logged once per distinct content; SIGHUP and the admin
//! API always reload, and every reload is counted once: `ok`, `failed`, or
//! `unchanged` when the digest equals the running version's.
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

use notify::{EventKind, RecursiveMode, Watcher};

use crate::app::auth_engine::build_engine;
use crate::app::server::ReloadableCert;
use crate::config::Settings;
use crate::lookup::Lookup;

/// What a successful reload did.
#[derive(Debug, Clone, Default, serde::Serialize)]
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
    /// Digests of the running version and of the last rejected one.
    versions: Mutex<Versions>,
}

#[derive(Default)]
struct Versions {
    running: Option<[u8; 32]>,
    rejected: Option<[u8; 32]>,
}

/// Why a reload was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// SIGHUP or the admin API: always reload, counted once.
    Explicit,
    /// The file watcher: reload only when the files' content changed.
    FileChange,
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
            versions: Mutex::new(Versions::default()),
        })
        .remember_running()
    }

    /// Records the digest of the files the server started from.
    fn remember_running(self: Arc<Self>) -> Arc<Self> {
        let current = self.current.lock().expect("settings lock").clone();
        let digest = self.digest_of(&current);
        self.versions.lock().expect("versions lock").running = Some(digest);
        self
    }

    /// The digest of everything a version is read from: the config file,
    /// the mapping and the TLS files (a missing file digests as empty).
    fn digest_of(&self, settings: &Settings) -> [u8; 32] {
        let mut files: Vec<&Path> = Vec::new();
        files.extend(self.config_file.as_deref());
        files.push(&settings.auth_api.mapping);
        files.extend(settings.server.tls.cert_file.as_deref());
        files.extend(settings.server.tls.key_file.as_deref());
        let mut all = Vec::new();
        for file in files {
            let bytes = std::fs::read(file).unwrap_or_default();
            // Length-prefixed, so moving bytes between files changes the digest.
            all.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            all.extend_from_slice(&bytes);
        }
        crate::secrets::digest(&all)
    }

    fn load(&self) -> Result<Settings, String> {
        match &self.config_file {
            Some(file) => Settings::load(Some(file)).map_err(|e| e.to_string()),
            None => Ok(self.started_with.clone()),
        }
    }

    /// Loads, validates and swaps in the new version, or keeps the old one
    /// (SIGHUP and the admin API).
    pub async fn reload(&self) -> Result<Reloaded, String> {
        self.reload_on(Trigger::Explicit)
            .await
            .unwrap_or_else(|| Ok(Reloaded::default()))
    }

    /// As [`reload`](Self::reload); for [`Trigger::FileChange`], nothing
    /// happens (`None`) when the files hold the running or the last
    /// rejected version.
    pub async fn reload_on(&self, trigger: Trigger) -> Option<Result<Reloaded, String>> {
        let _one_at_a_time = self.busy.lock().await;
        // Loaded once: its files are digested, then built from.
        let loaded = self.load();
        // The config file may name another mapping; an invalid config file
        // is digested with the running version's other files.
        let digest = match &loaded {
            Ok(settings) => self.digest_of(settings),
            Err(_) => {
                let current = self.current.lock().expect("settings lock").clone();
                self.digest_of(&current)
            }
        };
        let (running, rejected) = {
            let v = self.versions.lock().expect("versions lock");
            (v.running == Some(digest), v.rejected == Some(digest))
        };
        if trigger == Trigger::FileChange && (running || rejected) {
            return None;
        }
        if running {
            self.count("unchanged");
            tracing::info!("reload: the files hold the running version; nothing to do");
            return Some(Ok(Reloaded::default()));
        }
        let result = loaded.and_then(|settings| self.try_reload(settings));
        let mut versions = self.versions.lock().expect("versions lock");
        match &result {
            Ok(r) => {
                versions.running = Some(digest);
                versions.rejected = None;
                self.count("ok");
                tracing::info!(mapping_changed = r.mapping_changed, needs_restart = ?r.needs_restart, "reloaded");
            }
            Err(e) => {
                self.count("failed");
                if versions.rejected == Some(digest) {
                    tracing::debug!("reload rejected again: the same version as before");
                } else {
                    tracing::error!(error = %e, "reload rejected; the running configuration keeps serving");
                }
                versions.rejected = Some(digest);
            }
        }
        Some(result)
    }

    /// Counts one reload in the application's registry.
    fn count(&self, result: &'static str) {
        self.lookup
            .metrics()
            .counter_with("authbridge_reloads_total", &[("result", result)])
            .increment(1);
    }

    fn try_reload(&self, settings: Settings) -> Result<Reloaded, String> {
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
                old.server.header_read_timeout != settings.server.header_read_timeout,
            ),
            (
                "server.access",
                changed(&old.server.access, &settings.server.access),
            ),
            (
                "server.trusted_proxies",
                old.server.trusted_proxies != settings.server.trusted_proxies
                    || old.server.client_ip_header != settings.server.client_ip_header,
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
                old.upstream.connect_timeout != settings.upstream.connect_timeout,
            ),
            (
                "upstream.pool",
                old.upstream.pool_idle_timeout != settings.upstream.pool_idle_timeout
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

    /// Reloads when a watched file's content changes, once the files have
    /// been quiet for `debounce` (editors and copy tools write in several
    /// steps). The watcher lives as long as the returned handle.
    pub fn watch_files(self: &Arc<Self>, debounce: Duration) -> Option<notify::RecommendedWatcher> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let files = self.watched();
        let names: Vec<PathBuf> = files.iter().map(|f| canonical(f)).collect();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // Reading a file (ours included, on every reload) raises
                // access events: only writes, creations, renames and removals
                // can change a version.
                if let Ok(event) = event
                    && !matches!(event.kind, EventKind::Access(_))
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
                // Quiet for `debounce`: every new event restarts the wait.
                loop {
                    match tokio::time::timeout(debounce, rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let _ = this.reload_on(Trigger::FileChange).await;
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
