//! Caller protocols. Each front owns its routes, its input validation, its
//! output schema and its error body shape; the lookup core is shared.

pub mod auth_api;
pub mod users_api;
