//! Card-check results, the outcome type and the decision logic in priority order: card
//! status and data, PIN tries, card testing, security code, impossible travel, risk score.

use crate::card::CardState;
use crate::config::EngineConfig;
use crate::features::{Features, TxContext, idx};
use crate::score::Score;
use cardguard_core::{Channel, Decision, Reason, ReasonCode, ResponseCode, TxType};
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
    let mut reasons = vec![reason];
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
        risk_score: score.risk,
        reasons,
        model: model.to_owned(),
    }
}

/// Whether the card's PIN is locked at `now_ms`.
pub(crate) fn pin_locked(card: &CardState, now_ms: i64, cfg: &EngineConfig) -> bool {
    card.pin_locked_ms != 0
        && now_ms - card.pin_locked_ms < i64::from(cfg.pin_lock_hours) * 3_600_000
}

/// The decision, given the checks, the card's state (if any), the features and the score.
pub(crate) fn decide(
    cfg: &EngineConfig,
    checks: &CardChecks,
    card: Option<&CardState>,
    tx: &TxContext,
    f: &Features,
    score: &Score,
    model: &str,
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
    let window = i64::from(cfg.card_testing_window_minutes) * 60_000;
    let wrong_csc =
        state.wrong_csc_since(tx.now_ms, window) + usize::from(checks.csc == CscCheck::Mismatch);
    if wrong_csc >= usize::from(cfg.card_testing_wrong_csc.max(1)) {
        return out(
            Decline,
            R::SuspectedFraud,
            ReasonCode::CardTesting,
            format!(
                "{wrong_csc} wrong security codes in the last {} minutes{}",
                cfg.card_testing_window_minutes,
                if checks.csc == CscCheck::Mismatch {
                    ", this one included"
                } else {
                    ""
                }
            ),
        );
    }
    match checks.csc {
        CscCheck::Mismatch => {
            return out(
                Decline,
                R::CscMismatch,
                ReasonCode::CscMismatch,
                "security code does not match".into(),
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
        return approve(score, model);
    }
    let km = f64::from(f.get(idx::KM_FROM_LAST));
    let kmh = f64::from(f.get(idx::KMH_FROM_LAST));
    if tx.channel.is_physical() && km > cfg.travel_allowance_km && kmh > cfg.max_speed_kmh {
        let fix = state.last_fix.map_or(0, |x| x.at_ms);
        let minutes = (tx.ts_ms - fix).abs() / 60_000;
        return out(
            Hold,
            R::ReferToIssuer,
            ReasonCode::ImpossibleTravel,
            format!(
                "{km:.0} km from the previous card-present transaction {minutes} minutes earlier ({kmh:.0} km/h)"
            ),
        );
    }
    if tx.tx_type == TxType::Refund {
        return approve(score, model);
    }
    let t = cfg.thresholds;
    // Above a threshold the score's own contributions are the reasons.
    let with_top = |d, c| {
        let mut o = approve(score, model);
        o.decision = d;
        o.response_code = c;
        o.reasons = score
            .contributions
            .iter()
            .take(4)
            .map(|c| Reason::new(c.code, c.detail.clone()))
            .collect();
        o
    };
    if score.risk >= t.decline {
        with_top(Decline, R::SuspectedFraud)
    } else if score.risk >= t.hold {
        with_top(Hold, R::ReferToIssuer)
    } else if score.risk >= t.challenge {
        if tx.channel == Channel::Ecommerce {
            with_top(Challenge, R::AdditionalAuthRequired)
        } else {
            with_top(Hold, R::ReferToIssuer)
        }
    } else {
        approve(score, model)
    }
}

fn approve(score: &Score, model: &str) -> Outcome {
    Outcome {
        decision: Decision::Approve,
        response_code: ResponseCode::Approved,
        risk_score: score.risk,
        reasons: Vec::new(),
        model: model.to_owned(),
    }
}
