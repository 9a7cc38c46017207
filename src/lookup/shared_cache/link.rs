//! The connection to the shared level, whatever its topology: one server
//! (the crate's `ConnectionManager`, which reconnects in place), the master
//! the sentinels name (see [`sentinel`](super::sentinel)), or a Redis
//! Cluster (see [`cluster`](super::cluster)). The cache above sees commands
//! and replies only.

use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{FromRedisValue, RedisResult};

use super::cluster::ClusterLink;
use super::credentials::Connect;
use super::sentinel::SentinelLink;
use crate::config::{ConfigError, NodeAddr, RedisTopology};

/// Where the commands go.
pub(super) enum Link {
    /// One server; connected on first use, within the call's timeout.
    Server {
        client: redis::Client,
        connection: tokio::sync::Mutex<Option<ConnectionManager>>,
        timeout: Duration,
    },
    Sentinel(SentinelLink),
    Cluster(ClusterLink),
}

fn invalid(key: &str, e: &redis::RedisError) -> ConfigError {
    // The crate's message names what is wrong, never a password.
    ConfigError::invalid(key, format!("is not usable ({:?})", e.kind()))
}

impl Link {
    /// The link to `topology`; does not connect (Redis may come up after
    /// authbridge). A connect (finding a master, learning the slots) may
    /// take up to `connect.bound` in the background.
    pub(super) fn new(topology: RedisTopology, connect: &Connect) -> Result<Self, ConfigError> {
        let auth = &connect.auth;
        Ok(match topology {
            RedisTopology::Server(info) => {
                let mut redis = info.redis_settings().clone();
                if let Some(user) = &auth.username {
                    redis = redis.set_username(user);
                }
                if let Some(password) = &auth.password {
                    redis = redis.set_password(password);
                }
                let client = redis::Client::open(info.set_redis_settings(redis))
                    .map_err(|e| invalid("redis.url", &e))?;
                Link::Server {
                    client,
                    connection: tokio::sync::Mutex::new(None),
                    timeout: connect.timeout,
                }
            }
            RedisTopology::Sentinel {
                sentinels,
                master_name,
                db,
            } => Link::Sentinel(
                SentinelLink::new(&sentinels, &master_name, db, connect)
                    .map_err(|e| invalid("redis.sentinels", &e))?,
            ),
            RedisTopology::Cluster { nodes } => Link::Cluster(
                ClusterLink::new(&nodes, connect)
                    .map_err(|e| invalid("redis.cluster_nodes", &e))?,
            ),
        })
    }

    /// Runs `cmd` where its key lives.
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        match self {
            Link::Server {
                client,
                connection,
                timeout,
            } => {
                let mut slot = connection.lock().await;
                if slot.is_none() {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(*timeout))
                        .set_response_timeout(Some(*timeout))
                        .set_number_of_retries(1);
                    *slot = Some(client.get_connection_manager_with_config(config).await?);
                }
                let mut conn = slot.clone().expect("connected above");
                drop(slot);
                cmd.query_async(&mut conn).await
            }
            Link::Sentinel(sentinel) => sentinel.query(cmd).await,
            Link::Cluster(cluster) => cluster.query(cmd).await,
        }
    }

    /// A call failed or timed out: a Sentinel link finds the master again
    /// (the others recover by themselves).
    pub(super) fn failed(&self) {
        if let Link::Sentinel(sentinel) = self {
            sentinel.failed();
        }
    }

    /// The nodes a `SCAN` must visit to see every key: `None` is the one
    /// node of a server or a master.
    pub(super) async fn scan_nodes(&self) -> RedisResult<Vec<Option<NodeAddr>>> {
        match self {
            Link::Cluster(cluster) => Ok(cluster.masters().await?.into_iter().map(Some).collect()),
            _ => Ok(vec![None]),
        }
    }

    /// Runs `cmd` on `node` (from [`scan_nodes`](Self::scan_nodes)).
    pub(super) async fn query_on<T: FromRedisValue>(
        &self,
        node: Option<&NodeAddr>,
        cmd: &redis::Cmd,
    ) -> RedisResult<T> {
        match (self, node) {
            (Link::Cluster(cluster), Some(node)) => cluster.query_at(node, cmd.clone()).await,
            _ => self.query(cmd).await,
        }
    }
}
