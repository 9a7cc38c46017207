//! The second front: the commerce platform's users webhooks, against a mock
//! CRM — each call's success and error paths, caching of Get User Data, no
//! caching of codes and logins, invalidation on update, the API key, and
//! secret-free TRACE logs.

use serde_json::{Value, json};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{captured_logs, fixture, metrics_of, start, users_settings};

const KEY: &str = "platform-key-123";

struct Users {
    address: String,
    crm: MockServer,
    _key: tempfile::NamedTempFile,
}

impl Users {
    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let r = reqwest::Client::new()
            .request(method, format!("{}{path}", self.address))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, path: &str, mut body: Value) -> (u16, Value) {
        body["key"] = json!(KEY);
        self.call(reqwest::Method::POST, path, body).await
    }

    /// The CRM answers Anna's profile `times` times (checked when the mock
    /// server drops).
    async fn anna_answers(&self, times: u64) {
        Mock::given(method("GET"))
            .and(path("/api/v1/customers/79991234567"))
            .respond_with(ResponseTemplate::new(200).set_body_json(customer()))
            .expect(times)
            .mount(&self.crm)
            .await;
    }

    /// The CRM answers `status` to any request at `p` that no mock mounted
    /// before this one matches (wiremock tries mocks in mounting order).
    async fn crm_otherwise(&self, p: &str, status: u16) {
        Mock::given(path(p))
            .respond_with(ResponseTemplate::new(status))
            .mount(&self.crm)
            .await;
    }

    async fn crm_calls(&self, p: &str) -> usize {
        self.crm
            .received_requests()
            .await
            .unwrap()
            .iter()
            .filter(|r| r.url.path() == p)
            .count()
    }
}

async fn users() -> Users {
    let crm = MockServer::start().await;
    let (s, key) = users_settings(&crm.uri(), KEY);
    Users {
        address: start(s).await,
        crm,
        _key: key,
    }
}

fn customer() -> Value {
    fixture("users/customer-anna.json")
}

fn expected_user() -> Value {
    fixture("users/generic-bank-get/anna.expected.json")
}

#[tokio::test]
async fn get_user_data_is_cached_and_unknown_users_get_their_id_alone() {
    let u = users().await;
    u.anna_answers(1).await;
    u.crm_otherwise("/api/v1/customers/70000000000", 404).await;

    assert_eq!(
        u.post("/users/get", json!({"userIdentifier": "79991234567"}))
            .await,
        (200, expected_user())
    );
    assert_eq!(
        u.post("/users/get", json!({"userIdentifier": "79991234567"}))
            .await,
        (200, expected_user())
    );
    assert_eq!(
        u.post("/users/get", json!({"userIdentifier": "70000000000"}))
            .await,
        (200, json!({"user": {"id": "70000000000"}}))
    );
}

#[tokio::test]
async fn the_api_key_is_checked_before_anything_is_forwarded() {
    let u = users().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(customer()))
        .mount(&u.crm)
        .await;
    let body = json!({"userIdentifier": "79991234567"});

    let (status, missing) = u
        .call(reqwest::Method::POST, "/users/get", body.clone())
        .await;
    assert_eq!(status, 401);
    assert!(missing["error"]["message"].is_string(), "{missing}");
    let (status, _) = u
        .call(
            reqwest::Method::POST,
            "/users/get",
            json!({"userIdentifier": "1", "key": "wrong"}),
        )
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        u.crm.received_requests().await.unwrap().len(),
        0,
        "nothing forwarded"
    );

    // The key as a bearer token works too.
    let r = reqwest::Client::new()
        .post(format!("{}/users/get", u.address))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_requests_get_an_error_without_echoing_input() {
    let u = users().await;
    for body in [
        json!({}),
        json!({"userIdentifier": ""}),
        json!({"userIdentifier": 5}),
        json!({"userIdentifier": "a\nb"}),
    ] {
        let (status, answer) = u.post("/users/get", body).await;
        assert_eq!(status, 400);
        assert!(answer["error"]["message"].is_string());
    }
    let raw = reqwest::Client::new()
        .post(format!("{}/users/get", u.address))
        .bearer_auth(KEY)
        .body(r#"["not", "an object"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(u.crm.received_requests().await.unwrap().len(), 0);
}

#[tokio::test]
async fn update_forwards_only_sent_fields_and_drops_the_cached_profile() {
    let u = users().await;
    u.anna_answers(2).await;
    Mock::given(method("PATCH"))
        .and(path("/api/v1/customers/79991234567"))
        .and(body_json(json!({"email": "anna.ivanova@example.com"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(customer()))
        .expect(1)
        .mount(&u.crm)
        .await;

    assert_eq!(
        u.post("/users/get", json!({"userIdentifier": "79991234567"}))
            .await
            .0,
        200
    );
    let mut body =
        json!({"userIdentifier": "79991234567", "email": "anna.ivanova@example.com", "key": KEY});
    let updated = u
        .call(reqwest::Method::PATCH, "/users/update", body.take())
        .await;
    assert_eq!(updated, (200, expected_user()));
    // The cached profile was dropped: the next get asks the CRM again.
    assert_eq!(
        u.post("/users/get", json!({"userIdentifier": "79991234567"}))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn otp_requests_are_forwarded_every_time() {
    let u = users().await;
    Mock::given(method("POST"))
        .and(path("/api/v1/otp/send"))
        .and(body_json(json!({"phone": "79991234567"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"sent": true, "resendAfter": 60, "attempts": 3, "length": 6, "maskedPhone": "7999***4567"})))
        .expect(2)
        .mount(&u.crm)
        .await;
    u.crm_otherwise("/api/v1/otp/send", 404).await;
    let expected = json!({"otp": {"timeout": 60, "attemptsLeft": 3, "message": "Код отправлен на 7999***4567", "codeLength": 6}});

    assert_eq!(
        u.post(
            "/users/otp/request",
            json!({"userIdentifier": "79991234567"})
        )
        .await,
        (200, expected.clone())
    );
    assert_eq!(
        u.post(
            "/users/otp/request",
            json!({"userIdentifier": "79991234567"})
        )
        .await,
        (200, expected)
    );
    let (status, unknown) = u
        .post(
            "/users/otp/request",
            json!({"userIdentifier": "70000000000"}),
        )
        .await;
    assert_eq!(status, 404);
    assert!(unknown["error"]["message"].is_string());
}

#[tokio::test]
async fn otp_confirm_succeeds_or_always_answers_with_an_error() {
    let u = users().await;
    let verified = {
        let mut c = customer();
        c["verified"] = json!(true);
        c
    };
    Mock::given(path("/api/v1/otp/verify"))
        .and(body_json(json!({"phone": "79991234567", "code": "555666"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(verified))
        .mount(&u.crm)
        .await;
    Mock::given(path("/api/v1/otp/verify"))
        .and(body_json(json!({"phone": "79991234567", "code": "000000"})))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"verified": false})))
        .mount(&u.crm)
        .await;
    Mock::given(path("/api/v1/otp/verify"))
        .and(body_json(json!({"phone": "79991234567", "code": "111111"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"verified": false})))
        .mount(&u.crm)
        .await;
    Mock::given(path("/api/v1/otp/verify"))
        .and(body_json(json!({"phone": "79991234567", "code": "999999"})))
        .respond_with(ResponseTemplate::new(503))
        .mount(&u.crm)
        .await;

    let ok = u
        .post(
            "/users/otp/confirm",
            json!({"userIdentifier": "79991234567", "otp": "555666"}),
        )
        .await;
    assert_eq!(ok, (200, expected_user()));
    for (code, status) in [("000000", 401), ("111111", 401), ("999999", 502)] {
        let (got, answer) = u
            .post(
                "/users/otp/confirm",
                json!({"userIdentifier": "79991234567", "otp": code}),
            )
            .await;
        assert_eq!(got, status, "{code}");
        assert!(
            answer["error"]["message"].is_string(),
            "a failed check always carries `error`: {answer}"
        );
        assert!(answer.get("user").is_none());
    }
    let (status, answer) = u
        .post(
            "/users/otp/confirm",
            json!({"userIdentifier": "79991234567"}),
        )
        .await;
    assert_eq!(status, 400, "a missing code is not forwarded");
    assert!(answer["error"].is_object());
    // Never cached: the same good code is checked by the CRM each time.
    u.post(
        "/users/otp/confirm",
        json!({"userIdentifier": "79991234567", "otp": "555666"}),
    )
    .await;
    assert_eq!(u.crm_calls("/api/v1/otp/verify").await, 5);
}

#[tokio::test]
async fn login_succeeds_or_answers_with_an_error_and_is_never_cached() {
    let u = users().await;
    Mock::given(path("/api/v1/auth/login"))
        .and(body_json(
            json!({"login": "79991234567", "password": "pass123!"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(customer()))
        .mount(&u.crm)
        .await;
    u.crm_otherwise("/api/v1/auth/login", 401).await;
    let mut expected = expected_user();
    expected["user"]["user_identifier"] = json!("C-1001");

    assert_eq!(
        u.post(
            "/users/login",
            json!({"login": "79991234567", "password": "pass123!"})
        )
        .await,
        (200, expected.clone())
    );
    assert_eq!(
        u.post(
            "/users/login",
            json!({"login": "79991234567", "password": "pass123!"})
        )
        .await,
        (200, expected)
    );
    let (status, wrong) = u
        .post(
            "/users/login",
            json!({"login": "79991234567", "password": "nope"}),
        )
        .await;
    assert_eq!(status, 401);
    assert!(wrong["error"]["message"].is_string());
    assert_eq!(u.crm_calls("/api/v1/auth/login").await, 3);
}

#[tokio::test]
async fn passwords_codes_and_identifiers_stay_out_of_logs_and_metrics() {
    let u = users().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&u.crm)
        .await;
    let secret_password = format!("pw-{}", uuid::Uuid::new_v4().simple());
    // Distinctive: six digits alone could match a log timestamp by chance.
    let secret_code = format!("Q{}X", 100_000 + fastrand_code());
    let identifier = format!("7{}", 9_000_000_000u64 + fastrand_code() as u64);

    let (login, _) = u
        .post(
            "/users/login",
            json!({"login": identifier, "password": secret_password}),
        )
        .await;
    let (confirm, _) = u
        .post(
            "/users/otp/confirm",
            json!({"userIdentifier": identifier, "otp": secret_code}),
        )
        .await;
    // Both reached the CRM and were refused: the secrets went through the
    // code paths that could have logged them.
    assert_eq!(login, 401);
    assert!(!(200..300).contains(&confirm), "{confirm}");

    let logs = captured_logs();
    let metrics = metrics_of(&u.address).await;
    for secret in [&secret_password, &secret_code, &identifier] {
        assert!(!logs.contains(secret.as_str()), "a secret reached the logs");
        assert!(
            !metrics.contains(secret.as_str()),
            "a secret reached the metrics"
        );
    }
    assert!(metrics.contains(
        "authbridge_users_requests_total{operation=\"login\",outcome=\"wrong_credentials\"}"
    ));
}

/// A number unlikely to appear in logs by chance.
fn fastrand_code() -> u32 {
    (uuid::Uuid::new_v4().as_u128() % 800_000) as u32
}
