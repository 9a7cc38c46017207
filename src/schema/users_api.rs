//! The mobile-commerce platform's users API (IMSHOP.IO webhooks): the user
//! profile, the one-time-code answer and the order history, as typed structs
//! and as descriptors for the mapping compiler.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_with::skip_serializing_none;

use super::{ApiVersion, FieldSchema, FieldType, ObjectSchema};

/// `{"user": {...}}`: Get User Data, Update, OTP confirm and login answers.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserResponse {
    pub user: User,
}

/// The user's profile. `extra` holds the mapping's own fields, sent beside the
/// named ones ("…and any other fields").
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// The user's id in the CRM.
    pub id: String,
    /// The login answer's page names the id `user_identifier`; sent there too.
    #[serde(rename = "user_identifier")]
    pub user_identifier: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Phone number.
    pub phone: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Loyalty bonus balance.
    pub bonuses: Option<i64>,
    /// What the bonuses are called in the app (e.g. "points").
    pub units: Option<String>,
    /// Marketing segments the user is in.
    pub segments: Option<Vec<String>>,
    /// Age in years.
    pub age: Option<i64>,
    /// Gender.
    pub gender: Option<String>,
    /// Loyalty card number.
    pub card_number: Option<String>,
    /// Date of birth, `YYYY-MM-DD`.
    pub birthday: Option<String>,
    #[serde(flatten, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, String>,
}

/// `{"otp": {...}}`: the answer to a code request.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtpResponse {
    pub otp: Otp,
}

/// A one-time code was sent.
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Otp {
    /// Seconds until a new code may be requested (the platform assumes 120).
    pub timeout: Option<i64>,
    /// Attempts left (unlimited when absent).
    pub attempts_left: Option<i64>,
    /// The text the app shows.
    pub message: String,
    /// Digits in the code (the platform assumes 4).
    pub code_length: Option<i64>,
}

/// `{"orders": [...]}`: the order history. `orders` is always sent, `[]`
/// included: the platform reads an answer without it as "no history".
#[skip_serializing_none]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersResponse {
    pub orders: Vec<Order>,
}

/// One order. `createdOn` is Unix seconds as a string of digits, as the
/// platform's example sends it; it sorts the merged history.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Order {
    pub id: String,
    pub created_on: String,
    pub status: String,
    pub price: serde_json::Number,
    pub tracking_url: Option<String>,
    pub items: Vec<OrderItem>,
}

/// One line of an order.
#[skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderItem {
    pub private_id: String,
    pub configuration_id: Option<String>,
    pub name: String,
    /// Per unit.
    pub price: Option<serde_json::Number>,
    pub quantity: serde_json::Number,
    /// For the whole line.
    pub discount: Option<serde_json::Number>,
    pub subtotal: serde_json::Number,
}

const fn f(name: &'static str, ty: FieldType, required: bool) -> FieldSchema {
    FieldSchema {
        name,
        ty,
        required,
        since: ApiVersion::V1_0,
    }
}

use FieldType::{
    Date, Integer, List, Number, Object, String as Str, StringList, StringMap, Timestamp,
};

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

/// A mapping for the order history maps `orders`, a required list: an empty
/// CRM array gives `[]`, an absent one fails (see the mapping reference).
pub static ORDERS_RESPONSE: ObjectSchema = ObjectSchema {
    name: "OrdersResponse",
    fields: &[f("orders", List(&ORDER), true)],
};

/// [`Order`]; `items` is required too and may be empty.
pub static ORDER: ObjectSchema = ObjectSchema {
    name: "Order",
    fields: &[
        f("id", Str, true),
        f("createdOn", Timestamp, true),
        f("status", Str, true),
        f("price", Number, true),
        f("trackingUrl", Str, false),
        f("items", List(&ORDER_ITEM), true),
    ],
};

/// [`OrderItem`]. `quantity` is a number: goods sold by weight have fractions.
pub static ORDER_ITEM: ObjectSchema = ObjectSchema {
    name: "OrderItem",
    fields: &[
        f("privateId", Str, true),
        f("configurationId", Str, false),
        f("name", Str, true),
        f("price", Number, false),
        f("quantity", Number, true),
        f("discount", Number, false),
        f("subtotal", Number, true),
    ],
};
