//! API keys with scopes, transport-free: a front door hands in the key its client presented
//! and the scopes the operation needs. Keys are kept as SHA-256 hashes and compared in
//! constant time. With no keys configured, the first start creates one and keeps its hash in
//! the data directory.

use crate::config::{ApiKeyConfig, Config};
use crate::keys::{hex, random_bytes, unhex};
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::{ConditionallySelectable, ConstantTimeEq};

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
    /// Send step-up authentication requests (a 3-D Secure server).
    Authenticate,
    /// Work cases: read them and the card's transactions, act on them.
    Analyst,
}

impl Scope {
    pub const ALL: [Scope; 7] = [
        Scope::Admin,
        Scope::Authorize,
        Scope::Label,
        Scope::Metrics,
        Scope::Mail,
        Scope::Authenticate,
        Scope::Analyst,
    ];

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|x| x.as_str() == s)
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            Scope::Admin => "admin",
            Scope::Authorize => "authorize",
            Scope::Label => "label",
            Scope::Metrics => "metrics",
            Scope::Mail => "mail",
            Scope::Authenticate => "authenticate",
            Scope::Analyst => "analyst",
        }
    }
    fn bit(&self) -> u8 {
        1 << (*self as u8)
    }
}

/// Why a request was refused its credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("a valid API key is required")]
    Unauthenticated,
    #[error("the API key lacks the {0} scope")]
    Forbidden(&'static str),
    #[error("{0}")]
    Config(String),
    #[error("api keys file {path}: {why}")]
    File { path: String, why: String },
}

#[derive(Clone)]
struct Entry {
    hash: [u8; 32],
    scopes: u8,
}

/// The keys a server accepts.
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<Entry>,
}

/// SHA-256 of a byte string.
pub fn sha256(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

impl ApiKeys {
    pub fn from_config(cfg: &[ApiKeyConfig]) -> Result<ApiKeys, AccessError> {
        let mut keys = Vec::new();
        for (i, k) in cfg.iter().enumerate() {
            let name = k
                .name
                .clone()
                .unwrap_or_else(|| format!("auth.api_keys[{i}]"));
            let bad = |why: &str| AccessError::Config(format!("{name}: {why}"));
            let hash = match (&k.key, &k.key_sha256) {
                (Some(key), None) if key.len() >= 16 => sha256(key.as_bytes()),
                (Some(_), None) => return Err(bad("key must be at least 16 characters")),
                (None, Some(h)) => unhex(h)
                    .and_then(|v| <[u8; 32]>::try_from(v).ok())
                    .ok_or_else(|| bad("key_sha256 must be 64 hex digits"))?,
                _ => return Err(bad("give exactly one of key and key_sha256")),
            };
            let mut scopes = 0;
            for s in &k.scopes {
                scopes |= Scope::parse(s)
                    .ok_or_else(|| bad(&format!("unknown scope {s}")))?
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

    /// Checks a presented key and that it has one of `scopes`, and names the client it
    /// belongs to. Every configured key is compared, in constant time, whichever matches.
    pub fn check(
        &self,
        presented: Option<&str>,
        scopes: &[Scope],
    ) -> Result<ClientId, AccessError> {
        let presented = presented.ok_or(AccessError::Unauthenticated)?;
        let h = sha256(presented.as_bytes());
        let mut found: u8 = 0;
        let mut any = subtle::Choice::from(0);
        for e in &self.keys {
            let eq = e.hash.ct_eq(&h);
            any |= eq;
            found |= u8::conditional_select(&0, &e.scopes, eq);
        }
        if !bool::from(any) {
            return Err(AccessError::Unauthenticated);
        }
        if scopes.iter().any(|s| found & s.bit() != 0) {
            Ok(ClientId::of_key_hash(&h))
        } else {
            Err(AccessError::Forbidden(
                scopes.first().map_or("required", Scope::as_str),
            ))
        }
    }
}

/// Who sent a request: the first 8 bytes of its API key's SHA-256, in hex, after `k`. It
/// scopes request ids (one client's ids never find another's decisions), stays the same
/// across restarts and reveals nothing of the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);

impl ClientId {
    fn of_key_hash(h: &[u8; 32]) -> ClientId {
        ClientId(format!("k{}", crate::keys::hex(&h[..8])))
    }

    /// A client that presents no key: an in-process caller (a benchmark, a test, another
    /// front door with its own authentication), named by the caller.
    pub fn local(name: &str) -> ClientId {
        ClientId(format!("local:{name}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The file in the data directory that keeps the bootstrap key's hash.
pub const BOOTSTRAP_KEYS: &str = "api-keys.toml";

/// A new random API key (`cg_` and 48 hex digits) and its SHA-256 in hex.
pub fn new_key() -> Result<(String, String), AccessError> {
    let bytes = random_bytes::<24>().map_err(|e| AccessError::Config(e.to_string()))?;
    let key = format!("cg_{}", hex(&bytes));
    let hash = hex(&sha256(key.as_bytes()));
    Ok((key, hash))
}

/// The keys kept in the data directory's `api-keys.toml` (hashes only), if the file exists.
fn stored_keys(path: &Path) -> Result<Option<Vec<ApiKeyConfig>>, AccessError> {
    let ferr = |why: String| AccessError::File {
        path: path.display().to_string(),
        why,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ferr(e.to_string())),
    };
    #[derive(serde::Deserialize)]
    struct F {
        api_keys: Vec<ApiKeyConfig>,
    }
    let f: F = toml::from_str(&text).map_err(|e| ferr(e.to_string()))?;
    Ok(Some(f.api_keys))
}

/// Mints a key with `scopes` and adds its SHA-256 (never the key) to the data directory's
/// `api-keys.toml`, which a server reads at start when its config names no keys. Returns the
/// key, to be shown once, and its hash.
pub fn create_key(
    data_dir: &Path,
    name: &str,
    scopes: &[Scope],
) -> Result<(String, String), AccessError> {
    if scopes.is_empty() {
        return Err(AccessError::Config("give at least one scope".into()));
    }
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(AccessError::Config(format!(
            "key name {name:?} must be 1 to 64 letters, digits, - _ ."
        )));
    }
    let path = data_dir.join(BOOTSTRAP_KEYS);
    let mut keys = stored_keys(&path)?.unwrap_or_default();
    if keys.iter().any(|k| k.name.as_deref() == Some(name)) {
        return Err(AccessError::Config(format!(
            "{}: a key named {name:?} exists already",
            path.display()
        )));
    }
    let (key, hash) = new_key()?;
    keys.push(ApiKeyConfig {
        name: Some(name.to_owned()),
        key: None,
        key_sha256: Some(hash.clone()),
        scopes: scopes.iter().map(|s| s.as_str().to_owned()).collect(),
    });
    let mut text = String::from(
        "# API keys of this data directory, used when the config names no [[auth.api_keys]]:\n\
         # only their SHA-256 is kept. `cardguard keys create` adds one.\n",
    );
    for k in &keys {
        text.push_str(&format!(
            "\n[[api_keys]]\nname = {:?}\nkey_sha256 = {:?}\nscopes = {:?}\n",
            k.name.as_deref().unwrap_or("unnamed"),
            k.key_sha256.as_deref().unwrap_or_default(),
            k.scopes
        ));
    }
    crate::keys::private_dir_and_file(data_dir, &path, &text).map_err(|e| AccessError::File {
        path: path.display().to_string(),
        why: e.to_string(),
    })?;
    Ok((key, hash))
}

/// The keys from the config; with none there, those in the data directory, where the first
/// start creates one admin+authorize+label key. Returns the keys and, when one was created
/// now, the key itself (to be shown once: only its hash is kept).
pub fn load_keys(
    config: &Config,
    data_dir: &Path,
) -> Result<(ApiKeys, Option<String>), AccessError> {
    if !config.auth.api_keys.is_empty() {
        return Ok((ApiKeys::from_config(&config.auth.api_keys)?, None));
    }
    let path = data_dir.join(BOOTSTRAP_KEYS);
    if let Some(stored) = stored_keys(&path)? {
        return Ok((ApiKeys::from_config(&stored)?, None));
    }
    let (key, _) = create_key(
        data_dir,
        "bootstrap",
        &[Scope::Admin, Scope::Authorize, Scope::Label],
    )?;
    let stored = stored_keys(&path)?.unwrap_or_default();
    Ok((ApiKeys::from_config(&stored)?, Some(key)))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                key_sha256: Some(hex(&sha256(b"acquirer-key-0123456789"))),
                scopes: vec!["authorize".into()],
            },
        ];
        let k = ApiKeys::from_config(&cfg).unwrap();
        assert!(
            k.check(Some("admin-key-0123456789"), &[Scope::Admin])
                .is_ok()
        );
        assert_eq!(
            k.check(Some("admin-key-0123456789"), &[Scope::Authorize]),
            Err(AccessError::Forbidden("authorize"))
        );
        assert!(
            k.check(Some("acquirer-key-0123456789"), &[Scope::Authorize])
                .is_ok()
        );
        assert_eq!(
            k.check(Some("nope"), &[Scope::Admin]),
            Err(AccessError::Unauthenticated)
        );
        assert_eq!(
            k.check(None, &[Scope::Admin]),
            Err(AccessError::Unauthenticated)
        );
        let bad = |key: &str, scope: &str| {
            ApiKeys::from_config(&[ApiKeyConfig {
                name: None,
                key: Some(key.into()),
                key_sha256: None,
                scopes: vec![scope.into()],
            }])
            .is_err()
        };
        assert!(bad("short", "admin"));
        assert!(bad("long-enough-key-123", "root"));
    }

    #[test]
    fn the_bootstrap_key_is_created_once_and_only_its_hash_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (keys, shown) = load_keys(&Config::default(), dir.path()).unwrap();
        let key = shown.unwrap();
        assert!(keys.check(Some(&key), &[Scope::Admin]).is_ok());
        let file = std::fs::read_to_string(dir.path().join(BOOTSTRAP_KEYS)).unwrap();
        assert!(!file.contains(&key));
        let (again, shown) = load_keys(&Config::default(), dir.path()).unwrap();
        assert!(shown.is_none());
        assert!(again.check(Some(&key), &[Scope::Label]).is_ok());
        assert!(again.check(Some(&key), &[Scope::Mail]).is_err());
    }
}
