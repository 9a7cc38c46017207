//! The operators' endpoints in the document: the probes, `/metrics` and
//! `/openapi.json` on the main listener (open, like the probes), and the
//! admin API on its own listener when `admin.listen` is set.

use serde_json::{Map, Value, json};

use crate::config::AdminSettings;

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// The admin token's security scheme.
pub const ADMIN_SCHEME: &str = "adminToken";

fn status_body(description: &str, value: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string", "const": value}},
        }}},
    })
}

/// `GET` with `responses`, open to any caller.
fn open_get(id: &str, summary: &str, responses: Value) -> Value {
    json!({"get": {
        "operationId": id,
        "tags": ["Operations"],
        "summary": summary,
        "security": [],
        "responses": responses,
    }})
}

/// The main listener's operator endpoints.
pub fn paths(out: &mut Map<String, Value>) {
    out.insert(
        "/healthz".into(),
        open_get(
            "healthz",
            "Liveness: 200 while the process runs",
            json!({"200": status_body("Alive.", "ok")}),
        ),
    );
    out.insert(
        "/readyz".into(),
        open_get(
            "readyz",
            "Readiness: 200 once serving, 503 from the moment shutdown begins",
            json!({
                "200": status_body("Ready.", "ready"),
                "503": status_body("Starting or shutting down.", "not ready"),
            }),
        ),
    );
    out.insert(
        "/metrics".into(),
        open_get(
            "metrics",
            "Prometheus metrics (text exposition format 0.0.4)",
            json!({"200": {
                "description": "The metrics; labels never hold tokens or personal data.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }}),
        ),
    );
    out.insert(
        OPENAPI_PATH.into(),
        open_get(
            "openapi",
            "This document (what `authbridge openapi` prints for the same configuration)",
            json!({"200": {
                "description": "The OpenAPI 3.1 document.",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }}),
        ),
    );
}

/// The admin API's paths, served on `admin.listen`, if set.
pub fn admin_paths(admin: &AdminSettings, out: &mut Map<String, Value>) {
    let Some(listen) = admin.listen else {
        return;
    };
    let servers = json!([{
        "url": "http://{host}:{port}",
        "description": "The admin listener (admin.listen), apart from the callers' one.",
        "variables": {
            "host": {"default": listen.ip().to_string()},
            "port": {"default": listen.port().to_string()},
        },
    }]);
    let refused = json!({
        "description": "Missing or wrong admin token.",
        "content": {"application/json": {"schema": {
            "type": "object",
            "properties": {"error": {"type": "string"}},
        }}},
    });
    let object = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"type": "object"}}},
        })
    };
    let op = |method: &str, id: &str, summary: &str, mut responses: Value, body: Option<Value>| {
        responses["401"] = refused.clone();
        let mut operation = json!({
            "operationId": id,
            "tags": ["Admin"],
            "summary": summary,
            "security": [{ ADMIN_SCHEME: [] }],
            "responses": responses,
        });
        if let Some(body) = body {
            operation["requestBody"] = body;
        }
        json!({ "servers": servers.clone(), method: operation })
    };
    out.insert(
        "/admin/cache/purge".into(),
        op(
            "post",
            "purgeCard",
            "Drop one token's cached card (the token in the body, never the path)",
            json!({
                "200": object("`{\"purged\": true|false}`."),
                "400": object("The body is not `{\"token\": \"...\"}`."),
            }),
            Some(json!({
                "required": true,
                "content": {"application/json": {"schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {"token": {"type": "string"}},
                }}},
            })),
        ),
    );
    out.insert(
        "/admin/cache/purge-all".into(),
        op(
            "post",
            "purgeAll",
            "Drop every cached card",
            json!({"200": object("`{\"purged\": \"all\"}`.")}),
            None,
        ),
    );
    out.insert(
        "/admin/reload".into(),
        op(
            "post",
            "reload",
            "Reload config and mapping; the old ones keep serving if the new are invalid",
            json!({
                "200": object("What changed, and whether a restart is needed for the rest."),
                "422": object("Rejected: every `file:line:column` problem."),
            }),
            None,
        ),
    );
    out.insert(
        "/admin/stats".into(),
        op(
            "get",
            "stats",
            "Cache entries and bytes, breaker state, mapping generation",
            json!({"200": object("The numbers.")}),
            None,
        ),
    );
}

/// The admin token's scheme.
pub fn admin_scheme() -> Value {
    json!({
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token (admin.token_env/_file), compared in constant time.",
    })
}
