//! Test harness: the real server on a loopback port 0, a wiremock CRM, and a
//! process-wide TRACE log capture (set `TEST_LOG=1` to also print logs).

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};
use std::time::Duration;

use authbridge::config::LogFormat;
use authbridge::{Application, Settings};
use serde_json::Value;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Everything every test logged, at TRACE, as JSON lines.
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INIT: Once = Once::new();

#[derive(Clone, Copy)]
struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            std::io::stdout().write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

/// Installs the capturing subscriber once per test binary (with the
/// production redaction filter, so the capture sees what production logs).
pub fn init_logs() {
    INIT.call_once(|| {
        tracing_subscriber::registry()
            .with(authbridge::telemetry::layer(
                LogFormat::Json,
                EnvFilter::new("trace"),
                Capture,
                false,
            ))
            .try_init()
            .expect("the test subscriber is the only one");
    });
}

/// All log output so far.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned()
}

/// A path inside the crate.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A fixture file as JSON.
pub fn fixture(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo_path(&format!("tests/fixtures/{rel}"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The CRM path the default test settings call for `encoded_token`.
pub fn crm_path(encoded_token: &str) -> String {
    format!("/api/v1/sessions/{encoded_token}/client")
}

/// A running authbridge and its mock CRM.
pub struct TestApp {
    pub address: String,
    pub crm: MockServer,
    pub http: reqwest::Client,
}

impl TestApp {
    /// GET the Auth API with `raw_token` pasted into the path as given (the
    /// caller percent-encodes what must be encoded).
    pub async fn lookup(&self, raw_token: &str) -> reqwest::Response {
        self.get(&format!("/rest/chat/client/id/{raw_token}")).await
    }

    /// As [`lookup`](Self::lookup), for futures that must own their input.
    pub async fn lookup_owned(&self, raw_token: String) -> reqwest::Response {
        self.lookup(&raw_token).await
    }

    /// GET any path.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("authbridge answers")
    }

    /// This app's `/metrics` text: its own registry, untouched by the other
    /// apps the parallel tests run.
    pub async fn metrics(&self) -> String {
        metrics_of(&self.address).await
    }

    /// The card for `raw_token`: asserts a 200 and parses the JSON.
    pub async fn card(&self, raw_token: &str) -> Value {
        json_ok(self.lookup(raw_token).await).await
    }

    /// The `x-authbridge-cache` state of a lookup of `raw_token`, with its
    /// status.
    pub async fn cache_state(&self, raw_token: &str) -> (u16, String) {
        let response = self.lookup(raw_token).await;
        let state = response.headers()["x-authbridge-cache"]
            .to_str()
            .unwrap()
            .to_owned();
        (response.status().as_u16(), state)
    }

    /// The CRM answers `response` to a GET of `token`'s path, and must be called
    /// exactly `times` times (checked when the app is dropped).
    pub async fn crm_answers(&self, token: &str, response: ResponseTemplate, times: u64) {
        Mock::given(method("GET"))
            .and(path(crm_path(token)))
            .respond_with(response)
            .expect(times)
            .mount(&self.crm)
            .await;
    }

    /// The CRM answers `response` to a GET of `token`'s path, however often
    /// asked.
    pub async fn crm_always(&self, token: &str, response: ResponseTemplate) {
        Mock::given(method("GET"))
            .and(path(crm_path(token)))
            .respond_with(response)
            .mount(&self.crm)
            .await;
    }

    /// The CRM answers `first` to the first GET for `token`, then `then`
    /// to every later one (a card, then a fault).
    pub async fn crm_answers_first(
        &self,
        token: &str,
        first: ResponseTemplate,
        then: ResponseTemplate,
    ) {
        Mock::given(method("GET"))
            .and(path(crm_path(token)))
            .respond_with(first)
            .up_to_n_times(1)
            .expect(1)
            .mount(&self.crm)
            .await;
        self.crm_always(token, then).await;
    }

    /// The CRM answers `response` to every GET, whatever its path.
    pub async fn crm_answers_all(&self, response: ResponseTemplate) {
        Mock::given(method("GET"))
            .respond_with(response)
            .mount(&self.crm)
            .await;
    }

    /// Waits (bounded, generously) until the CRM has received `n` requests.
    pub async fn wait_for_crm_calls(&self, n: usize) {
        eventually(
            &format!("the CRM received {n} requests"),
            Duration::from_secs(10),
            || async { self.crm_calls().await >= n },
        )
        .await;
    }

    /// How many requests the CRM received.
    pub async fn crm_calls(&self) -> usize {
        // Recording is on for every mock here; off would make every count 0
        // and every "no CRM call" assert pass vacuously.
        self.crm
            .received_requests()
            .await
            .expect("the mock CRM records requests")
            .len()
    }
}

/// The README's text from the line `heading` to the next `end` (the start
/// of what follows the section, such as `"\n## "`).
pub fn readme_section(heading: &str, end: &str) -> String {
    let readme = std::fs::read_to_string(repo_path("README.md")).unwrap();
    readme
        .split(&format!("\n{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("README has a {heading:?} section"))
        .split(end)
        .next()
        .unwrap()
        .to_owned()
}

/// The `/metrics` text of the app at `address` (for tests that start apps
/// without a [`TestApp`]).
pub async fn metrics_of(address: &str) -> String {
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("{address}/metrics"))
        .send()
        .await
        .expect("authbridge answers");
    assert_eq!(response.status(), 200, "GET /metrics");
    response.text().await.expect("a text body")
}

/// The value of `sample` (name with labels, as printed) in a Prometheus text;
/// 0 when absent.
pub fn metric_in(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The generic-bank mapping text `original` with the client's `type` fixed
/// to "1": a valid change a reload can be seen to apply.
pub fn type_one(original: &str) -> String {
    let from = r#"{ path = "$.client.typeCode", default = "0" }"#;
    assert!(original.contains(from), "the mapping maps client.typeCode");
    original.replace(from, r#"{ const = "1" }"#)
}

/// Settings for a test: loopback port 0, the generic bank mapping, `crm_url`.
pub fn test_settings(crm_url: &str) -> Settings {
    let mut s = Settings::default();
    s.server.listen = "127.0.0.1:0".parse().unwrap();
    s.upstream.base_url = Some(crm_url.parse().expect("the CRM URL parses"));
    s.upstream.path = "/api/v1/sessions/{token}/client".into();
    s.upstream.timeout = Duration::from_millis(1_000);
    s.upstream.connect_timeout = Duration::from_millis(500);
    s.auth_api.mapping = repo_path("mappings/generic-bank.toml");
    // Tests that reload do so explicitly; no background file watchers.
    s.reload.watch_files = false;
    s
}

/// Starts authbridge in front of a fresh mock CRM.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts authbridge with settings adjusted by `adjust`.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let crm = MockServer::start().await;
    let mut settings = test_settings(&crm.uri());
    adjust(&mut settings);
    let address = start(settings).await;
    TestApp {
        address,
        crm,
        http: http(),
    }
}

/// Builds and serves an app; returns its base URL.
pub async fn start(settings: Settings) -> String {
    start_with_admin(settings).await.0
}

/// Builds and serves an app; returns its base URL and the admin API's, if on.
pub async fn start_with_admin(settings: Settings) -> (String, Option<String>) {
    init_logs();
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://{}", app.local_addr());
    let admin = app.admin_addr().map(|a| format!("http://{a}"));
    tokio::spawn(app.run_with_shutdown(std::future::pending()));
    (address, admin)
}

/// Asserts an Auth API error answer: status, errorCode, and that the body is
/// exactly the two documented keys.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("JSON error body");
    assert_eq!(body["errorCode"], code, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "{body}");
    body["errorText"].as_str().expect("errorText").to_owned()
}

/// Settings with the users front on, in front of `crm_url`, the shipped
/// users mappings, and the platform key `key` in a temp file (kept alive by
/// the returned handle).
pub fn users_settings(crm_url: &str, key: &str) -> (Settings, tempfile::NamedTempFile) {
    let key = file(key);
    let mut s = test_settings(crm_url);
    s.users_api.enabled = true;
    s.users_api.api_key_file = Some(key.path().to_owned());
    for op in [
        &mut s.users_api.get,
        &mut s.users_api.update,
        &mut s.users_api.otp_request,
        &mut s.users_api.otp_confirm,
        &mut s.users_api.login,
        &mut s.users_api.orders,
    ] {
        op.mapping = repo_path(&op.mapping.display().to_string());
    }
    (s, key)
}

/// A temp file holding `content` (a `.toml` name, so a mapping or config
/// can be one too); removed when dropped.
pub fn file(content: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(&mut f, content.as_bytes()).unwrap();
    f
}

/// A CRM answer: 200 with the fixture `rel` as its JSON body.
pub fn crm_fixture(rel: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(fixture(rel))
}

/// The mock CRM's answer for the generic bank's Alice (a found card).
pub fn alice() -> ResponseTemplate {
    crm_fixture("generic-bank/alice.input.json")
}

/// The mock CRM's answer for the generic bank's Bob (disabled, no companies).
pub fn bob() -> ResponseTemplate {
    crm_fixture("generic-bank/bob-disabled.input.json")
}

/// A fresh mock CRM that answers every GET with `response`.
pub async fn crm_answering(response: ResponseTemplate) -> MockServer {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(response)
        .mount(&crm)
        .await;
    crm
}

/// Why `settings` cannot start an app (panics if it starts).
pub async fn refusal(settings: Settings) -> String {
    Application::build(settings)
        .await
        .err()
        .expect("refuses to start")
        .to_string()
}

/// A client that never goes through a proxy (every test talks to loopback).
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// GET `path` of the app at `address`, for apps started with [`start`]
/// rather than [`spawn_app`].
pub async fn get_at(address: &str, path: &str) -> reqwest::Response {
    http()
        .get(format!("{address}{path}"))
        .send()
        .await
        .expect("authbridge answers")
}

/// GET the Auth API of the app at `address` for `raw_token`.
pub async fn lookup_at(address: &str, raw_token: &str) -> reqwest::Response {
    get_at(address, &format!("/rest/chat/client/id/{raw_token}")).await
}

/// The card the app at `address` serves for `raw_token`: asserts a 200 and
/// parses the JSON.
pub async fn card_at(address: &str, raw_token: &str) -> Value {
    json_ok(lookup_at(address, raw_token).await).await
}

/// Sends `request` and returns the status of its answer.
pub async fn status_of(request: reqwest::RequestBuilder) -> u16 {
    request
        .send()
        .await
        .expect("authbridge answers")
        .status()
        .as_u16()
}

/// GETs `url` and returns its JSON body, asserting a 200.
pub async fn get_json(url: &str) -> Value {
    json_ok(http().get(url).send().await.expect("authbridge answers")).await
}

/// Asserts `response` is a 200 and returns its JSON body.
pub async fn json_ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let url = response.url().clone();
    let text = response.text().await.expect("a body");
    assert_eq!(status, 200, "{url}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

/// Polls `condition` every 20 ms until it holds; panics naming `what` after
/// `bound`. For waiting on an event (a request arrived, a watcher fired)
/// instead of sleeping a guessed time: a slow machine only waits longer.
pub async fn eventually<F, Fut>(what: &str, bound: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + bound;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {bound:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every `*.input.json` under `dir` (sorted) with its `*.expected.json`.
/// Asserts the list is non-empty and that every input has its expected
/// file, so a golden test over it cannot pass by checking nothing.
pub fn fixture_pairs(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("no fixtures in {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".input.json"))
        .collect();
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "{} has no *.input.json fixtures",
        dir.display()
    );
    inputs
        .into_iter()
        .map(|input| {
            let expected = PathBuf::from(
                input
                    .to_string_lossy()
                    .replace(".input.json", ".expected.json"),
            );
            assert!(
                expected.is_file(),
                "{} has no {}",
                input.display(),
                expected.display()
            );
            (input, expected)
        })
        .collect()
}

/// Fixture (input, expected) paths.
pub type Pairs = Vec<(PathBuf, PathBuf)>;

/// Every mapping in `folder` (sorted, non-empty) with the fixture pairs of
/// `{fixtures}NAME/` (see [`fixture_pairs`]).
pub fn mappings_with_fixture_pairs(folder: &str, fixtures: &str) -> Vec<(PathBuf, Pairs)> {
    let mappings = authbridge::tools::mapping_files(&repo_path(folder));
    assert!(!mappings.is_empty(), "no mappings in {folder}");
    mappings
        .into_iter()
        .map(|mapping| {
            let name = mapping.file_stem().unwrap().to_string_lossy().into_owned();
            let pairs = fixture_pairs(&repo_path(&format!("{fixtures}{name}")));
            (mapping, pairs)
        })
        .collect()
}

/// Asserts that every fixture pair of every mapping maps to its expected
/// card: `mapper(mapping)` prepares a mapping once and gives what turns an
/// input file into the card. Returns how many pairs were checked, so the
/// caller can require a floor (an empty fixture folder must not pass).
pub fn assert_expected_cards<F>(
    mappings: Vec<(PathBuf, Pairs)>,
    mut mapper: impl FnMut(PathBuf) -> F,
) -> usize
where
    F: FnMut(&Path) -> Value,
{
    let total: usize = mappings.iter().map(|(_, pairs)| pairs.len()).sum();
    let mut checked = 0;
    for (mapping, pairs) in mappings {
        let mut card_of = mapper(mapping);
        for (input, expected) in pairs {
            assert_eq!(card_of(&input), read_json(&expected), "{}", input.display());
            checked += 1;
        }
    }
    assert_eq!(checked, total, "every fixture pair was checked");
    checked
}

/// A JSON file, parsed (the path in the panic message).
pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A two-step pipeline mapping: a session (`/sessions/{token}`), then the
/// client it names (`/clients/{clientId}`).
pub const SESSION_THEN_CLIENT: &str = r#"
[[step]]
name = "session"
path = "/sessions/{token}"

[[step]]
name = "client"
path = "/clients/{$.steps.session.clientId}"

[client]
id = "$.steps.client.id"
name = { template = "{$.steps.client.lastName} {$.steps.client.firstName}" }
surname = "$.steps.client.lastName"
firstName = "$.steps.client.firstName"
patronymic = { path = "$.steps.client.middleName", default = "" }
type = { const = "0" }
enabled = "$.steps.client.active"
"#;
