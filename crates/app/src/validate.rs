//! Field checks shared by every front door: each names the field that failed and never
//! echoes the value (it may be a card number or another secret).

use cardguard_core::{Currency, Location, Money, ParseError};

/// A field that failed validation: its path (`merchant.mcc`) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A domain parser's result with the field named.
pub fn parsed<T>(field: &str, r: Result<T, ParseError>) -> Result<T, FieldError> {
    r.map_err(|e| FieldError::new(field, e.to_string()))
}

/// Free text: not blank, at most `max` characters, no control characters.
pub fn text(field: &str, v: &str, max: usize) -> Result<String, FieldError> {
    if v.trim().is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(v.to_owned())
}

/// Identifiers: 1 to 64 characters of letters, digits and `._:-`.
pub fn ident(field: &str, v: &str) -> Result<String, FieldError> {
    if v.is_empty() || v.len() > 64 {
        return Err(FieldError::new(field, "must be 1 to 64 characters"));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err(FieldError::new(
            field,
            "may contain only letters, digits and . _ : -",
        ));
    }
    Ok(v.to_owned())
}

/// `min` to `max` ASCII digits.
pub fn digits(field: &str, v: &str, min: usize, max: usize) -> Result<String, FieldError> {
    if v.len() < min || v.len() > max || !v.bytes().all(|b| b.is_ascii_digit()) {
        let what = if min == max {
            format!("{min} digits")
        } else {
            format!("{min} to {max} digits")
        };
        return Err(FieldError::new(field, format!("must be {what}")));
    }
    Ok(v.to_owned())
}

/// A place from optional coordinates: both or neither.
pub fn location(
    prefix: &str,
    lat: Option<f64>,
    lon: Option<f64>,
) -> Result<Option<Location>, FieldError> {
    match (lat, lon) {
        (None, None) => Ok(None),
        (Some(lat), Some(lon)) => Location::new(lat, lon)
            .map(Some)
            .map_err(|e| FieldError::new(format!("{prefix}lat"), e.to_string())),
        (Some(_), None) => Err(FieldError::new(
            format!("{prefix}lon"),
            "is required with lat",
        )),
        (None, Some(_)) => Err(FieldError::new(
            format!("{prefix}lat"),
            "is required with lon",
        )),
    }
}

/// An amount in minor units of a currency given by its ISO 4217 code.
pub fn money(prefix: &str, value: u64, currency: &str) -> Result<Money, FieldError> {
    let c = parsed(&format!("{prefix}.currency"), Currency::parse(currency))?;
    parsed(&format!("{prefix}.value"), Money::new(value, c))
}

/// Hex digits into bytes.
pub fn hex_bytes(field: &str, v: &str) -> Result<Vec<u8>, FieldError> {
    crate::keys::unhex(v).ok_or_else(|| FieldError::new(field, "must be hex digits"))
}
