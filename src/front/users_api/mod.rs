//! The mobile-commerce platform's users webhooks (IMSHOP.IO): Get User Data
//! (cached in its own key space), Order history (cached briefly in another),
//! Update User Data (forwarded, then the cached profile is dropped), and OTP
//! request / OTP confirm / login+password (forwarded, never cached). Every
//! call carries the platform's API key, in the body (`key`) or as
//! `Authorization: Bearer`; without the right key nothing is forwarded.
//!
//! Answers are `{"user": {...}}` / `{"otp": {...}}` / `{"orders": [...]}`,
//! errors `{"error": {"message": ...}}`. The platform counts any answer
//! without `error` as success (for the order history: "no orders"), so a
//! failed code check, login or history lookup always carries one.
//! Passwords, codes and identifiers never reach logs, metrics or messages.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{any, patch, post};
use secrecy::ExposeSecret;
use serde_json::{Map, Value, json};

use crate::app::startup_error::StartupError;
use crate::config::{
    CacheSettings, ConfigError, Settings, UsersMessages, UsersOperation, read_secret,
};
use crate::error::LookupError;
use crate::lookup::cache::{Answer, AnswerCache, CachePolicy, KeyHasher};
use crate::lookup::{CardProducer as _, Engine, Limits, Lookup};
use crate::mapping_pool::MappingPool;
use crate::secrets::{digest, matches};
use crate::upstream::{Fetched, Pipeline, Transport};
use card::{Shape, UsersCardBuilder};
use errors::{Refusal, answer, error};

pub mod card;
pub mod errors;

/// This front's cache key space for profiles (Get User Data).
pub const NAMESPACE: &str = "users-api";
/// The key space of order histories: a profile and a history of one user
/// never share a key.
pub const ORDERS_NAMESPACE: &str = "users-api-orders";

/// The body field Get User Data looks the user up by.
const GET_FIELD: &str = "userIdentifier";

/// One forwarded operation: its requests and how its answer is built.
struct Operation {
    pipeline: Pipeline,
    builder: Arc<UsersCardBuilder>,
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
            builder: Arc::new(
                UsersCardBuilder::from_text(&file, &text, shape)?
                    .with_budget(settings.mapping.budget()),
            ),
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
    orders: Lookup,
    transport: Arc<Transport>,
    /// Where forwarded answers are mapped (see [`crate::mapping_pool`]).
    pool: Arc<MappingPool>,
    update: Operation,
    otp_request: Operation,
    otp_confirm: Operation,
    login: Operation,
    key: [u8; 32],
    messages: Arc<UsersMessages>,
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
            ConfigError::invalid(
                "users_api.api_key_env",
                "the users API needs the platform's key",
            )
        })?;
        let hasher = KeyHasher::from_settings(&settings.cache)?;
        let profiles = CacheSettings {
            max_bytes: u.cache_max_bytes,
            found_ttl: u.found_ttl,
            not_found_ttl: u.not_found_ttl,
            ..settings.cache.clone()
        };
        // A history is at most `orders_ttl_secs` old: no stale copy is served
        // when the CRM fails (a status shown as current must be), and 0 turns
        // the cache off for found and unknown users alike.
        let histories = CacheSettings {
            max_bytes: u.cache_max_bytes,
            found_ttl: u.orders_ttl,
            not_found_ttl: u.orders_ttl,
            grace: Duration::ZERO,
            stale_while_revalidate: false,
            ..settings.cache.clone()
        };
        let cached = |namespace, op: &UsersOperation, shape, cache: &CacheSettings| {
            let loaded = Operation::load(op, settings, shape)?;
            let engine = Engine {
                producer: loaded.builder,
                pool: MappingPool::shared(&settings.mapping),
                pipeline: loaded.pipeline,
                policy: CachePolicy::new(cache),
                limits: Limits {
                    max_token_bytes: u.max_identifier_bytes,
                    request_timeout: settings.server.request_timeout,
                    token_pattern: None,
                },
                mapping_digest: loaded.digest,
                mapping_file: op.mapping.display().to_string(),
                generation: 0,
            };
            Ok::<_, StartupError>(Lookup::new(
                namespace,
                hasher.clone(),
                AnswerCache::new(cache),
                transport.clone(),
                engine,
                None,
            ))
        };
        let get = cached(NAMESPACE, &u.get, Shape::User, &profiles)?;
        let orders = cached(ORDERS_NAMESPACE, &u.orders, Shape::Orders, &histories)?;
        Ok(Self {
            inner: Arc::new(Inner {
                get,
                orders,
                transport,
                pool: MappingPool::shared(&settings.mapping),
                update: Operation::load(&u.update, settings, Shape::User)?,
                otp_request: Operation::load(&u.otp_request, settings, Shape::Otp)?,
                otp_confirm: Operation::load(&u.otp_confirm, settings, Shape::User)?,
                login: Operation::load(&u.login, settings, Shape::LoginUser)?,
                key: digest(format!("Bearer {}", key.expose_secret()).as_bytes()),
                messages: Arc::new(u.messages.clone()),
                max_identifier: u.max_identifier_bytes,
                deadline: settings.server.request_timeout,
            }),
        })
    }
}

/// The users routes, at the configured paths, behind the guard that gives
/// every failure the `error` shape. Wrong methods on a call's path and
/// unknown paths under the calls' shared prefix are this front's answers too.
pub fn routes<S>(settings: &crate::config::UsersApiSettings, state: UsersState) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let messages = state.inner.messages.clone();
    let metrics = state.inner.transport.metrics().clone();
    let calls = [
        (&settings.get.path, post(get_user)),
        (&settings.update.path, patch(update_user)),
        (&settings.otp_request.path, post(otp_request)),
        (&settings.otp_confirm.path, post(otp_confirm)),
        (&settings.login.path, post(login)),
        (&settings.orders.path, post(order_history)),
    ];
    let paths: Vec<&str> = calls.iter().map(|(p, _)| p.as_str()).collect();
    let prefix = errors::common_prefix(paths.iter().copied());
    let mut router = Router::new();
    for (path, method) in calls {
        router = router.route(path, method.fallback(wrong_method));
    }
    if let Some(prefix) = prefix {
        if !paths.contains(&prefix.as_str()) {
            router = router.route(&prefix, any(unknown_path));
        }
        router = router.route(&format!("{prefix}/{{*rest}}"), any(unknown_path));
    }
    let router = router
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .with_state(state);
    errors::guard(router, messages, metrics)
}

async fn wrong_method(State(s): State<UsersState>) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        &s.inner.messages.bad_request,
    )
}

async fn unknown_path(State(s): State<UsersState>) -> Response {
    error(StatusCode::NOT_FOUND, &s.inner.messages.bad_request)
}

/// A checked request: the body without the key.
struct Call {
    input: Map<String, Value>,
}

/// A request the front admits: a JSON body within the size limit, read
/// within the deadline, that is an object and carries the right key. Its
/// rejection is the front's `error` answer.
struct Admitted(Call);

impl FromRequest<UsersState> for Admitted {
    type Rejection = Response;

    async fn from_request(req: Request, state: &UsersState) -> Result<Self, Response> {
        let s = &state.inner;
        if !is_json(req.headers()) {
            return Err(s.refuse(Refusal::NotJson));
        }
        // Only this header is needed once the body is read.
        let authorization = req.headers().get(AUTHORIZATION).cloned();
        // A body trickled in must not hold a connection past the deadline.
        let body = match tokio::time::timeout(s.deadline, Bytes::from_request(req, &())).await {
            Err(_) => return Err(s.refuse(Refusal::SlowBody)),
            Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(s.refuse(Refusal::TooLarge));
            }
            Ok(Err(_)) => return Err(s.refuse(Refusal::BadRequest)),
            Ok(Ok(body)) => body,
        };
        admit(&s.key, authorization.as_ref(), &body)
            .map(Admitted)
            .map_err(|r| s.refuse(r))
    }
}

/// `application/json` or any `+json` type; a missing header is read as JSON.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses the body and checks the API key (in the body's `key`, else the
/// `Authorization` header); the key is taken out of what is forwarded.
fn admit(
    key: &[u8; 32],
    authorization: Option<&HeaderValue>,
    body: &[u8],
) -> Result<Call, Refusal> {
    let Ok(Value::Object(mut input)) = serde_json::from_slice::<Value>(body) else {
        return Err(Refusal::BadRequest);
    };
    let from_body = input.remove("key");
    let presented = match &from_body {
        Some(Value::String(k)) => Some(format!("Bearer {k}").into_bytes()),
        Some(_) => None,
        None => authorization.map(|v| v.as_bytes().to_vec()),
    };
    if !presented.is_some_and(|p| matches(&p, key)) {
        return Err(Refusal::Unauthorized);
    }
    Ok(Call { input })
}

/// A required string field of the body, checked without echoing it.
fn field<'a>(call: &'a Call, name: &str, max: usize) -> Result<&'a str, Refusal> {
    match call.input.get(name) {
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control) =>
        {
            Ok(s)
        }
        _ => Err(Refusal::BadRequest),
    }
}

/// Every check a users call makes before anything is forwarded — content
/// type, a JSON object body, the API key, the call's required fields — over
/// a request's parts, synchronously. `call` is 0 for Get User Data, then
/// update, OTP request, OTP confirm, login. It runs the functions the
/// extractor and the handlers run; it is public (hidden) only so that
/// `examples/fuzz.rs` can drive them without a server. `Ok` holds the
/// identifier the call would forward.
#[doc(hidden)]
pub fn precheck(
    api_key: &str,
    max_identifier: usize,
    call: usize,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String, StatusCode> {
    let status = Refusal::status;
    if !is_json(headers) {
        return Err(status(Refusal::NotJson));
    }
    let key = digest(format!("Bearer {api_key}").as_bytes());
    let call_body = admit(&key, headers.get(AUTHORIZATION), body).map_err(status)?;
    let (token_field, secret) = match call {
        0 => (GET_FIELD, None),
        1 => Forwarded::Update.fields(),
        2 => Forwarded::OtpRequest.fields(),
        3 => Forwarded::OtpConfirm.fields(),
        _ => Forwarded::Login.fields(),
    };
    let token = field(&call_body, token_field, max_identifier).map_err(status)?;
    if let Some((name, max)) = secret {
        field(&call_body, name, max).map_err(status)?;
    }
    Ok(token.to_owned())
}

impl Inner {
    /// Counts one answered call in the application's registry (and reports
    /// its outcome to the request's record).
    fn record(&self, operation: &'static str, outcome: &'static str, started: Instant) {
        crate::telemetry::record::outcome(outcome);
        let metrics = self.transport.metrics();
        let labels = [("operation", operation), ("outcome", outcome)];
        metrics
            .counter_with("authbridge_users_requests_total", &labels)
            .increment(1);
        metrics
            .histogram_with("authbridge_users_request_duration_seconds", &labels[..1])
            .record(started.elapsed().as_secs_f64());
    }

    /// The answer to send for a refusal; a wrong key is counted (only
    /// [`admit`] refuses with `Unauthorized`).
    fn refuse(&self, refusal: Refusal) -> Response {
        let message = match refusal {
            Refusal::Unauthorized => {
                let denied = [("reason", "users_api_key")];
                let metrics = self.transport.metrics();
                metrics
                    .counter_with("authbridge_access_denied_total", &denied)
                    .increment(1);
                &self.messages.unauthorized
            }
            _ => &self.messages.bad_request,
        };
        error(refusal.status(), message)
    }

    fn failure(&self, e: &LookupError) -> Response {
        let status = errors::status_for(e);
        let message = if status == StatusCode::BAD_REQUEST {
            &self.messages.bad_request
        } else {
            &self.messages.unavailable
        };
        error(status, message)
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
            Ok(Ok(Fetched::Found(doc))) => {
                let offload = self.pool.offloads(op.builder.uses_jq(), &doc);
                let builder = Arc::clone(&op.builder);
                self.pool
                    .run(offload, self.transport.metrics(), move || {
                        builder.answer(&doc)
                    })
                    .await
                    .map(Some)
            }
        }
    }
}

async fn get_user(State(s): State<UsersState>, Admitted(call): Admitted) -> Response {
    let (s, started) = (&s.inner, Instant::now());
    let id = match field(&call, GET_FIELD, s.max_identifier) {
        Ok(id) => id,
        Err(r) => return s.refuse(r),
    };
    match s.looked_up("get", &s.get, id, started).await {
        Ok(Answer::Card(bytes)) => {
            s.record("get", "found", started);
            answer(StatusCode::OK, bytes.to_vec())
        }
        // A user the CRM does not know yet: the platform wants the id alone.
        Ok(Answer::NotFound) => {
            s.record("get", "new_user", started);
            answer(
                StatusCode::OK,
                json!({"user": {"id": id}}).to_string().into_bytes(),
            )
        }
        Err(failed) => failed,
    }
}

async fn order_history(State(s): State<UsersState>, Admitted(call): Admitted) -> Response {
    let (s, started) = (&s.inner, Instant::now());
    let id = match field(&call, "userIdentifier", s.max_identifier) {
        Ok(id) => id,
        Err(r) => return s.refuse(r),
    };
    match s.looked_up("orders", &s.orders, id, started).await {
        // `{"orders": [...]}`, `[]` included: the CRM answered for a user it
        // knows (the mapping fails an answer without the orders array).
        Ok(Answer::Card(bytes)) => {
            s.record("orders", "found", started);
            answer(StatusCode::OK, bytes.to_vec())
        }
        // The CRM does not know the user: an error, not an empty history,
        // so that a wrong identifier is not shown as "no orders".
        Ok(Answer::NotFound) => {
            s.record("orders", "unknown_user", started);
            error(StatusCode::NOT_FOUND, &s.messages.unknown_user)
        }
        Err(failed) => failed,
    }
}

impl Inner {
    /// `id` through `lookup` within the request deadline; a failure is
    /// counted under `operation` and answered here.
    async fn looked_up(
        &self,
        operation: &'static str,
        lookup: &Lookup,
        id: &str,
        started: Instant,
    ) -> Result<Answer, Response> {
        match tokio::time::timeout(self.deadline, lookup.get(id)).await {
            Ok(Ok((answer, _))) => Ok(answer),
            Ok(Err(e)) => {
                self.record(operation, e.outcome(), started);
                Err(self.failure(&e))
            }
            Err(_) => {
                self.record(operation, "timeout", started);
                Err(self.failure(&LookupError::Deadline))
            }
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
async fn forward(s: &Inner, kind: Forwarded, call: Call) -> Response {
    let started = Instant::now();
    let (token_field, secret) = kind.fields();
    let token = match field(&call, token_field, s.max_identifier) {
        Ok(t) => t.to_owned(),
        Err(r) => return s.refuse(r),
    };
    if let Some((name, max)) = secret
        && let Err(r) = field(&call, name, max)
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
            s.record(kind.name(), "ok", started);
            answer(StatusCode::OK, answer_json.to_string().into_bytes())
        }
        Ok(None) => {
            let (status, message, outcome) = kind.refused(s);
            s.record(kind.name(), outcome, started);
            error(status, message)
        }
        Err(e) => {
            s.record(kind.name(), e.outcome(), started);
            s.failure(&e)
        }
    }
}

async fn update_user(State(s): State<UsersState>, Admitted(call): Admitted) -> Response {
    forward(&s.inner, Forwarded::Update, call).await
}

async fn otp_request(State(s): State<UsersState>, Admitted(call): Admitted) -> Response {
    forward(&s.inner, Forwarded::OtpRequest, call).await
}

async fn otp_confirm(State(s): State<UsersState>, Admitted(call): Admitted) -> Response {
    forward(&s.inner, Forwarded::OtpConfirm, call).await
}

async fn login(State(s): State<UsersState>, Admitted(call): Admitted) -> Response {
    forward(&s.inner, Forwarded::Login, call).await
}
