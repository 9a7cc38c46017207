//! `[telemetry.otel]`: OpenTelemetry traces (OTLP over HTTP/protobuf), off
//! unless enabled; its typed values, its own checks, and how it meets the
//! standard `OTEL_*` variables.
//!
//! Precedence, key by key: a value this section sets (in a file or as
//! `AUTHBRIDGE__TELEMETRY__OTEL__*`) wins; a key left unset falls to the
//! `OTEL_*` variable the OpenTelemetry spec names for it, then to the spec's
//! default. `OTEL_SDK_DISABLED=true` turns traces off whatever this section
//! says; no `OTEL_*` variable turns them on. The OTLP exporter itself adds
//! `OTEL_EXPORTER_OTLP_(TRACES_)HEADERS` to the headers configured here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

use super::ConfigError;
use super::de;
use super::validate::Checks;

/// The name of the one OTLP protocol built in.
const HTTP_PROTOBUF: &str = "http/protobuf";

/// The OTLP protocols built in: HTTP/protobuf only. gRPC would bring in
/// tonic's transport, a large compile for what HTTP/protobuf does as well;
/// collectors take both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    HttpProtobuf,
}

/// OpenTelemetry traces (all off or unset by default).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtelSettings {
    /// Export traces at all (off by default).
    pub enabled: bool,
    /// Only `http/protobuf` (checked at load); unset = `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`.
    #[serde(deserialize_with = "protocol")]
    pub protocol: Option<OtlpProtocol>,
    /// The OTLP/HTTP traces URL, used as given (e.g.
    /// `http://collector:4318/v1/traces`); unset = the `OTEL_*` endpoints.
    #[serde(deserialize_with = "endpoint")]
    pub endpoint: Option<Url>,
    /// Timeout of one export; unset = `OTEL_EXPORTER_OTLP_(TRACES_)TIMEOUT`, else 10 s.
    #[serde(rename = "timeout_ms", deserialize_with = "millis_opt")]
    pub timeout: Option<Duration>,
    /// Extra export headers (`name=value,...`, values percent-encoded), a
    /// secret (an API key): named by an env var or a file, never a value here.
    pub headers_env: Option<String>,
    pub headers_file: Option<PathBuf>,
    /// `service.name`; unset = `OTEL_SERVICE_NAME`, else `authbridge`.
    pub service_name: Option<String>,
    /// Resource attributes, over `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource_attributes: BTreeMap<String, String>,
    /// Share of new traces sampled, 0 to 1; a caller's sampled flag is
    /// followed (parent-based). Unset = `OTEL_TRACES_SAMPLER(_ARG)`, else 1.
    pub sample_ratio: Option<f64>,
}

fn protocol<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OtlpProtocol>, D::Error> {
    match Option::<String>::deserialize(d)?.as_deref() {
        None => Ok(None),
        Some(HTTP_PROTOBUF) => Ok(Some(OtlpProtocol::HttpProtobuf)),
        Some("grpc") => Err(de::invalid(
            "grpc is not built in: use \"http/protobuf\" (the collector's port 4318)",
        )),
        Some(_) => Err(de::invalid("must be \"http/protobuf\"")),
    }
}

fn endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Url>, D::Error> {
    Option::<String>::deserialize(d)?
        .filter(|s| !s.is_empty())
        .map(|s| {
            Url::parse(&s)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    de::invalid("must be an http(s) URL like http://collector:4318/v1/traces")
                })
        })
        .transpose()
}

fn millis_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
}

impl OtelSettings {
    /// The checks of `[telemetry.otel]` alone.
    pub(super) fn validate(&self, c: &mut Checks) {
        c.check(
            self.sample_ratio.is_none_or(|r| (0.0..=1.0).contains(&r)),
            "telemetry.otel.sample_ratio",
            "must be between 0 and 1",
        );
        c.check(
            self.timeout.is_none_or(|t| !t.is_zero()),
            "telemetry.otel.timeout_ms",
            "must be at least 1",
        );
        c.check(
            !(self.headers_env.is_some() && self.headers_file.is_some()),
            "telemetry.otel.headers_env",
            "set headers_env or headers_file, not both",
        );
        c.check(
            self.service_name.as_ref().is_none_or(|s| !s.is_empty()),
            "telemetry.otel.service_name",
            "must not be empty (leave it unset for OTEL_SERVICE_NAME)",
        );
    }

    /// Whether traces are exported, given the `OTEL_*` variables `env`
    /// reads: on when enabled here and not disabled by `OTEL_SDK_DISABLED`.
    /// A protocol other than HTTP/protobuf asked for by `OTEL_*` while this
    /// section leaves it unset is refused, naming the variable.
    pub fn active(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<bool, ConfigError> {
        if !self.enabled
            || env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            return Ok(false);
        }
        if self.protocol.is_none() {
            let var = [
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
                "OTEL_EXPORTER_OTLP_PROTOCOL",
            ]
            .into_iter()
            .find_map(|name| env(name).map(|value| (name, value)));
            if let Some((name, value)) = var
                && value.trim() != HTTP_PROTOBUF
            {
                return Err(ConfigError::invalid(
                    name,
                    format!(
                        "{value:?} is not built in: use \"http/protobuf\" (or set telemetry.otel.protocol)"
                    ),
                ));
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn otel(toml: &str) -> Result<OtelSettings, ConfigError> {
        Settings::from_toml(&format!(
            "[upstream]\nbase_url = \"http://x\"\n[telemetry.otel]\n{toml}"
        ))
        .map(|s| s.telemetry.otel)
    }

    #[test]
    fn off_by_default_whatever_otel_variables_say() {
        let s = otel("").unwrap();
        let vars = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")];
        assert!(!s.active(&env(&vars)).unwrap());
    }

    #[test]
    fn otel_sdk_disabled_wins_over_enabled() {
        let s = otel("enabled = true").unwrap();
        assert!(s.active(&env(&[])).unwrap());
        assert!(!s.active(&env(&[("OTEL_SDK_DISABLED", "TRUE")])).unwrap());
        assert!(s.active(&env(&[("OTEL_SDK_DISABLED", "false")])).unwrap());
    }

    #[test]
    fn grpc_is_refused_naming_the_key_or_variable() {
        let err = otel("protocol = \"grpc\"").unwrap_err().to_string();
        assert!(
            err.contains("telemetry.otel.protocol: grpc is not built in"),
            "{err}"
        );
        let s = otel("enabled = true").unwrap();
        let err = s
            .active(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("OTEL_EXPORTER_OTLP_PROTOCOL: \"grpc\""),
            "{err}"
        );
        // The signal's own variable is read first; the config key wins over both.
        let vars = [
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        assert!(s.active(&env(&vars)).unwrap());
        let s = otel("enabled = true\nprotocol = \"http/protobuf\"").unwrap();
        assert!(
            s.active(&env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]))
                .unwrap()
        );
    }

    #[test]
    fn values_are_typed_and_checked_at_load() {
        let s = otel(
            "endpoint = \"http://c:4318/v1/traces\"\ntimeout_ms = 2500\nsample_ratio = 0.25\n[telemetry.otel.resource_attributes]\n\"deployment.environment\" = \"prod\"\n",
        )
        .unwrap();
        assert_eq!(s.endpoint.unwrap().path(), "/v1/traces");
        assert_eq!(s.timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.sample_ratio, Some(0.25));
        assert_eq!(s.resource_attributes["deployment.environment"], "prod");
        for (toml, key) in [
            (
                "sample_ratio = 1.5",
                "telemetry.otel.sample_ratio: must be between 0 and 1",
            ),
            (
                "endpoint = \"collector:4318\"",
                "telemetry.otel.endpoint: must be an http(s) URL",
            ),
            (
                "timeout_ms = 0",
                "telemetry.otel.timeout_ms: must be at least 1",
            ),
            (
                "protocol = \"http/json\"",
                "telemetry.otel.protocol: must be \"http/protobuf\"",
            ),
        ] {
            let err = otel(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }
}
