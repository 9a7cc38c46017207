//! authbridge: the adapter between a bank's chat server (Auth API) and the
//! bank's CRM. A lookup goes front → cache → coalesced CRM fetch → mapping →
//! serialised card; see the README's architecture section.

pub mod app;
pub mod config;
pub mod diagnostics;
pub mod error;
pub mod front;
pub mod json_response;
pub mod lookup;
pub mod mapping;
pub mod mapping_pool;
pub mod metrics;
pub mod openapi;
pub mod playground;
pub mod scaffold;
pub mod schema;
pub mod secrets;
pub mod telemetry;
pub mod tools;
pub mod upstream;
pub mod worker;

pub use app::Application;
pub use config::Settings;
