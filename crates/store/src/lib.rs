//! Persistence for cardguard's embedded default, in one data directory with no setup:
//!
//! - [`log`]: the append-only event log, checksummed frames, group commit on a writer
//!   thread, torn-tail detection at open;
//! - [`snapshot`]: atomic snapshots of the engine state with the log offset they cover;
//! - [`audit`]: the audit trail, JSON lines in a hash chain;
//! - [`cases`]: cases with their steps and timers, and the card transactions they are about;
//! - [`ledger`]: the double-entry ledger of what cardholders are billed, and shopping-protection
//!   claims with their documents (in `cases.db`);
//! - [`cards`]: the card registry in SQLite (the PAN arrives here already encrypted);
//! - [`cursor`]: the durable positions of the log's consumers;
//! - [`outbox`]: the notification outbox in SQLite, one row per message to a cardholder;
//! - [`holds`]: held authorizations waiting for the cardholder's answer, and the cases a
//!   "not me" opens;
//! - [`policy`]: the ruleset's versions and the allow and block lists' items;
//! - [`stepup`]: step-up authentications and their challenges, single-use authentication
//!   values, trusted devices, authenticator-app secrets;
//! - [`private`]: the owner-only modes of the data directory and its files;
//! - [`lock`]: the data directory's lock, one process at a time.
//!
//! The application uses them through the narrow traits in [`traits`]. The crate knows bytes
//! and rows, not the engine: the application decides what goes in them.

pub mod audit;
pub mod cards;
pub mod cases;
pub mod cursor;
pub mod holds;
pub mod ledger;
pub mod lock;
pub mod log;
pub mod outbox;
pub mod policy;
pub mod private;
pub mod snapshot;
pub mod sql;
pub mod stepup;
pub mod traits;

pub use audit::{AuditEntry, AuditLog, AuditReport};
pub use cards::{CardRow, SqliteCards};
pub use cases::{
    CaseOpening, CaseRow, Cases, ChargebackRow, ReissueRow, SqliteCases, StepRow, Transition, TxRow,
};
pub use cursor::FileCursors;
pub use holds::{HoldRow, SqliteHolds};
pub use ledger::{
    Balance, BillingMove, ClaimDecision, ClaimRefused, ClaimRow, DocumentRow, PendingEvent,
    Posting, Refused,
};
pub use lock::DirLock;
pub use log::{
    Appender, Durability, EventLog, Frame, KIND_SET_ASIDE, LogReader, OpenReport, SetAside,
    VerifyReport, WriterFailure,
};
pub use outbox::{OutboxCounts, OutboxRow, OutboxState, SqliteOutbox};
pub use policy::{ListItemRow, RulesetRow, SqlitePolicy};
pub use snapshot::{
    SegmentHead, list_segments, read_segment, read_snapshot, remove_segments_before,
    remove_snapshots, segment_chain, snapshot_offset, write_segment, write_snapshot,
    write_snapshot_with,
};
pub use stepup::{ChallengeTx, DeviceRow, PasskeyRow, SqliteStepUp, TotpRow};
pub use traits::{CardRepository, Completion, CursorStore, EventReader, EventWriter};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("io error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "event log is corrupt at offset {offset}: {why} (check it with `cardguard log verify`; `cardguard log repair` sets the damaged part aside)"
    )]
    Corrupt { offset: u64, why: &'static str },
    #[error(
        "event log is damaged at offset {offset}: {why}, and valid frames follow from offset {next}; nothing was cut. Check it with `cardguard log verify`, then `cardguard log repair` sets the damaged span aside and keeps every valid frame"
    )]
    Damaged {
        offset: u64,
        next: u64,
        why: &'static str,
    },
    #[error("event at offset {offset} does not apply: {why}")]
    Replay { offset: u64, why: String },
    #[error("snapshot {path} is invalid: {why}")]
    BadSnapshot { path: String, why: &'static str },
    #[error("sqlite error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the event log writer has failed: {0}")]
    WriterFailed(String),
    #[error("consumer name {0:?} must be 1 to 64 letters, digits, - _ .")]
    BadName(String),
    #[error(
        "data directory {dir} is in use by process {holder} (a cardguard server or command): stop it first, or use another directory"
    )]
    Locked { dir: String, holder: String },
    #[error("consumer cursor {0} is damaged")]
    BadCursor(String),
    #[error("invalid change: {0}")]
    Invalid(String),
    #[error("{0}")]
    Database(String),
    /// A transaction conflicted with another and was rolled back (retried by the caller).
    #[error("a transaction conflicted with another")]
    Conflict,
}

/// How a SQLite database syncs its commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sync {
    /// Every commit synced before it returns.
    Full,
    /// Commits written, not synced (the WAL survives a crash of the process); the owner
    /// syncs when it must.
    Normal,
}

/// Opens (or creates) a SQLite database in WAL mode, creating the file empty and
/// owner-only first (SQLite gives its WAL and shared-memory files the database file's
/// permissions), and applies `schema`.
pub(crate) fn open_sqlite(
    path: &std::path::Path,
    sync: Sync,
    schema: &str,
) -> Result<rusqlite::Connection, StoreError> {
    private::options()
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_err(path))?;
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Sync::Full => "FULL",
            Sync::Normal => "NORMAL",
        },
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(schema)?;
    Ok(conn)
}

/// A thread that copies the write-ahead log of the SQLite database at `path` into the
/// database every `every` (SQLite's checkpoint, which writes and syncs the database file),
/// on a connection of its own, so that no request's commit pays for it (the owner's
/// connection sets `wal_autocheckpoint` to 0). It stops when the returned sender is
/// dropped.
///
/// A passive checkpoint lets the write-ahead log start over only when no commit came
/// while it copied, which steady traffic never allows: once the log holds more than
/// `limit` bytes of pages, the thread copies the rest and has the next commit start the
/// log over, holding new commits back for that short copy (SQLite's `RESTART`
/// checkpoint, after a passive one did the most).
pub(crate) fn spawn_checkpointer(
    path: &std::path::Path,
    name: &str,
    every: std::time::Duration,
    limit: u64,
) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let page: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let what = name.to_owned();
    std::thread::Builder::new()
        .name(format!("{name}-checkpoint"))
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                // (busy, pages in the log, pages copied)
                let frames = |mode: &str| {
                    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                        r.get::<_, i64>(1)
                    })
                };
                let r = frames("PASSIVE").and_then(|n| {
                    if u64::try_from(n).unwrap_or(0) * page > limit {
                        frames("RESTART")?;
                    }
                    Ok(())
                });
                if let Err(e) = r {
                    tracing::warn!(store = %what, error = %e, "checkpoint failed");
                }
            }
        })
        .map_err(io_err(path))?;
    Ok(stop)
}

/// The calling thread runs on CPU time the others leave over (`SCHED_IDLE`, which needs no
/// privilege; Linux schedules each thread on its own; a waking thread of normal priority
/// takes the core from it at once, and it still gets a sliver when others want all of it),
/// or at nice 19 where that policy is refused. For work nobody waits for: snapshots, the
/// log's check, indexing for analysts. On cores kept busy by others it gets far less than
/// nice 19 (a weight of 3 against 15).
pub fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param` only; pid 0 is the calling thread on Linux.
    let idle = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0;
    if !idle {
        low_priority();
    }
}

/// The calling thread runs at nice 19: it yields to threads of normal priority but keeps a
/// share of cores they keep busy. For work someone waits for within a second (notices).
pub fn low_priority() {
    // SAFETY: setpriority reads no memory of ours; who = 0 is the calling thread on Linux.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) } != 0 {
        tracing::debug!("could not lower a background thread's priority");
    }
}

/// Runs `insert` (an `INSERT OR IGNORE`, prepared once) for each of `rows` in one
/// transaction, binding each with `bind`; how many rows were new.
pub(crate) fn insert_each<T>(
    conn: &mut rusqlite::Connection,
    insert: &str,
    rows: &[T],
    bind: impl Fn(&mut rusqlite::CachedStatement<'_>, &T) -> rusqlite::Result<usize>,
) -> Result<usize, StoreError> {
    let tx = conn.transaction()?;
    let mut added = 0;
    {
        let mut st = tx.prepare_cached(insert)?;
        for r in rows {
            added += bind(&mut st, r)?;
        }
    }
    tx.commit()?;
    Ok(added)
}

/// The rows a query gives, each made by `f` (prepared once per connection and cached).
pub(crate) fn query_rows<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut st = conn.prepare_cached(sql)?;
    let rows = st.query_map(params, f)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits that never pause for a whole checkpoint: the write-ahead log stays near the
    /// limit instead of growing with every commit.
    #[test]
    fn the_checkpointer_bounds_the_write_ahead_log_under_steady_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = open_sqlite(
            &path,
            Sync::Normal,
            "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB NOT NULL);",
        )
        .unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        let limit = 256 * 1024;
        let _stop =
            spawn_checkpointer(&path, "test", std::time::Duration::from_millis(5), limit).unwrap();
        let wal = dir.path().join("t.db-wal");
        let (mut largest, mut written) = (0, 0u64);
        // 16 MiB through the log (without the limit, 24 MiB through it left a 57 MB log).
        while written < 16 * 1024 * 1024 {
            // A page and more per commit, thousands of commits a second.
            conn.execute(
                "INSERT INTO t (v) VALUES (zeroblob(5000))",
                rusqlite::params![],
            )
            .unwrap();
            written += 5000;
            largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        assert!(
            largest < 8 * 1024 * 1024,
            "the write-ahead log reached {largest} bytes"
        );
    }
}
