//! Reloading what used to need a restart: retry and breaker settings (from
//! a config file re-read on reload) and the users API's mappings (admin
//! API, file watcher), with a rejected version leaving the running one in
//! place and a call under way finishing with the version it started with.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use authbridge::app::reload::Reloader;
use authbridge::{Application, Settings};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{
    assert_error, crm_path, eventually, file, get_json, http, init_logs, lookup_at, metric_in,
    metrics_of, repo_path, start, start_with_admin, users_settings,
};

/// An app started from a config file, so a reload re-reads it.
struct FromFile {
    address: String,
    reloader: Arc<Reloader>,
    config: PathBuf,
    crm: String,
    _dir: tempfile::TempDir,
}

/// A config for the generic bank mapping in front of `crm`, with `extra`.
fn config(crm: &str, extra: &str) -> String {
    let mapping = repo_path("mappings/generic-bank.toml");
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[auth_api]\nmapping = \"{}\"\n\
         [upstream]\nbase_url = \"{crm}\"\npath = \"/api/v1/sessions/{{token}}/client\"\n\
         timeout_ms = 1000\nconnect_timeout_ms = 500\n[reload]\nwatch_files = false\n{extra}",
        mapping.display()
    )
}

impl FromFile {
    async fn start(crm: &str, extra: &str) -> Self {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let config_file = dir.path().join("config.toml");
        std::fs::write(&config_file, config(crm, extra)).unwrap();
        let settings = Settings::load(Some(&config_file)).expect("the config loads");
        let app = Application::build_with_config_file(settings, Some(config_file.clone()))
            .await
            .expect("app builds");
        let address = format!("http://{}", app.local_addr());
        let reloader = app.reloader();
        tokio::spawn(app.run_with_shutdown(std::future::pending()));
        Self {
            address,
            reloader,
            config: config_file,
            crm: crm.to_owned(),
            _dir: dir,
        }
    }

    /// Rewrites the config with `extra` and reloads; asserts it applied
    /// without a restart.
    async fn reload_with(&self, extra: &str) {
        std::fs::write(&self.config, config(&self.crm, extra)).unwrap();
        let reloaded = self.reloader.reload().await.expect("the reload applies");
        assert!(
            reloaded.needs_restart.is_empty(),
            "{:?}",
            reloaded.needs_restart
        );
    }
}

/// How many requests `crm` received for `token`'s path.
async fn calls_for(crm: &MockServer, token: &str) -> usize {
    let p = crm_path(token);
    crm.received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == p)
        .count()
}

/// Retries with `attempts`, fast and with budget to spare; no breaker.
fn retries(attempts: u32) -> String {
    format!(
        "[upstream.retry]\nmax_attempts = {attempts}\nbase_delay_ms = 1\nmax_delay_ms = 5\n\
         budget_min_per_sec = 100\n[upstream.breaker]\nenabled = false\n"
    )
}

#[tokio::test]
async fn reloaded_retry_attempts_change_the_crm_calls_of_a_failing_lookup() {
    let crm = MockServer::start().await;
    for (token, times) in [("before", 2), ("after", 4)] {
        Mock::given(method("GET"))
            .and(path(crm_path(token)))
            .respond_with(ResponseTemplate::new(503))
            .expect(times)
            .mount(&crm)
            .await;
    }
    let app = FromFile::start(&crm.uri(), &retries(2)).await;
    assert_error(lookup_at(&app.address, "before").await, 502, "1006").await;
    assert_eq!(calls_for(&crm, "before").await, 2);

    app.reload_with(&retries(4)).await;
    assert_error(lookup_at(&app.address, "after").await, 502, "1006").await;
    assert_eq!(calls_for(&crm, "after").await, 4, "the new attempts");
}

/// A breaker that opens on `n` failures in a row only; no retries.
fn breaker(n: u32) -> String {
    format!(
        "[upstream.retry]\nmax_attempts = 1\n[upstream.breaker]\nmin_requests = 100000\n\
         consecutive_failures = {n}\nopen_ms = 600000\n"
    )
}

#[tokio::test]
async fn a_reloaded_breaker_threshold_opens_after_the_new_count() {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .expect(2)
        .mount(&crm)
        .await;
    let app = FromFile::start(&crm.uri(), &breaker(5)).await;
    assert_error(lookup_at(&app.address, "t1").await, 502, "1006").await;

    // The failure counted so far is kept; the next one is the second in a
    // row, which the new threshold opens on.
    app.reload_with(&breaker(2)).await;
    assert_error(lookup_at(&app.address, "t2").await, 502, "1006").await;
    assert_error(lookup_at(&app.address, "t3").await, 503, "1009").await;
    assert_eq!(
        crm.received_requests().await.unwrap().len(),
        2,
        "t3 never reached the CRM"
    );
    let metrics = metrics_of(&app.address).await;
    assert_eq!(metric_in(&metrics, "authbridge_breaker_state"), 2.0);
}

const KEY: &str = "platform-key-reload";

/// A temp copy of a shipped mapping.
fn copy_of(rel: &str) -> tempfile::NamedTempFile {
    file(&std::fs::read_to_string(repo_path(rel)).unwrap())
}

/// A users call with the platform's key.
async fn users_post(address: &str, call: &str, body: Value) -> (u16, Value) {
    let mut body = body;
    body["key"] = json!(KEY);
    let r = http()
        .post(format!("{address}{call}"))
        .json(&body)
        .send()
        .await
        .expect("authbridge answers");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn user(address: &str, id: &str) -> Value {
    let (status, body) = users_post(address, "/users/get", json!({"userIdentifier": id})).await;
    assert_eq!(status, 200, "{body}");
    body["user"].clone()
}

async fn otp_message(address: &str) -> String {
    let (status, body) = users_post(
        address,
        "/users/otp/request",
        json!({"userIdentifier": "79991234567"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["otp"]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

fn otp_answer() -> Value {
    json!({"sent": true, "resendAfter": 60, "attempts": 3, "length": 6, "maskedPhone": "7999***4567"})
}

/// A mock CRM that knows every customer and sends every code.
async fn users_crm() -> MockServer {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/api/v1/customers/[0-9]+$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(crate::helpers::fixture("users/customer-anna.json")),
        )
        .mount(&crm)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/otp/send"))
        .respond_with(ResponseTemplate::new(200).set_body_json(otp_answer()))
        .mount(&crm)
        .await;
    crm
}

const GET: &str = "mappings/users/generic-bank-get.toml";
const OTP: &str = "mappings/users/generic-bank-otp-request.toml";
const NEW_FIELD: &str = "channel = { const = \"reloaded\" }\n";
const OTP_TEMPLATE: &str = "Код отправлен на {";

#[tokio::test]
async fn users_mappings_reload_and_an_invalid_one_leaves_the_last_good_one_serving() {
    let crm = users_crm().await;
    let (get, otp) = (copy_of(GET), copy_of(OTP));
    let token = file("adm1n-token");
    let (mut settings, _key) = users_settings(&crm.uri(), KEY);
    settings.users_api.get.mapping = get.path().to_owned();
    settings.users_api.otp_request.mapping = otp.path().to_owned();
    settings.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    settings.admin.token_file = Some(token.path().to_owned());
    let (address, admin) = start_with_admin(settings).await;
    let admin = admin.expect("admin API on");
    let reload = || async {
        let r = http()
            .post(format!("{admin}/admin/reload"))
            .bearer_auth("adm1n-token")
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(user(&address, "79991234567").await.get("channel"), None);
    assert!(otp_message(&address).await.starts_with("Код отправлен"));

    // A new field in Get User Data, a new text in OTP request.
    let original = std::fs::read_to_string(get.path()).unwrap();
    std::fs::write(get.path(), format!("{original}{NEW_FIELD}")).unwrap();
    let otp_text = std::fs::read_to_string(otp.path()).unwrap();
    assert!(otp_text.contains(OTP_TEMPLATE));
    std::fs::write(otp.path(), otp_text.replace(OTP_TEMPLATE, "Code sent to {")).unwrap();
    let (status, body) = reload().await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["users_mappings_changed"],
        json!(["get", "otp_request"]),
        "{body}"
    );
    assert_eq!(body["mapping_changed"], false, "{body}");
    assert_eq!(body["needs_restart"], json!([]), "{body}");
    // The cached profile was made by the old mapping: dropped.
    assert_eq!(user(&address, "79991234567").await["channel"], "reloaded");
    assert_eq!(otp_message(&address).await, "Code sent to 7999***4567");

    // An invalid mapping: rejected with its position, counted; the last
    // good version keeps serving (a user not cached yet shows it).
    let broken = format!("{original}{NEW_FIELD}").replace("\nname       =", "\nnmae       =");
    assert_ne!(
        broken,
        format!("{original}{NEW_FIELD}"),
        "the mapping was broken"
    );
    std::fs::write(get.path(), broken).unwrap();
    let (status, body) = reload().await;
    assert_eq!(status, 422, "{body}");
    assert!(body["errors"].to_string().contains("user.nmae"), "{body}");
    let fresh = user(&address, "79990000001").await;
    assert_eq!(fresh["channel"], "reloaded");
    assert_eq!(fresh["name"], "Иванова Анна");
    assert_eq!(otp_message(&address).await, "Code sent to 7999***4567");
    let metrics = metrics_of(&address).await;
    assert_eq!(
        metric_in(&metrics, "authbridge_reloads_total{result=\"failed\"}"),
        1.0
    );
    assert_eq!(
        metric_in(&metrics, "authbridge_reloads_total{result=\"ok\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_changed_users_mapping_file_is_picked_up_by_the_watcher() {
    let crm = users_crm().await;
    let get = copy_of(GET);
    let (mut settings, _key) = users_settings(&crm.uri(), KEY);
    settings.users_api.get.mapping = get.path().to_owned();
    settings.reload.watch_files = true;
    settings.reload.debounce = Duration::from_millis(200);
    let address = start(settings).await;
    assert_eq!(user(&address, "79991234567").await.get("channel"), None);

    let original = std::fs::read_to_string(get.path()).unwrap();
    std::fs::write(get.path(), format!("{original}{NEW_FIELD}")).unwrap();
    eventually(
        "the new users mapping serves",
        Duration::from_secs(10),
        || async { user(&address, "79991234567").await["channel"] == "reloaded" },
    )
    .await;
}

/// A CRM on a raw socket that holds each answer until released: a call
/// can be kept in flight for as long as a test needs, without a clock.
struct GatedCrm {
    url: String,
    arrived: tokio::sync::mpsc::UnboundedReceiver<()>,
    release: tokio::sync::mpsc::UnboundedSender<()>,
}

impl GatedCrm {
    async fn start(answer: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (arrived_tx, arrived) = tokio::sync::mpsc::unbounded_channel();
        let (release, mut released) = tokio::sync::mpsc::unbounded_channel::<()>();
        let body = answer.to_string();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                read_request(&mut socket).await;
                let _ = arrived_tx.send(());
                if released.recv().await.is_none() {
                    return;
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            }
        });
        Self {
            url,
            arrived,
            release,
        }
    }
}

/// Reads one HTTP/1.1 request (headers, then a `content-length` body).
async fn read_request(socket: &mut tokio::net::TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return;
            }
        }
    }
}

#[tokio::test]
async fn a_call_under_way_finishes_with_the_mapping_it_started_with() {
    let mut crm = GatedCrm::start(otp_answer()).await;
    let otp = copy_of(OTP);
    let (mut settings, _key) = users_settings(&crm.url, KEY);
    settings.users_api.otp_request.mapping = otp.path().to_owned();
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://{}", app.local_addr());
    let reloader = app.reloader();
    tokio::spawn(app.run_with_shutdown(std::future::pending()));

    let under_way = tokio::spawn({
        let address = address.clone();
        async move { otp_message(&address).await }
    });
    // The call has reached the CRM: it holds its version of the mapping.
    tokio::time::timeout(Duration::from_secs(10), crm.arrived.recv())
        .await
        .expect("the call reached the CRM");
    let text = std::fs::read_to_string(otp.path()).unwrap();
    std::fs::write(otp.path(), text.replace(OTP_TEMPLATE, "Code sent to {")).unwrap();
    let reloaded = reloader.reload().await.expect("the reload applies");
    assert_eq!(reloaded.users_mappings_changed, ["otp_request"]);

    crm.release.send(()).unwrap();
    assert_eq!(under_way.await.unwrap(), "Код отправлен на 7999***4567");
    // The next call runs with the new version.
    crm.release.send(()).unwrap();
    assert_eq!(otp_message(&address).await, "Code sent to 7999***4567");
}

/// The card schemas `/openapi.json` at `address` publishes.
async fn published_schemas(address: &str) -> Value {
    get_json(&format!("{address}/openapi.json")).await["components"]["schemas"].clone()
}

#[tokio::test]
async fn a_reload_to_another_api_version_is_what_openapi_json_then_describes() {
    let crm = MockServer::start().await;
    let app = FromFile::start(&crm.uri(), "").await;
    assert!(
        published_schemas(&app.address)
            .await
            .get("Contacts")
            .is_some(),
        "version 1.2 cards have contacts"
    );

    let older = config(&app.crm, "").replace("[auth_api]\n", "[auth_api]\napi_version = \"1.0\"\n");
    std::fs::write(&app.config, older).unwrap();
    let reloaded = app.reloader.reload().await.expect("the reload applies");
    assert!(reloaded.needs_restart.is_empty(), "{reloaded:?}");

    let schemas = published_schemas(&app.address).await;
    assert!(schemas.get("Client").is_some(), "{schemas}");
    assert!(
        schemas.get("Contacts").is_none(),
        "a 1.0 card has no contacts, and the document says so after the reload"
    );
}
