//! The one error type of the domain parsers: what was wrong with a value, never the value.

/// Why a value did not parse. Messages never echo the rejected input, because the input may
/// be a card number or another secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("must not be empty")]
    Empty,
    #[error("must contain only digits")]
    NotDigits,
    #[error("must be {min} to {max} characters long")]
    Length { min: usize, max: usize },
    #[error("must be {0}")]
    Format(&'static str),
    #[error("is out of range: {0}")]
    Range(&'static str),
    #[error("must be one of {0}")]
    OneOf(&'static str),
    #[error("is not a known {0}")]
    Unknown(&'static str),
}
