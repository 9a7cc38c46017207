//! Validation at load: each section checks its own values (in its own
//! file); what is left here is the collector they report to and the checks
//! that span sections.

use super::{ConfigError, Settings};

/// Collects the values that parse but cannot work, each with its key, so one
/// run reports all of them.
#[derive(Debug, Default)]
pub(super) struct Checks {
    bad: Vec<(String, String)>,
}

impl Checks {
    /// Records `message` against `key` unless `ok`.
    pub(super) fn check(&mut self, ok: bool, key: &str, message: &str) {
        if !ok {
            self.bad.push((key.to_owned(), message.to_owned()));
        }
    }

    fn finish(self) -> Result<(), ConfigError> {
        if self.bad.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(self.bad))
        }
    }
}

impl Settings {
    /// Checks values that parse but cannot work, naming each key. (Values
    /// that do not parse never get here: see [`de`](super::de).)
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut c = Checks::default();
        self.server.validate(&mut c);
        self.upstream.validate(&mut c);
        self.cache.validate(&mut c);
        self.telemetry.validate(&mut c);
        self.admin.validate(&mut c);
        self.redis.validate(&mut c);
        self.users_api.validate(&mut c);
        self.across_sections(&mut c);
        c.finish()
    }

    /// Rules that tie one section's values to another's.
    fn across_sections(&self, c: &mut Checks) {
        c.check(
            !self.redis.enabled()
                || self.cache.hash_key_env.is_some()
                || self.cache.hash_key_file.is_some(),
            "cache.hash_key_env",
            "replicas sharing Redis need the same cache key: set hash_key_env or hash_key_file",
        );
        // A replica may wait lock_ms for another's card, then run the whole
        // pipeline: both must fit in the caller's deadline, or a stale card
        // that could have been served becomes a 504.
        c.check(
            !self.redis.enabled()
                || self.redis.lock + self.upstream.deadline <= self.server.request_timeout,
            "redis.lock_ms",
            "redis.lock_ms + upstream.deadline_ms must not exceed server.request_timeout_ms",
        );
    }
}
