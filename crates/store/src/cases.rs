//! Cases and the card transactions they are about, in SQLite (`cases.db`) or PostgreSQL
//! (the same statements, see [`crate::sql`]), written by the
//! cases consumer of the event log and the analysts' actions: every authorization as a row
//! (its facts and decision as the application's JSON, its billing status), the cases with
//! their status and timer, and every step of a case (who, when, from which status to which).
//! A status changes only in a transaction that first checks the status it changes from.

use crate::StoreError;
use crate::sql::{Db, End, Row, Tx, Val};
use crate::vals;
use std::path::Path;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS transactions (
    authorization_id TEXT PRIMARY KEY,
    card_token TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    billing TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transactions_card ON transactions (card_token, at_ms);
CREATE TABLE IF NOT EXISTS cases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    card_token TEXT NOT NULL,
    authorization_id TEXT,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    due_ms INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS cases_origin ON cases (source, authorization_id)
    WHERE authorization_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS cases_queue ON cases (status, id);
CREATE INDEX IF NOT EXISTS cases_card ON cases (card_token);
CREATE INDEX IF NOT EXISTS cases_authorization ON cases (authorization_id);
CREATE INDEX IF NOT EXISTS cases_due ON cases (due_ms) WHERE due_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS case_steps (
    case_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS case_steps_case ON case_steps (case_id, at_ms);
CREATE TABLE IF NOT EXISTS chargebacks (
    authorization_id TEXT PRIMARY KEY,
    case_id INTEGER NOT NULL,
    card_token TEXT NOT NULL,
    reason TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    transaction_ms INTEGER NOT NULL,
    disputed_ms INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chargebacks_case ON chargebacks (case_id);
CREATE TABLE IF NOT EXISTS reissues (
    old_token TEXT PRIMARY KEY,
    new_token TEXT NOT NULL UNIQUE,
    new_last4 TEXT NOT NULL,
    new_expiry TEXT NOT NULL,
    block TEXT NOT NULL,
    requested_ms INTEGER NOT NULL,
    expected_ms INTEGER NOT NULL,
    activated_ms INTEGER
);
CREATE INDEX IF NOT EXISTS reissues_activated ON reissues (activated_ms);
";

/// A card replaced by a new one: the block on the old card, when the new one is expected,
/// when it was activated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReissueRow {
    pub old_token: String,
    pub new_token: String,
    pub new_last4: String,
    pub new_expiry: String,
    /// `full` or `card_not_present`.
    pub block: String,
    pub requested_ms: i64,
    pub expected_ms: i64,
    pub activated_ms: Option<i64>,
}

const REISSUE_COLUMNS: &str =
    "old_token, new_token, new_last4, new_expiry, block, requested_ms, expected_ms, activated_ms";

fn reissue(r: &Row) -> Result<ReissueRow, StoreError> {
    Ok(ReissueRow {
        old_token: r.s(0)?,
        new_token: r.s(1)?,
        new_last4: r.s(2)?,
        new_expiry: r.s(3)?,
        block: r.s(4)?,
        requested_ms: r.i(5)?,
        expected_ms: r.i(6)?,
        activated_ms: r.oi(7)?,
    })
}

/// A chargeback record for the acquirer: a disputed charge, why, how much, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargebackRow {
    pub authorization_id: String,
    pub case_id: i64,
    pub card_token: String,
    /// `fraud_card_absent` or `fraud_card_present`.
    pub reason: String,
    pub amount: i64,
    pub currency: String,
    pub transaction_ms: i64,
    pub disputed_ms: i64,
    /// `pending` until the acquirer answers (`accepted`, `rejected`), or `withdrawn` (the
    /// charge was found genuine).
    pub status: String,
}

pub(crate) const CHARGEBACK_COLUMNS: &str = "authorization_id, case_id, card_token, reason, \
    amount, currency, transaction_ms, disputed_ms, status";

pub(crate) fn chargeback(r: &Row) -> Result<ChargebackRow, StoreError> {
    Ok(ChargebackRow {
        authorization_id: r.s(0)?,
        case_id: r.i(1)?,
        card_token: r.s(2)?,
        reason: r.s(3)?,
        amount: r.i(4)?,
        currency: r.s(5)?,
        transaction_ms: r.i(6)?,
        disputed_ms: r.i(7)?,
        status: r.s(8)?,
    })
}

/// One authorization as the cases keep it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRow {
    pub authorization_id: String,
    pub card_token: String,
    pub at_ms: i64,
    /// `billable`, `withheld`, `credited`, `charged_back`, or `not_billed` (not approved,
    /// reversed).
    pub billing: String,
    /// The application's JSON of its facts and decision.
    pub doc: String,
}

/// A case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRow {
    pub id: i64,
    pub card_token: String,
    pub authorization_id: Option<String>,
    pub source: String,
    pub status: String,
    pub opened_ms: i64,
    pub updated_ms: i64,
    /// When the status moves on by itself (a timer), if it does.
    pub due_ms: Option<i64>,
}

/// A step of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRow {
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub from_status: Option<String>,
    pub to_status: String,
    pub note: String,
}

/// A change of a case's status: allowed only from `from`.
#[derive(Debug, Clone)]
pub struct Transition<'a> {
    pub from: &'a [&'a str],
    pub to: &'a str,
    pub actor: &'a str,
    pub action: &'a str,
    pub note: &'a str,
    pub due_ms: Option<i64>,
    pub at_ms: i64,
}

const CASE_COLUMNS: &str =
    "id, card_token, authorization_id, source, status, opened_ms, updated_ms, due_ms";

/// The columns a new case is written with (its id given by the database).
const NEW_CASE_COLUMNS: &str =
    "card_token, authorization_id, source, status, opened_ms, updated_ms, due_ms";

fn case(r: &Row) -> Result<CaseRow, StoreError> {
    Ok(CaseRow {
        id: r.i(0)?,
        card_token: r.s(1)?,
        authorization_id: r.os(2)?,
        source: r.s(3)?,
        status: r.s(4)?,
        opened_ms: r.i(5)?,
        updated_ms: r.i(6)?,
        due_ms: r.oi(7)?,
    })
}

/// The rows a query gives, each made by `f`.
pub(crate) fn all<T>(
    t: &mut dyn Tx,
    sql: &str,
    params: &[Val<'_>],
    f: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    t.rows(sql, params)?.iter().map(f).collect()
}

/// The first row a query gives, made by `f`.
pub(crate) fn one<T>(
    t: &mut dyn Tx,
    sql: &str,
    params: &[Val<'_>],
    f: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    t.row(sql, params)?.as_ref().map(f).transpose()
}

/// The cases repository: the embedded SQLite database (`cases.db`) or PostgreSQL
/// (`storage.database_url`), the same statements on both (see [`crate::sql`]).
pub struct Cases {
    pub(crate) db: Db,
}

/// The embedded default's name, kept for its callers.
pub type SqliteCases = Cases;

impl Cases {
    /// Opens (or creates, owner-only) the cases at `path`. Every commit is synced before it
    /// returns (an analyst's action answered is on disk; the cases consumer commits a batch
    /// of events at a time, so this costs it a sync per batch).
    ///
    /// The cases consumer writes every authorization (a transaction row and its charge's
    /// posting, each with its indexes): the page cache holds 64 MiB of their pages instead
    /// of SQLite's 2 (fewer reads of index pages), and statement journals stay in memory.
    /// The write-ahead log is copied into the database by the commit that passes SQLite's
    /// 4 MiB (the consumer's, nearly always): at 16 MiB, or by a checkpoint thread of its
    /// own, the copies came in larger bursts of disk writes that slowed the authorizations
    /// at a million cards, and a checkpoint beside writes that never pause never lets the
    /// write-ahead log start over.
    pub fn open(path: &Path) -> Result<Cases, StoreError> {
        let conn = crate::open_sqlite(
            path,
            crate::Sync::Full,
            &format!("{SCHEMA}{}", crate::ledger::SCHEMA),
        )?;
        conn.execute_batch("PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;")?;
        Ok(Cases {
            db: Db::Sqlite(std::sync::Mutex::new(conn)),
        })
    }

    /// Connects to PostgreSQL (`postgres://…`), whose schema `cardguard migrate` made.
    pub fn connect(url: &str) -> Result<Cases, StoreError> {
        Ok(Cases {
            db: Db::postgres(url)?,
        })
    }

    /// Which database this is (`sqlite`, `postgres`).
    pub fn backend(&self) -> &'static str {
        if self.db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    /// Adds transactions with their charges' postings in one transaction (one already there
    /// is left as it is).
    pub fn put_transactions(
        &self,
        rows: &[TxRow],
        charges: &[crate::Posting],
    ) -> Result<(), StoreError> {
        self.index(rows, charges, &[])
    }

    /// Adds transactions, their charges' postings and the cases they open, in one
    /// transaction: what [`put_transactions`](Self::put_transactions) and
    /// [`open_case`](Self::open_case) do, for a batch of events.
    pub fn index(
        &self,
        rows: &[TxRow],
        charges: &[crate::Posting],
        opens: &[CaseOpening],
    ) -> Result<(), StoreError> {
        if rows.is_empty() && charges.is_empty() && opens.is_empty() {
            return Ok(());
        }
        self.db.write(|t| {
            // Many rows per statement (a round trip each on PostgreSQL).
            for chunk in rows.chunks(500) {
                let mut params = Vec::with_capacity(chunk.len() * 5);
                for r in chunk {
                    params.extend(vals![&r.authorization_id, &r.card_token, r.at_ms, &r.billing, &r.doc]);
                }
                t.exec(
                    &format!(
                        "INSERT OR IGNORE INTO transactions (authorization_id, card_token, at_ms, billing, doc) VALUES {}",
                        crate::sql::placeholders(chunk.len(), 5)
                    ),
                    &params,
                )?;
            }
            for chunk in charges.chunks(500) {
                crate::ledger::insert_postings(t, chunk)?;
            }
            open_many(t, opens)?;
            Ok(End::Commit(()))
        })
    }

    pub fn transaction(&self, authorization_id: &str) -> Result<Option<TxRow>, StoreError> {
        self.db.read(|t| {
            one(
                t,
                "SELECT authorization_id, card_token, at_ms, billing, doc FROM transactions \
                 WHERE authorization_id = ?1",
                &vals![authorization_id],
                tx_row,
            )
        })
    }

    /// A card's transactions from `since_ms` on, newest first, at most `limit`.
    pub fn transactions(
        &self,
        card_token: &str,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<TxRow>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                "SELECT authorization_id, card_token, at_ms, billing, doc FROM transactions \
                 WHERE card_token = ?1 AND at_ms >= ?2 ORDER BY at_ms DESC LIMIT ?3",
                &vals![card_token, since_ms, limit as i64],
                tx_row,
            )
        })
    }

    /// Opens a case with its first step; a case of the same source about the same
    /// authorization is not opened twice (the one there is returned, `false`).
    #[allow(clippy::too_many_arguments)]
    pub fn open_case(
        &self,
        card_token: &str,
        authorization_id: Option<&str>,
        source: &str,
        status: &str,
        due_ms: Option<i64>,
        actor: &str,
        note: &str,
        at_ms: i64,
    ) -> Result<(CaseRow, bool), StoreError> {
        self.db.write(|t| {
            let c = NewCase {
                card_token,
                authorization_id,
                source,
                status,
                due_ms,
                actor,
                note,
                at_ms,
            };
            Ok(match open_in(t, &c)? {
                (row, true) => End::Commit((row, true)),
                existing => End::Rollback(existing),
            })
        })
    }

    pub fn case(&self, id: i64) -> Result<Option<CaseRow>, StoreError> {
        self.db.read(|t| {
            one(
                t,
                &format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1"),
                &vals![id],
                case,
            )
        })
    }

    /// The cases about an authorization.
    pub fn cases_of_authorization(
        &self,
        authorization_id: &str,
    ) -> Result<Vec<CaseRow>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                &format!(
                    "SELECT {CASE_COLUMNS} FROM cases WHERE authorization_id = ?1 ORDER BY id"
                ),
                &vals![authorization_id],
                case,
            )
        })
    }

    /// Cases, newest first: of a status and a card when given, at most `limit`.
    pub fn list(
        &self,
        status: Option<&str>,
        card_token: Option<&str>,
        limit: usize,
    ) -> Result<Vec<CaseRow>, StoreError> {
        let (filter, params) = crate::sql::filter(
            vec![Val::I(limit as i64)],
            &[("status", status), ("card_token", card_token)],
        );
        self.db.read(|t| {
            all(
                t,
                &format!("SELECT {CASE_COLUMNS} FROM cases {filter} ORDER BY id DESC LIMIT ?1"),
                &params,
                case,
            )
        })
    }

    /// A case's steps, oldest first.
    pub fn steps(&self, id: i64) -> Result<Vec<StepRow>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                "SELECT at_ms, actor, action, from_status, to_status, note FROM case_steps \
                 WHERE case_id = ?1 ORDER BY at_ms, rowid",
                &vals![id],
                |r| {
                    Ok(StepRow {
                        at_ms: r.i(0)?,
                        actor: r.s(1)?,
                        action: r.s(2)?,
                        from_status: r.os(3)?,
                        to_status: r.s(4)?,
                        note: r.s(5)?,
                    })
                },
            )
        })
    }

    /// Moves a case to `t.to` if its status is one of `t.from`, with its step, in one
    /// transaction: the case after it, or its status when that does not allow the move
    /// (nothing changed); `None` for no such case.
    pub fn transition(
        &self,
        id: i64,
        tr: &Transition<'_>,
    ) -> Result<Option<Result<CaseRow, String>>, StoreError> {
        self.db.write(|t| {
            Ok(match move_case(t, id, tr)? {
                Some(Ok(row)) => End::Commit(Some(Ok(row))),
                other => End::Rollback(other),
            })
        })
    }

    /// Adds a step that does not change the status (a label, a block).
    pub fn note_step(
        &self,
        id: i64,
        actor: &str,
        action: &str,
        note: &str,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        self.db.read(|t| {
            Ok(t.exec(
                "INSERT INTO case_steps (case_id, at_ms, actor, action, from_status, to_status, note) \
                 SELECT id, ?2, ?3, ?4, status, status, ?5 FROM cases WHERE id = ?1",
                &vals![id, at_ms, actor, action, note],
            )? == 1)
        })
    }

    /// Records a dispute in one transaction: a case (source `dispute`, investigating), a
    /// chargeback per charge, each charge withheld from billing by `withhold(charge, case
    /// id)`'s posting (a charge withheld before, by a fraud label, stays so). A charge
    /// disputed before refuses the whole dispute (its id is returned; nothing changed).
    pub fn dispute(
        &self,
        card_token: &str,
        charges: &[ChargebackRow],
        withhold: &(dyn Fn(&ChargebackRow, i64) -> crate::Posting + Sync),
        actor: &str,
        note: &str,
        at_ms: i64,
    ) -> Result<Result<(CaseRow, Vec<ChargebackRow>), String>, StoreError> {
        self.db.write(|t| {
            for c in charges {
                let seen = t.row(
                    "SELECT case_id FROM chargebacks WHERE authorization_id = ?1",
                    &vals![&c.authorization_id],
                )?;
                if seen.is_some() {
                    return Ok(End::Rollback(Err(c.authorization_id.clone())));
                }
            }
            let row = insert_case(
                t,
                &NewCase {
                    card_token,
                    authorization_id: None,
                    source: "dispute",
                    status: "investigating",
                    due_ms: None,
                    actor,
                    note,
                    at_ms,
                },
            )?;
            let id = row.id;
            let mut out = Vec::with_capacity(charges.len());
            for c in charges {
                let c = ChargebackRow {
                    case_id: id,
                    disputed_ms: at_ms,
                    status: "pending".into(),
                    ..c.clone()
                };
                t.exec(
                    &format!("INSERT INTO chargebacks ({CHARGEBACK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                    &vals![
                        &c.authorization_id,
                        c.case_id,
                        &c.card_token,
                        &c.reason,
                        c.amount,
                        &c.currency,
                        c.transaction_ms,
                        c.disputed_ms,
                        &c.status
                    ],
                )?;
                let m = crate::BillingMove {
                    posting: withhold(&c, id),
                    from: &["billable"],
                    to: "withheld",
                };
                match crate::ledger::apply_moves(t, std::slice::from_ref(&m))? {
                    Ok(_) => {}
                    Err(crate::Refused::Billing {
                        billing: Some(b), ..
                    }) if b == "withheld" => {}
                    Err(_) => return Ok(End::Rollback(Err(c.authorization_id.clone()))),
                }
                out.push(c);
            }
            Ok(End::Commit(Ok((row.clone(), out))))
        })
    }

    /// The chargebacks of a case.
    pub fn chargebacks(&self, case_id: i64) -> Result<Vec<ChargebackRow>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                &format!(
                    "SELECT {CHARGEBACK_COLUMNS} FROM chargebacks WHERE case_id = ?1 ORDER BY transaction_ms"
                ),
                &vals![case_id],
                chargeback,
            )
        })
    }

    /// A card's transactions in `[from_ms, to_ms)`, oldest first.
    pub fn transactions_between(
        &self,
        card_token: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<TxRow>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                "SELECT authorization_id, card_token, at_ms, billing, doc FROM transactions \
                 WHERE card_token = ?1 AND at_ms >= ?2 AND at_ms < ?3 ORDER BY at_ms",
                &vals![card_token, from_ms, to_ms],
                tx_row,
            )
        })
    }

    /// Records a reissue; false when the old card was reissued before.
    pub fn put_reissue(&self, r: &ReissueRow) -> Result<bool, StoreError> {
        self.db.read(|t| {
            Ok(t.exec(
                &format!("INSERT OR IGNORE INTO reissues ({REISSUE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                &vals![&r.old_token, &r.new_token, &r.new_last4, &r.new_expiry, &r.block, r.requested_ms, r.expected_ms, r.activated_ms],
            )? == 1)
        })
    }

    /// The reissue that replaced `old_token`, or that made `new_token`.
    pub fn reissue_of(&self, token: &str) -> Result<Option<ReissueRow>, StoreError> {
        self.db.read(|t| {
            one(
                t,
                &format!(
                    "SELECT {REISSUE_COLUMNS} FROM reissues WHERE old_token = ?1 OR new_token = ?1"
                ),
                &vals![token],
                reissue,
            )
        })
    }

    /// Marks the new card of a reissue activated; false when it was before.
    pub fn activate_reissue(&self, new_token: &str, at_ms: i64) -> Result<bool, StoreError> {
        self.db.read(|t| {
            Ok(t.exec(
                "UPDATE reissues SET activated_ms = ?2 WHERE new_token = ?1 AND activated_ms IS NULL",
                &vals![new_token, at_ms],
            )? == 1)
        })
    }

    /// Reissues activated at or after `since_ms`, oldest first (the account updater's feed).
    pub fn activated_since(
        &self,
        since_ms: i64,
        limit: usize,
    ) -> Result<Vec<ReissueRow>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                &format!(
                    "SELECT {REISSUE_COLUMNS} FROM reissues WHERE activated_ms >= ?1 ORDER BY activated_ms LIMIT ?2"
                ),
                &vals![since_ms, limit as i64],
                reissue,
            )
        })
    }

    /// Cases whose timer has run out at `now_ms`, at most `limit`.
    pub fn due(&self, now_ms: i64, limit: usize) -> Result<Vec<CaseRow>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                &format!(
                    "SELECT {CASE_COLUMNS} FROM cases WHERE due_ms IS NOT NULL AND due_ms <= ?1 ORDER BY due_ms LIMIT ?2"
                ),
                &vals![now_ms, limit as i64],
                case,
            )
        })
    }
}

/// Moves a case inside the caller's transaction (see [`Cases::transition`]).
pub(crate) fn move_case(
    t: &mut dyn Tx,
    id: i64,
    tr: &Transition<'_>,
) -> Result<Option<Result<CaseRow, String>>, StoreError> {
    let Some(current) = one(
        t,
        &format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1"),
        &vals![id],
        case,
    )?
    else {
        return Ok(None);
    };
    if !tr.from.contains(&current.status.as_str()) {
        return Ok(Some(Err(current.status)));
    }
    t.exec(
        "UPDATE cases SET status = ?2, updated_ms = ?3, due_ms = ?4 WHERE id = ?1",
        &vals![id, tr.to, tr.at_ms, tr.due_ms],
    )?;
    t.exec(
        "INSERT INTO case_steps (case_id, at_ms, actor, action, from_status, to_status, note) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        &vals![
            id,
            tr.at_ms,
            tr.actor,
            tr.action,
            &current.status,
            tr.to,
            tr.note
        ],
    )?;
    Ok(Some(Ok(one(
        t,
        &format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1"),
        &vals![id],
        case,
    )?
    .ok_or_else(|| {
        StoreError::Invalid(format!("case {id} vanished"))
    })?)))
}

/// A case to open.
struct NewCase<'a> {
    card_token: &'a str,
    authorization_id: Option<&'a str>,
    source: &'a str,
    status: &'a str,
    due_ms: Option<i64>,
    actor: &'a str,
    note: &'a str,
    at_ms: i64,
}

/// A case to open, owned (for a batch written later: [`SqliteCases::index`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOpening {
    pub card_token: String,
    pub authorization_id: Option<String>,
    pub source: String,
    pub status: String,
    pub due_ms: Option<i64>,
    pub actor: String,
    pub note: String,
    pub at_ms: i64,
}

impl CaseOpening {
    fn as_new(&self) -> NewCase<'_> {
        NewCase {
            card_token: &self.card_token,
            authorization_id: self.authorization_id.as_deref(),
            source: &self.source,
            status: &self.status,
            due_ms: self.due_ms,
            actor: &self.actor,
            note: &self.note,
            at_ms: self.at_ms,
        }
    }
}

/// Opens a case unless one of the same source about the same authorization is there: the
/// case, and whether it is new.
fn open_in(t: &mut dyn Tx, c: &NewCase<'_>) -> Result<(CaseRow, bool), StoreError> {
    if let Some(a) = c.authorization_id
        && let Some(existing) = one(
            t,
            &format!(
                "SELECT {CASE_COLUMNS} FROM cases WHERE source = ?1 AND authorization_id = ?2"
            ),
            &vals![c.source, a],
            case,
        )?
    {
        return Ok((existing, false));
    }
    Ok((insert_case(t, c)?, true))
}

/// Opens the cases of `opens` that are not there yet (one of the same source about the same
/// authorization), each with its first step, inside the caller's transaction: as
/// [`open_in`] would one at a time, with two statements for each 200 openings about an
/// authorization instead of three each (the cases consumer opens one for every hold). Those
/// about no authorization (never from the consumer) are opened first.
fn open_many(t: &mut dyn Tx, opens: &[CaseOpening]) -> Result<(), StoreError> {
    let (keyed, loose): (Vec<&CaseOpening>, Vec<&CaseOpening>) =
        opens.iter().partition(|o| o.authorization_id.is_some());
    for o in loose {
        insert_case(t, &o.as_new())?;
    }
    for chunk in keyed.chunks(200) {
        let mut params = Vec::with_capacity(chunk.len() * 7);
        for o in chunk {
            params.extend(vals![
                &o.card_token,
                o.authorization_id.as_deref(),
                &o.source,
                &o.status,
                o.at_ms,
                o.at_ms,
                o.due_ms
            ]);
        }
        // A case of the same origin (there already, or earlier in the chunk) is left as
        // it is: the unique index on the origin ignores the row.
        let opened = t.rows(
            &format!(
                "INSERT OR IGNORE INTO cases ({NEW_CASE_COLUMNS}) VALUES {} \
                 RETURNING id, source, authorization_id",
                crate::sql::placeholders(chunk.len(), 7)
            ),
            &params,
        )?;
        let mut ids = std::collections::HashMap::with_capacity(opened.len());
        for r in &opened {
            ids.insert((r.s(1)?, r.s(2)?), r.i(0)?);
        }
        let mut steps = Vec::with_capacity(opened.len() * 6);
        for o in chunk {
            let key = (
                o.source.clone(),
                o.authorization_id.clone().unwrap_or_default(),
            );
            // The first opening of an origin is the one its row was inserted for.
            if let Some(id) = ids.remove(&key) {
                steps.extend(vals![id, o.at_ms, &o.actor, "open", &o.status, &o.note]);
            }
        }
        if !steps.is_empty() {
            t.exec(
                &format!(
                    "INSERT INTO case_steps (case_id, at_ms, actor, action, to_status, note) VALUES {}",
                    crate::sql::placeholders(steps.len() / 6, 6)
                ),
                &steps,
            )?;
        }
    }
    Ok(())
}

/// Opens a case with its first step, inside the caller's transaction.
fn insert_case(t: &mut dyn Tx, c: &NewCase<'_>) -> Result<CaseRow, StoreError> {
    let row = one(
        t,
        &format!(
            "INSERT INTO cases ({NEW_CASE_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6) RETURNING {CASE_COLUMNS}"
        ),
        &vals![
            c.card_token,
            c.authorization_id,
            c.source,
            c.status,
            c.at_ms,
            c.due_ms
        ],
        case,
    )?
    .ok_or_else(|| StoreError::Invalid("no case inserted".into()))?;
    t.exec(
        "INSERT INTO case_steps (case_id, at_ms, actor, action, from_status, to_status, note) \
         VALUES (?1, ?2, ?3, 'open', NULL, ?4, ?5)",
        &vals![row.id, c.at_ms, c.actor, c.status, c.note],
    )?;
    Ok(row)
}

fn tx_row(r: &Row) -> Result<TxRow, StoreError> {
    Ok(TxRow {
        authorization_id: r.s(0)?,
        card_token: r.s(1)?,
        at_ms: r.i(2)?,
        billing: r.s(3)?,
        doc: r.s(4)?,
    })
}

/// Runs a repository test on SQLite, then on PostgreSQL when a test server is there.
#[cfg(test)]
pub(crate) fn both(name: &str, f: impl Fn(&Cases)) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    f(&Cases::open(&dir.path().join("cases.db")).expect("SQLite"));
    if let Some(url) = crate::sql::test_database(name) {
        f(&Cases::connect(&url).expect("PostgreSQL"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A batch of events indexed in one transaction: its transactions, and a hold's case
    /// opened once even when the batch is written again (a consumer's retry) or holds the
    /// same hold twice.
    #[test]
    fn a_batch_indexes_transactions_and_opens_each_hold_case_once() {
        crate::cases::both(
            "a_batch_indexes_transactions_and_opens_each_hold_case_once",
            |s| {
                let tx = |id: &str, at_ms| TxRow {
                    authorization_id: id.into(),
                    card_token: "tok".into(),
                    at_ms,
                    billing: "not_billed".into(),
                    doc: "{}".into(),
                };
                let hold = |id: &str| CaseOpening {
                    card_token: "tok".into(),
                    authorization_id: Some(id.into()),
                    source: "hold".into(),
                    status: "awaiting_cardholder".into(),
                    due_ms: Some(1_000),
                    actor: "system".into(),
                    note: "held".into(),
                    at_ms: 10,
                };
                let rows = [tx("au_1", 10), tx("au_2", 11)];
                let opens = [hold("au_1"), hold("au_2"), hold("au_1")];
                s.index(&rows, &[], &opens).unwrap();
                s.index(&rows, &[], &opens).unwrap();
                s.index(&[], &[], &[]).unwrap();
                assert_eq!(s.transactions("tok", 0, 10).unwrap().len(), 2);
                let cases = s.list(Some("awaiting_cardholder"), None, 10).unwrap();
                let mut ids: Vec<&str> = cases
                    .iter()
                    .filter_map(|c| c.authorization_id.as_deref())
                    .collect();
                ids.sort_unstable();
                assert_eq!(ids, ["au_1", "au_2"]);
                for c in &cases {
                    let steps = s.steps(c.id).unwrap();
                    assert_eq!(steps.len(), 1, "its opening step");
                    let st = &steps[0];
                    assert_eq!(
                        (
                            st.actor.as_str(),
                            st.action.as_str(),
                            st.from_status.as_deref()
                        ),
                        ("system", "open", None)
                    );
                    assert_eq!(
                        (st.to_status.as_str(), st.note.as_str()),
                        ("awaiting_cardholder", "held")
                    );
                }
                // Over many statements: 450 holds, each after the first 100 there twice (the
                // second in a later statement), another source about the same authorization,
                // and a case about no authorization.
                let many: Vec<CaseOpening> = (0..450)
                    .map(|i| hold(&format!("au_m{}", if i < 100 { i } else { i % 250 })))
                    .chain([
                        CaseOpening {
                            source: "not_me".into(),
                            ..hold("au_m7")
                        },
                        CaseOpening {
                            authorization_id: None,
                            source: "manual".into(),
                            ..hold("")
                        },
                    ])
                    .collect();
                s.index(&[], &[], &many).unwrap();
                let all = s.list(None, None, 1_000).unwrap();
                assert_eq!(all.len(), 2 + 250 + 2);
                for c in &all {
                    assert_eq!(
                        s.steps(c.id).unwrap().len(),
                        1,
                        "case {} has one step",
                        c.id
                    );
                }
                let m7 = s.cases_of_authorization("au_m7").unwrap();
                let mut sources: Vec<&str> = m7.iter().map(|c| c.source.as_str()).collect();
                sources.sort_unstable();
                assert_eq!(sources, ["hold", "not_me"]);
            },
        );
    }

    #[test]
    fn a_case_opens_once_moves_only_from_allowed_states_and_keeps_its_steps() {
        crate::cases::both(
            "a_case_opens_once_moves_only_from_allowed_states_and_keeps_its_steps",
            |s| {
                s.put_transactions(
                    &[TxRow {
                        authorization_id: "au_1".into(),
                        card_token: "tok".into(),
                        at_ms: 10,
                        billing: "billable".into(),
                        doc: "{}".into(),
                    }],
                    &[],
                )
                .unwrap();
                assert_eq!(s.transactions("tok", 0, 10).unwrap().len(), 1);
                assert_eq!(s.transactions("tok", 11, 10).unwrap().len(), 0);

                let (c, new) = s
                    .open_case(
                        "tok",
                        Some("au_1"),
                        "hold",
                        "awaiting_cardholder",
                        Some(100),
                        "system",
                        "held",
                        20,
                    )
                    .unwrap();
                assert!(new);
                let (again, new) = s
                    .open_case(
                        "tok",
                        Some("au_1"),
                        "hold",
                        "awaiting_cardholder",
                        Some(100),
                        "system",
                        "held",
                        21,
                    )
                    .unwrap();
                assert_eq!((again.id, new), (c.id, false));
                assert_eq!(s.due(99, 10).unwrap().len(), 0);
                assert_eq!(s.due(100, 10).unwrap()[0].id, c.id);

                let t = |from: &'static [&'static str], to: &'static str| Transition {
                    from,
                    to,
                    actor: "key:ops",
                    action: "resolve",
                    note: "",
                    due_ms: None,
                    at_ms: 30,
                };
                assert_eq!(
                    s.transition(c.id, &t(&["investigating"], "resolved_fraud"))
                        .unwrap(),
                    Some(Err("awaiting_cardholder".into())),
                    "not from this status: nothing changes"
                );
                let moved = s
                    .transition(c.id, &t(&["awaiting_cardholder"], "investigating"))
                    .unwrap()
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    (moved.status.as_str(), moved.due_ms),
                    ("investigating", None)
                );
                assert!(s.note_step(c.id, "key:ops", "label", "fraud", 31).unwrap());
                let steps = s.steps(c.id).unwrap();
                let actions: Vec<&str> = steps.iter().map(|x| x.action.as_str()).collect();
                assert_eq!(actions, ["open", "resolve", "label"]);
                assert_eq!(steps[1].from_status.as_deref(), Some("awaiting_cardholder"));
                assert_eq!(s.list(Some("investigating"), None, 10).unwrap().len(), 1);
                assert_eq!(s.list(None, Some("other"), 10).unwrap().len(), 0);
                assert!(
                    s.transition(999, &t(&["open"], "closed"))
                        .unwrap()
                        .is_none()
                );
                assert_eq!(s.cases_of_authorization("au_1").unwrap().len(), 1);

                let cb = |id: &str| ChargebackRow {
                    authorization_id: id.into(),
                    case_id: 0,
                    card_token: "tok".into(),
                    reason: "fraud_card_absent".into(),
                    amount: 1200,
                    currency: "JPY".into(),
                    transaction_ms: 10,
                    disputed_ms: 0,
                    status: String::new(),
                };
                let withhold = |c: &ChargebackRow, case_id: i64| crate::Posting {
                    id: format!("withhold:{}", c.authorization_id),
                    kind: "withhold".into(),
                    debit: crate::ledger::DISPUTED.into(),
                    credit: crate::ledger::CARDHOLDER.into(),
                    amount: c.amount,
                    currency: c.currency.clone(),
                    card_token: c.card_token.clone(),
                    authorization_id: Some(c.authorization_id.clone()),
                    case_id: Some(case_id),
                    claim_id: None,
                    at_ms: 50,
                };
                let (d, rows) = s
                    .dispute("tok", &[cb("au_1")], &withhold, "key:app", "not me", 50)
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    (d.source.as_str(), d.status.as_str(), rows[0].case_id),
                    ("dispute", "investigating", d.id)
                );
                assert_eq!(s.chargebacks(d.id).unwrap().len(), 1);
                assert_eq!(s.transaction("au_1").unwrap().unwrap().billing, "withheld");
                assert_eq!(s.postings_of_case(d.id).unwrap().len(), 1);
                assert_eq!(
                    s.dispute(
                        "tok",
                        &[cb("au_2"), cb("au_1")],
                        &withhold,
                        "key:app",
                        "again",
                        60
                    )
                    .unwrap(),
                    Err("au_1".into()),
                    "disputed twice: refused whole"
                );
                assert_eq!(
                    s.list(None, None, 10).unwrap().len(),
                    2,
                    "no case for the refusal"
                );
                assert_eq!(s.transactions_between("tok", 0, 11).unwrap().len(), 1);
                assert_eq!(s.transactions_between("tok", 0, 10).unwrap().len(), 0);
            },
        );
    }
}
