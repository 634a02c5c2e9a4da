//! The rule book: the ruleset in force and its history, and the allow and block lists, kept
//! in `policy.db` and installed in the engine whole. A ruleset is compiled before it is
//! stored, so a refused one changes nothing; every accepted one gets the next version with
//! who made it and when; a rollback stores an earlier version's text again as the newest.
//! Changes are made one at a time, and each is installed in the engine before the next, so
//! the engine always runs the newest version.

use crate::error::{AppError, OpenError};
use cardguard_engine::{ListKind, ListSet, Policy};
use cardguard_rules::RulesetError;
use cardguard_store::{ListItemRow, RulesetRow, SqlitePolicy};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A stored version of the ruleset, with its rules as written.
#[derive(Debug, Clone)]
pub struct RulesetVersion {
    pub row: RulesetRow,
    pub policy: Arc<Policy>,
}

/// What a change installs in the engine.
pub enum Install {
    Policy(Arc<Policy>),
    Lists(Arc<ListSet>),
    /// The candidate in shadow mode, or none to end it.
    Shadow(Option<Arc<Policy>>),
}

struct Current {
    active: RulesetVersion,
    lists: Arc<ListSet>,
    shadow: Option<RulesetVersion>,
}

pub struct RuleBook {
    db: SqlitePolicy,
    /// Held across a change: compile, store, install.
    current: Mutex<Current>,
}

fn store_err(e: cardguard_store::StoreError) -> AppError {
    AppError::Unavailable(format!("policy database: {e}"))
}

fn bad_list(e: cardguard_engine::ListError) -> AppError {
    AppError::invalid("list", e.to_string())
}

/// A stored row compiled under its own version number.
fn compiled(row: RulesetRow) -> Result<RulesetVersion, Vec<RulesetError>> {
    let policy = Arc::new(Policy::compile(&row.text, row.version)?);
    Ok(RulesetVersion { row, policy })
}

impl RuleBook {
    /// Opens `policy.db` in `dir`: the newest stored ruleset is in force (the default one is
    /// stored as version 1 in a new directory), and the lists are read.
    pub fn open(dir: &Path, now_ms: i64) -> Result<RuleBook, OpenError> {
        let db = SqlitePolicy::open(&dir.join("policy.db"))?;
        let store_default = |note: &str| -> Result<RulesetVersion, OpenError> {
            let row = db.add_ruleset(
                cardguard_engine::DEFAULT_RULES,
                "cardguard",
                now_ms,
                note,
                false,
            )?;
            compiled(row).map_err(|e| OpenError::Rules(render(&e)))
        };
        let active = match db.latest()? {
            None => store_default("default")?,
            Some(row) => {
                let version = row.version;
                match compiled(row) {
                    Ok(v) => v,
                    Err(e) => {
                        // A ruleset this version no longer accepts (an attribute renamed):
                        // the default takes over, as a version of its own, and the log says
                        // why.
                        tracing::error!(
                            version,
                            errors = %render(&e),
                            "the stored ruleset does not compile; the default ruleset is put in force"
                        );
                        store_default(&format!("default: version {version} does not compile"))?
                    }
                }
            }
        };
        let mut lists = ListSet::default();
        for i in db.items(None)? {
            match lists.with_change(&i.list, |l| l.insert(i.value.clone(), i.expires_ms)) {
                Ok(next) => lists = next,
                Err(e) => tracing::warn!(list = %i.list, error = %e, "list item passed over"),
            }
        }
        // A candidate that no longer compiles simply stops running in shadow.
        let shadow = match db.shadow()? {
            Some(row) => {
                let version = row.version;
                match compiled(row) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!(version, errors = %render(&e), "the shadow ruleset does not compile; shadow mode ends");
                        db.clear_shadow()?;
                        None
                    }
                }
            }
            None => None,
        };
        Ok(RuleBook {
            db,
            current: Mutex::new(Current {
                active,
                lists: Arc::new(lists),
                shadow,
            }),
        })
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn policy(&self) -> Arc<Policy> {
        Arc::clone(&self.current().active.policy)
    }

    /// The version in force.
    pub fn active(&self) -> RulesetVersion {
        self.current().active.clone()
    }

    pub fn lists(&self) -> Arc<ListSet> {
        Arc::clone(&self.current().lists)
    }

    /// The candidate in shadow mode, if any.
    pub fn shadow(&self) -> Option<RulesetVersion> {
        self.current().shadow.clone()
    }

    /// Compiles a candidate and runs it in shadow mode (stored as a version marked shadow),
    /// in place of any earlier candidate.
    pub fn put_shadow(
        &self,
        text: &str,
        author: &str,
        now_ms: i64,
        install: impl FnOnce(Install),
    ) -> Result<RulesetVersion, AppError> {
        let mut cur = self.current();
        let v = self.store(text, author, "shadow", now_ms, true)?;
        cur.shadow = Some(v.clone());
        install(Install::Shadow(Some(Arc::clone(&v.policy))));
        Ok(v)
    }

    /// Ends shadow mode; not found when none runs.
    pub fn clear_shadow(&self, install: impl FnOnce(Install)) -> Result<(), AppError> {
        let mut cur = self.current();
        if cur.shadow.is_none() {
            return Err(AppError::NotFound("no ruleset runs in shadow mode".into()));
        }
        self.db.clear_shadow().map_err(store_err)?;
        cur.shadow = None;
        install(Install::Shadow(None));
        Ok(())
    }

    /// Compiles `text` and, when it compiles, stores it as the next version and installs
    /// it; otherwise every error, and nothing changed.
    pub fn put(
        &self,
        text: &str,
        author: &str,
        note: &str,
        now_ms: i64,
        install: impl FnOnce(Install),
    ) -> Result<RulesetVersion, AppError> {
        let mut cur = self.current();
        let v = self.store(text, author, note, now_ms, false)?;
        cur.active = v.clone();
        install(Install::Policy(Arc::clone(&v.policy)));
        Ok(v)
    }

    /// Compiles `text` (a refused ruleset takes no number) and stores it as the next
    /// version, in force or the shadow candidate.
    fn store(
        &self,
        text: &str,
        author: &str,
        note: &str,
        now_ms: i64,
        shadow: bool,
    ) -> Result<RulesetVersion, AppError> {
        let policy = Policy::compile(text, 0).map_err(AppError::Rules)?;
        let row = self
            .db
            .add_ruleset(text, author, now_ms, note, shadow)
            .map_err(store_err)?;
        let policy = Arc::new(policy.numbered(row.version));
        Ok(RulesetVersion { row, policy })
    }

    /// Puts an earlier version's text in force again, as the newest version.
    pub fn rollback(
        &self,
        version: u64,
        author: &str,
        now_ms: i64,
        install: impl FnOnce(Install),
    ) -> Result<RulesetVersion, AppError> {
        let old = self.version(version)?;
        self.put(
            &old.row.text,
            author,
            &format!("rollback to {version}"),
            now_ms,
            install,
        )
    }

    /// A stored version, compiled (for its rules; an old one may no longer compile). The
    /// version in force and the shadow candidate are at hand already.
    pub fn version(&self, version: u64) -> Result<RulesetVersion, AppError> {
        {
            let cur = self.current();
            if let Some(v) = std::iter::once(&cur.active)
                .chain(cur.shadow.as_ref())
                .find(|v| v.row.version == version)
            {
                return Ok(v.clone());
            }
        }
        let row = self
            .db
            .ruleset(version)
            .map_err(store_err)?
            .ok_or_else(|| AppError::NotFound(format!("no ruleset version {version}")))?;
        compiled(row).map_err(AppError::Rules)
    }

    /// Every stored version, newest first (their texts included).
    pub fn versions(&self) -> Result<Vec<RulesetRow>, AppError> {
        self.db.rulesets().map_err(store_err)
    }

    /// Adds an item to a list (or renews it); the list's kind checks the value.
    pub fn add_item(
        &self,
        list: &str,
        value: &str,
        expires_ms: Option<i64>,
        author: &str,
        now_ms: i64,
        install: impl FnOnce(Install),
    ) -> Result<ListItemRow, AppError> {
        let kind = ListKind::of_name(list).map_err(bad_list)?;
        let value = kind
            .normalize(value)
            .map_err(|e| AppError::invalid("value", e.to_string()))?;
        if expires_ms.is_some_and(|t| t <= now_ms) {
            return Err(AppError::invalid("expires_at", "must be in the future"));
        }
        let mut cur = self.current();
        let row = ListItemRow {
            list: list.to_owned(),
            value,
            expires_ms,
            added_ms: now_ms,
            added_by: author.to_owned(),
        };
        let next = cur
            .lists
            .with_change(list, |l| l.insert(row.value.clone(), expires_ms))
            .map_err(bad_list)?;
        self.db.put_item(&row).map_err(store_err)?;
        cur.lists = Arc::new(next);
        install(Install::Lists(Arc::clone(&cur.lists)));
        Ok(row)
    }

    /// Removes an item; not found when the list does not have it.
    pub fn remove_item(
        &self,
        list: &str,
        value: &str,
        install: impl FnOnce(Install),
    ) -> Result<(), AppError> {
        let kind = ListKind::of_name(list).map_err(bad_list)?;
        // The value as the list writes it; one that cannot be an item is not in the list.
        let value = kind
            .normalize(value)
            .map_err(|_| AppError::NotFound(format!("@{list} has no such item")))?;
        let mut cur = self.current();
        if !self.db.delete_item(list, &value).map_err(store_err)? {
            return Err(AppError::NotFound(format!("@{list} has no such item")));
        }
        let next = cur
            .lists
            .with_change(list, |l| {
                l.remove(&value);
            })
            .map_err(bad_list)?;
        cur.lists = Arc::new(next);
        install(Install::Lists(Arc::clone(&cur.lists)));
        Ok(())
    }

    /// The items of a list (expired ones included: the expiry says so).
    pub fn items(&self, list: &str) -> Result<Vec<ListItemRow>, AppError> {
        ListKind::of_name(list).map_err(bad_list)?;
        self.db.items(Some(list)).map_err(store_err)
    }

    /// Every list's name and how many items it has.
    pub fn list_names(&self) -> Result<Vec<(String, usize)>, AppError> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for i in self.db.items(None).map_err(store_err)? {
            match out.last_mut() {
                Some((l, n)) if *l == i.list => *n += 1,
                _ => out.push((i.list, 1)),
            }
        }
        Ok(out)
    }
}

/// Errors as one line each.
pub fn render(errors: &[RulesetError]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}
