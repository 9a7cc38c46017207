//! `[telemetry]`: log format and level, the access log, and (in its own
//! file) `[telemetry.otel]` traces.

use serde::Deserialize;

use super::de;
use super::otel::OtelSettings;
use super::validate::Checks;

/// Log output format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// Logging and traces.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    #[serde(deserialize_with = "de::choice")]
    pub log_format: LogFormat,
    /// Level or filter directives; `RUST_LOG`, when set, wins.
    pub log_level: String,
    /// One INFO line per request (target `authbridge::access`); the level
    /// filter can also turn it off (`authbridge::access=off`). Off by
    /// default: at a cache hit's rate the line costs more than the hit (see
    /// the README's performance section); a deployment turns it on.
    pub access_log: bool,
    /// OpenTelemetry traces.
    pub otel: OtelSettings,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Pretty,
            log_level: "info".into(),
            access_log: false,
            otel: OtelSettings::default(),
        }
    }
}

impl TelemetrySettings {
    /// The checks of `[telemetry]`.
    pub(super) fn validate(&self, c: &mut Checks) {
        self.otel.validate(c);
    }
}
