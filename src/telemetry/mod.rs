//! Logging with `tracing`: pretty (coloured on a terminal only) or JSON, level from config unless `RUST_LOG`
//! is set, and a redaction filter that holds back the HTTP stack's own
//! DEBUG/TRACE events, because those print request URLs, and a CRM URL can
//! carry the token. Beside the log: the access log ([`access`]), each
//! request's record of what it did ([`record`]) and OpenTelemetry traces
//! ([`otel`]), exported through a layer of their own.

pub mod access;
pub mod otel;
pub mod record;

use tracing::{Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::config::{ConfigError, LogFormat, TelemetrySettings};
use otel::Traces;

/// Crates whose verbose events include URLs or raw protocol data.
const VERBOSE_DEPENDENCIES: &[&str] = &["reqwest", "hyper", "hyper_util", "h2", "rustls"];

/// The redaction filter: a dependency's DEBUG and TRACE are held back, since
/// they may carry a URL. A `Targets` filter is decided once per callsite
/// (a closure filter would run on every span and event of the process).
pub fn redaction() -> Targets {
    VERBOSE_DEPENDENCIES
        .iter()
        .fold(Targets::new().with_default(Level::TRACE), |t, dep| {
            t.with_target(*dep, Level::INFO)
        })
}

/// The level filter: `RUST_LOG` when set (as users of tracing expect), else the
/// configured directives.
pub fn env_filter(configured: &str) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(configured),
    }
}

/// The formatting layer with both filters, writing to `writer`; pretty logs
/// are coloured only when `colour` is true (a terminal).
pub fn layer<S, W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    colour: bool,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(colour);
    let fmt: Box<dyn Layer<S> + Send + Sync> = match format {
        LogFormat::Pretty => Box::new(fmt),
        LogFormat::Json => Box::new(fmt.json().with_current_span(true).with_span_list(false)),
    };
    // One combined filter, so the subscriber's interest and level hint are
    // both filters' (nested per-layer filters report only the outer one's).
    fmt.with_filter(filter.and(redaction())).boxed()
}

/// What [`init`] installed that must be flushed before the process exits.
pub struct Telemetry {
    traces: Option<Traces>,
}

impl Telemetry {
    /// Exports the spans still buffered (at most the export timeout).
    /// Blocks: call it off the async workers.
    pub fn shutdown(self) {
        if let Some(traces) = self.traces {
            traces.shutdown();
        }
    }
}

/// Installs the global subscriber (stdout), with the traces layer when
/// traces are on. Call once, from `main`. Colour codes go to a terminal
/// only: in a file or journald they are noise.
pub fn init(settings: &TelemetrySettings) -> Result<Telemetry, ConfigError> {
    use std::io::IsTerminal as _;
    let traces = Traces::build(&settings.otel)?;
    let filter = env_filter(&settings.log_level);
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let logs =
        Registry::default().with(layer(settings.log_format, filter, std::io::stdout, colour));
    // Without traces, no layer at all: an absent `Option` layer would make
    // every callsite the log filter turns off "sometimes" (asked per call).
    let _ = match &traces {
        Some(t) => logs.with(t.layer()).try_init(),
        None => logs.try_init(),
    };
    Ok(Telemetry { traces })
}
