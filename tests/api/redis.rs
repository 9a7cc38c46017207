//! The shared Redis cache level with a real redis-server (started by the test
//! on a loopback port; `redis-server` must be installed — `.ci/run` and
//! `tools/test` install it): replicas share cards, values are encrypted at
//! rest, and a Redis outage costs no lookup.

use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    alice, crm_answering, crm_path, eventually, file, lookup_at, metrics_of, refusal, start,
    test_settings,
};
use crate::redis_servers::RedisProcess;

/// The cache key every replica of a test shares.
pub const HASH_KEY: &str = "a-shared-hmac-key-of-32-bytes!!!";

/// [`HASH_KEY`] in a file, for `cache.hash_key_file`.
pub fn hash_key() -> tempfile::NamedTempFile {
    file(HASH_KEY)
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
    redis: &RedisProcess,
    hash_key: &tempfile::NamedTempFile,
    aes: Option<&tempfile::NamedTempFile>,
) -> authbridge::Settings {
    let mut s = test_settings(&crm.uri());
    s.redis.url = Some(redis.url().parse().unwrap());
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
    let redis = RedisProcess::server(&[]).await;
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
    let stored = redis.entries().await;
    assert_eq!(stored.len(), 1, "one card; the fetch lock was released");
    let (key, value) = &stored[0];
    assert!(!key.contains("shared"), "{key}");
    assert!(!String::from_utf8_lossy(value).contains("Иванова"));
    assert!(!value.windows(6).any(|w| w == b"100234"));
}

#[tokio::test]
async fn replicas_coalesce_a_cold_token_through_the_redis_lock() {
    let redis = RedisProcess::server(&[]).await;
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
    let mut redis = RedisProcess::server(&[]).await;
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
    settings.redis.url = Some("redis://127.0.0.1:1/".parse().unwrap());
    let err = refusal(settings).await;
    assert!(
        err.contains("cache.hash_key_env: replicas sharing Redis need the same cache key"),
        "{err}"
    );
}

#[tokio::test]
async fn purge_all_clears_the_shared_level_too() {
    let redis = RedisProcess::server(&[]).await;
    let crm = crm_for("p", alice(), Some(2)).await;
    let hash_key = hash_key();
    let admin_token = file("adm1n");
    let mut settings = replica(&crm, &redis, &hash_key, None);
    settings.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.admin.token_file = Some(admin_token.path().to_owned());
    let (address, admin) = crate::helpers::start_with_admin(settings).await;

    assert_eq!(card(&address, "p").await.0, 200);
    assert_eq!(redis.entries().await.len(), 1);
    let purge_all = crate::helpers::http()
        .post(format!("{}/admin/cache/purge-all", admin.unwrap()))
        .bearer_auth("adm1n");
    assert_eq!(crate::helpers::status_of(purge_all).await, 200);
    assert!(redis.entries().await.is_empty(), "Redis emptied too");
    assert_eq!(
        card(&address, "p").await.0,
        200,
        "fetched again from the CRM"
    );
}

/// Get User Data on `address` with the platform key `key`.
async fn users_get(address: &str, key: &str, id: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{address}/users/get"))
        .json(&serde_json::json!({"key": key, "userIdentifier": id}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn replicas_share_a_users_api_profile_sealed_in_its_own_key_space() {
    let redis = RedisProcess::server(&[]).await;
    let crm = MockServer::start().await;
    Mock::given(path("/api/v1/customers/79991234567"))
        .respond_with(crate::helpers::crm_fixture("users/customer-anna.json"))
        .expect(1)
        .mount(&crm)
        .await;
    let hash_key = hash_key();
    let aes = file(&"5".repeat(64));
    let users_replica = || {
        let (mut s, key) = crate::helpers::users_settings(&crm.uri(), "platform-key");
        s.redis.url = Some(redis.url().parse().unwrap());
        s.redis.timeout = Duration::from_millis(2_000);
        s.cache.hash_key_file = Some(hash_key.path().to_owned());
        s.redis.encryption_key_file = Some(aes.path().to_owned());
        // Exact TTLs, so Redis's can be checked against them.
        s.cache.ttl_jitter = 0.0;
        (s, key)
    };
    let (settings_a, _key_a) = users_replica();
    let (settings_b, _key_b) = users_replica();
    let ttl = settings_a.users_api.found_ttl + settings_a.cache.grace;
    let a = start(settings_a).await;
    let b = start(settings_b).await;

    let from_a = users_get(&a, "platform-key", "79991234567").await;
    let from_b = users_get(&b, "platform-key", "79991234567").await;

    assert_eq!(from_a.0, 200, "{}", from_a.1);
    assert_eq!(from_a, from_b, "B served A's profile");
    assert_eq!(from_b.1["user"]["name"], "Иванова Анна");
    // One profile in the users front's own key space, sealed, with the
    // profile's TTL (plus the grace window), as in moka.
    let stored = redis.entries().await;
    assert_eq!(stored.len(), 1, "one profile, the fetch lock released");
    let (name, value) = &stored[0];
    let hash = name
        .strip_prefix("authbridge:users-api:")
        .unwrap_or_else(|| panic!("{name} is in the users-API key space"));
    assert_eq!(hash.len(), 64, "{name}: a keyed hash, not the identifier");
    let text = String::from_utf8_lossy(value);
    assert!(!text.contains("Анна") && !text.contains("456123789"));
    let pttl: i64 = redis.ask(redis::cmd("PTTL").arg(name)).await.unwrap();
    assert!(
        pttl > 0 && pttl as u128 <= ttl.as_millis(),
        "PTTL {pttl} ms within the profile's {ttl:?}"
    );
    crm.verify().await;
}

/// A redis-server that exits on start (here: an option it refuses, as when
/// another test took its port first) is started again on new ports, and
/// after the last attempt the test fails naming the binary, not a timeout.
#[tokio::test]
#[should_panic(expected = "redis-server exited on start 5 times")]
async fn a_redis_that_exits_on_start_is_retried_then_named() {
    RedisProcess::server(&["--no-such-option".into(), "yes".into()]).await;
}
