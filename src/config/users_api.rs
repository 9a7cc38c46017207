//! `[users_api]`: the second front, its calls, caches and messages; their
//! typed values and their own checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::de;
use super::validate::Checks;

/// The second front: the mobile-commerce platform's users webhooks.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersApiSettings {
    /// Mount the users API (off by default).
    pub enabled: bool,
    /// The platform's API key (`key` in the body or `Authorization: Bearer`).
    pub api_key_env: Option<String>,
    pub api_key_file: Option<PathBuf>,
    /// Longest accepted `userIdentifier` / `login`, in bytes.
    pub max_identifier_bytes: usize,
    /// Largest request body the front reads; a larger one is refused (413)
    /// in the platform's error shape before anything is parsed.
    pub max_body_bytes: usize,
    pub get: UsersOperation,
    pub update: UsersOperation,
    pub otp_request: UsersOperation,
    pub otp_confirm: UsersOperation,
    pub login: UsersOperation,
    pub orders: UsersOperation,
    /// How long Get User Data answers are cached (a separate key space).
    #[serde(rename = "found_ttl_secs", deserialize_with = "de::secs")]
    pub found_ttl: Duration,
    #[serde(rename = "not_found_ttl_secs", deserialize_with = "de::secs")]
    pub not_found_ttl: Duration,
    /// Bounds each of the front's two caches (profiles, order histories).
    pub cache_max_bytes: u64,
    /// How long an order history is cached, in its own key space; 0 = not
    /// cached (every call asks the CRM). Short: an order's status moves.
    #[serde(rename = "orders_ttl_secs", deserialize_with = "de::secs")]
    pub orders_ttl: Duration,
    pub messages: UsersMessages,
}

/// One users-API call: where it is mounted and the mapping file (with its
/// `[[step]]` requests) that serves it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersOperation {
    pub path: String,
    pub mapping: PathBuf,
}

/// The texts users see in `{"error": {"message": ...}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersMessages {
    pub invalid_code: String,
    pub wrong_credentials: String,
    pub unknown_user: String,
    pub bad_request: String,
    pub unauthorized: String,
    pub unavailable: String,
}

impl Default for UsersMessages {
    fn default() -> Self {
        Self {
            invalid_code: "Неверный код".into(),
            wrong_credentials: "Неверный логин или пароль".into(),
            unknown_user: "Пользователь не найден".into(),
            bad_request: "Некорректный запрос".into(),
            unauthorized: "Нет доступа".into(),
            unavailable: "Сервис временно недоступен, попробуйте позже".into(),
        }
    }
}

impl Default for UsersApiSettings {
    fn default() -> Self {
        let op = |path: &str, file: &str| UsersOperation {
            path: path.into(),
            mapping: PathBuf::from(format!("mappings/users/{file}")),
        };
        Self {
            enabled: false,
            api_key_env: None,
            api_key_file: None,
            max_identifier_bytes: 256,
            max_body_bytes: 64 * 1024,
            get: op("/users/get", "generic-bank-get.toml"),
            update: op("/users/update", "generic-bank-update.toml"),
            otp_request: op("/users/otp/request", "generic-bank-otp-request.toml"),
            otp_confirm: op("/users/otp/confirm", "generic-bank-otp-confirm.toml"),
            login: op("/users/login", "generic-bank-login.toml"),
            orders: op("/users/orders", "generic-bank-orders.toml"),
            found_ttl: Duration::from_secs(300),
            not_found_ttl: Duration::from_secs(30),
            cache_max_bytes: 32 * 1024 * 1024,
            orders_ttl: Duration::from_secs(60),
            messages: UsersMessages::default(),
        }
    }
}

impl UsersApiSettings {
    /// The six calls, by their key name.
    pub fn operations(&self) -> [(&'static str, &UsersOperation); 6] {
        [
            ("get", &self.get),
            ("update", &self.update),
            ("otp_request", &self.otp_request),
            ("otp_confirm", &self.otp_confirm),
            ("login", &self.login),
            ("orders", &self.orders),
        ]
    }

    /// The checks of `[users_api]` that its types cannot express.
    pub(super) fn validate(&self, c: &mut Checks) {
        c.check(
            !self.enabled || self.api_key_env.is_some() || self.api_key_file.is_some(),
            "users_api.api_key_env",
            "the users API checks the platform's key: set api_key_env or api_key_file",
        );
        c.check(
            self.max_body_bytes >= 1024,
            "users_api.max_body_bytes",
            "must be at least 1024",
        );
        for (name, op) in self.operations() {
            c.check(
                !self.enabled || op.path.starts_with('/'),
                &format!("users_api.{name}.path"),
                "must start with /",
            );
        }
    }
}
