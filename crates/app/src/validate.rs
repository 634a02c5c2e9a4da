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

/// An optional text field, checked as [`text`] when present.
pub fn optional_text(
    field: &str,
    v: &Option<String>,
    max: usize,
) -> Result<Option<String>, FieldError> {
    v.as_deref().map(|s| text(field, s, max)).transpose()
}

/// An optional IPv4 or IPv6 address.
pub fn optional_ip(
    field: &str,
    v: &Option<String>,
) -> Result<Option<std::net::IpAddr>, FieldError> {
    v.as_deref()
        .map(|s| {
            s.parse()
                .map_err(|_| FieldError::new(field, "must be an IPv4 or IPv6 address"))
        })
        .transpose()
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

/// What kind of JSON decoding error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeKind {
    /// Not JSON at all.
    Syntax,
    /// A required field is absent.
    Missing,
    /// A field that the record does not have.
    Unknown,
    /// A field of the wrong type or out of range.
    Invalid,
}

/// A JSON document that does not decode into the record: the field (when known) and what
/// is wrong, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_ref().map(|f| format!("{f} ")).unwrap_or_default())]
pub struct DecodeError {
    pub kind: DecodeKind,
    pub field: Option<String>,
    pub message: String,
}

impl From<DecodeError> for FieldError {
    fn from(e: DecodeError) -> FieldError {
        FieldError::new(e.field.unwrap_or_default(), e.message)
    }
}

fn from_json_error(e: serde_path_to_error::Error<serde_json::Error>) -> DecodeError {
    let path = e.path().to_string();
    let inner = e.inner();
    use serde_json::error::Category;
    let field = |p: String| DecodeError {
        kind: DecodeKind::Invalid,
        field: Some(p),
        message: String::new(),
    };
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => DecodeError {
            kind: DecodeKind::Syntax,
            field: (path != ".").then_some(path),
            message: format!(
                "request body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        },
        Category::Data => {
            let msg = inner.to_string();
            let msg = msg.split(" at line ").next().unwrap_or("").to_owned();
            let join = |name: &str| {
                let name: String = name.chars().take(64).collect();
                if path == "." {
                    name
                } else if path.rsplit('.').next() == Some(name.as_str()) {
                    // Unknown fields already stand at the end of the path.
                    path.clone()
                } else {
                    format!("{path}.{name}")
                }
            };
            let quoted = |m: &str| m.split('`').nth(1).unwrap_or("").to_owned();
            let here = if path == "." {
                String::new()
            } else {
                path.clone()
            };
            if msg.starts_with("missing field") {
                DecodeError {
                    kind: DecodeKind::Missing,
                    message: "is required".into(),
                    ..field(join(&quoted(&msg)))
                }
            } else if msg.starts_with("unknown field") {
                DecodeError {
                    kind: DecodeKind::Unknown,
                    message: "is not a known field".into(),
                    ..field(join(&quoted(&msg)))
                }
            } else if let Some(exp) = msg.split(", expected ").nth(1) {
                let what = match exp {
                    "u64" | "u32" | "u16" | "u8" | "usize" => "a non-negative integer in range",
                    "i64" | "i32" | "i16" => "an integer in range",
                    "f64" | "f32" => "a number",
                    "a boolean" => "true or false",
                    other => other,
                };
                DecodeError {
                    message: format!("must be {what}"),
                    ..field(here)
                }
            } else {
                DecodeError {
                    message: "is invalid".into(),
                    ..field(here)
                }
            }
        }
    }
}

/// Decodes a JSON document into `T`, with errors that name the field and never echo a
/// value. The fast path decodes directly; only a refused document is decoded again with
/// path tracking to name the field.
pub fn decode_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, DecodeError> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(_) => {
            let de = &mut serde_json::Deserializer::from_slice(body);
            match serde_path_to_error::deserialize::<_, T>(de) {
                Err(e) => Err(from_json_error(e)),
                // Cannot happen (the same input failed above); refuse it all the same.
                Ok(_) => Err(DecodeError {
                    kind: DecodeKind::Invalid,
                    field: None,
                    message: "is invalid".into(),
                }),
            }
        }
    }
}

/// Decodes a JSON value into `T`, with the errors of [`decode_json`].
pub fn decode_value<T: serde::de::DeserializeOwned>(
    v: serde_json::Value,
) -> Result<T, DecodeError> {
    serde_path_to_error::deserialize::<_, T>(v).map_err(from_json_error)
}
