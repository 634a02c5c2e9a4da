//! What the cardholder pays after fraud: the ledger postings of a charge's life (charged,
//! withheld while investigated, credited, billed again, charged back), the compensation
//! decision when a case is resolved (the card product's window, gross negligence,
//! deductible and cap), and the acquirer's answer to a chargeback. Every posting names its
//! charge and case; the cardholder is told the decision through the alerts outbox (a
//! coverage event in the log).

use crate::cases::{TxDoc, tx_doc};
use crate::config::ProductPolicy;
use crate::{App, AppError};
use cardguard_core::{Currency, Money};
use cardguard_store::ledger::{CARDHOLDER, DISPUTED, FRAUD_LOSSES, NETWORK};
use cardguard_store::{BillingMove, CaseRow, ChargebackRow, Posting, Refused, TxRow};

const DAY_MS: i64 = 86_400_000;

/// A posting of `amount` for a card, at `at_ms`.
pub(crate) fn posting(
    kind: &str,
    id: String,
    (debit, credit): (&str, &str),
    amount: &Money,
    card_token: &str,
    at_ms: i64,
) -> Posting {
    Posting {
        id,
        kind: kind.to_owned(),
        debit: debit.to_owned(),
        credit: credit.to_owned(),
        amount: amount.value as i64,
        currency: amount.currency.code().to_owned(),
        card_token: card_token.to_owned(),
        authorization_id: None,
        case_id: None,
        claim_id: None,
        at_ms,
    }
}

/// The posting of an approved charge: the cardholder owes it, the issuer owes the network.
pub fn charge(row: &TxRow, amount: &Money) -> Posting {
    Posting {
        authorization_id: Some(row.authorization_id.clone()),
        ..posting(
            "charge",
            format!("charge:{}", row.authorization_id),
            (CARDHOLDER, NETWORK),
            amount,
            &row.card_token,
            row.at_ms,
        )
    }
}

/// A charge taken off the bill while it is investigated (a fraud label, a dispute).
pub fn withhold(
    authorization_id: &str,
    card_token: &str,
    amount: &Money,
    case_id: Option<i64>,
    at_ms: i64,
) -> BillingMove {
    BillingMove {
        posting: Posting {
            authorization_id: Some(authorization_id.to_owned()),
            case_id,
            ..posting(
                "withhold",
                format!("withhold:{authorization_id}"),
                (DISPUTED, CARDHOLDER),
                amount,
                card_token,
                at_ms,
            )
        },
        from: &["billable"],
        to: "withheld",
    }
}

/// The posting that withholds a disputed charge, in the dispute's case (what
/// [`cardguard_store::Cases::dispute`] posts for each of its chargebacks).
pub fn withhold_chargeback(
    c: &cardguard_store::ChargebackRow,
    case_id: i64,
    at_ms: i64,
) -> Posting {
    let amount = Money {
        value: c.amount as u64,
        currency: cardguard_core::Currency::parse(&c.currency)
            .unwrap_or(cardguard_core::Currency::JPY),
    };
    withhold(
        &c.authorization_id,
        &c.card_token,
        &amount,
        Some(case_id),
        at_ms,
    )
    .posting
}

/// A reversed charge: nobody owes it (from the bill, or from the withheld charges).
pub(crate) fn reversal(row: &TxRow, amount: &Money, at_ms: i64) -> Option<BillingMove> {
    let (credit, from): (&str, &'static [&'static str]) = match row.billing.as_str() {
        "billable" => (CARDHOLDER, &["billable"]),
        "withheld" => (DISPUTED, &["withheld"]),
        _ => return None,
    };
    Some(BillingMove {
        posting: Posting {
            authorization_id: Some(row.authorization_id.clone()),
            ..posting(
                "reversal",
                format!("reversal:{}", row.authorization_id),
                (NETWORK, credit),
                amount,
                &row.card_token,
                at_ms,
            )
        },
        from,
        to: "not_billed",
    })
}

/// A move of a case's charge, the case named in its posting.
fn case_move(
    kind: &str,
    case: &CaseRow,
    row: &TxRow,
    accounts: (&str, &str),
    amount: &Money,
    (from, to): (&'static [&'static str], &'static str),
    at_ms: i64,
) -> BillingMove {
    BillingMove {
        posting: Posting {
            authorization_id: Some(row.authorization_id.clone()),
            case_id: Some(case.id),
            ..posting(
                kind,
                format!("{kind}:{}:{}", case.id, row.authorization_id),
                accounts,
                amount,
                &row.card_token,
                at_ms,
            )
        },
        from,
        to,
    }
}

/// A reason of a decision: a code the notice's templates know, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub code: &'static str,
    pub detail: String,
}

/// A charge and what the decision does with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeOutcome {
    pub authorization_id: String,
    pub amount: Money,
    /// `credited`, `billed`, `deducted` (part billed as the deductible), `settled` (credited
    /// or charged back before).
    pub outcome: &'static str,
    /// What the cardholder is credited of it.
    pub credited: Money,
}

/// A case's compensation decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compensation {
    pub covered: bool,
    pub charges: Vec<ChargeOutcome>,
    pub reasons: Vec<Reason>,
    pub moves: Vec<BillingMove>,
}

/// Decides what a case resolved as fraud compensates: its charges in the product's window
/// before the report (the case's opening) are credited, unless a finding is gross
/// negligence for the product; the product's deductible is billed from charges in the base
/// currency; charges past the product's cap per case are billed. `charges` oldest first.
pub fn compensate(
    policy: &ProductPolicy,
    base: Currency,
    fx: &cardguard_engine::FxRates,
    case: &CaseRow,
    charges: &[(TxRow, TxDoc)],
    findings: &[String],
    at_ms: i64,
) -> Compensation {
    let mut out = Compensation {
        covered: false,
        charges: Vec::new(),
        reasons: Vec::new(),
        moves: Vec::new(),
    };
    let negligent: Vec<&str> = findings
        .iter()
        .map(String::as_str)
        .filter(|f| policy.gross_negligence.iter().any(|g| g == f))
        .collect();
    if !negligent.is_empty() {
        out.reasons.push(Reason {
            code: "gross_negligence",
            detail: format!(
                "the investigation found gross negligence ({}): the charges are billed",
                negligent.join(", ")
            ),
        });
    }
    let oldest = case.opened_ms - i64::from(policy.compensation_window_days) * DAY_MS;
    let mut deductible_left = policy.compensation_deductible;
    let mut cap_left = if policy.compensation_cap == 0 {
        u64::MAX
    } else {
        policy.compensation_cap
    };
    let (mut outside, mut over_cap, mut deducted) = (0, 0, 0u64);
    for (row, doc) in charges {
        let amount = doc.amount;
        let zero = Money {
            value: 0,
            currency: amount.currency,
        };
        let mut outcome = |o: &'static str, credited: Money| {
            out.charges.push(ChargeOutcome {
                authorization_id: row.authorization_id.clone(),
                amount,
                outcome: o,
                credited,
            })
        };
        let withheld: &'static [&'static str] = &["withheld"];
        let bill = |out: &mut Vec<BillingMove>| {
            if row.billing == "withheld" {
                out.push(case_move(
                    "rebill",
                    case,
                    row,
                    (CARDHOLDER, DISPUTED),
                    &amount,
                    (withheld, "billable"),
                    at_ms,
                ));
            }
        };
        if !matches!(row.billing.as_str(), "billable" | "withheld") {
            outcome("settled", zero);
            continue;
        }
        if !negligent.is_empty() {
            bill(&mut out.moves);
            outcome("billed", zero);
            continue;
        }
        if row.at_ms < oldest {
            outside += 1;
            bill(&mut out.moves);
            outcome("billed", zero);
            continue;
        }
        let in_base = fx.to_base_minor(&amount);
        if in_base > cap_left {
            over_cap += 1;
            bill(&mut out.moves);
            outcome("billed", zero);
            continue;
        }
        cap_left -= in_base;
        if row.billing == "billable" {
            out.moves.push(withhold(
                &row.authorization_id,
                &row.card_token,
                &amount,
                Some(case.id),
                at_ms,
            ));
        }
        let d = if amount.currency == base {
            deductible_left.min(amount.value)
        } else {
            0
        };
        deductible_left -= d;
        deducted += d;
        let credited = Money {
            value: amount.value - d,
            currency: amount.currency,
        };
        if d > 0 {
            out.moves.push(case_move(
                "deductible",
                case,
                row,
                (CARDHOLDER, DISPUTED),
                &Money {
                    value: d,
                    currency: amount.currency,
                },
                // The deductible took all of it: billed after all.
                (
                    withheld,
                    if credited.value == 0 {
                        "billable"
                    } else {
                        "withheld"
                    },
                ),
                at_ms,
            ));
        }
        if credited.value == 0 {
            outcome("deducted", zero);
            continue;
        }
        out.moves.push(case_move(
            "compensate",
            case,
            row,
            (FRAUD_LOSSES, DISPUTED),
            &credited,
            (withheld, "credited"),
            at_ms,
        ));
        out.covered = true;
        outcome(if d > 0 { "deducted" } else { "credited" }, credited);
    }
    let n = out.charges.iter().filter(|c| c.credited.value > 0).count();
    if out.covered {
        out.reasons.insert(
            0,
            Reason {
                code: "within_window",
                detail: format!(
                    "{n} fraudulent charge(s) within {} days before the report are not billed",
                    policy.compensation_window_days
                ),
            },
        );
    }
    if outside > 0 {
        out.reasons.push(Reason {
            code: "outside_window",
            detail: format!(
                "{outside} charge(s) more than {} days before the report are billed",
                policy.compensation_window_days
            ),
        });
    }
    if over_cap > 0 {
        out.reasons.push(Reason {
            code: "cap_reached",
            detail: format!(
                "{over_cap} charge(s) past the product's cap of {} per case are billed",
                crate::format::money(&Money {
                    value: policy.compensation_cap,
                    currency: base
                })
            ),
        });
    }
    if deducted > 0 {
        out.reasons.push(Reason {
            code: "deductible",
            detail: format!(
                "the product's deductible of {} is billed",
                crate::format::money(&Money {
                    value: deducted,
                    currency: base
                })
            ),
        });
    }
    if charges.is_empty() {
        out.reasons.push(Reason {
            code: "no_charges",
            detail: "the case is about no charge that was billed".into(),
        });
    }
    out
}

/// The charges of a case, oldest first: a dispute's disputed charges, or the case's own
/// authorization when it was charged.
pub(crate) fn case_charges(app: &App, case: &CaseRow) -> Result<Vec<(TxRow, TxDoc)>, AppError> {
    let s = app.cases_store();
    let err = |e: cardguard_store::StoreError| AppError::Unavailable(format!("cases: {e}"));
    let ids: Vec<String> = if case.source == "dispute" {
        s.chargebacks(case.id)
            .map_err(err)?
            .into_iter()
            .map(|c| c.authorization_id)
            .collect()
    } else {
        case.authorization_id.iter().cloned().collect()
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let Some(row) = s.transaction(&id).map_err(err)? else {
            continue;
        };
        let Some(doc) = tx_doc(&row) else { continue };
        if doc.decision == "approve" {
            out.push((row, doc));
        }
    }
    out.sort_by_key(|c| c.0.at_ms);
    Ok(out)
}

/// The amounts a decision credits or bills, per currency.
pub(crate) fn totals(amounts: impl Iterator<Item = Money>) -> Vec<Money> {
    let mut by: std::collections::BTreeMap<String, Money> = Default::default();
    for m in amounts.filter(|m| m.value > 0) {
        by.entry(m.currency.code().to_owned())
            .and_modify(|t| t.value += m.value)
            .or_insert(m);
    }
    by.into_values().collect()
}

impl App {
    /// The acquirer's answer to a chargeback: `accepted` recovers the charge (the issuer's
    /// loss or the withheld charge goes back to the network: charged back), `rejected`
    /// leaves it as the case decided. Only a pending chargeback is answered.
    pub fn chargeback_outcome(
        &self,
        authorization_id: &str,
        outcome: &str,
        actor: &str,
    ) -> Result<ChargebackRow, AppError> {
        if !["accepted", "rejected"].contains(&outcome) {
            return Err(AppError::invalid("outcome", "must be accepted or rejected"));
        }
        let s = self.cases_store();
        let err = |e: cardguard_store::StoreError| AppError::Unavailable(format!("cases: {e}"));
        let cb = s
            .chargeback(authorization_id)
            .map_err(err)?
            .ok_or_else(|| AppError::NotFound(format!("no chargeback of {authorization_id}")))?;
        if cb.status != "pending" {
            return Err(AppError::Conflict(format!(
                "the chargeback is {}: only a pending one is answered",
                cb.status
            )));
        }
        let row = s
            .transaction(authorization_id)
            .map_err(err)?
            .ok_or_else(|| AppError::Internal(format!("no transaction {authorization_id}")))?;
        let now = self.now().0;
        let mut moves = Vec::new();
        if outcome == "accepted" {
            let currency =
                Currency::parse(&cb.currency).map_err(|e| AppError::Internal(e.to_string()))?;
            // Who the recovered money goes to: the issuer for what it compensated, the
            // cardholder for a deductible it billed (the merchant bears the charge now);
            // a charge still withheld leaves the disputed account whole.
            let mut shares: Vec<(&str, &str, i64)> = Vec::new();
            let from: &'static [&'static str] = match row.billing.as_str() {
                "credited" => {
                    let of_charge = s.postings_of_case(cb.case_id).map_err(err)?;
                    let sum = |kind: &str| -> i64 {
                        of_charge
                            .iter()
                            .filter(|p| {
                                p.kind == kind
                                    && p.authorization_id.as_deref() == Some(authorization_id)
                            })
                            .map(|p| p.amount)
                            .sum()
                    };
                    shares.push(("chargeback", FRAUD_LOSSES, sum("compensate")));
                    shares.push(("chargeback_refund", CARDHOLDER, sum("deductible")));
                    &["credited"]
                }
                "withheld" => {
                    shares.push(("chargeback", DISPUTED, cb.amount));
                    &["withheld"]
                }
                b => {
                    return Err(AppError::Conflict(format!(
                        "the charge is {b}: it is not charged back"
                    )));
                }
            };
            for (i, (kind, credit, value)) in shares.into_iter().enumerate() {
                if value <= 0 {
                    continue;
                }
                let amount = Money {
                    value: value as u64,
                    currency,
                };
                moves.push(BillingMove {
                    posting: Posting {
                        authorization_id: Some(cb.authorization_id.clone()),
                        case_id: Some(cb.case_id),
                        ..posting(
                            kind,
                            format!("{kind}:{}", cb.authorization_id),
                            (NETWORK, credit),
                            &amount,
                            &cb.card_token,
                            now,
                        )
                    },
                    from: if i == 0 { from } else { &["charged_back"] },
                    to: "charged_back",
                });
            }
        }
        match s
            .settle_chargeback(authorization_id, outcome, &moves)
            .map_err(err)?
        {
            Ok(cb) => {
                let note = format!("chargeback of {authorization_id} {outcome} by the acquirer");
                s.note_step(cb.case_id, actor, "chargeback", &note, now)
                    .map_err(err)?;
                Ok(cb)
            }
            Err(why) => Err(AppError::Conflict(why)),
        }
    }

    /// Resolves a case with the ledger following: as fraud, the compensation decision's
    /// postings (`findings` of the investigation weighed against the card product's policy);
    /// as genuine, the withheld charges billed again and the pending chargebacks withdrawn.
    /// The case, the charges' billing and the postings change in one transaction; then the
    /// cardholder is told (a coverage event).
    pub(crate) async fn resolve_case(
        &self,
        case: &CaseRow,
        fraud: bool,
        findings: &[String],
        note: &str,
        actor: &str,
    ) -> Result<(CaseRow, Compensation), AppError> {
        for f in findings {
            if !crate::config::NEGLIGENCE_FINDINGS.contains(&f.as_str()) {
                return Err(AppError::invalid(
                    "findings",
                    format!(
                        "{f:?} is not one of {}",
                        crate::config::NEGLIGENCE_FINDINGS.join(", ")
                    ),
                ));
            }
        }
        let card = cardguard_core::CardToken::parse(&case.card_token)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let info = self
            .card(&card)
            .ok_or_else(|| AppError::NotFound(format!("no card {card}")))?;
        let now = self.now().0;
        let charges = case_charges(self, case)?;
        let decision = if fraud {
            compensate(
                &self.config.cases.product(&info.product),
                self.fx().base,
                self.fx(),
                case,
                &charges,
                findings,
                now,
            )
        } else {
            let mut moves = Vec::new();
            let mut outcomes = Vec::new();
            for (row, doc) in &charges {
                if row.billing == "withheld" {
                    moves.push(case_move(
                        "rebill",
                        case,
                        row,
                        (CARDHOLDER, DISPUTED),
                        &doc.amount,
                        (&["withheld"], "billable"),
                        now,
                    ));
                    outcomes.push(ChargeOutcome {
                        authorization_id: row.authorization_id.clone(),
                        amount: doc.amount,
                        outcome: "billed",
                        credited: Money {
                            value: 0,
                            currency: doc.amount.currency,
                        },
                    });
                }
            }
            Compensation {
                covered: false,
                charges: outcomes,
                reasons: vec![Reason {
                    code: "found_genuine",
                    detail: "the investigation found the charges were the cardholder's".into(),
                }],
                moves,
            }
        };
        let close_ms = i64::from(self.config.cases.close_after_days) * DAY_MS;
        let to = if fraud {
            "resolved_fraud"
        } else {
            "resolved_genuine"
        };
        let mut step = note.to_owned();
        for r in &decision.reasons {
            step.push_str(if step.is_empty() { "" } else { "; " });
            step.push_str(&r.detail);
        }
        let t = cardguard_store::Transition {
            from: crate::cases::UNRESOLVED,
            to,
            actor,
            action: "resolve",
            note: &step,
            due_ms: Some(now + close_ms),
            at_ms: now,
        };
        // The cardholder is told of a decision about charges: its event is kept pending in
        // the decision's transaction and logged after it, so a stop between the two loses it
        // not (it is logged at the next start).
        let notice = if decision.charges.is_empty() {
            None
        } else {
            let last4 = info.last4()?;
            let rec = cardguard_engine::CoverageRecord {
                card_token: card,
                last4,
                scheme: "fraud_compensation".into(),
                reference: case.id,
                covered: decision.covered,
                credited: totals(decision.charges.iter().map(|c| c.credited)),
                billed: totals(
                    decision
                        .charges
                        .iter()
                        .filter(|c| c.outcome != "settled")
                        .map(|c| Money {
                            value: c.amount.value - c.credited.value,
                            currency: c.amount.currency,
                        }),
                ),
                reasons: decision.reasons.iter().map(|r| r.code.to_owned()).collect(),
                actor: actor.to_owned(),
                received: cardguard_core::Timestamp(now),
            };
            Some((Self::pending_coverage(&rec)?, rec))
        };
        let withdraw = (!fraud).then_some("withdrawn");
        let row = match self
            .cases_store()
            .transition_with(
                case.id,
                &t,
                &decision.moves,
                withdraw,
                notice.as_ref().map(|(p, _)| p),
            )
            .map_err(|e| AppError::Unavailable(format!("cases: {e}")))?
        {
            None => return Err(AppError::NotFound(format!("no case {}", case.id))),
            Some(Err(Refused::Status(s))) => {
                return Err(AppError::Conflict(format!(
                    "the case is {s}: resolve is not allowed"
                )));
            }
            Some(Err(Refused::Billing {
                authorization_id,
                billing,
            })) => {
                return Err(AppError::Conflict(format!(
                    "the charge {authorization_id} is {}: try again",
                    billing.as_deref().unwrap_or("missing")
                )));
            }
            Some(Ok(row)) => row,
        };
        if let Some((pending, rec)) = &notice {
            self.tell_coverage(pending, rec).await?;
        }
        Ok((row, decision))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> CaseRow {
        CaseRow {
            id: 7,
            card_token: "tok".into(),
            authorization_id: None,
            source: "dispute".into(),
            status: "investigating".into(),
            opened_ms: 100 * DAY_MS,
            updated_ms: 100 * DAY_MS,
            due_ms: None,
        }
    }

    fn charge(id: &str, day: i64, value: u64, currency: &str, billing: &str) -> (TxRow, TxDoc) {
        let amount = Money {
            value,
            currency: Currency::parse(currency).unwrap(),
        };
        let doc = TxDoc {
            last4: "2349".into(),
            amount,
            merchant: "SHOP".into(),
            merchant_id: "m-1".into(),
            city: "Tokyo".into(),
            country: "JP".into(),
            mcc: 5732,
            channel: "ecommerce".into(),
            tx_type: "purchase".into(),
            decision: "approve".into(),
            response_code: "00".into(),
            risk_score: 10,
            reasons: vec![],
        };
        let row = TxRow {
            authorization_id: id.into(),
            card_token: "tok".into(),
            at_ms: day * DAY_MS,
            billing: billing.into(),
            doc: String::new(),
        };
        (row, doc)
    }

    fn kinds(c: &Compensation) -> Vec<(&str, &str, i64)> {
        c.moves
            .iter()
            .map(|m| {
                (
                    m.posting.kind.as_str(),
                    m.posting.authorization_id.as_deref().unwrap_or(""),
                    m.posting.amount,
                )
            })
            .collect()
    }

    #[test]
    fn charges_in_the_window_are_credited_and_older_ones_billed() {
        let p = ProductPolicy::default();
        let fx = cardguard_engine::FxRates::default();
        let charges = [
            charge("au_old", 30, 5_000, "JPY", "withheld"),
            charge("au_1", 50, 12_800, "JPY", "withheld"),
            charge("au_2", 99, 2_000, "JPY", "billable"),
        ];
        let c = compensate(&p, Currency::JPY, &fx, &case(), &charges, &[], 100 * DAY_MS);
        assert!(c.covered);
        assert_eq!(
            kinds(&c),
            [
                ("rebill", "au_old", 5_000),
                ("compensate", "au_1", 12_800),
                ("withhold", "au_2", 2_000),
                ("compensate", "au_2", 2_000)
            ]
        );
        let codes: Vec<&str> = c.reasons.iter().map(|r| r.code).collect();
        assert_eq!(codes, ["within_window", "outside_window"]);
        // Exactly 60 days before the report is still inside.
        let edge = [charge("au_e", 40, 100, "JPY", "withheld")];
        let c = compensate(&p, Currency::JPY, &fx, &case(), &edge, &[], 0);
        assert_eq!(kinds(&c), [("compensate", "au_e", 100)]);
    }

    #[test]
    fn gross_negligence_bills_everything_and_deductible_and_cap_apply() {
        let fx = cardguard_engine::FxRates::default();
        let charges = [
            charge("au_1", 90, 3_000, "JPY", "withheld"),
            charge("au_2", 91, 10_000, "JPY", "withheld"),
            charge("au_3", 92, 100, "USD", "withheld"),
            charge("au_4", 93, 50_000, "JPY", "withheld"),
        ];
        let p = ProductPolicy::default();
        let c = compensate(
            &p,
            Currency::JPY,
            &fx,
            &case(),
            &charges,
            &["pin_written_on_card".into(), "late_report".into()],
            0,
        );
        assert!(!c.covered);
        assert!(kinds(&c).iter().all(|k| k.0 == "rebill"));
        assert_eq!(c.reasons[0].code, "gross_negligence");
        assert!(c.reasons[0].detail.contains("pin_written_on_card"));
        assert!(
            !c.reasons[0].detail.contains("late_report"),
            "not this product's negligence"
        );

        let p = ProductPolicy {
            compensation_deductible: 5_000,
            compensation_cap: 20_000,
            ..ProductPolicy::default()
        };
        let c = compensate(&p, Currency::JPY, &fx, &case(), &charges, &[], 0);
        assert_eq!(
            kinds(&c),
            [
                // 3,000 of the 5,000 deductible: billed whole.
                ("deductible", "au_1", 3_000),
                ("deductible", "au_2", 2_000),
                ("compensate", "au_2", 8_000),
                // US$1.00 is 150 JPY at the reference rate: within the cap, no deductible.
                ("compensate", "au_3", 100),
                ("rebill", "au_4", 50_000),
            ]
        );
        assert_eq!(c.moves[0].to, "billable", "wholly deducted: billed");
        let outcomes: Vec<&str> = c.charges.iter().map(|x| x.outcome).collect();
        assert_eq!(outcomes, ["deducted", "deducted", "credited", "billed"]);
        let codes: Vec<&str> = c.reasons.iter().map(|r| r.code).collect();
        assert_eq!(codes, ["within_window", "cap_reached", "deductible"]);
    }
}
