//! The users front's security sweep: the platform counts any answer without
//! `error` as success (for OTP confirm and login, a sign-in), so every route
//! × every failure kind must answer a non-2xx status **and**
//! `{"error": {"message": ...}}`. Requests go over raw TCP so that bodies
//! too large, trickled bodies and odd methods reach the server as sent.

use std::time::Duration;

use axum::Router;
use axum::routing::post;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{start, users_settings};

const KEY: &str = "sweep-platform-key";

/// One users call: its name, method, path and a valid body for it.
struct Route {
    name: String,
    method: &'static str,
    path: &'static str,
    body: Value,
}

/// The customer every valid body names.
const USER: &str = "79990000001";

fn routes() -> Vec<Route> {
    // Named as the config names the operation: `/users/otp/confirm` is
    // `otp_confirm`.
    let r = |method, path: &'static str, body| Route {
        name: path.trim_start_matches("/users/").replace('/', "_"),
        method,
        path,
        body,
    };
    vec![
        r("POST", "/users/get", json!({"userIdentifier": USER})),
        r(
            "PATCH",
            "/users/update",
            json!({"userIdentifier": USER, "name": "Sweep"}),
        ),
        r(
            "POST",
            "/users/otp/request",
            json!({"userIdentifier": USER}),
        ),
        r(
            "POST",
            "/users/otp/confirm",
            json!({"userIdentifier": USER, "otp": "918273"}),
        ),
        r(
            "POST",
            "/users/login",
            json!({"login": USER, "password": "sweep-pass"}),
        ),
        r("POST", "/users/orders", json!({"userIdentifier": USER})),
    ]
}

/// A users app in front of `crm_url`, with `adjust` applied.
async fn users_app(
    crm_url: &str,
    adjust: impl FnOnce(&mut authbridge::Settings),
) -> (String, tempfile::NamedTempFile) {
    let (mut s, key) = users_settings(crm_url, KEY);
    adjust(&mut s);
    let address = start(s).await;
    (address.trim_start_matches("http://").to_owned(), key)
}

/// What a raw exchange sends: the request head's extra headers and a body
/// that is either sent at once or trickled.
enum Body {
    Whole(Vec<u8>),
    /// `Content-Length` announced, one byte every 200 ms (at most 50).
    Trickle(usize),
}

/// Sends one HTTP/1.1 request over a fresh connection and reads the answer
/// to the end (`Connection: close`); write errors are ignored because a
/// server may answer before it has read a body it refuses.
async fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: Body,
) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let length = match &body {
        Body::Whole(b) => b.len(),
        Body::Trickle(n) => *n,
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}Content-Length: {length}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        match body {
            Body::Whole(b) => wr.write_all(&b).await?,
            Body::Trickle(n) => {
                for _ in 0..n.min(50) {
                    wr.write_all(b" ").await?;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        Ok::<_, std::io::Error>(wr)
    });
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut raw)).await;
    writer.abort();
    assert!(read.is_ok(), "{method} {path}: no answer within 20 s");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: not an HTTP answer: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

const JSON_KEY: &str =
    "Content-Type: application/json\r\nAuthorization: Bearer sweep-platform-key\r\n";

fn valid(route: &Route) -> Body {
    Body::Whole(route.body.to_string().into_bytes())
}

/// Asserts the answer is a failure in the platform's shape; returns the row.
fn assert_failure(route: &str, kind: &str, (status, body): (u16, String)) -> String {
    assert!(
        !(200..300).contains(&status),
        "{route} × {kind}: a failure answered {status}: {body}"
    );
    let parsed: Value = serde_json::from_str(&body).unwrap_or_else(|_| {
        panic!("{route} × {kind}: {status} with a body that is not JSON: {body:?}")
    });
    assert!(
        parsed["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{route} × {kind}: {status} without error.message: {body}"
    );
    assert_eq!(
        parsed.as_object().map(|o| o.len()),
        Some(1),
        "{route} × {kind}: {body}"
    );
    format!("| {route} | {kind} | {status} | yes |")
}

/// Waits until the CRM has received `n` requests (bounded).
async fn crm_received(crm: &MockServer, n: usize) {
    for _ in 0..200 {
        if crm.received_requests().await.unwrap().len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the CRM never received request {n}");
}

#[tokio::test]
async fn every_users_route_answers_every_failure_with_an_error_body() {
    let mut table = vec![
        "| route | failure | status | error |".to_owned(),
        "|---|---|---|---|".to_owned(),
    ];

    // Failures of the request itself, against a healthy CRM.
    let healthy = MockServer::start().await;
    let (addr, _k1) = users_app(&healthy.uri(), |s| {
        s.server.request_timeout = Duration::from_millis(1_000)
    })
    .await;
    for route in routes() {
        let (n, m, p) = (route.name.as_str(), route.method, route.path);
        let big = vec![b' '; 10 * 1024 * 1024];
        let cases: Vec<(&str, String, &str, &str, Body)> = vec![
            (
                "body too large (10 MB)",
                m.into(),
                p,
                JSON_KEY,
                Body::Whole(big),
            ),
            (
                "bad JSON",
                m.into(),
                p,
                JSON_KEY,
                Body::Whole(b"{\"userIdentifier\":".to_vec()),
            ),
            (
                "not an object",
                m.into(),
                p,
                JSON_KEY,
                Body::Whole(b"[1,2]".to_vec()),
            ),
            (
                "wrong content type",
                m.into(),
                p,
                "Content-Type: text/plain\r\nAuthorization: Bearer sweep-platform-key\r\n",
                valid(&route),
            ),
            (
                "wrong method",
                if m == "POST" { "GET" } else { "POST" }.into(),
                p,
                JSON_KEY,
                valid(&route),
            ),
            (
                "wrong method (DELETE)",
                "DELETE".into(),
                p,
                JSON_KEY,
                valid(&route),
            ),
            (
                "no API key",
                m.into(),
                p,
                "Content-Type: application/json\r\n",
                valid(&route),
            ),
            (
                "wrong API key",
                m.into(),
                p,
                "Content-Type: application/json\r\nAuthorization: Bearer nope\r\n",
                valid(&route),
            ),
            (
                "missing fields",
                m.into(),
                p,
                JSON_KEY,
                Body::Whole(b"{}".to_vec()),
            ),
            (
                "body trickled past the deadline",
                m.into(),
                p,
                JSON_KEY,
                Body::Trickle(40),
            ),
        ];
        for (kind, method, path, headers, body) in cases {
            let answer = exchange(&addr, &method, path, headers, body).await;
            table.push(assert_failure(n, kind, answer));
        }
    }
    for path in ["/users/nope", "/users", "/users/get/extra", "/users/otp"] {
        let answer = exchange(&addr, "POST", path, JSON_KEY, Body::Whole(b"{}".to_vec())).await;
        table.push(assert_failure(path, "unknown path", answer));
    }
    assert_eq!(
        healthy.received_requests().await.unwrap().len(),
        0,
        "no refused call reached the CRM"
    );

    // Failures of the CRM, one app per kind.
    let broken = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(500))
        .mount(&broken)
        .await;
    let garbage = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_raw("<html>oops", "application/json"))
        .mount(&garbage)
        .await;
    let slow = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&slow)
        .await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    for (kind, url) in [
        ("CRM answers 500", broken.uri()),
        ("CRM answers garbage", garbage.uri()),
        ("CRM too slow (timeout)", slow.uri()),
        ("CRM down (refused)", down),
    ] {
        let (addr, _k) = users_app(&url, |s| {
            s.upstream.timeout = Duration::from_millis(300);
            s.upstream.connect_timeout = Duration::from_millis(300);
        })
        .await;
        for route in routes() {
            let answer = exchange(&addr, route.method, route.path, JSON_KEY, valid(&route)).await;
            table.push(assert_failure(&route.name, kind, answer));
        }
    }

    // Shed load: one CRM slot, no queue, held by a slow call.
    let held = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(1_500)))
        .mount(&held)
        .await;
    let (addr, _k2) = users_app(&held.uri(), |s| {
        s.upstream.max_in_flight = 1;
        s.upstream.max_queue = 0;
        s.upstream.timeout = Duration::from_millis(3_000);
        // The holders' answers (empty bodies) fail one after another; the
        // breaker must not be what refuses the row's call, the full slot is.
        s.upstream.breaker.enabled = false;
    })
    .await;
    for (i, mut route) in routes().into_iter().enumerate() {
        let (a, holder) = (addr.clone(), routes().remove(i));
        // Another customer, so a cached call (Get, orders) is not coalesced
        // with the holder.
        let id = if route.name == "login" {
            "login"
        } else {
            "userIdentifier"
        };
        route.body[id] = json!("79990000002");
        let hold = tokio::spawn(async move {
            exchange(&a, holder.method, holder.path, JSON_KEY, valid(&holder)).await
        });
        crm_received(&held, i + 1).await;
        let answer = exchange(&addr, route.method, route.path, JSON_KEY, valid(&route)).await;
        table.push(assert_failure(&route.name, "shed (CRM slots full)", answer));
        let _ = hold.await;
    }

    println!("{}", table.join("\n"));
}

async fn boom() -> &'static str {
    panic!("a panic text with the identifier 79990000001");
}

#[tokio::test]
async fn the_guard_shapes_panics_and_answers_no_handler_chose() {
    let messages = std::sync::Arc::new(authbridge::config::UsersMessages::default());
    let router: Router = Router::new()
        .route("/users/boom", post(boom))
        .route(
            "/users/plain",
            post(|| async { (axum::http::StatusCode::CONFLICT, "plain text, no error key") }),
        )
        .route(
            "/users/ok",
            post(|| async { axum::Json(json!({"user": {"id": "1"}})) }),
        );
    let metrics = authbridge::metrics::Metrics::new();
    let app = authbridge::front::users_api::errors::guard(router, messages, metrics.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (status, body) = exchange(&addr, "POST", "/users/boom", "", Body::Whole(Vec::new())).await;
    assert_eq!(status, 500);
    assert!(
        !body.contains("79990000001"),
        "the panic text leaked: {body}"
    );
    assert_failure("boom", "panic", (status, body));
    assert!(metrics.render().contains("authbridge_users_panics_total 1"));
    let (status, body) = exchange(&addr, "POST", "/users/plain", "", Body::Whole(Vec::new())).await;
    assert_eq!(status, 409);
    assert_failure("plain", "unshaped 409", (status, body));
    let (status, body) = exchange(&addr, "POST", "/users/ok", "", Body::Whole(Vec::new())).await;
    assert_eq!((status, body.as_str()), (200, r#"{"user":{"id":"1"}}"#));
}
