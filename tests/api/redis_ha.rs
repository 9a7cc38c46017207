//! The shared level in its highly available topologies, with real processes
//! the tests start on loopback ports (see `redis_servers`): a Sentinel
//! failover in the middle of a stream of lookups, and two replicas sharing
//! cards through a three-node Redis Cluster.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::helpers::{
    alice, bob, card_at, crm_path, eventually, file, lookup_at, metrics_of, start,
    start_with_admin, test_settings,
};
use crate::redis::{HASH_KEY, hash_key};
use crate::redis_servers::{Cluster, RedisProcess};

/// The Redis name of the Auth API's card for `token`, as every replica of
/// these tests computes it.
fn card_key(token: &str) -> String {
    let hasher = authbridge::lookup::cache::KeyHasher::new(HASH_KEY.as_bytes());
    let key = hasher.key(authbridge::front::auth_api::NAMESPACE, token);
    format!("authbridge:{}", hex::encode(key))
}

/// Whether `process` holds `key`.
async fn holds(process: &RedisProcess, key: &str) -> bool {
    process
        .ask::<i64>(redis::cmd("EXISTS").arg(key))
        .await
        .is_some_and(|n| n == 1)
}

/// Waits until `check` holds for what `sentinel` lists with `SENTINEL
/// <list> <name>` (`what` names the wait in its panic).
async fn sentinel_lists(
    sentinel: &RedisProcess,
    what: &str,
    list: &str,
    name: &str,
    check: impl Fn(&[HashMap<String, String>]) -> bool,
) {
    eventually(
        &format!("sentinel {} knows {what}", sentinel.addr()),
        Duration::from_secs(30),
        || async {
            let listed: Option<Vec<HashMap<String, String>>> = sentinel
                .ask(redis::cmd("SENTINEL").arg(list).arg(name))
                .await;
            listed.is_some_and(|l| check(&l))
        },
    )
    .await;
}

/// Waits until `sentinel` knows `replica` as a healthy replica of `name`
/// and knows `others` other sentinels: only then can it fail over.
async fn sentinel_ready(sentinel: &RedisProcess, name: &str, others: usize) {
    sentinel_lists(sentinel, "the replica", "REPLICAS", name, |r| {
        r.len() == 1 && r[0].get("flags").is_some_and(|f| f == "slave")
    })
    .await;
    sentinel_lists(sentinel, "the other sentinels", "SENTINELS", name, |k| {
        k.len() == others
    })
    .await;
}

/// What a stream of lookups saw: each answer's status and when it came.
type Outcomes = Vec<(Instant, u16)>;

/// Looks up a new token every 10 ms until `stop` (at most `bound` lookups),
/// so each one goes through Redis (lock, put, unlock) and the CRM.
fn drive(
    address: String,
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    bound: usize,
) -> tokio::task::JoinHandle<Outcomes> {
    tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for i in 0..bound {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let status = lookup_at(&address, &format!("load-{i}"))
                .await
                .status()
                .as_u16();
            outcomes.push((Instant::now(), status));
            done.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        outcomes
    })
}

#[tokio::test]
async fn a_sentinel_failover_mid_load_fails_no_lookup_and_the_promoted_replica_takes_over() {
    let mut master = RedisProcess::server(&[]).await;
    let replica = RedisProcess::replica_of(&master).await;
    let sentinels = [
        RedisProcess::sentinel(&master, "m", 500).await,
        RedisProcess::sentinel(&master, "m", 500).await,
    ];
    eventually(
        "the replica is in sync",
        Duration::from_secs(30),
        || async {
            let info: Option<String> = replica.ask(redis::cmd("INFO").arg("replication")).await;
            info.is_some_and(|i| i.contains("master_link_status:up"))
        },
    )
    .await;
    for sentinel in &sentinels {
        sentinel_ready(sentinel, "m", 1).await;
    }
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(alice())
        .mount(&crm)
        .await;
    let hash_key = hash_key();
    let mut settings = test_settings(&crm.uri());
    let url = format!(
        "redis+sentinel://{},{}/m",
        sentinels[0].addr(),
        sentinels[1].addr()
    );
    settings.redis.url = Some(url.parse().unwrap());
    // Generous for a loaded test machine; a dead master fails at once anyway.
    settings.redis.timeout = Duration::from_millis(500);
    settings.cache.hash_key_file = Some(hash_key.path().to_owned());
    // Short-lived cards and no grace: nothing may outlive its TTL.
    settings.cache.found_ttl = Duration::from_secs(2);
    settings.cache.grace = Duration::ZERO;
    settings.cache.ttl_jitter = 0.0;
    let address = start(settings).await;

    // Before: the card goes to the master the sentinels name, and on to the replica.
    let steady = card_at(&address, "steady").await;
    assert!(
        holds(&master, &card_key("steady")).await,
        "the card is on the master"
    );
    eventually(
        "the card reaches the replica",
        Duration::from_secs(10),
        || async { holds(&replica, &card_key("steady")).await },
    )
    .await;

    // During: a stream of lookups while the master dies.
    let (stop, done) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let load = drive(address.clone(), stop.clone(), done.clone(), 5_000);
    eventually(
        "20 lookups before the failover",
        Duration::from_secs(30),
        || async { done.load(Ordering::Relaxed) >= 20 },
    )
    .await;
    master.stop();
    let killed = Instant::now();
    eventually(
        "the sentinels promote the replica",
        Duration::from_secs(30),
        || async { replica.role().await.is_some_and(|r| r == "master") },
    )
    .await;
    let promoted = Instant::now();
    // After: a new card lands on the promoted replica.
    let mut n = 0;
    eventually(
        "authbridge writes to the promoted replica",
        Duration::from_secs(30),
        || {
            n += 1;
            let (address, replica) = (&address, &replica);
            async move {
                let token = format!("after-{n}");
                lookup_at(address, &token).await.status() == 200
                    && holds(replica, &card_key(&token)).await
            }
        },
    )
    .await;
    let switched = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let outcomes = load.await.unwrap();

    let failed: Vec<_> = outcomes.iter().filter(|(_, s)| *s != 200).collect();
    let during = outcomes
        .iter()
        .filter(|(at, _)| *at >= killed && *at <= switched)
        .count();
    eprintln!(
        "sentinel failover: promoted after {} ms, authbridge on the new master after {} ms; \
         {} lookups in all, {during} during the switch, {} not 200; {} CRM calls",
        (promoted - killed).as_millis(),
        (switched - killed).as_millis(),
        outcomes.len(),
        failed.len(),
        crm.received_requests().await.unwrap().len(),
    );
    assert!(failed.is_empty(), "every lookup got its card: {failed:?}");
    assert!(during > 0, "lookups ran during the switch");
    assert!(
        metrics_of(&address)
            .await
            .contains("authbridge_redis_errors_total"),
        "the failover was felt (and survived)"
    );

    // Nothing outlives its TTL: the promoted replica holds each card with
    // the TTL it was written with (if it still holds it)...
    for token in ["steady", "load-0"] {
        let pttl: i64 = replica
            .ask(redis::cmd("PTTL").arg(card_key(token)))
            .await
            .unwrap();
        assert!(
            pttl == -2 || (1..=2_000).contains(&pttl),
            "{token}: PTTL {pttl} ms"
        );
    }
    // ...and once the CRM's answer changes, the old card (in moka and on
    // the promoted replica) gives way within the TTL.
    Mock::given(path(crm_path("steady")))
        .respond_with(bob())
        .with_priority(1)
        .mount(&crm)
        .await;
    eventually(
        "the changed card is served after the TTL",
        Duration::from_secs(15),
        || async { card_at(&address, "steady").await != steady },
    )
    .await;
}

/// Settings of one replica on the cluster.
fn cluster_replica(crm: &MockServer, hash_key: &tempfile::NamedTempFile) -> authbridge::Settings {
    let mut s = test_settings(&crm.uri());
    s.redis.timeout = Duration::from_millis(2_000);
    s.cache.hash_key_file = Some(hash_key.path().to_owned());
    s
}

#[tokio::test]
async fn two_replicas_share_cards_through_a_three_node_cluster() {
    let cluster = Cluster::start().await;
    let tokens: Vec<String> = (0..8).map(|i| format!("c-{i}")).collect();
    let crm = MockServer::start().await;
    for token in &tokens {
        Mock::given(path(crm_path(token)))
            .respond_with(alice())
            .expect(1)
            .mount(&crm)
            .await;
    }
    let hash_key = hash_key();
    let admin_token = file("adm1n");
    // One replica names the cluster by URL, the other by its seed-node key.
    let mut a = cluster_replica(&crm, &hash_key);
    a.redis.url = Some(
        format!("redis+cluster://{}", cluster.addrs().join(","))
            .parse()
            .unwrap(),
    );
    a.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    a.admin.token_file = Some(admin_token.path().to_owned());
    let mut b = cluster_replica(&crm, &hash_key);
    b.redis.cluster_nodes = cluster.addrs().iter().map(|n| n.parse().unwrap()).collect();
    let (a, admin) = start_with_admin(a).await;
    let b = start(b).await;

    for token in &tokens {
        let from_a: Value = card_at(&a, token).await;
        let from_b: Value = card_at(&b, token).await;
        assert_eq!(from_a, from_b, "{token}: B served A's card");
    }

    crm.verify().await;
    let mut held = Vec::new();
    for node in &cluster.nodes {
        held.push(node.keys().await.len());
    }
    assert_eq!(
        held.iter().sum::<usize>(),
        tokens.len(),
        "one card a token, locks released: {held:?}"
    );
    assert!(
        held.iter().filter(|n| **n > 0).count() >= 2,
        "the cards spread over the slots of several nodes: {held:?}"
    );
    // Purge-all scans every master, not just the one a SCAN lands on.
    let purge_all = crate::helpers::http()
        .post(format!("{}/admin/cache/purge-all", admin.unwrap()))
        .bearer_auth("adm1n");
    assert_eq!(crate::helpers::status_of(purge_all).await, 200);
    for node in &cluster.nodes {
        assert!(node.keys().await.is_empty(), "{} emptied", node.addr());
    }
}
