//! The shared level on a Redis Cluster. The crate's cluster client routes
//! each command by its key's slot and follows `MOVED`/`ASK` and failovers
//! itself. Every command authbridge sends names one key (`GET`, `PTTL`,
//! `SET`, the one-key unlock script), except `DEL` of a batch, which the
//! client splits by slot; and `SCAN`, which sees only the node it runs on,
//! so `clear` scans each master in turn.

use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{FromRedisValue, RedisResult};

use super::background::Background;
use super::credentials::{Connect, tcp};
use crate::config::NodeAddr;

/// A Redis Cluster, learnt from its seed nodes.
pub(super) struct ClusterLink {
    client: ClusterClient,
    conn: Background<ClusterConnection>,
}

impl ClusterLink {
    /// Does not connect: the first call learns the slot map.
    pub(super) fn new(nodes: &[NodeAddr], connect: &Connect) -> RedisResult<Self> {
        // The per-attempt timeout is also the whole call's (retries included).
        let mut builder = ClusterClientBuilder::new(tcp(nodes))
            .connection_timeout(connect.timeout)
            .response_timeout(connect.timeout)
            .retries(2);
        if let Some(user) = &connect.auth.username {
            builder = builder.username(user);
        }
        if let Some(password) = &connect.auth.password {
            builder = builder.password(password);
        }
        Ok(Self {
            client: builder.build()?,
            conn: Background::new(connect.bound),
        })
    }

    async fn connection(&self) -> RedisResult<ClusterConnection> {
        let (_, conn) = self
            .conn
            .get(|| {
                let client = self.client.clone();
                async move { client.get_async_connection().await }
            })
            .await?;
        Ok(conn)
    }

    /// Runs `cmd` on the node(s) its keys belong to.
    pub(super) async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        cmd.query_async(&mut self.connection().await?).await
    }

    /// Runs `cmd` on the node at `node`.
    pub(super) async fn query_at<T: FromRedisValue>(
        &self,
        node: &NodeAddr,
        cmd: redis::Cmd,
    ) -> RedisResult<T> {
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: node.host.clone(),
            port: node.port,
        });
        let value = self.connection().await?.route_command(cmd, routing).await?;
        Ok(T::from_redis_value(value)?)
    }

    /// The masters serving slots, as the cluster names them.
    pub(super) async fn masters(&self) -> RedisResult<Vec<NodeAddr>> {
        let nodes: String = self.query(redis::cmd("CLUSTER").arg("NODES")).await?;
        Ok(masters_of(&nodes))
    }
}

/// The healthy masters with slots in a `CLUSTER NODES` reply: lines of
/// `id ip:port@cport[,hostname] flags master-id ping pong epoch link slot…`.
fn masters_of(reply: &str) -> Vec<NodeAddr> {
    reply
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2)?;
            let serving = fields.len() > 8
                && flags.split(',').any(|f| f == "master")
                && !flags.contains("fail")
                && !flags.contains("noaddr");
            if !serving {
                return None;
            }
            let address = fields[1].split(['@', ',']).next()?;
            address.parse().ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masters_with_slots_are_scanned_and_replicas_and_failed_nodes_are_not() {
        let reply = "\
a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460
b2 127.0.0.1:7002@17002,redis-b master - 0 0 2 connected 5461-10922
c3 127.0.0.1:7003@17003 master,fail - 0 0 3 disconnected 10923-16383
d4 127.0.0.1:7004@17004 slave a1 0 0 1 connected
e5 127.0.0.1:7005@17005 master - 0 0 5 connected
";
        let ports: Vec<u16> = masters_of(reply).iter().map(|n| n.port).collect();
        assert_eq!(ports, [7001, 7002]);
    }
}
