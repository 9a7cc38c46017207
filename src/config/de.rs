//! Reading typed settings from their config text: each address, network,
//! URL, regex and duration is parsed here once, at load, so the code that
//! uses a setting holds the typed value and never parses it again.
//!
//! A value that does not parse fails the load with a message that names its
//! key, in the same `key: message` form as the checks in `validate.rs`:
//! the message is marked here and recognised by [`load_error`] once
//! the `config` crate has added the key's path to it.

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;
use regex::Regex;
use serde::de::value::StrDeserializer;
use serde::de::{Deserialize, DeserializeOwned, Deserializer, Error, IntoDeserializer};
use url::Url;

use super::ConfigError;

/// Opens the message of a value that does not parse. `config` reports it as
/// "MESSAGE for key `KEY`"; [`load_error`] turns it back into "KEY: MESSAGE".
const MARK: &str = "authbridge-invalid-setting: ";

pub(super) fn invalid<E: Error>(message: &str) -> E {
    E::custom(format_args!("{MARK}{message}"))
}

/// A load failure as a [`ConfigError`]: a marked message becomes
/// [`ConfigError::Invalid`] naming its key; anything else (a wrong type, an
/// unknown key, an unreadable file) stays `config`'s own text.
pub(super) fn load_error(e: config::ConfigError) -> ConfigError {
    if let config::ConfigError::At {
        error,
        key: Some(key),
        ..
    } = &e
        && let config::ConfigError::Message(message) = error.as_ref()
        && let Some(message) = message.strip_prefix(MARK)
    {
        return ConfigError::invalid(key, message);
    }
    ConfigError::Load(e.to_string())
}

/// Keys that take one of a few words (`telemetry.log_format`,
/// `server.pin_workers`, ...): an unknown word fails with the words the key
/// takes ("unknown value `x`, expected `a` or `b`"), where the
/// `config` crate would name the Rust enum and not the choices.
pub(super) fn choice<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let word = String::deserialize(d)?;
    let words: StrDeserializer<'_, serde::de::value::Error> = word.as_str().into_deserializer();
    T::deserialize(words).map_err(|e| {
        invalid(
            &e.to_string()
                .replacen("unknown variant", "unknown value", 1),
        )
    })
}

/// `*_ms` keys: a whole number of milliseconds.
pub(super) fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// `*_secs` keys: a whole number of seconds.
pub(super) fn secs<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_secs)
}

/// `server.listen`.
pub(super) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    String::deserialize(d)?
        .parse()
        .map_err(|_| invalid("must be an address like 0.0.0.0:8080"))
}

/// `admin.listen`: empty is off.
pub(super) fn listen_or_off<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| invalid("must be empty (off) or an address like 127.0.0.1:9090"))
}

/// `server.token_pattern`.
pub(super) fn regex<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Regex>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|p| Regex::new(&p).map_err(|_| invalid("is not a valid regex")))
        .transpose()
}

/// `server.access.allow_cidrs`.
pub(super) fn cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|c| {
            c.parse()
                .map_err(|_| invalid("must be CIDR networks like 10.0.0.0/8 or fd00::/8"))
        })
        .collect()
}

/// `upstream.base_url`: empty is unset (validation then asks for it).
pub(super) fn base_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    Url::parse(&text)
        .map(Some)
        .map_err(|_| invalid("must be set to the CRM's URL, e.g. https://crm.bank.local/api"))
}

/// `upstream.auth.token_url`.
pub(super) fn token_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|u| {
            Url::parse(&u).map_err(|_| invalid("oauth2 needs the token endpoint as an http(s) URL"))
        })
        .transpose()
}
