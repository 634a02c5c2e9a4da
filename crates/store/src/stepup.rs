//! Step-up authentication in SQLite (`stepup.db`): each authentication request with its
//! challenge (the application's document, JSON, changed only inside a transaction that
//! also keeps the card's run of failures), the single-use authentication values (by their
//! keyed hash), the cardholders' trusted devices and their authenticator-app secrets
//! (encrypted by the application). A commit is written, not synced: in WAL mode it survives
//! any crash of the process.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS authentications (
    key TEXT PRIMARY KEY,
    challenge_id TEXT UNIQUE,
    card_token TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    doc TEXT NOT NULL,
    value_hash TEXT UNIQUE,
    value_used_ms INTEGER
);
CREATE TABLE IF NOT EXISTS card_failures (
    card_token TEXT PRIMARY KEY,
    consecutive INTEGER NOT NULL,
    last_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    card_token TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL,
    label TEXT NOT NULL,
    revoked_ms INTEGER
);
CREATE INDEX IF NOT EXISTS devices_card ON devices (card_token);
CREATE TABLE IF NOT EXISTS passkeys (
    id TEXT PRIMARY KEY,
    card_token TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL,
    label TEXT NOT NULL,
    credential TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS passkeys_card ON passkeys (card_token);
CREATE TABLE IF NOT EXISTS totp (
    card_token TEXT PRIMARY KEY,
    secret BLOB NOT NULL,
    nonce BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    confirmed_ms INTEGER,
    last_step INTEGER
);
";

/// What a change to a challenge sees and may change, in one transaction: the
/// authentication's document, its card's consecutive failures, and the keyed hash of the
/// authentication value it issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeTx {
    pub doc: String,
    pub card_failures: u32,
    pub value_hash: Option<String>,
}

/// A device trusted for a card after a successful challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub id: String,
    pub card_token: String,
    pub created_ms: i64,
    pub last_used_ms: i64,
    /// What the cardholder sees it as (the browser's name).
    pub label: String,
    pub revoked_ms: Option<i64>,
}

/// A passkey of a card: the WebAuthn credential (its public key, counter; the library's
/// JSON), by its credential id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyRow {
    pub id: String,
    pub card_token: String,
    pub created_ms: i64,
    pub last_used_ms: i64,
    pub label: String,
    pub credential: String,
}

/// A card's authenticator-app secret, encrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRow {
    pub card_token: String,
    pub secret: Vec<u8>,
    pub nonce: Vec<u8>,
    pub created_ms: i64,
    /// Set once the cardholder entered a first code: before, it is not a factor.
    pub confirmed_ms: Option<i64>,
    /// The last time step accepted: a code is taken once.
    pub last_step: Option<i64>,
}

pub struct SqliteStepUp {
    conn: Mutex<Connection>,
    /// Stops the checkpointer thread when the store is dropped.
    _checkpointer: std::sync::mpsc::Sender<()>,
}

const DEVICE_COLUMNS: &str = "id, card_token, created_ms, last_used_ms, label, revoked_ms";

fn device(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceRow> {
    Ok(DeviceRow {
        id: r.get(0)?,
        card_token: r.get(1)?,
        created_ms: r.get(2)?,
        last_used_ms: r.get(3)?,
        label: r.get(4)?,
        revoked_ms: r.get(5)?,
    })
}

impl SqliteStepUp {
    /// Opens (or creates, owner-only) the step-up store at `path`.
    ///
    /// A request's commits only append to the write-ahead log; a thread of the store's own
    /// copies the log into the database once a second (SQLite's checkpoint, which syncs the
    /// disk), so that no authentication waits for it.
    pub fn open(path: &Path) -> Result<SqliteStepUp, StoreError> {
        let conn = crate::open_sqlite(path, crate::Sync::Normal, SCHEMA)?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let stop = crate::spawn_checkpointer(
            path,
            "stepup",
            std::time::Duration::from_secs(1),
            64 * 1024 * 1024,
        )?;
        Ok(SqliteStepUp {
            conn: Mutex::new(conn),
            _checkpointer: stop,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a new authentication under `key`; when the key is there already, nothing
    /// changes and the stored document is returned.
    pub fn create(
        &self,
        key: &str,
        challenge_id: Option<&str>,
        card_token: &str,
        created_ms: i64,
        doc: &str,
        value_hash: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        let conn = self.conn();
        let added = conn.execute(
            "INSERT OR IGNORE INTO authentications \
             (key, challenge_id, card_token, created_ms, doc, value_hash) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![key, challenge_id, card_token, created_ms, doc, value_hash],
        )?;
        if added == 1 {
            return Ok(None);
        }
        Ok(conn
            .query_row(
                "SELECT doc FROM authentications WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The document of the authentication `key`.
    pub fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT doc FROM authentications WHERE key = ?1",
                [key],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The key and document of the authentication whose challenge is `challenge_id`.
    pub fn by_challenge(&self, challenge_id: &str) -> Result<Option<(String, String)>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT key, doc FROM authentications WHERE challenge_id = ?1",
                [challenge_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    /// Changes the challenge `challenge_id` in one transaction: `f` sees its document, its
    /// card's failures and its value hash, and what it leaves is written back (nothing is,
    /// when it returns an error). `None` when there is no such challenge.
    pub fn change<T, E>(
        &self,
        challenge_id: &str,
        now_ms: i64,
        f: impl FnOnce(&mut ChallengeTx) -> Result<T, E>,
    ) -> Result<Option<Result<T, E>>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let Some((key, card, doc, value_hash)) = tx
            .query_row(
                "SELECT key, card_token, doc, value_hash FROM authentications WHERE challenge_id = ?1",
                [challenge_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<String>>(3)?,
                    ))
                },
            )
            .optional()?
        else {
            return Ok(None);
        };
        let failures: u32 = tx
            .query_row(
                "SELECT consecutive FROM card_failures WHERE card_token = ?1",
                [&card],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0);
        let mut c = ChallengeTx {
            doc,
            card_failures: failures,
            value_hash,
        };
        let out = match f(&mut c) {
            Ok(v) => v,
            Err(e) => return Ok(Some(Err(e))),
        };
        tx.execute(
            "UPDATE authentications SET doc = ?2, value_hash = ?3 WHERE key = ?1",
            params![key, c.doc, c.value_hash],
        )?;
        if c.card_failures != failures {
            tx.execute(
                "INSERT INTO card_failures (card_token, consecutive, last_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (card_token) DO UPDATE SET consecutive = ?2, last_ms = ?3",
                params![card, c.card_failures, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(Some(Ok(out)))
    }

    /// A card's consecutive failed challenges.
    pub fn card_failures(&self, card_token: &str) -> Result<u32, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT consecutive FROM card_failures WHERE card_token = ?1",
                [card_token],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// Sets a card's run of failures back to zero (an issuer's unlock).
    pub fn clear_card_failures(&self, card_token: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM card_failures WHERE card_token = ?1",
            [card_token],
        )? == 1)
    }

    /// Uses the authentication value whose keyed hash is `value_hash`, once: the document
    /// of its authentication the first time, `None` ever after (or for no such value).
    pub fn use_value(&self, value_hash: &str, now_ms: i64) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "UPDATE authentications SET value_used_ms = ?2 \
                 WHERE value_hash = ?1 AND value_used_ms IS NULL RETURNING doc",
                params![value_hash, now_ms],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Adds a trusted device.
    pub fn add_device(&self, d: &DeviceRow) -> Result<(), StoreError> {
        self.conn().execute(
            &format!(
                "INSERT OR REPLACE INTO devices ({DEVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
            ),
            params![
                d.id,
                d.card_token,
                d.created_ms,
                d.last_used_ms,
                d.label,
                d.revoked_ms
            ],
        )?;
        Ok(())
    }

    pub fn device(&self, id: &str) -> Result<Option<DeviceRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
                [id],
                device,
            )
            .optional()?)
    }

    /// A card's devices, the most recently used first (revoked ones too).
    pub fn devices(&self, card_token: &str) -> Result<Vec<DeviceRow>, StoreError> {
        crate::query_rows(
            &self.conn(),
            &format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE card_token = ?1 ORDER BY last_used_ms DESC"
            ),
            [card_token],
            device,
        )
    }

    /// Notes that a device was used now.
    pub fn touch_device(&self, id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE devices SET last_used_ms = ?2 WHERE id = ?1",
            params![id, now_ms],
        )?;
        Ok(())
    }

    /// Revokes a card's device; false when the card has no such device not yet revoked.
    pub fn revoke_device(
        &self,
        card_token: &str,
        id: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE devices SET revoked_ms = ?3 WHERE id = ?1 AND card_token = ?2 AND revoked_ms IS NULL",
            params![id, card_token, now_ms],
        )? == 1)
    }

    /// Adds a card's passkey, or replaces it (a credential whose counter moved).
    pub fn put_passkey(&self, p: &PasskeyRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO passkeys (id, card_token, created_ms, last_used_ms, label, credential) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![p.id, p.card_token, p.created_ms, p.last_used_ms, p.label, p.credential],
        )?;
        Ok(())
    }

    /// A card's passkeys, the most recently used first.
    pub fn passkeys(&self, card_token: &str) -> Result<Vec<PasskeyRow>, StoreError> {
        crate::query_rows(
            &self.conn(),
            "SELECT id, card_token, created_ms, last_used_ms, label, credential FROM passkeys \
             WHERE card_token = ?1 ORDER BY last_used_ms DESC",
            [card_token],
            |r| {
                Ok(PasskeyRow {
                    id: r.get(0)?,
                    card_token: r.get(1)?,
                    created_ms: r.get(2)?,
                    last_used_ms: r.get(3)?,
                    label: r.get(4)?,
                    credential: r.get(5)?,
                })
            },
        )
    }

    /// Removes a card's passkey; false when the card has no such passkey.
    pub fn delete_passkey(&self, card_token: &str, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "DELETE FROM passkeys WHERE id = ?1 AND card_token = ?2",
            params![id, card_token],
        )? == 1)
    }

    /// Stores a new, unconfirmed authenticator-app secret for a card (one that was there is
    /// replaced).
    pub fn put_totp(
        &self,
        card_token: &str,
        secret: &[u8],
        nonce: &[u8],
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO totp (card_token, secret, nonce, created_ms, confirmed_ms, last_step) \
             VALUES (?1, ?2, ?3, ?4, NULL, NULL)",
            params![card_token, secret, nonce, now_ms],
        )?;
        Ok(())
    }

    pub fn totp(&self, card_token: &str) -> Result<Option<TotpRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT card_token, secret, nonce, created_ms, confirmed_ms, last_step FROM totp \
                 WHERE card_token = ?1",
                [card_token],
                |r| {
                    Ok(TotpRow {
                        card_token: r.get(0)?,
                        secret: r.get(1)?,
                        nonce: r.get(2)?,
                        created_ms: r.get(3)?,
                        confirmed_ms: r.get(4)?,
                        last_step: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    /// Takes time step `step` of a card's secret, once: false when it (or a later one) was
    /// taken before. The first one taken confirms the secret.
    pub fn use_totp_step(
        &self,
        card_token: &str,
        step: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        Ok(self.conn().execute(
            "UPDATE totp SET last_step = ?2, confirmed_ms = COALESCE(confirmed_ms, ?3) \
             WHERE card_token = ?1 AND (last_step IS NULL OR last_step < ?2)",
            params![card_token, step, now_ms],
        )? == 1)
    }

    /// Removes a card's authenticator app.
    pub fn delete_totp(&self, card_token: &str) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .execute("DELETE FROM totp WHERE card_token = ?1", [card_token])?
            == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_changes_in_one_transaction_and_a_value_is_used_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStepUp::open(&dir.path().join("stepup.db")).unwrap();
        assert_eq!(
            s.create("c\0a1", Some("ch_1"), "tok", 1, "{\"n\":0}", None)
                .unwrap(),
            None
        );
        assert_eq!(
            s.create("c\0a1", Some("ch_2"), "tok", 2, "{}", None)
                .unwrap()
                .as_deref(),
            Some("{\"n\":0}"),
            "a retry gets the first document"
        );
        let r: Option<Result<(), ()>> = s
            .change("ch_1", 5, |c| {
                c.doc = "{\"n\":1}".into();
                c.card_failures += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(r, Some(Ok(())));
        assert_eq!(s.card_failures("tok").unwrap(), 1);
        // An error leaves everything as it was.
        let r: Option<Result<(), &str>> = s
            .change("ch_1", 6, |c| {
                c.doc = "{\"n\":2}".into();
                c.card_failures = 9;
                Err("no")
            })
            .unwrap();
        assert_eq!(r, Some(Err("no")));
        assert_eq!(s.get("c\0a1").unwrap().as_deref(), Some("{\"n\":1}"));
        assert_eq!(s.card_failures("tok").unwrap(), 1);
        assert!(s.change("ch_9", 6, |_| Ok::<_, ()>(())).unwrap().is_none());
        let _: Option<Result<(), ()>> = s
            .change("ch_1", 7, |c| {
                c.value_hash = Some("vh".into());
                c.card_failures = 0;
                Ok(())
            })
            .unwrap();
        assert_eq!(s.card_failures("tok").unwrap(), 0);
        assert_eq!(s.use_value("vh", 8).unwrap().as_deref(), Some("{\"n\":1}"));
        assert_eq!(s.use_value("vh", 9).unwrap(), None, "single use");
        assert_eq!(s.use_value("other", 9).unwrap(), None);
    }

    #[test]
    fn devices_are_listed_and_revoked_and_totp_steps_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStepUp::open(&dir.path().join("stepup.db")).unwrap();
        for (id, used) in [("dv_a", 10), ("dv_b", 20)] {
            s.add_device(&DeviceRow {
                id: id.into(),
                card_token: "tok".into(),
                created_ms: 1,
                last_used_ms: used,
                label: "Chrome".into(),
                revoked_ms: None,
            })
            .unwrap();
        }
        let ids: Vec<String> = s
            .devices("tok")
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["dv_b", "dv_a"]);
        assert!(
            !s.revoke_device("other", "dv_a", 30).unwrap(),
            "not its card"
        );
        assert!(s.revoke_device("tok", "dv_a", 30).unwrap());
        assert!(!s.revoke_device("tok", "dv_a", 31).unwrap());
        assert_eq!(s.device("dv_a").unwrap().unwrap().revoked_ms, Some(30));

        s.put_totp("tok", b"ct", b"nonce", 1).unwrap();
        assert_eq!(s.totp("tok").unwrap().unwrap().confirmed_ms, None);
        assert!(s.use_totp_step("tok", 100, 5).unwrap());
        assert!(!s.use_totp_step("tok", 100, 6).unwrap(), "taken once");
        assert!(
            !s.use_totp_step("tok", 99, 6).unwrap(),
            "nor an earlier one"
        );
        let t = s.totp("tok").unwrap().unwrap();
        assert_eq!((t.confirmed_ms, t.last_step), (Some(5), Some(100)));
        assert!(s.delete_totp("tok").unwrap());
        assert!(s.totp("tok").unwrap().is_none());

        let pk = |id: &str, used: i64| PasskeyRow {
            id: id.into(),
            card_token: "tok".into(),
            created_ms: 1,
            last_used_ms: used,
            label: "Chrome".into(),
            credential: "{}".into(),
        };
        s.put_passkey(&pk("pk_a", 5)).unwrap();
        s.put_passkey(&pk("pk_b", 9)).unwrap();
        s.put_passkey(&pk("pk_a", 12)).unwrap();
        let ids: Vec<String> = s
            .passkeys("tok")
            .unwrap()
            .into_iter()
            .map(|p| p.id)
            .collect();
        assert_eq!(ids, ["pk_a", "pk_b"], "replaced, most recent first");
        assert!(!s.delete_passkey("other", "pk_a").unwrap());
        assert!(s.delete_passkey("tok", "pk_a").unwrap());
        assert_eq!(s.passkeys("tok").unwrap().len(), 1);
    }
}
