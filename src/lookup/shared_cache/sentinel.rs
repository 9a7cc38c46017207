//! The shared level behind Redis Sentinel: the sentinels name the master,
//! and after a failure authbridge asks them again, since a failover may have
//! promoted a replica (the crate's `SentinelClient` finds the master but does
//! not follow it, unlike its `ConnectionManager` for one server).
//!
//! The connection is dropped on any failed call (a dead master, a demoted
//! one answering `READONLY`, a timeout); the next call, after the back-off,
//! finds the master again in the background, bounded, so no lookup waits
//! for the sentinels longer than one Redis call's timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, RedisResult};

use super::background::Background;
use super::credentials::{Connect, tcp};
use crate::config::NodeAddr;

/// The master named by the sentinels.
pub(super) struct SentinelLink {
    /// Asks the sentinels (one question at a time: it caches their connections).
    client: Arc<tokio::sync::Mutex<SentinelClient>>,
    config: AsyncConnectionConfig,
    master: Background<MultiplexedConnection>,
    /// The number of the connection last used, dropped on a failure.
    in_use: AtomicU64,
}

impl SentinelLink {
    /// Does not connect: the first call finds the master.
    pub(super) fn new(
        sentinels: &[NodeAddr],
        master_name: &str,
        db: i64,
        connect: &Connect,
    ) -> RedisResult<Self> {
        let mut builder =
            SentinelClientBuilder::new(tcp(sentinels), master_name, SentinelServerType::Master)?
                .set_client_to_redis_db(db);
        if let Some(user) = &connect.auth.username {
            builder = builder.set_client_to_redis_username(user);
        }
        if let Some(password) = &connect.auth.password {
            builder = builder.set_client_to_redis_password(password);
        }
        if let Some(user) = &connect.auth.sentinel_username {
            builder = builder.set_client_to_sentinel_username(user);
        }
        if let Some(password) = &connect.auth.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password);
        }
        Ok(Self {
            client: Arc::new(tokio::sync::Mutex::new(builder.build()?)),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connect.timeout))
                .set_response_timeout(Some(connect.timeout)),
            master: Background::new(connect.bound),
            in_use: AtomicU64::new(0),
        })
    }

    /// Runs `cmd` on the master, finding it first if need be.
    pub(super) async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        let (number, mut conn) = self
            .master
            .get(|| {
                // Cloned only to connect: the connect outlives this call.
                let (client, config) = (Arc::clone(&self.client), self.config.clone());
                async move {
                    let master = client.lock().await.async_get_client().await?;
                    master
                        .get_multiplexed_async_connection_with_config(&config)
                        .await
                }
            })
            .await?;
        self.in_use.store(number, Ordering::Relaxed);
        cmd.query_async(&mut conn).await
    }

    /// A call failed: the next one asks the sentinels again.
    pub(super) fn failed(&self) {
        self.master.forget(self.in_use.load(Ordering::Relaxed));
    }
}
