//! Hot reload: on SIGHUP, on a change of the config or a mapping file, or
//! from the admin API, the configuration and every mapping are loaded and
//! validated in full, then swapped in atomically. An invalid version is
//! rejected — logged with its file:line diagnostics and counted — and the
//! running one keeps serving; no request fails during a reload, and a
//! request under way finishes with the version it started with.
//!
//! A version is known by the digest of the files it is read from. The file
//! watcher ([`watch`]) reloads only when that digest changes (reading the
//! files must not look like a change), and only once the files have been
//! quiet for `reload.debounce_ms`, so a file written in several steps is
//! read whole. A rejected version is logged once per distinct content;
//! SIGHUP and the admin API always reload, and every reload is counted
//! once: `ok`, `failed`, or `unchanged` when the digest equals the running
//! version's.
//!
//! Reloadable: the Auth API mapping and its pipeline; the users API's six
//! mappings, their TTLs and identifier limit; the `[upstream]` request,
//! timeouts and pipeline limits; retries and the circuit breaker (its
//! state and counts are kept: see `upstream/breaker.rs`); cache TTLs / grace /
//! jitter / stale-while-revalidate; token checks and the request timeout;
//! the TLS certificate (from the same files). The rest ([`restart`]) needs
//! a restart; a reload that changes it says so in its answer and the log.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::app::auth_engine::build_engine;
use crate::app::server::ReloadableCert;
use crate::config::Settings;
use crate::front::users_api::UsersState;
use crate::lookup::Lookup;

mod restart;
mod watch;

/// What a successful reload did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Reloaded {
    /// True when the Auth API mapping changed (its cached cards were
    /// dropped).
    pub mapping_changed: bool,
    /// The users-API calls whose mapping changed (`get`, `orders`, ...; a
    /// cached call's answers were dropped).
    pub users_mappings_changed: Vec<&'static str>,
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
    /// The users front, when it runs.
    users: Option<UsersState>,
    cert: Option<Arc<ReloadableCert>>,
    /// The served OpenAPI document, made again on each reload.
    openapi: Arc<ArcSwap<Bytes>>,
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

/// What a reloader acts on: the running server's parts a reload swaps.
pub struct Parts {
    /// The Auth API's lookup (its engine, and the shared CRM transport).
    pub lookup: Lookup,
    /// The users front, when it runs.
    pub users: Option<UsersState>,
    pub cert: Option<Arc<ReloadableCert>>,
    /// The OpenAPI document served at `/openapi.json`.
    pub openapi: Arc<ArcSwap<Bytes>>,
}

impl Reloader {
    /// A reloader for a server started with `settings` (read from
    /// `config_file`, if any).
    pub fn new(config_file: Option<PathBuf>, settings: Settings, parts: Parts) -> Arc<Self> {
        let Parts {
            lookup,
            users,
            cert,
            openapi,
        } = parts;
        Arc::new(Self {
            config_file,
            current: Mutex::new(settings.clone()),
            started_with: settings,
            lookup,
            users,
            cert,
            openapi,
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

    /// Every file a version of `settings` is read from: the config file,
    /// the mappings (the users API's while it runs) and the TLS files.
    fn files_of<'a>(&'a self, settings: &'a Settings) -> Vec<&'a Path> {
        let mut files: Vec<&Path> = Vec::new();
        files.extend(self.config_file.as_deref());
        files.push(&settings.auth_api.mapping);
        if self.users.is_some() && settings.users_api.enabled {
            let users = settings.users_api.operations();
            files.extend(users.map(|(_, op)| op.mapping.as_path()));
        }
        files.extend(settings.server.tls.cert_file.as_deref());
        files.extend(settings.server.tls.key_file.as_deref());
        files
    }

    /// The digest of everything a version is read from (a missing file
    /// digests as empty).
    fn digest_of(&self, settings: &Settings) -> [u8; 32] {
        let mut all = Vec::new();
        for file in self.files_of(settings) {
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
                tracing::info!(
                    mapping_changed = r.mapping_changed,
                    users_mappings_changed = ?r.users_mappings_changed,
                    needs_restart = ?r.needs_restart,
                    "reloaded"
                );
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

    /// Builds and validates everything, then swaps it in; on any error
    /// nothing is swapped.
    fn try_reload(&self, settings: Settings) -> Result<Reloaded, String> {
        let engine = build_engine(&settings).map_err(|e| e.to_string())?;
        // Turning the users front on or off needs a restart (it is routed
        // at start); while it runs, its mappings are loaded with the rest.
        let users = match &self.users {
            Some(users) if settings.users_api.enabled => Some((
                users,
                UsersState::load(&settings).map_err(|e| e.to_string())?,
            )),
            _ => None,
        };
        if let Some(cert) = &self.cert {
            cert.reload()?;
        }
        let mut current = self.current.lock().expect("settings lock");
        let needs_restart = restart::needs_restart(&current, &settings);
        let mapping_changed = self.lookup.swap_engine(engine);
        let users_mappings_changed = users
            .map(|(users, loaded)| users.install(loaded))
            .unwrap_or_default();
        self.lookup
            .transport()
            .reconfigure(&settings.upstream.retry, &settings.upstream.breaker);
        self.openapi
            .store(Arc::new(Bytes::from(crate::openapi::after_reload(
                &self.started_with,
                &settings,
            ))));
        *current = settings;
        Ok(Reloaded {
            mapping_changed,
            users_mappings_changed,
            needs_restart,
        })
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
    /// been quiet for `debounce`. The watcher lives as long as the returned
    /// handle.
    pub fn watch_files(self: &Arc<Self>, debounce: Duration) -> Option<notify::RecommendedWatcher> {
        let files: Vec<PathBuf> = {
            let current = self.current.lock().expect("settings lock");
            self.files_of(&current)
                .into_iter()
                .map(Path::to_owned)
                .collect()
        };
        let this = Arc::clone(self);
        watch::watch(&files, debounce, move || {
            let this = Arc::clone(&this);
            async move {
                let _ = this.reload_on(Trigger::FileChange).await;
            }
        })
    }
}
