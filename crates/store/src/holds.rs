//! Holds in SQLite (beside the outbox in `notify.db`): a row per held authorization,
//! waiting for the cardholder's answer until it expires. (The cases an answer opens are the
//! cases consumer's, in `cases.db`; a `cases` table an earlier version kept here is left
//! unused.)
//! Written by the notifications consumer from the event log (idempotent: an event seen
//! again changes nothing), read by the API.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS holds (
    authorization_id TEXT PRIMARY KEY,
    card_token TEXT NOT NULL,
    last4 TEXT NOT NULL,
    merchant TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    answer TEXT,
    answered_ms INTEGER,
    via TEXT
);
CREATE INDEX IF NOT EXISTS holds_created ON holds (created_ms);
";

/// A held authorization and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    pub authorization_id: String,
    pub card_token: String,
    pub last4: String,
    pub merchant: String,
    /// Minor units of `currency`.
    pub amount: u64,
    pub currency: String,
    pub created_ms: i64,
    pub expires_ms: i64,
    /// `yes` or `no` once answered.
    pub answer: Option<String>,
    pub answered_ms: Option<i64>,
    pub via: Option<String>,
}

impl HoldRow {
    /// `open`, `released` (it was the cardholder), `refused` (it was not), or `expired`
    /// (nobody answered in time), as of `now_ms`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        match self.answer.as_deref() {
            Some("yes") => "released",
            Some(_) => "refused",
            None if now_ms > self.expires_ms => "expired",
            None => "open",
        }
    }
}

pub struct SqliteHolds {
    /// The write-ahead log of the database: synced by [`SqliteHolds::sync`].
    wal: std::path::PathBuf,
    conn: Mutex<Connection>,
}

const HOLD_COLUMNS: &str = "authorization_id, card_token, last4, merchant, amount, currency, \
     created_ms, expires_ms, answer, answered_ms, via";

fn hold(r: &rusqlite::Row<'_>) -> rusqlite::Result<HoldRow> {
    Ok(HoldRow {
        authorization_id: r.get(0)?,
        card_token: r.get(1)?,
        last4: r.get(2)?,
        merchant: r.get(3)?,
        amount: r.get(4)?,
        currency: r.get(5)?,
        created_ms: r.get(6)?,
        expires_ms: r.get(7)?,
        answer: r.get(8)?,
        answered_ms: r.get(9)?,
        via: r.get(10)?,
    })
}

impl SqliteHolds {
    /// Opens (or creates, owner-only) the holds and cases at `path`.
    pub fn open(path: &Path) -> Result<SqliteHolds, StoreError> {
        // Commits are written, not synced; the consumer syncs them before it saves its
        // position (`sync`), so that a power cut never leaves the position ahead of the rows.
        let conn = crate::open_sqlite(path, crate::Sync::Normal, SCHEMA)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        Ok(SqliteHolds {
            wal: wal.into(),
            conn: Mutex::new(conn),
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

    /// Records a hold; one already there is left as it is.
    pub fn insert(&self, h: &HoldRow) -> Result<bool, StoreError> {
        Ok(self.insert_all(std::slice::from_ref(h))? == 1)
    }

    /// Records holds in one transaction (one already there is left as it is); how many were
    /// new.
    pub fn insert_all(&self, holds: &[HoldRow]) -> Result<usize, StoreError> {
        crate::insert_each(
            &mut self.conn(),
            &format!(
                "INSERT OR IGNORE INTO holds ({HOLD_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ),
            holds,
            |st, h| {
                st.execute(params![
                    h.authorization_id,
                    h.card_token,
                    h.last4,
                    h.merchant,
                    h.amount,
                    h.currency,
                    h.created_ms,
                    h.expires_ms,
                    h.answer,
                    h.answered_ms,
                    h.via
                ])
            },
        )
    }

    /// Records the cardholder's answer to a hold; an answer recorded before is left as it is.
    pub fn answer(
        &self,
        authorization_id: &str,
        yes: bool,
        at_ms: i64,
        via: &str,
    ) -> Result<(), StoreError> {
        let answer = if yes { "yes" } else { "no" };
        self.conn().execute(
            "UPDATE holds SET answer = ?2, answered_ms = ?3, via = ?4 \
             WHERE authorization_id = ?1 AND answer IS NULL",
            params![authorization_id, answer, at_ms, via],
        )?;
        Ok(())
    }

    pub fn get(&self, authorization_id: &str) -> Result<Option<HoldRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {HOLD_COLUMNS} FROM holds WHERE authorization_id = ?1"),
                params![authorization_id],
                hold,
            )
            .optional()?)
    }

    /// The newest holds first, at most `limit`, those created at or after `since_ms`.
    pub fn recent(&self, since_ms: i64, limit: usize) -> Result<Vec<HoldRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(&format!(
            "SELECT {HOLD_COLUMNS} FROM holds WHERE created_ms >= ?1 \
             ORDER BY created_ms DESC LIMIT ?2"
        ))?;
        let rows = st
            .query_map(params![since_ms, limit as i64], hold)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(id: &str, created_ms: i64) -> HoldRow {
        HoldRow {
            authorization_id: id.into(),
            card_token: "ab".into(),
            last4: "2349".into(),
            merchant: "BIC CAMERA (Tokyo)".into(),
            amount: 12_800,
            currency: "JPY".into(),
            created_ms,
            expires_ms: created_ms + 1_800_000,
            answer: None,
            answered_ms: None,
            via: None,
        }
    }

    #[test]
    fn a_hold_is_answered_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteHolds::open(&dir.path().join("notify.db")).unwrap();
        assert!(s.insert(&h("au_1", 1000)).unwrap());
        assert!(
            !s.insert(&h("au_1", 5000)).unwrap(),
            "seen again: unchanged"
        );
        assert!(s.insert(&h("au_2", 2000)).unwrap());
        assert_eq!(s.get("au_1").unwrap().unwrap().state(2000), "open");
        assert_eq!(s.get("au_1").unwrap().unwrap().state(1_801_001), "expired");
        s.answer("au_1", false, 3000, "web").unwrap();
        s.answer("au_1", true, 4000, "api").unwrap();
        let a = s.get("au_1").unwrap().unwrap();
        assert_eq!(
            (a.state(9_999_999), a.via.as_deref()),
            ("refused", Some("web"))
        );
        s.answer("au_2", true, 3000, "sms").unwrap();
        assert_eq!(s.get("au_2").unwrap().unwrap().state(0), "released");
        let ids: Vec<String> = s
            .recent(0, 10)
            .unwrap()
            .into_iter()
            .map(|r| r.authorization_id)
            .collect();
        assert_eq!(ids, ["au_2", "au_1"]);
        assert_eq!(s.recent(1500, 10).unwrap().len(), 1);
    }
}
