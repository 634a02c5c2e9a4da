//! Card-check results, the outcome type and the decision logic in priority order: card
//! status and data, PIN tries and the security code are checks that nothing overrides; the
//! risk decision (impossible travel, card testing, velocity, the score) is the active
//! ruleset's, with its lists.

use crate::card::CardState;
use crate::config::EngineConfig;
use crate::features::{Features, TxContext};
use crate::lists::ListSet;
use crate::policy::{Inputs, ListHit, Policy};
use crate::record::TxFacts;
use crate::score::Score;
use cardguard_core::{Channel, Decision, Reason, ReasonCode, ResponseCode};
use cardguard_rules::Action;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    /// No such card is enrolled.
    Unknown,
    Active,
    Inactive,
    Blocked,
    Lost,
    Stolen,
    Closed,
    /// Blocked for card-not-present use (its number leaked online) while its replacement is
    /// on the way: card-present use (the chip) still goes through.
    CnpBlocked,
}

impl CardStatus {
    pub fn parse(s: &str) -> Option<CardStatus> {
        Some(match s {
            "active" => CardStatus::Active,
            "inactive" => CardStatus::Inactive,
            "blocked" => CardStatus::Blocked,
            "lost" => CardStatus::Lost,
            "stolen" => CardStatus::Stolen,
            "closed" => CardStatus::Closed,
            "cnp_blocked" => CardStatus::CnpBlocked,
            _ => return None,
        })
    }
    pub fn as_str(&self) -> &'static str {
        match self {
            CardStatus::Unknown => "unknown",
            CardStatus::Active => "active",
            CardStatus::Inactive => "inactive",
            CardStatus::Blocked => "blocked",
            CardStatus::Lost => "lost",
            CardStatus::Stolen => "stolen",
            CardStatus::Closed => "closed",
            CardStatus::CnpBlocked => "cnp_blocked",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CscCheck {
    NotPresented,
    Match,
    Mismatch,
    /// Presented, but the card has no method or key to check it with.
    Unverifiable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PinCheck {
    NotPresented,
    Correct,
    Wrong,
    Unverifiable,
}

/// What the transport found when it checked the card data with the keys (the engine holds
/// no keys and never sees the PAN, CSC or PIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardChecks {
    /// Luhn and brand length passed.
    pub pan_valid: bool,
    pub status: CardStatus,
    /// The card is past its expiry month at the transaction time.
    pub expired: bool,
    /// The presented expiry is the enrolled one.
    pub expiry_matches: bool,
    pub csc: CscCheck,
    pub pin: PinCheck,
}

impl CardChecks {
    /// Whether the card exists and the number is sound: only then does it have state.
    pub fn card_known(&self) -> bool {
        self.pan_valid && self.status != CardStatus::Unknown
    }
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub decision: Decision,
    pub response_code: cardguard_core::ResponseCode,
    pub risk_score: u8,
    pub reasons: Vec<Reason>,
    /// The scorer that gave the risk score.
    pub model: String,
    /// The ruleset version that decided (0: no rule was consulted, as for a card-data
    /// failure).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ruleset_version: u64,
    /// The ids of every rule that matched, whichever action won.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matched_rules: Vec<String>,
    /// The lists that held a value the rules looked up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list_hits: Vec<ListHit>,
    /// The feature values the decision saw (in the order of `FEATURE_NAMES`), so that the
    /// record replays to the same verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<f32>,
    /// What the candidate ruleset (and model) running in shadow mode would have decided;
    /// it did not act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Box<ShadowOutcome>>,
}

/// A shadow decision: what a candidate would have done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowOutcome {
    pub decision: Decision,
    pub response_code: ResponseCode,
    pub risk_score: u8,
    pub ruleset_version: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matched_rules: Vec<String>,
    pub model: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl Outcome {
    /// An approval no scorer looked at: for records built outside `decide`, such as a
    /// labelled dataset replayed for training or a benchmark's history.
    pub fn unscored_approval() -> Outcome {
        Outcome {
            decision: Decision::Approve,
            response_code: ResponseCode::Approved,
            risk_score: 0,
            reasons: Vec::new(),
            model: String::new(),
            ruleset_version: 0,
            matched_rules: Vec::new(),
            list_hits: Vec::new(),
            features: Vec::new(),
            shadow: None,
        }
    }

    /// An approval at `score` by `model`, with no reasons.
    fn approval(score: &Score, model: &str) -> Outcome {
        Outcome {
            risk_score: score.risk,
            model: model.to_owned(),
            ..Outcome::unscored_approval()
        }
    }
}

fn outcome(
    decision: Decision,
    code: ResponseCode,
    reason: Reason,
    score: &Score,
    model: &str,
) -> Outcome {
    outcome_with(decision, code, vec![reason], score, model)
}

/// An outcome with `reasons` first, then the score's own contributions up to four reasons.
fn outcome_with(
    decision: Decision,
    code: ResponseCode,
    mut reasons: Vec<Reason>,
    score: &Score,
    model: &str,
) -> Outcome {
    for c in &score.contributions {
        if reasons.len() >= 4 {
            break;
        }
        if !reasons.iter().any(|r| r.code == c.code) {
            reasons.push(Reason::new(c.code, c.detail.clone()));
        }
    }
    Outcome {
        decision,
        response_code: code,
        reasons,
        ..Outcome::approval(score, model)
    }
}

/// Whether the card's PIN is locked at `now_ms`.
pub(crate) fn pin_locked(card: &CardState, now_ms: i64, cfg: &EngineConfig) -> bool {
    card.pin_locked_ms != 0
        && now_ms - card.pin_locked_ms < i64::from(cfg.pin_lock_hours) * 3_600_000
}

/// What a decision consults beyond the card and the transaction: the active ruleset and
/// the lists.
pub(crate) struct Rules<'a> {
    pub policy: &'a Policy,
    pub lists: &'a ListSet,
}

/// The decision, given the checks, the card's state (if any), the features and the score.
#[allow(clippy::too_many_arguments)]
pub(crate) fn decide(
    cfg: &EngineConfig,
    checks: &CardChecks,
    card: Option<&CardState>,
    tx: &TxContext,
    facts: &TxFacts,
    f: &Features,
    score: &Score,
    model: &str,
    rules: &Rules<'_>,
) -> Outcome {
    use Decision::*;
    use ResponseCode as R;
    let out = |d, c, code, detail: String| outcome(d, c, Reason::new(code, detail), score, model);
    if !checks.pan_valid {
        return out(
            Decline,
            R::InvalidCardNumber,
            ReasonCode::InvalidCardNumber,
            "card number fails the Luhn or length check".into(),
        );
    }
    let status_code = match checks.status {
        CardStatus::Active => None,
        CardStatus::Unknown => {
            return out(
                Decline,
                R::InvalidCardNumber,
                ReasonCode::CardNotFound,
                "no card with this number is enrolled".into(),
            );
        }
        CardStatus::Lost => Some(R::LostCard),
        CardStatus::Stolen => Some(R::StolenCard),
        CardStatus::Blocked => Some(R::RestrictedCard),
        CardStatus::Inactive | CardStatus::Closed => Some(R::DoNotHonour),
        CardStatus::CnpBlocked if facts.channel.is_physical() => None,
        CardStatus::CnpBlocked => Some(R::RestrictedCard),
    };
    if let Some(code) = status_code {
        return out(
            Decline,
            code,
            ReasonCode::CardStatus,
            format!("card is {}", checks.status.as_str()),
        );
    }
    if checks.expired {
        return out(
            Decline,
            R::ExpiredCard,
            ReasonCode::CardExpired,
            "card is past its expiry month".into(),
        );
    }
    if !checks.expiry_matches {
        return out(
            Decline,
            R::ExpiredCard,
            ReasonCode::ExpiryMismatch,
            "expiry date does not match the card".into(),
        );
    }
    let empty = CardState::default();
    let state = card.unwrap_or(&empty);
    if state.blocked_ms != 0 {
        return out(
            Decline,
            R::RestrictedCard,
            ReasonCode::CardStatus,
            "card blocked: its cardholder reported a purchase as not theirs".into(),
        );
    }
    let limit = cfg.pin_try_limit.max(1);
    match checks.pin {
        PinCheck::Correct | PinCheck::Wrong if pin_locked(state, tx.now_ms, cfg) => {
            return out(
                Decline,
                R::PinTriesExceeded,
                ReasonCode::PinTriesExceeded,
                format!("PIN locked after {limit} wrong tries"),
            );
        }
        PinCheck::Wrong => {
            let n = state.wrong_pin_streak.saturating_add(1);
            return if n >= limit {
                out(
                    Decline,
                    R::PinTriesExceeded,
                    ReasonCode::PinTriesExceeded,
                    format!("wrong PIN, try {n} of {limit}: PIN locked"),
                )
            } else {
                out(
                    Decline,
                    R::IncorrectPin,
                    ReasonCode::PinIncorrect,
                    format!("wrong PIN, try {n} of {limit}"),
                )
            };
        }
        PinCheck::Unverifiable => {
            return out(
                Decline,
                R::DoNotHonour,
                ReasonCode::PinUnverifiable,
                "a PIN was sent but the card has no PIN method or key".into(),
            );
        }
        PinCheck::Correct | PinCheck::NotPresented => {}
    }
    let inputs = Inputs::new(facts, tx, checks, &f.values, score.risk);
    let judge = || rules.policy.judge(&inputs, rules.lists, tx.now_ms);
    let ruled = |mut o: Outcome, j: &crate::policy::Judgement| {
        o.ruleset_version = rules.policy.version();
        o.matched_rules = rules.policy.ids(&j.matched);
        o.list_hits = j.hits.clone();
        o
    };
    match checks.csc {
        CscCheck::Mismatch => {
            // A wrong code declines whatever the rules say; a rule that declines it too
            // (card testing) makes it a suspected fraud.
            let j = judge();
            if rules.policy.declines(&j) {
                let only = crate::policy::Judgement {
                    action: Some(Action::Decline),
                    ..j.clone()
                };
                let reasons = rules
                    .policy
                    .reasons(&only, &inputs, cfg.card_testing_window_minutes);
                return ruled(
                    outcome_with(Decline, R::SuspectedFraud, reasons, score, model),
                    &j,
                );
            }
            return ruled(
                out(
                    Decline,
                    R::CscMismatch,
                    ReasonCode::CscMismatch,
                    "security code does not match".into(),
                ),
                &j,
            );
        }
        CscCheck::Unverifiable => {
            return out(
                Decline,
                R::DoNotHonour,
                ReasonCode::CscMismatch,
                "the card has no method or key to check a security code".into(),
            );
        }
        CscCheck::NotPresented if tx.channel == Channel::Ecommerce => {
            // Card-not-present without a code is allowed, but it is a signal for the score
            // and for step-up below.
        }
        _ => {}
    }
    // The cardholder confirmed this very purchase after a hold: the risk does not hold it
    // again (the card-data checks above still apply).
    let amount = tx.amount_base.min(u64::from(u32::MAX)) as u32;
    if state.released_for(tx.merchant, amount, tx.now_ms).is_some() {
        return Outcome::approval(score, model);
    }
    // The risk decision is the ruleset's. Above approval the deciding rules are the first
    // reasons, then the score's own contributions.
    let j = judge();
    let (d, code) = match j.action {
        None | Some(Action::Approve) => return ruled(Outcome::approval(score, model), &j),
        Some(Action::Decline) => (Decline, R::SuspectedFraud),
        Some(Action::Hold) => (Hold, R::ReferToIssuer),
        // Step-up needs a cardholder at a browser or an app; elsewhere the purchase waits
        // for the cardholder's answer instead.
        Some(Action::Challenge) if tx.channel == Channel::Ecommerce => {
            (Challenge, R::AdditionalAuthRequired)
        }
        Some(Action::Challenge) => (Hold, R::ReferToIssuer),
    };
    let reasons = rules
        .policy
        .reasons(&j, &inputs, cfg.card_testing_window_minutes);
    ruled(outcome_with(d, code, reasons, score, model), &j)
}
