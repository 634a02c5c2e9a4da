//! The ledger of what cardholders are billed, and shopping-protection claims, in `cases.db`
//! beside the transactions and cases they are about (one SQLite transaction can move a case,
//! a charge's billing status and the ledger together).
//!
//! Double entry: a posting moves an amount (integer minor units of its currency) from one
//! account (credit) to another (debit), so every currency balances by construction. A posting
//! has a unique id made of what caused it (`charge:au_…`, `compensate:7:au_…`), so doing the
//! same thing twice posts once, and it names the charge, case or claim it is for. A charge's
//! billing status (`billable`, `withheld`, `credited`, `charged_back`, `not_billed`) moves
//! only with a posting, and only from the statuses the move allows.
//!
//! A charge's posting is written with its transaction (the cases consumer's batch: same
//! card, same time) and found by card through it: the by-card index of postings leaves
//! charges out (`postings_card_not_charge`). Every approved authorization posts a charge,
//! and a by-card index entry costs a page written at random (twice, in the write-ahead log
//! and in the database) once a portfolio's cards outnumber what a batch shares pages with:
//! at a million cards, the index of charges doubled what the cases index wrote.

use crate::StoreError;
use crate::cases::{CHARGEBACK_COLUMNS, CaseRow, Cases, ChargebackRow, Transition, all, one};
use crate::sql::{End, Row, Tx, Val};
use crate::vals;

/// What the cardholder owes (a debit) or is owed (a credit), per card.
pub const CARDHOLDER: &str = "cardholder";
/// What the issuer owes the card networks for the charges it approved.
pub const NETWORK: &str = "network_settlement";
/// Charges taken off the cardholder's bill while they are investigated.
pub const DISPUTED: &str = "disputed";
/// What the issuer bears for fraud it compensated.
pub const FRAUD_LOSSES: &str = "fraud_losses";
/// What shopping protection paid out.
pub const PROTECTION: &str = "protection_claims";

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS postings (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    card_token TEXT NOT NULL,
    authorization_id TEXT,
    case_id INTEGER,
    claim_id INTEGER,
    at_ms INTEGER NOT NULL
);
DROP INDEX IF EXISTS postings_card;
CREATE INDEX IF NOT EXISTS postings_card_not_charge ON postings (card_token, at_ms)
    WHERE kind != 'charge';
CREATE INDEX IF NOT EXISTS postings_case ON postings (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS postings_claim ON postings (claim_id) WHERE claim_id IS NOT NULL;
CREATE TABLE IF NOT EXISTS claims (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    card_token TEXT NOT NULL,
    authorization_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    amount_base INTEGER NOT NULL,
    occurred_ms INTEGER NOT NULL,
    purchased_ms INTEGER NOT NULL,
    filed_ms INTEGER NOT NULL,
    policy_year TEXT NOT NULL,
    covered INTEGER NOT NULL,
    status TEXT NOT NULL,
    payout INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL,
    reasons TEXT NOT NULL,
    decided_ms INTEGER,
    decided_by TEXT
);
CREATE INDEX IF NOT EXISTS claims_card ON claims (card_token, policy_year);
CREATE UNIQUE INDEX IF NOT EXISTS claims_live ON claims (authorization_id)
    WHERE status != 'declined';
CREATE TABLE IF NOT EXISTS pending_events (
    id TEXT PRIMARY KEY,
    kind INTEGER NOT NULL,
    payload TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS claim_documents (
    claim_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    file TEXT NOT NULL,
    added_ms INTEGER NOT NULL,
    PRIMARY KEY (claim_id, n)
);
";

/// One posting: `amount` from `credit` to `debit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    /// Unique: what caused it (`charge:au_1`); the same cause posts once.
    pub id: String,
    /// `charge`, `reversal`, `withhold`, `rebill`, `compensate`, `deductible`,
    /// `chargeback`, `claim`.
    pub kind: String,
    pub debit: String,
    pub credit: String,
    /// Minor units, more than zero.
    pub amount: i64,
    pub currency: String,
    pub card_token: String,
    pub authorization_id: Option<String>,
    pub case_id: Option<i64>,
    pub claim_id: Option<i64>,
    pub at_ms: i64,
}

/// A posting that moves its charge's billing status from one of `from` to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillingMove {
    pub posting: Posting,
    pub from: &'static [&'static str],
    pub to: &'static str,
}

/// Why a change was refused (nothing was changed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The case's status does not allow the move.
    Status(String),
    /// A charge's billing status does not allow the move (or there is no such charge).
    Billing {
        authorization_id: String,
        billing: Option<String>,
    },
}

/// An account's balance in one currency: what was debited and credited to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub account: String,
    pub currency: String,
    pub debits: i64,
    pub credits: i64,
}

/// A shopping-protection claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRow {
    pub id: i64,
    pub card_token: String,
    pub authorization_id: String,
    /// `damage` or `theft`.
    pub kind: String,
    pub amount: i64,
    pub currency: String,
    /// The amount in the base currency (what the cap counts).
    pub amount_base: i64,
    pub occurred_ms: i64,
    pub purchased_ms: i64,
    pub filed_ms: i64,
    /// The policy year the loss falls in (`2026`, or `2026-04` for years from April).
    pub policy_year: String,
    /// What the claim may pay in the base currency (after the deductible, within the cap);
    /// held against the annual cap while the claim is open.
    pub covered: i64,
    /// `awaiting_documents`, `under_review`, `approved`, `declined`.
    pub status: String,
    /// Paid, in the base currency.
    pub payout: i64,
    pub description: String,
    /// The decision's reasons (JSON array of strings).
    pub reasons: String,
    pub decided_ms: Option<i64>,
    pub decided_by: Option<String>,
}

/// A document attached to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRow {
    pub claim_id: i64,
    pub n: i64,
    pub content_type: String,
    pub bytes: i64,
    pub sha256: String,
    /// The file's name in the claims directory.
    pub file: String,
    pub added_ms: i64,
}

/// Why a claim was not filed (nothing was stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefused {
    /// The purchase has a claim already (not declined).
    Duplicate(i64),
    /// What the claim would pay is more than the cap has left this policy year.
    OverCap { remaining: i64 },
}

const POSTING_COLUMNS: &str = "id, kind, debit, credit, amount, currency, card_token, \
    authorization_id, case_id, claim_id, at_ms";

/// SQL: the postings of card `?1` (with `ranged`, only those of `at_ms` in `[?2, ?3)`),
/// as rows of `columns` (of the postings table): its other postings by their index, its
/// charges through its transactions (a charge's posting has the id `charge:` and its
/// authorization's id, and its transaction's card and time).
fn card_postings(columns: &[&str], ranged: bool) -> String {
    let joined: Vec<String> = columns.iter().map(|c| format!("p.{c}")).collect();
    let (own, charges) = if ranged {
        (
            " AND at_ms >= ?2 AND at_ms < ?3",
            " AND t.at_ms >= ?2 AND t.at_ms < ?3",
        )
    } else {
        ("", "")
    };
    format!(
        "SELECT {} FROM postings WHERE card_token = ?1 AND kind != 'charge'{own} \
         UNION ALL SELECT {} FROM transactions t JOIN postings p \
         ON p.id = 'charge:' || t.authorization_id AND p.kind = 'charge' \
         WHERE t.card_token = ?1{charges}",
        columns.join(", "),
        joined.join(", "),
    )
}

/// SQL: a card's postings in `[?2, ?3)`, oldest first (see [`Cases::postings_of_card`]).
fn postings_of_card_sql() -> String {
    let mut columns: Vec<&str> = POSTING_COLUMNS.split(", ").collect();
    columns.push("rowid AS n");
    format!(
        "SELECT * FROM ({}) AS x ORDER BY at_ms, n",
        card_postings(&columns, true)
    )
}

/// SQL: every account's balance per currency, of card `?1`'s postings or of all.
fn balances_sql(of_card: bool) -> String {
    const COLUMNS: [&str; 4] = ["debit", "credit", "currency", "amount"];
    let source = if of_card {
        card_postings(&COLUMNS, false)
    } else {
        format!("SELECT {} FROM postings", COLUMNS.join(", "))
    };
    format!(
        "WITH p AS ({source}) \
         SELECT account, currency, CAST(SUM(d) AS BIGINT), CAST(SUM(c) AS BIGINT) FROM ( \
           SELECT debit AS account, currency, amount AS d, 0 AS c FROM p \
           UNION ALL \
           SELECT credit, currency, 0, amount FROM p) AS lines \
         GROUP BY account, currency ORDER BY account, currency"
    )
}

fn posting(r: &Row) -> Result<Posting, StoreError> {
    Ok(Posting {
        id: r.s(0)?,
        kind: r.s(1)?,
        debit: r.s(2)?,
        credit: r.s(3)?,
        amount: r.i(4)?,
        currency: r.s(5)?,
        card_token: r.s(6)?,
        authorization_id: r.os(7)?,
        case_id: r.oi(8)?,
        claim_id: r.oi(9)?,
        at_ms: r.i(10)?,
    })
}

const CLAIM_COLUMNS: &str = "id, card_token, authorization_id, kind, amount, currency, \
    amount_base, occurred_ms, purchased_ms, filed_ms, policy_year, covered, status, payout, \
    description, reasons, decided_ms, decided_by";

fn claim(r: &Row) -> Result<ClaimRow, StoreError> {
    Ok(ClaimRow {
        id: r.i(0)?,
        card_token: r.s(1)?,
        authorization_id: r.s(2)?,
        kind: r.s(3)?,
        amount: r.i(4)?,
        currency: r.s(5)?,
        amount_base: r.i(6)?,
        occurred_ms: r.i(7)?,
        purchased_ms: r.i(8)?,
        filed_ms: r.i(9)?,
        policy_year: r.s(10)?,
        covered: r.i(11)?,
        status: r.s(12)?,
        payout: r.i(13)?,
        description: r.s(14)?,
        reasons: r.s(15)?,
        decided_ms: r.oi(16)?,
        decided_by: r.os(17)?,
    })
}

/// What a card's claims of a policy year hold against the cap (approved: their payout;
/// open: what they may pay).
const HELD: &str = "SELECT CAST(COALESCE(SUM(CASE WHEN status = 'approved' THEN payout ELSE covered END), 0) AS BIGINT) \
     FROM claims WHERE card_token = ?1 AND policy_year = ?2 AND status != 'declined'";

/// A claim's decision (see [`Cases::decide_claim`]).
#[derive(Debug, Clone, Copy)]
pub struct ClaimDecision<'a> {
    pub approved: bool,
    /// The payout's posting, when it pays.
    pub payout: Option<&'a Posting>,
    /// The reasons, as JSON.
    pub reasons: &'a str,
    pub actor: &'a str,
    pub at_ms: i64,
    /// The event that tells the cardholder, kept pending with the decision.
    pub notice: Option<&'a PendingEvent>,
}

/// An event the application logs once the transaction that decided it has committed (a
/// decision the cardholder is told of): written in that transaction, removed once logged,
/// and logged again at the next start when the process stopped in between, so that no
/// decision goes untold. Its id makes a second logging harmless (the notice's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEvent {
    pub id: String,
    /// The event's kind in the log.
    pub kind: u8,
    /// The event's record, as the log encodes it (JSON).
    pub payload: String,
    pub created_ms: i64,
}

fn insert_pending(t: &mut dyn Tx, p: &PendingEvent) -> Result<(), StoreError> {
    t.exec(
        "INSERT OR IGNORE INTO pending_events (id, kind, payload, created_ms) \
         VALUES (?1, ?2, ?3, ?4)",
        &vals![&p.id, i64::from(p.kind), &p.payload, p.created_ms],
    )?;
    Ok(())
}

/// Adds a posting inside the caller's transaction; false when it was there already.
pub(crate) fn insert_posting(t: &mut dyn Tx, p: &Posting) -> Result<bool, StoreError> {
    Ok(t.exec(
        &format!(
            "INSERT OR IGNORE INTO postings ({POSTING_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ),
        &vals![
            &p.id,
            &p.kind,
            &p.debit,
            &p.credit,
            p.amount,
            &p.currency,
            &p.card_token,
            p.authorization_id.as_deref(),
            p.case_id,
            p.claim_id,
            p.at_ms
        ],
    )? == 1)
}

/// Adds postings inside the caller's transaction, in one statement (those there already
/// are left as they are).
pub(crate) fn insert_postings(t: &mut dyn Tx, ps: &[Posting]) -> Result<usize, StoreError> {
    let mut params = Vec::with_capacity(ps.len() * 11);
    for p in ps {
        params.extend(vals![
            &p.id,
            &p.kind,
            &p.debit,
            &p.credit,
            p.amount,
            &p.currency,
            &p.card_token,
            p.authorization_id.as_deref(),
            p.case_id,
            p.claim_id,
            p.at_ms
        ]);
    }
    t.exec(
        &format!(
            "INSERT OR IGNORE INTO postings ({POSTING_COLUMNS}) VALUES {}",
            crate::sql::placeholders(ps.len(), 11)
        ),
        &params,
    )
}

/// Applies billing moves inside the caller's transaction: a move posted before is skipped
/// (it was applied); another whose charge is not in one of its `from` statuses refuses
/// all (the caller rolls back).
pub(crate) fn apply_moves(
    t: &mut dyn Tx,
    moves: &[BillingMove],
) -> Result<Result<usize, Refused>, StoreError> {
    let mut applied = 0;
    for m in moves {
        let p = &m.posting;
        if t.row("SELECT id FROM postings WHERE id = ?1", &vals![&p.id])?
            .is_some()
        {
            continue;
        }
        let Some(a) = p.authorization_id.as_deref() else {
            return Err(StoreError::Invalid(format!(
                "posting {} moves no charge",
                p.id
            )));
        };
        let billing = t
            .row(
                "SELECT billing FROM transactions WHERE authorization_id = ?1",
                &vals![a],
            )?
            .map(|r| r.s(0))
            .transpose()?;
        if !billing.as_deref().is_some_and(|b| m.from.contains(&b)) {
            return Ok(Err(Refused::Billing {
                authorization_id: a.to_owned(),
                billing,
            }));
        }
        insert_posting(t, p)?;
        t.exec(
            "UPDATE transactions SET billing = ?2 WHERE authorization_id = ?1",
            &vals![a, m.to],
        )?;
        applied += 1;
    }
    Ok(Ok(applied))
}

/// Commits when the moves were applied, rolls back when they were refused.
fn end<T>(out: Result<T, Refused>) -> End<Result<T, Refused>> {
    match out {
        Ok(v) => End::Commit(Ok(v)),
        Err(r) => End::Rollback(Err(r)),
    }
}

impl Cases {
    /// Applies billing moves in one transaction, all or none (see [`BillingMove`]): how
    /// many were new.
    pub fn post_moves(&self, moves: &[BillingMove]) -> Result<Result<usize, Refused>, StoreError> {
        self.db.write(|t| Ok(end(apply_moves(t, moves)?)))
    }

    /// The events decided but not yet logged, oldest first (see [`PendingEvent`]).
    pub fn pending_events(&self) -> Result<Vec<PendingEvent>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                "SELECT id, kind, payload, created_ms FROM pending_events ORDER BY created_ms, id",
                &[],
                |r| {
                    Ok(PendingEvent {
                        id: r.s(0)?,
                        kind: u8::try_from(r.i(1)?)
                            .map_err(|_| StoreError::Invalid("pending event kind".into()))?,
                        payload: r.s(2)?,
                        created_ms: r.i(3)?,
                    })
                },
            )
        })
    }

    /// Forgets a pending event once it is logged.
    pub fn clear_pending(&self, id: &str) -> Result<(), StoreError> {
        self.db.write(|t| {
            t.exec("DELETE FROM pending_events WHERE id = ?1", &vals![id])?;
            Ok(End::Commit(()))
        })
    }

    /// Moves a case (as [`Cases::transition`]) and applies billing moves with it, in one
    /// transaction: all or nothing; its pending chargebacks take the status `chargebacks`
    /// when given, and the event `notice` is kept pending with them. `None` for no such case.
    pub fn transition_with(
        &self,
        id: i64,
        tr: &Transition<'_>,
        moves: &[BillingMove],
        chargebacks: Option<&str>,
        notice: Option<&PendingEvent>,
    ) -> Result<Option<Result<CaseRow, Refused>>, StoreError> {
        self.db.write(|t| {
            let out = match crate::cases::move_case(t, id, tr)? {
                None => return Ok(End::Rollback(None)),
                Some(Err(status)) => Err(Refused::Status(status)),
                Some(Ok(row)) => apply_moves(t, moves)?.map(|_| row),
            };
            if let (Ok(_), Some(status)) = (&out, chargebacks) {
                t.exec(
                    "UPDATE chargebacks SET status = ?2 WHERE case_id = ?1 AND status = 'pending'",
                    &vals![id, status],
                )?;
            }
            if let (Ok(_), Some(p)) = (&out, notice) {
                insert_pending(t, p)?;
            }
            Ok(match end(out) {
                End::Commit(v) => End::Commit(Some(v)),
                End::Rollback(v) => End::Rollback(Some(v)),
            })
        })
    }

    /// The chargeback of a charge.
    pub fn chargeback(&self, authorization_id: &str) -> Result<Option<ChargebackRow>, StoreError> {
        self.db.read(|t| {
            one(
                t,
                &format!(
                    "SELECT {CHARGEBACK_COLUMNS} FROM chargebacks WHERE authorization_id = ?1"
                ),
                &vals![authorization_id],
                crate::cases::chargeback,
            )
        })
    }

    /// Answers a pending chargeback (`accepted`, `rejected`) with its billing moves, in one
    /// transaction: the chargeback after it, or why nothing changed.
    pub fn settle_chargeback(
        &self,
        authorization_id: &str,
        status: &str,
        moves: &[BillingMove],
    ) -> Result<Result<ChargebackRow, String>, StoreError> {
        self.db.write(|t| {
            let n = t.exec(
                "UPDATE chargebacks SET status = ?2 WHERE authorization_id = ?1 AND status = 'pending'",
                &vals![authorization_id, status],
            )?;
            if n != 1 {
                return Ok(End::Rollback(Err(format!(
                    "the chargeback of {authorization_id} is not pending"
                ))));
            }
            if let Err(r) = apply_moves(t, moves)? {
                return Ok(End::Rollback(Err(format!("the charge cannot move: {r:?}"))));
            }
            let row = one(
                t,
                &format!("SELECT {CHARGEBACK_COLUMNS} FROM chargebacks WHERE authorization_id = ?1"),
                &vals![authorization_id],
                crate::cases::chargeback,
            )?
            .ok_or_else(|| StoreError::Invalid("the chargeback vanished".into()))?;
            Ok(End::Commit(Ok(row)))
        })
    }

    /// A card's postings in `[from_ms, to_ms)`, oldest first.
    pub fn postings_of_card(
        &self,
        card_token: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Posting>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                &postings_of_card_sql(),
                &vals![card_token, from_ms, to_ms],
                posting,
            )
        })
    }

    /// The postings of a case, oldest first.
    pub fn postings_of_case(&self, case_id: i64) -> Result<Vec<Posting>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                &format!(
                    "SELECT {POSTING_COLUMNS} FROM postings WHERE case_id = ?1 ORDER BY rowid"
                ),
                &vals![case_id],
                posting,
            )
        })
    }

    /// The postings of a claim.
    pub fn postings_of_claim(&self, claim_id: i64) -> Result<Vec<Posting>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                &format!(
                    "SELECT {POSTING_COLUMNS} FROM postings WHERE claim_id = ?1 ORDER BY rowid"
                ),
                &vals![claim_id],
                posting,
            )
        })
    }

    /// Every account's balance per currency, of one card's postings or of all.
    pub fn balances(&self, card_token: Option<&str>) -> Result<Vec<Balance>, StoreError> {
        let params: Vec<Val<'_>> = card_token.map(Val::from).into_iter().collect();
        self.db.read(|t| {
            all(t, &balances_sql(card_token.is_some()), &params, |r| {
                Ok(Balance {
                    account: r.s(0)?,
                    currency: r.s(1)?,
                    debits: r.i(2)?,
                    credits: r.i(3)?,
                })
            })
        })
    }

    /// Files a claim if the cap allows it: what the card's open and approved claims of the
    /// same policy year hold, plus this claim's `covered`, must stay within `cap`.
    pub fn file_claim(
        &self,
        c: &ClaimRow,
        cap: i64,
    ) -> Result<Result<ClaimRow, ClaimRefused>, StoreError> {
        self.db.write(|t| {
            let existing = t.row(
                "SELECT id FROM claims WHERE authorization_id = ?1 AND status != 'declined'",
                &vals![&c.authorization_id],
            )?;
            if let Some(r) = existing {
                return Ok(End::Rollback(Err(ClaimRefused::Duplicate(r.i(0)?))));
            }
            let held = t
                .row(HELD, &vals![&c.card_token, &c.policy_year])?
                .map_or(Ok(0), |r| r.i(0))?;
            let remaining = (cap - held).max(0);
            if c.covered > remaining {
                return Ok(End::Rollback(Err(ClaimRefused::OverCap { remaining })));
            }
            let row = one(
                t,
                &format!(
                    "INSERT INTO claims (card_token, authorization_id, kind, amount, currency, amount_base, \
                     occurred_ms, purchased_ms, filed_ms, policy_year, covered, status, payout, description, \
                     reasons) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?13, ?14) \
                     RETURNING {CLAIM_COLUMNS}"
                ),
                &vals![
                    &c.card_token,
                    &c.authorization_id,
                    &c.kind,
                    c.amount,
                    &c.currency,
                    c.amount_base,
                    c.occurred_ms,
                    c.purchased_ms,
                    c.filed_ms,
                    &c.policy_year,
                    c.covered,
                    &c.status,
                    &c.description,
                    &c.reasons
                ],
                claim,
            )?
            .ok_or_else(|| StoreError::Invalid("no claim inserted".into()))?;
            Ok(End::Commit(Ok(row)))
        })
    }

    pub fn claim(&self, id: i64) -> Result<Option<ClaimRow>, StoreError> {
        self.db.read(|t| {
            one(
                t,
                &format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = ?1"),
                &vals![id],
                claim,
            )
        })
    }

    /// What a card's claims of a policy year hold against the cap (approved: their payout;
    /// open: what they may pay).
    pub fn claims_held(&self, card_token: &str, policy_year: &str) -> Result<i64, StoreError> {
        self.db.read(|t| {
            t.row(HELD, &vals![card_token, policy_year])?
                .map_or(Ok(0), |r| r.i(0))
        })
    }

    /// Claims, newest first: of a card and a status when given.
    pub fn claims(
        &self,
        card_token: Option<&str>,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ClaimRow>, StoreError> {
        let (filter, params) = crate::sql::filter(
            vec![Val::I(limit as i64)],
            &[("card_token", card_token), ("status", status)],
        );
        self.db.read(|t| {
            all(
                t,
                &format!("SELECT {CLAIM_COLUMNS} FROM claims {filter} ORDER BY id DESC LIMIT ?1"),
                &params,
                claim,
            )
        })
    }

    /// Records a document of a claim that is still open (its file written already); the
    /// claim is then under review. Refused (with why) when the claim is not open or has
    /// `max` documents.
    pub fn add_document(
        &self,
        d: &DocumentRow,
        max: i64,
    ) -> Result<Result<DocumentRow, String>, StoreError> {
        self.db.write(|t| {
            let status = t
                .row("SELECT status FROM claims WHERE id = ?1", &vals![d.claim_id])?
                .map(|r| r.s(0))
                .transpose()?;
            match status.as_deref() {
                Some("awaiting_documents" | "under_review") => {}
                Some(s) => return Ok(End::Rollback(Err(format!("the claim is {s}")))),
                None => return Ok(End::Rollback(Err("no such claim".into()))),
            }
            let n = t
                .row(
                    "SELECT COUNT(*) FROM claim_documents WHERE claim_id = ?1",
                    &vals![d.claim_id],
                )?
                .map_or(Ok(0), |r| r.i(0))?;
            if n >= max {
                return Ok(End::Rollback(Err(format!(
                    "the claim has {max} documents already"
                ))));
            }
            let row = DocumentRow {
                n: n + 1,
                ..d.clone()
            };
            t.exec(
                "INSERT INTO claim_documents (claim_id, n, content_type, bytes, sha256, file, added_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                &vals![
                    row.claim_id,
                    row.n,
                    &row.content_type,
                    row.bytes,
                    &row.sha256,
                    &row.file,
                    row.added_ms
                ],
            )?;
            t.exec(
                "UPDATE claims SET status = 'under_review' WHERE id = ?1",
                &vals![d.claim_id],
            )?;
            Ok(End::Commit(Ok(row)))
        })
    }

    /// A claim's documents, in the order they came.
    pub fn documents(&self, claim_id: i64) -> Result<Vec<DocumentRow>, StoreError> {
        self.db.read(|t| {
            all(
                t,
                "SELECT claim_id, n, content_type, bytes, sha256, file, added_ms FROM claim_documents \
                 WHERE claim_id = ?1 ORDER BY n",
                &vals![claim_id],
                |r| {
                    Ok(DocumentRow {
                        claim_id: r.i(0)?,
                        n: r.i(1)?,
                        content_type: r.s(2)?,
                        bytes: r.i(3)?,
                        sha256: r.s(4)?,
                        file: r.s(5)?,
                        added_ms: r.i(6)?,
                    })
                },
            )
        })
    }

    /// Decides a claim under review, with its payout posting when it pays: the claim after
    /// it, or its status when it is not under review (nothing changed).
    pub fn decide_claim(
        &self,
        id: i64,
        d: &ClaimDecision<'_>,
    ) -> Result<Result<ClaimRow, String>, StoreError> {
        let ClaimDecision {
            approved,
            payout,
            reasons,
            actor,
            at_ms,
            notice,
        } = *d;
        self.db.write(|t| {
            let status = t
                .row("SELECT status FROM claims WHERE id = ?1", &vals![id])?
                .map(|r| r.s(0))
                .transpose()?;
            match status.as_deref() {
                Some("under_review") => {}
                Some(s) => return Ok(End::Rollback(Err(s.to_owned()))),
                None => return Ok(End::Rollback(Err("missing".into()))),
            }
            if let Some(p) = payout {
                insert_posting(t, p)?;
            }
            if let Some(p) = notice {
                insert_pending(t, p)?;
            }
            t.exec(
                "UPDATE claims SET status = ?2, payout = ?3, reasons = ?4, decided_ms = ?5, \
                 decided_by = ?6 WHERE id = ?1",
                &vals![
                    id,
                    if approved { "approved" } else { "declined" },
                    payout.map_or(0, |p| p.amount),
                    reasons,
                    at_ms,
                    actor
                ],
            )?;
            let row = one(
                t,
                &format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = ?1"),
                &vals![id],
                claim,
            )?
            .ok_or_else(|| StoreError::Invalid(format!("claim {id} vanished")))?;
            Ok(End::Commit(Ok(row)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TxRow;

    fn charge(id: &str, amount: i64) -> Posting {
        Posting {
            id: format!("charge:{id}"),
            kind: "charge".into(),
            debit: CARDHOLDER.into(),
            credit: NETWORK.into(),
            amount,
            currency: "JPY".into(),
            card_token: "tok".into(),
            authorization_id: Some(id.into()),
            case_id: None,
            claim_id: None,
            at_ms: 10,
        }
    }

    fn tx(id: &str) -> TxRow {
        TxRow {
            authorization_id: id.into(),
            card_token: "tok".into(),
            at_ms: 10,
            billing: "billable".into(),
            doc: "{}".into(),
        }
    }

    #[test]
    fn billing_moves_only_with_a_posting_once_and_all_or_nothing() {
        crate::cases::both(
            "billing_moves_only_with_a_posting_once_and_all_or_nothing",
            |s| {
                s.put_transactions(
                    &[tx("au_1"), tx("au_2")],
                    &[charge("au_1", 1000), charge("au_2", 500)],
                )
                .unwrap();
                // The same batch again (a consumer's replay) posts nothing twice.
                s.put_transactions(&[tx("au_1")], &[charge("au_1", 1000)])
                    .unwrap();
                let withhold = |a: &str, amount| BillingMove {
                    posting: Posting {
                        id: format!("withhold:{a}"),
                        kind: "withhold".into(),
                        debit: DISPUTED.into(),
                        credit: CARDHOLDER.into(),
                        ..charge(a, amount)
                    },
                    from: &["billable"],
                    to: "withheld",
                };
                assert_eq!(s.post_moves(&[withhold("au_1", 1000)]).unwrap(), Ok(1));
                assert_eq!(
                    s.post_moves(&[withhold("au_1", 1000)]).unwrap(),
                    Ok(0),
                    "posted once"
                );
                let credit = |a: &str, amount| BillingMove {
                    posting: Posting {
                        id: format!("compensate:1:{a}"),
                        kind: "compensate".into(),
                        debit: FRAUD_LOSSES.into(),
                        credit: DISPUTED.into(),
                        case_id: Some(1),
                        ..charge(a, amount)
                    },
                    from: &["withheld"],
                    to: "credited",
                };
                assert_eq!(
                    s.post_moves(&[credit("au_1", 1000), credit("au_2", 500)])
                        .unwrap(),
                    Err(Refused::Billing {
                        authorization_id: "au_2".into(),
                        billing: Some("billable".into())
                    }),
                    "au_2 is not withheld: nothing moves"
                );
                assert_eq!(s.transaction("au_1").unwrap().unwrap().billing, "withheld");
                assert_eq!(s.post_moves(&[credit("au_1", 1000)]).unwrap(), Ok(1));
                assert_eq!(s.transaction("au_1").unwrap().unwrap().billing, "credited");
                let b = s.balances(Some("tok")).unwrap();
                let get = |acct: &str| {
                    b.iter()
                        .find(|x| x.account == acct)
                        .map(|x| x.debits - x.credits)
                };
                assert_eq!(get(CARDHOLDER), Some(500), "owes the second charge only");
                assert_eq!(get(NETWORK), Some(-1500));
                assert_eq!(get(DISPUTED), Some(0));
                assert_eq!(get(FRAUD_LOSSES), Some(1000));
                let total: i64 = b.iter().map(|x| x.debits - x.credits).sum();
                assert_eq!(total, 0, "double entry balances");
                assert_eq!(s.postings_of_case(1).unwrap().len(), 1);
                assert_eq!(s.postings_of_card("tok", 0, 11).unwrap().len(), 4);
            },
        );
    }

    /// A card's postings and balances are read through indexes (its charges through its
    /// transactions' index and the postings' ids), never by scanning all postings.
    #[test]
    fn a_cards_postings_are_found_through_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.db");
        drop(Cases::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        for sql in [postings_of_card_sql(), balances_sql(true)] {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let nulls = vec![rusqlite::types::Value::Null; st.parameter_count()];
            let plan: Vec<String> = st
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            let plan = plan.join("\n");
            assert!(plan.contains("postings_card_not_charge"), "{plan}");
            assert!(plan.contains("transactions_card"), "{plan}");
            assert!(plan.contains("sqlite_autoindex_postings_1"), "{plan}");
            assert!(!plan.contains("SCAN p"), "{plan}");
            assert!(!plan.contains("SCAN postings"), "{plan}");
        }
    }

    /// A `cases.db` of an earlier version, whose by-card index of postings held every
    /// charge, loses that index when it is opened.
    #[test]
    fn the_by_card_index_of_charges_is_dropped_from_an_earlier_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cases.db");
        drop(Cases::open(&path).unwrap());
        let indexes = || -> Vec<String> {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let mut st = conn
                .prepare("SELECT name FROM sqlite_master WHERE tbl_name = 'postings' AND type = 'index' ORDER BY name")
                .unwrap();
            st.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE INDEX postings_card ON postings (card_token, at_ms);")
            .unwrap();
        assert!(indexes().contains(&"postings_card".to_owned()));
        drop(Cases::open(&path).unwrap());
        let after = indexes();
        assert!(!after.contains(&"postings_card".to_owned()), "{after:?}");
        assert!(
            after.contains(&"postings_card_not_charge".to_owned()),
            "{after:?}"
        );
    }

    #[test]
    fn a_claim_holds_its_cover_against_the_cap_until_decided() {
        crate::cases::both(
            "a_claim_holds_its_cover_against_the_cap_until_decided",
            |s| {
                let c = |a: &str, covered| ClaimRow {
                    id: 0,
                    card_token: "tok".into(),
                    authorization_id: a.into(),
                    kind: "damage".into(),
                    amount: covered + 3000,
                    currency: "JPY".into(),
                    amount_base: covered + 3000,
                    occurred_ms: 20,
                    purchased_ms: 10,
                    filed_ms: 30,
                    policy_year: "2026".into(),
                    covered,
                    status: "awaiting_documents".into(),
                    payout: 0,
                    description: String::new(),
                    reasons: "[]".into(),
                    decided_ms: None,
                    decided_by: None,
                };
                let first = s
                    .file_claim(&c("au_1", 1_500_000), 2_000_000)
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    s.file_claim(&c("au_1", 10), 2_000_000).unwrap(),
                    Err(ClaimRefused::Duplicate(first.id))
                );
                assert_eq!(
                    s.file_claim(&c("au_2", 600_000), 2_000_000).unwrap(),
                    Err(ClaimRefused::OverCap { remaining: 500_000 })
                );
                let notice = PendingEvent {
                    id: format!("cov-claim-{}", first.id),
                    kind: 7,
                    payload: "{\"covered\":true}".into(),
                    created_ms: 40,
                };
                assert_eq!(
                    s.decide_claim(
                        first.id,
                        &ClaimDecision {
                            approved: true,
                            payout: None,
                            reasons: "[]",
                            actor: "key:ops",
                            at_ms: 40,
                            notice: Some(&notice),
                        }
                    )
                    .unwrap(),
                    Err("awaiting_documents".into()),
                    "no document yet"
                );
                assert!(
                    s.pending_events().unwrap().is_empty(),
                    "a refused decision keeps no notice"
                );
                let doc = DocumentRow {
                    claim_id: first.id,
                    n: 0,
                    content_type: "application/pdf".into(),
                    bytes: 10,
                    sha256: "00".into(),
                    file: "1-1.pdf".into(),
                    added_ms: 35,
                };
                assert_eq!(s.add_document(&doc, 2).unwrap().unwrap().n, 1);
                assert_eq!(s.add_document(&doc, 2).unwrap().unwrap().n, 2);
                assert!(s.add_document(&doc, 2).unwrap().is_err(), "at most 2");
                let pay = Posting {
                    id: format!("claim:{}", first.id),
                    kind: "claim".into(),
                    debit: PROTECTION.into(),
                    credit: CARDHOLDER.into(),
                    amount: 1_200_000,
                    currency: "JPY".into(),
                    card_token: "tok".into(),
                    authorization_id: Some("au_1".into()),
                    case_id: None,
                    claim_id: Some(first.id),
                    at_ms: 40,
                };
                let decided = s
                    .decide_claim(
                        first.id,
                        &ClaimDecision {
                            approved: true,
                            payout: Some(&pay),
                            reasons: "[\"ok\"]",
                            actor: "key:ops",
                            at_ms: 40,
                            notice: Some(&notice),
                        },
                    )
                    .unwrap()
                    .unwrap();
                // The notice is kept with the decision until it is logged.
                assert_eq!(s.pending_events().unwrap(), vec![notice.clone()]);
                s.clear_pending(&notice.id).unwrap();
                assert!(s.pending_events().unwrap().is_empty());
                assert_eq!(
                    (decided.status.as_str(), decided.payout),
                    ("approved", 1_200_000)
                );
                assert_eq!(
                    s.claims_held("tok", "2026").unwrap(),
                    1_200_000,
                    "the payout, not the cover"
                );
                assert!(
                    s.file_claim(&c("au_2", 800_000), 2_000_000)
                        .unwrap()
                        .is_ok()
                );
                assert_eq!(s.postings_of_claim(first.id).unwrap().len(), 1);
                assert!(
                    s.add_document(&doc, 9).unwrap().is_err(),
                    "decided: closed to documents"
                );
            },
        );
    }
}
