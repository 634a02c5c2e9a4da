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

use crate::StoreError;
use crate::cases::{CHARGEBACK_COLUMNS, CaseRow, ChargebackRow, SqliteCases, Transition};
use rusqlite::{OptionalExtension, Transaction, params};

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
CREATE INDEX IF NOT EXISTS postings_card ON postings (card_token, at_ms);
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

fn posting(r: &rusqlite::Row<'_>) -> rusqlite::Result<Posting> {
    Ok(Posting {
        id: r.get(0)?,
        kind: r.get(1)?,
        debit: r.get(2)?,
        credit: r.get(3)?,
        amount: r.get(4)?,
        currency: r.get(5)?,
        card_token: r.get(6)?,
        authorization_id: r.get(7)?,
        case_id: r.get(8)?,
        claim_id: r.get(9)?,
        at_ms: r.get(10)?,
    })
}

const CLAIM_COLUMNS: &str = "id, card_token, authorization_id, kind, amount, currency, \
    amount_base, occurred_ms, purchased_ms, filed_ms, policy_year, covered, status, payout, \
    description, reasons, decided_ms, decided_by";

fn claim(r: &rusqlite::Row<'_>) -> rusqlite::Result<ClaimRow> {
    Ok(ClaimRow {
        id: r.get(0)?,
        card_token: r.get(1)?,
        authorization_id: r.get(2)?,
        kind: r.get(3)?,
        amount: r.get(4)?,
        currency: r.get(5)?,
        amount_base: r.get(6)?,
        occurred_ms: r.get(7)?,
        purchased_ms: r.get(8)?,
        filed_ms: r.get(9)?,
        policy_year: r.get(10)?,
        covered: r.get(11)?,
        status: r.get(12)?,
        payout: r.get(13)?,
        description: r.get(14)?,
        reasons: r.get(15)?,
        decided_ms: r.get(16)?,
        decided_by: r.get(17)?,
    })
}

/// Adds a posting inside the caller's transaction; false when it was there already.
pub(crate) fn insert_posting(tx: &Transaction<'_>, p: &Posting) -> Result<bool, StoreError> {
    let mut st = tx.prepare_cached(&format!(
        "INSERT OR IGNORE INTO postings ({POSTING_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?;
    Ok(st.execute(params![
        p.id,
        p.kind,
        p.debit,
        p.credit,
        p.amount,
        p.currency,
        p.card_token,
        p.authorization_id,
        p.case_id,
        p.claim_id,
        p.at_ms
    ])? == 1)
}

/// Applies billing moves inside the caller's transaction: a move posted before is skipped
/// (it was applied); another whose charge is not in one of its `from` statuses refuses
/// all (the caller rolls back).
pub(crate) fn apply_moves(
    tx: &Transaction<'_>,
    moves: &[BillingMove],
) -> Result<Result<usize, Refused>, StoreError> {
    let mut applied = 0;
    for m in moves {
        let p = &m.posting;
        let seen: Option<i64> = tx
            .query_row("SELECT 1 FROM postings WHERE id = ?1", [&p.id], |r| {
                r.get(0)
            })
            .optional()?;
        if seen.is_some() {
            continue;
        }
        let Some(a) = p.authorization_id.as_deref() else {
            return Err(StoreError::Invalid(format!(
                "posting {} moves no charge",
                p.id
            )));
        };
        let billing: Option<String> = tx
            .query_row(
                "SELECT billing FROM transactions WHERE authorization_id = ?1",
                [a],
                |r| r.get(0),
            )
            .optional()?;
        if !billing.as_deref().is_some_and(|b| m.from.contains(&b)) {
            return Ok(Err(Refused::Billing {
                authorization_id: a.to_owned(),
                billing,
            }));
        }
        insert_posting(tx, p)?;
        tx.execute(
            "UPDATE transactions SET billing = ?2 WHERE authorization_id = ?1",
            params![a, m.to],
        )?;
        applied += 1;
    }
    Ok(Ok(applied))
}

impl SqliteCases {
    /// Applies billing moves in one transaction, all or none (see [`BillingMove`]): how
    /// many were new.
    pub fn post_moves(&self, moves: &[BillingMove]) -> Result<Result<usize, Refused>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = apply_moves(&tx, moves)?;
        if out.is_ok() {
            tx.commit()?;
        }
        Ok(out)
    }

    /// Moves a case (as [`SqliteCases::transition`]) and applies billing moves with it, in
    /// one transaction: all or nothing; its pending chargebacks take the status
    /// `chargebacks` when given. `None` for no such case.
    pub fn transition_with(
        &self,
        id: i64,
        t: &Transition<'_>,
        moves: &[BillingMove],
        chargebacks: Option<&str>,
    ) -> Result<Option<Result<CaseRow, Refused>>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let out = match crate::cases::move_case(&tx, id, t)? {
            None => return Ok(None),
            Some(Err(status)) => Err(Refused::Status(status)),
            Some(Ok(row)) => apply_moves(&tx, moves)?.map(|_| row),
        };
        if let (Ok(_), Some(status)) = (&out, chargebacks) {
            tx.execute(
                "UPDATE chargebacks SET status = ?2 WHERE case_id = ?1 AND status = 'pending'",
                params![id, status],
            )?;
        }
        if out.is_ok() {
            tx.commit()?;
        }
        Ok(Some(out))
    }

    /// The chargeback of a charge.
    pub fn chargeback(&self, authorization_id: &str) -> Result<Option<ChargebackRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!(
                    "SELECT {CHARGEBACK_COLUMNS} FROM chargebacks WHERE authorization_id = ?1"
                ),
                [authorization_id],
                crate::cases::chargeback,
            )
            .optional()?)
    }

    /// Answers a pending chargeback (`accepted`, `rejected`) with its billing moves, in one
    /// transaction: the chargeback after it, or why nothing changed.
    pub fn settle_chargeback(
        &self,
        authorization_id: &str,
        status: &str,
        moves: &[BillingMove],
    ) -> Result<Result<ChargebackRow, String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let n = tx.execute(
            "UPDATE chargebacks SET status = ?2 WHERE authorization_id = ?1 AND status = 'pending'",
            params![authorization_id, status],
        )?;
        if n != 1 {
            return Ok(Err(format!(
                "the chargeback of {authorization_id} is not pending"
            )));
        }
        if let Err(r) = apply_moves(&tx, moves)? {
            return Ok(Err(format!("the charge cannot move: {r:?}")));
        }
        let row = tx.query_row(
            &format!("SELECT {CHARGEBACK_COLUMNS} FROM chargebacks WHERE authorization_id = ?1"),
            [authorization_id],
            crate::cases::chargeback,
        )?;
        tx.commit()?;
        Ok(Ok(row))
    }

    /// A card's postings in `[from_ms, to_ms)`, oldest first.
    pub fn postings_of_card(
        &self,
        card_token: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<Posting>, StoreError> {
        crate::query_rows(
            &self.conn(),
            &format!(
                "SELECT {POSTING_COLUMNS} FROM postings WHERE card_token = ?1 AND at_ms >= ?2 \
                 AND at_ms < ?3 ORDER BY at_ms, rowid"
            ),
            params![card_token, from_ms, to_ms],
            posting,
        )
    }

    /// The postings of a case, oldest first.
    pub fn postings_of_case(&self, case_id: i64) -> Result<Vec<Posting>, StoreError> {
        crate::query_rows(
            &self.conn(),
            &format!("SELECT {POSTING_COLUMNS} FROM postings WHERE case_id = ?1 ORDER BY rowid"),
            [case_id],
            posting,
        )
    }

    /// The postings of a claim.
    pub fn postings_of_claim(&self, claim_id: i64) -> Result<Vec<Posting>, StoreError> {
        crate::query_rows(
            &self.conn(),
            &format!("SELECT {POSTING_COLUMNS} FROM postings WHERE claim_id = ?1 ORDER BY rowid"),
            [claim_id],
            posting,
        )
    }

    /// Every account's balance per currency, of one card's postings or of all.
    pub fn balances(&self, card_token: Option<&str>) -> Result<Vec<Balance>, StoreError> {
        crate::query_rows(
            &self.conn(),
            "SELECT account, currency, SUM(d), SUM(c) FROM ( \
               SELECT debit AS account, currency, amount AS d, 0 AS c FROM postings \
                 WHERE ?1 IS NULL OR card_token = ?1 \
               UNION ALL \
               SELECT credit, currency, 0, amount FROM postings \
                 WHERE ?1 IS NULL OR card_token = ?1) \
             GROUP BY account, currency ORDER BY account, currency",
            [card_token],
            |r| {
                Ok(Balance {
                    account: r.get(0)?,
                    currency: r.get(1)?,
                    debits: r.get(2)?,
                    credits: r.get(3)?,
                })
            },
        )
    }

    /// Files a claim if the cap allows it: what the card's open and approved claims of the
    /// same policy year hold, plus this claim's `covered`, must stay within `cap`.
    pub fn file_claim(
        &self,
        c: &ClaimRow,
        cap: i64,
    ) -> Result<Result<ClaimRow, ClaimRefused>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM claims WHERE authorization_id = ?1 AND status != 'declined'",
                [&c.authorization_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Ok(Err(ClaimRefused::Duplicate(id)));
        }
        let held: i64 = tx.query_row(
            "SELECT COALESCE(SUM(CASE WHEN status = 'approved' THEN payout ELSE covered END), 0) \
             FROM claims WHERE card_token = ?1 AND policy_year = ?2 AND status != 'declined'",
            params![c.card_token, c.policy_year],
            |r| r.get(0),
        )?;
        let remaining = (cap - held).max(0);
        if c.covered > remaining {
            return Ok(Err(ClaimRefused::OverCap { remaining }));
        }
        tx.execute(
            "INSERT INTO claims (card_token, authorization_id, kind, amount, currency, amount_base, \
             occurred_ms, purchased_ms, filed_ms, policy_year, covered, status, payout, description, \
             reasons) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, ?13, ?14)",
            params![
                c.card_token,
                c.authorization_id,
                c.kind,
                c.amount,
                c.currency,
                c.amount_base,
                c.occurred_ms,
                c.purchased_ms,
                c.filed_ms,
                c.policy_year,
                c.covered,
                c.status,
                c.description,
                c.reasons
            ],
        )?;
        let id = tx.last_insert_rowid();
        let row = tx.query_row(
            &format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = ?1"),
            [id],
            claim,
        )?;
        tx.commit()?;
        Ok(Ok(row))
    }

    pub fn claim(&self, id: i64) -> Result<Option<ClaimRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = ?1"),
                [id],
                claim,
            )
            .optional()?)
    }

    /// What a card's claims of a policy year hold against the cap (approved: their payout;
    /// open: what they may pay).
    pub fn claims_held(&self, card_token: &str, policy_year: &str) -> Result<i64, StoreError> {
        Ok(self.conn().query_row(
            "SELECT COALESCE(SUM(CASE WHEN status = 'approved' THEN payout ELSE covered END), 0) \
             FROM claims WHERE card_token = ?1 AND policy_year = ?2 AND status != 'declined'",
            params![card_token, policy_year],
            |r| r.get(0),
        )?)
    }

    /// Claims, newest first: of a card and a status when given.
    pub fn claims(
        &self,
        card_token: Option<&str>,
        status: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ClaimRow>, StoreError> {
        crate::query_rows(
            &self.conn(),
            &format!(
                "SELECT {CLAIM_COLUMNS} FROM claims WHERE (?1 IS NULL OR card_token = ?1) \
                 AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3"
            ),
            params![card_token, status, limit as i64],
            claim,
        )
    }

    /// Records a document of a claim that is still open (its file written already); the
    /// claim is then under review. `None` when the claim is not open (its status returned
    /// in `Err`) or has `max` documents.
    pub fn add_document(
        &self,
        d: &DocumentRow,
        max: i64,
    ) -> Result<Result<DocumentRow, String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let status: Option<String> = tx
            .query_row(
                "SELECT status FROM claims WHERE id = ?1",
                [d.claim_id],
                |r| r.get(0),
            )
            .optional()?;
        match status.as_deref() {
            Some("awaiting_documents" | "under_review") => {}
            Some(s) => return Ok(Err(format!("the claim is {s}"))),
            None => return Ok(Err("no such claim".into())),
        }
        let n: i64 = tx.query_row(
            "SELECT COUNT(*) FROM claim_documents WHERE claim_id = ?1",
            [d.claim_id],
            |r| r.get(0),
        )?;
        if n >= max {
            return Ok(Err(format!("the claim has {max} documents already")));
        }
        let row = DocumentRow {
            n: n + 1,
            ..d.clone()
        };
        tx.execute(
            "INSERT INTO claim_documents (claim_id, n, content_type, bytes, sha256, file, added_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                row.claim_id,
                row.n,
                row.content_type,
                row.bytes,
                row.sha256,
                row.file,
                row.added_ms
            ],
        )?;
        tx.execute(
            "UPDATE claims SET status = 'under_review' WHERE id = ?1",
            [d.claim_id],
        )?;
        tx.commit()?;
        Ok(Ok(row))
    }

    /// A claim's documents, in the order they came.
    pub fn documents(&self, claim_id: i64) -> Result<Vec<DocumentRow>, StoreError> {
        crate::query_rows(
            &self.conn(),
            "SELECT claim_id, n, content_type, bytes, sha256, file, added_ms FROM claim_documents \
             WHERE claim_id = ?1 ORDER BY n",
            [claim_id],
            |r| {
                Ok(DocumentRow {
                    claim_id: r.get(0)?,
                    n: r.get(1)?,
                    content_type: r.get(2)?,
                    bytes: r.get(3)?,
                    sha256: r.get(4)?,
                    file: r.get(5)?,
                    added_ms: r.get(6)?,
                })
            },
        )
    }

    /// Decides a claim under review, with its payout posting when it pays: the claim after
    /// it, or its status when it is not under review (nothing changed).
    pub fn decide_claim(
        &self,
        id: i64,
        approved: bool,
        payout: Option<&Posting>,
        reasons: &str,
        actor: &str,
        at_ms: i64,
    ) -> Result<Result<ClaimRow, String>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let status: Option<String> = tx
            .query_row("SELECT status FROM claims WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()?;
        match status.as_deref() {
            Some("under_review") => {}
            Some(s) => return Ok(Err(s.to_owned())),
            None => return Ok(Err("missing".into())),
        }
        if let Some(p) = payout {
            insert_posting(&tx, p)?;
        }
        tx.execute(
            "UPDATE claims SET status = ?2, payout = ?3, reasons = ?4, decided_ms = ?5, \
             decided_by = ?6 WHERE id = ?1",
            params![
                id,
                if approved { "approved" } else { "declined" },
                payout.map_or(0, |p| p.amount),
                reasons,
                at_ms,
                actor
            ],
        )?;
        let row = tx.query_row(
            &format!("SELECT {CLAIM_COLUMNS} FROM claims WHERE id = ?1"),
            [id],
            claim,
        )?;
        tx.commit()?;
        Ok(Ok(row))
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
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteCases::open(&dir.path().join("cases.db")).unwrap();
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
    }

    #[test]
    fn a_claim_holds_its_cover_against_the_cap_until_decided() {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteCases::open(&dir.path().join("cases.db")).unwrap();
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
        assert_eq!(
            s.decide_claim(first.id, true, None, "[]", "key:ops", 40)
                .unwrap(),
            Err("awaiting_documents".into()),
            "no document yet"
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
            .decide_claim(first.id, true, Some(&pay), "[\"ok\"]", "key:ops", 40)
            .unwrap()
            .unwrap();
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
    }
}
