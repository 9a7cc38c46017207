//! The integrator's tools behind `authbridge check` and `authbridge map`:
//! validate mapping files and dry-run one on a sample CRM payload, without a
//! CRM or a running server.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::app::AppState;
use crate::config::{AuthApiSettings, Settings, UpstreamSettings};
use crate::diagnostics::LoadError;
use crate::front::auth_api::card::CardBuilder;
use crate::front::users_api::card::{Shape, UsersCardBuilder};
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

/// Validates the whole configuration (values, secrets, the configured mapping)
/// and every other mapping file beside the configured one.
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
    let dir = settings.auth_api.mapping.parent().unwrap_or(Path::new("."));
    let others: Vec<PathBuf> = mapping_files(dir)
        .into_iter()
        .filter(|f| f != &settings.auth_api.mapping)
        .collect();
    let rest = check_mappings(&others, &settings.auth_api, &settings.upstream);
    report.ok &= rest.ok;
    report.lines.extend(rest.lines);
    report
}

/// Applies a mapping to a CRM payload: the card as pretty JSON, or every
/// problem found. For a mapping with `[[step]]` pipelines the payload is the
/// assembled answers, `{"steps": {"NAME": ...}}`.
pub fn dry_run(settings: &AuthApiSettings, input: &str) -> Result<String, Vec<String>> {
    let diagnostics = |e: LoadError| {
        e.diagnostics
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    let crm: Value = serde_json::from_str(input)
        .map_err(|e| vec![format!("the input is not valid JSON: {e}")])?;
    let answer = match Target::of(&settings.mapping) {
        Target::AuthApi => {
            let cards = CardBuilder::load(settings).map_err(diagnostics)?;
            serde_json::to_value(cards.card(&crm).map_err(|e| vec![e.to_string()])?)
                .map_err(|e| vec![e.to_string()])?
        }
        Target::Users(shape) => {
            let cards = UsersCardBuilder::load(&settings.mapping, shape).map_err(diagnostics)?;
            cards.answer(&crm).map_err(|e| vec![e.to_string()])?
        }
    };
    serde_json::to_string_pretty(&answer).map_err(|e| vec![e.to_string()])
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
        let Ok(doc) = text.parse::<toml::Table>() else {
            return Target::AuthApi;
        };
        let name = file
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
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
