//! `[redis]`: the optional shared cache level for replicas — one server, a
//! master found through Redis Sentinel, or a Redis Cluster — its typed
//! values and its own checks.
//!
//! The topology comes from `redis.url` (`redis://`, `redis+sentinel://`,
//! `redis+cluster://`) or from the explicit keys (`sentinels` with
//! `master_name`, or `cluster_nodes`); exactly one of them. Passwords are
//! secrets: read from env or a file, never from the URL of a Sentinel or a
//! Cluster.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use redis::IntoConnectionInfo;
use serde::Deserialize;
use serde::de::Deserializer;

use super::de;
use super::validate::Checks;

/// The syntax of `redis.url`, in its error messages.
const URL_FORMS: &str = "must be redis://host:port/db, \
     redis+sentinel://host:port[,host:port…]/master_name[/db] \
     or redis+cluster://host:port[,host:port…]";

/// The `host:port` of a sentinel or a cluster node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    pub host: String,
    pub port: u16,
}

impl FromStr for NodeAddr {
    type Err = &'static str;

    /// `host:port` or `[v6]:port`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const BAD: &str = "each must be host:port";
        let (host, port) = s.rsplit_once(':').ok_or(BAD)?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() || host.contains(['/', '@', ',', ' ']) {
            return Err(BAD);
        }
        Ok(Self {
            host: host.to_owned(),
            port: port.parse().map_err(|_| BAD)?,
        })
    }
}

/// Where the shared level lives.
#[derive(Debug, Clone)]
pub enum RedisTopology {
    /// One server (`redis://host:port/db`), reconnected in place.
    Server(redis::ConnectionInfo),
    /// The master that `master_name` names to the sentinels, found again
    /// after a failover.
    Sentinel {
        sentinels: Vec<NodeAddr>,
        master_name: String,
        db: i64,
    },
    /// A Redis Cluster, its slots learnt from any of these seed nodes.
    Cluster { nodes: Vec<NodeAddr> },
}

/// `h1:p1,h2:p2` of a sentinel or cluster URL.
fn node_list(hosts: &str) -> Result<Vec<NodeAddr>, &'static str> {
    if hosts.contains('@') {
        return Err("carries no credentials: use redis.password_env/_file \
                    and redis.sentinel_password_env/_file");
    }
    hosts
        .split(',')
        .filter(|h| !h.is_empty())
        .map(|h| h.parse().map_err(|_| URL_FORMS))
        .collect()
}

impl FromStr for RedisTopology {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("redis+sentinel://") {
            let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
            let sentinels = node_list(hosts)?;
            let (master_name, db) = path.split_once('/').unwrap_or((path, ""));
            if sentinels.is_empty() {
                return Err("a sentinel URL lists at least one sentinel: \
                            redis+sentinel://host:port[,host:port…]/master_name");
            }
            if master_name.is_empty() {
                return Err("a sentinel URL names its master: \
                            redis+sentinel://host:port[,host:port…]/master_name");
            }
            let db = match db.trim_end_matches('/') {
                "" => 0,
                n => n
                    .parse()
                    .map_err(|_| "the database after the master name is a number")?,
            };
            return Ok(Self::Sentinel {
                sentinels,
                master_name: master_name.to_owned(),
                db,
            });
        }
        if let Some(rest) = s.strip_prefix("redis+cluster://") {
            let hosts = rest.strip_suffix('/').unwrap_or(rest);
            if hosts.contains('/') {
                return Err("a cluster has no database: redis+cluster://host:port[,host:port…]");
            }
            let nodes = node_list(hosts)?;
            if nodes.is_empty() {
                return Err("a cluster URL lists at least one node: \
                            redis+cluster://host:port[,host:port…]");
            }
            return Ok(Self::Cluster { nodes });
        }
        s.into_connection_info()
            .map(Self::Server)
            .map_err(|_| URL_FORMS)
    }
}

fn url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RedisTopology>, D::Error> {
    let text = String::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(de::invalid)
}

fn nodes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<NodeAddr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|n| n.parse().map_err(de::invalid))
        .collect()
}

/// The optional shared cache level for replicas.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisSettings {
    /// `redis://…`, `redis+sentinel://…` or `redis+cluster://…`; empty =
    /// off unless `sentinels` or `cluster_nodes` is set.
    #[serde(deserialize_with = "url")]
    pub url: Option<RedisTopology>,
    /// Sentinels (`host:port`) watching `master_name`, instead of a URL.
    #[serde(deserialize_with = "nodes")]
    pub sentinels: Vec<NodeAddr>,
    /// The name the sentinels monitor the master under.
    pub master_name: String,
    /// Seed nodes (`host:port`) of a Redis Cluster, instead of a URL.
    #[serde(deserialize_with = "nodes")]
    pub cluster_nodes: Vec<NodeAddr>,
    /// ACL user on the data nodes (the server, the master, cluster nodes).
    pub username: Option<String>,
    /// Their password, from env or file.
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
    /// ACL user on the sentinels themselves.
    pub sentinel_username: Option<String>,
    /// The sentinels' password, from env or file.
    pub sentinel_password_env: Option<String>,
    pub sentinel_password_file: Option<PathBuf>,
    /// Prefix of authbridge's keys.
    pub key_prefix: String,
    /// Timeout of each Redis call; a slow Redis is skipped, not waited for.
    #[serde(rename = "timeout_ms", deserialize_with = "de::millis")]
    pub timeout: Duration,
    /// How long a replica fetching a card holds the cross-replica lock.
    #[serde(rename = "lock_ms", deserialize_with = "de::millis")]
    pub lock: Duration,
    /// AES-256-GCM key (64 hex digits) for values at rest, from env or file.
    pub encryption_key_env: Option<String>,
    pub encryption_key_file: Option<PathBuf>,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: None,
            sentinels: Vec::new(),
            master_name: String::new(),
            cluster_nodes: Vec::new(),
            username: None,
            password_env: None,
            password_file: None,
            sentinel_username: None,
            sentinel_password_env: None,
            sentinel_password_file: None,
            key_prefix: "authbridge:".into(),
            timeout: Duration::from_millis(50),
            lock: Duration::from_millis(1_000),
            encryption_key_env: None,
            encryption_key_file: None,
        }
    }
}

impl RedisSettings {
    /// Whether the shared level is on.
    pub fn enabled(&self) -> bool {
        self.url.is_some() || !self.sentinels.is_empty() || !self.cluster_nodes.is_empty()
    }

    /// Where the shared level lives, from the URL or the explicit keys;
    /// `None` when it is off.
    pub fn topology(&self) -> Option<RedisTopology> {
        if let Some(url) = &self.url {
            return Some(url.clone());
        }
        if !self.sentinels.is_empty() {
            return Some(RedisTopology::Sentinel {
                sentinels: self.sentinels.clone(),
                master_name: self.master_name.clone(),
                db: 0,
            });
        }
        if !self.cluster_nodes.is_empty() {
            return Some(RedisTopology::Cluster {
                nodes: self.cluster_nodes.clone(),
            });
        }
        None
    }

    /// The checks of `[redis]` alone (its fit in the lookup deadline is a
    /// cross-section check).
    pub(super) fn validate(&self, c: &mut Checks) {
        c.check(
            !self.enabled() || !self.timeout.is_zero(),
            "redis.timeout_ms",
            "must be at least 1",
        );
        let sources = [
            self.url.is_some(),
            !self.sentinels.is_empty(),
            !self.cluster_nodes.is_empty(),
        ];
        c.check(
            sources.iter().filter(|set| **set).count() <= 1,
            "redis.url",
            "set one of redis.url, redis.sentinels and redis.cluster_nodes",
        );
        c.check(
            self.sentinels.is_empty() || !self.master_name.is_empty(),
            "redis.master_name",
            "redis.sentinels need the name of the master they monitor",
        );
        c.check(
            self.master_name.is_empty() || !self.sentinels.is_empty(),
            "redis.master_name",
            "names a master only with redis.sentinels (a sentinel URL carries its own)",
        );
        let sentinel = matches!(self.topology(), Some(RedisTopology::Sentinel { .. }));
        c.check(
            sentinel
                || (self.sentinel_username.is_none()
                    && self.sentinel_password_env.is_none()
                    && self.sentinel_password_file.is_none()),
            "redis.sentinel_password_env",
            "sentinel credentials need a Sentinel topology (redis.sentinels or a redis+sentinel:// URL)",
        );
    }
}
