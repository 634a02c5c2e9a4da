//! The key ring: card-token HMAC key, PAN encryption key, stored-CSC key, CVKs, PVKs and PIN
//! encryption keys. Keys come from the config (or the environment); the three data keys are
//! created in the data directory on first start when the config names none.

use crate::config::KeysConfig;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use cardguard_cardsec::{AesKey, TdesKey};
use cardguard_core::{CardToken, Pan};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("key {name}: {why}")]
    Bad { name: String, why: String },
    #[error("key file {path}: {why}")]
    File { path: String, why: String },
    #[error("random source failed: {0}")]
    Random(String),
    #[error("PAN ciphertext does not decrypt with the configured key")]
    Decrypt,
}

/// A 32-byte secret with a `Debug` that hides it.
#[derive(Clone)]
pub struct Secret32([u8; 32]);

impl std::fmt::Debug for Secret32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret32(***)")
    }
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], KeyRingError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| KeyRingError::Random(e.to_string()))?;
    Ok(b)
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn secret32(name: &str, hexs: &str) -> Result<Secret32, KeyRingError> {
    let v = unhex(hexs)
        .filter(|v| v.len() == 32)
        .ok_or_else(|| KeyRingError::Bad {
            name: name.into(),
            why: "must be 64 hex digits (32 bytes)".into(),
        })?;
    let mut k = [0u8; 32];
    k.copy_from_slice(&v);
    Ok(Secret32(k))
}

#[derive(Debug)]
pub struct KeyRing {
    token: Secret32,
    pan: Secret32,
    csc: Secret32,
    pub cvk: BTreeMap<String, TdesKey>,
    pub pvk: BTreeMap<String, TdesKey>,
    pub pin_tdes: Option<TdesKey>,
    pub pin_aes: Option<AesKey>,
}

const KEY_FILE: &str = "keys.toml";

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    token: Option<String>,
    pan: Option<String>,
    csc: Option<String>,
}

impl KeyRing {
    /// Builds the ring from the config; data keys the config lacks come from (or are created
    /// in) `data_dir/keys.toml`. Returns the ring and the names of keys created now.
    pub fn load(
        cfg: &KeysConfig,
        data_dir: &Path,
    ) -> Result<(KeyRing, Vec<&'static str>), KeyRingError> {
        let path = data_dir.join(KEY_FILE);
        let ferr = |why: String| KeyRingError::File {
            path: path.display().to_string(),
            why,
        };
        let mut file: KeyFile = match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map_err(|e| ferr(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeyFile::default(),
            Err(e) => return Err(ferr(e.to_string())),
        };
        let mut created = Vec::new();
        let mut pick =
            |name: &'static str, configured: &Option<String>, stored: &mut Option<String>| {
                if let Some(c) = configured {
                    return secret32(&format!("keys.{name}"), c);
                }
                if stored.is_none() {
                    *stored = Some(hex(&random_bytes::<32>()?));
                    created.push(name);
                }
                secret32(
                    &format!("{KEY_FILE} {name}"),
                    stored.as_deref().unwrap_or_default(),
                )
            };
        let token = pick("token", &cfg.token, &mut file.token)?;
        let pan = pick("pan", &cfg.pan, &mut file.pan)?;
        let csc = pick("csc", &cfg.csc, &mut file.csc)?;
        if !created.is_empty() {
            let mut text = String::from(
                "# Data keys cardguard created on first start. Keep this file secret and backed up:\n\
                 # without it the card tokens change and stored PANs cannot be decrypted.\n",
            );
            for (n, v) in [
                ("token", &file.token),
                ("pan", &file.pan),
                ("csc", &file.csc),
            ] {
                if let Some(v) = v {
                    text.push_str(&format!("{n} = \"{v}\"\n"));
                }
            }
            write_private(&path, &text).map_err(|e| ferr(e.to_string()))?;
        }
        let tdes = |kind: &str,
                    m: &BTreeMap<String, String>|
         -> Result<BTreeMap<String, TdesKey>, KeyRingError> {
            m.iter()
                .map(|(id, h)| {
                    TdesKey::from_hex(h)
                        .map(|k| (id.clone(), k))
                        .map_err(|e| KeyRingError::Bad {
                            name: format!("keys.{kind}.{id}"),
                            why: e.to_string(),
                        })
                })
                .collect()
        };
        let ring = KeyRing {
            token,
            pan,
            csc,
            cvk: tdes("cvk", &cfg.cvk)?,
            pvk: tdes("pvk", &cfg.pvk)?,
            pin_tdes: cfg
                .pin_tdes
                .as_deref()
                .map(TdesKey::from_hex)
                .transpose()
                .map_err(|e| KeyRingError::Bad {
                    name: "keys.pin_tdes".into(),
                    why: e.to_string(),
                })?,
            pin_aes: cfg
                .pin_aes
                .as_deref()
                .map(AesKey::from_hex)
                .transpose()
                .map_err(|e| KeyRingError::Bad {
                    name: "keys.pin_aes".into(),
                    why: e.to_string(),
                })?,
        };
        Ok((ring, created))
    }

    /// The card token: HMAC-SHA-256 of the PAN under the token key, first 16 bytes.
    pub fn token(&self, pan: &Pan) -> CardToken {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.token.0).expect("any key length");
        mac.update(pan.expose().as_bytes());
        let out = mac.finalize().into_bytes();
        let mut t = [0u8; 16];
        t.copy_from_slice(&out[..16]);
        CardToken(t)
    }

    /// A keyed digest of a canonical request (HMAC-SHA-256 under the token key, with a
    /// label of its own, first 16 bytes): equal requests get equal digests, and the digest
    /// reveals nothing of the card data in it to whoever lacks the key.
    pub fn request_digest(&self, canonical: &[u8]) -> u128 {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.token.0).expect("any key length");
        mac.update(b"cardguard request digest v1\0");
        mac.update(canonical);
        let out = mac.finalize().into_bytes();
        let mut d = [0u8; 16];
        d.copy_from_slice(&out[..16]);
        u128::from_be_bytes(d)
    }

    /// The MAC of a link sent to a cardholder (an answer to an alert): only this server can
    /// make one, and a changed link does not verify.
    pub fn link_mac(&self, link: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.token.0).expect("any key length");
        mac.update(b"cardguard cardholder link v1\0");
        mac.update(link);
        mac.finalize().into_bytes().into()
    }

    /// A MAC under a key of its own for `purpose` (derived from the token key with the
    /// purpose as a label): one-time-code hashes, device tokens, authentication values.
    pub fn keyed(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.token.0).expect("any key length");
        mac.update(b"cardguard keyed v1\0");
        mac.update(purpose.as_bytes());
        mac.update(b"\0");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Encrypts a secret of a card (an authenticator app's key) with the PAN key
    /// (AES-256-GCM), bound to the card's token and `purpose`: ciphertext and nonce.
    pub fn seal(
        &self,
        purpose: &str,
        token: &CardToken,
        secret: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), KeyRingError> {
        let nonce = random_bytes::<12>()?;
        let cipher = Aes256Gcm::new_from_slice(&self.pan.0).map_err(|_| KeyRingError::Decrypt)?;
        let aad = [purpose.as_bytes(), b"\0", &token.0].concat();
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| KeyRingError::Decrypt)?;
        Ok((ct, nonce.to_vec()))
    }

    /// Decrypts what [`KeyRing::seal`] encrypted for the same purpose and card.
    pub fn unseal(
        &self,
        purpose: &str,
        token: &CardToken,
        ct: &[u8],
        nonce: &[u8],
    ) -> Result<Vec<u8>, KeyRingError> {
        if nonce.len() != 12 {
            return Err(KeyRingError::Decrypt);
        }
        let cipher = Aes256Gcm::new_from_slice(&self.pan.0).map_err(|_| KeyRingError::Decrypt)?;
        let aad = [purpose.as_bytes(), b"\0", &token.0].concat();
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| KeyRingError::Decrypt)
    }

    pub fn csc_key(&self) -> &[u8] {
        &self.csc.0
    }

    /// Encrypts the PAN with AES-256-GCM, bound to its token as associated data.
    pub fn encrypt_pan(
        &self,
        pan: &Pan,
        token: &CardToken,
    ) -> Result<(Vec<u8>, Vec<u8>), KeyRingError> {
        let nonce = random_bytes::<12>()?;
        let cipher = Aes256Gcm::new_from_slice(&self.pan.0).map_err(|_| KeyRingError::Decrypt)?;
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: pan.expose().as_bytes(),
                    aad: &token.0,
                },
            )
            .map_err(|_| KeyRingError::Decrypt)?;
        Ok((ct, nonce.to_vec()))
    }

    pub fn decrypt_pan(
        &self,
        ct: &[u8],
        nonce: &[u8],
        token: &CardToken,
    ) -> Result<Pan, KeyRingError> {
        if nonce.len() != 12 {
            return Err(KeyRingError::Decrypt);
        }
        let cipher = Aes256Gcm::new_from_slice(&self.pan.0).map_err(|_| KeyRingError::Decrypt)?;
        let pt = cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: &token.0,
                },
            )
            .map_err(|_| KeyRingError::Decrypt)?;
        let s = String::from_utf8(pt).map_err(|_| KeyRingError::Decrypt)?;
        Pan::parse(&s).map_err(|_| KeyRingError::Decrypt)
    }
}

/// Writes a file readable by the owner only into `dir`, creating the directory (0700) if it
/// is missing.
pub fn private_dir_and_file(dir: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    cardguard_store::private::create_dir(dir)?;
    write_private(path, text)
}

/// Writes a file readable by the owner only.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = cardguard_store::private::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_and_pan_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = KeyRing::load(&KeysConfig::default(), dir.path()).unwrap();
        assert_eq!(created, ["token", "pan", "csc"]);
        let (b, created) = KeyRing::load(&KeysConfig::default(), dir.path()).unwrap();
        assert!(created.is_empty());
        let pan = Pan::parse("4123456789012349").unwrap();
        assert_eq!(a.token(&pan), b.token(&pan));
        let t = a.token(&pan);
        let (ct, nonce) = a.encrypt_pan(&pan, &t).unwrap();
        assert!(!ct.windows(16).any(|w| w == pan.expose().as_bytes()));
        assert_eq!(b.decrypt_pan(&ct, &nonce, &t).unwrap(), pan);
        let other = CardToken([0; 16]);
        assert!(
            b.decrypt_pan(&ct, &nonce, &other).is_err(),
            "bound to its token"
        );
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
        assert!(format!("{a:?}").contains("***"));
    }

    #[test]
    fn configured_keys_win_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = KeysConfig {
            token: Some("11".repeat(32)),
            ..Default::default()
        };
        let (_, created) = KeyRing::load(&cfg, dir.path()).unwrap();
        assert_eq!(created, ["pan", "csc"]);
        let cfg = KeysConfig {
            token: Some("zz".into()),
            ..Default::default()
        };
        let err = KeyRing::load(&cfg, dir.path()).unwrap_err().to_string();
        assert!(err.contains("keys.token"), "{err}");
    }
}
