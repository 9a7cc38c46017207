//! OpenTelemetry traces, end to end: the real binary (the tracer provider is
//! process-global) exporting OTLP/HTTP protobuf to a receiver in this test,
//! in front of a wiremock CRM. The caller's traceparent is continued, each
//! CRM step is a client span whose id the CRM gets as its parent, spans
//! carry what the request did, and no exported byte holds the token or a
//! personal value. Sampling 0 and the default (off) export nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, Span};
use prost::Message as _;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{SESSION_THEN_CLIENT, repo_path};
use crate::process::Served;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const ROUTE: &str = "/rest/chat/client/id/{*token}";
/// A personal value in the CRM's answer, searched for in the exported bytes.
const SURNAME: &str = "Otelsurname";
const KIND_SERVER: i32 = 2;
const KIND_CLIENT: i32 = 3;

/// An OTLP/HTTP receiver on loopback, on a thread and runtime of its own
/// (the binary's last export, at its shutdown, must not wait for the test's
/// runtime). Keeps every request body as received.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

async fn export(
    State(bodies): State<Arc<Mutex<Vec<Vec<u8>>>>>,
    body: Bytes,
) -> (StatusCode, HeaderMap) {
    bodies.lock().unwrap().push(body.to_vec());
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        "application/x-protobuf".parse().unwrap(),
    );
    // An empty ExportTraceServiceResponse is zero bytes.
    (StatusCode::OK, headers)
}

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/v1/traces", post(export))
            .with_state(bodies.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let _ = axum::serve(listener, app).await;
            });
        });
        Self { url, bodies }
    }

    /// Every byte received so far.
    fn raw(&self) -> Vec<u8> {
        self.bodies.lock().unwrap().concat()
    }

    /// Every resource's spans received so far, each body decoded.
    fn resource_spans(&self) -> Vec<ResourceSpans> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| {
                ExportTraceServiceRequest::decode(b.as_slice())
                    .expect("an OTLP protobuf body")
                    .resource_spans
            })
            .collect()
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Span> {
        self.resource_spans()
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans)
            .collect()
    }

    /// `service.name` of every resource received.
    fn service_names(&self) -> Vec<String> {
        self.resource_spans()
            .into_iter()
            .filter_map(|r| r.resource)
            .filter_map(|r| {
                r.attributes
                    .into_iter()
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| string(kv.value?.value?))
            })
            .collect()
    }
}

fn string(v: Any) -> Option<String> {
    match v {
        Any::StringValue(s) => Some(s),
        _ => None,
    }
}

/// An attribute of `span`, as JSON (strings, ints, bools).
fn attr(span: &Span, key: &str) -> serde_json::Value {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.clone()?.value);
    match value {
        Some(Any::StringValue(s)) => json!(s),
        Some(Any::IntValue(i)) => json!(i),
        Some(Any::BoolValue(b)) => json!(b),
        None => serde_json::Value::Null,
        Some(other) => json!(format!("{other:?}")),
    }
}

/// The config of a served authbridge in front of `crm`, with `otel` as its
/// `[telemetry.otel]` body (none: the section is left out).
fn config(crm: &str, otel: Option<&str>) -> String {
    let users = [
        "get",
        "update",
        "otp_request",
        "otp_confirm",
        "login",
        "orders",
    ]
    .iter()
    .map(|op| {
        let file = repo_path(&format!(
            "mappings/users/generic-bank-{}.toml",
            op.replace('_', "-")
        ));
        format!("[users_api.{op}]\nmapping = \"{}\"\n", file.display())
    })
    .collect::<String>();
    let otel = otel.map_or(String::new(), |o| format!("[telemetry.otel]\n{o}\n"));
    format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\nworkers = 1\nshutdown_delay_ms = 0\n\
         [upstream]\nbase_url = \"{crm}\"\n[auth_api]\nmapping = \"mapping.toml\"\n\
         [users_api]\nenabled = true\napi_key_file = \"{{dir}}/key\"\n{users}{otel}"
    )
}

/// Starts the binary with `config`, the two-step mapping and the users key.
fn serve(config: &str, env: &[(&str, &str)]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mapping.toml"), SESSION_THEN_CLIENT).unwrap();
    std::fs::write(dir.path().join("key"), "otel-platform-key").unwrap();
    Served::start_in_with_env(dir, config, env)
}

/// Stops `served` gracefully (its last spans are flushed) and waits for it.
fn stop(mut served: Served) {
    served.signal("TERM");
    let status = served.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "a clean exit: {status:?}\n{}",
        served.logs().join("\n")
    );
}

/// The CRM of the two-step mapping for `token`, and the users CRM for `user`.
async fn crm(token: &str, user: &str) -> MockServer {
    let crm = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/sessions/{token}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"clientId": "c-42"})))
        .mount(&crm)
        .await;
    Mock::given(method("GET"))
        .and(path("/clients/c-42"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c-42", "lastName": SURNAME, "firstName": "Anna", "active": true
        })))
        .mount(&crm)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/customers/{user}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(crate::helpers::fixture("users/customer-anna.json")),
        )
        .mount(&crm)
        .await;
    crm
}

/// The `traceparent` each CRM request carried, by path.
async fn traceparents(crm: &MockServer) -> HashMap<String, Option<String>> {
    crm.received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let tp = r
                .headers
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.url.path().to_owned(), tp)
        })
        .collect()
}

fn unique(what: &str) -> String {
    format!("{what}-{}", uuid::Uuid::new_v4().simple())
}

/// What every test here starts from: `(receiver, token, crm)`, a span
/// receiver, a fresh token and a mock CRM that knows it as `user`.
async fn scene(what: &str, user: &str) -> (Receiver, String, MockServer) {
    let token = unique(what);
    let crm = crm(&token, user).await;
    (Receiver::start(), token, crm)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_trace_is_continued_to_every_crm_step_without_tokens_or_personal_data() {
    let user = format!("7999{}", &uuid::Uuid::new_v4().as_u128().to_string()[..7]);
    let (receiver, token, crm) = scene("otel-token", &user).await;
    let otel = format!("enabled = true\nendpoint = \"{}\"", receiver.url);
    let served = serve(
        &config(&crm.uri(), Some(&otel)),
        &[("OTEL_SERVICE_NAME", "authbridge-under-test")],
    );
    let http = crate::helpers::http();

    let card = http
        .get(format!("{}/rest/chat/client/id/{token}", served.base))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .header("tracestate", "vendor=abc")
        .send()
        .await
        .unwrap();
    assert_eq!(card.status(), 200);
    let users = http
        .post(format!("{}/users/get", served.base))
        .json(&json!({"userIdentifier": user, "key": "otel-platform-key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(users.status(), 200);
    stop(served);

    let spans = receiver.spans();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let by_id: HashMap<String, &Span> = spans.iter().map(|s| (hex(&s.span_id), s)).collect();
    // The server span continues the caller's trace, under the caller's span.
    let server = spans
        .iter()
        .find(|s| s.kind == KIND_SERVER && attr(s, "http.route") == ROUTE)
        .unwrap_or_else(|| panic!("no server span for the lookup: {spans:#?}"));
    assert_eq!(hex(&server.trace_id), TRACE_ID);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(server.trace_state, "vendor=abc");
    assert_eq!(server.name, format!("GET {ROUTE}"));
    assert_eq!(attr(server, "http.response.status_code"), 200);
    assert_eq!(attr(server, "authbridge.outcome"), "found");
    assert_eq!(attr(server, "authbridge.cache"), "miss");
    assert_eq!(attr(server, "authbridge.crm_calls"), 2);
    assert_eq!(attr(server, "authbridge.crm_status"), 200);

    // Each step is a client span below the server span (through the
    // detached fetch's span), and the CRM got its id as the parent.
    let descends_from_server = |span: &Span| {
        let mut parent = hex(&span.parent_span_id);
        for _ in 0..8 {
            if parent == hex(&server.span_id) {
                return true;
            }
            match by_id.get(&parent) {
                Some(p) => parent = hex(&p.parent_span_id),
                None => return false,
            }
        }
        false
    };
    let carried = traceparents(&crm).await;
    for (step, crm_path) in [
        ("session", format!("/sessions/{token}")),
        ("client", "/clients/c-42".into()),
    ] {
        let span = spans
            .iter()
            .find(|s| s.kind == KIND_CLIENT && attr(s, "authbridge.crm.step") == step)
            .unwrap_or_else(|| panic!("no span for step {step}: {spans:#?}"));
        assert_eq!(hex(&span.trace_id), TRACE_ID, "{step}");
        assert!(
            descends_from_server(span),
            "{step} is below the server span"
        );
        assert_eq!(attr(span, "http.response.status_code"), 200, "{step}");
        assert_eq!(attr(span, "http.request.method"), "GET", "{step}");
        let tp = carried[&crm_path]
            .clone()
            .expect("the CRM got a traceparent");
        assert_eq!(
            tp,
            format!("00-{TRACE_ID}-{}-01", hex(&span.span_id)),
            "{step}"
        );
    }

    // The users front has its server span too, in a trace of its own.
    let users = spans
        .iter()
        .find(|s| s.kind == KIND_SERVER && attr(s, "http.route") == "/users/get")
        .unwrap_or_else(|| panic!("no server span for the users call: {spans:#?}"));
    assert_eq!(attr(users, "authbridge.outcome"), "found");
    assert_eq!(attr(users, "http.request.method"), "POST");
    assert!(users.parent_span_id.is_empty(), "a root span");
    assert!(
        receiver
            .service_names()
            .iter()
            .all(|n| n == "authbridge-under-test")
    );

    // Nothing the callers or the CRM sent leaks into any exported byte.
    let raw = receiver.raw();
    let contains = |needle: &str| raw.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(contains(ROUTE), "the search can find what is there");
    for secret in [
        token.as_str(),
        &token[token.len() - 12..],
        &user,
        SURNAME,
        "otel-platform-key",
    ] {
        assert!(!contains(secret), "{secret} was exported");
    }
    // The users fixture's personal values neither.
    let customer = crate::helpers::fixture("users/customer-anna.json");
    let name = customer["customer"]["fullName"].as_str().unwrap();
    assert!(!contains(name), "the customer's name was exported");
}

/// Looks `token` up at `served` as a caller in trace `TRACE_ID`, then stops
/// the server (which sends its spans on the way out).
async fn traced_lookup(served: Served, token: &str) {
    let response = crate::helpers::http()
        .get(format!("{}/rest/chat/client/id/{token}", served.base))
        .header("traceparent", format!("00-{TRACE_ID}-{CALLER_SPAN}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    stop(served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_ratio_of_zero_exports_nothing_but_still_propagates() {
    let (receiver, token, crm) = scene("otel-zero", "70000000000").await;
    let otel = format!(
        "enabled = true\nendpoint = \"{}\"\nsample_ratio = 0.0",
        receiver.url
    );
    let served = serve(&config(&crm.uri(), Some(&otel)), &[]);
    let status = crate::helpers::lookup_at(&served.base, &token)
        .await
        .status();
    assert_eq!(status, 200);
    stop(served);

    assert!(receiver.spans().is_empty(), "{:#?}", receiver.spans());
    // Traces were on: the CRM got a trace context, marked not sampled.
    let tp = traceparents(&crm).await[&format!("/sessions/{token}")].clone();
    assert!(
        tp.is_some_and(|tp| tp.ends_with("-00")),
        "an unsampled traceparent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_off_by_default_whatever_otel_variables_say() {
    let (receiver, token, crm) = scene("otel-off", "70000000000").await;
    let endpoint = receiver.url.trim_end_matches("/v1/traces").to_owned();
    let served = serve(
        &config(&crm.uri(), None),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ],
    );
    traced_lookup(served, &token).await;

    assert!(receiver.raw().is_empty(), "nothing was exported");
    let carried = traceparents(&crm).await;
    assert_eq!(carried.len(), 2, "both steps ran: {carried:?}");
    assert!(
        carried.values().all(Option::is_none),
        "no trace context: {carried:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth2_token_request_is_a_client_span_the_token_endpoint_continues() {
    let (receiver, token, crm) = scene("otel-oauth", "70000000000").await;
    let access_token = unique("access-token");
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "access_token": access_token, "token_type": "bearer", "expires_in": 300
        })))
        .expect(1)
        .mount(&crm)
        .await;
    let otel = format!(
        "enabled = true\nendpoint = \"{}\"\n[upstream.auth]\nkind = \"oauth2\"\ntoken_url = \"{}/oauth/token\"\nclient_id = \"authbridge\"\nsecret_file = \"{{dir}}/client-secret\"",
        receiver.url,
        crm.uri()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mapping.toml"), SESSION_THEN_CLIENT).unwrap();
    std::fs::write(dir.path().join("key"), "otel-platform-key").unwrap();
    std::fs::write(dir.path().join("client-secret"), "client-secret-otel").unwrap();
    let served = Served::start_in_with_env(dir, &config(&crm.uri(), Some(&otel)), &[]);
    traced_lookup(served, &token).await;

    let spans = receiver.spans();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let span = spans
        .iter()
        .find(|s| s.kind == KIND_CLIENT && s.name == "crm oauth2 token")
        .unwrap_or_else(|| panic!("no token request span: {spans:#?}"));
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(attr(span, "http.response.status_code"), 200);
    let tp = traceparents(&crm).await["/oauth/token"]
        .clone()
        .expect("the token endpoint got a traceparent");
    assert_eq!(tp, format!("00-{TRACE_ID}-{}-01", hex(&span.span_id)));
    let raw = receiver.raw();
    for secret in [access_token.as_str(), "client-secret-otel", token.as_str()] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} was exported"
        );
    }
}

/// Runs the binary with `args` and `env` from the repository and returns
/// its exit code and stderr; a process still running after 20 s is killed
/// and fails the test (a refused start must not serve).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = crate::process::command()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn grpc_is_refused_at_start_naming_the_key_or_the_variable() {
    let port = crate::process::free_port();
    let base = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\n[upstream]\nbase_url = \"http://127.0.0.1:9\"\n[telemetry.otel]\nenabled = true\n"
    );
    let grpc = crate::helpers::file(&format!("{base}protocol = \"grpc\"\n"));
    let plain = crate::helpers::file(&base);
    let grpc_path = grpc.path().to_str().unwrap();
    let plain_path = plain.path().to_str().unwrap();

    let (code, stderr) = run(&["serve", "--config", grpc_path], &[]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("telemetry.otel.protocol: grpc is not built in"),
        "{stderr}"
    );
    let env = [("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
    for command in ["serve", "check"] {
        let (code, stderr) = run(&[command, "--config", plain_path], &env);
        assert_eq!(code, Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL: \"grpc\" is not built in"),
            "{command}: {stderr}"
        );
    }
    // The same config without the variable passes the check.
    assert_eq!(run(&["check", "--config", plain_path], &[]).0, Some(0));
}
