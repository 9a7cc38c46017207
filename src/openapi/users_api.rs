//! The users API in the document: one path per configured call, its request
//! body, its answer (from the users descriptors) and every error status of
//! the front's status table, all in the platform's `{"error"}` shape.

use serde_json::{Map, Value, json};

use super::schemas::{self, Publish, reference};
use crate::config::{UsersApiSettings, UsersOperation};
use crate::front::users_api::errors::STATUSES;
use crate::schema::ApiVersion;
use crate::schema::users_api::{ORDERS_RESPONSE, OTP_RESPONSE, USER, USER_RESPONSE};

/// The security scheme of the platform's key.
pub const SCHEME: &str = "platformKey";
/// The error body's component.
pub const ERROR: &str = "UsersError";
/// The login answer: a user with `user_identifier` beside `id`.
const LOGIN_RESPONSE: &str = "LoginUserResponse";

/// One call of the front, as the platform sees it.
pub struct Call {
    pub operation_id: &'static str,
    pub method: &'static str,
    pub summary: &'static str,
    /// Body fields the front refuses the call without (400).
    pub required: &'static [&'static str],
    /// Body fields passed on to the CRM when sent.
    pub optional: &'static [&'static str],
    /// The component of its 200 answer.
    pub answer: &'static str,
    pub description: &'static str,
}

/// The calls in the order of `[users_api]`, each with its configured path.
pub fn calls(s: &UsersApiSettings) -> [(&UsersOperation, Call); 6] {
    let user = USER_RESPONSE.name;
    [
        (
            &s.get,
            Call {
                operation_id: "getUserData",
                method: "post",
                summary: "Get User Data",
                required: &["userIdentifier"],
                optional: &[],
                answer: user,
                description: "The user's profile, cached (users_api.found_ttl_secs). A user the \
                              CRM does not know yet is answered with the id alone.",
            },
        ),
        (
            &s.update,
            Call {
                operation_id: "updateUserData",
                method: "patch",
                summary: "Update User Data",
                required: &["userIdentifier"],
                optional: &["name", "phone", "email"],
                answer: user,
                description: "Passes the fields sent to the CRM and answers the full profile \
                              after the update; drops the cached profile.",
            },
        ),
        (
            &s.otp_request,
            Call {
                operation_id: "requestOtp",
                method: "post",
                summary: "OTP: request a code",
                required: &["userIdentifier"],
                optional: &[],
                answer: OTP_RESPONSE.name,
                description: "Asks the CRM to send a one-time code; never cached.",
            },
        ),
        (
            &s.otp_confirm,
            Call {
                operation_id: "confirmOtp",
                method: "post",
                summary: "OTP: confirm the code",
                required: &["userIdentifier", "otp"],
                optional: &[],
                answer: user,
                description: "The user when the CRM accepts the code; a wrong code always \
                              answers 401 with `error`. Never cached.",
            },
        ),
        (
            &s.login,
            Call {
                operation_id: "login",
                method: "post",
                summary: "Login + password",
                required: &["login", "password"],
                optional: &[],
                answer: LOGIN_RESPONSE,
                description: "The user when the CRM accepts the login and password; a wrong \
                              pair always answers 401 with `error`. Never cached.",
            },
        ),
        (
            &s.orders,
            Call {
                operation_id: "getOrderHistory",
                method: "post",
                summary: "Order history",
                required: &["userIdentifier"],
                optional: &[],
                answer: ORDERS_RESPONSE.name,
                description: "The user's orders, cached briefly (users_api.orders_ttl_secs). \
                              `[]` only when the CRM says the user has none; an unknown \
                              user is 404 with `error`, never an empty list.",
            },
        ),
    ]
}

/// The answers' objects, the login answer and the error body.
pub fn components(out: &mut Map<String, Value>) {
    let publish = Publish {
        version: ApiVersion::V1_0,
        flatten_extra: true,
    };
    for root in [&USER_RESPONSE, &OTP_RESPONSE, &ORDERS_RESPONSE] {
        for object in schemas::reachable(root, publish.version) {
            let description = format!("{} of the users API.", object.name);
            out.insert(
                object.name.to_owned(),
                schemas::object(object, publish, &description),
            );
        }
    }
    out.insert(
        LOGIN_RESPONSE.to_owned(),
        json!({
            "type": "object",
            "description": "The login answer: the user, with the id also as \
                            `user_identifier` (the platform's login page names it so).",
            "required": ["user"],
            "properties": {"user": {
                "$ref": format!("#/components/schemas/{}", USER.name),
                "properties": {"user_identifier": {"type": "string"}},
            }},
            "additionalProperties": false,
        }),
    );
    out.insert(
        ERROR.to_owned(),
        json!({
            "type": "object",
            "description": "Every answer of this front other than 2xx. The platform reads \
                            any answer without `error` as success.",
            "required": ["error"],
            "properties": {"error": {
                "type": "object",
                "required": ["message"],
                "properties": {"message": {
                    "type": "string",
                    "description": "A text for the user (users_api.messages).",
                }},
            }},
        }),
    );
}

/// The platform key's scheme.
pub fn security_scheme() -> Value {
    json!({
        "type": "http",
        "scheme": "bearer",
        "description": "The platform's API key (users_api.api_key_env/_file), as \
                        `Authorization: Bearer`, or as `key` in the JSON body instead.",
    })
}

/// The path items of every call, by configured path.
pub fn paths(s: &UsersApiSettings, out: &mut Map<String, Value>) {
    for (op, call) in calls(s) {
        let item = out
            .entry(op.path.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object");
        item.insert(call.method.to_owned(), operation(&call, s));
    }
}

fn operation(call: &Call, s: &UsersApiSettings) -> Value {
    let mut properties = Map::new();
    for name in call.required.iter().chain(call.optional) {
        let mut field = json!({"type": "string"});
        if call.required.first() == Some(name) {
            field["minLength"] = json!(1);
            field["maxLength"] = json!(s.max_identifier_bytes);
        }
        properties.insert((*name).to_owned(), field);
    }
    properties.insert(
        "key".into(),
        json!({"type": "string", "description": "The platform's key, when not sent as \
                                                 Authorization: Bearer."}),
    );
    let mut responses = Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": "The answer.",
            "headers": {"x-request-id": {"$ref": "#/components/headers/x-request-id"}},
            "content": {"application/json": {"schema": reference(call.answer)}},
        }),
    );
    for row in STATUSES {
        responses.insert(
            row.status.as_u16().to_string(),
            json!({
                "description": row.when,
                "headers": {"x-request-id": {"$ref": "#/components/headers/x-request-id"}},
                "content": {"application/json": {"schema": reference(ERROR)}},
            }),
        );
    }
    json!({
        "operationId": call.operation_id,
        "tags": ["Users API"],
        "summary": call.summary,
        "description": call.description,
        "security": [{ SCHEME: [] }, {}],
        "requestBody": {
            "required": true,
            "description": format!(
                "JSON, at most {} bytes. A Content-Type that is not JSON is refused (415); \
                 none at all is read as JSON.",
                s.max_body_bytes
            ),
            "content": {"application/json": {"schema": {
                "type": "object",
                "required": call.required,
                "properties": properties,
            }}},
        },
        "responses": responses,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;
    use serde_json::{Map, Value};

    use super::*;
    use crate::front::users_api::precheck;

    /// The front's own checks (the function its extractor and handlers
    /// run) refuse a body without any one documented required field and
    /// admit one with all of them.
    #[test]
    fn documented_required_fields_are_the_ones_the_front_requires() {
        let settings = UsersApiSettings::default();
        // `precheck` numbers the calls: get, update, OTP request, OTP
        // confirm, login; the order history is checked as get is.
        let index = |id: &str| match id {
            "getUserData" | "getOrderHistory" => 0,
            "updateUserData" => 1,
            "requestOtp" => 2,
            "confirmOtp" => 3,
            "login" => 4,
            other => panic!("unknown call {other}"),
        };
        let body = |fields: &[&str]| {
            let mut map: Map<String, Value> = fields
                .iter()
                .map(|f| ((*f).to_owned(), Value::String("71234567890".into())))
                .collect();
            map.insert("key".into(), "k".into());
            serde_json::to_vec(&map).unwrap()
        };
        let check = |call: usize, fields: &[&str]| {
            precheck("k", 64, call, &HeaderMap::new(), &body(fields))
        };
        for (_, call) in calls(&settings) {
            let i = index(call.operation_id);
            assert!(check(i, call.required).is_ok(), "{}", call.operation_id);
            for missing in call.required {
                let rest: Vec<&str> = call
                    .required
                    .iter()
                    .copied()
                    .filter(|f| f != missing)
                    .collect();
                assert_eq!(
                    check(i, &rest),
                    Err(axum::http::StatusCode::BAD_REQUEST),
                    "{} without {missing}",
                    call.operation_id
                );
            }
        }
    }
}
