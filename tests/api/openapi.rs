//! The OpenAPI document: valid OpenAPI 3.1 (the official schema, vendored),
//! complete (every card field of the descriptors, every error code of the
//! README), true (every operation it lists is a route the server answers),
//! and the same bytes at `GET /openapi.json` as from `authbridge openapi`.

use std::collections::BTreeSet;
use std::time::Duration;

use authbridge::Settings;
use authbridge::config::AccessKind;
use authbridge::front::auth_api::{ERRORS, Scope};
use authbridge::schema::users_api::{ORDERS_RESPONSE, OTP_RESPONSE, USER_RESPONSE};
use authbridge::schema::{ApiVersion, FieldType, ObjectSchema, auth_api};
use serde_json::Value;

use crate::helpers::{
    eventually, file, get_at, get_json, http, lookup_at, readme_section, repo_path,
    start_with_admin, status_of, users_settings,
};
use crate::process::{Served, command, output_ok};

const KEY: &str = "platform-key";

/// Settings with everything the document can describe turned on: the users
/// API, the admin API, a shared secret for the Auth API. The returned files
/// hold the secrets and must outlive the app.
fn everything_on() -> (Settings, Vec<tempfile::NamedTempFile>) {
    let (mut s, key) = users_settings("http://127.0.0.1:9", KEY);
    let secret = file("chat-secret");
    let admin = file("admin-token");
    s.server.access.kind = AccessKind::Bearer;
    s.server.access.secret_file = Some(secret.path().to_owned());
    s.admin.listen = Some("127.0.0.1:0".parse().unwrap());
    s.admin.token_file = Some(admin.path().to_owned());
    (s, vec![key, secret, admin])
}

/// The vendored OpenAPI 3.1 schema as a draft 2020-12 validator (formats
/// checked too).
fn openapi_validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_path(
            "tests/fixtures/openapi/schema-3.1-2022-10-07.json",
        ))
        .unwrap(),
    )
    .unwrap();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the OpenAPI schema compiles")
}

/// Asserts `doc` is a valid OpenAPI 3.1 document whose Schema Objects are
/// valid JSON Schemas.
fn assert_valid(doc: &Value) {
    let validator = openapi_validator();
    // The validator does reject a broken document (no `info`, a response
    // that is not an object).
    let mut broken = doc.clone();
    broken.as_object_mut().unwrap().remove("info");
    assert!(
        !validator.is_valid(&broken),
        "a document without info passed"
    );
    let mut broken = doc.clone();
    broken["paths"]["/healthz"]["get"]["responses"]["200"] = "ok".into();
    assert!(!validator.is_valid(&broken), "a string response passed");
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not valid OpenAPI 3.1: {errors:#?}");
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    assert!(schemas.len() > 5, "{schemas:?}");
    for (name, schema) in schemas {
        if let Err(e) = jsonschema::meta::validate(schema) {
            panic!("components.schemas.{name} is not a valid JSON Schema: {e}");
        }
    }
}

fn document(adjust: impl FnOnce(&mut Settings)) -> Value {
    let (mut s, _files) = everything_on();
    adjust(&mut s);
    authbridge::openapi::document(&s)
}

#[tokio::test]
async fn served_document_is_valid_openapi_3_1_and_open_to_any_caller() {
    let (settings, _files) = everything_on();
    let (address, _admin) = start_with_admin(settings).await;

    // The Auth API asks for its secret; the document is open like the probes.
    assert_eq!(lookup_at(&address, "abc").await.status(), 401);
    let response = get_at(&address, "/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.unwrap();

    assert_eq!(doc["openapi"], "3.1.0");
    assert_valid(&doc);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["chatServer"]["scheme"], "bearer");
    assert_eq!(schemes["platformKey"]["scheme"], "bearer");
    assert_eq!(schemes["adminToken"]["scheme"], "bearer");
    let lookup_op = &doc["paths"]["/rest/chat/client/id/{token}"]["get"];
    assert_eq!(
        lookup_op["security"],
        serde_json::json!([{"chatServer": []}])
    );
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([])
    );
}

#[test]
fn every_version_and_configuration_gives_a_valid_document() {
    for version in [ApiVersion::V1_0, ApiVersion::V1_1, ApiVersion::V1_2] {
        assert_valid(&document(|s| s.auth_api.api_version = version));
    }
    let mut plain = Settings::default();
    plain.server.access.kind = AccessKind::Basic;
    plain.server.token_pattern = Some(regex::Regex::new("^[A-Za-z0-9_-]+$").unwrap());
    let doc = authbridge::openapi::document(&plain);
    assert_valid(&doc);
    // What this configuration does not serve is not described.
    let paths = doc["paths"].as_object().unwrap();
    assert!(!paths.contains_key("/users/get"), "{paths:?}");
    assert!(!paths.contains_key("/admin/stats"), "{paths:?}");
    assert_eq!(
        doc["components"]["securitySchemes"]["chatServer"]["scheme"],
        "basic"
    );
    let token = &paths["/rest/chat/client/id/{token}"]["get"]["parameters"][0]["schema"];
    assert_eq!(token["pattern"], "^[A-Za-z0-9_-]+$");
}

/// The fields of `object` the document publishes at `version`, by name.
fn published(doc: &Value, object: &ObjectSchema) -> BTreeSet<String> {
    doc["components"]["schemas"][object.name]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{} is not in the document", object.name))
        .keys()
        .cloned()
        .collect()
}

/// Every object reachable from `root` through the fields `version` has.
fn objects(root: &'static ObjectSchema, version: ApiVersion) -> Vec<&'static ObjectSchema> {
    let mut out: Vec<&'static ObjectSchema> = vec![];
    let mut queue = vec![root];
    while let Some(o) = queue.pop() {
        if out.iter().any(|seen| std::ptr::eq(*seen, o)) {
            continue;
        }
        out.push(o);
        for f in o.fields.iter().filter(|f| f.since <= version) {
            if let FieldType::Object(inner) | FieldType::List(inner) = f.ty {
                queue.push(inner);
            }
        }
    }
    out
}

#[test]
fn every_card_field_of_the_descriptors_is_in_the_document() {
    for version in [ApiVersion::V1_0, ApiVersion::V1_1, ApiVersion::V1_2] {
        let doc = document(|s| s.auth_api.api_version = version);
        let reached = objects(&auth_api::RESPONSE, version);
        for object in &reached {
            let expected: BTreeSet<String> = object
                .fields
                .iter()
                .filter(|f| f.since <= version)
                .map(|f| f.name.to_owned())
                .collect();
            assert_eq!(
                published(&doc, object),
                expected,
                "{} at Auth API {version}",
                object.name
            );
        }
        // An older chat server's document has no object it cannot receive.
        let has_contacts = reached.iter().any(|o| o.name == "Contacts");
        assert_eq!(has_contacts, version >= ApiVersion::V1_2);
        assert_eq!(
            doc["components"]["schemas"]
                .as_object()
                .unwrap()
                .contains_key("Contacts"),
            has_contacts,
            "{version}"
        );
    }
    let doc = document(|_| {});
    for root in [&USER_RESPONSE, &OTP_RESPONSE, &ORDERS_RESPONSE] {
        for object in objects(root, ApiVersion::V1_0) {
            let expected: BTreeSet<String> = object
                .fields
                .iter()
                // The mapping's own fields are sent beside the named ones.
                .filter(|f| f.name != "extra")
                .map(|f| f.name.to_owned())
                .collect();
            assert_eq!(published(&doc, object), expected, "{}", object.name);
        }
    }
    let user = &doc["components"]["schemas"]["User"];
    assert_eq!(user["additionalProperties"]["type"], "string", "{user}");
}

/// (HTTP status, errorCode) of every row of the README's error table.
fn readme_error_rows() -> BTreeSet<(u16, String)> {
    let section = readme_section("## Errors", "\n## ");
    let rows: BTreeSet<(u16, String)> = section
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let status = cells.get(1)?.parse().ok()?;
            let code = cells.get(2)?.trim_matches('`');
            Some((status, code.to_owned()))
        })
        .collect();
    assert!(
        rows.len() >= 15,
        "the README's error table was read: {rows:?}"
    );
    rows
}

#[test]
fn every_readme_error_code_is_in_the_document_under_its_status() {
    let doc = document(|_| {});
    let listed: BTreeSet<(u16, String)> =
        doc["components"]["schemas"]["AuthError"]["properties"]["errorCode"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["x-http-status"].as_u64().unwrap() as u16,
                    c["const"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
    let readme = readme_error_rows();
    assert_eq!(
        listed, readme,
        "the README's error table and the document's error codes differ"
    );
    // A lookup's answers list each of its codes under the code's status.
    let responses = &doc["paths"]["/rest/chat/client/id/{token}"]["get"]["responses"];
    for row in ERRORS.iter().filter(|r| r.scope == Scope::Lookup) {
        let status = row.status.as_u16().to_string();
        let codes = &responses[&status]["content"]["application/json"]["schema"]["properties"]["errorCode"]
            ["enum"];
        assert!(
            codes
                .as_array()
                .is_some_and(|c| c.contains(&row.code.into())),
            "{status} lacks {}: {codes}",
            row.code
        );
    }
}

/// Every (method, path) the document lists, with the operation's tag.
fn operations(doc: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(tag) = op["tags"][0].as_str() {
                out.push((method.clone(), path.clone(), tag.to_owned()));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_operation_in_the_document_is_a_route_the_server_answers() {
    let (settings, _files) = everything_on();
    let (address, admin) = start_with_admin(settings).await;
    let admin = admin.unwrap();
    let doc = get_json(&format!("{address}/openapi.json")).await;
    let operations = operations(&doc);
    assert!(operations.len() >= 15, "{operations:?}");
    eventually("ready", Duration::from_secs(10), || async {
        status_of(http().get(format!("{address}/readyz"))).await == 200
    })
    .await;
    for (method, path, tag) in operations {
        let base = if tag == "Admin" { &admin } else { &address };
        let path = path.replace("{token}", "abc");
        let method: reqwest::Method = method.to_uppercase().parse().unwrap();
        let response = http()
            .request(method.clone(), format!("{base}{path}"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        // Without credentials the guarded routes refuse (401), the open ones
        // answer; none is unknown or has another method.
        let expected: &[u16] = match tag.as_str() {
            "Auth API" | "Users API" | "Admin" => &[401],
            _ => &[200],
        };
        assert!(
            expected.contains(&status),
            "{method} {path} ({tag}): {status} {body}"
        );
    }
}

#[tokio::test]
async fn get_openapi_json_equals_the_cli_output_for_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), KEY).unwrap();
    std::fs::write(dir.path().join("secret"), "chat-secret").unwrap();
    let mut users = String::new();
    for (op, name) in [
        ("get", "get"),
        ("update", "update"),
        ("otp_request", "otp-request"),
        ("otp_confirm", "otp-confirm"),
        ("login", "login"),
        ("orders", "orders"),
    ] {
        let mapping = repo_path(&format!("mappings/users/generic-bank-{name}.toml"));
        users.push_str(&format!(
            "[users_api.{op}]\npath = \"/shop/{name}\"\nmapping = \"{}\"\n",
            mapping.display()
        ));
    }
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{{port}}\"\n\
         [server.access]\nkind = \"basic\"\nusername = \"chat\"\nsecret_file = \"{{dir}}/secret\"\n\
         [upstream]\nbase_url = \"http://127.0.0.1:9\"\n\
         [auth_api]\nmapping = \"mapping.toml\"\napi_version = \"1.1\"\n\
         [users_api]\nenabled = true\napi_key_file = \"{{dir}}/key\"\n{users}"
    );
    std::fs::copy(
        repo_path("mappings/generic-bank.toml"),
        dir.path().join("mapping.toml"),
    )
    .unwrap();
    let served = Served::start_in(dir, &config);
    let body = get_at(&served.base, "/openapi.json")
        .await
        .bytes()
        .await
        .unwrap();

    let printed = output_ok(
        command()
            .current_dir(served.dir.path())
            .args(["openapi", "--config"])
            .arg(served.path("config.toml")),
    );
    assert!(
        body == printed.stdout,
        "GET /openapi.json and the CLI differ"
    );

    // The configuration is what the document says: its paths, its version,
    // its access scheme.
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert!(doc["paths"]["/shop/orders"]["post"].is_object(), "{doc}");
    assert!(doc["paths"]["/shop/update"]["patch"].is_object(), "{doc}");
    let client = doc["components"]["schemas"]["Client"]["properties"]
        .as_object()
        .unwrap();
    assert!(client.contains_key("fieldList") && !client.contains_key("contacts"));
    assert_eq!(
        doc["components"]["securitySchemes"]["chatServer"]["scheme"],
        "basic"
    );

    // --api-version overrides the configured one.
    let newer = command()
        .current_dir(served.dir.path())
        .args(["openapi", "--api-version", "1.2", "--config"])
        .arg(served.path("config.toml"))
        .output()
        .unwrap();
    let newer: Value = serde_json::from_slice(&newer.stdout).unwrap();
    assert!(newer["components"]["schemas"]["Client"]["properties"]["contacts"].is_object());
    let wrong = command()
        .args(["openapi", "--api-version", "2.0"])
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(1));
}
