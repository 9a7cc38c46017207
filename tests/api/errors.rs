//! Every row of the error table, and CRMs that misbehave: slow, hanging,
//! resetting, redirecting, answering HTML, truncated or huge bodies.

use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use wiremock::ResponseTemplate;

use crate::helpers::{
    alice, assert_error, fixture, lookup_at, spawn_app, spawn_app_with, start, test_settings,
};

/// The Auth API's answer for token "t" from an app in front of `crm_url`,
/// with `adjust` applied to its settings.
async fn lookup_in_front_of(
    crm_url: &str,
    adjust: impl FnOnce(&mut authbridge::Settings),
) -> reqwest::Response {
    let mut settings = test_settings(crm_url);
    adjust(&mut settings);
    lookup_at(&start(settings).await, "t").await
}

#[tokio::test]
async fn empty_token_is_400() {
    let app = spawn_app().await;
    assert_error(app.lookup("").await, 400, "1002").await;
    assert_error(app.get("/rest/chat/client/id").await, 400, "1002").await;
    assert_eq!(app.crm_calls().await, 0);
}

#[tokio::test]
async fn over_long_token_is_400_and_never_reaches_the_crm() {
    let app = spawn_app().await;
    let ten_kb = "x".repeat(10 * 1024);
    let text = assert_error(app.lookup(&ten_kb).await, 400, "1002").await;
    assert!(text.contains("longer than 512 bytes"), "{text}");
    assert!(!text.contains("xxxx"), "the token is not echoed");
    assert_eq!(app.crm_calls().await, 0);
}

#[tokio::test]
async fn max_token_length_is_configurable() {
    let app = spawn_app_with(|s| s.server.max_token_bytes = 4).await;
    app.crm_answers("abcd", ResponseTemplate::new(404), 1).await;
    assert_error(app.lookup("abcd").await, 404, "1001").await;
    assert_error(app.lookup("abcde").await, 400, "1002").await;
}

#[tokio::test]
async fn control_characters_and_bad_encoding_are_400() {
    let app = spawn_app().await;
    for raw in ["a%0Ab", "%00", "tab%09", "%7F", "%FF%FE", "%E2%82"] {
        assert_error(app.lookup(raw).await, 400, "1002").await;
    }
    assert_eq!(app.crm_calls().await, 0);
}

/// CRM timeouts short enough for a test to wait out: `ms` for an answer,
/// 100 ms to connect.
fn crm_timeout(ms: u64) -> impl FnOnce(&mut authbridge::Settings) {
    move |s| {
        s.upstream.timeout = Duration::from_millis(ms);
        s.upstream.connect_timeout = Duration::from_millis(100);
    }
}

/// A lookup of a CRM that takes 2 s, with `adjust`'s timeouts.
async fn lookup_slow_crm(adjust: impl FnOnce(&mut authbridge::Settings)) -> reqwest::Response {
    let app = spawn_app_with(adjust).await;
    let slow = ResponseTemplate::new(200).set_delay(Duration::from_secs(2));
    app.crm_always("slow", slow).await;
    app.lookup("slow").await
}

#[tokio::test]
async fn crm_slower_than_its_timeout_is_504() {
    let response = lookup_slow_crm(crm_timeout(200)).await;
    let text = assert_error(response, 504, "1004").await;
    assert_eq!(text, "CRM did not answer in time");
}

#[tokio::test]
async fn lookup_deadline_is_504_even_if_the_crm_timeout_is_longer() {
    let response = lookup_slow_crm(|s| {
        s.upstream.timeout = Duration::from_millis(5_000);
        s.server.request_timeout = Duration::from_millis(200);
    })
    .await;
    assert_error(response, 504, "1004").await;
}

#[tokio::test]
async fn unreachable_crm_is_502() {
    // A port that was just free: nothing listens there.
    let closed = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let response = lookup_in_front_of(&format!("http://{closed}"), |_| {}).await;
    let text = assert_error(response, 502, "1005").await;
    assert_eq!(text, "CRM is unreachable");
}

#[tokio::test]
async fn crm_5xx_and_unexpected_statuses_are_502() {
    let app = spawn_app().await;
    for (token, status) in [("e500", 500), ("e503", 503), ("e401", 401)] {
        app.crm_always(token, ResponseTemplate::new(status)).await;
        let text = assert_error(app.lookup(token).await, 502, "1006").await;
        assert_eq!(text, format!("CRM answered with HTTP status {status}"));
    }
}

#[tokio::test]
async fn crm_redirect_is_not_followed() {
    let app = spawn_app().await;
    let moved =
        ResponseTemplate::new(302).insert_header("location", "http://127.0.0.1:1/elsewhere");
    app.crm_answers("moved", moved, 1).await;
    let text = assert_error(app.lookup("moved").await, 502, "1006").await;
    assert!(text.contains("redirect"), "{text}");
}

#[tokio::test]
async fn html_truncated_and_oversized_bodies_are_502() {
    let app = spawn_app().await;
    let bodies = [
        (
            "html",
            "<html><body>Service Unavailable</body></html>".to_owned(),
        ),
        (
            "truncated",
            r#"{"client": {"id": 1, "lastName": "Iva"#.to_owned(),
        ),
        (
            "huge",
            format!(r#"{{"pad": "{}"}}"#, "x".repeat(50 * 1024 * 1024)),
        ),
    ];
    for (token, body) in bodies {
        let answer = ResponseTemplate::new(200).set_body_raw(body, "application/json");
        app.crm_always(token, answer).await;
        assert_error(app.lookup(token).await, 502, "1007").await;
    }
    // The server keeps serving other tokens.
    app.crm_answers("fine", alice(), 1).await;
    assert_eq!(app.lookup("fine").await.status(), 200);
}

/// A raw TCP "CRM" that does something no HTTP mock does.
async fn raw_crm(behaviour: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                match behaviour {
                    "reset" => {
                        // SO_LINGER 0: close sends RST instead of FIN.
                        let std = socket.into_std().unwrap();
                        socket2::SockRef::from(&std)
                            .set_linger(Some(Duration::ZERO))
                            .unwrap();
                        drop(std);
                    }
                    "hang" => tokio::time::sleep(Duration::from_secs(30)).await,
                    "cut-body" => {
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"client\":")
                            .await;
                        drop(socket);
                    }
                    "chunked-huge" => {
                        // No content-length: the cap must hold while streaming.
                        let _ = socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                            .await;
                        let chunk = format!("10000\r\n{}\r\n", "x".repeat(0x10000));
                        for _ in 0..64 {
                            if socket.write_all(chunk.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        let _ = socket.write_all(b"0\r\n\r\n").await;
                    }
                    _ => unreachable!(),
                }
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn crm_resetting_the_connection_is_502() {
    let response = lookup_in_front_of(&raw_crm("reset").await, |_| {}).await;
    assert_error(response, 502, "1005").await;
}

#[tokio::test]
async fn crm_cutting_the_body_short_is_502() {
    let response = lookup_in_front_of(&raw_crm("cut-body").await, |_| {}).await;
    assert_error(response, 502, "1007").await;
}

#[tokio::test]
async fn crm_streaming_an_endless_body_is_cut_at_the_cap() {
    let response = lookup_in_front_of(&raw_crm("chunked-huge").await, |_| {}).await;
    let text = assert_error(response, 502, "1007").await;
    assert_eq!(text, "CRM response is larger than the 1048576-byte limit");
}

#[tokio::test]
async fn crm_that_accepts_and_hangs_is_504() {
    let response = lookup_in_front_of(&raw_crm("hang").await, crm_timeout(300)).await;
    assert_error(response, 504, "1004").await;
}

/// The errorText of a lookup whose CRM answers Alice's record as `spoil`
/// changes it, asserting the mapping failure's 500 and errorCode.
async fn mapping_error(spoil: impl FnOnce(&mut serde_json::Value)) -> String {
    let app = spawn_app().await;
    let mut crm = fixture("generic-bank/alice.input.json");
    spoil(&mut crm);
    app.crm_answers("spoilt", ResponseTemplate::new(200).set_body_json(crm), 1)
        .await;
    assert_error(app.lookup("spoilt").await, 500, "1003").await
}

#[tokio::test]
async fn mapping_failure_is_500_naming_the_field() {
    let text = mapping_error(|crm| {
        crm["client"].as_object_mut().unwrap().remove("lastName");
    })
    .await;

    assert!(text.contains("client.surname"), "{text}");
    assert!(
        !text.contains("Иванова"),
        "no personal data in the error: {text}"
    );
}

#[tokio::test]
async fn wrongly_typed_crm_value_is_500_naming_the_field() {
    let text = mapping_error(|crm| crm["companies"][1]["id"] = json!("not-a-number")).await;

    assert!(text.contains("companyList[1].id"), "{text}");
    assert!(!text.contains("not-a-number"), "{text}");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_json_errors() {
    let app = spawn_app().await;
    assert_error(app.get("/rest/chat/client/name/x").await, 404, "1404").await;
    let post = app
        .http
        .post(format!("{}/rest/chat/client/id/x", app.address))
        .send()
        .await
        .unwrap();
    assert_error(post, 405, "1405").await;
}

/// What hyper refuses before any handler runs (a malformed request, a URI or
/// header section over its limits) still answers in the fronts' error shape:
/// JSON with the Auth API's `errorCode`/`errorText` and the users API's
/// `error.message`, since the path is not known at that point.
#[tokio::test]
async fn the_http_layers_own_refusals_carry_a_json_error_body() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = crate::helpers::spawn_app().await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let huge_header = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        (0..200)
            .map(|i| format!("X-{i}: 1\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "bad header line",
            b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(),
            400,
            "1400",
        ),
        (
            "not HTTP",
            b"\x16\x03\x01garbage\r\n\r\n".to_vec(),
            400,
            "1400",
        ),
        (
            "bad method",
            b"G@T / HTTP/1.1\r\n\r\n".to_vec(),
            400,
            "1400",
        ),
        ("URI too long", long_uri.into_bytes(), 414, "1414"),
        ("header too large", huge_header.into_bytes(), 431, "1431"),
        ("too many headers", many_headers.into_bytes(), 431, "1431"),
        (
            "malformed after a good request on one connection",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nBad Header\r\n\r\n"
                .to_vec(),
            400,
            "1400",
        ),
    ];
    for (what, request, status, code) in cases {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = s.write_all(&request).await;
        let mut raw = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut raw)).await;
        let text = String::from_utf8_lossy(&raw).into_owned();
        // The last answer on the connection is the refusal.
        let last = text.rfind("HTTP/1.1 ").map_or("", |i| &text[i..]);
        let (head, body) = last.split_once("\r\n\r\n").unwrap_or((last, ""));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {text}"
        );
        assert!(
            head.contains("content-type: application/json"),
            "{what}: {head}"
        );
        let json: serde_json::Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
        assert_eq!(json["errorCode"], code, "{what}");
        assert!(json["errorText"].is_string(), "{what}");
        assert!(json["error"]["message"].is_string(), "{what}");
    }
}
