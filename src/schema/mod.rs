//! The callers' output schemas: typed structs for serialisation plus a static
//! descriptor of each object (field names, JSON types, required flags, protocol
//! version) that the mapping compiler validates against.
//!
//! Keeping the descriptor as data lets one mapping engine serve any front: the
//! compiler only needs to know which fields exist and what JSON type each takes.

pub mod auth_api;
pub mod contract;
pub mod reference;
pub mod users_api;
pub mod write;

use std::fmt;

/// The JSON type a target field takes, as the caller's spec defines it.
#[derive(Debug, Clone, Copy)]
pub enum FieldType {
    /// A JSON string.
    String,
    /// A JSON integer (64-bit).
    Integer,
    /// Any JSON number, fractions included (a price).
    Number,
    /// A JSON boolean.
    Boolean,
    /// A JSON string holding a calendar date `YYYY-MM-DD`.
    Date,
    /// A JSON string of Unix seconds (`"1595872396"`), the form the commerce
    /// platform's order history takes.
    Timestamp,
    /// A nested object.
    Object(&'static ObjectSchema),
    /// A list of objects.
    List(&'static ObjectSchema),
    /// A map of string to string (the deprecated `fields` of the Auth API).
    StringMap,
    /// A list of strings (the commerce platform's `segments`).
    StringList,
}

impl FieldType {
    /// A short human name used in error messages.
    pub fn describe(&self) -> String {
        match self {
            FieldType::String => "string".into(),
            FieldType::Integer => "integer".into(),
            FieldType::Number => "number".into(),
            FieldType::Boolean => "boolean".into(),
            FieldType::Date => "date (YYYY-MM-DD)".into(),
            FieldType::Timestamp => "Unix timestamp (seconds, as a string)".into(),
            FieldType::Object(o) => format!("object {}", o.name),
            FieldType::List(o) => format!("list of {}", o.name),
            FieldType::StringMap => "map of string to string".into(),
            FieldType::StringList => "list of strings".into(),
        }
    }

    /// True for types one field rule produces (scalars, and lists of strings).
    pub fn is_scalar(&self) -> bool {
        matches!(
            self,
            FieldType::String
                | FieldType::Integer
                | FieldType::Number
                | FieldType::Boolean
                | FieldType::Date
                | FieldType::Timestamp
                | FieldType::StringList
        )
    }
}

/// One field of a target object.
#[derive(Debug)]
pub struct FieldSchema {
    /// The JSON name, exactly as the caller expects it.
    pub name: &'static str,
    /// Its JSON type.
    pub ty: FieldType,
    /// Whether a valid object must carry it.
    pub required: bool,
    /// The protocol version that introduced it.
    pub since: ApiVersion,
}

/// A target object: its name and fields in the order they are emitted.
#[derive(Debug)]
pub struct ObjectSchema {
    /// The type name used in messages (`Client`, `Company`, ...).
    pub name: &'static str,
    /// The fields, in output order.
    pub fields: &'static [FieldSchema],
}

impl ObjectSchema {
    /// The field called `name`, if the object has one.
    pub fn field(&self, name: &str) -> Option<&'static FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// The field name closest to `name`, for "did you mean" hints.
    pub fn nearest(&self, name: &str) -> Option<&'static str> {
        nearest(name, self.fields.iter().map(|f| f.name))
    }
}

/// The candidate closest to `name` by Jaro-Winkler similarity, if any is close.
pub fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// A version of the chat Auth API. Older chat servers do not know newer fields,
/// so the compiler drops them when an older version is configured.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Deserialize,
    serde::Serialize,
)]
pub enum ApiVersion {
    /// The base set.
    #[serde(rename = "1.0")]
    V1_0,
    /// Adds `shortName`, `fieldList`, `Field`.
    #[serde(rename = "1.1")]
    V1_1,
    /// Adds `contacts`, `secretWord`, `group`.
    #[default]
    #[serde(rename = "1.2")]
    V1_2,
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ApiVersion::V1_0 => "1.0",
            ApiVersion::V1_1 => "1.1",
            ApiVersion::V1_2 => "1.2",
        })
    }
}
