//! The Auth API's error answers: `{"errorCode", "errorText"}` with the
//! status of the README's error table. A failed lookup becomes an
//! [`ApiError`], which answers itself (`IntoResponse`); the access guard, the
//! router's fallbacks and the handler all answer through it.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::error::LookupError;

/// An error as this front answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    /// The `errorCode`.
    pub code: &'static str,
    /// The `errorText`: names what failed, never the token or CRM values.
    pub text: String,
}

impl ApiError {
    /// An error with its status, code and text.
    pub fn new(status: StatusCode, code: &'static str, text: impl Into<String>) -> Self {
        Self {
            status,
            code,
            text: text.into(),
        }
    }
}

impl From<&LookupError> for ApiError {
    fn from(err: &LookupError) -> Self {
        let answer = err.answer();
        let text = match err {
            // Internal details stay in the log.
            LookupError::Internal(_) => "Internal error".to_owned(),
            other => other.to_string(),
        };
        Self::new(answer.status, answer.code, text)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "errorCode": self.code, "errorText": self.text });
        crate::json_response::json(self.status, Bytes::from(body.to_string()))
    }
}

/// An error answer in the Auth API's shape.
pub fn error_body(status: StatusCode, code: &'static str, text: &str) -> Response {
    ApiError::new(status, code, text).into_response()
}
