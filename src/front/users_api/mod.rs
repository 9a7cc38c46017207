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
//! Profiles and histories share the Redis level, each in its key space.
//!
//! The calls' mappings reload without a restart ([`state`]); a call runs
//! with the version it started with.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{any, patch, post};
use serde_json::{Value, json};

use crate::error::LookupError;
use crate::lookup::cache::Answer;
use crate::lookup::{CardProducer as _, Lookup};
use crate::secrets::digest;
use crate::upstream::{Crm, Fetched};
use admit::{Call, admit, field, is_json};
use errors::{Refusal, answer, error};
use state::{Calls, Inner, Operation};

mod admit;
pub mod card;
pub mod errors;
pub mod state;

pub use state::{Loaded, NAMESPACE, ORDERS_NAMESPACE, UsersState};

/// The body field Get User Data looks the user up by.
const GET_FIELD: &str = "userIdentifier";

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
        let (_, deadline) = s.limits();
        let body = match tokio::time::timeout(deadline, Bytes::from_request(req, &())).await {
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

    /// The identifier limit and the deadline of the running version.
    fn limits(&self) -> (usize, Duration) {
        let calls = self.calls.load();
        (calls.max_identifier, calls.deadline)
    }

    /// Runs a forwarded (never cached) operation.
    async fn forward(
        &self,
        op: &Operation,
        deadline: Duration,
        token: &str,
        call: Call,
    ) -> Result<Option<Value>, LookupError> {
        let run =
            op.pipeline
                .run_with_input(&self.transport, token, Some(Value::Object(call.input)));
        match tokio::time::timeout(deadline, run).await {
            Err(_) => Err(LookupError::Deadline),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(Fetched::NotFound)) => Ok(None),
            Ok(Ok(Fetched::Found(Crm {
                json: doc,
                body_bytes,
            }))) => {
                let offload = self.pool.offloads(op.builder.uses_jq(), body_bytes);
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
    let (max_identifier, deadline) = s.limits();
    let id = match field(&call, GET_FIELD, max_identifier) {
        Ok(id) => id,
        Err(r) => return s.refuse(r),
    };
    match s.looked_up("get", &s.get, id, deadline, started).await {
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
    let (max_identifier, deadline) = s.limits();
    let id = match field(&call, "userIdentifier", max_identifier) {
        Ok(id) => id,
        Err(r) => return s.refuse(r),
    };
    match s
        .looked_up("orders", &s.orders, id, deadline, started)
        .await
    {
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
        deadline: Duration,
        started: Instant,
    ) -> Result<Answer, Response> {
        match tokio::time::timeout(deadline, lookup.get(id)).await {
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

    fn operation(self, c: &Calls) -> &Operation {
        match self {
            Forwarded::Update => &c.update,
            Forwarded::OtpRequest => &c.otp_request,
            Forwarded::OtpConfirm => &c.otp_confirm,
            Forwarded::Login => &c.login,
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

/// Checks, forwards (never cached) and answers one forwarded call, with
/// the mappings in use when it started.
async fn forward(s: &Inner, kind: Forwarded, call: Call) -> Response {
    let started = Instant::now();
    let calls = s.calls.load_full();
    let (token_field, secret) = kind.fields();
    let token = match field(&call, token_field, calls.max_identifier) {
        Ok(t) => t.to_owned(),
        Err(r) => return s.refuse(r),
    };
    if let Some((name, max)) = secret
        && let Err(r) = field(&call, name, max)
    {
        return s.refuse(r);
    }
    let result = s
        .forward(kind.operation(&calls), calls.deadline, &token, call)
        .await;
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
