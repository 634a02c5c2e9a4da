//! Shopping protection: a cardholder's claim for goods bought with the card and damaged or
//! stolen within the product's window (90 days) of the purchase, up to the product's annual
//! cap per card and policy year, less the product's deductible. A claim is filed (its cover
//! held against the cap), documents are attached (receipts, photos, a police report: PDF,
//! JPEG or PNG, checked by their first bytes, within a size limit), and an analyst decides;
//! an approval credits the card in the ledger, and the cardholder is told either way.

use crate::coverage::posting;
use crate::{App, AppError};
use cardguard_core::{CardToken, Money, Timestamp};
use cardguard_store::ledger::{CARDHOLDER, PROTECTION};
use cardguard_store::{ClaimRefused, ClaimRow, DocumentRow};

const DAY_MS: i64 = 86_400_000;

/// What a claim asks.
#[derive(Debug, Clone)]
pub struct ClaimRequest {
    pub card: CardToken,
    pub authorization_id: String,
    /// `damage` or `theft`.
    pub kind: String,
    pub amount: Money,
    pub occurred_at: Timestamp,
    pub description: String,
}

/// A claim with its documents, its postings and what the cap has left.
#[derive(Debug, Clone)]
pub struct ClaimView {
    pub claim: ClaimRow,
    pub documents: Vec<DocumentRow>,
    pub postings: Vec<cardguard_store::Posting>,
    /// The product's annual cap and what it has left in the claim's policy year.
    pub cap: Money,
    pub remaining: Money,
    pub reasons: Vec<String>,
}

/// The content types a document may have, with the bytes a file of the type starts with
/// and its file extension.
const DOCUMENT_TYPES: [(&str, &[u8], &str); 3] = [
    ("application/pdf", b"%PDF-", "pdf"),
    ("image/jpeg", &[0xFF, 0xD8, 0xFF], "jpg"),
    (
        "image/png",
        &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A],
        "png",
    ),
];

fn store_err(e: cardguard_store::StoreError) -> AppError {
    AppError::Unavailable(format!("claims: {e}"))
}

impl App {
    /// The policy year a moment falls in, for a card (its holder's time zone):
    /// `2026` when years start in January, `2026-04` for years from April.
    fn policy_year(
        &self,
        card: &crate::registry::CardInfo,
        at: Timestamp,
    ) -> Result<String, AppError> {
        let tz = crate::format::zone(
            card.contact.time_zone.as_deref(),
            card.home.as_ref().map(|h| h.country.as_str()),
        );
        let d = jiff::Timestamp::from_millisecond(at.0)
            .map_err(|e| AppError::Internal(e.to_string()))?
            .to_zoned_datetime(tz)
            .date();
        let start = self.config.cases.policy_year_starts as i8;
        let year = if d.month() >= start {
            d.year()
        } else {
            d.year() - 1
        };
        Ok(if start == 1 {
            format!("{year:04}")
        } else {
            format!("{year:04}-{start:02}")
        })
    }

    /// Files a claim: the purchase must be this card's, approved and billed; the loss
    /// within the product's window after it and not in the future; the amount at most
    /// the purchase's, in its currency, and more than the deductible; what it may pay
    /// within what the annual cap has left. Otherwise nothing is stored and the error says
    /// why.
    pub fn file_claim(&self, req: &ClaimRequest) -> Result<ClaimView, AppError> {
        if !["damage", "theft"].contains(&req.kind.as_str()) {
            return Err(AppError::invalid("kind", "must be damage or theft"));
        }
        let info = self
            .card(&req.card)
            .ok_or_else(|| AppError::NotFound(format!("no card {}", req.card)))?;
        let field = "authorization_id";
        let s = self.cases_store();
        let tx = s
            .transaction(&req.authorization_id)
            .map_err(store_err)?
            .filter(|t| t.card_token == req.card.to_string())
            .ok_or_else(|| AppError::invalid(field, "is not a purchase of this card"))?;
        let doc = crate::cases::tx_doc(&tx)
            .ok_or_else(|| AppError::Internal("a transaction does not read".into()))?;
        if doc.decision != "approve" || doc.tx_type != "purchase" {
            return Err(AppError::invalid(field, "is not an approved purchase"));
        }
        match tx.billing.as_str() {
            "billable" => {}
            "withheld" | "credited" | "charged_back" => {
                return Err(AppError::invalid(
                    field,
                    "is disputed as fraud: shopping protection covers the cardholder's own purchases",
                ));
            }
            _ => return Err(AppError::invalid(field, "was not charged (reversed)")),
        }
        if req.amount.currency != doc.amount.currency {
            return Err(AppError::invalid(
                "amount",
                format!(
                    "must be in the purchase's currency, {}",
                    doc.amount.currency.code()
                ),
            ));
        }
        if req.amount.value == 0 || req.amount.value > doc.amount.value {
            return Err(AppError::invalid(
                "amount",
                format!(
                    "must be more than zero and at most the purchase's {}",
                    crate::format::money(&doc.amount)
                ),
            ));
        }
        let policy = self.config.cases.product(&info.product);
        let now = self.now().0;
        let at = req.occurred_at.0;
        if at < tx.at_ms {
            return Err(AppError::invalid("occurred_at", "is before the purchase"));
        }
        if at > now {
            return Err(AppError::invalid("occurred_at", "is in the future"));
        }
        let window = i64::from(policy.protection_window_days);
        if at - tx.at_ms > window * DAY_MS {
            return Err(AppError::invalid(
                "occurred_at",
                format!(
                    "is {} days after the purchase: shopping protection covers {window} days",
                    (at - tx.at_ms) / DAY_MS
                ),
            ));
        }
        let base = self.fx().base;
        let in_base = self.fx().to_base_minor(&req.amount);
        let covered = in_base.saturating_sub(policy.protection_deductible);
        let money = |value| {
            crate::format::money(&Money {
                value,
                currency: base,
            })
        };
        if covered == 0 {
            return Err(AppError::invalid(
                "amount",
                format!(
                    "is not more than the product's deductible of {}",
                    money(policy.protection_deductible)
                ),
            ));
        }
        let description = if req.description.is_empty() {
            String::new()
        } else {
            crate::validate::text("description", &req.description, 2000)?
        };
        let year = self.policy_year(&info, req.occurred_at)?;
        let mut reasons = vec![format!(
            "the loss came {} day(s) after the purchase, within {window}",
            (at - tx.at_ms) / DAY_MS
        )];
        if policy.protection_deductible > 0 {
            reasons.push(format!(
                "the product's deductible of {} is not covered",
                money(policy.protection_deductible)
            ));
        }
        if req.amount.currency != base {
            reasons.push(format!(
                "converted into {} at the reference rate",
                base.code()
            ));
        }
        let row = ClaimRow {
            id: 0,
            card_token: req.card.to_string(),
            authorization_id: req.authorization_id.clone(),
            kind: req.kind.clone(),
            amount: req.amount.value as i64,
            currency: req.amount.currency.code().to_owned(),
            amount_base: in_base as i64,
            occurred_ms: at,
            purchased_ms: tx.at_ms,
            filed_ms: now,
            policy_year: year.clone(),
            covered: covered as i64,
            status: "awaiting_documents".into(),
            payout: 0,
            description,
            reasons: serde_json::to_string(&reasons).unwrap_or_default(),
            decided_ms: None,
            decided_by: None,
        };
        let cap = policy.protection_annual_cap as i64;
        match s.file_claim(&row, cap).map_err(store_err)? {
            Ok(c) => self.view_of_claim(c),
            Err(ClaimRefused::Duplicate(id)) => Err(AppError::Conflict(format!(
                "the purchase has claim {id} already"
            ))),
            Err(ClaimRefused::OverCap { remaining }) => Err(AppError::invalid(
                "amount",
                format!(
                    "is over the annual cap: {} per policy year ({year}), {} left, and the claim would pay {}",
                    money(policy.protection_annual_cap),
                    money(remaining as u64),
                    money(covered)
                ),
            )),
        }
    }

    /// A claim with its documents, postings and what the cap has left.
    pub fn claim_view(&self, id: i64) -> Result<ClaimView, AppError> {
        let claim = self
            .cases_store()
            .claim(id)
            .map_err(store_err)?
            .ok_or_else(|| AppError::NotFound(format!("no claim {id}")))?;
        self.view_of_claim(claim)
    }

    /// The view of a claim already read (a list's rows).
    pub fn view_of_claim(&self, claim: ClaimRow) -> Result<ClaimView, AppError> {
        let s = self.cases_store();
        let id = claim.id;
        let product = CardToken::parse(&claim.card_token)
            .ok()
            .and_then(|t| self.card(&t))
            .map(|c| c.product.clone())
            .unwrap_or_default();
        let policy = self.config.cases.product(&product);
        let held = s
            .claims_held(&claim.card_token, &claim.policy_year)
            .map_err(store_err)?;
        let base = self.fx().base;
        Ok(ClaimView {
            documents: s.documents(id).map_err(store_err)?,
            postings: s.postings_of_claim(id).map_err(store_err)?,
            cap: Money {
                value: policy.protection_annual_cap,
                currency: base,
            },
            remaining: Money {
                value: (policy.protection_annual_cap as i64 - held).max(0) as u64,
                currency: base,
            },
            reasons: serde_json::from_str(&claim.reasons).unwrap_or_default(),
            claim,
        })
    }

    /// Attaches a document to an open claim: its content type one of PDF, JPEG, PNG and its
    /// first bytes that type's, at most `cases.claim_document_max_bytes`, at most
    /// `cases.claim_documents` per claim. Written (synced) under the data directory's
    /// `claims/` before it is recorded; the claim is then under review.
    pub fn add_claim_document(
        &self,
        id: i64,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<DocumentRow, AppError> {
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let Some((ct, magic, ext)) = DOCUMENT_TYPES.iter().find(|d| d.0 == ct) else {
            return Err(AppError::invalid(
                "content-type",
                "must be application/pdf, image/jpeg or image/png",
            ));
        };
        let max = self.config.cases.claim_document_max_bytes;
        if bytes.is_empty() || bytes.len() as u64 > max {
            return Err(AppError::invalid(
                "body",
                format!("a document must be 1 to {max} bytes"),
            ));
        }
        if !bytes.starts_with(magic) {
            return Err(AppError::invalid(
                "body",
                format!("is not a {ct} file (its first bytes say otherwise)"),
            ));
        }
        let claim = self
            .cases_store()
            .claim(id)
            .map_err(store_err)?
            .ok_or_else(|| AppError::NotFound(format!("no claim {id}")))?;
        if !["awaiting_documents", "under_review"].contains(&claim.status.as_str()) {
            return Err(AppError::Conflict(format!(
                "the claim is {}: it takes no documents",
                claim.status
            )));
        }
        let sha = crate::keys::hex(&crate::access::sha256(bytes));
        let file = format!("{id}-{sha}.{ext}");
        let dir = self.data_dir().join("claims");
        write_synced(&dir, &file, bytes)
            .map_err(|e| AppError::Unavailable(format!("claims: writing a document: {e}")))?;
        let row = DocumentRow {
            claim_id: id,
            n: 0,
            content_type: (*ct).to_owned(),
            bytes: bytes.len() as i64,
            sha256: sha,
            file,
            added_ms: self.now().0,
        };
        match self
            .cases_store()
            .add_document(&row, i64::from(self.config.cases.claim_documents))
            .map_err(store_err)?
        {
            Ok(d) => Ok(d),
            Err(why) => Err(AppError::Conflict(why)),
        }
    }

    /// An analyst decides a claim under review: approved, it pays what it covers (credited
    /// to the card in the ledger); declined, `note` says why. The cardholder is told.
    pub async fn decide_claim(
        &self,
        id: i64,
        approve: bool,
        note: &str,
        actor: &str,
    ) -> Result<ClaimView, AppError> {
        if !approve && note.trim().is_empty() {
            return Err(AppError::invalid(
                "note",
                "must say why a claim is declined",
            ));
        }
        let s = self.cases_store();
        let claim = s
            .claim(id)
            .map_err(store_err)?
            .ok_or_else(|| AppError::NotFound(format!("no claim {id}")))?;
        let card =
            CardToken::parse(&claim.card_token).map_err(|e| AppError::Internal(e.to_string()))?;
        let info = self
            .card(&card)
            .ok_or_else(|| AppError::NotFound(format!("no card {card}")))?;
        let now = self.now().0;
        let base = self.fx().base;
        let paid = Money {
            value: claim.covered as u64,
            currency: base,
        };
        let mut reasons: Vec<String> = serde_json::from_str(&claim.reasons).unwrap_or_default();
        // What the cardholder's notice says (its templates know these codes).
        let mut codes = vec![if approve {
            "claim_approved"
        } else {
            "claim_declined"
        }];
        if approve {
            reasons.push(format!(
                "approved: {} credited to the card",
                crate::format::money(&paid)
            ));
            if claim.amount_base > claim.covered {
                codes.push("deductible");
            }
        }
        if !note.is_empty() {
            reasons.push(note.to_owned());
        }
        let payout = approve.then(|| cardguard_store::Posting {
            authorization_id: Some(claim.authorization_id.clone()),
            claim_id: Some(id),
            ..posting(
                "claim",
                format!("claim:{id}"),
                (PROTECTION, CARDHOLDER),
                &paid,
                &claim.card_token,
                now,
            )
        });
        // The cardholder is told: the event is kept pending in the decision's transaction
        // and logged after it (a stop in between: logged at the next start).
        let last4 = info.last4()?;
        let rec = cardguard_engine::CoverageRecord {
            card_token: card,
            last4,
            scheme: "shopping_protection".into(),
            reference: id,
            covered: approve,
            credited: if approve { vec![paid] } else { vec![] },
            billed: vec![],
            reasons: codes.into_iter().map(String::from).collect(),
            actor: actor.to_owned(),
            received: Timestamp(now),
        };
        let notice = Self::pending_coverage(&rec)?;
        let reasons_json = serde_json::to_string(&reasons).unwrap_or_default();
        let row = match s
            .decide_claim(
                id,
                &cardguard_store::ClaimDecision {
                    approved: approve,
                    payout: payout.as_ref(),
                    reasons: &reasons_json,
                    actor,
                    at_ms: now,
                    notice: Some(&notice),
                },
            )
            .map_err(store_err)?
        {
            Ok(r) => r,
            Err(status) => {
                return Err(AppError::Conflict(format!(
                    "the claim is {status}: only a claim under review (with its documents) is decided"
                )));
            }
        };
        self.tell_coverage(&notice, &rec).await?;
        self.view_of_claim(row)
    }
}

/// Writes `bytes` to `dir/name` through a temporary file, synced, then renamed.
fn write_synced(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = cardguard_store::private::options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}
