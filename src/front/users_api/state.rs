//! The users front's state: what is fixed for the process (the platform's
//! key, the messages, the two caches, the CRM transport) and what a reload
//! replaces — the six calls' mappings and pipelines, the profile and
//! history TTLs, the identifier limit and the deadline. A new version is
//! built and validated in full ([`UsersState::load`]) before any of it is
//! installed ([`UsersState::install`]); a call runs with the version it
//! started with.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use secrecy::ExposeSecret;

use super::card::{Shape, UsersCardBuilder};
use crate::app::startup_error::StartupError;
use crate::config::{
    CacheSettings, ConfigError, Settings, UsersMessages, UsersOperation, read_secret,
};
use crate::lookup::cache::{AnswerCache, CachePolicy, KeyHasher};
use crate::lookup::shared_cache::SharedCache;
use crate::lookup::{Engine, Limits, Lookup};
use crate::mapping_pool::MappingPool;
use crate::secrets::digest;
use crate::upstream::{Pipeline, Transport};

/// This front's cache key space for profiles (Get User Data).
pub const NAMESPACE: &str = "users-api";
/// The key space of order histories: a profile and a history of one user
/// never share a key.
pub const ORDERS_NAMESPACE: &str = "users-api-orders";

/// One forwarded operation: its requests and how its answer is built.
pub(super) struct Operation {
    pub(super) pipeline: Pipeline,
    pub(super) builder: Arc<UsersCardBuilder>,
    /// Digest of the mapping text both were compiled from.
    digest: [u8; 32],
}

impl Operation {
    fn load(op: &UsersOperation, settings: &Settings, shape: Shape) -> Result<Self, StartupError> {
        let (file, text) = crate::mapping::read_file(&op.mapping)?;
        let pipeline =
            Pipeline::from_mapping_text(&file, &text, &settings.upstream)?.ok_or_else(|| {
                ConfigError::Invalid(vec![(
                    format!("users_api: {file}"),
                    "a users-API mapping declares its CRM requests as [[step]] tables".into(),
                )])
            })?;
        Ok(Self {
            pipeline,
            builder: Arc::new(
                UsersCardBuilder::from_text(&file, &text, shape)?
                    .with_budget(settings.mapping.budget()),
            ),
            digest: digest(text.as_bytes()),
        })
    }

    /// The engine of a cached call (Get User Data, Order history).
    fn engine(self, op: &UsersOperation, settings: &Settings, cache: &CacheSettings) -> Engine {
        Engine {
            producer: self.builder,
            pool: MappingPool::shared(&settings.mapping),
            pipeline: self.pipeline,
            policy: CachePolicy::new(cache),
            limits: Limits {
                max_token_bytes: settings.users_api.max_identifier_bytes,
                request_timeout: settings.server.request_timeout,
                token_pattern: None,
            },
            mapping_digest: self.digest,
            mapping_file: op.mapping.display().to_string(),
            generation: 0,
        }
    }
}

/// What a reload replaces for the forwarded (never cached) calls.
pub(super) struct Calls {
    pub(super) update: Operation,
    pub(super) otp_request: Operation,
    pub(super) otp_confirm: Operation,
    pub(super) login: Operation,
    pub(super) max_identifier: usize,
    pub(super) deadline: Duration,
}

/// A validated version of the front's mappings, not yet in use.
pub struct Loaded {
    get: Engine,
    orders: Engine,
    calls: Calls,
}

/// What the users handlers reach.
#[derive(Clone)]
pub struct UsersState {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) get: Lookup,
    pub(super) orders: Lookup,
    pub(super) transport: Arc<Transport>,
    /// Where forwarded answers are mapped (see [`crate::mapping_pool`]).
    pub(super) pool: Arc<MappingPool>,
    pub(super) calls: ArcSwap<Calls>,
    pub(super) key: [u8; 32],
    pub(super) messages: Arc<UsersMessages>,
}

/// The cache settings of the profiles and of the order histories.
pub(crate) fn caches(settings: &Settings) -> (CacheSettings, CacheSettings) {
    let u = &settings.users_api;
    let profiles = CacheSettings {
        max_bytes: u.cache_max_bytes,
        found_ttl: u.found_ttl,
        not_found_ttl: u.not_found_ttl,
        ..settings.cache.clone()
    };
    // A history is at most `orders_ttl_secs` old: no stale copy is served
    // when the CRM fails (a status shown as current must be), and 0 turns
    // the cache off for found and unknown users alike.
    let histories = CacheSettings {
        max_bytes: u.cache_max_bytes,
        found_ttl: u.orders_ttl,
        not_found_ttl: u.orders_ttl,
        grace: Duration::ZERO,
        stale_while_revalidate: false,
        ..settings.cache.clone()
    };
    (profiles, histories)
}

impl UsersState {
    /// Loads the six mappings and the API key; shares the CRM transport and
    /// the Redis level (profiles and histories each in their key space).
    pub fn new(
        settings: &Settings,
        transport: Arc<Transport>,
        shared: Option<&SharedCache>,
    ) -> Result<Self, StartupError> {
        let u = &settings.users_api;
        let key = read_secret(
            ("users_api.api_key_env", u.api_key_env.as_deref()),
            ("users_api.api_key_file", u.api_key_file.as_deref()),
        )?
        .ok_or_else(|| {
            ConfigError::invalid(
                "users_api.api_key_env",
                "the users API needs the platform's key",
            )
        })?;
        let hasher = KeyHasher::from_settings(&settings.cache)?;
        let (profiles, histories) = caches(settings);
        let Loaded { get, orders, calls } = Self::load(settings)?;
        let lookup = |namespace, engine, cache: &CacheSettings| {
            Lookup::new(
                namespace,
                hasher.clone(),
                AnswerCache::new(cache),
                transport.clone(),
                engine,
                shared.map(|s| s.scoped(namespace)),
            )
        };
        Ok(Self {
            inner: Arc::new(Inner {
                get: lookup(NAMESPACE, get, &profiles),
                orders: lookup(ORDERS_NAMESPACE, orders, &histories),
                transport,
                pool: MappingPool::shared(&settings.mapping),
                calls: ArcSwap::from_pointee(calls),
                key: digest(format!("Bearer {}", key.expose_secret()).as_bytes()),
                messages: Arc::new(u.messages.clone()),
            }),
        })
    }

    /// Builds and validates every mapping `settings` names; nothing is in
    /// use until [`install`](Self::install)ed.
    pub fn load(settings: &Settings) -> Result<Loaded, StartupError> {
        let u = &settings.users_api;
        let (profiles, histories) = caches(settings);
        let op = |o: &UsersOperation, shape| Operation::load(o, settings, shape);
        Ok(Loaded {
            get: op(&u.get, Shape::User)?.engine(&u.get, settings, &profiles),
            orders: op(&u.orders, Shape::Orders)?.engine(&u.orders, settings, &histories),
            calls: Calls {
                update: op(&u.update, Shape::User)?,
                otp_request: op(&u.otp_request, Shape::Otp)?,
                otp_confirm: op(&u.otp_confirm, Shape::User)?,
                login: op(&u.login, Shape::LoginUser)?,
                max_identifier: u.max_identifier_bytes,
                deadline: settings.server.request_timeout,
            },
        })
    }

    /// Puts `loaded` in use; the calls whose mapping changed, by their
    /// config name (a changed cached call drops its cached answers).
    pub fn install(&self, loaded: Loaded) -> Vec<&'static str> {
        let s = &self.inner;
        let old = s.calls.load();
        let mut changed = Vec::new();
        if s.get.swap_engine(loaded.get) {
            changed.push("get");
        }
        for (name, before, after) in [
            ("update", &old.update, &loaded.calls.update),
            ("otp_request", &old.otp_request, &loaded.calls.otp_request),
            ("otp_confirm", &old.otp_confirm, &loaded.calls.otp_confirm),
            ("login", &old.login, &loaded.calls.login),
        ] {
            if before.digest != after.digest {
                changed.push(name);
            }
        }
        if s.orders.swap_engine(loaded.orders) {
            changed.push("orders");
        }
        s.calls.store(Arc::new(loaded.calls));
        changed
    }
}
