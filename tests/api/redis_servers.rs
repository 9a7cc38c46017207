//! Real Redis processes for the shared-cache tests: a server, a replica, a
//! sentinel, a three-node cluster — each started by the test on a free
//! loopback port in its own temp dir, and killed when dropped. A missing
//! binary fails the test naming the distro package (`tools/test` and
//! `.ci/run` install them); it is never a skip.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::helpers::eventually;

/// How long a process may take to accept connections.
const START: Duration = Duration::from_secs(10);

pub use crate::process::free_port;

/// A `redis-server` or `redis-sentinel` process, killed when dropped.
pub struct RedisProcess {
    child: Child,
    pub port: u16,
    /// Its working directory (configs, cluster state); removed when dropped.
    _dir: tempfile::TempDir,
}

impl RedisProcess {
    /// A `redis-server` on a free port, without persistence, with `extra`
    /// arguments.
    pub async fn server(extra: &[String]) -> Self {
        Self::spawn("redis-server", "redis-server", |port, dir| {
            let mut args: Vec<String> = [
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--dir",
                &dir.display().to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .map(String::from)
            .into();
            args.extend_from_slice(extra);
            args
        })
        .await
    }

    /// A replica of `master`.
    pub async fn replica_of(master: &RedisProcess) -> Self {
        let of = [
            "--replicaof".into(),
            "127.0.0.1".into(),
            master.port.to_string(),
        ];
        Self::server(&of).await
    }

    /// A `redis-sentinel` watching `master` as `name`: quorum 1, down after
    /// `down_ms`, so a test sees a failover within seconds.
    pub async fn sentinel(master: &RedisProcess, name: &str, down_ms: u64) -> Self {
        Self::spawn("redis-sentinel", "redis-sentinel", |port, dir| {
            Self::sentinel_conf(dir, port, master, name, down_ms)
        })
        .await
    }

    /// A sentinel's config file in `dir` (a sentinel rewrites it, so it
    /// lives in the temp dir), and the arguments naming it.
    fn sentinel_conf(
        dir: &Path,
        port: u16,
        master: &RedisProcess,
        name: &str,
        down_ms: u64,
    ) -> Vec<String> {
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {port}\ndir {dir}\n\
                 sentinel monitor {name} 127.0.0.1 {master} 1\n\
                 sentinel down-after-milliseconds {name} {down_ms}\n\
                 sentinel failover-timeout {name} {failover}\n\
                 sentinel parallel-syncs {name} 1\n",
                dir = dir.display(),
                master = master.port,
                failover = down_ms * 4,
            ),
        )
        .unwrap();
        vec![conf.display().to_string()]
    }

    /// Starts `binary` with the arguments `args` makes for a free port and
    /// a fresh temp dir. A free port is only free when it is picked: another
    /// test can take it (or, in cluster mode, the bus port 10000 above it)
    /// before the process binds, and then the process exits. That is a lost
    /// race, not a failure of the code under test, so it is tried again on
    /// another port, up to `ATTEMPTS` times.
    async fn spawn(binary: &str, package: &str, args: impl Fn(u16, &Path) -> Vec<String>) -> Self {
        const ATTEMPTS: usize = 5;
        for _ in 0..ATTEMPTS {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let child = Command::new(binary)
                .args(args(port, dir.path()))
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "{binary} could not be started ({e}): install the distro package \
                         `{package}` (tools/test and .ci/run install it)"
                    )
                });
            // Owned by the guard from here on: killed and waited for on drop.
            let mut process = Self {
                child,
                port,
                _dir: dir,
            };
            eventually(
                &format!("{binary} accepts connections on port {port}"),
                START,
                || {
                    let exited = process.exited();
                    async move {
                        exited
                            || tokio::net::TcpStream::connect(("127.0.0.1", port))
                                .await
                                .is_ok()
                    }
                },
            )
            .await;
            if !process.exited() {
                return process;
            }
        }
        panic!("{binary} exited on start {ATTEMPTS} times (each on a new free port)")
    }

    /// Whether the process has ended (std keeps the status once reaped, so
    /// asking again gives the same answer).
    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A plain connection to this process alone.
    pub async fn connection(&self) -> MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.addr()))
    }

    /// One command's reply, or `None` when the process does not answer.
    pub async fn ask<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        cmd.query_async(&mut conn).await.ok()
    }

    /// The names of authbridge's keys held here (locks included).
    pub async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("authbridge:*")
            .query_async(&mut self.connection().await)
            .await
            .unwrap();
        keys.sort();
        keys
    }

    /// Each of authbridge's keys here with its value.
    pub async fn entries(&self) -> Vec<(String, Vec<u8>)> {
        let mut conn = self.connection().await;
        let mut out = Vec::new();
        for k in self.keys().await {
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap();
            out.push((k, v));
        }
        out
    }

    /// `role` from `INFO replication` (`master` or `slave`).
    pub async fn role(&self) -> Option<String> {
        let info: String = self.ask(redis::cmd("INFO").arg("replication")).await?;
        info.lines()
            .find_map(|l| l.strip_prefix("role:"))
            .map(|r| r.trim().to_owned())
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Three cluster-enabled servers sharing the 16384 slots, no replicas.
pub struct Cluster {
    pub nodes: Vec<RedisProcess>,
}

impl Cluster {
    /// Starts the nodes, creates the cluster and waits until every node
    /// reports `cluster_state:ok`.
    pub async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..3 {
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            ]
            .map(String::from);
            nodes.push(RedisProcess::server(&args).await);
        }
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        create.args(nodes.iter().map(RedisProcess::addr));
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = create
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs (distro package `redis-tools`, a dependency of redis-server)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let cluster = Self { nodes };
        for node in &cluster.nodes {
            eventually(
                &format!("node {} reports cluster_state:ok", node.addr()),
                Duration::from_secs(30),
                || async {
                    node.ask::<String>(redis::cmd("CLUSTER").arg("INFO"))
                        .await
                        .is_some_and(|info| info.contains("cluster_state:ok"))
                },
            )
            .await;
        }
        cluster
    }

    /// `host:port` of every node.
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(RedisProcess::addr).collect()
    }
}
