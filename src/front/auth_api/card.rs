//! How the Auth API card is built from the CRM's JSON: the mapping, the
//! protocol-version adjustments (the deprecated `fields` map), and the typed
//! schema check before serialisation.

use serde_json::{Map, Value};

use crate::config::AuthApiSettings;
use crate::diagnostics::LoadError;
use crate::error::LookupError;
use crate::lookup::CardProducer;
use crate::mapping::{Mapping, Options};
use crate::schema::write::write_object;
use crate::schema::{ApiVersion, auth_api};

/// Builds Auth API cards.
#[derive(Debug)]
pub struct CardBuilder {
    mapping: Mapping,
    version: ApiVersion,
    derive_fields: bool,
}

impl CardBuilder {
    /// The compile options for `settings`: with `derive_fields` on an old
    /// version, `fieldList` is kept so the `fields` map can be derived from it.
    pub fn options(settings: &AuthApiSettings) -> Options {
        let keep = if settings.derive_fields && settings.api_version < ApiVersion::V1_1 {
            vec!["fieldList"]
        } else {
            Vec::new()
        };
        Options {
            version: settings.api_version,
            keep,
        }
    }

    /// Loads and compiles the configured mapping file.
    pub fn load(settings: &AuthApiSettings) -> Result<Self, LoadError> {
        let (file, text) = crate::mapping::read_file(&settings.mapping)?;
        Self::from_text(&file, &text, settings)
    }

    /// Compiles mapping text already read (see [`crate::mapping::read_file`]).
    pub fn from_text(
        file: &str,
        text: &str,
        settings: &AuthApiSettings,
    ) -> Result<Self, LoadError> {
        let mapping =
            Mapping::parse_with(file, text, &auth_api::RESPONSE, &Self::options(settings))?;
        Ok(Self::new(mapping, settings))
    }

    /// The same builder with `budget` for each application.
    pub fn with_budget(mut self, budget: crate::mapping::budget::Budget) -> Self {
        self.mapping = self.mapping.with_budget(budget);
        self
    }

    /// A builder around an already compiled mapping.
    pub fn new(mapping: Mapping, settings: &AuthApiSettings) -> Self {
        Self {
            mapping,
            version: settings.api_version,
            derive_fields: settings.derive_fields,
        }
    }

    /// The typed card for one CRM payload.
    pub fn card(&self, crm: &Value) -> Result<auth_api::Response, LookupError> {
        self.finish(self.mapping.apply(crm)?)
    }

    /// The compiled mapping (the integrator's tools explain it).
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The typed card from the mapping's output: the version's adjustments,
    /// then the schema check.
    pub fn finish(&self, mut card: Value) -> Result<auth_api::Response, LookupError> {
        if self.derive_fields
            && let Some(client) = card.get_mut("client").and_then(Value::as_object_mut)
        {
            derive_fields(client, self.version);
        }
        serde_json::from_value(card).map_err(|e| {
            LookupError::Internal(format!("mapped card does not fit the Auth API schema: {e}"))
        })
    }
}

/// Fills the deprecated `fields` map from `fieldList` (for chat servers that
/// only read `fields`), and drops `fieldList` where the version predates it.
fn derive_fields(client: &mut Map<String, Value>, version: ApiVersion) {
    let list = if version < ApiVersion::V1_1 {
        client.remove("fieldList")
    } else {
        client.get("fieldList").cloned()
    };
    let Some(Value::Array(items)) = list else {
        return;
    };
    if client.contains_key("fields") {
        return;
    }
    let mut fields = Map::new();
    for item in items {
        if let (Some(Value::String(name)), Some(value)) = (item.get("name"), item.get("value")) {
            fields.entry(name.clone()).or_insert_with(|| value.clone());
        }
    }
    if !fields.is_empty() {
        client.insert("fields".into(), Value::Object(fields));
    }
}

impl CardProducer for CardBuilder {
    /// The card's bytes, written from the mapped object in the descriptor's
    /// order and checked against it in the same pass (the typed structs'
    /// check, without building them).
    fn produce(&self, crm: &Value) -> Result<Vec<u8>, LookupError> {
        let mut out = Vec::with_capacity(1024);
        let written = if self.derive_fields {
            // The derived `fields` map is built on the JSON map.
            let mut card = self.mapping.apply(crm)?;
            if let Some(client) = card.get_mut("client").and_then(Value::as_object_mut) {
                derive_fields(client, self.version);
            }
            let Value::Object(card) = card else {
                return Err(LookupError::Internal(
                    "the mapped card is not an object".into(),
                ));
            };
            write_object(&card, &auth_api::RESPONSE, &mut out)
        } else {
            // The usual case: from the mapping's ordered output, no map built.
            self.mapping
                .apply_ordered(crm)?
                .write(&auth_api::RESPONSE, &mut out)
        };
        written.map_err(|e| {
            LookupError::Internal(format!("mapped card does not fit the Auth API schema: {e}"))
        })?;
        Ok(out)
    }

    fn uses_jq(&self) -> bool {
        self.mapping.uses_jq()
    }
}
