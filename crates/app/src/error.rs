//! The application's errors: what went wrong in domain terms. A front door maps them to its
//! own answer (an HTTP status, an ISO 8583 response code); messages never echo secrets.

use crate::validate::FieldError;

/// Why an operation of [`crate::App`] did not happen. Nothing changed when it is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    /// The request is wrong: a field failed a check.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// What the request names does not exist (or is no longer retained).
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts one accepted before (a request id reused for another
    /// request).
    #[error("{0}")]
    Conflict(String),
    /// A store cannot take writes now (the event log writer failed, the card database is
    /// unreachable): try again later.
    #[error("{0}")]
    Unavailable(String),
    /// A ruleset that does not compile: every error, at its line and column.
    #[error("ruleset refused: {}", crate::rules::render(.0))]
    Rules(Vec<cardguard_rules::RulesetError>),
    /// A fault of cardguard itself.
    #[error("{0}")]
    Internal(String),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> AppError {
        AppError::Invalid(FieldError::new(field, message))
    }
}

/// Why the data directory, a model file or a brands file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("model file {path}: {why}")]
    Model { path: String, why: String },
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyRingError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] cardguard_store::StoreError),
    #[error(transparent)]
    CardRow(#[from] crate::registry::RowError),
    #[error(transparent)]
    Mail(#[from] cardguard_mailauth::load::LoadError),
    #[error(transparent)]
    Access(#[from] crate::access::AccessError),
    #[error("ruleset: {0}")]
    Rules(String),
}
