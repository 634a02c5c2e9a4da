//! Synthetic engine state for benchmarks: many cards with a month of plausible history, and
//! probe transactions to decide. Deterministic for a seed. Not used by the service; the model
//! pipeline's replay takes its card numbering (`card_token`) and passed checks from here.

use crate::decide::{CardChecks, CardStatus, CscCheck, Outcome, PinCheck};
use crate::record::{AuthRecord, TxFacts};
use crate::state::Engine;
use cardguard_core::{
    CardToken, Channel, Country, Currency, Last4, Location, Mcc, Merchant, Money, Timestamp, TxType,
};

use cardguard_core::rng::Rng;

const CITIES: &[(&str, &str, f64, f64)] = &[
    ("JP", "Tokyo", 35.68, 139.76),
    ("JP", "Osaka", 34.69, 135.50),
    ("JP", "Fukuoka", 33.59, 130.40),
    ("US", "New York", 40.71, -74.01),
    ("US", "Los Angeles", 34.05, -118.24),
    ("GB", "London", 51.51, -0.13),
    ("FR", "Paris", 48.86, 2.35),
    ("SG", "Singapore", 1.35, 103.82),
];
const MCCS: &[&str] = &[
    "5411", "5812", "5814", "5732", "5912", "4111", "5311", "5999",
];

/// The card token of synthetic (or dataset) card `i`.
pub fn card_token(i: u64) -> CardToken {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&i.to_le_bytes());
    t[8..].copy_from_slice(&(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes());
    CardToken(t)
}

/// The all-passed card checks.
pub fn ok_checks() -> CardChecks {
    CardChecks {
        pan_valid: true,
        status: CardStatus::Active,
        expired: false,
        expiry_matches: true,
        csc: CscCheck::Match,
        pin: PinCheck::NotPresented,
    }
}

/// A plausible transaction of card `card` at `ts` (card-present near home, or online).
pub fn transaction(rng_seed: u64, card: u64, ts: Timestamp, id: String) -> TxFacts {
    let mut r = Rng::new(&[rng_seed]);
    let home = CITIES[(card % CITIES.len() as u64) as usize];
    let online = r.below(5) == 0;
    let merchant = r.below(4000);
    let jitter = || (merchant % 100) as f64 / 500.0;
    TxFacts {
        id,
        ts,
        utc_offset_min: if home.0 == "JP" { 540 } else { 0 },
        card_token: card_token(card),
        last4: Last4::parse(&format!("{:04}", card % 10_000)).expect("4 digits"),
        amount: Money {
            value: 500 + r.below(20_000),
            currency: Currency::JPY,
        },
        amount_base: 500 + r.below(20_000),
        merchant: Merchant {
            id: format!("m-{}-{merchant}", home.1),
            terminal_id: format!("t-{}", merchant % 7),
            name: "SHOP".into(),
            mcc: Mcc::parse(MCCS[(merchant % MCCS.len() as u64) as usize]).expect("valid mcc"),
            country: Country::parse(home.0).expect("valid country"),
            city: home.1.into(),
            location: (!online).then(|| Location {
                lat: home.2 + jitter(),
                lon: home.3 + jitter(),
            }),
        },
        channel: if online {
            Channel::Ecommerce
        } else {
            Channel::CardPresent
        },
        tx_type: TxType::Purchase,
        device_id: online.then(|| format!("dev-{}", card % 1_000_003)),
        device_ip: None,
        ip_country: None,
        email_domain: None,
        home_country: Country::parse(home.0).ok(),
        home: Some(Location {
            lat: home.2,
            lon: home.3,
        }),
        received: None,
        client: None,
        digest: None,
        authenticated: None,
    }
}

/// Fills the engine with `cards` cards, each with `per_card` approved transactions spread
/// over the 30 days before `now`. Returns the number of records applied.
pub fn populate(engine: &mut Engine, cards: u64, per_card: u64, now: Timestamp, seed: u64) -> u64 {
    let span = 30 * 86_400_000i64;
    let mut r = Rng::new(&[seed]);
    let mut n = 0;
    let mut times: Vec<i64> = Vec::with_capacity(per_card as usize);
    for c in 0..cards {
        times.clear();
        times.extend((0..per_card).map(|_| now.0 - 1 - (r.below(span as u64) as i64)));
        times.sort_unstable();
        for &t in &times {
            let tx = transaction(r.next(), c, Timestamp(t), format!("h{n}"));
            let rec = AuthRecord {
                authorization_id: engine.next_authorization_id(),
                tx,
                checks: ok_checks(),
                outcome: Outcome::unscored_approval(),
            };
            // Ids are unique by construction.
            let _ = engine.apply_auth(&rec, n);
            n += 1;
        }
    }
    n
}

/// A model of `trees` full trees of depth `depth` whose splits use values of `samples` (so
/// walks take varied paths), for benchmarks.
pub fn random_trees(
    trees: usize,
    depth: usize,
    samples: &[crate::Features],
    seed: u64,
) -> crate::TreeModel {
    let mut r = Rng::new(&[seed]);
    let mut all = Vec::with_capacity(trees);
    for _ in 0..trees {
        let mut nodes = Vec::new();
        // Breadth-first full tree: node i has children 2i+1 and 2i+2.
        let inner = (1usize << depth) - 1;
        let total = (1usize << (depth + 1)) - 1;
        for i in 0..total {
            let cover = (1u64 << (depth + 1 - (usize::BITS - (i + 1).leading_zeros()) as usize))
                as f32
                * (1.0 + (r.below(100) as f32) / 100.0);
            if i < inner {
                let f = r.below(crate::N_FEATURES as u64) as usize;
                let s = &samples[r.below(samples.len() as u64) as usize];
                nodes.push(crate::TreeNode {
                    feature: Some(f),
                    threshold: s.values[f],
                    left: 2 * i + 1,
                    right: 2 * i + 2,
                    missing_left: true,
                    value: 0.0,
                    cover,
                });
            } else {
                nodes.push(crate::TreeNode {
                    feature: None,
                    threshold: 0.0,
                    left: 0,
                    right: 0,
                    missing_left: false,
                    value: (r.below(2001) as f32 - 1000.0) / 10_000.0,
                    cover,
                });
            }
        }
        // Covers must add up: a parent's cover is its children's.
        for i in (0..inner).rev() {
            nodes[i].cover = nodes[2 * i + 1].cover + nodes[2 * i + 2].cover;
        }
        all.push(nodes);
    }
    crate::TreeModel::compile("bench-random", -4.0, &all, false).expect("well-formed trees")
}
