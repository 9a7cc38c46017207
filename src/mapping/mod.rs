//! Declarative mappings: a TOML file says how each field of the caller's card
//! is taken from the CRM's JSON. It is compiled once, validated against the
//! target schema before the server takes traffic, and applied per lookup.
//!
//! The language is documented in `docs/mapping.md`.

pub mod budget;
mod coerce;
mod compile;
mod condition;
mod date;
mod error;
mod explain;
mod jq;
mod jq_lint;
mod output;
pub(crate) mod path;
mod program;
mod rule;
mod template;
mod trail;

use std::path::Path as FsPath;

use serde_json::Value;

pub use compile::Options;
pub use error::ApplyError;
pub use explain::{Explained, ExplainedError, FieldSource};
pub use jq_lint::lint as lint_jq;
pub use output::{Object, Output};

use crate::diagnostics::{Diagnostics, LoadError};
use crate::schema::{ApiVersion, ObjectSchema};
use program::ObjectProgram;

/// A mapping file's name (as diagnostics show it) and text. Read once per
/// load: the field mapping, its `[[step]]` pipeline and its digest all come
/// from the same text.
pub fn read_file(path: &FsPath) -> Result<(String, String), LoadError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut d = Diagnostics::new(&file, "");
        d.report(0..0, "", format!("cannot read the mapping file: {e}"));
        d.into_error()
    })?;
    Ok((file, text))
}

/// A compiled, validated mapping for one target schema.
#[derive(Debug)]
pub struct Mapping {
    file: String,
    /// The mapping text, kept to place an explained error at its rule's
    /// line and column (the program keeps byte offsets only).
    text: Box<str>,
    program: ObjectProgram,
    budget: budget::Budget,
}

impl Mapping {
    /// Compiles mapping text; `file` names it in diagnostics.
    pub fn parse(
        file: &str,
        text: &str,
        schema: &'static ObjectSchema,
        version: ApiVersion,
    ) -> Result<Self, LoadError> {
        Self::parse_with(
            file,
            text,
            schema,
            &Options {
                version,
                keep: Vec::new(),
            },
        )
    }

    /// Compiles mapping text with explicit options.
    pub fn parse_with(
        file: &str,
        text: &str,
        schema: &'static ObjectSchema,
        options: &Options,
    ) -> Result<Self, LoadError> {
        let program = compile::compile(file, text, schema, options)?;
        Ok(Self {
            file: file.to_owned(),
            text: text.into(),
            program,
            budget: budget::Budget::default(),
        })
    }

    /// Reads and compiles a mapping file.
    pub fn load(
        path: &FsPath,
        schema: &'static ObjectSchema,
        version: ApiVersion,
    ) -> Result<Self, LoadError> {
        Self::load_with(
            path,
            schema,
            &Options {
                version,
                keep: Vec::new(),
            },
        )
    }

    /// Reads and compiles a mapping file with explicit options.
    pub fn load_with(
        path: &FsPath,
        schema: &'static ObjectSchema,
        options: &Options,
    ) -> Result<Self, LoadError> {
        let (file, text) = read_file(path)?;
        Self::parse_with(&file, &text, schema, options)
    }

    /// Whether a rule or condition is a jq expression (jq can compute for
    /// long on a small body: such mappings run off the request workers).
    pub fn uses_jq(&self) -> bool {
        self.program.uses_jq
    }

    /// The file the mapping came from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// Produces the card (a JSON object in the target schema) from a CRM
    /// payload, within the mapping's budget.
    pub fn apply(&self, crm: &Value) -> Result<Value, ApplyError> {
        self.apply_ordered(crm).map(Object::into_value)
    }

    /// As [`apply`](Self::apply), the card left in its descriptor's order,
    /// to be written straight to bytes ([`Object::write`]).
    pub fn apply_ordered(&self, crm: &Value) -> Result<Object, ApplyError> {
        budget::metered(self.budget, || self.program.apply_root(crm))
    }

    /// As [`apply`](Self::apply), also returning the evaluation steps it took
    /// (for tests and benchmarks of the mapping's cost).
    pub fn apply_counted(&self, crm: &Value) -> (Result<Value, ApplyError>, u64) {
        budget::metered(self.budget, || {
            let out = self.program.apply_root(crm).map(Object::into_value);
            (out, budget::steps())
        })
    }

    /// Applies the mapping as [`apply`](Self::apply) does, but collects
    /// every error (each with its rule's `line:column`, the offending value
    /// and what was expected) and each field's source chain. For the
    /// integrator's tools only: it shows CRM values.
    pub fn explain(&self, crm: &Value) -> Explained {
        let (card, log) = budget::metered(self.budget, || self.program.apply_explained(crm));
        log.finish(&self.file, &self.text, card.ok().map(Object::into_value))
    }

    /// Sets the budget of each application (see [`budget`]).
    pub fn with_budget(mut self, budget: budget::Budget) -> Self {
        self.budget = budget;
        self
    }
}

#[cfg(test)]
mod lang_tests;
#[cfg(test)]
mod tests;
