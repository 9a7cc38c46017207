//! Where a mapping's application stands when it fails: a breadcrumb to the
//! field being produced (rendered only on error, so the walk builds no
//! strings) and the failure that carries it.

use super::budget;
use super::error::ApplyError;

/// Charges `n` steps of the budget to the field at `trail`.
pub(super) fn spend(trail: &Trail<'_>, n: u64) -> Result<(), Failure> {
    budget::charge(n).map_err(|e| Failure::invalid(trail, e.to_string()))
}

/// A breadcrumb to the field being produced, rendered only on error.
#[derive(Clone, Copy)]
pub(super) enum Trail<'a> {
    Root,
    Field(&'a Trail<'a>, &'static str),
    Index(&'a Trail<'a>, usize),
}

impl Trail<'_> {
    pub(super) fn render(&self) -> String {
        match self {
            Trail::Root => String::new(),
            Trail::Field(parent, name) => {
                let p = parent.render();
                if p.is_empty() {
                    (*name).to_owned()
                } else {
                    format!("{p}.{name}")
                }
            }
            Trail::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

/// Failure inside an object: a required value absent (which an explicit list
/// item tolerates) or any other error.
pub(super) enum Failure {
    Missing(ApplyError),
    Invalid(ApplyError),
}

impl Failure {
    pub(super) fn error(&self) -> &ApplyError {
        match self {
            Failure::Missing(e) | Failure::Invalid(e) => e,
        }
    }

    pub(super) fn into_error(self) -> ApplyError {
        match self {
            Failure::Missing(e) | Failure::Invalid(e) => e,
        }
    }

    pub(super) fn invalid(trail: &Trail<'_>, message: String) -> Self {
        Failure::Invalid(ApplyError::new(trail.render(), message))
    }
}
