//! Cases: what follows a suspicion, from the alert to the resolution. A consumer of the event
//! log (`cases`, from the log's start) keeps every authorization as a card transaction
//! (for the timeline and for disputes) and opens cases by itself: a hold (awaiting the
//! cardholder until the hold expires), a "not me" answer, a fraud label; analysts open
//! others (a phishing report, their own suspicion). A case moves through
//! open → awaiting cardholder → investigating → resolved fraud | resolved genuine → closed,
//! each step with who did it and when; timers move it on by themselves (no answer in time:
//! investigating; resolved for `cases.close_after_days`: closed).

use crate::consumer::{ConsumerHandle, ConsumerOptions, HandlerError, Start};
use crate::{App, AppError};
use cardguard_core::Decision;
use cardguard_engine::{AuthRecord, Event};
use cardguard_store::{CaseRow, StepRow, Transition, TxRow};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The consumer's name (`consumers/cases.cursor`).
pub const CONSUMER: &str = "cases";

/// The cases consumer's `linger`: an authorization is in the card's timeline, and a hold's
/// case in the queue, at most half a second after the decision; the events of that half
/// second are written in one transaction. Each commit writes every index page it changed
/// (to the write-ahead log, and again to the database) and syncs, and the by-card indexes
/// take each row on a page of their own until a batch outnumbers their pages: at 10,000
/// cards and 5,000 authorizations a second, batches of half a second wrote 46% less than
/// batches of 1,024 events (the default `ack_every`, which cut the 250 ms before) and took
/// 29% less CPU time.
pub const CASES_LINGER: std::time::Duration = std::time::Duration::from_millis(500);

/// The most events the cases consumer keeps before it writes them (what bounds a batch
/// while it works off a backlog).
pub const CASES_BATCH: usize = 16_384;

/// Where a case is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    Open,
    AwaitingCardholder,
    Investigating,
    ResolvedFraud,
    ResolvedGenuine,
    Closed,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 6] = [
        CaseStatus::Open,
        CaseStatus::AwaitingCardholder,
        CaseStatus::Investigating,
        CaseStatus::ResolvedFraud,
        CaseStatus::ResolvedGenuine,
        CaseStatus::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Open => "open",
            CaseStatus::AwaitingCardholder => "awaiting_cardholder",
            CaseStatus::Investigating => "investigating",
            CaseStatus::ResolvedFraud => "resolved_fraud",
            CaseStatus::ResolvedGenuine => "resolved_genuine",
            CaseStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<CaseStatus> {
        CaseStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// The source of the labels a dispute gives its charges.
const DISPUTE_LABEL: &str = "dispute";
/// How far back a cardholder may dispute a charge.
pub const DISPUTE_WINDOW_DAYS: i64 = 60;

/// How an analyst's release reaches the log (the answer's `via`).
const RELEASED_BY_ANALYST: &str = "analyst";

/// The statuses a case is still being worked in.
pub(crate) const UNRESOLVED: &[&str] = &["open", "awaiting_cardholder", "investigating"];
const WAITING: &[&str] = &["open", "awaiting_cardholder"];
const RESOLVED: &[&str] = &["resolved_fraud", "resolved_genuine"];

/// Where a case can come from.
pub const SOURCES: [&str; 6] = [
    "hold",
    "not_me",
    "fraud_label",
    "dispute",
    "phishing_report",
    "analyst",
];

/// A transaction as the cases show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxDoc {
    pub last4: String,
    pub amount: cardguard_core::Money,
    pub merchant: String,
    pub merchant_id: String,
    pub city: String,
    pub country: String,
    pub mcc: u16,
    pub channel: String,
    #[serde(rename = "type")]
    pub tx_type: String,
    pub decision: String,
    pub response_code: String,
    pub risk_score: u8,
    pub reasons: Vec<(String, String)>,
}

fn tx_row(rec: &AuthRecord) -> TxRow {
    let t = &rec.tx;
    let o = &rec.outcome;
    let doc = TxDoc {
        last4: t.last4.to_string(),
        amount: t.amount,
        merchant: t.merchant.name.clone(),
        merchant_id: t.merchant.id.clone(),
        city: t.merchant.city.clone(),
        country: t.merchant.country.as_str().to_owned(),
        mcc: t.merchant.mcc.code(),
        channel: t.channel.as_str().to_owned(),
        tx_type: t.tx_type.as_str().to_owned(),
        decision: o.decision.as_str().to_owned(),
        response_code: o.response_code.as_str().to_owned(),
        risk_score: o.risk_score,
        reasons: o
            .reasons
            .iter()
            .map(|r| (r.code.as_str().to_owned(), r.detail.clone()))
            .collect(),
    };
    TxRow {
        authorization_id: rec.authorization_id.clone(),
        card_token: t.card_token.to_string(),
        at_ms: t.ts.0,
        billing: if o.decision == Decision::Approve {
            "billable"
        } else {
            "not_billed"
        }
        .into(),
        doc: serde_json::to_string(&doc).unwrap_or_default(),
    }
}

/// A case with its steps and the card's timeline.
#[derive(Debug, Clone)]
pub struct CaseView {
    pub case: CaseRow,
    pub steps: Vec<StepRow>,
    pub transactions: Vec<TxRow>,
    pub notifications: Vec<cardguard_store::OutboxRow>,
    /// A dispute's chargebacks.
    pub chargebacks: Vec<cardguard_store::ChargebackRow>,
    /// The ledger postings made for the case.
    pub postings: Vec<cardguard_store::Posting>,
}

/// A case after an action, with the compensation decision when it was resolved.
#[derive(Debug, Clone)]
pub struct ActionDone {
    pub case: CaseRow,
    pub compensation: Option<crate::coverage::Compensation>,
}

/// An analyst's action on a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseAction {
    /// The held authorization goes through (as the cardholder's "it was me").
    Release,
    /// The card is blocked.
    Block,
    /// The case's authorization gets a label.
    Label {
        fraud: bool,
    },
    /// Resolved as fraud (compensated as the card product's policy and the investigation's
    /// findings say) or genuine (withheld charges billed again).
    Resolve {
        fraud: bool,
        findings: Vec<String>,
    },
    Close,
    /// The card is replaced (`full` block, or `card_not_present`).
    Reissue {
        block: String,
    },
}

fn store_err(e: cardguard_store::StoreError) -> AppError {
    AppError::Unavailable(format!("cases: {e}"))
}

fn not_allowed(status: &str, action: &str) -> AppError {
    AppError::Conflict(format!("the case is {status}: {action} is not allowed"))
}

/// Starts the cases consumer: transactions, their charges and the cases of holds kept for
/// each batch of events and written in one transaction at its end (each commit synced, so
/// before the consumer's position moves); other events' cases opened and moved as they say.
pub fn spawn_consumer(app: &Arc<App>) -> Result<ConsumerHandle, AppError> {
    /// What a batch of events adds to the index: transactions, charges, cases of holds.
    type Batch = (
        Vec<TxRow>,
        Vec<cardguard_store::Posting>,
        Vec<cardguard_store::CaseOpening>,
    );
    let buffer: Arc<crate::consumer::Buffer<Batch>> = Arc::default();
    let flush = {
        let (app, buffer) = (Arc::clone(app), Arc::clone(&buffer));
        move || -> Result<(), HandlerError> {
            buffer.flush(|(rows, charges, opens)| {
                app.cases_store()
                    .index(rows, charges, opens)
                    .map_err(|e| HandlerError::from(e.to_string()))
            })
        }
    };
    let flush: crate::consumer::SyncHook = Arc::new(flush);
    let f2 = Arc::clone(&flush);
    let a = Arc::clone(app);
    let hold_ms = i64::from(app.config.notify.hold_expiry_minutes) * 60_000;
    app.spawn_consumer(
        CONSUMER,
        ConsumerOptions {
            start: Start::Beginning,
            priority: crate::consumer::Priority::Idle,
            flush: Some(flush),
            linger: CASES_LINGER,
            ack_interval: crate::consumer::ACK_INTERVAL,
            ack_every: CASES_BATCH,
            ..ConsumerOptions::default()
        },
        move |d| {
            let s = a.cases_store();
            let failed = |e: cardguard_store::StoreError| HandlerError::from(e.to_string());
            match d.event {
                Event::Auth(rec) => {
                    let row = tx_row(rec);
                    buffer.with(|(rows, charges, opens)| {
                        if row.billing == "billable" {
                            charges.push(crate::coverage::charge(&row, &rec.tx.amount));
                        }
                        rows.push(row);
                        if rec.outcome.decision == Decision::Hold {
                            let at = rec.tx.now().0;
                            opens.push(cardguard_store::CaseOpening {
                                card_token: rec.tx.card_token.to_string(),
                                authorization_id: Some(rec.authorization_id.clone()),
                                source: "hold".into(),
                                status: CaseStatus::AwaitingCardholder.as_str().into(),
                                due_ms: Some(at + hold_ms),
                                actor: "system".into(),
                                note: "held: waiting for the cardholder's answer".into(),
                                at_ms: at,
                            });
                        }
                    });
                }
                // An analyst's release moves its case itself (with the analyst as the actor).
                Event::Answer(ans) if ans.via != RELEASED_BY_ANALYST => {
                    f2()?;
                    let at = ans.received.0;
                    let actor = format!("cardholder:{}", ans.via);
                    let cases = s
                        .cases_of_authorization(&ans.authorization_id)
                        .map_err(failed)?;
                    let mut moved = false;
                    for c in cases.iter().filter(|c| c.source == "hold") {
                        let (to, note) = if ans.yes {
                            ("resolved_genuine", "the cardholder said it was them")
                        } else {
                            (
                                "investigating",
                                "the cardholder said it was not them: card blocked",
                            )
                        };
                        let t = Transition {
                            from: WAITING,
                            to,
                            actor: &actor,
                            action: if ans.yes { "answer yes" } else { "answer no" },
                            note,
                            due_ms: None,
                            at_ms: at,
                        };
                        moved |= matches!(s.transition(c.id, &t).map_err(failed)?, Some(Ok(_)));
                    }
                    if !ans.yes && !moved {
                        s.open_case(
                            &ans.original.card_token.to_string(),
                            Some(&ans.authorization_id),
                            "not_me",
                            CaseStatus::Investigating.as_str(),
                            None,
                            &actor,
                            "the cardholder said it was not them: card blocked",
                            at,
                        )
                        .map_err(failed)?;
                    }
                }
                Event::Label(l) if l.fraud => {
                    f2()?;
                    let Some(tx) = s.transaction(&l.authorization_id).map_err(failed)? else {
                        return Ok(());
                    };
                    // An approved charge labelled fraud is not billed while it is looked
                    // into (before its case shows).
                    if tx.billing == "billable"
                        && let Some(doc) = tx_doc(&tx)
                    {
                        let m = crate::coverage::withhold(
                            &tx.authorization_id,
                            &tx.card_token,
                            &doc.amount,
                            None,
                            l.ts.0,
                        );
                        // Refused only when the charge moved meanwhile: it stays as it is.
                        let _ = s.post_moves(&[m]).map_err(failed)?;
                    }
                    let source = l.source.as_deref().unwrap_or("label");
                    // A dispute's labels: its case and chargebacks are there already.
                    if source == DISPUTE_LABEL {
                        return Ok(());
                    }
                    let open: Vec<CaseRow> = s
                        .cases_of_authorization(&l.authorization_id)
                        .map_err(failed)?
                        .into_iter()
                        .filter(|c| UNRESOLVED.contains(&c.status.as_str()))
                        .collect();
                    let note = format!("fraud label ({source})");
                    if open.is_empty() {
                        s.open_case(
                            &tx.card_token,
                            Some(&l.authorization_id),
                            "fraud_label",
                            CaseStatus::Investigating.as_str(),
                            None,
                            &format!("label:{source}"),
                            &note,
                            l.ts.0,
                        )
                        .map_err(failed)?;
                    } else {
                        for c in open {
                            s.note_step(c.id, &format!("label:{source}"), "label", &note, l.ts.0)
                                .map_err(failed)?;
                        }
                    }
                }
                Event::Reversal(r) => {
                    f2()?;
                    if let Some(tx) = s.transaction(&r.authorization_id).map_err(failed)?
                        && let Some(doc) = tx_doc(&tx)
                        && let Some(m) = crate::coverage::reversal(&tx, &doc.amount, r.received.0)
                    {
                        let _ = s.post_moves(&[m]).map_err(failed)?;
                    }
                }
                _ => {}
            }
            Ok(())
        },
    )
    .map_err(|e| AppError::Internal(e.to_string()))
}

/// Moves the cases whose timer ran out: no answer in time → investigating; resolved long
/// enough → closed. Returns how many moved.
pub fn run_timers(app: &App) -> Result<usize, AppError> {
    let s = app.cases_store();
    let now = app.now().0;
    let mut moved = 0;
    for c in s.due(now, 1000).map_err(store_err)? {
        let t = if WAITING.contains(&c.status.as_str()) {
            Transition {
                from: WAITING,
                to: "investigating",
                actor: "system",
                action: "timer",
                note: "no answer from the cardholder in time",
                due_ms: None,
                at_ms: now,
            }
        } else if RESOLVED.contains(&c.status.as_str()) {
            Transition {
                from: RESOLVED,
                to: "closed",
                actor: "system",
                action: "timer",
                note: "closed after its resolution period",
                due_ms: None,
                at_ms: now,
            }
        } else {
            continue;
        };
        if let Some(Ok(_)) = s.transition(c.id, &t).map_err(store_err)? {
            moved += 1;
        }
    }
    Ok(moved)
}

/// Runs the timers every second on a thread of its own until the application is dropped.
pub fn spawn_timers(app: &Arc<App>) -> std::io::Result<()> {
    let weak = Arc::downgrade(app);
    std::thread::Builder::new()
        .name("case-timers".into())
        .spawn(move || {
            while let Some(app) = weak.upgrade() {
                if let Err(e) = run_timers(&app) {
                    tracing::warn!(error = %e, "case timers");
                }
                drop(app);
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
        })
        .map(|_| ())
}

impl App {
    /// Opens a case by hand (an analyst's suspicion, a phishing report).
    pub fn open_case(
        &self,
        card: &cardguard_core::CardToken,
        authorization_id: Option<&str>,
        source: &str,
        note: &str,
        actor: &str,
    ) -> Result<(CaseRow, bool), AppError> {
        if !["analyst", "phishing_report"].contains(&source) {
            return Err(AppError::invalid(
                "source",
                "must be analyst or phishing_report",
            ));
        }
        if self.card(card).is_none() {
            return Err(AppError::NotFound(format!("no card {card}")));
        }
        if let Some(a) = authorization_id {
            let tx = self
                .cases_store()
                .transaction(a)
                .map_err(store_err)?
                .ok_or_else(|| AppError::NotFound(format!("no authorization {a} (yet)")))?;
            if tx.card_token != card.to_string() {
                return Err(AppError::invalid("authorization_id", "is another card's"));
            }
        }
        self.cases_store()
            .open_case(
                &card.to_string(),
                authorization_id,
                source,
                CaseStatus::Investigating.as_str(),
                None,
                actor,
                note,
                self.now().0,
            )
            .map_err(store_err)
    }

    /// A case with its steps, and the card's transactions and notifications from 30 days
    /// before it opened: its timeline.
    pub fn case_view(&self, id: i64) -> Result<CaseView, AppError> {
        let s = self.cases_store();
        let case = s
            .case(id)
            .map_err(store_err)?
            .ok_or_else(|| AppError::NotFound(format!("no case {id}")))?;
        let since = case.opened_ms - 30 * 86_400_000;
        Ok(CaseView {
            steps: s.steps(id).map_err(store_err)?,
            transactions: s
                .transactions(&case.card_token, since, 200)
                .map_err(store_err)?,
            notifications: self
                .outbox()
                .for_card(&case.card_token, since, 200)
                .map_err(store_err)?,
            chargebacks: s.chargebacks(id).map_err(store_err)?,
            postings: s.postings_of_case(id).map_err(store_err)?,
            case,
        })
    }

    /// An analyst's action on a case, allowed by its status; the step is recorded.
    pub async fn case_action(
        self: &Arc<Self>,
        id: i64,
        action: CaseAction,
        note: &str,
        actor: &str,
    ) -> Result<ActionDone, AppError> {
        let mut compensation = None;
        let case = self.act(id, action, note, actor, &mut compensation).await?;
        Ok(ActionDone { case, compensation })
    }

    /// [`App::case_action`]: the case after the action (a resolution's compensation
    /// decision in `compensation`).
    async fn act(
        self: &Arc<Self>,
        id: i64,
        action: CaseAction,
        note: &str,
        actor: &str,
        compensation: &mut Option<crate::coverage::Compensation>,
    ) -> Result<CaseRow, AppError> {
        let s = self.cases_store();
        let case = s
            .case(id)
            .map_err(store_err)?
            .ok_or_else(|| AppError::NotFound(format!("no case {id}")))?;
        let now = self.now().0;
        let close_ms = i64::from(self.config.cases.close_after_days) * 86_400_000;
        let move_to =
            |from: &[&str], to: &str, name: &str, due: Option<i64>| -> Result<CaseRow, AppError> {
                match s
                    .transition(
                        id,
                        &Transition {
                            from,
                            to,
                            actor,
                            action: name,
                            note,
                            due_ms: due,
                            at_ms: now,
                        },
                    )
                    .map_err(store_err)?
                {
                    Some(Ok(c)) => Ok(c),
                    Some(Err(status)) => Err(not_allowed(&status, name)),
                    None => Err(AppError::NotFound(format!("no case {id}"))),
                }
            };
        let authorization = || {
            case.authorization_id
                .clone()
                .ok_or_else(|| AppError::Conflict("the case is about no authorization".into()))
        };
        match action {
            CaseAction::Release => {
                if case.source != "hold" || !WAITING.contains(&case.status.as_str()) {
                    return Err(not_allowed(&case.status, "release"));
                }
                self.answer(&authorization()?, true, RELEASED_BY_ANALYST)
                    .await?;
                move_to(WAITING, "resolved_genuine", "release", Some(now + close_ms))
            }
            CaseAction::Block => {
                if !UNRESOLVED.contains(&case.status.as_str()) {
                    return Err(not_allowed(&case.status, "block"));
                }
                let card = cardguard_core::CardToken::parse(&case.card_token)
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                self.block_card(&card, actor).await?;
                if WAITING.contains(&case.status.as_str()) {
                    move_to(WAITING, "investigating", "block", None)
                } else {
                    s.note_step(id, actor, "block", note, now)
                        .map_err(store_err)?;
                    self.case_row(id)
                }
            }
            CaseAction::Label { fraud } => {
                if case.status == "closed" {
                    return Err(not_allowed(&case.status, "label"));
                }
                self.label(&authorization()?, fraud, Some("analyst".into()))
                    .await?;
                let what = if fraud { "fraud" } else { "genuine" };
                s.note_step(id, actor, "label", &format!("{what}: {note}"), now)
                    .map_err(store_err)?;
                self.case_row(id)
            }
            CaseAction::Resolve { fraud, findings } => {
                let (row, c) = self
                    .resolve_case(&case, fraud, &findings, note, actor)
                    .await?;
                *compensation = Some(c);
                Ok(row)
            }
            CaseAction::Close => move_to(RESOLVED, "closed", "close", None),
            CaseAction::Reissue { block } => {
                if case.status == "closed" {
                    return Err(not_allowed(&case.status, "reissue"));
                }
                let card = cardguard_core::CardToken::parse(&case.card_token)
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                let r = self
                    .reissue(
                        &card,
                        &block,
                        self.config.cases.reissue_delivery_days,
                        actor,
                    )
                    .await?;
                let step = format!(
                    "new card ending {} ({} block); {note}",
                    r.row.new_last4, r.row.block
                );
                s.note_step(id, actor, "reissue", &step, now)
                    .map_err(store_err)?;
                self.case_row(id)
            }
        }
    }

    fn case_row(&self, id: i64) -> Result<CaseRow, AppError> {
        self.cases_store()
            .case(id)
            .map_err(store_err)?
            .ok_or_else(|| AppError::NotFound(format!("no case {id}")))
    }

    /// A card's transactions of the last `days` days, newest first.
    pub fn card_transactions(
        &self,
        card: &cardguard_core::CardToken,
        days: u32,
    ) -> Result<Vec<TxRow>, AppError> {
        if self.card(card).is_none() {
            return Err(AppError::NotFound(format!("no card {card}")));
        }
        let since = self.now().0 - i64::from(days) * 86_400_000;
        self.cases_store()
            .transactions(&card.to_string(), since, 10_000)
            .map_err(store_err)
    }
}

/// Reads a stored transaction's document.
pub fn tx_doc(row: &TxRow) -> Option<TxDoc> {
    serde_json::from_str(&row.doc).ok()
}

/// A dispute taken: its case and the chargebacks for the acquirer.
#[derive(Debug, Clone)]
pub struct Disputed {
    pub case: CaseRow,
    pub chargebacks: Vec<cardguard_store::ChargebackRow>,
}

/// A month's statement of a card, in the cardholder's time zone.
#[derive(Debug, Clone)]
pub struct Statement {
    pub month: String,
    pub time_zone: String,
    /// The charges (approved authorizations) of the month, oldest first.
    pub lines: Vec<TxRow>,
    /// Per currency and billing status, the total in minor units.
    pub totals: std::collections::BTreeMap<(String, String), u64>,
    /// The ledger's postings on the cardholder's account in the month (charges, and the
    /// credits and rebillings of disputes, compensation, chargebacks and claims).
    pub postings: Vec<cardguard_store::Posting>,
    /// Per currency, what the month's postings add to what the cardholder owes (minor
    /// units; negative: a credit).
    pub due: std::collections::BTreeMap<String, i64>,
}

impl App {
    /// The cardholder disputes charges of the card ("not me"): each must be this card's,
    /// approved, of the last 60 days, and not disputed before; otherwise nothing changes
    /// and the error says which and why. Taken: the charges are withheld from billing with
    /// a chargeback record each and a case (one transaction), then labelled fraud (feeding
    /// the model and the terminals' risk).
    pub async fn dispute(
        self: &Arc<Self>,
        card: &cardguard_core::CardToken,
        authorization_ids: &[String],
        reason: &str,
        actor: &str,
    ) -> Result<Disputed, AppError> {
        if reason != "not_me" {
            return Err(AppError::invalid("reason", "must be not_me"));
        }
        if authorization_ids.is_empty() || authorization_ids.len() > 50 {
            return Err(AppError::invalid(
                "authorization_ids",
                "must hold 1 to 50 ids",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(d) = authorization_ids.iter().find(|a| !seen.insert(a.as_str())) {
            return Err(AppError::invalid(
                "authorization_ids",
                format!("{d} is named twice"),
            ));
        }
        if self.card(card).is_none() {
            return Err(AppError::NotFound(format!("no card {card}")));
        }
        let now = self.now().0;
        let oldest = now - DISPUTE_WINDOW_DAYS * 86_400_000;
        let s = self.cases_store();
        let mut charges = Vec::with_capacity(authorization_ids.len());
        for id in authorization_ids {
            let field = "authorization_ids";
            let tx = s
                .transaction(id)
                .map_err(store_err)?
                .filter(|t| t.card_token == card.to_string())
                .ok_or_else(|| {
                    AppError::invalid(field, format!("{id} is not a charge of this card"))
                })?;
            let doc = tx_doc(&tx)
                .ok_or_else(|| AppError::Internal(format!("transaction {id} does not read")))?;
            if doc.decision != "approve" || tx.billing == "not_billed" {
                return Err(AppError::invalid(field, format!("{id} was not charged")));
            }
            if tx.at_ms < oldest {
                return Err(AppError::invalid(
                    field,
                    format!("{id} is older than the {DISPUTE_WINDOW_DAYS}-day window"),
                ));
            }
            charges.push(cardguard_store::ChargebackRow {
                authorization_id: id.clone(),
                case_id: 0,
                card_token: card.to_string(),
                reason: if doc.channel == "card_present" || doc.channel == "atm" {
                    "fraud_card_present"
                } else {
                    "fraud_card_absent"
                }
                .into(),
                amount: doc.amount.value as i64,
                currency: doc.amount.currency.code().to_owned(),
                transaction_ms: tx.at_ms,
                disputed_ms: now,
                status: "pending".into(),
            });
        }
        let note = format!("{} charge(s) disputed: {reason}", charges.len());
        let withhold = |c: &cardguard_store::ChargebackRow, case_id: i64| {
            crate::coverage::withhold_chargeback(c, case_id, now)
        };
        let (case, chargebacks) = match s
            .dispute(&card.to_string(), &charges, &withhold, actor, &note, now)
            .map_err(store_err)?
        {
            Ok(x) => x,
            Err(id) => {
                return Err(AppError::Conflict(format!("{id} was disputed before")));
            }
        };
        for id in authorization_ids {
            self.label(id, true, Some(DISPUTE_LABEL.into())).await?;
        }
        Ok(Disputed { case, chargebacks })
    }

    /// A card's statement for `month` (`YYYY-MM`) in the cardholder's time zone: its
    /// charges with their billing status and the totals per status.
    pub fn statement(
        &self,
        card: &cardguard_core::CardToken,
        month: &str,
    ) -> Result<Statement, AppError> {
        let info = self
            .card(card)
            .ok_or_else(|| AppError::NotFound(format!("no card {card}")))?;
        let bad = || AppError::invalid("month", "must be YYYY-MM");
        let (y, m) = month.split_once('-').ok_or_else(bad)?;
        let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if y.to_string().len() != 4 || !(1..=12).contains(&m) {
            return Err(bad());
        }
        let tz = crate::format::zone(
            info.contact.time_zone.as_deref(),
            info.home.as_ref().map(|h| h.country.as_str()),
        );
        let start = jiff::civil::date(y, m, 1);
        let end = start
            .checked_add(jiff::Span::new().months(1))
            .map_err(|_| bad())?;
        let ms = |d: jiff::civil::Date| -> Result<i64, AppError> {
            Ok(d.to_zoned_datetime(tz.clone())
                .map_err(|e| AppError::Internal(e.to_string()))?
                .timestamp()
                .as_millisecond())
        };
        let (from, to) = (ms(start)?, ms(end)?);
        let rows = self
            .cases_store()
            .transactions_between(&card.to_string(), from, to)
            .map_err(store_err)?;
        let postings: Vec<cardguard_store::Posting> = self
            .cases_store()
            .postings_of_card(&card.to_string(), from, to)
            .map_err(store_err)?
            .into_iter()
            .filter(|p| {
                p.debit == cardguard_store::ledger::CARDHOLDER
                    || p.credit == cardguard_store::ledger::CARDHOLDER
            })
            .collect();
        let mut due = std::collections::BTreeMap::new();
        for p in &postings {
            let sign = if p.debit == cardguard_store::ledger::CARDHOLDER {
                1
            } else {
                -1
            };
            *due.entry(p.currency.clone()).or_insert(0i64) += sign * p.amount;
        }
        let lines: Vec<TxRow> = rows
            .into_iter()
            .filter(|t| t.billing != "not_billed")
            .collect();
        let mut totals = std::collections::BTreeMap::new();
        for t in &lines {
            if let Some(d) = tx_doc(t) {
                *totals
                    .entry((d.amount.currency.code().to_owned(), t.billing.clone()))
                    .or_insert(0u64) += d.amount.value;
            }
        }
        Ok(Statement {
            month: format!("{y:04}-{m:02}"),
            time_zone: tz.iana_name().unwrap_or("UTC").to_owned(),
            lines,
            totals,
            postings,
            due,
        })
    }
}

/// A card replaced: the reissue's record and the new card's expiry.
#[derive(Debug, Clone)]
pub struct Reissued {
    pub row: cardguard_store::ReissueRow,
    pub expiry: cardguard_core::Expiry,
}

/// A merchant that charged the card again and again (a subscription, a utility): the
/// cardholder tells it the new card, unless it takes the account updater's feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurring {
    pub merchant_id: String,
    pub merchant: String,
    pub charges: usize,
    pub last_ms: i64,
}

impl App {
    /// The merchants that charged the card at least twice online in the last 180 days.
    pub fn recurring_merchants(
        &self,
        card: &cardguard_core::CardToken,
    ) -> Result<Vec<Recurring>, AppError> {
        if self.card(card).is_none() {
            return Err(AppError::NotFound(format!("no card {card}")));
        }
        let since = self.now().0 - 180 * 86_400_000;
        let rows = self
            .cases_store()
            .transactions(&card.to_string(), since, 10_000)
            .map_err(store_err)?;
        let mut by: std::collections::BTreeMap<String, Recurring> =
            std::collections::BTreeMap::new();
        for t in &rows {
            let Some(d) = tx_doc(t) else { continue };
            if d.decision != "approve" || !(d.channel == "ecommerce" || d.channel == "moto") {
                continue;
            }
            let e = by
                .entry(d.merchant_id.clone())
                .or_insert_with(|| Recurring {
                    merchant_id: d.merchant_id.clone(),
                    merchant: d.merchant.clone(),
                    charges: 0,
                    last_ms: t.at_ms,
                });
            e.charges += 1;
            e.last_ms = e.last_ms.max(t.at_ms);
        }
        let mut out: Vec<Recurring> = by.into_values().filter(|r| r.charges >= 2).collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.last_ms));
        Ok(out)
    }
}
