//! authbridge: the adapter between a bank's chat server (Auth API) and the
//! bank's CRM. A lookup goes front → cache → coalesced CRM fetch → mapping →
//! serialised card; see the README's architecture section.

pub mod admin;
pub mod auth_engine;
pub mod config;
pub mod demo;
pub mod error;
pub mod first_bytes;
pub mod front;
pub mod http_refusals;
pub mod json_response;
pub mod lookup;
pub mod mapping;
pub mod mapping_pool;
pub mod metrics;
pub mod reload;
pub mod request_id;
pub mod request_span;
pub mod schema;
pub mod secrets;
pub mod server;
pub mod startup;
pub mod startup_error;
pub mod telemetry;
pub mod tools;
pub mod upstream;
pub mod worker;

pub use config::Settings;
pub use startup::Application;
