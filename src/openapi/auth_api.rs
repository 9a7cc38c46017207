//! The Auth API in the document: `GET /rest/chat/client/id/{token}`, its
//! card (the descriptor at the configured `api_version`), and every error
//! status with its `errorCode`s from the front's error table.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::schemas::{self, Publish, reference};
use crate::config::{AccessKind, Settings};
use crate::front::auth_api::{ERRORS, ErrorRow, Scope};
use crate::schema::auth_api::RESPONSE;

/// The path the chat server calls.
pub const PATH: &str = "/rest/chat/client/id/{token}";
/// The security scheme of `server.access` (when it asks for a secret).
pub const SCHEME: &str = "chatServer";
/// The error body's component.
pub const ERROR: &str = "AuthError";

/// The card's objects and the error body, for `components.schemas`.
pub fn components(settings: &Settings, out: &mut Map<String, Value>) {
    let version = settings.auth_api.api_version;
    let publish = Publish {
        version,
        flatten_extra: false,
    };
    for object in schemas::reachable(&RESPONSE, version) {
        let description = if std::ptr::eq(object, &RESPONSE) {
            format!("The Auth API {version} answer: the client card and its companies.")
        } else {
            format!("{} of the Auth API {version} card.", object.name)
        };
        out.insert(
            object.name.to_owned(),
            schemas::object(object, publish, &description),
        );
    }
    out.insert(ERROR.to_owned(), error_schema());
}

/// `{"errorCode", "errorText"}`; each code is listed with its status and
/// when it is answered.
fn error_schema() -> Value {
    let codes: Vec<Value> = ERRORS
        .iter()
        .map(|row| {
            json!({
                "const": row.code,
                "title": format!("HTTP {}", row.status.as_u16()),
                "description": row.when,
                "x-http-status": row.status.as_u16(),
            })
        })
        .collect();
    json!({
        "type": "object",
        "description": "Every Auth API answer other than 200. The text names what failed, \
                        never the token or a value from the CRM.",
        "required": ["errorCode", "errorText"],
        "properties": {
            "errorCode": {"type": "string", "oneOf": codes},
            "errorText": {"type": "string"},
            "error": {
                "description": "Only in the HTTP layer's own refusals (1400, 1414, 1431), \
                                which are answered before the path is known and so also \
                                carry the users API's shape.",
                "type": "object",
                "properties": {"message": {"type": "string"}},
            },
        },
    })
}

/// The security scheme `server.access` asks the chat server for, if any.
pub fn security_scheme(settings: &Settings) -> Option<Value> {
    let scheme = match settings.server.access.kind {
        AccessKind::None => return None,
        AccessKind::Bearer => "bearer",
        AccessKind::Basic => "basic",
    };
    Some(json!({
        "type": "http",
        "scheme": scheme,
        "description": "The shared secret of server.access, compared in constant time \
                        (401 with errorCode 1012 when missing or wrong).",
    }))
}

/// The path item of the lookup.
pub fn path_item(settings: &Settings) -> Value {
    let server = &settings.server;
    let mut token = json!({
        "type": "string",
        "minLength": 1,
    });
    if let Some(pattern) = &server.token_pattern {
        token["pattern"] = json!(pattern.as_str());
    }
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The client card.",
            "headers": {
                "x-authbridge-cache": {
                    "description": "Where the card came from: `hit`, `miss`, or \
                                    `stale; reason=crm-error|crm-slow|revalidating`.",
                    "schema": {"type": "string"},
                },
                "x-request-id": {"$ref": "#/components/headers/x-request-id"},
            },
            "content": {"application/json": {"schema": reference(RESPONSE.name)}},
        }),
    );
    for (status, rows) in by_status(Scope::Lookup) {
        responses.insert(status.to_string(), error_response(&rows));
    }
    let mut operation = json!({
        "operationId": "getClientByToken",
        "tags": ["Auth API"],
        "summary": "The client card for a token",
        "description": format!(
            "The chat server authorizes a customer by the token their app holds. The card \
             follows Auth API {} (`auth_api.api_version`): newer fields are never sent. \
             Answers are cached; every answer other than 200 has `errorCode` and `errorText`.",
            settings.auth_api.api_version
        ),
        "parameters": [{
            "name": "token",
            "in": "path",
            "required": true,
            "description": format!(
                "The client token, opaque. Percent-encode what is not a path character. \
                 At most {} bytes after percent-decoding, no control characters.",
                server.max_token_bytes
            ),
            "schema": token,
        }],
        "responses": responses,
    });
    if security_scheme(settings).is_some() {
        operation["security"] = json!([{ SCHEME: [] }]);
    }
    json!({ "get": operation })
}

/// The rows of `scope`, grouped by status.
fn by_status(scope: Scope) -> BTreeMap<u16, Vec<&'static ErrorRow>> {
    let mut out: BTreeMap<u16, Vec<&ErrorRow>> = BTreeMap::new();
    for row in ERRORS.iter().filter(|r| r.scope == scope) {
        out.entry(row.status.as_u16()).or_default().push(row);
    }
    out
}

/// One status's answer: its codes, each with when and an example.
fn error_response(rows: &[&ErrorRow]) -> Value {
    let description = rows
        .iter()
        .map(|r| format!("{}: {}", r.code, r.when))
        .collect::<Vec<_>>()
        .join(" ");
    let codes: Vec<&str> = rows.iter().map(|r| r.code).collect();
    let mut examples = Map::new();
    for row in rows {
        examples.insert(
            row.code.to_owned(),
            json!({"value": {"errorCode": row.code, "errorText": row.example}}),
        );
    }
    json!({
        "description": description,
        "headers": {"x-request-id": {"$ref": "#/components/headers/x-request-id"}},
        "content": {"application/json": {
            "schema": {
                "$ref": format!("#/components/schemas/{ERROR}"),
                "properties": {"errorCode": {"enum": codes}},
            },
            "examples": examples,
        }},
    })
}
