//! Risk scoring: the `Scorer` trait the engine calls, and the built-in scorecard that gives
//! a transparent score until a trained model is loaded.

use crate::features::{Features, TxContext, idx};
use cardguard_core::{Currency, ReasonCode};

/// One contribution to a risk score, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    pub code: ReasonCode,
    pub detail: String,
    pub points: f32,
}

/// A risk score 0-100 and what made it, largest contribution first.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub risk: u8,
    pub contributions: Vec<Contribution>,
}

/// Anything that turns a feature vector into a risk score with reasons.
pub trait Scorer: Send + Sync {
    /// A version string recorded with each decision.
    fn version(&self) -> &str;
    /// The risk, with its contributions when they come with it for free.
    fn score(&self, f: &Features, tx: &TxContext) -> Score;
    /// The contributions behind a score that `score` left out because they cost more than
    /// the risk itself (a model's TreeSHAP values). The engine asks only when the decision
    /// is not an approval: approvals carry no reasons.
    fn explain(&self, _f: &Features, _tx: &TxContext) -> Vec<Contribution> {
        Vec::new()
    }
    /// Whether `explain` can give anything: when not, a decision is final as `score` left
    /// it (no second draft, no hop off the lock for reasons that are always none).
    fn can_explain(&self) -> bool {
        false
    }
}

/// Additive points for well-known fraud signals, capped at 100. Each signal that fires
/// becomes a reason with the numbers behind it.
#[derive(Debug, Clone)]
pub struct Scorecard {
    pub base: Currency,
    pub max_speed_kmh: f64,
    pub travel_allowance_km: f64,
}

fn fmt_amount(x: f64, c: Currency) -> String {
    let e = usize::from(c.exponent());
    let s = format!("{x:.e$}");
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(a, b)| (a, b));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 && ch != '-' {
            out.push(',');
        }
        out.push(ch);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    format!("{out} {c}")
}

impl Scorer for Scorecard {
    fn version(&self) -> &str {
        "scorecard-1"
    }

    fn score(&self, f: &Features, tx: &TxContext) -> Score {
        let v = |i: usize| f64::from(f.get(i));
        let mut c: Vec<Contribution> = Vec::new();
        macro_rules! add {
            ($code:expr, $points:expr, $detail:expr $(,)?) => {
                c.push(Contribution {
                    code: $code,
                    points: $points,
                    detail: $detail,
                })
            };
        }
        let amount = v(idx::AMOUNT);
        let ratio = v(idx::AMOUNT_TO_PROFILE);
        if v(idx::PROFILE_N) >= 5.0 && ratio >= 3.0 && v(idx::AMOUNT_ZSCORE) >= 3.0 {
            let mean = amount / ratio;
            let pts = if ratio >= 10.0 { 35.0 } else { 20.0 };
            add!(
                ReasonCode::AmountAboveProfile,
                pts,
                format!(
                    "{} is {ratio:.1}x the card's mean of {}",
                    fmt_amount(amount, self.base),
                    fmt_amount(mean, self.base)
                ),
            );
        }
        let n5 = v(idx::CARD_COUNT_5M);
        let n1h = v(idx::CARD_COUNT_1H);
        if n5 >= 3.0 {
            add!(
                ReasonCode::HighVelocity,
                10.0 * (n5 as f32 - 1.0).min(4.0),
                format!("{} earlier authorizations in 5 minutes", n5)
            );
        } else if n1h >= 8.0 {
            add!(
                ReasonCode::HighVelocity,
                15.0,
                format!("{} earlier authorizations in 1 hour", n1h)
            );
        }
        let km = v(idx::KM_FROM_LAST);
        let kmh = v(idx::KMH_FROM_LAST);
        if km > self.travel_allowance_km && kmh > self.max_speed_kmh {
            add!(
                ReasonCode::ImpossibleTravel,
                60.0,
                format!("{km:.0} km from the last card-present place at {kmh:.0} km/h"),
            );
        }
        if v(idx::NEW_COUNTRY) > 0.0 && v(idx::FOREIGN) > 0.0 {
            add!(
                ReasonCode::NewCountry,
                15.0,
                "first transaction in this country, away from home".into()
            );
        }
        let countries = v(idx::COUNTRIES_24H);
        if countries >= 3.0 {
            add!(
                ReasonCode::ManyCountries,
                20.0,
                format!("{countries} countries in 24 hours")
            );
        }
        if v(idx::NEW_DEVICE) > 0.0 && v(idx::PROFILE_N) >= 1.0 {
            add!(
                ReasonCode::NewDevice,
                10.0,
                "device not seen with this card".into()
            );
        }
        if v(idx::NEW_MERCHANT) > 0.0 && v(idx::MCC_HIGH_RISK) > 0.0 {
            add!(
                ReasonCode::HighRiskMcc,
                10.0,
                format!("new merchant in high-risk category {}", tx.mcc)
            );
        }
        let rate = v(idx::TERM_RATE_7D);
        if f.terminal.frauds[1] >= 2 && rate >= 0.1 {
            add!(
                ReasonCode::RiskyTerminal,
                (rate * 100.0).clamp(20.0, 50.0) as f32,
                format!(
                    "terminal fraud rate {:.0}% over 7 days ({} labelled frauds in {})",
                    rate * 100.0,
                    f.terminal.frauds[1],
                    f.terminal.count[1]
                ),
            );
        }
        let cards = v(idx::DEVICE_CARDS);
        if cards >= 4.0 {
            add!(
                ReasonCode::DeviceManyCards,
                25.0,
                format!("device used with {cards} cards")
            );
        }
        let since_label = v(idx::DAYS_SINCE_FRAUD_LABEL);
        if (0.0..30.0).contains(&since_label) {
            add!(
                ReasonCode::CardCompromised,
                50.0,
                format!("fraud reported on this card {since_label:.0} days ago")
            );
        }
        let wrong_csc = v(idx::WRONG_CSC_10M);
        if wrong_csc >= 1.0 {
            add!(
                ReasonCode::CardTesting,
                20.0 * wrong_csc.min(3.0) as f32,
                format!(
                    "{wrong_csc} earlier wrong security code{} in the last 10 minutes",
                    if wrong_csc == 1.0 { "" } else { "s" }
                )
            );
        }
        if v(idx::CASH_ADVANCE) > 0.0 && v(idx::FOREIGN) > 0.0 {
            add!(ReasonCode::CashAdvance, 10.0, "cash advance abroad".into());
        }
        if v(idx::IS_NIGHT) > 0.0 && c.iter().any(|x| x.points >= 10.0) {
            add!(
                ReasonCode::NightTime,
                5.0,
                format!("at night ({:02}h local time)", tx.local_hour)
            );
        }
        c.sort_by(|a, b| b.points.total_cmp(&a.points));
        let total: f32 = c.iter().map(|x| x.points).sum();
        Score {
            risk: total.round().clamp(0.0, 100.0) as u8,
            contributions: c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_grouped() {
        assert_eq!(fmt_amount(1234567.0, Currency::JPY), "1,234,567 JPY");
        assert_eq!(fmt_amount(1234.5, Currency::USD), "1,234.50 USD");
        assert_eq!(fmt_amount(12.0, Currency::JPY), "12 JPY");
    }
}
