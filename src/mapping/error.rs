//! Apply-time errors: why one CRM payload could not become a card, naming
//! the target field. (Load-time problems are [`crate::diagnostics`].)
//!
//! They never carry a value taken from a CRM payload: messages name fields
//! and types only, because the values are personal data.

/// Why a mapping could not turn one CRM payload into a valid card.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ApplyError {
    /// The target field (`client.surname`, `companyList[1].id`).
    pub field: String,
    /// What went wrong, without any payload value.
    pub message: String,
}

impl ApplyError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
