//! The process's life as ops see it: reloads by signal and by file change,
//! start-up from any folder, logs off a terminal. The binary runs as a
//! separate process (see `process.rs`).

use std::time::Duration;

use serde_json::Value;
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{fixture, repo_path};
use crate::process::Served;

const RELOADS: [&str; 3] = [
    "authbridge_reloads_total{result=\"ok\"}",
    "authbridge_reloads_total{result=\"failed\"}",
    "authbridge_reloads_total{result=\"unchanged\"}",
];

async fn reloads(served: &Served) -> [f64; 3] {
    let mut counts = [0.0; 3];
    for (count, sample) in counts.iter_mut().zip(RELOADS) {
        *count = served.metric(sample).await;
    }
    counts
}

fn config(crm: &str, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n[auth_api]\nmapping = \"mapping.toml\"\n\
         [upstream]\nbase_url = \"{crm}\"\n[telemetry]\nlog_format = \"json\"\n{extra}"
    )
}

#[tokio::test]
async fn one_sighup_is_one_reload() {
    let served = Served::start(&config(
        "http://127.0.0.1:9",
        "[reload]\nwatch_files = true\ndebounce_ms = 200\n",
    ));
    served.signal("HUP");
    // Long enough for a reload loop to show (it ran every 200 ms).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let [ok, failed, unchanged] = reloads(&served).await;
    assert_eq!(
        (ok, failed, unchanged),
        (0.0, 0.0, 1.0),
        "one SIGHUP with the files unchanged: one reload, counted as unchanged"
    );
}

#[tokio::test]
async fn an_invalid_mapping_left_on_disk_is_logged_once() {
    let served = Served::start(&config(
        "http://127.0.0.1:9",
        "[reload]\nwatch_files = true\ndebounce_ms = 200\n",
    ));
    std::fs::write(
        served.path("mapping.toml"),
        "[client]\nid = \"$.client.id\"\nsurnme = \"$.x\"\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Asked again for the same broken version: refused, not logged again.
    served.signal("HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rejected: Vec<String> = served
        .logs()
        .into_iter()
        .filter(|l| l.contains("reload rejected") && l.contains("ERROR"))
        .collect();
    assert_eq!(rejected.len(), 1, "{rejected:#?}");
    assert!(
        rejected[0].contains("surnme"),
        "the line says what is wrong"
    );
    assert_eq!(reloads(&served).await, [0.0, 2.0, 0.0]);
    assert_eq!(
        crate::process::raw_status(served.port, "/healthz").unwrap(),
        200,
        "still serving"
    );
}

/// An editor writing in place in two chunks 1.2 s apart: the watcher waits
/// for the file to be quiet (2 s by default), so the half is never served.
#[tokio::test]
async fn a_file_written_in_two_steps_is_loaded_once_whole() {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/clients/by-token/.+$"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("generic-bank/alice.input.json")),
        )
        .mount(&crm)
        .await;
    let served = Served::start(&config(&crm.uri(), ""));
    let card = |token: String| {
        let base = served.base.clone();
        async move {
            reqwest::get(format!("{base}/rest/chat/client/id/{token}"))
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert!(
        !card("before".into()).await["companyList"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let original = std::fs::read_to_string(repo_path("mappings/generic-bank.toml")).unwrap();
    let changed = original.replace(
        r#"{ path = "$.client.typeCode", default = "0" }"#,
        r#"{ const = "1" }"#,
    );
    let cut = changed.find("[companyList]").unwrap();
    std::fs::write(served.path("mapping.toml"), &changed[..cut]).unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let during = card("during".into()).await;
    assert_eq!(during["client"]["type"], "0", "the half is not loaded");
    assert!(!during["companyList"].as_array().unwrap().is_empty());
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(served.path("mapping.toml"))
            .unwrap();
        f.write_all(changed[cut..].as_bytes()).unwrap();
    }

    let mut after = Value::Null;
    for i in 0..80 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        after = card(format!("after-{i}")).await;
        if after["client"]["type"] == "1" {
            break;
        }
    }
    assert_eq!(after["client"]["type"], "1", "the whole new file serves");
    assert!(!after["companyList"].as_array().unwrap().is_empty());
    assert_eq!(
        reloads(&served).await,
        [1.0, 0.0, 0.0],
        "exactly one reload"
    );
}

/// A deploy by atomic rename is one change: one reload.
#[tokio::test]
async fn a_mapping_deployed_by_rename_is_one_reload() {
    let served = Served::start(&config(
        "http://127.0.0.1:9",
        "[reload]\nwatch_files = true\ndebounce_ms = 200\n",
    ));
    let original = std::fs::read_to_string(served.path("mapping.toml")).unwrap();
    crate::process::write_atomically(
        &served.path("mapping.toml"),
        &original.replace("[meta]", "# deployed\n[meta]"),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(reloads(&served).await, [1.0, 0.0, 0.0]);
}

/// Each users-API section gives one key; every other key comes from the
/// built-in defaults, with no `config/default.toml` in the working folder.
#[tokio::test]
async fn starts_from_an_empty_folder_with_one_key_per_section() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_path("mappings/generic-bank.toml"),
        dir.path().join("mapping.toml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("key.txt"), "platform-key").unwrap();
    let mut extra = String::from("[users_api]\nenabled = true\napi_key_file = \"key.txt\"\n");
    for (section, file) in [
        ("get", "generic-bank-get"),
        ("update", "generic-bank-update"),
        ("otp_request", "generic-bank-otp-request"),
        ("otp_confirm", "generic-bank-otp-confirm"),
        ("login", "generic-bank-login"),
    ] {
        extra.push_str(&format!(
            "[users_api.{section}]\nmapping = \"{}\"\n",
            repo_path(&format!("mappings/users/{file}.toml")).display()
        ));
    }
    assert!(!dir.path().join("config").exists());
    let served = Served::start_in(dir, &config("http://127.0.0.1:9", &extra));
    // Mounted at its default path, behind its key.
    let answer = reqwest::Client::new()
        .post(format!("{}/users/get", served.base))
        .json(&serde_json::json!({"userIdentifier": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.unwrap();
    assert!(body["error"]["message"].is_string(), "{body}");
}

#[tokio::test]
async fn pretty_logs_off_a_terminal_carry_no_colour_codes() {
    let served = Served::start(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[auth_api]\nmapping = \"mapping.toml\"\n\
         [upstream]\nbase_url = \"http://127.0.0.1:9\"\n[telemetry]\nlog_format = \"pretty\"\n",
    );
    let logs = served.logs().join("\n");
    assert!(logs.contains("authbridge listening"), "{logs}");
    assert!(!logs.contains('\u{1b}'), "no ANSI escapes: {logs:?}");
}
