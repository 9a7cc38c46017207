//! Every metric the Grafana dashboard and the alert rules name is one the
//! server really exports: the real server, with a mock CRM, takes traffic on
//! both fronts — hits, misses, not-found, CRM failures, retries, stale
//! cards, an open breaker, refused and timed-out connections, a denied key,
//! a reload, a dead Redis — and then its `/metrics` must have each name.

use std::collections::BTreeSet;
use std::time::Duration;

use promql_parser::parser::Expr;
use promql_parser::util::{ExprVisitor, walk_expr};
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::deploy::alert_rules;
use crate::helpers::{
    alice, crm_path, eventually, file, fixture, metrics_of, repo_path, start_with_admin,
    users_settings,
};

/// The metric names a PromQL expression selects.
fn selected_metrics(expr: &str) -> BTreeSet<String> {
    struct Names(BTreeSet<String>);
    impl ExprVisitor for Names {
        type Error = String;
        fn pre_visit(&mut self, expr: &Expr) -> Result<bool, String> {
            let selector = match expr {
                Expr::VectorSelector(vs) => vs,
                Expr::MatrixSelector(ms) => &ms.vs,
                _ => return Ok(true),
            };
            let name = selector
                .name
                .clone()
                .ok_or("a selector without a metric name")?;
            self.0.insert(name);
            Ok(true)
        }
    }
    let parsed =
        promql_parser::parser::parse(expr).unwrap_or_else(|e| panic!("not PromQL: {expr}: {e}"));
    let mut names = Names(BTreeSet::new());
    walk_expr(&mut names, &parsed).unwrap_or_else(|e| panic!("{expr}: {e}"));
    assert!(!names.0.is_empty(), "selects no metric: {expr}");
    names.0
}

/// Every query of the dashboard (panels, rows' panels, variables), with
/// Grafana's own variables replaced by what they stand for.
fn dashboard_queries() -> Vec<String> {
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("deploy/grafana/authbridge.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut panels: Vec<&Value> = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    let mut out = Vec::new();
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target has an expr");
            out.push(expr.replace("$__rate_interval", "5m"));
        }
    }
    assert!(out.len() >= 15, "the dashboard was read: {out:?}");
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["definition"].as_str() {
            // label_values(metric, label)
            let inner = query
                .strip_prefix("label_values(")
                .and_then(|q| q.split(',').next())
                .unwrap_or_else(|| panic!("unexpected variable query {query}"));
            out.push(inner.trim().to_owned());
        }
    }
    out
}

/// The metric families in a Prometheus text: each sample's name, and a
/// histogram's base name beside its `_bucket`/`_sum`/`_count` series.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap().to_owned();
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                names.insert(base.to_owned());
            }
        }
        names.insert(name);
    }
    names
}

const KEY: &str = "platform-key";

/// An app with everything that records turned on, and its mock CRM.
struct Busy {
    address: String,
    admin: String,
    crm: MockServer,
    http: reqwest::Client,
    _files: Vec<tempfile::NamedTempFile>,
    _dead_redis: socket2::Socket,
}

async fn busy_app() -> Busy {
    let crm = MockServer::start().await;
    let (mut s, key) = users_settings(&crm.uri(), KEY);
    let admin_token = file("admin-token");
    let hash_key = file("0123456789abcdef0123456789abcdef");
    s.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    s.admin.token_file = Some(admin_token.path().to_owned());
    // A Redis that is not there: a port held bound but not listening (no
    // other process can take it), so every shared-cache call is refused.
    let dead = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    dead.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    let dead_port = dead.local_addr().unwrap().as_socket().unwrap().port();
    s.redis.url = Some(format!("redis://127.0.0.1:{dead_port}/0").parse().unwrap());
    s.cache.hash_key_file = Some(hash_key.path().to_owned());
    s.cache.found_ttl = Duration::from_secs(1);
    s.cache.grace = Duration::from_secs(600);
    s.cache.ttl_jitter = 0.0;
    // The breaker opens on two failures in a row.
    s.upstream.breaker.consecutive_failures = 2;
    s.upstream.breaker.open = Duration::from_secs(600);
    s.server.max_connections = 8;
    s.server.header_read_timeout = Duration::from_millis(1_500);
    let (address, admin) = start_with_admin(s).await;
    Busy {
        address,
        admin: admin.unwrap(),
        crm,
        // No idle connections kept: the connection cap counts only what the
        // test holds on purpose.
        http: reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap(),
        _files: vec![key, admin_token, hash_key],
        _dead_redis: dead,
    }
}

impl Busy {
    async fn lookup(&self, token: &str) -> reqwest::Response {
        self.http
            .get(format!("{}/rest/chat/client/id/{token}", self.address))
            .send()
            .await
            .unwrap()
    }

    async fn users_get(&self, key: &str, id: &str) -> u16 {
        self.http
            .post(format!("{}/users/get", self.address))
            .json(&json!({"userIdentifier": id, "key": key}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn crm(&self, p: String, response: ResponseTemplate) {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(response)
            .mount(&self.crm)
            .await;
    }
}

#[tokio::test]
async fn every_metric_of_the_dashboard_and_the_alerts_is_exported() {
    let app = busy_app().await;
    app.crm(crm_path("alice"), alice()).await;
    app.crm(crm_path("gone"), ResponseTemplate::new(404)).await;
    // An answer over mapping.offload_body_bytes (64 KiB, the process's pool
    // setting) is mapped on the mapping pool.
    let mut large = fixture("generic-bank/alice.input.json");
    large["padding"] = json!("x".repeat(256 * 1024));
    app.crm(
        crm_path("large"),
        ResponseTemplate::new(200).set_body_json(large),
    )
    .await;
    app.crm(
        "/api/v1/customers/79991234567".into(),
        ResponseTemplate::new(200).set_body_json(fixture("users/customer-anna.json")),
    )
    .await;

    // The Auth API: a miss, a hit, a not-found, a bad token.
    assert_eq!(app.lookup("alice").await.status(), 200);
    assert_eq!(app.lookup("alice").await.status(), 200);
    assert_eq!(app.lookup("gone").await.status(), 404);
    assert_eq!(app.lookup("bad%0Atoken").await.status(), 400);
    assert_eq!(app.lookup("large").await.status(), 200);
    // The users API: a profile, and a wrong key.
    assert_eq!(app.users_get(KEY, "79991234567").await, 200);
    assert_eq!(app.users_get("wrong", "79991234567").await, 401);
    // A reload through the admin API.
    let reload = app
        .http
        .post(format!("{}/admin/reload", app.admin))
        .bearer_auth("admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(reload.status(), 200);

    // The CRM starts failing for "stale": its card, past its TTL, is served
    // stale while the CRM's 503s are retried, until the breaker opens...
    Mock::given(method("GET"))
        .and(path(crm_path("stale")))
        .respond_with(alice())
        .up_to_n_times(1)
        .mount(&app.crm)
        .await;
    app.crm(crm_path("stale"), ResponseTemplate::new(503)).await;
    assert_eq!(app.lookup("stale").await.status(), 200);
    eventually("a stale card", Duration::from_secs(10), || async {
        let r = app.lookup("stale").await;
        r.headers()["x-authbridge-cache"]
            .to_str()
            .unwrap()
            .starts_with("stale")
    })
    .await;
    // ...and a miss then fails fast (503/1009), shed.
    eventually("the breaker open", Duration::from_secs(10), || async {
        app.lookup("never-seen").await.status() == 503
    })
    .await;

    // Connections: more than the cap at once, sending nothing: some are
    // refused, the others cut by the header-read timeout.
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
    }
    eventually(
        "refused and timed-out connections counted",
        Duration::from_secs(30),
        || async {
            // While the slots are full, /metrics itself is refused.
            let Ok(r) = app
                .http
                .get(format!("{}/metrics", app.address))
                .send()
                .await
            else {
                return false;
            };
            let text = r.text().await.unwrap_or_default();
            text.contains("authbridge_connections_refused_total")
                && text.contains("authbridge_connections_timed_out_total")
        },
    )
    .await;
    drop(held);
    let text = metrics_of(&app.address).await;

    let exported = exported(&text);
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    for query in dashboard_queries() {
        for name in selected_metrics(&query) {
            wanted.insert((name, format!("dashboard: {query}")));
        }
    }
    for (alert, expr) in alert_rules() {
        for name in selected_metrics(&expr) {
            wanted.insert((name, format!("alert {alert}")));
        }
    }
    let missing: Vec<&(String, String)> = wanted
        .iter()
        .filter(|(name, _)| !exported.contains(name))
        .collect();
    assert!(
        missing.is_empty(),
        "named but not exported: {missing:#?}\n/metrics:\n{text}"
    );
    // The names come from both files, and from each of the fronts.
    assert!(
        wanted
            .iter()
            .any(|(n, _)| n == "authbridge_users_requests_total")
    );
    assert!(
        wanted
            .iter()
            .any(|(n, w)| n == "authbridge_breaker_state" && w.starts_with("alert"))
    );
}

#[test]
fn metric_names_are_read_from_promql_not_guessed() {
    let names = selected_metrics(
        "histogram_quantile(0.99, sum by (le) (rate(a_seconds_bucket{job=~\"$job\"}[5m]))) \
         / on() group_left sum(b_total) > 2",
    );
    assert_eq!(
        names,
        BTreeSet::from(["a_seconds_bucket".to_owned(), "b_total".to_owned()])
    );
    let exported = exported("# TYPE x histogram\nx_bucket{le=\"1\"} 0\nx_sum 0\nx_count 0\ny 1\n");
    assert!(exported.contains("x_bucket") && exported.contains("x") && exported.contains("y"));
}
