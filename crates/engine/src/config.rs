//! The engine's settings, as typed values (the binary reads them from the config file).

use cardguard_core::{Currency, Money};
use serde::{Deserialize, Serialize};

/// Reference exchange rates into the base currency, for features only (never for money
/// movements): how many base-currency major units one major unit of the currency buys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FxRates {
    pub base: Currency,
    pub rates: Vec<(Currency, f64)>,
}

impl Default for FxRates {
    fn default() -> Self {
        let c = |s| Currency::parse(s).expect("built-in currency");
        FxRates {
            base: Currency::JPY,
            rates: vec![
                (c("USD"), 150.0),
                (c("EUR"), 160.0),
                (c("GBP"), 190.0),
                (c("AUD"), 100.0),
                (c("CAD"), 110.0),
                (c("CHF"), 170.0),
                (c("CNY"), 21.0),
                (c("HKD"), 19.0),
                (c("KRW"), 0.11),
                (c("SGD"), 112.0),
                (c("TWD"), 4.7),
                (c("THB"), 4.2),
            ],
        }
    }
}

impl FxRates {
    /// The amount in base-currency major units; an unlisted currency counts at rate 1.
    pub fn to_base_major(&self, m: &Money) -> f64 {
        let major = m.major_f64();
        if m.currency == self.base {
            return major;
        }
        let rate = self
            .rates
            .iter()
            .find(|(c, _)| *c == m.currency)
            .map_or(1.0, |r| r.1);
        major * rate
    }

    /// The amount in base-currency minor units, as the features see it: the one conversion
    /// that live decisions and replays both use (exact when the currency is the base).
    pub fn to_base_minor(&self, m: &Money) -> u64 {
        if m.currency == self.base {
            return m.value;
        }
        let minor = self.to_base_major(m) * 10f64.powi(i32::from(self.base.exponent()));
        minor.round().clamp(0.0, 1e18) as u64
    }
}

/// Everything the engine needs to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// The built-in scorecard's notion of impossible travel (the model used when no model
    /// file is loaded): faster than this between two card-present transactions, km/h ...
    pub max_speed_kmh: f64,
    /// ... over more than this distance, km. The rules have their own limits.
    pub travel_allowance_km: f64,
    /// Wrong PINs in a row that lock the PIN (the last one answers 75).
    pub pin_try_limit: u8,
    /// Hours after which a PIN lock from wrong tries lifts by itself.
    pub pin_lock_hours: u32,
    /// The window of the `wrong_csc_10m` feature (wrong security codes on the card) that
    /// the card-testing rule reads, minutes.
    pub card_testing_window_minutes: u32,
    /// Days an authorization stays in memory for idempotent retries and labels (0: forever).
    /// Chargebacks come within 120 days for most networks, up to 540 for some.
    pub auth_retention_days: u32,
    /// Days by which the terminal fraud-rate windows end before today: fraud labels take
    /// about this long to arrive (at most 14).
    pub terminal_risk_delay_days: u32,
    /// Minutes after a cardholder said "it was me" to a held authorization during which the
    /// same purchase again (merchant and amount) is approved.
    pub release_minutes: u32,
    #[serde(skip)]
    pub fx: FxRates,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_speed_kmh: 1000.0,
            travel_allowance_km: 100.0,
            pin_try_limit: 3,
            pin_lock_hours: 24,
            card_testing_window_minutes: 10,
            auth_retention_days: 400,
            terminal_risk_delay_days: 7,
            release_minutes: 30,
            fx: FxRates::default(),
        }
    }
}
