//! The one feature function. Live decisions, replays, training and backtests all compute
//! features here, from the same state and the same event order.

use crate::card::{CardState, WindowStats, flags};
use crate::device::DeviceState;
use crate::hash::{stable_hash, stable_hash32};
use crate::record::TxFacts;
use crate::terminal::{TerminalState, TerminalStats};
use cardguard_core::{Channel, Location, Mcc, TxType};

macro_rules! features {
    ($($idx:literal $name:ident $label:literal,)*) => {
        /// Feature indices into [`Features::values`].
        #[allow(missing_docs)]
        pub mod idx { $(pub const $name: usize = $idx;)* }
        /// Feature names in index order: the model's input schema.
        pub const FEATURE_NAMES: &[&str] = &[$($label,)*];
    };
}

features! {
    0 AMOUNT "amount",
    1 LOG_AMOUNT "log_amount",
    2 IS_WEEKEND "is_weekend",
    3 IS_NIGHT "is_night",
    4 CARD_COUNT_5M "card_count_5m",
    5 CARD_COUNT_1H "card_count_1h",
    6 CARD_COUNT_24H "card_count_24h",
    7 CARD_COUNT_7D "card_count_7d",
    8 CARD_COUNT_30D "card_count_30d",
    9 CARD_SUM_5M "card_sum_5m",
    10 CARD_SUM_1H "card_sum_1h",
    11 CARD_SUM_24H "card_sum_24h",
    12 CARD_SUM_7D "card_sum_7d",
    13 CARD_SUM_30D "card_sum_30d",
    14 CARD_MEAN_24H "card_mean_amount_24h",
    15 CARD_MEAN_7D "card_mean_amount_7d",
    16 CARD_MEAN_30D "card_mean_amount_30d",
    17 AMOUNT_TO_PROFILE "amount_to_profile_mean",
    18 AMOUNT_ZSCORE "amount_zscore",
    19 PROFILE_N "profile_n",
    20 DECLINED_24H "declined_24h",
    21 MERCHANTS_24H "distinct_merchants_24h",
    22 MERCHANTS_30D "distinct_merchants_30d",
    23 COUNTRIES_24H "distinct_countries_24h",
    24 COUNTRIES_30D "distinct_countries_30d",
    25 NEW_MERCHANT "new_merchant",
    26 NEW_COUNTRY "new_country",
    27 NEW_DEVICE "new_device",
    28 FOREIGN "foreign",
    29 SECS_SINCE_PREV "secs_since_prev",
    30 KM_FROM_LAST "km_from_last_fix",
    31 KMH_FROM_LAST "kmh_from_last_fix",
    32 KM_FROM_HOME "km_from_home",
    33 TERM_COUNT_1D "terminal_count_1d",
    34 TERM_COUNT_7D "terminal_count_7d",
    35 TERM_COUNT_30D "terminal_count_30d",
    36 TERM_RATE_1D "terminal_fraud_rate_1d",
    37 TERM_RATE_7D "terminal_fraud_rate_7d",
    38 TERM_RATE_30D "terminal_fraud_rate_30d",
    39 DEVICE_CARDS "device_cards",
    40 CH_CARD_PRESENT "channel_card_present",
    41 CH_ECOMMERCE "channel_ecommerce",
    42 CH_MOTO "channel_moto",
    43 CH_ATM "channel_atm",
    44 CASH_ADVANCE "cash_advance",
    45 REFUND "refund",
    46 MCC_HIGH_RISK "mcc_high_risk",
    47 WRONG_CSC_10M "wrong_csc_10m",
    48 WRONG_PIN_STREAK "wrong_pin_streak",
    49 DAYS_SINCE_FRAUD_LABEL "days_since_fraud_label",
    50 MAX_7D_TO_PROFILE "card_max_amount_7d_to_profile_mean",
    51 MEAN_7D_TO_30D "card_mean_amount_7d_to_30d",
    52 AMOUNT_TO_MAX_30D "amount_to_card_max_30d",
    53 TERM_FIRST_FRAUD_AGE "terminal_days_since_first_fraud",
    54 TERM_LAST_FRAUD_AGE "terminal_days_since_last_fraud",
    55 TERM_RATE_SINCE_FIRST "terminal_fraud_rate_since_first_fraud",
}

/// The settings the feature function reads, taken from the engine's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureParams {
    /// The window of `wrong_csc_10m`, ms.
    pub card_testing_window_ms: i64,
    /// How far back the terminal fraud-rate windows end, days.
    pub terminal_risk_delay_days: u32,
}

impl From<&crate::config::EngineConfig> for FeatureParams {
    fn from(c: &crate::config::EngineConfig) -> Self {
        FeatureParams {
            card_testing_window_ms: i64::from(c.card_testing_window_minutes) * 60_000,
            terminal_risk_delay_days: c.terminal_risk_delay_days,
        }
    }
}

pub const N_FEATURES: usize = 56;
const _: () = assert!(FEATURE_NAMES.len() == N_FEATURES);

/// A feature vector. Missing values (no previous transaction, no location) are -1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Features {
    pub values: [f32; N_FEATURES],
    /// The window statistics the vector was built from, for reason details.
    pub windows: WindowStats,
    pub terminal: TerminalStats,
}

impl Features {
    pub fn get(&self, i: usize) -> f32 {
        self.values[i]
    }
}

/// What the feature function needs of a transaction, hashed and compacted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TxContext {
    /// The transaction's time, as the request gives it.
    pub ts_ms: i64,
    /// The server's time when the request arrived (see [`TxFacts::now`]): what the PIN and
    /// security-code counters go by.
    pub now_ms: i64,
    pub local_hour: u8,
    pub local_weekday: u8,
    /// Base-currency minor units, and the base currency's exponent.
    pub amount_base: u64,
    pub base_exponent: u8,
    pub merchant: u32,
    pub terminal: u64,
    pub country: u16,
    pub home_country: Option<u16>,
    pub location: Option<Location>,
    pub home: Option<Location>,
    pub channel: Channel,
    pub tx_type: TxType,
    pub mcc: Mcc,
    pub device: Option<u32>,
    pub device_key: Option<u64>,
    pub card_hash: u32,
}

/// The terminal key: merchant id and terminal id.
pub fn terminal_key(merchant_id: &str, terminal_id: &str) -> u64 {
    let mut b = Vec::with_capacity(merchant_id.len() + terminal_id.len() + 1);
    b.extend_from_slice(merchant_id.as_bytes());
    b.push(0);
    b.extend_from_slice(terminal_id.as_bytes());
    stable_hash(&b)
}

impl TxContext {
    pub fn from_facts(tx: &TxFacts, base_exponent: u8) -> TxContext {
        let local = tx.ts.plus_ms(i64::from(tx.utc_offset_min) * 60_000);
        TxContext {
            ts_ms: tx.ts.0,
            now_ms: tx.now().0,
            local_hour: local.hour(),
            local_weekday: local.weekday(),
            amount_base: tx.amount_base,
            base_exponent,
            merchant: stable_hash32(tx.merchant.id.as_bytes()),
            terminal: terminal_key(&tx.merchant.id, &tx.merchant.terminal_id),
            country: tx.merchant.country.as_u16(),
            home_country: tx.home_country.map(|c| c.as_u16()),
            location: tx.merchant.location,
            home: tx.home,
            channel: tx.channel,
            tx_type: tx.tx_type,
            mcc: tx.merchant.mcc,
            device: tx.device_id.as_deref().map(|d| stable_hash32(d.as_bytes())),
            device_key: tx.device_id.as_deref().map(|d| stable_hash(d.as_bytes())),
            card_hash: stable_hash32(&tx.card_token.0),
        }
    }

    pub fn amount_major(&self) -> f64 {
        self.amount_base as f64 / 10f64.powi(i32::from(self.base_exponent))
    }

    pub(crate) fn record_flags(&self, approved: bool) -> u8 {
        let mut f = 0;
        if self.channel.is_physical() {
            f |= flags::PHYSICAL;
        }
        if self.channel == Channel::Ecommerce {
            f |= flags::ECOMMERCE;
        }
        if approved {
            f |= flags::APPROVED;
        }
        match self.tx_type {
            TxType::CashAdvance => f |= flags::CASH,
            TxType::Refund => f |= flags::REFUND,
            TxType::Purchase => {}
        }
        f
    }
}

fn b(x: bool) -> f32 {
    if x { 1.0 } else { 0.0 }
}

/// Computes the features of `tx` from the state before it. `card` is `None` for a card with
/// no history yet, `terminal` and `device` likewise.
pub fn compute(
    tx: &TxContext,
    card: Option<&CardState>,
    terminal: Option<&TerminalState>,
    device: Option<&DeviceState>,
    params: &FeatureParams,
) -> Features {
    let card_testing_window_ms = params.card_testing_window_ms;
    let empty = CardState::default();
    let card = card.unwrap_or(&empty);
    let w = card.windows(tx.ts_ms);
    let ts = terminal
        .map(|t| {
            t.stats(
                tx.ts_ms.div_euclid(86_400_000),
                params.terminal_risk_delay_days,
            )
        })
        .unwrap_or_default();
    let scale = 10f64.powi(i32::from(tx.base_exponent));
    let amount = tx.amount_major();
    let mut v = [0f32; N_FEATURES];
    use idx::*;
    v[AMOUNT] = amount as f32;
    v[LOG_AMOUNT] = (1.0 + amount).ln() as f32;
    v[IS_WEEKEND] = b(tx.local_weekday >= 5);
    v[IS_NIGHT] = b(tx.local_hour <= 6);
    for i in 0..5 {
        v[CARD_COUNT_5M + i] = w.count[i] as f32;
        v[CARD_SUM_5M + i] = (w.sum[i] as f64 / scale) as f32;
    }
    let mean = |i: usize| {
        if w.count[i] == 0 {
            0.0
        } else {
            w.sum[i] as f64 / scale / f64::from(w.count[i])
        }
    };
    v[CARD_MEAN_24H] = mean(2) as f32;
    v[CARD_MEAN_7D] = mean(3) as f32;
    v[CARD_MEAN_30D] = mean(4) as f32;
    // Ratios a tree cannot form itself: a card whose recent purchases run far above its
    // habit (a compromised card whose first frauds are not labelled yet).
    let ratio = |a: f64, b: f64| if b > 0.0 { (a / b) as f32 } else { -1.0 };
    let max_major = |i: usize| f64::from(w.max[i]) / scale;
    v[MEAN_7D_TO_30D] = ratio(mean(3), mean(4));
    v[AMOUNT_TO_MAX_30D] = ratio(amount, max_major(4));
    v[MAX_7D_TO_PROFILE] = match card.amount_profile() {
        Some((m, _)) if w.count[3] > 0 => ratio(max_major(3), m / scale),
        _ => -1.0,
    };
    match card.amount_profile() {
        Some((m, sd)) => {
            let m_major = m / scale;
            let sd_major = sd / scale;
            v[AMOUNT_TO_PROFILE] = if m_major > 0.0 {
                (amount / m_major) as f32
            } else {
                -1.0
            };
            v[AMOUNT_ZSCORE] =
                ((amount - m_major) / sd_major.max(m_major * 0.1).max(1.0 / scale)) as f32;
        }
        None => {
            v[AMOUNT_TO_PROFILE] = -1.0;
            v[AMOUNT_ZSCORE] = 0.0;
        }
    }
    v[PROFILE_N] = card.amount_n as f32;
    v[DECLINED_24H] = w.declined_24h as f32;
    v[MERCHANTS_24H] = w.distinct_merchants_24h as f32;
    v[MERCHANTS_30D] = w.distinct_merchants_30d as f32;
    v[COUNTRIES_24H] = w.distinct_countries_24h as f32;
    v[COUNTRIES_30D] = w.distinct_countries_30d as f32;
    let has_history = card.last_ms != 0;
    v[NEW_MERCHANT] = b(has_history && !card.knows_merchant(tx.merchant));
    v[NEW_COUNTRY] = b(has_history && !card.knows_country(tx.country));
    v[NEW_DEVICE] = match tx.device {
        Some(d) => b(!card.knows_device(d)),
        None => 0.0,
    };
    v[FOREIGN] = match tx.home_country {
        Some(h) => b(h != tx.country),
        None => 0.0,
    };
    v[SECS_SINCE_PREV] = if has_history {
        ((tx.ts_ms - card.last_ms).max(0) as f64 / 1000.0) as f32
    } else {
        -1.0
    };
    let (km, kmh) = match (tx.channel.is_physical(), tx.location, card.last_fix) {
        (true, Some(here), Some(fix)) => {
            let there = Location {
                lat: f64::from(fix.lat),
                lon: f64::from(fix.lon),
            };
            let km = here.distance_km(&there);
            let hours = ((tx.ts_ms - fix.at_ms).abs() as f64 / 3_600_000.0).max(1.0 / 60.0);
            (km as f32, (km / hours) as f32)
        }
        _ => (-1.0, -1.0),
    };
    v[KM_FROM_LAST] = km;
    v[KMH_FROM_LAST] = kmh;
    v[KM_FROM_HOME] = match (tx.location, tx.home) {
        (Some(a), Some(h)) => a.distance_km(&h) as f32,
        _ => -1.0,
    };
    for i in 0..3 {
        v[TERM_COUNT_1D + i] = ts.count[i] as f32;
        v[TERM_RATE_1D + i] = ts.fraud_rate(i) as f32;
    }
    let age = |a: Option<u16>| a.map_or(-1.0, f32::from);
    v[TERM_FIRST_FRAUD_AGE] = age(ts.first_fraud_age);
    v[TERM_LAST_FRAUD_AGE] = age(ts.last_fraud_age);
    v[TERM_RATE_SINCE_FIRST] = ts.fraud_rate_since_first_fraud() as f32;
    v[DEVICE_CARDS] = match device {
        Some(d) => d.cards_with(tx.card_hash) as f32,
        None => b(tx.device.is_some()),
    };
    v[CH_CARD_PRESENT] = b(tx.channel == Channel::CardPresent);
    v[CH_ECOMMERCE] = b(tx.channel == Channel::Ecommerce);
    v[CH_MOTO] = b(tx.channel == Channel::Moto);
    v[CH_ATM] = b(tx.channel == Channel::Atm);
    v[CASH_ADVANCE] = b(tx.tx_type == TxType::CashAdvance);
    v[REFUND] = b(tx.tx_type == TxType::Refund);
    v[MCC_HIGH_RISK] = b(tx.mcc.is_high_risk());
    v[WRONG_CSC_10M] = card.wrong_csc_since(tx.now_ms, card_testing_window_ms) as f32;
    v[WRONG_PIN_STREAK] = f32::from(card.wrong_pin_streak);
    v[DAYS_SINCE_FRAUD_LABEL] = if card.fraud_label_ms != 0 {
        ((tx.ts_ms - card.fraud_label_ms).max(0) as f64 / 86_400_000.0) as f32
    } else {
        -1.0
    };
    Features {
        values: v,
        windows: w,
        terminal: ts,
    }
}
