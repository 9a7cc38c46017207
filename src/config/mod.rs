//! Settings, layered with the `config` crate: built-in defaults →
//! `config/default.toml` in the working directory (if present) → `--config
//! FILE` → env `AUTHBRIDGE__SECTION__KEY`.
//!
//! The built-in defaults are the shipped `config/default.toml`, compiled into
//! the binary and read as the first layer, key by key: a file that sets one
//! key of a section (`[users_api.get] mapping = ...`) keeps the defaults of
//! the others, from any working directory. (Serde's own `default` would fill
//! a missing section, not a missing key of a section that is present.) A
//! unit test keeps the file equal to the `Default` impls below.
//!
//! Secrets are never values in a config file: the file names an env var or a
//! file that holds the secret, and the secret is read into a `SecretString`
//! that prints as `[REDACTED]`. Unknown keys are rejected, so a typo cannot
//! silently fall back to a default.
//!
//! Each section lives in its own file with its own checks, and holds its
//! values typed (addresses, networks, URLs, the token regex, `Duration`s),
//! parsed once here so no consumer parses them again.

mod auth_api;
mod cache;
mod de;
mod mapping;
mod otel;
mod redis;
mod server;
mod telemetry;
mod upstream;
mod users_api;
mod validate;

use std::path::Path;

use secrecy::SecretString;
use serde::Deserialize;

pub use auth_api::*;
pub use cache::*;
pub use mapping::*;
pub use otel::*;
pub use redis::*;
pub use server::*;
pub use telemetry::*;
pub use upstream::*;
pub use users_api::*;

/// Everything the server needs to run.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub server: ServerSettings,
    pub auth_api: AuthApiSettings,
    pub upstream: UpstreamSettings,
    pub cache: CacheSettings,
    pub telemetry: TelemetrySettings,
    pub admin: AdminSettings,
    pub reload: ReloadSettings,
    pub redis: RedisSettings,
    pub users_api: UsersApiSettings,
    pub mapping: MappingSettings,
}

/// Why settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A source could not be read or a value has the wrong type.
    #[error("configuration: {0}")]
    Load(String),
    /// Values that parse but do not make sense; each names its key.
    #[error("configuration: {}", .0.iter().map(|(k, m)| format!("{k}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
}

impl ConfigError {
    /// One value that cannot work, named by its key.
    pub fn invalid(key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid(vec![(key.to_owned(), message.into())])
    }
}

/// The shipped `config/default.toml`, compiled in.
pub const BUILTIN_DEFAULTS: &str = include_str!("../../config/default.toml");

/// The built-in defaults as the first configuration layer.
fn builtin() -> config::File<config::FileSourceString, config::FileFormat> {
    config::File::from_str(BUILTIN_DEFAULTS, config::FileFormat::Toml)
}

/// The env prefix, as in `AUTHBRIDGE__UPSTREAM__BASE_URL`.
pub const ENV_PREFIX: &str = "AUTHBRIDGE";

impl Settings {
    /// Loads defaults → `config/default.toml` → `file` → env, then validates.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let settings = Self::layered(file)?;
        settings.validate()?;
        Ok(settings)
    }

    /// As [`load`](Self::load), without the checks that only a running
    /// server needs (a CRM URL, secrets for what is on): for tools that only
    /// describe the configuration, such as `authbridge openapi`. Values that
    /// do not parse still fail.
    pub fn layered(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder().add_source(builtin()).add_source(
            config::File::new("config/default.toml", config::FileFormat::Toml).required(false),
        );
        if let Some(file) = file {
            builder = builder.add_source(
                config::File::from(file)
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .list_separator(",")
                .with_list_parse_key("upstream.not_found.statuses")
                .with_list_parse_key("upstream.retry.statuses")
                .with_list_parse_key("server.access.allow_cidrs")
                .with_list_parse_key("server.trusted_proxies")
                .with_list_parse_key("redis.sentinels")
                .with_list_parse_key("redis.cluster_nodes"),
        );
        builder
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(de::load_error)
    }

    /// Parses settings from TOML text over the built-in defaults (no file or
    /// env layers).
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let settings: Settings = config::Config::builder()
            .add_source(builtin())
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(config::Config::try_deserialize)
            .map_err(de::load_error)?;
        settings.validate()?;
        Ok(settings)
    }
}

/// Reads a secret from the env var named by a `*_env` setting or the file named
/// by a `*_file` setting (trailing newline trimmed). Each argument is
/// (setting key, value); errors name the setting, never the secret.
pub fn read_secret(
    env: (&str, Option<&str>),
    file: (&str, Option<&Path>),
) -> Result<Option<SecretString>, ConfigError> {
    let (key, raw) = match (env, file) {
        ((key, Some(var)), _) => (
            key,
            std::env::var(var).map_err(|_| {
                ConfigError::invalid(key, format!("env var {var} is not set or not UTF-8"))
            })?,
        ),
        (_, (key, Some(path))) => (
            key,
            std::fs::read_to_string(path).map_err(|e| {
                ConfigError::invalid(key, format!("cannot read {}: {e}", path.display()))
            })?,
        ),
        _ => return Ok(None),
    };
    let trimmed = raw.trim_end_matches(['\n', '\r']);
    if trimmed.is_empty() {
        return Err(ConfigError::invalid(key, "the secret is empty"));
    }
    Ok(Some(SecretString::from(trimmed.to_owned())))
}

#[cfg(test)]
mod tests;
