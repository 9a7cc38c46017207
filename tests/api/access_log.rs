//! The access log: exactly one `authbridge::access` line per request, with
//! the request's route (never its URI), status, errorCode, outcome, cache
//! state, CRM calls and client, on both fronts; never the token. It can be
//! turned off by config and by the level filter.

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::{
    alice, captured_logs, eventually, spawn_app, spawn_app_with, start, test_settings,
    users_settings,
};
use crate::process::Served;

const ROUTE: &str = "/rest/chat/client/id/{*token}";

/// A unique token (and request id), so parallel tests never match each
/// other's lines.
fn unique(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

/// The access lines (their `fields`) of the request with id `id`.
fn access_lines(id: &str) -> Vec<Value> {
    captured_logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "authbridge::access" && l["fields"]["request_id"] == id)
        .map(|l| l["fields"].clone())
        .collect()
}

/// The one access line of request `id`.
fn access_line(id: &str) -> Value {
    let lines = access_lines(id);
    assert_eq!(lines.len(), 1, "one access line for {id}: {lines:?}");
    lines[0].clone()
}

/// GETs the Auth API for `token` with request id `id`; the status.
async fn lookup(address: &str, token: &str, id: &str) -> u16 {
    crate::helpers::http()
        .get(format!("{address}/rest/chat/client/id/{token}"))
        .header("x-request-id", id)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Asserts `line` has these fields with these values, and none of `absent`.
fn assert_fields(line: &Value, expected: &[(&str, Value)], absent: &[&str]) {
    for (name, value) in expected {
        assert_eq!(&line[*name], value, "{name} in {line}");
    }
    for name in absent {
        assert!(line.get(*name).is_none(), "{name} in {line}");
    }
    assert!(line["duration_us"].is_u64(), "{line}");
    assert_eq!(line["client"], "127.0.0.1", "{line}");
}

#[tokio::test]
async fn one_line_per_auth_api_request_with_what_it_did_and_no_token() {
    let app = spawn_app_with(|s| {
        s.upstream.retry.max_attempts = 1;
        s.telemetry.access_log = true;
    })
    .await;
    let (found, missing, broken) = (unique("found"), unique("missing"), unique("broken"));
    app.crm_answers(&found, alice(), 1).await;
    app.crm_answers(&missing, ResponseTemplate::new(404), 1)
        .await;
    app.crm_answers(&broken, ResponseTemplate::new(500), 1)
        .await;
    let ids: Vec<String> = (0..4).map(|_| unique("req")).collect();

    assert_eq!(lookup(&app.address, &found, &ids[0]).await, 200);
    assert_eq!(lookup(&app.address, &found, &ids[1]).await, 200);
    assert_eq!(lookup(&app.address, &missing, &ids[2]).await, 404);
    assert_eq!(lookup(&app.address, &broken, &ids[3]).await, 502);

    // Per request: status, outcome, errorCode, cache, CRM calls, CRM status;
    // a field with no value (no error, no CRM call) is absent from the line.
    let rows = [
        (200, "found", None, "miss", 1, Some(200)),
        (200, "found_cached", None, "hit", 0, None),
        (404, "not_found", Some("1001"), "miss", 1, Some(404)),
        (502, "crm_bad_status", Some("1006"), "miss", 1, Some(500)),
    ];
    for (id, (status, outcome, error_code, cache, crm_calls, crm_status)) in ids.iter().zip(rows) {
        let mut expected = vec![
            ("method", json!("GET")),
            ("route", json!(ROUTE)),
            ("status", json!(status)),
            ("outcome", json!(outcome)),
            ("cache", json!(cache)),
            ("crm_calls", json!(crm_calls)),
        ];
        let mut absent = Vec::new();
        for (name, value) in [
            ("error_code", error_code.map(|c| json!(c))),
            ("crm_status", crm_status.map(|s| json!(s))),
        ] {
            match value {
                Some(value) => expected.push((name, value)),
                None => absent.push(name),
            }
        }
        assert_fields(&access_line(id), &expected, &absent);
    }

    let logs = captured_logs();
    for token in [&found, &missing, &broken] {
        assert!(!logs.contains(token.as_str()), "a token reached the logs");
    }
}

#[tokio::test]
async fn requests_outside_the_lookup_get_their_line_too() {
    let app = spawn_app_with(|s| s.telemetry.access_log = true).await;
    let (empty, unknown, health) = (unique("req"), unique("req"), unique("req"));
    assert_eq!(lookup(&app.address, "", &empty).await, 400);
    let status = |path: &str, id: &str| {
        let request = app
            .http
            .get(format!("{}{path}", app.address))
            .header("x-request-id", id);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/no/such/path", &unknown).await, 404);
    assert_eq!(status("/healthz", &health).await, 200);

    let bad = access_line(&empty);
    assert_eq!(bad["route"], "/rest/chat/client/id/", "{bad}");
    assert_eq!(bad["outcome"], "bad_token", "{bad}");
    assert_eq!(bad["error_code"], "1002", "{bad}");
    assert!(bad.get("cache").is_none(), "no cache consulted: {bad}");
    let unknown = access_line(&unknown);
    assert_eq!(unknown["route"], "unmatched", "never the URI: {unknown}");
    assert_eq!(unknown["error_code"], "1404", "{unknown}");
    assert_eq!(access_line(&health)["status"], 200);
}

#[tokio::test]
async fn users_api_requests_get_their_line_without_the_identifier() {
    let crm = wiremock::MockServer::start().await;
    let (mut settings, _key) = users_settings(&crm.uri(), "platform-key-access");
    settings.telemetry.access_log = true;
    let address = start(settings).await;
    let user = format!("7999{}", &uuid::Uuid::new_v4().as_u128().to_string()[..7]);
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/customers/{user}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(crate::helpers::fixture("users/customer-anna.json")),
        )
        .expect(1)
        .mount(&crm)
        .await;
    let id = unique("req");
    let response = crate::helpers::http()
        .post(format!("{address}/users/get"))
        .header("x-request-id", &id)
        .json(&json!({"userIdentifier": user, "key": "platform-key-access"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let line = access_line(&id);
    let expected = [
        ("method", json!("POST")),
        ("route", json!("/users/get")),
        ("status", json!(200)),
        ("outcome", json!("found")),
        ("cache", json!("miss")),
        ("crm_calls", json!(1)),
        ("crm_status", json!(200)),
    ];
    assert_fields(&line, &expected, &["error_code"]);
    let logs = captured_logs();
    assert!(!logs.contains(&user), "the identifier reached the logs");
    assert!(
        !logs.contains("platform-key-access"),
        "the key reached the logs"
    );
}

#[tokio::test]
async fn the_access_log_is_off_by_default_and_on_when_asked() {
    let app = spawn_app().await;
    let token = unique("quiet");
    app.crm_always(&token, alice()).await;
    let id = unique("req");
    assert_eq!(lookup(&app.address, &token, &id).await, 200);
    assert!(access_lines(&id).is_empty());
    // The same request on an app with `access_log = true` writes one: the
    // check above can fail.
    let mut settings = test_settings(&app.crm.uri());
    settings.telemetry.access_log = true;
    let loud = start(settings).await;
    let id = unique("req");
    assert_eq!(lookup(&loud, &token, &id).await, 200);
    assert_eq!(access_lines(&id).len(), 1);
}

/// The binary writes access lines to stdout (JSON with `log_format =
/// "json"`), and `RUST_LOG=...,authbridge::access=off` silences them alone.
#[tokio::test]
async fn the_level_filter_turns_the_access_log_off() {
    let crm = crate::helpers::crm_answering(alice()).await;
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\nworkers = 1\n[upstream]\nbase_url = \"{}\"\npath = \"/api/v1/sessions/{{token}}/client\"\n[auth_api]\nmapping = \"mapping.toml\"\n[telemetry]\nlog_format = \"json\"\naccess_log = true\n",
        crm.uri()
    );
    let on = Served::start(&config);
    let off = Served::start_with_env(&config, &[("RUST_LOG", "info,authbridge::access=off")]);
    let token = unique("proc");
    for served in [&on, &off] {
        assert_eq!(lookup(&served.base, &token, "proc-access").await, 200);
    }
    // Every line a process wrote before its shutdown lines has been read
    // once those are: stdout is one pipe, read in order.
    for served in [&on, &off] {
        served.signal("TERM");
        eventually(
            "the server logs its shutdown",
            std::time::Duration::from_secs(20),
            || async { served.logs().iter().any(|l| l.contains("shutting down")) },
        )
        .await;
    }
    let access = |served: &Served| {
        served
            .logs()
            .iter()
            .filter(|l| {
                l.contains("\"target\":\"authbridge::access\"") && l.contains("proc-access")
            })
            .count()
    };
    assert_eq!(access(&on), 1, "{:?}", on.logs());
    assert_eq!(access(&off), 0, "{:?}", off.logs());
    assert!(!on.logs().join("\n").contains(&token));
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_line_names_the_forwarded_client() {
    let app = spawn_app_with(|s| {
        s.telemetry.access_log = true;
        s.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let (forwarded, direct) = (unique("req"), unique("req"));
    for (id, header) in [(&forwarded, "203.0.113.7"), (&direct, "")] {
        let mut request = crate::helpers::http()
            .get(format!("{}/healthz", app.address))
            .header("x-request-id", id.as_str());
        if !header.is_empty() {
            request = request.header("x-forwarded-for", header);
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
    }

    assert_eq!(access_line(&forwarded)["client"], "203.0.113.7");
    assert_eq!(access_line(&direct)["client"], "127.0.0.1");
}
