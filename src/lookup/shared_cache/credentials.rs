//! Who authbridge is to Redis: the ACL user and password of the data nodes
//! (the server, the master, the cluster nodes) and of the sentinels, the
//! passwords read from env or a file like every secret; and, with them, the
//! time limits every topology's connection is made with.

use std::time::Duration;

use redis::ConnectionAddr;
use secrecy::ExposeSecret;

use crate::config::{ConfigError, NodeAddr, RedisSettings, read_secret};

/// How each topology connects: one value, since the server, sentinel and
/// cluster links all take the same three.
pub(super) struct Connect {
    pub auth: Auth,
    /// One Redis call's limit (connect and response).
    pub timeout: Duration,
    /// How long a connect (finding a master, learning the slots) may take
    /// in the background.
    pub bound: Duration,
}

/// The addresses of configured `nodes`, as the crate's clients take them.
pub(super) fn tcp(nodes: &[NodeAddr]) -> impl Iterator<Item = ConnectionAddr> + '_ {
    nodes
        .iter()
        .map(|n| ConnectionAddr::Tcp(n.host.clone(), n.port))
}

/// Credentials for the data nodes and for the sentinels.
#[derive(Default)]
pub(super) struct Auth {
    pub username: Option<String>,
    pub password: Option<String>,
    pub sentinel_username: Option<String>,
    pub sentinel_password: Option<String>,
}

impl Auth {
    /// The configured users and passwords; errors name the setting.
    pub(super) fn from_settings(s: &RedisSettings) -> Result<Self, ConfigError> {
        let password = read_secret(
            ("redis.password_env", s.password_env.as_deref()),
            ("redis.password_file", s.password_file.as_deref()),
        )?;
        let sentinel_password = read_secret(
            (
                "redis.sentinel_password_env",
                s.sentinel_password_env.as_deref(),
            ),
            (
                "redis.sentinel_password_file",
                s.sentinel_password_file.as_deref(),
            ),
        )?;
        Ok(Self {
            username: s.username.clone(),
            password: password.map(|p| p.expose_secret().to_owned()),
            sentinel_username: s.sentinel_username.clone(),
            sentinel_password: sentinel_password.map(|p| p.expose_secret().to_owned()),
        })
    }
}
