//! A transaction simulator in the engine's schema, in the spirit of the fraud detection
//! handbook's (cards with spending habits, terminals near them, a day of transactions after
//! another) with the places, channels, devices and currencies of a Japanese issuer's
//! portfolio, and seven fraud scenarios:
//!
//! 1. any amount above 200,000 JPY (the handbook's first, an easy pattern);
//! 2. compromised terminals: every transaction at them for 28 days;
//! 3. compromised cards: for 14 days a third of their transactions at five times the amount;
//! 4. a cloned card used in person far away, hours after the real card was used at home;
//! 5. card testing: a burst of small e-commerce attempts, most with a wrong security code;
//! 6. account takeover after phishing: a new device, e-commerce, many times the usual amount;
//! 7. a compromised merchant: cards used there are later used online elsewhere.
//!
//! Deterministic for a seed: every card's day draws from its own generator.

use crate::MlError;
#[cfg(test)]
use crate::dataset::Dataset;
use crate::dataset::Transaction;
use cardguard_core::rng::Rng;
use cardguard_core::{Channel, Country, Currency, Mcc, TxType};
use cardguard_engine::{CscCheck, PinCheck};
use std::io::Write;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub cards: u64,
    pub days: u32,
    pub seed: u64,
    /// First day, days since the Unix epoch (UTC).
    pub start_day: i64,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SimSummary {
    pub transactions: u64,
    pub frauds: u64,
    pub by_scenario: [u64; 8],
}

/// (country, city, lat, lon, UTC offset minutes, currency, weight for homes).
const CITIES: &[(&str, &str, f64, f64, i16, &str, u32)] = &[
    ("JP", "Tokyo", 35.68, 139.76, 540, "JPY", 30),
    ("JP", "Yokohama", 35.44, 139.64, 540, "JPY", 10),
    ("JP", "Osaka", 34.69, 135.50, 540, "JPY", 14),
    ("JP", "Nagoya", 35.18, 136.91, 540, "JPY", 8),
    ("JP", "Sapporo", 43.06, 141.35, 540, "JPY", 6),
    ("JP", "Fukuoka", 33.59, 130.40, 540, "JPY", 6),
    ("JP", "Sendai", 38.27, 140.87, 540, "JPY", 4),
    ("JP", "Hiroshima", 34.39, 132.46, 540, "JPY", 4),
    ("JP", "Kyoto", 35.01, 135.77, 540, "JPY", 4),
    ("JP", "Naha", 26.21, 127.68, 540, "JPY", 2),
    ("KR", "Seoul", 37.57, 126.98, 540, "KRW", 1),
    ("TW", "Taipei", 25.03, 121.57, 480, "TWD", 1),
    ("HK", "Hong Kong", 22.32, 114.17, 480, "HKD", 0),
    ("SG", "Singapore", 1.35, 103.82, 480, "SGD", 1),
    ("TH", "Bangkok", 13.76, 100.50, 420, "THB", 0),
    ("US", "Honolulu", 21.31, -157.86, -600, "USD", 0),
    ("US", "Los Angeles", 34.05, -118.24, -480, "USD", 1),
    ("US", "New York", 40.71, -74.01, -300, "USD", 1),
    ("GB", "London", 51.51, -0.13, 0, "GBP", 1),
    ("FR", "Paris", 48.86, 2.35, 60, "EUR", 0),
];

/// Where Japanese cardholders travel (indices into CITIES), and where clones are used.
const ABROAD: &[usize] = &[10, 11, 12, 13, 14, 15, 16, 17, 18, 19];

/// Merchant categories with their share and typical amount (JPY).
const MCCS: &[(&str, u32, f64)] = &[
    ("5411", 22, 3000.0), // grocery
    ("5812", 16, 2500.0), // restaurants
    ("5814", 10, 800.0),  // fast food
    ("5541", 6, 5000.0),  // fuel
    ("5912", 6, 2000.0),  // drugstores
    ("5311", 6, 8000.0),  // department stores
    ("5732", 4, 30000.0), // electronics
    ("5651", 6, 9000.0),  // clothing
    ("4111", 8, 600.0),   // transit
    ("5999", 6, 4000.0),  // misc retail
    ("7011", 3, 25000.0), // hotels
    ("4511", 2, 60000.0), // airlines
    ("5944", 1, 80000.0), // jewellery
    ("6011", 4, 20000.0), // ATM cash
];

struct Terminal {
    merchant: u64,
    city: usize,
    lat: f32,
    lon: f32,
    mcc: usize,
    online: bool,
}

struct Card {
    city: usize,
    lat: f32,
    lon: f32,
    /// Transactions a day.
    rate: f64,
    /// Spending level: a multiplier on category amounts.
    level: f64,
    online_share: f64,
    device: u64,
    /// Terminals near home this card uses.
    nearby: Vec<u32>,
}

struct World {
    cards: Vec<Card>,
    terminals: Vec<Terminal>,
    /// Online terminals (any card can use them).
    online: Vec<u32>,
    /// Terminals by city, for travel and clones.
    by_city: Vec<Vec<u32>>,
}

fn weighted<T>(r: &mut Rng, items: &[T], w: impl Fn(&T) -> u32) -> usize {
    let total: u32 = items.iter().map(&w).sum();
    let mut x = r.below(u64::from(total)) as u32;
    for (i, it) in items.iter().enumerate() {
        let wi = w(it);
        if x < wi {
            return i;
        }
        x -= wi;
    }
    items.len() - 1
}

fn jitter(r: &mut Rng, lat: f64, lon: f64, km: f64) -> (f32, f32) {
    let dlat = r.normal() * km / 111.0;
    let dlon = r.normal() * km / (111.0 * lat.to_radians().cos().max(0.2));
    ((lat + dlat) as f32, (lon + dlon) as f32)
}

fn build(cfg: &SimConfig) -> World {
    let mut r = Rng::new(&[cfg.seed, 1]);
    let n_terminals = (cfg.cards * 2).max(50);
    let mut terminals = Vec::with_capacity(n_terminals as usize);
    let mut by_city = vec![Vec::new(); CITIES.len()];
    let mut online = Vec::new();
    let mut merchant = 0u64;
    while (terminals.len() as u64) < n_terminals {
        merchant += 1;
        let is_online = r.unit() < 0.15;
        let city = if r.unit() < 0.85 {
            weighted(&mut r, CITIES, |c| c.6)
        } else {
            r.below(CITIES.len() as u64) as usize
        };
        let mcc = weighted(&mut r, MCCS, |m| m.1);
        let n = if is_online { 1 } else { 1 + r.below(3) };
        let (mlat, mlon) = jitter(&mut r, CITIES[city].2, CITIES[city].3, 12.0);
        for _ in 0..n {
            let (lat, lon) = jitter(&mut r, f64::from(mlat), f64::from(mlon), 0.5);
            let id = terminals.len() as u32;
            if is_online {
                online.push(id);
            } else {
                by_city[city].push(id);
            }
            terminals.push(Terminal {
                merchant,
                city,
                lat,
                lon,
                mcc,
                online: is_online,
            });
        }
    }
    let mut cards = Vec::with_capacity(cfg.cards as usize);
    for _ in 0..cfg.cards {
        let city = weighted(&mut r, &CITIES[..10], |c| c.6);
        let (lat, lon) = jitter(&mut r, CITIES[city].2, CITIES[city].3, 8.0);
        // Terminals within ~15 km of home, at most 60.
        let near: Vec<u32> = by_city[city]
            .iter()
            .copied()
            .filter(|&t| {
                let tt = &terminals[t as usize];
                let d = ((tt.lat - lat).powi(2) + (tt.lon - lon).powi(2)).sqrt();
                d < 0.15
            })
            .take(60)
            .collect();
        let nearby = if near.len() >= 5 {
            near
        } else {
            by_city[city].iter().copied().take(30).collect()
        };
        cards.push(Card {
            city,
            lat,
            lon,
            rate: 0.3 + r.unit() * 3.2,
            level: (r.normal() * 0.45).exp(),
            online_share: 0.05 + r.unit() * 0.35,
            device: r.next() >> 16,
            nearby,
        });
    }
    World {
        cards,
        terminals,
        online,
        by_city,
    }
}

fn currency(city: usize) -> Currency {
    Currency::parse(CITIES[city].5).unwrap_or(Currency::JPY)
}

/// JPY per major unit of the city's currency (the engine's reference rates).
fn jpy_rate(city: usize) -> f64 {
    match CITIES[city].5 {
        "USD" => 150.0,
        "EUR" => 160.0,
        "GBP" => 190.0,
        "KRW" => 0.11,
        "TWD" => 4.7,
        "HKD" => 19.0,
        "SGD" => 112.0,
        "THB" => 4.2,
        _ => 1.0,
    }
}

/// One transaction before ids: what a day's generator produces.
struct Draft {
    t: Transaction,
    /// A genuine transaction at home (clones are placed after one).
    home_present: bool,
}

struct Ctx<'a> {
    w: &'a World,
    cfg: &'a SimConfig,
}

impl Ctx<'_> {
    fn tx(&self, card: u64, ts_ms: i64, term: u32, amount_jpy: f64, r: &mut Rng) -> Transaction {
        let c = &self.w.cards[card as usize];
        let tm = &self.w.terminals[term as usize];
        let (city, offset) = if tm.online {
            (c.city, CITIES[c.city].4)
        } else {
            (tm.city, CITIES[tm.city].4)
        };
        let cur = if tm.online {
            Currency::JPY
        } else {
            currency(city)
        };
        let major = amount_jpy.max(1.0) / if tm.online { 1.0 } else { jpy_rate(city) };
        let minor = (major * 10f64.powi(i32::from(cur.exponent())))
            .round()
            .max(1.0) as u64;
        let atm = MCCS[tm.mcc].0 == "6011";
        Transaction {
            id: 0,
            ts_ms,
            utc_offset_min: offset,
            card,
            merchant: tm.merchant,
            terminal: u64::from(term),
            mcc: Mcc::parse(MCCS[tm.mcc].0).expect("built-in MCC"),
            country: Country::parse(CITIES[tm.city].0).expect("built-in country"),
            location: (!tm.online).then_some((tm.lat, tm.lon)),
            channel: if tm.online {
                Channel::Ecommerce
            } else if atm {
                Channel::Atm
            } else {
                Channel::CardPresent
            },
            tx_type: if atm {
                TxType::CashAdvance
            } else {
                TxType::Purchase
            },
            amount_minor: minor,
            currency: cur,
            device: tm.online.then_some(c.device),
            home: Some((
                Country::parse(CITIES[c.city].0).expect("built-in country"),
                c.lat,
                c.lon,
            )),
            csc: if tm.online {
                CscCheck::Match
            } else {
                CscCheck::NotPresented
            },
            pin: if atm || (!tm.online && r.unit() < 0.1) {
                PinCheck::Correct
            } else {
                PinCheck::NotPresented
            },
            fraud: false,
            scenario: 0,
        }
    }

    fn time_of_day(&self, day: i64, offset: i16, r: &mut Rng) -> i64 {
        // Local hour around 14:00 (sd 4.5 h), kept within the day.
        let h = (14.0 + r.normal() * 4.5).clamp(0.0, 23.99);
        day * 86_400_000 + (h * 3_600_000.0) as i64 - i64::from(offset) * 60_000
    }

    /// A card's genuine transactions on `day`.
    fn genuine(&self, card: u64, day: i64, out: &mut Vec<Draft>) {
        let c = &self.w.cards[card as usize];
        let mut r = Rng::new(&[self.cfg.seed, 2, card, day as u64]);
        // Trips abroad: about one a year, a week long.
        let trip = {
            let mut tr = Rng::new(&[self.cfg.seed, 3, card, (day / 7) as u64]);
            (tr.unit() < 7.0 / 365.0 * 1.0).then(|| ABROAD[tr.below(ABROAD.len() as u64) as usize])
        };
        let n = r.poisson(c.rate);
        for _ in 0..n {
            let online = r.unit() < c.online_share;
            let term = if online {
                self.w.online[r.below(self.w.online.len() as u64) as usize]
            } else if let Some(city) = trip.filter(|&city| !self.w.by_city[city].is_empty()) {
                let ts = &self.w.by_city[city];
                ts[r.below(ts.len() as u64) as usize]
            } else if c.nearby.is_empty() {
                self.w.online[r.below(self.w.online.len() as u64) as usize]
            } else {
                c.nearby[r.below(c.nearby.len() as u64) as usize]
            };
            let tm = &self.w.terminals[term as usize];
            let base = MCCS[tm.mcc].2 * c.level;
            let amount = (base * (r.normal() * 0.6).exp()).round();
            let offset = if tm.online {
                CITIES[c.city].4
            } else {
                CITIES[tm.city].4
            };
            let ts = self.time_of_day(day, offset, &mut r);
            let t = self.tx(card, ts, term, amount, &mut r);
            out.push(Draft {
                home_present: !tm.online && tm.city == c.city,
                t,
            });
        }
    }
}

/// Simulates and writes the engine CSV to `out`, a day at a time.
pub fn simulate(cfg: &SimConfig, out: impl Write) -> Result<SimSummary, MlError> {
    if cfg.cards == 0 || cfg.days == 0 {
        return Err(MlError::Invalid(
            "--cards and --days must be at least 1".into(),
        ));
    }
    let w = build(cfg);
    let ctx = Ctx { w: &w, cfg };
    let mut sum = SimSummary::default();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, out);
    writeln!(out, "{}", crate::dataset::ENGINE_COLUMNS.join(",")).map_err(MlError::Io)?;
    // Scenario state: compromised terminals (until day), compromised cards (until day),
    // compromised merchants (until day) and the cards exposed there (usable from..until).
    let mut term_until: Vec<(u32, i64)> = Vec::new();
    let mut card_until: std::collections::HashMap<u64, i64> = Default::default();
    let mut merchant_until: Vec<(u64, i64)> = Vec::new();
    let mut exposed: Vec<(u64, i64, i64)> = Vec::new();
    let mut next_id = 0u64;
    let mut day_tx: Vec<Draft> = Vec::new();
    let mut line = String::with_capacity(256);
    for d in 0..i64::from(cfg.days) {
        let day = cfg.start_day + d;
        let mut r = Rng::new(&[cfg.seed, 4, day as u64]);
        day_tx.clear();
        for card in 0..cfg.cards {
            ctx.genuine(card, day, &mut day_tx);
        }
        let per = |k: f64| ((cfg.cards as f64 / 10_000.0) * k).ceil() as u64;
        // New compromises today.
        for _ in 0..per(4.0) {
            let t = r.below(w.terminals.len() as u64) as u32;
            if !w.terminals[t as usize].online {
                term_until.push((t, day + 28));
            }
        }
        for _ in 0..per(6.0) {
            card_until.insert(r.below(cfg.cards), day + 14);
        }
        for _ in 0..r.poisson(0.15 * (cfg.cards as f64 / 2_000.0).max(1.0)) {
            let t = w.online[r.below(w.online.len() as u64) as usize];
            merchant_until.push((w.terminals[t as usize].merchant, day + 21));
        }
        term_until.retain(|x| x.1 >= day);
        card_until.retain(|_, u| *u >= day);
        merchant_until.retain(|x| x.1 >= day);
        exposed.retain(|x| x.2 >= day);

        // Scenarios 1-3 and 7's exposure on the genuine transactions.
        for dr in day_tx.iter_mut() {
            let t = &mut dr.t;
            if term_until.iter().any(|x| u64::from(x.0) == t.terminal) {
                t.fraud = true;
                t.scenario = 2;
            } else if card_until.contains_key(&t.card) && r.unit() < 1.0 / 3.0 {
                t.amount_minor *= 5;
                t.fraud = true;
                t.scenario = 3;
            }
            if merchant_until.iter().any(|m| m.0 == t.merchant) && r.unit() < 0.8 {
                exposed.push((t.card, day + 2 + r.below(5) as i64, day + 20));
            }
        }
        let mut extra: Vec<Transaction> = Vec::new();
        // 4. Clones used far away, hours after a genuine transaction at home.
        for _ in 0..per(3.0) {
            let homes: Vec<usize> = (0..day_tx.len())
                .filter(|&i| day_tx[i].home_present)
                .collect();
            if homes.is_empty() {
                break;
            }
            let at = &day_tx[homes[r.below(homes.len() as u64) as usize]].t;
            let city = ABROAD[r.below(ABROAD.len() as u64) as usize];
            let terms = &w.by_city[city];
            if terms.is_empty() {
                continue;
            }
            let (card, t0) = (at.card, at.ts_ms);
            for k in 0..(2 + r.below(3)) {
                let term = terms[r.below(terms.len() as u64) as usize];
                let ts = t0 + 3_600_000 * (1 + r.below(5) as i64) + k as i64 * 1_200_000;
                let amount = 20_000.0 + r.unit() * 120_000.0;
                let mut t = ctx.tx(card, ts, term, amount, &mut r);
                t.fraud = true;
                t.scenario = 4;
                extra.push(t);
            }
        }
        // 5. Card testing: small online attempts in minutes, most with a wrong code.
        for _ in 0..per(3.0) {
            let card = r.below(cfg.cards);
            let term = w.online[r.below(w.online.len() as u64) as usize];
            let t0 = ctx.time_of_day(day, 540, &mut r);
            let n = 3 + r.below(8);
            for k in 0..n {
                let mut t = ctx.tx(
                    card,
                    t0 + k as i64 * (20_000 + r.below(60_000) as i64),
                    term,
                    100.0 + r.below(400) as f64,
                    &mut r,
                );
                t.device = Some(r.next() >> 16);
                t.csc = if k + 1 == n && r.unit() < 0.5 {
                    CscCheck::Match
                } else {
                    CscCheck::Mismatch
                };
                t.fraud = true;
                t.scenario = 5;
                extra.push(t);
            }
        }
        // 6. Account takeover after phishing: a new device, online, far above the usual.
        for _ in 0..per(3.0) {
            let card = r.below(cfg.cards);
            let device = r.next() >> 16;
            let t0 = ctx.time_of_day(day, 540, &mut r);
            for k in 0..(1 + r.below(4)) {
                let term = w.online[r.below(w.online.len() as u64) as usize];
                let level = w.cards[card as usize].level;
                let amount = 30_000.0 * level * (5.0 + r.unit() * 15.0);
                let mut t = ctx.tx(card, t0 + k as i64 * 900_000, term, amount, &mut r);
                t.device = Some(device);
                t.fraud = true;
                t.scenario = 6;
                extra.push(t);
            }
        }
        // 7. Cards exposed at a compromised merchant, used online elsewhere.
        for &(card, from, _) in exposed.iter().filter(|x| x.1 == day) {
            let device = r.next() >> 16;
            for _ in 0..(1 + r.below(3)) {
                let term = w.online[r.below(w.online.len() as u64) as usize];
                let amount = 10_000.0 + r.unit() * 60_000.0;
                let ts = ctx.time_of_day(from, 540, &mut r);
                let mut t = ctx.tx(card, ts, term, amount, &mut r);
                t.device = Some(device);
                t.fraud = true;
                t.scenario = 7;
                extra.push(t);
            }
        }
        day_tx.extend(extra.into_iter().map(|t| Draft {
            t,
            home_present: false,
        }));
        // 1. Above the threshold.
        for dr in day_tx.iter_mut() {
            let jpy = dr.t.amount_minor as f64 / 10f64.powi(i32::from(dr.t.currency.exponent()))
                * match dr.t.currency.code() {
                    "JPY" => 1.0,
                    c => CITIES.iter().position(|x| x.5 == c).map_or(1.0, jpy_rate),
                };
            if jpy > 200_000.0 && !dr.t.fraud {
                dr.t.fraud = true;
                dr.t.scenario = 1;
            }
        }
        day_tx.sort_by_key(|d| (d.t.ts_ms, d.t.card));
        for dr in day_tx.iter_mut() {
            dr.t.id = next_id;
            next_id += 1;
            line.clear();
            crate::dataset::engine_line(&dr.t, &mut line);
            out.write_all(line.as_bytes()).map_err(MlError::Io)?;
            sum.transactions += 1;
            if dr.t.fraud {
                sum.frauds += 1;
            }
            sum.by_scenario[usize::from(dr.t.scenario.min(7))] += 1;
        }
    }
    out.flush().map_err(MlError::Io)?;
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64) -> (Vec<u8>, SimSummary) {
        let cfg = SimConfig {
            cards: 300,
            days: 20,
            seed,
            start_day: 20_500,
        };
        let mut buf = Vec::new();
        let s = simulate(&cfg, &mut buf).unwrap();
        (buf, s)
    }

    #[test]
    fn deterministic_readable_and_every_scenario_occurs() {
        let (a, s) = run(7);
        let (b, _) = run(7);
        assert_eq!(a, b, "the same seed gives the same file");
        assert_ne!(run(8).0, a);
        let d = Dataset::read(a.as_slice()).unwrap();
        assert_eq!(d.transactions.len() as u64, s.transactions);
        assert_eq!(d.currency, Currency::JPY);
        assert!(s.transactions > 5_000, "{s:?}");
        for k in 1..=7 {
            assert!(s.by_scenario[k] > 0, "scenario {k} missing: {s:?}");
        }
        let rate = s.frauds as f64 / s.transactions as f64;
        assert!((0.002..0.1).contains(&rate), "fraud rate {rate}");
        // Time order, foreign currencies, devices online, wrong codes in card testing.
        assert!(d.transactions.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms));
        assert!(d.transactions.iter().any(|t| t.currency != Currency::JPY));
        assert!(
            d.transactions
                .iter()
                .filter(|t| t.channel == Channel::Ecommerce)
                .all(|t| t.device.is_some() && t.location.is_none())
        );
        assert!(
            d.transactions
                .iter()
                .any(|t| t.scenario == 5 && t.csc == CscCheck::Mismatch)
        );
    }
}
