//! Credentials over HTTP: the bearer key of the `Authorization` header, checked by the
//! application's [`ApiKeys`]. The scheme is matched without regard to case (RFC 9110).

use super::error::ApiError;
use axum::http::HeaderMap;
use cardguard_app::{AccessError, ApiKeys, ClientId, Scope};

/// The key presented as `Authorization: Bearer <key>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| key.trim())
        .filter(|k| !k.is_empty())
}

/// Checks the request's key and that it has one of `scopes`; the client it names.
pub fn require(
    keys: &ApiKeys,
    headers: &HeaderMap,
    scopes: &[Scope],
) -> Result<ClientId, ApiError> {
    keys.check(bearer(headers), scopes).map_err(ApiError::from)
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
    }
}
