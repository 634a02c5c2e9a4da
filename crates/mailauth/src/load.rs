//! The analyzer's inputs read from files, in one place for the command and the server: the
//! built-in brand registry with a brands file merged in, and the sender verifier (the system's
//! resolvers, or a fixed zone file).

use crate::{AuthError, SenderVerifier, Zone};
use cardguard_phish::BrandRegistry;
use std::path::Path;

/// Why a brands file or a zone file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("brands file {path}: {why}")]
    Brands { path: String, why: String },
    #[error("zone file {path}: {source}")]
    Zone { path: String, source: AuthError },
    #[error("sender verifier: {0}")]
    Verifier(AuthError),
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The built-in brand registry, with the brands of `file` (the form of `brands.toml`) added.
pub fn brands(file: Option<&Path>) -> Result<BrandRegistry, LoadError> {
    let mut reg = BrandRegistry::builtin();
    if let Some(path) = file {
        reg.merge_toml(&read(path)?)
            .map_err(|e| LoadError::Brands {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
    }
    Ok(reg)
}

/// The sender verifier asked for: answers from `zone_file` when given, else from the system's
/// resolvers when `verify` is set, else none.
pub fn sender_verifier(
    verify: bool,
    zone_file: Option<&Path>,
) -> Result<Option<SenderVerifier>, LoadError> {
    match (zone_file, verify) {
        (Some(path), _) => {
            let zone = Zone::parse(&read(path)?).map_err(|source| LoadError::Zone {
                path: path.display().to_string(),
                source,
            })?;
            SenderVerifier::offline(zone)
                .map(Some)
                .map_err(LoadError::Verifier)
        }
        (None, true) => SenderVerifier::system()
            .map(Some)
            .map_err(LoadError::Verifier),
        (None, false) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_read_and_their_errors_name_them() {
        let dir = std::env::temp_dir().join(format!("cg-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let zone = dir.join("zone.txt");
        std::fs::write(&zone, "example.com TXT \"v=spf1 -all\"\n").unwrap();
        assert!(sender_verifier(false, Some(&zone)).unwrap().is_some());
        assert!(sender_verifier(false, None).unwrap().is_none());
        std::fs::write(&zone, "example.com BOGUS\n").unwrap();
        let e = sender_verifier(false, Some(&zone))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("zone.txt"), "{e}");
        let missing = dir.join("missing.toml");
        let e = brands(Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
        assert!(!brands(None).unwrap().brands().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
