//! How the users API's answers are built from the CRM's JSON: a user profile
//! (`[user]` mappings), a code-request answer (`[otp]` mappings) or an order
//! history (`orders` mappings), with the
//! mapping's `extra` fields sent beside the named ones, checked against the
//! typed schema before serialisation.

use std::path::Path;

use serde_json::{Map, Value};

use crate::diagnostics::LoadError;
use crate::error::LookupError;
use crate::lookup::CardProducer;
use crate::mapping::{Mapping, Options};
use crate::schema::users_api::{
    ORDERS_RESPONSE, OTP_RESPONSE, OrdersResponse, OtpResponse, USER, USER_RESPONSE, UserResponse,
};
use crate::schema::{ApiVersion, ObjectSchema};

/// What an operation answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"user": {...}}`.
    User,
    /// `{"user": {...}}` with `user_identifier` beside `id` (the login page
    /// names the id so).
    LoginUser,
    /// `{"otp": {...}}`.
    Otp,
    /// `{"orders": [...]}`.
    Orders,
}

impl Shape {
    fn schema(self) -> &'static ObjectSchema {
        match self {
            Shape::User | Shape::LoginUser => &USER_RESPONSE,
            Shape::Otp => &OTP_RESPONSE,
            Shape::Orders => &ORDERS_RESPONSE,
        }
    }
}

/// Builds one operation's answers.
#[derive(Debug)]
pub struct UsersCardBuilder {
    mapping: Mapping,
    shape: Shape,
}

impl UsersCardBuilder {
    /// Loads and compiles an operation's mapping file.
    pub fn load(file: &Path, shape: Shape) -> Result<Self, LoadError> {
        let (file, text) = crate::mapping::read_file(file)?;
        Self::from_text(&file, &text, shape)
    }

    /// Compiles mapping text already read (see [`crate::mapping::read_file`]).
    pub fn from_text(file: &str, text: &str, shape: Shape) -> Result<Self, LoadError> {
        let options = Options {
            version: ApiVersion::V1_2,
            keep: Vec::new(),
        };
        Ok(Self {
            mapping: Mapping::parse_with(file, text, shape.schema(), &options)?,
            shape,
        })
    }

    /// The same builder with `budget` for each application.
    pub fn with_budget(mut self, budget: crate::mapping::budget::Budget) -> Self {
        self.mapping = self.mapping.with_budget(budget);
        self
    }

    /// The answer as JSON, checked against the typed schema.
    pub fn answer(&self, crm: &Value) -> Result<Value, LookupError> {
        self.finish(self.mapping.apply(crm)?)
    }

    /// The compiled mapping (the integrator's tools explain it).
    pub fn mapping(&self) -> &Mapping {
        &self.mapping
    }

    /// The answer from the mapping's output, checked against the typed schema.
    pub fn finish(&self, mut card: Value) -> Result<Value, LookupError> {
        let internal = |e: serde_json::Error| {
            LookupError::Internal(format!("mapped answer does not fit the schema: {e}"))
        };
        match self.shape {
            Shape::Otp => {
                let typed: OtpResponse = serde_json::from_value(card).map_err(internal)?;
                serde_json::to_value(typed).map_err(internal)
            }
            Shape::Orders => {
                let typed: OrdersResponse = serde_json::from_value(card).map_err(internal)?;
                serde_json::to_value(typed).map_err(internal)
            }
            Shape::User | Shape::LoginUser => {
                if let Some(user) = card.get_mut("user").and_then(Value::as_object_mut) {
                    flatten_extra(user);
                    if self.shape == Shape::LoginUser
                        && let Some(id) = user.get("id").cloned()
                    {
                        user.insert("user_identifier".into(), id);
                    }
                }
                let typed: UserResponse = serde_json::from_value(card).map_err(internal)?;
                serde_json::to_value(typed).map_err(internal)
            }
        }
    }
}

/// Moves the mapping's `extra` fields beside the named ones. An extra field
/// named like a schema field is dropped: it could not be typed safely.
fn flatten_extra(user: &mut Map<String, Value>) {
    if let Some(Value::Object(extra)) = user.remove("extra") {
        for (k, v) in extra {
            if USER.field(&k).is_none() && k != "user_identifier" {
                user.insert(k, v);
            }
        }
    }
}

impl CardProducer for UsersCardBuilder {
    fn produce(&self, crm: &Value) -> Result<Vec<u8>, LookupError> {
        serde_json::to_vec(&self.answer(crm)?).map_err(|e| LookupError::Internal(e.to_string()))
    }

    fn uses_jq(&self) -> bool {
        self.mapping.uses_jq()
    }
}
