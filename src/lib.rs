//! authbridge: the adapter between a bank's chat server (Auth API) and the
//! bank's CRM. See the README for the architecture.

pub mod config;
pub mod mapping;
pub mod schema;
