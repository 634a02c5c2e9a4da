//! Features by replay: the transactions go through the engine in time order, each one's
//! features computed from the state just before it (exactly what the live engine computes),
//! and each fraud label applied once it would have arrived, a fixed delay after its
//! transaction. Offline features therefore equal online ones.

use crate::MlError;
use crate::dataset::{Dataset, Transaction};
use cardguard_core::{Last4, Location, Merchant, Money, Timestamp};
use cardguard_engine::{
    AuthRecord, CardChecks, Engine, EngineConfig, Event, FEATURE_NAMES, FxRates, LabelRecord,
    N_FEATURES, Outcome, TxFacts, synth,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// How to replay.
#[derive(Debug, Clone)]
pub struct ReplayConfig {
    /// Days after a transaction its fraud label becomes known.
    pub label_delay_days: u32,
    /// The engine's settings (the base currency is set to the dataset's).
    pub engine: EngineConfig,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            label_delay_days: 7,
            engine: EngineConfig::default(),
        }
    }
}

/// The features of every transaction, row-major, with what the evaluation needs beside.
#[derive(Debug, Clone, Default)]
pub struct FeatureTable {
    pub names: Vec<String>,
    /// `rows × names.len()` values, row after row.
    pub x: Vec<f32>,
    pub y: Vec<bool>,
    pub ts_ms: Vec<i64>,
    pub card: Vec<u64>,
    pub id: Vec<u64>,
}

impl FeatureTable {
    pub fn rows(&self) -> usize {
        self.y.len()
    }

    pub fn width(&self) -> usize {
        self.names.len()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        let w = self.width();
        &self.x[i * w..(i + 1) * w]
    }

    /// The day (since the epoch, UTC) of row `i`.
    pub fn day(&self, i: usize) -> i64 {
        self.ts_ms[i].div_euclid(86_400_000)
    }

    /// The same rows with only the features `names`, in that order.
    pub fn select(&self, names: &[&str]) -> Result<FeatureTable, MlError> {
        let cols = names
            .iter()
            .map(|n| {
                self.names
                    .iter()
                    .position(|m| m == n)
                    .ok_or_else(|| MlError::Invalid(format!("no feature named {n}")))
            })
            .collect::<Result<Vec<usize>, MlError>>()?;
        let mut x = Vec::with_capacity(self.rows() * cols.len());
        for i in 0..self.rows() {
            let row = self.row(i);
            x.extend(cols.iter().map(|&c| row[c]));
        }
        Ok(FeatureTable {
            names: names.iter().map(|n| n.to_string()).collect(),
            x,
            y: self.y.clone(),
            ts_ms: self.ts_ms.clone(),
            card: self.card.clone(),
            id: self.id.clone(),
        })
    }
}

/// The fraud detection handbook's 15 features, as the engine's nearest equivalents: amount,
/// weekend and night flags, per card count and mean amount over 1, 7 and 30 days, per terminal
/// count over 1, 7 and 30 days and fraud rate over the same windows shifted back by the label
/// delay. (The handbook counts the transaction itself in the card windows and shifts the
/// terminal counts too; the engine's windows hold what came before.) For measuring what the
/// engine's other features add, with the same trainer.
pub const HANDBOOK_FEATURES: [&str; 15] = [
    "amount",
    "is_weekend",
    "is_night",
    "card_count_24h",
    "card_mean_amount_24h",
    "card_count_7d",
    "card_mean_amount_7d",
    "card_count_30d",
    "card_mean_amount_30d",
    "terminal_count_1d",
    "terminal_fraud_rate_1d",
    "terminal_count_7d",
    "terminal_fraud_rate_7d",
    "terminal_count_30d",
    "terminal_fraud_rate_30d",
];

/// The engine's view of a dataset transaction: its facts and its card checks.
pub fn to_facts(t: &Transaction, fx: &FxRates) -> Result<(TxFacts, CardChecks), MlError> {
    let last4 = Last4::parse(&format!("{:04}", t.card % 10_000))
        .map_err(|e| MlError::Invalid(e.to_string()))?;
    let amount = Money::new(t.amount_minor, t.currency)
        .map_err(|e| MlError::Invalid(format!("transaction {}: {e}", t.id)))?;
    let facts = TxFacts {
        id: t.id.to_string(),
        ts: Timestamp(t.ts_ms),
        utc_offset_min: t.utc_offset_min,
        card_token: synth::card_token(t.card),
        last4,
        amount,
        amount_base: fx.to_base_minor(&amount),
        merchant: Merchant {
            id: t.merchant.to_string(),
            terminal_id: t.terminal.to_string(),
            name: String::new(),
            mcc: t.mcc,
            country: t.country,
            city: String::new(),
            location: t.location.map(|(lat, lon)| Location {
                lat: f64::from(lat),
                lon: f64::from(lon),
            }),
        },
        channel: t.channel,
        tx_type: t.tx_type,
        device_id: t.device.map(|d| d.to_string()),
        device_ip: None,
        ip_country: None,
        email_domain: None,
        home_country: t.home.map(|h| h.0),
        home: t.home.map(|(_, lat, lon)| Location {
            lat: f64::from(lat),
            lon: f64::from(lon),
        }),
        received: None,
        client: None,
        digest: None,
        authenticated: None,
    };
    let checks = CardChecks {
        csc: t.csc,
        pin: t.pin,
        ..synth::ok_checks()
    };
    Ok((facts, checks))
}

/// Replays `data` and returns every transaction's features. `progress` is called now and then
/// with (done, total).
pub fn replay(
    data: &Dataset,
    cfg: &ReplayConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FeatureTable, MlError> {
    let n = data.transactions.len();
    let mut table = FeatureTable {
        names: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        x: Vec::with_capacity(n * N_FEATURES),
        y: Vec::with_capacity(n),
        ts_ms: Vec::with_capacity(n),
        card: Vec::with_capacity(n),
        id: Vec::with_capacity(n),
    };
    replay_with(
        data,
        cfg,
        &mut |_| {},
        progress,
        &mut |engine, t, facts, _| {
            let f = engine.features(facts);
            table.x.extend_from_slice(&f.values);
            table.y.push(t.fraud);
            table.ts_ms.push(t.ts_ms);
            table.card.push(t.card);
            table.id.push(t.id);
            Ok(())
        },
    )?;
    Ok(table)
}

/// What sees each transaction of a replay: the engine just before it, the transaction, and
/// its facts and card checks as the engine takes them.
pub type Visit<'a> =
    dyn FnMut(&Engine, &Transaction, &TxFacts, &CardChecks) -> Result<(), MlError> + 'a;

/// The replay itself: the transactions through an engine in time order (`prepare` sets it
/// up: a ruleset, a model), each one shown to `visit` with the state just before it, then
/// applied as it happened (approved); each fraud label applied once it would have arrived.
pub fn replay_with(
    data: &Dataset,
    cfg: &ReplayConfig,
    prepare: &mut dyn FnMut(&mut Engine),
    progress: &mut dyn FnMut(usize, usize),
    visit: &mut Visit<'_>,
) -> Result<(), MlError> {
    let mut ecfg = cfg.engine.clone();
    ecfg.fx.base = data.currency;
    ecfg.terminal_risk_delay_days = cfg
        .label_delay_days
        .min(cardguard_engine::MAX_RISK_DELAY_DAYS);
    let fx = ecfg.fx.clone();
    let mut engine = Engine::new(ecfg);
    prepare(&mut engine);
    let n = data.transactions.len();
    let delay_ms = i64::from(cfg.label_delay_days) * 86_400_000;
    // Fraud labels waiting to arrive: (arrival time, authorization number).
    let mut pending = LabelQueue::default();
    let mut last_ts = i64::MIN;
    for (i, t) in data.transactions.iter().enumerate() {
        if t.ts_ms < last_ts {
            return Err(MlError::Invalid(format!(
                "transaction {} is out of time order",
                t.id
            )));
        }
        last_ts = t.ts_ms;
        pending.deliver(&mut engine, t.ts_ms)?;
        let (facts, checks) = to_facts(t, &fx)?;
        visit(&engine, t, &facts, &checks)?;
        let rec = AuthRecord {
            authorization_id: engine.next_authorization_id(),
            tx: facts,
            checks,
            outcome: Outcome::unscored_approval(),
        };
        engine
            .apply_auth(&rec, i as u64)
            .map_err(|e| MlError::Invalid(format!("transaction {}: {e}", t.id)))?;
        if t.fraud {
            pending.push(t.ts_ms + delay_ms, auth_id(i));
        }
        if i % 65_536 == 0 {
            progress(i, n);
        }
    }
    progress(n, n);
    Ok(())
}

/// Features by replay of a server's own event log: its events in log order through an
/// engine exactly as the server applied them (authorizations with their recorded outcomes,
/// reversals, cardholder answers), each authorization's features taken from the state just
/// before it; fraud labels (from `/v1/labels`, disputes, "not me" answers) applied
/// `label_delay_days` after their transaction, as in [`replay`]. Rows are the authorizations
/// of enrolled cards that were not reversed; a label that says fraud makes a fraud row, no
/// label or a genuine one a genuine row.
pub fn replay_log(
    events: &[(u64, Event)],
    cfg: &ReplayConfig,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FeatureTable, MlError> {
    use std::collections::{HashMap, HashSet};
    let mut fraud: HashMap<&str, bool> = HashMap::new();
    let mut reversed: HashSet<&str> = HashSet::new();
    for (_, e) in events {
        match e {
            Event::Label(l) => {
                fraud.insert(&l.authorization_id, l.fraud);
            }
            Event::Answer(a) => {
                fraud.insert(&a.authorization_id, !a.yes);
            }
            Event::Reversal(r) => {
                reversed.insert(&r.authorization_id);
            }
            Event::Auth(_)
            | Event::Authentication(_)
            | Event::CardStatus(_)
            | Event::Coverage(_) => {}
        }
    }
    let mut ecfg = cfg.engine.clone();
    ecfg.terminal_risk_delay_days = cfg
        .label_delay_days
        .min(cardguard_engine::MAX_RISK_DELAY_DAYS);
    let mut engine = Engine::new(ecfg);
    let n = events.len();
    let mut table = FeatureTable {
        names: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        ..FeatureTable::default()
    };
    let delay_ms = i64::from(cfg.label_delay_days) * 86_400_000;
    let mut pending = LabelQueue::default();
    let bad = |e: cardguard_engine::EngineError| MlError::Invalid(e.to_string());
    for (i, (offset, e)) in events.iter().enumerate() {
        match e {
            Event::Auth(rec) => {
                let ts = rec.tx.ts.0;
                pending.deliver(&mut engine, ts)?;
                let id = rec.authorization_id.as_str();
                let is_fraud = fraud.get(id).copied().unwrap_or(false);
                if rec.checks.card_known() && !reversed.contains(id) {
                    // What the engine computed when it decided, from the same state.
                    let f = engine.features(&rec.tx);
                    table.x.extend_from_slice(&f.values);
                    table.y.push(is_fraud);
                    table.ts_ms.push(ts);
                    table.card.push(u64::from_le_bytes(
                        rec.tx.card_token.0[..8].try_into().unwrap_or([0; 8]),
                    ));
                    table
                        .id
                        .push(cardguard_engine::authorization_number(id).unwrap_or(i as u64));
                }
                let row = rec.checks.card_known() && !reversed.contains(id);
                engine.apply_auth(rec, *offset).map_err(bad)?;
                if is_fraud && row {
                    pending.push(ts + delay_ms, rec.authorization_id.clone());
                }
            }
            Event::Reversal(r) => {
                engine.apply_reversal(r).map_err(bad)?;
            }
            Event::Answer(a) => {
                engine.apply_answer(a).map_err(bad)?;
            }
            // Labels arrive by the delay above, as in training on a dataset; a step-up
            // authentication changes no state.
            Event::Label(_)
            | Event::Authentication(_)
            | Event::CardStatus(_)
            | Event::Coverage(_) => {}
        }
        if i % 65_536 == 0 {
            progress(i, n);
        }
    }
    progress(n, n);
    Ok(table)
}

/// Fraud labels on their way: each applied once its arrival time has come.
#[derive(Default)]
struct LabelQueue(BinaryHeap<Reverse<(i64, String)>>);

impl LabelQueue {
    fn push(&mut self, arrives_ms: i64, authorization_id: String) {
        self.0.push(Reverse((arrives_ms, authorization_id)));
    }

    /// Applies every label that has arrived by `now_ms`.
    fn deliver(&mut self, engine: &mut Engine, now_ms: i64) -> Result<(), MlError> {
        while self.0.peek().is_some_and(|Reverse((at, _))| *at <= now_ms) {
            if let Some(Reverse((at, id))) = self.0.pop() {
                engine
                    .apply_label(&LabelRecord {
                        authorization_id: id,
                        fraud: true,
                        ts: Timestamp(at),
                        source: Some("replay".into()),
                    })
                    .map_err(|e| MlError::Invalid(e.to_string()))?;
            }
        }
        Ok(())
    }
}

fn auth_id(n: usize) -> String {
    format!("{}{n:012}", cardguard_engine::AUTH_ID_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_keeps_only_the_features_asked_for() {
        let t = FeatureTable {
            names: vec!["a".into(), "b".into(), "c".into()],
            x: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            y: vec![false, true],
            ts_ms: vec![1, 2],
            card: vec![7, 8],
            id: vec![10, 11],
        };
        let s = t.select(&["c", "a"]).unwrap();
        assert_eq!(s.names, ["c", "a"]);
        assert_eq!((s.row(0), s.row(1)), (&[3.0, 1.0][..], &[6.0, 4.0][..]));
        assert_eq!(
            (s.y, s.card, s.id),
            (t.y.clone(), t.card.clone(), t.id.clone())
        );
        assert!(t.select(&["a", "zzz"]).is_err());
        let names: Vec<&str> = cardguard_engine::FEATURE_NAMES.to_vec();
        assert!(
            HANDBOOK_FEATURES.iter().all(|h| names.contains(h)),
            "every handbook feature is one of the engine's"
        );
    }
    use cardguard_engine::idx;

    fn data() -> Dataset {
        let csv = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO\n\
            0,2018-04-01 10:00:00,1,9,10.00,0,0,1,2\n\
            1,2018-04-01 11:00:00,2,9,20.00,0,0,0,0\n\
            2,2018-04-05 10:00:00,1,9,30.00,0,0,0,0\n\
            3,2018-04-09 10:00:00,3,9,40.00,0,0,0,0\n";
        Dataset::read(csv.as_bytes()).unwrap()
    }

    #[test]
    fn features_see_the_past_and_labels_only_after_the_delay() {
        let t = replay(&data(), &ReplayConfig::default(), &mut |_, _| {}).unwrap();
        assert_eq!(t.rows(), 4);
        let f = |r: usize, k: usize| t.row(r)[k];
        assert_eq!(f(0, idx::CARD_COUNT_24H), 0.0);
        assert_eq!(f(0, idx::AMOUNT), 10.0);
        // Card 1 again four days later: one transaction in its 7 days.
        assert_eq!(f(2, idx::CARD_COUNT_7D), 1.0);
        assert_eq!(f(2, idx::CARD_COUNT_24H), 0.0);
        // The fraud of April 1 is known from April 8: on April 9 the terminal's rate over
        // the 7 days that end 7 days back (April 2) counts it.
        assert_eq!(f(2, idx::TERM_RATE_30D), 0.0);
        assert!(
            (f(3, idx::TERM_RATE_30D) - 0.5).abs() < 1e-6,
            "{}",
            f(3, idx::TERM_RATE_30D)
        );
        assert_eq!(f(3, idx::TERM_COUNT_30D), 3.0);
    }

    #[test]
    fn replay_is_deterministic() {
        let a = replay(&data(), &ReplayConfig::default(), &mut |_, _| {}).unwrap();
        let b = replay(&data(), &ReplayConfig::default(), &mut |_, _| {}).unwrap();
        assert_eq!(a.x, b.x);
    }
}
