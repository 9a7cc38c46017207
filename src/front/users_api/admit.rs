//! Which requests the users front admits: a JSON body that is an object,
//! the platform's API key (in the body's `key` or `Authorization: Bearer`),
//! and each call's required fields — checked without echoing any of them.

use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use serde_json::{Map, Value};

use super::errors::Refusal;
use crate::secrets::matches;

/// A checked request: the body without the key.
pub(super) struct Call {
    pub(super) input: Map<String, Value>,
}

/// `application/json` or any `+json` type; a missing header is read as JSON.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
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
pub(super) fn admit(
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
pub(super) fn field<'a>(call: &'a Call, name: &str, max: usize) -> Result<&'a str, Refusal> {
    match call.input.get(name) {
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control) =>
        {
            Ok(s)
        }
        _ => Err(Refusal::BadRequest),
    }
}
