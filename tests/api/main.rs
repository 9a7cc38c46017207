//! Integration tests: the real server on a loopback port, a real HTTP mock CRM.

mod budgets;
mod caching;
mod card;
mod cli;
mod errors;
mod golden;
mod helpers;
mod hostile;
mod layout;
mod lifecycle;
mod logs;
mod mtls;
mod oauth2;
mod operations;
mod ops;
mod pipelines;
mod process;
mod redis;
mod request_ids;
mod resilience;
mod robustness;
mod shipped_pipelines;
mod upstream_request;
mod users;
mod users_failures;
mod users_orders;
