//! Credentials over HTTP: the bearer key of the `Authorization` header, checked by the
//! application's [`ApiKeys`]. The scheme is matched without regard to case (RFC 9110).

use super::error::ApiError;
use axum::http::HeaderMap;
use cardguard_app::{AccessError, ApiKeys, ClientId, Scope};

/// The key presented as `Authorization: Bearer <key>`, if any. More than one
/// `Authorization` header is a malformed request (which one would count?).
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut all = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return if headers.contains_key(axum::http::header::AUTHORIZATION) {
            Err(ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "invalid_header",
                "give one Authorization header, not several",
            ))
        } else {
            Ok(None)
        };
    };
    let Some((scheme, key)) = v.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return Ok(None);
    };
    Ok(scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty()))
}

/// Checks the request's key and that it has one of `scopes`; the client it names.
pub fn require(
    keys: &ApiKeys,
    headers: &HeaderMap,
    scopes: &[Scope],
) -> Result<ClientId, ApiError> {
    keys.check(bearer(headers)?, scopes).map_err(ApiError::from)
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> ApiError {
        match e {
            AccessError::Unauthenticated => ApiError::unauthorized(),
            AccessError::Forbidden(scope) => ApiError::forbidden(scope),
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn bearer_keys_are_read_and_checked() {
        let mut k = ApiKeys::default();
        k.add("admin-key-0123456789", &[Scope::Admin]);
        assert!(require(&k, &headers("Bearer admin-key-0123456789"), &[Scope::Admin]).is_ok());
        assert!(require(&k, &headers("bearer admin-key-0123456789"), &[Scope::Admin]).is_ok());
        assert_eq!(
            require(&k, &headers("Bearer admin-key-0123456789"), &[Scope::Label])
                .unwrap_err()
                .status,
            403
        );
        for bad in [
            "Bearer nope",
            "Basic abc",
            "Bearer ",
            "admin-key-0123456789",
        ] {
            assert_eq!(
                require(&k, &headers(bad), &[Scope::Admin])
                    .unwrap_err()
                    .status,
                401,
                "{bad}"
            );
        }
        assert_eq!(
            require(&k, &HeaderMap::new(), &[Scope::Admin])
                .unwrap_err()
                .status,
            401
        );
        // Two Authorization headers, even with a valid key in one: 400.
        let mut two = headers("Bearer admin-key-0123456789");
        two.append(
            axum::http::header::AUTHORIZATION,
            "Bearer other-key-0123456789".parse().unwrap(),
        );
        let e = require(&k, &two, &[Scope::Admin]).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "invalid_header"));
    }
}
