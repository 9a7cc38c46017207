//! The mobile-commerce platform's users webhooks (IMSHOP.IO): Get User Data
//! (cached in its own key space), Update User Data (forwarded, then the cached
//! profile is dropped), and OTP request / OTP confirm / login+password
//! (forwarded, never cached). Every call carries the platform's API key, in
//! the body (`key`) or as `Authorization: Bearer`; without the right key
//! nothing is forwarded.
//!
//! Answers are `{"user": {...}}` / `{"otp": {...}}`, errors
//! `{"error": {"message": ...}}`. The platform counts any answer without
//! `error` as success, so a failed code check or login always carries one.
//! Passwords, codes and identifiers never reach logs, metrics or messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{patch, post};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::access::{digest, matches};
use crate::cache::{Answer, AnswerCache, CachePolicy, KeyHasher};
use crate::config::{
    CacheSettings, ConfigError, Settings, UsersMessages, UsersOperation, read_secret,
};
use crate::error::LookupError;
use crate::front::users_card::{Shape, UsersCardBuilder};
use crate::lookup::{Engine, Limits, Lookup};
use crate::startup::StartupError;
use crate::upstream::{Fetched, Pipeline, Transport};

/// This front's cache key space.
pub const NAMESPACE: &str = "users-api";

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// One forwarded operation: its requests and how its answer is built.
struct Operation {
    pipeline: Pipeline,
    builder: UsersCardBuilder,
    /// Digest of the mapping text both were compiled from.
    digest: [u8; 32],
}

impl Operation {
    fn load(op: &UsersOperation, settings: &Settings, shape: Shape) -> Result<Self, StartupError> {
        let (file, text) = crate::mapping::read_file(&op.mapping)?;
        let pipeline =
            Pipeline::from_mapping_text(&file, &text, &settings.upstream)?.ok_or_else(|| {
                ConfigError::Invalid(vec![(
                    format!("users_api: {file}"),
                    "a users-API mapping declares its CRM requests as [[step]] tables".into(),
                )])
            })?;
        Ok(Self {
            pipeline,
            builder: UsersCardBuilder::from_text(&file, &text, shape)?,
            digest: digest(text.as_bytes()),
        })
    }
}

/// What the users handlers reach.
#[derive(Clone)]
pub struct UsersState {
    inner: Arc<Inner>,
}

struct Inner {
    get: Lookup,
    transport: Arc<Transport>,
    update: Operation,
    otp_request: Operation,
    otp_confirm: Operation,
    login: Operation,
    key: [u8; 32],
    messages: UsersMessages,
    max_identifier: usize,
    deadline: Duration,
}

impl UsersState {
    /// Loads the five mappings and the API key; shares the CRM transport.
    pub fn new(settings: &Settings, transport: Arc<Transport>) -> Result<Self, StartupError> {
        let u = &settings.users_api;
        let key = read_secret(
            ("users_api.api_key_env", u.api_key_env.as_deref()),
            ("users_api.api_key_file", u.api_key_file.as_deref()),
        )?
        .ok_or_else(|| {
            ConfigError::Invalid(vec![(
                "users_api.api_key_env".into(),
                "the users API needs the platform's key".into(),
            )])
        })?;
        let get = Operation::load(&u.get, settings, Shape::User)?;
        let cache_settings = CacheSettings {
            max_bytes: u.cache_max_bytes,
            found_ttl_secs: u.found_ttl_secs,
            not_found_ttl_secs: u.not_found_ttl_secs,
            ..settings.cache.clone()
        };
        let engine = Engine {
            producer: Arc::new(get.builder),
            pipeline: get.pipeline,
            policy: CachePolicy::new(&cache_settings),
            limits: Limits {
                max_token_bytes: u.max_identifier_bytes,
                request_timeout: Duration::from_millis(settings.server.request_timeout_ms),
                token_pattern: None,
            },
            mapping_digest: get.digest,
            mapping_file: u.get.mapping.display().to_string(),
            generation: 0,
        };
        let get = Lookup::new(
            NAMESPACE,
            KeyHasher::from_settings(&settings.cache)?,
            AnswerCache::new(&cache_settings),
            transport.clone(),
            engine,
            None,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                get,
                transport,
                update: Operation::load(&u.update, settings, Shape::User)?,
                otp_request: Operation::load(&u.otp_request, settings, Shape::Otp)?,
                otp_confirm: Operation::load(&u.otp_confirm, settings, Shape::User)?,
                login: Operation::load(&u.login, settings, Shape::LoginUser)?,
                key: digest(format!("Bearer {}", key.expose_secret()).as_bytes()),
                messages: u.messages.clone(),
                max_identifier: u.max_identifier_bytes,
                deadline: Duration::from_millis(settings.server.request_timeout_ms),
            }),
        })
    }
}

/// The users routes, at the configured paths.
pub fn routes<S>(settings: &crate::config::UsersApiSettings, state: UsersState) -> Router<S> {
    Router::new()
        .route(&settings.get.path, post(get_user))
        .route(&settings.update.path, patch(update_user))
        .route(&settings.otp_request.path, post(otp_request))
        .route(&settings.otp_confirm.path, post(otp_confirm))
        .route(&settings.login.path, post(login))
        .with_state(state)
}

fn answer(status: StatusCode, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response.headers_mut().insert(CACHE_CONTROL, NO_STORE);
    response
}

/// The platform's error shape.
fn error(status: StatusCode, message: &str) -> Response {
    answer(
        status,
        json!({"error": {"message": message}})
            .to_string()
            .into_bytes(),
    )
}

fn record(operation: &'static str, outcome: &'static str, started: Instant) {
    metrics::counter!("authbridge_users_requests_total", "operation" => operation, "outcome" => outcome).increment(1);
    metrics::histogram!("authbridge_users_request_duration_seconds", "operation" => operation)
        .record(started.elapsed().as_secs_f64());
}

/// A checked request: the body without the key.
struct Call {
    input: Map<String, Value>,
}

/// Why a request is refused before anything is forwarded.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    BadRequest,
    Unauthorized,
}

impl Inner {
    /// Parses the body and checks the API key; `Err` is the answer to send.
    fn refuse(&self, refusal: Refusal) -> Response {
        match refusal {
            Refusal::BadRequest => error(StatusCode::BAD_REQUEST, &self.messages.bad_request),
            Refusal::Unauthorized => error(StatusCode::UNAUTHORIZED, &self.messages.unauthorized),
        }
    }

    fn admit(&self, headers: &HeaderMap, body: &Bytes) -> Result<Call, Refusal> {
        let Ok(Value::Object(mut input)) = serde_json::from_slice::<Value>(body) else {
            return Err(Refusal::BadRequest);
        };
        let from_body = input.remove("key");
        let presented = match &from_body {
            Some(Value::String(k)) => Some(format!("Bearer {k}").into_bytes()),
            Some(_) => None,
            None => headers.get(AUTHORIZATION).map(|v| v.as_bytes().to_vec()),
        };
        if !presented.is_some_and(|p| matches(&p, &self.key)) {
            metrics::counter!("authbridge_access_denied_total", "reason" => "users_api_key")
                .increment(1);
            return Err(Refusal::Unauthorized);
        }
        Ok(Call { input })
    }

    /// A required string field of the body, checked without echoing it.
    fn field<'a>(&self, call: &'a Call, name: &str, max: usize) -> Result<&'a str, Refusal> {
        match call.input.get(name) {
            Some(Value::String(s))
                if !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control) =>
            {
                Ok(s)
            }
            _ => Err(Refusal::BadRequest),
        }
    }

    fn failure(&self, e: &LookupError) -> Response {
        let status = match e.answer().status {
            StatusCode::BAD_REQUEST => {
                return error(StatusCode::BAD_REQUEST, &self.messages.bad_request);
            }
            s if s.is_server_error() => s,
            _ => StatusCode::BAD_GATEWAY,
        };
        error(status, &self.messages.unavailable)
    }

    /// Runs a forwarded (never cached) operation.
    async fn forward(
        &self,
        op: &Operation,
        token: &str,
        call: Call,
    ) -> Result<Option<Value>, LookupError> {
        let run =
            op.pipeline
                .run_with_input(&self.transport, token, Some(Value::Object(call.input)));
        match tokio::time::timeout(self.deadline, run).await {
            Err(_) => Err(LookupError::Deadline),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(Fetched::NotFound)) => Ok(None),
            Ok(Ok(Fetched::Found(doc))) => op.builder.answer(&doc).map(Some),
        }
    }
}

async fn get_user(State(s): State<UsersState>, headers: HeaderMap, body: Bytes) -> Response {
    let (s, started) = (&s.inner, Instant::now());
    let call = match s.admit(&headers, &body) {
        Ok(c) => c,
        Err(r) => return s.refuse(r),
    };
    let id = match s.field(&call, "userIdentifier", s.max_identifier) {
        Ok(id) => id,
        Err(r) => return s.refuse(r),
    };
    match tokio::time::timeout(s.deadline, s.get.get(id)).await {
        Ok(Ok((Answer::Card(bytes), _))) => {
            record("get", "found", started);
            answer(StatusCode::OK, bytes.to_vec())
        }
        // A user the CRM does not know yet: the platform wants the id alone.
        Ok(Ok((Answer::NotFound, _))) => {
            record("get", "new_user", started);
            answer(
                StatusCode::OK,
                json!({"user": {"id": id}}).to_string().into_bytes(),
            )
        }
        Ok(Err(e)) => {
            record("get", e.answer().outcome, started);
            s.failure(&e)
        }
        Err(_) => {
            record("get", "timeout", started);
            s.failure(&LookupError::Deadline)
        }
    }
}

/// The four forwarded calls differ only in their input fields and in what
/// the CRM's "no" means to the platform.
#[derive(Debug, Clone, Copy)]
enum Forwarded {
    Update,
    OtpRequest,
    OtpConfirm,
    Login,
}

impl Forwarded {
    fn name(self) -> &'static str {
        match self {
            Forwarded::Update => "update",
            Forwarded::OtpRequest => "otp_request",
            Forwarded::OtpConfirm => "otp_confirm",
            Forwarded::Login => "login",
        }
    }

    fn operation(self, s: &Inner) -> &Operation {
        match self {
            Forwarded::Update => &s.update,
            Forwarded::OtpRequest => &s.otp_request,
            Forwarded::OtpConfirm => &s.otp_confirm,
            Forwarded::Login => &s.login,
        }
    }

    /// The field that is the `{token}`, and a second required secret field.
    fn fields(self) -> (&'static str, Option<(&'static str, usize)>) {
        match self {
            Forwarded::Update | Forwarded::OtpRequest => ("userIdentifier", None),
            Forwarded::OtpConfirm => ("userIdentifier", Some(("otp", 64))),
            Forwarded::Login => ("login", Some(("password", 1024))),
        }
    }

    /// The answer when the CRM says no: always an `error` key.
    fn refused(self, s: &Inner) -> (StatusCode, &str, &'static str) {
        match self {
            Forwarded::Update | Forwarded::OtpRequest => (
                StatusCode::NOT_FOUND,
                &s.messages.unknown_user,
                "unknown_user",
            ),
            Forwarded::OtpConfirm => (
                StatusCode::UNAUTHORIZED,
                &s.messages.invalid_code,
                "invalid_code",
            ),
            Forwarded::Login => (
                StatusCode::UNAUTHORIZED,
                &s.messages.wrong_credentials,
                "wrong_credentials",
            ),
        }
    }
}

/// Checks, forwards (never cached) and answers one forwarded call.
async fn forward(s: &Inner, kind: Forwarded, headers: &HeaderMap, body: &Bytes) -> Response {
    let started = Instant::now();
    let call = match s.admit(headers, body) {
        Ok(c) => c,
        Err(r) => return s.refuse(r),
    };
    let (token_field, secret) = kind.fields();
    let token = match s.field(&call, token_field, s.max_identifier) {
        Ok(t) => t.to_owned(),
        Err(r) => return s.refuse(r),
    };
    if let Some((name, max)) = secret
        && let Err(r) = s.field(&call, name, max)
    {
        return s.refuse(r);
    }
    let result = s.forward(kind.operation(s), &token, call).await;
    if let Forwarded::Update = kind {
        // Whatever the CRM did, the cached profile may be stale now.
        s.get.purge(&token).await;
    }
    match result {
        Ok(Some(answer_json)) => {
            record(kind.name(), "ok", started);
            answer(StatusCode::OK, answer_json.to_string().into_bytes())
        }
        Ok(None) => {
            let (status, message, outcome) = kind.refused(s);
            record(kind.name(), outcome, started);
            error(status, message)
        }
        Err(e) => {
            record(kind.name(), e.answer().outcome, started);
            s.failure(&e)
        }
    }
}

async fn update_user(State(s): State<UsersState>, headers: HeaderMap, body: Bytes) -> Response {
    forward(&s.inner, Forwarded::Update, &headers, &body).await
}

async fn otp_request(State(s): State<UsersState>, headers: HeaderMap, body: Bytes) -> Response {
    forward(&s.inner, Forwarded::OtpRequest, &headers, &body).await
}

async fn otp_confirm(State(s): State<UsersState>, headers: HeaderMap, body: Bytes) -> Response {
    forward(&s.inner, Forwarded::OtpConfirm, &headers, &body).await
}

async fn login(State(s): State<UsersState>, headers: HeaderMap, body: Bytes) -> Response {
    forward(&s.inner, Forwarded::Login, &headers, &body).await
}
