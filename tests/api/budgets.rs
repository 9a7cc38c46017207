//! The mapping budget through the real server: a runaway jq rule ends its
//! lookup with 1003 (the users front with `error`), the process keeps
//! answering and its memory stays bounded; a parent-group lookup's cost is
//! linear in the groups.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    alice, crm_answering, crm_fixture, fixture, repo_path, start, test_settings, users_settings,
};

const RUNAWAY: &str = r#"{ jq = "[range(100000000)] | length | tostring" }"#;

/// The generic bank mapping with `secretWord` computed by a runaway rule.
fn runaway_mapping() -> tempfile::NamedTempFile {
    let text = std::fs::read_to_string(repo_path("mappings/generic-bank.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("secretWord"))
        .expect("the mapping has a secretWord rule");
    let text = text.replacen(line, &format!("secretWord = {RUNAWAY}"), 1);
    crate::helpers::file(&text)
}

/// Peak resident memory of this process, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024)
}

#[tokio::test]
async fn a_runaway_jq_rule_fails_its_lookup_and_the_server_keeps_answering() {
    let crm = crm_answering(alice()).await;
    let mapping = runaway_mapping();
    let mut settings = test_settings(&crm.uri());
    settings.auth_api.mapping = mapping.path().to_owned();
    let base = start(settings).await;
    let http = reqwest::Client::new();

    let lookups: Vec<_> = (0..4)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                let r = http
                    .get(format!("{base}/rest/chat/client/id/runaway-{i}"))
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            })
        })
        .collect();
    // Meanwhile the server's own endpoints answer (a client-side bound of 2 s
    // would catch a stalled worker; the figures are printed).
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(2),
            http.get(format!("{base}/healthz")).send(),
        )
        .await
        .expect("/healthz answered while the rules ran")
        .unwrap();
        assert_eq!(r.status(), 200);
        slowest = slowest.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for lookup in lookups {
        let (status, body) = lookup.await.unwrap();
        assert_eq!(status, 500, "{body}");
        assert_eq!(body["errorCode"], "1003");
        let text = body["errorText"].as_str().unwrap();
        assert!(text.contains("client.secretWord"), "{text}");
        assert!(text.contains("exceeded its budget"), "{text}");
    }
    let peak = peak_rss_mib();
    eprintln!("4 runaway lookups: slowest /healthz {slowest:?}, peak RSS {peak} MiB");
    assert!(peak < 512, "peak RSS {peak} MiB");
}

#[tokio::test]
async fn the_users_front_answers_a_runaway_rule_with_error() {
    let crm = crm_answering(crm_fixture("users/customer-anna.json")).await;
    let (mut settings, _key) = users_settings(&crm.uri(), "k");
    let text = std::fs::read_to_string(repo_path("mappings/users/generic-bank-get.toml")).unwrap();
    let text = text.replacen(
        "name       = \"$.steps.customer.customer.fullName\"",
        &format!("name       = {RUNAWAY}"),
        1,
    );
    assert!(text.contains("range(100000000)"));
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    settings.users_api.get.mapping = file.path().to_owned();
    let base = start(settings).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/users/get"))
        .bearer_auth("k")
        .json(&json!({"userIdentifier": "79991234567"}))
        .send()
        .await
        .unwrap();
    assert!(!r.status().is_success());
    let body: Value = r.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
}

/// The parent-group lookup over a flat list: evaluation steps for 6,000
/// groups stay within 15 × those for 600 (a scan per item made it ~100 ×).
#[test]
fn a_parent_group_lookup_costs_linear_steps() {
    use authbridge::mapping::Mapping;
    use authbridge::schema::{ApiVersion, auth_api::RESPONSE};
    let head = std::fs::read_to_string(repo_path("mappings/generic-bank.toml")).unwrap();
    let text = format!(
        "{head}\n[client.group]\neach = \"$.groups[*]\"\n[client.group.item]\nid = \"@.id\"\nname = \"@.title\"\n\
         parentGroup = {{ lookup = \"$.groups[*]\", key = \"@.id\", match = \"@.parentId\" }}\n"
    );
    // Steps only: a debug build's time must not cut the count short.
    let mapping = Mapping::parse("groups.toml", &text, &RESPONSE, ApiVersion::V1_2)
        .unwrap()
        .with_budget(authbridge::mapping::budget::Budget {
            max_steps: u64::MAX,
            max_time: Duration::from_secs(600),
            ..Default::default()
        });
    let steps = |n: usize| {
        let mut crm = fixture("generic-bank/alice.input.json");
        // Every group a member, in a hierarchy three levels deep (10 roots,
        // 90 under them, the rest under those), so the card grows as the
        // input does.
        let parent = |i: usize| match i {
            0..10 => Value::Null,
            10..100 => json!(i % 10),
            _ => json!(10 + i % 90),
        };
        crm["groups"] = (0..n)
            .map(|i| json!({"id": i, "title": format!("g{i}"), "parentId": parent(i)}))
            .collect();
        let (card, steps) = mapping.apply_counted(&crm);
        card.expect("maps");
        steps
    };
    let (small, large) = (steps(600), steps(6_000));
    eprintln!("parent-group lookup: 600 groups {small} steps, 6,000 groups {large} steps");
    assert!(large <= 15 * small, "{large} > 15 × {small}");
}
