//! The mobile-commerce platform's users API (IMSHOP.IO webhooks): the user
//! profile, the one-time-code answer and the order history, as typed structs
//! and as descriptors for the mapping compiler.

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

/// `{"orders": [...]}`: the order history. `orders` is always sent, `[]`
/// included: the platform reads an answer without it as "no history".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersResponse {
    pub orders: Vec<Order>,
}

/// One order. `createdOn` is Unix seconds as a string of digits, as the
/// platform's example sends it; it sorts the merged history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Order {
    pub id: String,
    pub created_on: String,
    pub status: String,
    pub price: serde_json::Number,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracking_url: Option<String>,
    pub items: Vec<OrderItem>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrderItem {
    pub private_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub configuration_id: Option<String>,
    pub name: String,
    /// Per unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<serde_json::Number>,
    pub quantity: serde_json::Number,
    /// For the whole line.
    #[serde(skip_serializing_if = "Option::is_none")]
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
