//! API errors: `{"error": {"code", "message", "field"}}` with a 4xx status for bad input and
//! a 5xx status only for faults of the server. Messages never echo submitted values.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Errors at places in a submitted text (a ruleset), each with its line and column.
    pub errors: Vec<ErrorAt>,
}

/// An error at a place in a submitted text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorAt {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            errors: Vec::new(),
        }
    }
    /// A field that failed validation: 400 with the field's path.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
            errors: Vec::new(),
        }
    }
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid API key is required (Authorization: Bearer <key>)",
        )
    }
    pub fn forbidden(scope: &str) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the API key lacks the {scope} scope"),
        )
    }
    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", what)
    }
    pub fn unavailable(why: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why)
    }
    pub fn internal(why: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", why)
    }
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    }
}

impl From<cardguard_app::FieldError> for ApiError {
    fn from(e: cardguard_app::FieldError) -> ApiError {
        ApiError::field(e.field, e.message)
    }
}

impl From<cardguard_app::AppError> for ApiError {
    fn from(e: cardguard_app::AppError) -> ApiError {
        use cardguard_app::AppError as E;
        match e {
            E::Invalid(f) => f.into(),
            E::NotFound(m) => ApiError::not_found(m),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            E::Unavailable(m) => ApiError::unavailable(m),
            E::Internal(m) => ApiError::internal(m),
            E::Rules(errors) => ApiError {
                errors: errors
                    .iter()
                    .map(|e| ErrorAt {
                        rule: e.rule.clone(),
                        line: e.at.line,
                        column: e.at.column,
                        message: e.message.clone(),
                    })
                    .collect(),
                ..ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_ruleset",
                    format!(
                        "the ruleset was refused with {} error(s); the ruleset in force stays",
                        errors.len()
                    ),
                )
            },
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}
#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[ErrorAt]>::is_empty")]
    errors: &'a [ErrorAt],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                errors: &self.errors,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

/// Decodes a JSON body into `T`, with field-named errors (see
/// [`cardguard_app::validate::decode_json`]).
pub fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    cardguard_app::validate::decode_json(body).map_err(ApiError::from)
}

impl From<cardguard_app::validate::DecodeError> for ApiError {
    fn from(e: cardguard_app::validate::DecodeError) -> ApiError {
        use cardguard_app::validate::DecodeKind as K;
        let code = match e.kind {
            K::Syntax => "invalid_json",
            K::Missing => "missing_field",
            K::Unknown => "unknown_field",
            K::Invalid => "invalid_field",
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code,
            message: e.message,
            field: e.field,
            errors: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        card: Card,
        n: u64,
    }
    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Card {
        number: String,
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let e = decode::<Outer>(br#"{"card": {"number": "1"}}"#).unwrap_err();
        assert_eq!((e.code, e.field.as_deref()), ("missing_field", Some("n")));
        let e = decode::<Outer>(br#"{"card": {"number": "1", "cvv": "123"}, "n": 1}"#).unwrap_err();
        assert_eq!(
            (e.code, e.field.as_deref()),
            ("unknown_field", Some("card.cvv"))
        );
        let e = decode::<Outer>(br#"{"card": {"number": 4123456789012349}, "n": 1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("card.number"));
        assert!(!e.message.contains("4123456789012349"), "{}", e.message);
        let e =
            decode::<Outer>(br#"{"card": {"number": "1"}, "n": "4123456789012349"}"#).unwrap_err();
        assert!(!e.message.contains("4123"), "{}", e.message);
        assert_eq!(e.message, "must be a non-negative integer in range");
        let e = decode::<Outer>(br#"{"card": "#).unwrap_err();
        assert_eq!(e.code, "invalid_json");
        let e = decode::<Outer>(br#"{"card": {"number": "1"}, "n": -5}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("n"));
    }
}
