//! The OpenAPI 3.1 document of both fronts and the operators' endpoints,
//! written from the same sources the server answers from: the schema
//! descriptors (card and users answers), the fronts' error tables, and the
//! configuration (users-API paths, `auth_api.api_version`, `server.access`,
//! `admin.listen`). `authbridge openapi` prints it; `GET /openapi.json`
//! serves the same bytes, made at start-up and again by each reload.
//!
//! The document describes what this configuration serves: the users API only
//! when `users_api.enabled`, the admin API only when `admin.listen` is set,
//! the card of the configured Auth API version.

mod auth_api;
mod ops;
mod schemas;
mod users_api;

use serde_json::{Map, Value, json};

use crate::config::Settings;

pub use ops::OPENAPI_PATH;

/// The document of a server started with `started` and reloaded to
/// `reloaded`: what a reload applies (the card's API version, the token
/// checks) comes from `reloaded`, what needs a restart (the users API's
/// routes, the access rules, the admin listener) from `started`, so the
/// document says what the server really serves.
pub fn after_reload(started: &Settings, reloaded: &Settings) -> Vec<u8> {
    let mut described = reloaded.clone();
    described.users_api = started.users_api.clone();
    described.server.access = started.server.access.clone();
    described.admin = started.admin.clone();
    to_bytes(&described)
}

/// The document for `settings`.
pub fn document(settings: &Settings) -> Value {
    let mut paths = Map::new();
    paths.insert(auth_api::PATH.into(), auth_api::path_item(settings));
    let users = &settings.users_api;
    if users.enabled {
        users_api::paths(users, &mut paths);
    }
    ops::paths(&mut paths);
    ops::admin_paths(&settings.admin, &mut paths);

    let mut schemas = Map::new();
    auth_api::components(settings, &mut schemas);
    let mut security = Map::new();
    if let Some(scheme) = auth_api::security_scheme(settings) {
        security.insert(auth_api::SCHEME.into(), scheme);
    }
    let mut tags = vec![json!({
        "name": "Auth API",
        "description": "The chat server's client lookup (the chat vendor's Auth API).",
    })];
    if users.enabled {
        users_api::components(&mut schemas);
        security.insert(users_api::SCHEME.into(), users_api::security_scheme());
        tags.push(json!({
            "name": "Users API",
            "description": "The mobile-commerce platform's users webhooks.",
        }));
    }
    tags.push(json!({
        "name": "Operations",
        "description": "Probes, metrics and this document; open to any caller, like \
                        the probes: keep the listener off public networks.",
    }));
    if settings.admin.listen.is_some() {
        security.insert(ops::ADMIN_SCHEME.into(), ops::admin_scheme());
        tags.push(json!({
            "name": "Admin",
            "description": "The admin API, on its own listener (admin.listen).",
        }));
    }
    let mut components = json!({
        "schemas": schemas,
        "headers": {"x-request-id": {
            "description": "The caller's x-request-id, or one made for the request.",
            "schema": {"type": "string"},
        }},
    });
    if !security.is_empty() {
        components["securitySchemes"] = Value::Object(security);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "authbridge",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "The chat Auth API (and the commerce platform's users API) served \
                        from a bank's CRM.",
            "description": format!(
                "Auth API {}. Every Auth API answer other than 200 is \
                 `{{\"errorCode\", \"errorText\"}}`; the codes are listed in the AuthError \
                 schema with their HTTP status (1404: no such endpoint, 1405: wrong method, \
                 on any path). Every users-API answer other than 2xx is \
                 `{{\"error\": {{\"message\"}}}}`.",
                settings.auth_api.api_version
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": tags,
        "paths": paths,
        "components": components,
    })
}

/// The document as served and printed: pretty JSON, one trailing newline.
pub fn to_bytes(settings: &Settings) -> Vec<u8> {
    let mut out =
        serde_json::to_vec_pretty(&document(settings)).expect("a JSON value always serialises");
    out.push(b'\n');
    out
}
