//! The command line: `check` validates config and mapping; `demo` answers the
//! curl commands it prints.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::helpers::repo_path;

fn authbridge() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_authbridge"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    // The outer environment must not change what the test sees.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("AUTHBRIDGE__") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

#[test]
fn check_accepts_a_valid_config_and_mapping() {
    let config = config_file("[upstream]\nbase_url = \"http://127.0.0.1:9000\"\n");
    let out = authbridge()
        .args(["check", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("generic-bank.toml are valid"));
}

#[test]
fn check_rejects_bad_config_naming_the_key() {
    let config = config_file("[upstream]\nbase_url = \"http://127.0.0.1:9000\"\ntimeout_ms = 0\n");
    let out = authbridge()
        .args(["check", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("upstream.timeout_ms: must be at least 1")
    );
}

#[test]
fn check_rejects_a_bad_mapping_with_file_line_column() {
    let mapping = config_file("[client]\nid = \"$.id\"\nsurnme = \"$.x\"\n");
    let config = config_file(&format!(
        "[upstream]\nbase_url = \"http://127.0.0.1:9000\"\n[auth_api]\nmapping = \"{}\"\n",
        mapping.path().display()
    ));
    let out = authbridge()
        .args(["check", "--config"])
        .arg(config.path())
        .output()
        .unwrap();
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
    let out = authbridge().arg("serve").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstream.base_url: must be set"));
}

#[test]
fn env_overrides_the_config_file() {
    let config = config_file("[upstream]\nbase_url = \"http://127.0.0.1:9000\"\n");
    let out = authbridge()
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
    let mut child = authbridge()
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
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path("tests/fixtures/generic-bank/alice.expected.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(alice, expected);
    let bob: Value = get("demo-bob").await.unwrap().json().await.unwrap();
    assert_eq!(bob["client"]["enabled"], false);
    assert_eq!(get("demo-nobody").await.unwrap().status(), 404);
    assert_eq!(get("bad%0Atoken").await.unwrap().status(), 400);

    child.kill().unwrap();
    child.wait().unwrap();
}
