//! The shared Redis cache level with a real redis-server (started by the test
//! on a loopback port; `redis-server` must be installed — `.ci/run` and
//! `tools/test` install it): replicas share cards, values are encrypted at
//! rest, and a Redis outage costs no lookup.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    alice, crm_answering, crm_path, eventually, file, lookup_at, metrics_of, refusal, start,
    test_settings,
};

/// A redis-server on a free loopback port, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (run tools/test or .ci/run, which install it)");
        // Owned by the guard from here on: killed and waited for on drop.
        let server = Self { child, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    async fn keys(&self) -> Vec<(String, Vec<u8>)> {
        let client = redis::Client::open(self.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("authbridge:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut out = Vec::new();
        for k in keys {
            let v: Vec<u8> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap();
            out.push((k, v));
        }
        out
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The cache key every replica of a test shares.
fn hash_key() -> tempfile::NamedTempFile {
    file("a-shared-hmac-key-of-32-bytes!!!")
}

/// A mock CRM answering `response` for `token`, expected `times` when given.
async fn crm_for(token: &str, response: ResponseTemplate, times: Option<u64>) -> MockServer {
    let crm = MockServer::start().await;
    let mock = Mock::given(path(crm_path(token))).respond_with(response);
    match times {
        Some(n) => mock.expect(n).mount(&crm).await,
        None => mock.mount(&crm).await,
    }
    crm
}

/// Settings of one replica: same CRM, same Redis, same keys. Redis calls
/// get 2 s (production's default is 50 ms), so a stalled test machine does
/// not turn a healthy Redis into a "Redis is down" fallback.
fn replica(
    crm: &MockServer,
    redis: &RedisServer,
    hash_key: &tempfile::NamedTempFile,
    aes: Option<&tempfile::NamedTempFile>,
) -> authbridge::Settings {
    let mut s = test_settings(&crm.uri());
    s.redis.url = redis.url();
    s.redis.timeout = Duration::from_millis(2_000);
    s.cache.hash_key_file = Some(hash_key.path().to_owned());
    s.redis.encryption_key_file = aes.map(|f| f.path().to_owned());
    s
}

async fn card(address: &str, token: &str) -> (u16, Value) {
    let r = lookup_at(address, token).await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_card_fetched_by_one_replica_is_served_by_another_without_a_crm_call() {
    let redis = RedisServer::start().await;
    let crm = crm_for("shared", alice(), Some(1)).await;
    let hash_key = hash_key();
    let aes = file(&"7".repeat(64));
    let a = start(replica(&crm, &redis, &hash_key, Some(&aes))).await;
    let b = start(replica(&crm, &redis, &hash_key, Some(&aes))).await;

    let (status_a, card_a) = card(&a, "shared").await;
    let (status_b, card_b) = card(&b, "shared").await;

    assert_eq!((status_a, status_b), (200, 200));
    assert_eq!(card_a, card_b);
    assert_eq!(
        crm.received_requests().await.unwrap().len(),
        1,
        "B used A's card from Redis"
    );
    // At rest the card is sealed: no personal data in Redis, and the key is a hash.
    let stored = redis.keys().await;
    assert_eq!(stored.len(), 1, "one card; the fetch lock was released");
    let (key, value) = &stored[0];
    assert!(!key.contains("shared"), "{key}");
    assert!(!String::from_utf8_lossy(value).contains("Иванова"));
    assert!(!value.windows(6).any(|w| w == b"100234"));
}

#[tokio::test]
async fn replicas_coalesce_a_cold_token_through_the_redis_lock() {
    let redis = RedisServer::start().await;
    // The CRM holds A's fetch (and so A's Redis lock) for 1.5 s; B asks once
    // the CRM has A's request, well inside that, and may wait up to 3 s.
    let crm = crm_for(
        "cold",
        alice().set_delay(Duration::from_millis(1_500)),
        None,
    )
    .await;
    let hash_key = hash_key();
    let slow_fetch = || {
        let mut s = replica(&crm, &redis, &hash_key, None);
        s.upstream.timeout = Duration::from_millis(3_000);
        s.redis.lock = Duration::from_millis(3_000);
        s.server.request_timeout = Duration::from_millis(10_000);
        s
    };
    let a = start(slow_fetch()).await;
    let b = start(slow_fetch()).await;

    let (ra, rb) = tokio::join!(card(&a, "cold"), async {
        eventually(
            "the CRM has A's request",
            Duration::from_secs(10),
            || async { !crm.received_requests().await.unwrap().is_empty() },
        )
        .await;
        card(&b, "cold").await
    });

    assert_eq!((ra.0, rb.0), (200, 200));
    assert_eq!(
        crm.received_requests().await.unwrap().len(),
        1,
        "B waited for A's fetch"
    );
}

#[tokio::test]
async fn killing_redis_mid_test_fails_no_lookup() {
    let mut redis = RedisServer::start().await;
    let crm = crm_answering(alice()).await;
    let hash_key = hash_key();
    let mut settings = replica(&crm, &redis, &hash_key, None);
    // A short timeout, as a replica would run: the outage costs no lookup.
    settings.redis.timeout = Duration::from_millis(200);
    let address = start(settings).await;

    for i in 0..5 {
        assert_eq!(card(&address, &format!("before-{i}")).await.0, 200);
    }
    redis.stop();
    for i in 0..20 {
        assert_eq!(
            card(&address, &format!("after-{i}")).await.0,
            200,
            "lookup {i} after Redis died"
        );
    }
    // Cached cards are still served from memory.
    assert_eq!(card(&address, "before-0").await.0, 200);
    let metrics = metrics_of(&address).await;
    assert!(
        metrics.contains("authbridge_redis_errors_total"),
        "the outage is visible"
    );
}

#[tokio::test]
async fn redis_requires_a_shared_hash_key() {
    let mut settings = test_settings("http://127.0.0.1:9");
    settings.redis.url = "redis://127.0.0.1:1/".into();
    let err = refusal(settings).await;
    assert!(
        err.contains("cache.hash_key_env: replicas sharing Redis need the same cache key"),
        "{err}"
    );
}

#[tokio::test]
async fn purge_all_clears_the_shared_level_too() {
    let redis = RedisServer::start().await;
    let crm = crm_for("p", alice(), Some(2)).await;
    let hash_key = hash_key();
    let admin_token = file("adm1n");
    let mut settings = replica(&crm, &redis, &hash_key, None);
    settings.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.admin.token_file = Some(admin_token.path().to_owned());
    let (address, admin) = crate::helpers::start_with_admin(settings).await;

    assert_eq!(card(&address, "p").await.0, 200);
    assert_eq!(redis.keys().await.len(), 1);
    let purged = reqwest::Client::new()
        .post(format!("{}/admin/cache/purge-all", admin.unwrap()))
        .bearer_auth("adm1n")
        .send()
        .await
        .unwrap();
    assert_eq!(purged.status(), 200);
    assert!(redis.keys().await.is_empty(), "Redis emptied too");
    assert_eq!(
        card(&address, "p").await.0,
        200,
        "fetched again from the CRM"
    );
}
