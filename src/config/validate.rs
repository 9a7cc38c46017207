//! The checks of values that parse but cannot work, each naming its key.

use std::net::SocketAddr;

use super::*;

impl Settings {
    /// Checks values that parse but cannot work, naming each key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut bad = Vec::new();
        let mut check = |ok: bool, key: &str, msg: &str| {
            if !ok {
                bad.push((key.to_owned(), msg.to_owned()));
            }
        };
        check(
            self.server.listen.parse::<SocketAddr>().is_ok(),
            "server.listen",
            "must be an address like 0.0.0.0:8080",
        );
        check(
            self.server.max_token_bytes > 0,
            "server.max_token_bytes",
            "must be at least 1",
        );
        check(
            self.server
                .token_pattern
                .as_deref()
                .is_none_or(|p| regex::Regex::new(p).is_ok()),
            "server.token_pattern",
            "is not a valid regex",
        );
        check(
            self.server.request_timeout_ms > 0,
            "server.request_timeout_ms",
            "must be at least 1",
        );
        let u = &self.upstream;
        match url::Url::parse(&u.base_url) {
            Ok(url) => {
                check(
                    matches!(url.scheme(), "http" | "https"),
                    "upstream.base_url",
                    "must be an http:// or https:// URL",
                );
                check(
                    url.query().is_none() && url.fragment().is_none(),
                    "upstream.base_url",
                    "must not have a query or fragment (use upstream.query)",
                );
            }
            Err(_) => check(
                false,
                "upstream.base_url",
                "must be set to the CRM's URL, e.g. https://crm.bank.local/api",
            ),
        }
        check(
            u.path.starts_with('/'),
            "upstream.path",
            "must start with /",
        );
        check(
            u.connect_timeout_ms > 0,
            "upstream.connect_timeout_ms",
            "must be at least 1",
        );
        check(
            u.timeout_ms > 0,
            "upstream.timeout_ms",
            "must be at least 1",
        );
        check(
            u.connect_timeout_ms <= u.timeout_ms,
            "upstream.connect_timeout_ms",
            "must not exceed upstream.timeout_ms",
        );
        check(
            u.max_body_bytes > 0,
            "upstream.max_body_bytes",
            "must be at least 1",
        );
        check(
            u.not_found.statuses.iter().all(|s| (100..=599).contains(s)),
            "upstream.not_found.statuses",
            "must be HTTP statuses (100-599)",
        );
        check(
            u.body.is_none() || u.method != HttpMethod::GET,
            "upstream.body",
            "is not sent with GET: use POST, PUT or PATCH",
        );
        check(
            u.max_in_flight > 0,
            "upstream.max_in_flight",
            "must be at least 1",
        );
        check(
            u.retry.max_attempts > 0,
            "upstream.retry.max_attempts",
            "must be at least 1 (1 = no retries)",
        );
        check(
            (0.0..=1000.0).contains(&u.retry.budget_percent),
            "upstream.retry.budget_percent",
            "must be 0 to 1000",
        );
        check(
            u.breaker.failure_ratio > 0.0 && u.breaker.failure_ratio <= 1.0,
            "upstream.breaker.failure_ratio",
            "must be above 0 and at most 1",
        );
        check(
            u.breaker.min_requests > 0,
            "upstream.breaker.min_requests",
            "must be at least 1",
        );
        check(
            u.breaker.window_ms >= 100,
            "upstream.breaker.window_ms",
            "must be at least 100",
        );
        check(
            (0.0..0.5).contains(&self.cache.ttl_jitter),
            "cache.ttl_jitter",
            "must be at least 0 and below 0.5",
        );
        check(
            self.server.max_connections > 0,
            "server.max_connections",
            "must be at least 1",
        );
        check(
            self.server.tls.cert_file.is_some() == self.server.tls.key_file.is_some(),
            "server.tls.key_file",
            "TLS needs both cert_file and key_file",
        );
        let access = &self.server.access;
        let access_secret = access.secret_env.is_some() || access.secret_file.is_some();
        check(
            (access.kind == AccessKind::None) != access_secret,
            "server.access.secret_env",
            "bearer and basic access need secret_env or secret_file; kind none takes none",
        );
        check(
            access.kind != AccessKind::Basic || access.username.is_some(),
            "server.access.username",
            "basic access needs a username",
        );
        check(
            access
                .allow_cidrs
                .iter()
                .all(|c| c.parse::<ipnet::IpNet>().is_ok()),
            "server.access.allow_cidrs",
            "must be CIDR networks like 10.0.0.0/8 or fd00::/8",
        );
        check(
            self.admin.listen.is_empty() || self.admin.listen.parse::<SocketAddr>().is_ok(),
            "admin.listen",
            "must be empty (off) or an address like 127.0.0.1:9090",
        );
        check(
            self.admin.listen.is_empty()
                || self.admin.token_env.is_some()
                || self.admin.token_file.is_some(),
            "admin.token_env",
            "the admin API needs a token: token_env or token_file",
        );
        check(
            self.redis.url.is_empty()
                || self.cache.hash_key_env.is_some()
                || self.cache.hash_key_file.is_some(),
            "cache.hash_key_env",
            "replicas sharing Redis need the same cache key: set hash_key_env or hash_key_file",
        );
        check(
            self.redis.url.is_empty() || self.redis.timeout_ms > 0,
            "redis.timeout_ms",
            "must be at least 1",
        );
        // A replica may wait lock_ms for another's card, then run the whole
        // pipeline: both must fit in the caller's deadline, or a stale card
        // that could have been served becomes a 504.
        check(
            self.redis.url.is_empty()
                || self.redis.lock_ms + self.upstream.deadline_ms <= self.server.request_timeout_ms,
            "redis.lock_ms",
            "redis.lock_ms + upstream.deadline_ms must not exceed server.request_timeout_ms",
        );
        let users = &self.users_api;
        check(
            !users.enabled || users.api_key_env.is_some() || users.api_key_file.is_some(),
            "users_api.api_key_env",
            "the users API checks the platform's key: set api_key_env or api_key_file",
        );
        check(
            users.max_body_bytes >= 1024,
            "users_api.max_body_bytes",
            "must be at least 1024",
        );
        for (name, op) in [
            ("get", &users.get),
            ("update", &users.update),
            ("otp_request", &users.otp_request),
            ("otp_confirm", &users.otp_confirm),
            ("login", &users.login),
            ("orders", &users.orders),
        ] {
            check(
                !users.enabled || op.path.starts_with('/'),
                &format!("users_api.{name}.path"),
                "must start with /",
            );
        }
        check(
            u.deadline_ms > 0,
            "upstream.deadline_ms",
            "must be at least 1",
        );
        check(u.max_steps > 0, "upstream.max_steps", "must be at least 1");
        check(
            u.max_fan_out > 0,
            "upstream.max_fan_out",
            "must be at least 1",
        );
        check(
            u.max_concurrency > 0,
            "upstream.max_concurrency",
            "must be at least 1",
        );
        check(
            u.tls.client_cert_file.is_some() == u.tls.client_key_file.is_some(),
            "upstream.tls.client_key_file",
            "mutual TLS needs both client_cert_file and client_key_file",
        );
        check(
            self.cache.max_bytes > 0,
            "cache.max_bytes",
            "must be at least 1",
        );
        check(
            self.cache.found_ttl_secs > 0,
            "cache.found_ttl_secs",
            "must be at least 1",
        );
        check(
            !(self.cache.hash_key_env.is_some() && self.cache.hash_key_file.is_some()),
            "cache.hash_key_env",
            "set hash_key_env or hash_key_file, not both",
        );
        let auth = &u.auth;
        let has_secret = auth.secret_env.is_some() || auth.secret_file.is_some();
        check(
            !(auth.secret_env.is_some() && auth.secret_file.is_some()),
            "upstream.auth.secret_env",
            "set secret_env or secret_file, not both",
        );
        match auth.kind {
            AuthKind::None => check(
                !has_secret,
                "upstream.auth.kind",
                "is \"none\" but a secret is configured",
            ),
            AuthKind::Bearer => check(
                has_secret,
                "upstream.auth.secret_env",
                "this auth kind needs secret_env (an env var name) or secret_file (a path)",
            ),
            AuthKind::ApiKey => {
                check(
                    has_secret,
                    "upstream.auth.secret_env",
                    "this auth kind needs secret_env (an env var name) or secret_file (a path)",
                );
                check(
                    !(auth.header.is_some() && auth.query_param.is_some()),
                    "upstream.auth.query_param",
                    "set header or query_param, not both",
                );
            }
            AuthKind::OAuth2 => {
                check(
                    has_secret,
                    "upstream.auth.secret_env",
                    "oauth2 needs the client secret in secret_env or secret_file",
                );
                check(
                    auth.client_id.is_some(),
                    "upstream.auth.client_id",
                    "oauth2 needs a client_id",
                );
                check(
                    auth.token_url
                        .as_deref()
                        .and_then(|u| url::Url::parse(u).ok())
                        .is_some_and(|u| matches!(u.scheme(), "http" | "https")),
                    "upstream.auth.token_url",
                    "oauth2 needs the token endpoint as an http(s) URL",
                );
            }
            AuthKind::Basic => {
                check(
                    has_secret,
                    "upstream.auth.secret_env",
                    "basic auth needs the password in secret_env or secret_file",
                );
                check(
                    auth.username.is_some(),
                    "upstream.auth.username",
                    "basic auth needs a username",
                );
            }
        }
        if bad.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(bad))
        }
    }
}
