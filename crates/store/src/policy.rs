//! The risk policy's data in SQLite (`policy.db`): every version of the ruleset with who
//! made it, when and how (kept for ever: a decision names the version that made it), and
//! the items of the allow and block lists with their expiry. A candidate ruleset for shadow
//! mode is a version too (marked as one), and at most one of them runs beside the one in
//! force. Analysts change these rarely,
//! so every commit is synced before it is answered.

use crate::StoreError;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Mutex;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS rulesets (
    version INTEGER PRIMARY KEY,
    text TEXT NOT NULL,
    author TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    note TEXT NOT NULL,
    shadow INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS shadow_current (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS list_items (
    list TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_ms INTEGER,
    added_ms INTEGER NOT NULL,
    added_by TEXT NOT NULL,
    PRIMARY KEY (list, value)
);
";

/// One version of the ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesetRow {
    pub version: u64,
    pub text: String,
    pub author: String,
    pub created_ms: i64,
    /// How it came: `put`, `rollback to 3`, `file rules.toml`, `default`, `shadow`.
    pub note: String,
    /// A candidate for shadow mode, never in force itself.
    pub shadow: bool,
}

/// One item of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListItemRow {
    pub list: String,
    pub value: String,
    pub expires_ms: Option<i64>,
    pub added_ms: i64,
    pub added_by: String,
}

pub struct SqlitePolicy {
    conn: Mutex<Connection>,
}

fn ruleset(r: &rusqlite::Row<'_>) -> rusqlite::Result<RulesetRow> {
    Ok(RulesetRow {
        version: r.get::<_, i64>(0)? as u64,
        text: r.get(1)?,
        author: r.get(2)?,
        created_ms: r.get(3)?,
        note: r.get(4)?,
        shadow: r.get::<_, i64>(5)? != 0,
    })
}

fn item(r: &rusqlite::Row<'_>) -> rusqlite::Result<ListItemRow> {
    Ok(ListItemRow {
        list: r.get(0)?,
        value: r.get(1)?,
        expires_ms: r.get(2)?,
        added_ms: r.get(3)?,
        added_by: r.get(4)?,
    })
}

const RULESET_COLUMNS: &str = "version, text, author, created_ms, note, shadow";
const ITEM_COLUMNS: &str = "list, value, expires_ms, added_ms, added_by";

impl SqlitePolicy {
    /// Opens (or creates, owner-only) the policy database at `path`.
    pub fn open(path: &Path) -> Result<SqlitePolicy, StoreError> {
        let conn = crate::open_sqlite(path, crate::Sync::Full, SCHEMA)?;
        Ok(SqlitePolicy {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a new version (the next number) and returns it; a shadow one becomes the
    /// current candidate.
    pub fn add_ruleset(
        &self,
        text: &str,
        author: &str,
        created_ms: i64,
        note: &str,
        shadow: bool,
    ) -> Result<RulesetRow, StoreError> {
        let mut c = self.conn();
        let tx = c.transaction()?;
        let next: i64 = tx.query_row(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM rulesets",
            [],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO rulesets (version, text, author, created_ms, note, shadow) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![next, text, author, created_ms, note, i64::from(shadow)],
        )?;
        if shadow {
            tx.execute(
                "INSERT INTO shadow_current (id, version) VALUES (1, ?1)
                 ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                [next],
            )?;
        }
        tx.commit()?;
        Ok(RulesetRow {
            version: next as u64,
            text: text.to_owned(),
            author: author.to_owned(),
            created_ms,
            note: note.to_owned(),
            shadow,
        })
    }

    /// The latest version that is not a shadow one: the one in force.
    pub fn latest(&self) -> Result<Option<RulesetRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {RULESET_COLUMNS} FROM rulesets WHERE shadow = 0 ORDER BY version DESC LIMIT 1"
                ),
                [],
                ruleset,
            )
            .optional()?)
    }

    /// The candidate running in shadow mode, if any.
    pub fn shadow(&self) -> Result<Option<RulesetRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {RULESET_COLUMNS} FROM rulesets WHERE version = (SELECT version FROM shadow_current WHERE id = 1)"
                ),
                [],
                ruleset,
            )
            .optional()?)
    }

    /// Ends shadow mode (the candidate stays among the versions).
    pub fn clear_shadow(&self) -> Result<bool, StoreError> {
        Ok(self.conn().execute("DELETE FROM shadow_current", [])? > 0)
    }

    pub fn ruleset(&self, version: u64) -> Result<Option<RulesetRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {RULESET_COLUMNS} FROM rulesets WHERE version = ?1"),
                [version as i64],
                ruleset,
            )
            .optional()?)
    }

    /// Every version, newest first.
    pub fn rulesets(&self) -> Result<Vec<RulesetRow>, StoreError> {
        let c = self.conn();
        let mut st = c.prepare(&format!(
            "SELECT {RULESET_COLUMNS} FROM rulesets ORDER BY version DESC"
        ))?;
        let rows = st.query_map([], ruleset)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Adds an item, or replaces its expiry and author when the list has it.
    pub fn put_item(&self, i: &ListItemRow) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO list_items (list, value, expires_ms, added_ms, added_by) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (list, value) DO UPDATE SET expires_ms = excluded.expires_ms,
                 added_ms = excluded.added_ms, added_by = excluded.added_by",
            params![i.list, i.value, i.expires_ms, i.added_ms, i.added_by],
        )?;
        Ok(())
    }

    /// Removes an item; false when the list did not have it.
    pub fn delete_item(&self, list: &str, value: &str) -> Result<bool, StoreError> {
        let n = self.conn().execute(
            "DELETE FROM list_items WHERE list = ?1 AND value = ?2",
            params![list, value],
        )?;
        Ok(n > 0)
    }

    /// The items of one list, or of every list.
    pub fn items(&self, list: Option<&str>) -> Result<Vec<ListItemRow>, StoreError> {
        let c = self.conn();
        let rows = match list {
            Some(l) => c
                .prepare(&format!(
                    "SELECT {ITEM_COLUMNS} FROM list_items WHERE list = ?1 ORDER BY value"
                ))?
                .query_map([l], item)?
                .collect::<Result<Vec<_>, _>>()?,
            None => c
                .prepare(&format!(
                    "SELECT {ITEM_COLUMNS} FROM list_items ORDER BY list, value"
                ))?
                .query_map([], item)?
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_count_up_and_items_replace() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("policy.db");
        let db = SqlitePolicy::open(&p).unwrap();
        assert_eq!(db.latest().unwrap(), None);
        let v1 = db
            .add_ruleset("a", "cardguard", 1, "default", false)
            .unwrap();
        let v2 = db.add_ruleset("b", "ana", 2, "put", false).unwrap();
        assert_eq!((v1.version, v2.version), (1, 2));
        assert_eq!(db.latest().unwrap().unwrap().text, "b");
        assert_eq!(db.shadow().unwrap(), None);
        let s3 = db.add_ruleset("c", "ana", 3, "shadow", true).unwrap();
        assert_eq!(
            db.latest().unwrap().unwrap().version,
            2,
            "a shadow is not in force"
        );
        assert_eq!(db.shadow().unwrap(), Some(s3));
        assert!(db.clear_shadow().unwrap());
        assert_eq!(db.shadow().unwrap(), None);
        assert_eq!(db.ruleset(1).unwrap().unwrap().author, "cardguard");
        assert_eq!(db.rulesets().unwrap().len(), 3);
        let mut i = ListItemRow {
            list: "blocked_merchants".into(),
            value: "m-1".into(),
            expires_ms: None,
            added_ms: 5,
            added_by: "ana".into(),
        };
        db.put_item(&i).unwrap();
        i.expires_ms = Some(99);
        db.put_item(&i).unwrap();
        drop(db);
        let db = SqlitePolicy::open(&p).unwrap();
        assert_eq!(db.items(Some("blocked_merchants")).unwrap(), vec![i]);
        assert!(db.delete_item("blocked_merchants", "m-1").unwrap());
        assert!(!db.delete_item("blocked_merchants", "m-1").unwrap());
        assert!(db.items(None).unwrap().is_empty());
        assert_eq!(db.latest().unwrap().unwrap().version, 2);
    }
}
