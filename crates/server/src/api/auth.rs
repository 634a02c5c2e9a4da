//! API keys with scopes. Keys are kept as SHA-256 hashes and compared in constant time.

use super::error::ApiError;
use crate::config::ApiKeyConfig;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Enroll cards, read statistics, change settings.
    Admin,
    /// Send authorizations.
    Authorize,
    /// Send fraud/genuine labels.
    Label,
    /// Read /metrics.
    Metrics,
    /// Submit mail to the phishing analyzer.
    Mail,
}

impl Scope {
    fn parse(s: &str) -> Option<Scope> {
        match s {
            "admin" => Some(Scope::Admin),
            "authorize" => Some(Scope::Authorize),
            "label" => Some(Scope::Label),
            "metrics" => Some(Scope::Metrics),
            "mail" => Some(Scope::Mail),
            _ => None,
        }
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Authorize => "authorize",
            Scope::Label => "label",
            Scope::Metrics => "metrics",
            Scope::Mail => "mail",
        }
    }
    fn bit(&self) -> u8 {
        match self {
            Scope::Admin => 1,
            Scope::Authorize => 2,
            Scope::Label => 4,
            Scope::Metrics => 8,
            Scope::Mail => 16,
        }
    }
}

#[derive(Clone)]
struct Entry {
    hash: [u8; 32],
    scopes: u8,
}

/// The configured keys.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Entry>,
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl ApiKeys {
    pub fn from_config(cfg: &[ApiKeyConfig]) -> Result<ApiKeys, String> {
        let mut keys = Vec::new();
        for (i, k) in cfg.iter().enumerate() {
            let name = k
                .name
                .clone()
                .unwrap_or_else(|| format!("auth.api_keys[{i}]"));
            let hash = match (&k.key, &k.key_sha256) {
                (Some(key), None) if key.len() >= 16 => sha256(key.as_bytes()),
                (Some(_), None) => {
                    return Err(format!("{name}: key must be at least 16 characters"));
                }
                (None, Some(h)) => crate::keys::unhex(h)
                    .and_then(|v| <[u8; 32]>::try_from(v).ok())
                    .ok_or_else(|| format!("{name}: key_sha256 must be 64 hex digits"))?,
                _ => return Err(format!("{name}: give exactly one of key and key_sha256")),
            };
            let mut scopes = 0;
            for s in &k.scopes {
                scopes |= Scope::parse(s)
                    .ok_or_else(|| format!("{name}: unknown scope {s}"))?
                    .bit();
            }
            keys.push(Entry { hash, scopes });
        }
        Ok(ApiKeys { keys })
    }

    pub fn add(&mut self, key: &str, scopes: &[Scope]) {
        self.keys.push(Entry {
            hash: sha256(key.as_bytes()),
            scopes: scopes.iter().fold(0, |a, s| a | s.bit()),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks the bearer key and that it has one of `scopes`.
    pub fn require(&self, headers: &HeaderMap, scopes: &[Scope]) -> Result<(), ApiError> {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(ApiError::unauthorized)?;
        let h = sha256(presented.as_bytes());
        let mut found: u8 = 0;
        let mut any = subtle::Choice::from(0);
        for e in &self.keys {
            let eq = e.hash.ct_eq(&h);
            any |= eq;
            found |= u8::conditional_select(&0, &e.scopes, eq);
        }
        if !bool::from(any) {
            return Err(ApiError::unauthorized());
        }
        if scopes.iter().any(|s| found & s.bit() != 0) {
            Ok(())
        } else {
            Err(ApiError::forbidden(scopes[0].as_str()))
        }
    }
}

use subtle::ConditionallySelectable;

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(axum::http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[test]
    fn keys_scopes_and_hashes() {
        let cfg = vec![
            ApiKeyConfig {
                name: None,
                key: Some("admin-key-0123456789".into()),
                key_sha256: None,
                scopes: vec!["admin".into()],
            },
            ApiKeyConfig {
                name: None,
                key: None,
                key_sha256: Some(crate::keys::hex(&sha256(b"acquirer-key-0123456789"))),
                scopes: vec!["authorize".into()],
            },
        ];
        let k = ApiKeys::from_config(&cfg).unwrap();
        assert!(
            k.require(&headers("Bearer admin-key-0123456789"), &[Scope::Admin])
                .is_ok()
        );
        assert_eq!(
            k.require(&headers("Bearer admin-key-0123456789"), &[Scope::Authorize])
                .unwrap_err()
                .status,
            403
        );
        assert!(
            k.require(
                &headers("Bearer acquirer-key-0123456789"),
                &[Scope::Authorize]
            )
            .is_ok()
        );
        assert_eq!(
            k.require(&headers("Bearer nope"), &[Scope::Admin])
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            k.require(&HeaderMap::new(), &[Scope::Admin])
                .unwrap_err()
                .status,
            401
        );
        assert_eq!(
            k.require(&headers("Basic abc"), &[Scope::Admin])
                .unwrap_err()
                .status,
            401
        );
        let bad = vec![ApiKeyConfig {
            name: None,
            key: Some("short".into()),
            key_sha256: None,
            scopes: vec![],
        }];
        assert!(ApiKeys::from_config(&bad).is_err());
        let bad = vec![ApiKeyConfig {
            name: None,
            key: Some("long-enough-key-123".into()),
            key_sha256: None,
            scopes: vec!["root".into()],
        }];
        assert!(ApiKeys::from_config(&bad).is_err());
    }
}
