//! `[auth_api]`: the chat server's front: mapping file and protocol version.

use std::path::PathBuf;

use serde::Deserialize;

use crate::schema::ApiVersion;

/// The chat Auth API front.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthApiSettings {
    /// The mapping file that turns CRM JSON into the card.
    pub mapping: PathBuf,
    /// The Auth API version the chat server speaks; newer fields are dropped.
    pub api_version: ApiVersion,
    /// Also send the deprecated `fields` map, derived from `fieldList`.
    pub derive_fields: bool,
}

impl Default for AuthApiSettings {
    fn default() -> Self {
        Self {
            mapping: PathBuf::from("mappings/generic-bank.toml"),
            api_version: ApiVersion::V1_2,
            derive_fields: false,
        }
    }
}
