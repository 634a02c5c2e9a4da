//! The card registry in SQLite. Rows hold the PAN only as ciphertext (the server encrypts
//! it) and the card token; security codes only as keyed hashes.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

/// One enrolled card as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRow {
    pub token: String,
    pub last4: String,
    /// AES-256-GCM ciphertext of the PAN and its 12-byte nonce.
    pub pan_ciphertext: Vec<u8>,
    pub pan_nonce: Vec<u8>,
    pub expiry: String,
    pub cardholder_id: String,
    pub product: String,
    pub status: String,
    pub service_code: String,
    pub brand: String,
    /// The security-code method and its parameters, as JSON.
    pub csc: String,
    /// The PIN method and its parameters, as JSON, if the card has a PIN.
    pub pin: Option<String>,
    pub contact: String,
    pub notifications: String,
    pub home: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cards (
    token TEXT PRIMARY KEY,
    last4 TEXT NOT NULL,
    pan_ciphertext BLOB NOT NULL,
    pan_nonce BLOB NOT NULL,
    expiry TEXT NOT NULL,
    cardholder_id TEXT NOT NULL,
    product TEXT NOT NULL,
    status TEXT NOT NULL,
    service_code TEXT NOT NULL,
    brand TEXT NOT NULL,
    csc TEXT NOT NULL,
    pin TEXT,
    contact TEXT NOT NULL,
    notifications TEXT NOT NULL,
    home TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS cards_cardholder ON cards(cardholder_id);
";

pub struct SqliteCards {
    conn: Mutex<Connection>,
}

impl SqliteCards {
    /// Opens (or creates) the registry database.
    pub fn open(path: &Path) -> Result<SqliteCards, StoreError> {
        let conn = crate::open_sqlite(path, crate::Sync::Full, SCHEMA)?;
        Ok(SqliteCards {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Inserts a card or replaces an enrolled one (keeping its creation time). Returns
    /// whether the card is new.
    pub fn upsert(&self, row: &CardRow) -> Result<bool, StoreError> {
        Self::upsert_on(&self.conn(), row)
    }

    /// Several cards in one transaction (one fsync for all of them).
    pub fn upsert_many(&self, rows: &[CardRow]) -> Result<Vec<bool>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let created = rows
            .iter()
            .map(|r| Self::upsert_on(&tx, r))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit()?;
        Ok(created)
    }

    fn upsert_on(conn: &Connection, row: &CardRow) -> Result<bool, StoreError> {
        let existed: bool = conn
            .prepare_cached("SELECT 1 FROM cards WHERE token = ?1")?
            .query_row([&row.token], |_| Ok(()))
            .optional()?
            .is_some();
        conn.prepare_cached(
            "INSERT INTO cards (token, last4, pan_ciphertext, pan_nonce, expiry, cardholder_id,
                product, status, service_code, brand, csc, pin, contact, notifications, home,
                created_ms, updated_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)
             ON CONFLICT(token) DO UPDATE SET
                last4 = excluded.last4, pan_ciphertext = excluded.pan_ciphertext,
                pan_nonce = excluded.pan_nonce, expiry = excluded.expiry,
                cardholder_id = excluded.cardholder_id, product = excluded.product,
                status = excluded.status, service_code = excluded.service_code,
                brand = excluded.brand, csc = excluded.csc, pin = excluded.pin,
                contact = excluded.contact, notifications = excluded.notifications,
                home = excluded.home, updated_ms = excluded.updated_ms",
        )?
        .execute(params![
            row.token,
            row.last4,
            row.pan_ciphertext,
            row.pan_nonce,
            row.expiry,
            row.cardholder_id,
            row.product,
            row.status,
            row.service_code,
            row.brand,
            row.csc,
            row.pin,
            row.contact,
            row.notifications,
            row.home,
            row.created_ms,
            row.updated_ms
        ])?;
        Ok(!existed)
    }

    fn map(r: &rusqlite::Row<'_>) -> rusqlite::Result<CardRow> {
        Ok(CardRow {
            token: r.get(0)?,
            last4: r.get(1)?,
            pan_ciphertext: r.get(2)?,
            pan_nonce: r.get(3)?,
            expiry: r.get(4)?,
            cardholder_id: r.get(5)?,
            product: r.get(6)?,
            status: r.get(7)?,
            service_code: r.get(8)?,
            brand: r.get(9)?,
            csc: r.get(10)?,
            pin: r.get(11)?,
            contact: r.get(12)?,
            notifications: r.get(13)?,
            home: r.get(14)?,
            created_ms: r.get(15)?,
            updated_ms: r.get(16)?,
        })
    }

    const COLUMNS: &'static str = "token, last4, pan_ciphertext, pan_nonce, expiry, cardholder_id,
        product, status, service_code, brand, csc, pin, contact, notifications, home,
        created_ms, updated_ms";

    pub fn get(&self, token: &str) -> Result<Option<CardRow>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {} FROM cards WHERE token = ?1", Self::COLUMNS);
        Ok(conn.query_row(&sql, [token], Self::map).optional()?)
    }

    /// Every card, for the in-memory registry at start.
    pub fn load_all(&self) -> Result<Vec<CardRow>, StoreError> {
        let conn = self.conn();
        let sql = format!("SELECT {} FROM cards ORDER BY token", Self::COLUMNS);
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map([], Self::map)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    pub fn count(&self) -> Result<u64, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT COUNT(*) FROM cards", [], |r| r.get::<_, i64>(0))? as u64)
    }
}

impl crate::CardRepository for SqliteCards {
    fn upsert(&self, row: &CardRow) -> Result<bool, StoreError> {
        SqliteCards::upsert(self, row)
    }
    fn upsert_many(&self, rows: &[CardRow]) -> Result<Vec<bool>, StoreError> {
        SqliteCards::upsert_many(self, rows)
    }
    fn load_all(&self) -> Result<Vec<CardRow>, StoreError> {
        SqliteCards::load_all(self)
    }
    fn count(&self) -> Result<u64, StoreError> {
        SqliteCards::count(self)
    }
    fn get(&self, token: &str) -> Result<Option<CardRow>, StoreError> {
        SqliteCards::get(self, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(token: &str, status: &str) -> CardRow {
        CardRow {
            token: token.into(),
            last4: "2349".into(),
            pan_ciphertext: vec![1, 2, 3],
            pan_nonce: vec![0; 12],
            expiry: "2029-12".into(),
            cardholder_id: "ch-1".into(),
            product: "gold".into(),
            status: status.into(),
            service_code: "101".into(),
            brand: "Visa".into(),
            csc: r#"{"method":"cvv-3des","key_id":"cvk-1"}"#.into(),
            pin: None,
            contact: "{}".into(),
            notifications: "{}".into(),
            home: None,
            created_ms: 1,
            updated_ms: 1,
        }
    }

    #[test]
    fn upsert_inserts_then_updates_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cards.db");
        let reg = SqliteCards::open(&p).unwrap();
        assert!(reg.upsert(&row("t1", "active")).unwrap());
        let mut updated = row("t1", "blocked");
        updated.created_ms = 99;
        updated.updated_ms = 2;
        assert!(!reg.upsert(&updated).unwrap());
        drop(reg);
        let reg = SqliteCards::open(&p).unwrap();
        let got = reg.get("t1").unwrap().unwrap();
        assert_eq!(got.status, "blocked");
        assert_eq!(
            (got.created_ms, got.updated_ms),
            (1, 2),
            "creation time is kept"
        );
        assert_eq!(reg.count().unwrap(), 1);
        assert_eq!(reg.load_all().unwrap().len(), 1);
        assert!(reg.get("nope").unwrap().is_none());
        let created = reg
            .upsert_many(&[row("t1", "active"), row("t2", "active")])
            .unwrap();
        assert_eq!(created, [false, true]);
        assert_eq!(reg.count().unwrap(), 2);
    }
}
