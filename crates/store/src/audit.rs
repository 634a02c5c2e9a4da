//! The audit trail (`audit.log`): every analyst and cardholder action, rule change and key
//! change, one JSON line each, appended and synced before the action's answer. Each entry
//! carries its sequence number, the hash of the entry before it and its own hash (SHA-256 of
//! the previous hash and the entry's canonical JSON without its hash), so that
//! [`verify`] finds a changed entry (its hash does not match), a removed one (a gap in the
//! numbers, and the next entry's previous hash does not match) and a reordered one, and
//! names it. A trail cut at its end is found only against a head recorded elsewhere: the
//! verification prints the head (the last entry's number and hash) to keep. Appends take
//! the file's lock and chain from the last entry on disk, so that a command (`keys create`)
//! may append beside a running server. Appends take
//! the file's lock and chain from the last entry on disk, so that a command (`keys create`)
//! may append beside a running server.

use crate::StoreError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One entry: who did what to what, and how it came out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    /// Unix milliseconds.
    pub at_ms: i64,
    /// `key:NAME` (an API key's client), `cardholder:web`, `cardholder:sms`, `cli`, `server`.
    pub actor: String,
    /// What was done: `POST /v1/rules`, `answer`, `keys create`, …
    pub action: String,
    /// What it was done to (a path with card numbers masked, an authorization, a key name).
    pub target: String,
    /// How it came out (an HTTP status, `yes`, `no`, …).
    pub outcome: String,
    /// The hash of the entry before (64 zeros for the first).
    pub prev: String,
    pub hash: String,
}

/// The hash of the chain's start.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash an entry must have: over the previous hash and its fields but its own hash.
pub fn entry_hash(e: &AuditEntry) -> String {
    let body = serde_json::json!({
        "seq": e.seq, "at_ms": e.at_ms, "actor": e.actor, "action": e.action,
        "target": e.target, "outcome": e.outcome, "prev": e.prev,
    });
    let mut h = Sha256::new();
    h.update(e.prev.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The trail, open for appends.
pub struct AuditLog {
    path: PathBuf,
    inner: Mutex<Tail>,
}

struct Tail {
    file: std::fs::File,
    seq: u64,
    hash: String,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    pub entries: u64,
    /// The last entry's number and hash: the head to record elsewhere.
    pub head: (u64, String),
    /// The first problem: the line (1-based), the entry number there, and what is wrong.
    pub problem: Option<(u64, u64, String)>,
}

impl AuditLog {
    /// Opens (or creates, owner-only) the trail at `path`, reading it to its end; a trail
    /// that does not verify is still opened (the damage is reported by `verify`, and new
    /// entries chain from the last line that reads).
    pub fn open(path: &Path) -> Result<AuditLog, StoreError> {
        let report = verify(path)?;
        if let Some((line, seq, why)) = &report.problem {
            tracing::error!(line, seq, problem = %why, "the audit trail does not verify (cardguard audit verify)");
        }
        let file = crate::private::options()
            .append(true)
            .create(true)
            .open(path)
            .map_err(crate::io_err(path))?;
        Ok(AuditLog {
            path: path.to_path_buf(),
            inner: Mutex::new(Tail {
                file,
                seq: report.head.0,
                hash: report.head.1,
            }),
        })
    }

    /// Appends an entry and syncs it to disk; its number.
    pub fn append(
        &self,
        at_ms: i64,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<u64, StoreError> {
        use std::os::fd::AsRawFd;
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let fd = t.file.as_raw_fd();
        // SAFETY: flock on a descriptor this struct owns; released below or when it closes.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            return Err(crate::io_err(&self.path)(std::io::Error::last_os_error()));
        }
        let result = self.append_locked(&mut t, at_ms, actor, action, target, outcome);
        // SAFETY: as above.
        unsafe { libc::flock(fd, libc::LOCK_UN) };
        result
    }

    fn append_locked(
        &self,
        t: &mut Tail,
        at_ms: i64,
        actor: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<u64, StoreError> {
        // Another process may have appended since: chain from the file's last entry.
        if let Some(last) = last_entry(&self.path)? {
            t.seq = last.seq;
            t.hash = last.hash;
        }
        let mut e = AuditEntry {
            seq: t.seq + 1,
            at_ms,
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            prev: t.hash.clone(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e);
        let mut line = serde_json::to_vec(&e).map_err(|err| StoreError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other(err),
        })?;
        line.push(b'\n');
        t.file.write_all(&line).map_err(crate::io_err(&self.path))?;
        t.file.sync_data().map_err(crate::io_err(&self.path))?;
        t.seq = e.seq;
        t.hash = e.hash;
        Ok(e.seq)
    }
}

/// The trail's last entry, read from its end (`None` for an empty trail or a last line
/// that does not read).
fn last_entry(path: &Path) -> Result<Option<AuditEntry>, StoreError> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).map_err(crate::io_err(path))?;
    let len = f.metadata().map_err(crate::io_err(path))?.len();
    let from = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(from)).map_err(crate::io_err(path))?;
    let mut tail = String::new();
    f.read_to_string(&mut tail).map_err(crate::io_err(path))?;
    Ok(tail
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| serde_json::from_str(l).ok()))
}

/// Reads the whole trail and checks its chain: numbers one after another from 1, each
/// entry's previous hash the hash of the one before, each hash its own. A missing file is
/// an empty trail.
pub fn verify(path: &Path) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport {
        entries: 0,
        head: (0, GENESIS.to_owned()),
        problem: None,
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
        Err(e) => return Err(crate::io_err(path)(e)),
    };
    let (mut seq, mut hash) = (0u64, GENESIS.to_owned());
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(crate::io_err(path))?;
        let n = i as u64 + 1;
        let problem = match serde_json::from_str::<AuditEntry>(&line) {
            Err(e) => Some((seq + 1, format!("does not read as an entry ({e})"))),
            Ok(e) if e.seq != seq + 1 => Some((
                e.seq,
                if e.seq > seq + 1 {
                    format!("entry {} follows entry {seq}: entries were removed", e.seq)
                } else {
                    format!(
                        "entry {} follows entry {seq}: entries were reordered or repeated",
                        e.seq
                    )
                },
            )),
            Ok(e) if e.prev != hash => Some((
                e.seq,
                format!("entry {} does not chain to the entry before it", e.seq),
            )),
            Ok(e) if entry_hash(&e) != e.hash => {
                Some((e.seq, format!("entry {} was changed", e.seq)))
            }
            Ok(e) => {
                seq = e.seq;
                hash = e.hash;
                report.entries += 1;
                None
            }
        };
        if let Some((s, why)) = problem {
            report.problem.get_or_insert((n, s, why));
            break;
        }
    }
    report.head = (seq, hash);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(dir: &Path, n: u64) -> PathBuf {
        let path = dir.join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        for i in 0..n {
            log.append(
                1_000 + i as i64,
                "key:ops",
                "PUT /v1/rules",
                "/v1/rules",
                "200",
            )
            .unwrap();
        }
        path
    }

    fn lines(path: &Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn a_trail_verifies_and_continues_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = trail(dir.path(), 3);
        let log = AuditLog::open(&path).unwrap();
        assert_eq!(
            log.append(9, "cardholder:web", "answer", "au_000000000001", "no")
                .unwrap(),
            4
        );
        let r = verify(&path).unwrap();
        assert_eq!((r.entries, r.problem.clone()), (4, None));
        assert_eq!(r.head.0, 4);
        assert_eq!(verify(&dir.path().join("none")).unwrap().entries, 0);
    }

    #[test]
    fn two_writers_keep_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let server = AuditLog::open(&path).unwrap();
        let command = AuditLog::open(&path).unwrap();
        server
            .append(1, "key:ops", "PUT", "/v1/rules", "200")
            .unwrap();
        assert_eq!(
            command
                .append(2, "cli", "keys create", "ops2", "admin")
                .unwrap(),
            2
        );
        assert_eq!(
            server
                .append(3, "key:ops", "DELETE", "/v1/rules/shadow", "204")
                .unwrap(),
            3
        );
        let r = verify(&path).unwrap();
        assert_eq!((r.entries, r.problem), (3, None));
    }

    #[test]
    fn a_changed_removed_or_reordered_entry_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = trail(dir.path(), 5);
        let good = lines(&path);
        let write = |ls: &[String]| std::fs::write(&path, ls.join("\n") + "\n").unwrap();

        let mut changed = good.clone();
        changed[2] = changed[2].replace("\"200\"", "\"403\"");
        write(&changed);
        let p = verify(&path).unwrap().problem.unwrap();
        assert_eq!((p.0, p.1), (3, 3));
        assert!(p.2.contains("was changed"), "{p:?}");

        let mut removed = good.clone();
        removed.remove(1);
        write(&removed);
        let p = verify(&path).unwrap().problem.unwrap();
        assert!(
            p.2.contains("entry 3 follows entry 1") && p.2.contains("removed"),
            "{p:?}"
        );

        let mut reordered = good.clone();
        reordered.swap(3, 4);
        write(&reordered);
        let p = verify(&path).unwrap().problem.unwrap();
        assert!(p.2.contains("entry 5 follows entry 3"), "{p:?}");

        // A changed entry whose hash was computed again breaks the next entry's link.
        let mut rehashed = good.clone();
        let mut e: AuditEntry = serde_json::from_str(&rehashed[1]).unwrap();
        e.actor = "key:someone-else".into();
        e.hash = entry_hash(&e);
        rehashed[1] = serde_json::to_string(&e).unwrap();
        write(&rehashed);
        let p = verify(&path).unwrap().problem.unwrap();
        assert!(p.2.contains("entry 3 does not chain"), "{p:?}");

        write(&good);
        assert_eq!(verify(&path).unwrap().problem, None);
    }
}
