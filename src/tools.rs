//! The integrator's tools behind `authbridge check`, `authbridge map` and the
//! playground: validate mapping files and dry-run one on a sample CRM payload,
//! telling every error and each field's source, without a CRM or a running
//! server.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::app::AppState;
use crate::config::{AuthApiSettings, Settings, UpstreamSettings};
use crate::diagnostics::Diagnostic;
use crate::diagnostics::LoadError;
use crate::front::auth_api::card::CardBuilder;
use crate::front::users_api::card::{Shape, UsersCardBuilder};
use crate::mapping::{ExplainedError, FieldSource};
use crate::upstream::Pipeline;

/// What a tool run found: lines for stdout, and whether everything was valid.
#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<String>,
    pub ok: bool,
}

/// The `*.toml` files in `dir`, sorted.
pub fn mapping_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Validates mapping files (fields against the Auth API schema for
/// `settings`' version, and `[[step]]` pipelines against `upstream`'s limits).
pub fn check_mappings(
    files: &[PathBuf],
    settings: &AuthApiSettings,
    upstream: &UpstreamSettings,
) -> Report {
    let mut report = Report {
        ok: true,
        ..Default::default()
    };
    for file in files {
        let one = AuthApiSettings {
            mapping: file.clone(),
            ..settings.clone()
        };
        let cards = match Target::of(file) {
            Target::AuthApi => CardBuilder::load(&one).map(|_| ()),
            Target::Users(shape) => UsersCardBuilder::load(file, shape).map(|_| ()),
        };
        let pipeline = Pipeline::from_mapping_file(file, upstream);
        match (cards, pipeline) {
            (Ok(_), Ok(_)) => {
                report.lines.push(format!("ok: {}", file.display()));
                // Warnings do not fail the check.
                if let Ok((name, text)) = crate::mapping::read_file(file) {
                    report.lines.extend(
                        crate::mapping::lint_jq(&name, &text)
                            .iter()
                            .map(ToString::to_string),
                    );
                }
            }
            (cards, pipeline) => {
                report.ok = false;
                let found = LoadError::merged(cards.err().into_iter().chain(pipeline.err()));
                report
                    .lines
                    .extend(found.diagnostics.iter().map(ToString::to_string));
            }
        }
    }
    report
}

/// Validates the whole configuration (values, secrets, the configured
/// mapping), the users-API mappings it names, and the other mapping files
/// beside the Auth API mapping (see [`is_mapping`]: a config file kept there
/// is not one).
pub fn check_config(settings: &Settings) -> Report {
    let mut report = Report {
        ok: true,
        ..Default::default()
    };
    match AppState::from_settings(settings) {
        Ok(_) => {
            report.lines.push(format!(
                "ok: configuration, secrets and mapping {}",
                settings.auth_api.mapping.display()
            ));
            if let Ok((name, text)) = crate::mapping::read_file(&settings.auth_api.mapping) {
                report.lines.extend(
                    crate::mapping::lint_jq(&name, &text)
                        .iter()
                        .map(ToString::to_string),
                );
            }
        }
        Err(e) => {
            report.ok = false;
            report.lines.push(e.to_string());
        }
    }
    if let Err(e) = crate::telemetry::otel::check(&settings.telemetry.otel) {
        report.ok = false;
        report.lines.push(e.to_string());
    }
    let mut named: Vec<PathBuf> = users_mappings(settings);
    let dir = settings.auth_api.mapping.parent().unwrap_or(Path::new("."));
    let beside = mapping_files(dir).into_iter().filter(|f| {
        f != &settings.auth_api.mapping
            && !named.contains(f)
            && std::fs::read_to_string(f).is_ok_and(|text| is_mapping(&text))
    });
    named.extend(beside.collect::<Vec<_>>());
    let rest = check_mappings(&named, &settings.auth_api, &settings.upstream);
    report.ok &= rest.ok;
    report.lines.extend(rest.lines);
    report
}

/// The users-API mapping files the configuration names: all of them when
/// the front is enabled (a missing one is an error), else those present.
fn users_mappings(settings: &Settings) -> Vec<PathBuf> {
    let u = &settings.users_api;
    [
        &u.get,
        &u.update,
        &u.otp_request,
        &u.otp_confirm,
        &u.login,
        &u.orders,
    ]
    .into_iter()
    .map(|op| op.mapping.clone())
    .filter(|m| u.enabled || m.exists())
    .collect()
}

/// Top-level tables that only a configuration has (the sections of
/// [`Settings`]).
const CONFIG_SECTIONS: &[&str] = &[
    "server",
    "auth_api",
    "upstream",
    "cache",
    "telemetry",
    "admin",
    "reload",
    "redis",
    "users_api",
    "mapping",
];

/// Top-level keys that make a file a mapping: the card's tables (both
/// fronts), the pipeline's `[[step]]` and `[meta]`.
const MAPPING_KEYS: &[&str] = &[
    "client",
    "companyList",
    "user",
    "otp",
    "orders",
    "step",
    "meta",
];

/// Whether a TOML text found beside the configured mapping is a mapping to
/// check: it has a mapping top-level key and no configuration section. Text
/// that is not TOML counts as a mapping, so a mapping with a syntax error is
/// reported rather than silently skipped.
pub fn is_mapping(text: &str) -> bool {
    let Ok(doc) = text.parse::<toml::Table>() else {
        return true;
    };
    !doc.keys().any(|k| CONFIG_SECTIONS.contains(&k.as_str()))
        && doc.keys().any(|k| MAPPING_KEYS.contains(&k.as_str()))
}

/// Applies a mapping file to a CRM payload: the card as pretty JSON, or
/// every problem found (see [`trial`]). For a mapping with `[[step]]`
/// pipelines the payload is the assembled answers, `{"steps": {"NAME": ...}}`.
pub fn dry_run(settings: &AuthApiSettings, input: &str) -> Result<String, Vec<String>> {
    let (file, text) = crate::mapping::read_file(&settings.mapping).map_err(|e| {
        e.diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    })?;
    let trial = trial(&file, &text, settings, input);
    match &trial.card {
        Some(card) => serde_json::to_string_pretty(card).map_err(|e| vec![e.to_string()]),
        None => Err(trial.problems()),
    }
}

/// One explained dry run of mapping text on a sample: everything `map` and
/// the playground show. Values from the sample appear in it (an offline
/// tool on the integrator's own data).
#[derive(Debug, Default, serde::Serialize)]
pub struct Trial {
    /// Why the mapping does not load, each at its line and column.
    pub load_errors: Vec<Diagnostic>,
    /// Why the sample is not usable (not JSON).
    pub input_error: Option<String>,
    /// Every apply error, at its rule, with value and expectation.
    pub errors: Vec<ExplainedError>,
    /// Where each card field's value came from.
    pub sources: Vec<FieldSource>,
    /// The answer as the chat server would receive it, when all went well.
    pub card: Option<Value>,
}

impl Trial {
    /// True when the run produced the card with no problem.
    pub fn ok(&self) -> bool {
        self.card.is_some()
    }

    /// Every problem as a line: `file:line:column: field: problem (value:
    /// …, expected: …)`.
    pub fn problems(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.load_errors.iter().map(ToString::to_string).collect();
        lines.extend(self.input_error.iter().cloned());
        lines.extend(self.errors.iter().map(ToString::to_string));
        lines
    }
}

/// Applies mapping `text` (named `file`) to the JSON `input`, explained: all
/// load errors, or all apply errors, or the card, with each field's source.
/// `settings` gives the API version and `derive_fields`; the target schema
/// comes from the text (see [`Target`]).
pub fn trial(file: &str, text: &str, settings: &AuthApiSettings, input: &str) -> Trial {
    let mut trial = Trial::default();
    let crm: Option<Value> = match serde_json::from_str(input) {
        Ok(v) => Some(v),
        Err(e) => {
            trial.input_error = Some(format!("the input is not valid JSON: {e}"));
            None
        }
    };
    let name = Path::new(file)
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The mapping is checked even when the sample is not JSON: the
    // playground marks both at once.
    let built = match Target::of_text(&name, text) {
        Target::AuthApi => CardBuilder::from_text(file, text, settings).map(Built::AuthApi),
        Target::Users(shape) => UsersCardBuilder::from_text(file, text, shape).map(Built::Users),
    };
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            trial.load_errors = e.diagnostics;
            return trial;
        }
    };
    let Some(crm) = crm else {
        return trial;
    };
    let mapping = match &built {
        Built::AuthApi(b) => b.mapping(),
        Built::Users(b) => b.mapping(),
    };
    let explained = mapping.explain(&crm);
    trial.errors = explained.errors;
    trial.sources = explained.sources;
    if let Some(card) = explained.card {
        let answer = match &built {
            Built::AuthApi(b) => b.finish(card).and_then(|r| {
                serde_json::to_value(r)
                    .map_err(|e| crate::error::LookupError::Internal(e.to_string()))
            }),
            Built::Users(b) => b.finish(card),
        };
        match answer {
            Ok(card) => trial.card = Some(card),
            Err(e) => trial.errors.push(ExplainedError {
                file: file.to_owned(),
                line: 1,
                column: 1,
                field: String::new(),
                message: e.to_string(),
                value: None,
                expected: None,
            }),
        }
    }
    trial
}

/// A compiled mapping of either front.
enum Built {
    AuthApi(CardBuilder),
    Users(UsersCardBuilder),
}

/// Which caller's schema a mapping file targets, from its top-level tables:
/// `[user]`, `[otp]` or `orders` for the users API, anything else for the
/// Auth API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    AuthApi,
    Users(Shape),
}

impl Target {
    /// The target of `file` (the Auth API when it cannot be read; the load
    /// that follows reports why).
    pub fn of(file: &Path) -> Self {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let name = file
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Self::of_text(&name, &text)
    }

    /// The target of mapping `text` from a file named `name` (without its
    /// extension).
    pub fn of_text(name: &str, text: &str) -> Self {
        let Ok(doc) = text.parse::<toml::Table>() else {
            return Target::AuthApi;
        };
        if doc.contains_key("otp") {
            Target::Users(Shape::Otp)
        } else if doc.contains_key("orders") {
            Target::Users(Shape::Orders)
        } else if doc.contains_key("user") {
            Target::Users(if name.ends_with("login") {
                Shape::LoginUser
            } else {
                Shape::User
            })
        } else {
            Target::AuthApi
        }
    }
}
