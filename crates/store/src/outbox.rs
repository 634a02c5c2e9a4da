//! The notification outbox in SQLite (`notify.db`): every message to a cardholder is a row
//! before it is sent, keyed by its idempotency key, so that an event seen twice makes one
//! row and a restart loses nothing. A row is pending until a channel accepted it (sent), or
//! until it failed too often or for good (dead). The store knows rows, not what they say.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notifications (
    key TEXT PRIMARY KEY,
    authorization_id TEXT NOT NULL,
    card_token TEXT NOT NULL,
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    state TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL,
    last_error TEXT,
    sent_ms INTEGER
);
CREATE INDEX IF NOT EXISTS notifications_due ON notifications (state, next_ms);
CREATE INDEX IF NOT EXISTS notifications_card ON notifications (card_token, created_ms);
";

/// The kind of row whose text is a secret (a one-time code): erased once it is sent or
/// set aside, so that the outbox never keeps a code longer than its delivery takes.
pub const SECRET_KIND: &str = "one-time-code";

/// Where a notification is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Sent,
    Dead,
}

impl OutboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<OutboxState> {
        [OutboxState::Pending, OutboxState::Sent, OutboxState::Dead]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// One notification as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// The idempotency key: the same event gives the same key.
    pub key: String,
    pub authorization_id: String,
    pub card_token: String,
    pub kind: String,
    pub channel: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    /// When the event it tells of happened (Unix ms): delivery latency runs from it.
    pub created_ms: i64,
    pub state: OutboxState,
    pub tries: u32,
    /// Not before this (Unix ms) is it tried again.
    pub next_ms: i64,
    pub last_error: Option<String>,
    pub sent_ms: Option<i64>,
}

/// Counts by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: u64,
    pub sent: u64,
    pub dead: u64,
}

pub struct SqliteOutbox {
    /// The write-ahead log of the database: synced by [`SqliteOutbox::sync`].
    wal: std::path::PathBuf,
    /// Inserts, reads: commits written, synced by [`SqliteOutbox::sync`] before the
    /// consumer's cursor moves past their events (a power cut loses none).
    conn: Mutex<Connection>,
    /// Delivery outcomes: `synchronous=NORMAL` (in WAL mode a commit survives any crash of
    /// the process at once; a power cut may take the last ones, which only sends those
    /// again), so that a message the channel took is marked sent without waiting for a
    /// disk sync, and a crash right after resends as few as can be.
    marks: Mutex<Connection>,
}

const COLUMNS: &str = "key, authorization_id, card_token, kind, channel, recipient, subject, body, \
     created_ms, state, tries, next_ms, last_error, sent_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<OutboxRow> {
    let state: String = r.get(9)?;
    Ok(OutboxRow {
        key: r.get(0)?,
        authorization_id: r.get(1)?,
        card_token: r.get(2)?,
        kind: r.get(3)?,
        channel: r.get(4)?,
        recipient: r.get(5)?,
        subject: r.get(6)?,
        body: r.get(7)?,
        created_ms: r.get(8)?,
        state: OutboxState::parse(&state).unwrap_or(OutboxState::Dead),
        tries: r.get(10)?,
        next_ms: r.get(11)?,
        last_error: r.get(12)?,
        sent_ms: r.get(13)?,
    })
}

impl SqliteOutbox {
    /// Opens (or creates, owner-only) the outbox at `path`.
    pub fn open(path: &Path) -> Result<SqliteOutbox, StoreError> {
        // Commits are written, not synced; the consumer syncs them before it saves its
        // position (`sync`), so that a power cut never leaves the position ahead of the rows.
        let conn = crate::open_sqlite(path, crate::Sync::Normal, SCHEMA)?;
        let marks = Connection::open(path)?;
        marks.pragma_update(None, "synchronous", "NORMAL")?;
        marks.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(SqliteOutbox {
            wal: wal.into(),
            conn: Mutex::new(conn),
            marks: Mutex::new(marks),
        })
    }

    /// Makes every commit so far durable (the WAL file synced to disk).
    pub fn sync(&self) -> Result<(), StoreError> {
        match std::fs::File::open(&self.wal) {
            Ok(f) => f.sync_data().map_err(crate::io_err(&self.wal)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(crate::io_err(&self.wal)(e)),
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds notifications in one transaction; a key already there is left as it is.
    /// Returns how many were new.
    pub fn insert(&self, rows: &[OutboxRow]) -> Result<usize, StoreError> {
        crate::insert_each(
            &mut self.conn(),
            &format!(
                "INSERT OR IGNORE INTO notifications ({COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ),
            rows,
            |st, r| {
                st.execute(params![
                    r.key,
                    r.authorization_id,
                    r.card_token,
                    r.kind,
                    r.channel,
                    r.recipient,
                    r.subject,
                    r.body,
                    r.created_ms,
                    r.state.as_str(),
                    r.tries,
                    r.next_ms,
                    r.last_error,
                    r.sent_ms
                ])
            },
        )
    }

    /// Pending notifications due at `now_ms`, oldest first, at most `limit`.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        crate::query_rows(
            &self.conn(),
            &format!(
                "SELECT {COLUMNS} FROM notifications WHERE state = 'pending' AND next_ms <= ?1 \
             ORDER BY next_ms, created_ms LIMIT ?2"
            ),
            params![now_ms, limit as i64],
            row,
        )
    }

    /// When the next pending notification falls due, if any is pending.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.conn().query_row(
            "SELECT MIN(next_ms) FROM notifications WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?)
    }

    /// A channel accepted it.
    pub fn mark_sent(&self, key: &str, tries: u32, now_ms: i64) -> Result<(), StoreError> {
        self.marks().execute(
            "UPDATE notifications SET state = 'sent', tries = ?2, sent_ms = ?3, last_error = NULL, \
             body = CASE WHEN kind = ?4 THEN '' ELSE body END WHERE key = ?1",
            params![key, tries, now_ms, SECRET_KIND],
        )?;
        Ok(())
    }

    /// A try failed: tried again at `next_ms`, or set aside as dead.
    pub fn mark_failed(
        &self,
        key: &str,
        tries: u32,
        next_ms: i64,
        error: &str,
        dead: bool,
    ) -> Result<(), StoreError> {
        let state = if dead {
            OutboxState::Dead
        } else {
            OutboxState::Pending
        };
        self.marks().execute(
            "UPDATE notifications SET state = ?2, tries = ?3, next_ms = ?4, last_error = ?5, \
             body = CASE WHEN kind = ?6 AND ?2 = 'dead' THEN '' ELSE body END WHERE key = ?1",
            params![key, state.as_str(), tries, next_ms, error, SECRET_KIND],
        )?;
        Ok(())
    }

    /// Puts a dead notification back to pending, due now (an operator fixed the cause). A
    /// one-time code is not sent again: its text is gone, and the cardholder asks for a new one.
    pub fn retry(&self, key: &str, now_ms: i64) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE notifications SET state = 'pending', tries = 0, next_ms = ?2 \
             WHERE key = ?1 AND state = 'dead' AND kind != ?3",
            params![key, now_ms, SECRET_KIND],
        )? == 1)
    }

    pub fn get(&self, key: &str) -> Result<Option<OutboxRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {COLUMNS} FROM notifications WHERE key = ?1"),
                params![key],
                row,
            )
            .optional()?)
    }

    /// Notifications in `state`, newest first, at most `limit`.
    pub fn list(&self, state: OutboxState, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        crate::query_rows(
            &self.conn(),
            &format!(
                "SELECT {COLUMNS} FROM notifications WHERE state = ?1 \
             ORDER BY created_ms DESC LIMIT ?2"
            ),
            params![state.as_str(), limit as i64],
            row,
        )
    }

    /// A card's notifications from `since_ms` on, newest first, at most `limit`.
    pub fn for_card(
        &self,
        card_token: &str,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        crate::query_rows(
            &self.conn(),
            &format!(
                "SELECT {COLUMNS} FROM notifications WHERE card_token = ?1 AND created_ms >= ?2 \
             ORDER BY created_ms DESC LIMIT ?3"
            ),
            params![card_token, since_ms, limit as i64],
            row,
        )
    }

    pub fn counts(&self) -> Result<OutboxCounts, StoreError> {
        let conn = self.conn();
        let mut st =
            conn.prepare_cached("SELECT state, COUNT(*) FROM notifications GROUP BY state")?;
        let mut c = OutboxCounts::default();
        for r in st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))? {
            let (state, n) = r?;
            match OutboxState::parse(&state) {
                Some(OutboxState::Pending) => c.pending = n,
                Some(OutboxState::Sent) => c.sent = n,
                Some(OutboxState::Dead) => c.dead = n,
                None => {}
            }
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(key: &str, next_ms: i64) -> OutboxRow {
        OutboxRow {
            key: key.into(),
            authorization_id: "au_000000000001".into(),
            card_token: "ab".into(),
            kind: "fraud-alert".into(),
            channel: "email".into(),
            recipient: "hanako@example.jp".into(),
            subject: "s".into(),
            body: "b".into(),
            created_ms: 1,
            state: OutboxState::Pending,
            tries: 0,
            next_ms,
            last_error: None,
            sent_ms: None,
        }
    }

    #[test]
    fn a_key_is_kept_once_and_rows_move_through_their_states() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.db");
        let o = SqliteOutbox::open(&path).unwrap();
        assert_eq!(o.insert(&[n("a", 10), n("b", 20)]).unwrap(), 2);
        assert_eq!(o.insert(&[n("a", 99)]).unwrap(), 0, "the same key again");
        assert_eq!(o.get("a").unwrap().unwrap().next_ms, 10);
        assert_eq!(o.next_due().unwrap(), Some(10));
        let due: Vec<String> = o.due(15, 10).unwrap().into_iter().map(|r| r.key).collect();
        assert_eq!(due, ["a"]);
        o.mark_failed("a", 1, 40, "421 try later", false).unwrap();
        o.mark_sent("b", 1, 21).unwrap();
        assert_eq!(o.due(30, 10).unwrap().len(), 0);
        o.mark_failed("a", 2, 40, "550 no such user", true).unwrap();
        assert_eq!(
            o.counts().unwrap(),
            OutboxCounts {
                pending: 0,
                sent: 1,
                dead: 1
            }
        );
        let dead = o.list(OutboxState::Dead, 10).unwrap();
        assert_eq!(dead[0].last_error.as_deref(), Some("550 no such user"));
        assert!(o.retry("a", 50).unwrap());
        assert!(!o.retry("b", 50).unwrap(), "only a dead one is tried again");
        drop(o);
        // Reopened: everything is still there.
        let o = SqliteOutbox::open(&path).unwrap();
        assert_eq!(o.due(60, 10).unwrap()[0].tries, 0);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "owner only");
    }
}
