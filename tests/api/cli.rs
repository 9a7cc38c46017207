//! The command line: `check` validates config and mapping; `demo` answers the
//! curl commands it prints.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::helpers::{
    assert_expected_cards, file, fixture, mappings_with_fixture_pairs, repo_path,
};
use crate::process::{command_in_repo, output_ok};

/// `authbridge check --config <config>`'s output.
fn check(config: &tempfile::NamedTempFile) -> std::process::Output {
    command_in_repo()
        .args(["check", "--config"])
        .arg(config.path())
        .output()
        .unwrap()
}

#[test]
fn check_accepts_a_valid_config_and_mapping() {
    let config = file("[upstream]\nbase_url = \"http://127.0.0.1:9000\"\n");
    let out = check(&config);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("ok: configuration, secrets and mapping mappings/generic-bank.toml"),
        "{stdout}"
    );
    // Every other shipped mapping is checked too.
    assert!(stdout.contains("ok: mappings/hubspot.toml"), "{stdout}");
}

#[test]
fn check_rejects_bad_config_naming_the_key() {
    let config = file("[upstream]\nbase_url = \"http://127.0.0.1:9000\"\ntimeout_ms = 0\n");
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("upstream.timeout_ms: must be at least 1")
    );
}

#[test]
fn check_rejects_a_bad_mapping_with_file_line_column() {
    let mapping = file("[client]\nid = \"$.id\"\nsurnme = \"$.x\"\n");
    let config = file(&format!(
        "[upstream]\nbase_url = \"http://127.0.0.1:9000\"\n[auth_api]\nmapping = \"{}\"\n",
        mapping.path().display()
    ));
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:3:1: client.surnme: unknown field `surnme` in Client; did you mean `surname`?",
        mapping.path().display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn serve_refuses_to_start_without_a_crm_url() {
    let out = command_in_repo().arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream.base_url: must be set"));
}

#[test]
fn env_overrides_the_config_file() {
    let config = file("[upstream]\nbase_url = \"http://127.0.0.1:9000\"\n");
    let out = command_in_repo()
        .args(["check", "--config"])
        .arg(config.path())
        .env("AUTHBRIDGE__UPSTREAM__TIMEOUT_MS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream.timeout_ms"));
}

#[tokio::test]
async fn demo_answers_its_printed_curl_commands() {
    let mut child = command_in_repo()
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Keep reading stdout for the demo's whole life, so its logs never hit a
    // closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(base) = line.trim().strip_prefix("authbridge: ") {
                let _ = tx.send(base.to_owned());
            }
        }
    });
    let base = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("demo prints its address");
    let get = |token: &str| reqwest::get(format!("{base}/rest/chat/client/id/{token}"));

    let alice = get("demo-alice").await.unwrap();
    assert_eq!(alice.status(), 200);
    let alice: Value = alice.json().await.unwrap();
    assert_eq!(alice, fixture("generic-bank/alice.expected.json"));
    let bob: Value = get("demo-bob").await.unwrap().json().await.unwrap();
    assert_eq!(bob["client"]["enabled"], false);
    assert_eq!(get("demo-nobody").await.unwrap().status(), 404);
    assert_eq!(get("bad%0Atoken").await.unwrap().status(), 400);
    // The second front, as the demo prints it.
    let users = |path: &str, body: String| {
        reqwest::Client::new()
            .post(format!("{base}/users/{path}"))
            .bearer_auth(authbridge::app::demo::USERS_KEY)
            .body(body)
            .send()
    };
    let user: Value = users("get", r#"{"userIdentifier":"79991234567"}"#.into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["user"]["id"], "C-1001");
    let wrong = r#"{"userIdentifier":"79991234567","otp":"000000"}"#;
    let wrong: Value = users("otp/confirm", wrong.into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(wrong["error"]["message"].is_string());
    let orders = |id: &str| users("orders", format!(r#"{{"userIdentifier":"{id}"}}"#));
    let history: Value = orders("79991234567").await.unwrap().json().await.unwrap();
    assert_eq!(
        history,
        fixture("users/generic-bank-orders/anna.expected.json")
    );
    let unknown = orders("70000000000").await.unwrap();
    assert_eq!(unknown.status(), 404);
    let unknown: Value = unknown.json().await.unwrap();
    assert!(unknown["error"]["message"].is_string(), "{unknown}");

    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn map_reproduces_every_expected_card() {
    let mappings = mappings_with_fixture_pairs("mappings", "tests/fixtures/");
    let checked = assert_expected_cards(mappings, |mapping| {
        move |input| {
            let out = output_ok(
                command_in_repo()
                    .args(["map", "--mapping"])
                    .arg(&mapping)
                    .arg("--input")
                    .arg(input),
            );
            serde_json::from_slice(&out.stdout).unwrap()
        }
    });
    assert!(checked >= 2);
}

#[test]
fn map_reports_the_field_that_cannot_be_filled() {
    let input = file(r#"{"client": {"id": 1, "fullName": "X", "firstName": "Y"}}"#);
    let out = command_in_repo()
        .args(["map", "--mapping", "mappings/generic-bank.toml", "--input"])
        .arg(input.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("client.surname: required"), "{stderr}");
}

#[test]
fn check_lists_every_mistake_of_a_mapping_with_its_position() {
    let mapping = file(
        r#"[client]
id = "$.id"
name = { template = "{$.last} {$.first" }
surnme = "$.last"
firstName = { path = "$.first", jq = "ascii_upcase(" }
patronymic = { path = "$.middle", replace = { pattern = "(", with = "" } }
type = { path = "$.kind", map = { LEGAL = "1" }, fallback = [0] }
enabled = { path = "$.active", date = "%d.%m.%Y" }
birthdate = { path = "$.born", date = "dd.mm.yyyy" }
extRef = "$.abs["
cardRef = "@.card"

[companyList]
each = "$.companies[*]"
item = { name = "@.name" }
"#,
    );
    let out = command_in_repo()
        .args(["check", "--mapping"])
        .arg(mapping.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = mapping.path().display().to_string();
    for expected in [
        ":3:21: client.name: unclosed `{` in template",
        ":4:1: client.surnme: unknown field `surnme` in Client; did you mean `surname`?",
        ":5:38: client.firstName: invalid jq expression",
        ":6:57: client.patronymic: invalid regex `(`",
        ":7:61: client.type: the fallback is an array, but the field takes string",
        ":8:39: client.enabled: `date` produces a YYYY-MM-DD string, but the field takes boolean",
        ":9:39: client.birthdate: `dd.mm.yyyy` is not a date format",
        ":10:10: client.extRef: invalid JSONPath `$.abs[`",
        ":11:11: client.cardRef: `@.card` reads the current item (`@`)",
        ":1:1: client.surname: required Client field `surname` is not mapped",
        ":15:8: companyList.item.id: required Company field `id` is not mapped",
    ] {
        assert!(
            stderr.contains(&format!("{file}{expected}")),
            "missing {expected}:\n{stderr}"
        );
    }
}

/// A config kept beside its mapping is not a mapping: `check --config` checks
/// the mapping files the config names and the other files in that folder
/// that are mappings (by their top-level tables), and only those.
#[test]
fn check_config_skips_a_config_beside_its_mapping_but_checks_mappings_there() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_path("mappings/generic-bank.toml"),
        dir.path().join("bank.toml"),
    )
    .unwrap();
    let config = dir.path().join("authbridge.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[upstream]\nbase_url = \"http://127.0.0.1:9000\"\n[auth_api]\nmapping = {:?}\n",
            dir.path().join("bank.toml").display().to_string()
        ),
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.toml"), "title = \"not a mapping\"\n").unwrap();
    let check = || {
        command_in_repo()
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };

    let out = check();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("unknown field"), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("authbridge.toml"), "{stdout}");
    assert!(!stdout.contains("notes.toml"), "{stdout}");
    // The users-API mappings the (default) config names are checked too.
    assert!(
        stdout.contains("ok: mappings/users/generic-bank-get.toml"),
        "{stdout}"
    );

    // A broken mapping beside them is still found.
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[client]\nid = \"$.id\"\nsurnme = \"$.x\"\n").unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3:1: client.surnme", broken.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("authbridge.toml"), "{stderr}");
}
