//! Declarative mappings: a TOML file says how each field of the caller's card
//! is taken from the CRM's JSON. It is compiled once, validated against the
//! target schema before the server takes traffic, and applied per lookup.
//!
//! The language is documented in `docs/mapping.md`.

mod coerce;
mod compile;
mod condition;
mod date;
mod error;
mod jq;
mod path;
mod program;
mod rule;
mod template;

use std::path::Path as FsPath;

use serde_json::Value;

pub use compile::Options;
pub use error::{ApplyError, Diagnostic, LoadError};

use crate::schema::{ApiVersion, ObjectSchema};
use program::ObjectProgram;

/// A compiled, validated mapping for one target schema.
#[derive(Debug)]
pub struct Mapping {
    file: String,
    program: ObjectProgram,
}

impl Mapping {
    /// Compiles mapping text; `file` names it in diagnostics.
    pub fn parse(
        file: &str,
        text: &str,
        schema: &'static ObjectSchema,
        version: ApiVersion,
    ) -> Result<Self, LoadError> {
        Self::parse_with(
            file,
            text,
            schema,
            &Options {
                version,
                keep: Vec::new(),
            },
        )
    }

    /// Compiles mapping text with explicit options.
    pub fn parse_with(
        file: &str,
        text: &str,
        schema: &'static ObjectSchema,
        options: &Options,
    ) -> Result<Self, LoadError> {
        let program = compile::compile(file, text, schema, options)?;
        Ok(Self {
            file: file.to_owned(),
            program,
        })
    }

    /// Reads and compiles a mapping file.
    pub fn load(
        path: &FsPath,
        schema: &'static ObjectSchema,
        version: ApiVersion,
    ) -> Result<Self, LoadError> {
        Self::load_with(
            path,
            schema,
            &Options {
                version,
                keep: Vec::new(),
            },
        )
    }

    /// Reads and compiles a mapping file with explicit options.
    pub fn load_with(
        path: &FsPath,
        schema: &'static ObjectSchema,
        options: &Options,
    ) -> Result<Self, LoadError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| LoadError {
            diagnostics: vec![Diagnostic {
                file: file.clone(),
                line: 1,
                column: 1,
                field: String::new(),
                message: format!("cannot read the mapping file: {e}"),
            }],
        })?;
        Self::parse_with(&file, &text, schema, options)
    }

    /// The file the mapping came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Produces the card (a JSON object in the target schema) from a CRM payload.
    pub fn apply(&self, crm: &Value) -> Result<Value, ApplyError> {
        self.program.apply_root(crm).map(Value::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::auth_api::RESPONSE;
    use serde_json::json;

    const BASIC: &str = r#"
[client]
id = "$.id"
name = "$.fullName"
surname = "$.last"
firstName = "$.first"
patronymic = { path = "$.middle", default = "" }
type = { const = "0" }
enabled = { path = ["$.active", "$.enabled"], default = true }
birthdate = "$.born"

[client.branch]
id = "$.branch.code"

[companyList]
each = "$.orgs[*]"
item = { id = "@.id", name = "@.title", resident = "@.resident" }
"#;

    fn map(text: &str, input: Value) -> Result<Value, ApplyError> {
        Mapping::parse("t.toml", text, &RESPONSE, ApiVersion::V1_2)
            .unwrap()
            .apply(&input)
    }

    fn load_err(text: &str) -> String {
        Mapping::parse("t.toml", text, &RESPONSE, ApiVersion::V1_2)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn maps_sources_constants_defaults_and_arrays() {
        let card = map(
            BASIC,
            json!({"id": 7, "fullName": "A B", "last": "A", "first": "B",
                   "enabled": "N", "born": "1990-01-02", "branch": {"code": "12"},
                   "orgs": [{"id": "5", "title": "X", "resident": "Y"}, {"id": 6}]}),
        )
        .unwrap();
        assert_eq!(
            card,
            json!({
                "client": {"id": "7", "name": "A B", "surname": "A", "firstName": "B",
                           "patronymic": "", "type": "0", "enabled": false,
                           "birthdate": "1990-01-02", "branch": {"id": 12}},
                "companyList": [{"id": 5, "name": "X", "resident": true}, {"id": 6}]
            })
        );
    }

    #[test]
    fn missing_required_value_names_the_field() {
        let err = map(BASIC, json!({"id": 7, "fullName": "A", "first": "B"})).unwrap_err();
        assert_eq!(err.field, "client.surname");
        let err = map(
            BASIC,
            json!({"id": 7, "fullName": "A", "last": "A", "first": "B", "orgs": [{"id": 1}, {"title": "x"}]}),
        )
        .unwrap_err();
        assert_eq!(err.field, "companyList[1].id");
    }

    #[test]
    fn type_errors_at_apply_name_the_field() {
        let err = map(
            BASIC,
            json!({"id": 7, "fullName": "A", "last": "A", "first": "B", "born": "31.12.1990"}),
        )
        .unwrap_err();
        assert_eq!(err.field, "client.birthdate");
    }

    #[test]
    fn unknown_fields_are_rejected_with_a_suggestion_and_position() {
        let err = load_err(&BASIC.replace("firstName =", "firstname ="));
        assert!(err.contains("t.toml:6:1: client.firstname: unknown field `firstname` in Client; did you mean `firstName`?"), "{err}");
        assert!(
            err.contains("required Client field `firstName` is not mapped"),
            "{err}"
        );
    }

    #[test]
    fn bad_paths_and_constants_are_load_errors() {
        let err = load_err(&BASIC.replace(r#"id = "$.id""#, r#"id = "$.id[""#));
        assert!(
            err.contains("t.toml:3:6: client.id: invalid JSONPath"),
            "{err}"
        );
        let err = load_err(&BASIC.replace(r#"id = "$.branch.code""#, r#"id = { const = "main" }"#));
        assert!(
            err.contains(
                "client.branch.id: this constant is a string, but the field takes integer"
            ),
            "{err}"
        );
        let err = load_err(&BASIC.replace(r#"id = "$.id""#, r#"id = "@.id""#));
        assert!(err.contains("not inside a list's `item`"), "{err}");
        let err = load_err(&BASIC.replace(r#"id = "$.id""#, r#"id = "client.id""#));
        assert!(
            err.contains(r#"for a constant string write { const = "client.id" }"#),
            "{err}"
        );
    }

    #[test]
    fn older_api_versions_drop_newer_fields() {
        let text = format!("{BASIC}\n[client.contacts]\nphone = \"$.phone\"\n");
        let input = json!({"id": 1, "fullName": "A", "last": "A", "first": "B", "phone": "+7"});
        let v12 = Mapping::parse("t", &text, &RESPONSE, ApiVersion::V1_2).unwrap();
        assert_eq!(
            v12.apply(&input).unwrap()["client"]["contacts"]["phone"],
            "+7"
        );
        let v10 = Mapping::parse("t", &text, &RESPONSE, ApiVersion::V1_0).unwrap();
        assert!(
            v10.apply(&input).unwrap()["client"]
                .get("contacts")
                .is_none()
        );
    }

    #[test]
    fn invalid_toml_reports_position() {
        let err = load_err("[client\nid = 1");
        assert!(err.starts_with("t.toml:1:"), "{err}");
    }
}
