//! OpenTelemetry traces: the tracer provider (OTLP over HTTP/protobuf, a
//! batch exporter on its own thread), the `tracing` layer that turns our
//! spans into OpenTelemetry spans, and W3C trace context in and out.
//!
//! Only `authbridge`'s own spans are exported, through a per-layer filter
//! of their own: the log level does not hide them, and no event (log line)
//! and no dependency's span is exported. With traces off there is no such
//! layer: our spans stay disabled callsites (one branch each) and
//! [`inject`] is one atomic load.
//!
//! What a span may carry is chosen where it is declared: routes, statuses,
//! outcomes, step names — never a URL (the CRM's holds the token), a header
//! value or a CRM value.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::{Key, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use secrecy::ExposeSecret as _;
use tracing::Subscriber;
use tracing::level_filters::LevelFilter;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

use crate::config::{ConfigError, OtelSettings, read_secret};

/// Whether this process exports traces (set once, by [`Traces::install`]).
static ON: AtomicBool = AtomicBool::new(false);

/// The `service.name` when neither the config nor `OTEL_*` names one.
const SERVICE: &str = "authbridge";

/// Whether traces are exported.
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// The tracer provider; flushed by [`Traces::shutdown`].
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// The provider for `s`, or `None` when traces are off (see
    /// [`OtelSettings::active`]); the export headers' secret is read here.
    pub fn build(s: &OtelSettings) -> Result<Option<Self>, ConfigError> {
        if !s.active(&|name| std::env::var(name).ok())? {
            return Ok(None);
        }
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary);
        if let Some(endpoint) = &s.endpoint {
            exporter = exporter.with_endpoint(endpoint.as_str());
        }
        if let Some(timeout) = s.timeout {
            exporter = exporter.with_timeout(timeout);
        }
        let headers = export_headers(s)?;
        if !headers.is_empty() {
            exporter = exporter.with_headers(headers);
        }
        let exporter = exporter.build().map_err(|e| {
            ConfigError::invalid("telemetry.otel.endpoint", format!("no OTLP exporter: {e}"))
        })?;
        let mut provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource(s));
        // Unset: the SDK reads OTEL_TRACES_SAMPLER(_ARG) as the spec says.
        if let Some(ratio) = s.sample_ratio {
            provider = provider.with_sampler(Sampler::ParentBased(Box::new(
                Sampler::TraceIdRatioBased(ratio),
            )));
        }
        Ok(Some(Self {
            provider: provider.build(),
        }))
    }

    /// The layer exporting our spans; marks traces as on.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        ON.store(true, Ordering::Relaxed);
        let ours = tracing_subscriber::filter::filter_fn(|m| {
            m.is_span() && (m.target() == "authbridge" || m.target().starts_with("authbridge::"))
        })
        .with_max_level_hint(LevelFilter::DEBUG);
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("authbridge"))
            // No source paths or thread names, and no clock reads on every
            // enter and exit (busy/idle times).
            .with_location(false)
            .with_threads(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(ours)
    }

    /// Exports what is still buffered, then stops the exporter. Blocks:
    /// call it off the async workers (`spawn_blocking`).
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "traces: the last export failed");
        }
    }
}

/// What [`Traces::build`] would refuse, without building anything: the
/// `OTEL_*` protocol and the export headers' secret (for `authbridge check`).
pub fn check(s: &OtelSettings) -> Result<(), ConfigError> {
    if s.active(&|name| std::env::var(name).ok())? {
        export_headers(s)?;
    }
    Ok(())
}

/// `service.name` (config, else `OTEL_SERVICE_NAME` or `service.name` in
/// `OTEL_RESOURCE_ATTRIBUTES`, else ours), the version, then the configured
/// attributes over `OTEL_RESOURCE_ATTRIBUTES` (the SDK's detectors read both
/// variables).
fn resource(s: &OtelSettings) -> Resource {
    let service_name = Key::from_static_str("service.name");
    let detected = Resource::builder().build();
    let unnamed = detected
        .get(&service_name)
        .is_none_or(|v| v.as_str().starts_with("unknown_service"));
    let mut builder = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    match &s.service_name {
        Some(name) => builder = builder.with_service_name(name.clone()),
        None if unnamed => builder = builder.with_service_name(SERVICE),
        None => {}
    }
    builder
        .with_attributes(
            s.resource_attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .build()
}

/// The configured export headers: `name=value` pairs separated by commas,
/// values percent-decoded (the format of `OTEL_EXPORTER_OTLP_HEADERS`).
/// Errors name the key, never a value.
fn export_headers(s: &OtelSettings) -> Result<HashMap<String, String>, ConfigError> {
    let key = "telemetry.otel.headers_env";
    let Some(secret) = read_secret(
        (key, s.headers_env.as_deref()),
        ("telemetry.otel.headers_file", s.headers_file.as_deref()),
    )?
    else {
        return Ok(HashMap::new());
    };
    parse_headers(secret.expose_secret()).ok_or_else(|| {
        ConfigError::invalid(
            key,
            "the headers must be name=value pairs separated by commas, with valid header names and values",
        )
    })
}

fn parse_headers(text: &str) -> Option<HashMap<String, String>> {
    text.split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value = percent_encoding::percent_decode_str(value.trim())
                .decode_utf8()
                .ok()?
                .into_owned();
            let name = name.trim();
            HeaderName::try_from(name).ok()?;
            HeaderValue::try_from(value.as_str()).ok()?;
            Some((name.to_owned(), value))
        })
        .collect()
}

/// Continues the caller's trace: `span`'s parent becomes the span named by
/// the request's `traceparent` (and `tracestate`). Call before entering it.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    if span.is_disabled() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

/// Names `span` (`otel.name`) after it started: the traces layer takes a
/// recorded name only until the span has a context (a continued trace gives
/// it one at once), so the span is renamed there too.
pub fn rename(span: &tracing::Span, name: &str) {
    if span.is_disabled() {
        return;
    }
    span.record("otel.name", name);
    span.context().span().update_name(name.to_owned());
}

/// Makes the current span the OpenTelemetry parent of `span`, which has no
/// `tracing` parent: a detached task's span, so that the request's span ends
/// when its answer is sent rather than when the task does.
pub fn follow_current(span: &tracing::Span) {
    if span.is_disabled() {
        return;
    }
    let _ = span.set_parent(tracing::Span::current().context());
}

/// Adds the current span's `traceparent` (and `tracestate`) to an outgoing
/// request's headers.
pub fn inject(headers: &mut HeaderMap) {
    if !on() {
        return;
    }
    let cx = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&cx, &mut HeadersMut(headers));
}

/// Records the CRM's answer status on the current (CRM step) span.
pub fn crm_status(status: u16) {
    if on() {
        // An i64: the layer would record a u64 as a string.
        tracing::Span::current().record("http.response.status_code", i64::from(status));
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(key), HeaderValue::try_from(value)) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_headers;

    #[test]
    fn headers_parse_as_otel_exporter_otlp_headers() {
        let h = parse_headers("api-key=a%20b, x-tenant = t1 ,").unwrap();
        assert_eq!(h["api-key"], "a b");
        assert_eq!(h["x-tenant"], "t1");
        assert!(parse_headers("no-equals-sign").is_none());
        assert!(parse_headers("bad name=x").is_none());
        assert!(parse_headers("x=%0A").is_none());
    }
}
