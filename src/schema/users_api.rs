//! The mobile-commerce platform's users API (IMSHOP.IO webhooks): the user
//! profile and the one-time-code answer, as typed structs and as descriptors
//! for the mapping compiler.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ApiVersion, FieldSchema, FieldType, ObjectSchema};

/// `{"user": {...}}`: Get User Data, Update, OTP confirm and login answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserResponse {
    pub user: User,
}

/// The user's profile. `extra` holds the mapping's own fields, sent beside the
/// named ones ("…and any other fields").
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    /// The login answer's page names the id `user_identifier`; sent there too.
    #[serde(rename = "user_identifier", skip_serializing_if = "Option::is_none")]
    pub user_identifier: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bonuses: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub units: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// `{"otp": {...}}`: the answer to a code request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpResponse {
    pub otp: Otp,
}

/// A one-time code was sent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Otp {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<i64>,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code_length: Option<i64>,
}

const fn f(name: &'static str, ty: FieldType, required: bool) -> FieldSchema {
    FieldSchema {
        name,
        ty,
        required,
        since: ApiVersion::V1_0,
    }
}

use FieldType::{Date, Integer, Object, String as Str, StringList, StringMap};

/// A mapping for user answers maps `[user]`.
pub static USER_RESPONSE: ObjectSchema = ObjectSchema {
    name: "UserResponse",
    fields: &[f("user", Object(&USER), true)],
};

/// [`User`]; `extra` is a table of name = source, sent as top-level fields.
pub static USER: ObjectSchema = ObjectSchema {
    name: "User",
    fields: &[
        f("id", Str, true),
        f("name", Str, false),
        f("phone", Str, false),
        f("email", Str, false),
        f("bonuses", Integer, false),
        f("units", Str, false),
        f("segments", StringList, false),
        f("age", Integer, false),
        f("gender", Str, false),
        f("cardNumber", Str, false),
        f("birthday", Date, false),
        f("extra", StringMap, false),
    ],
};

/// A mapping for code requests maps `[otp]`.
pub static OTP_RESPONSE: ObjectSchema = ObjectSchema {
    name: "OtpResponse",
    fields: &[f("otp", Object(&OTP), true)],
};

/// [`Otp`].
pub static OTP: ObjectSchema = ObjectSchema {
    name: "Otp",
    fields: &[
        f("timeout", Integer, false),
        f("attemptsLeft", Integer, false),
        f("message", Str, true),
        f("codeLength", Integer, false),
    ],
};
