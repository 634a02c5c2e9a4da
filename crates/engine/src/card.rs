//! Per-card state: the last 30 days of transactions (exact sliding windows), the amount
//! profile, the merchants, countries and devices seen, the last place, and the PIN and
//! security-code failure counters.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Window lengths in seconds: 5 minutes, 1 hour, 24 hours, 7 days, 30 days.
pub const WINDOWS_S: [u32; 5] = [300, 3_600, 86_400, 7 * 86_400, 30 * 86_400];
const HISTORY_S: u32 = WINDOWS_S[4];
/// 2000-01-01T00:00:00Z in Unix milliseconds: the epoch of the compact u32 seconds.
const EPOCH_2000_MS: i64 = 946_684_800_000;

const MAX_MERCHANTS: usize = 48;
const MAX_COUNTRIES: usize = 16;
const MAX_DEVICES: usize = 8;
/// Distinct counts stop at this: enough to tell "many" and bounded in time.
pub const DISTINCT_CAP: usize = 32;

/// Compact seconds since 2000 for a Unix-milliseconds timestamp (saturating).
pub fn secs(ms: i64) -> u32 {
    ((ms - EPOCH_2000_MS).max(0) / 1000).min(i64::from(u32::MAX)) as u32
}

pub(crate) mod flags {
    pub const PHYSICAL: u8 = 1;
    pub const ECOMMERCE: u8 = 2;
    pub const APPROVED: u8 = 4;
    pub const CASH: u8 = 8;
    pub const REFUND: u8 = 16;
}

/// One transaction as a card remembers it: 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxRecord {
    /// Seconds since 2000-01-01 UTC.
    pub t: u32,
    /// Amount in base-currency minor units, saturating at u32::MAX.
    pub amount: u32,
    /// Stable hash of the merchant id.
    pub merchant: u32,
    /// Country code packed in 16 bits.
    pub country: u16,
    pub flags: u8,
}

/// Exact counts and amount sums of the card's transactions in each window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowStats {
    pub count: [u32; 5],
    /// Approved purchases only, base-currency minor units.
    pub sum: [u64; 5],
    /// The largest approved purchase in each window, base-currency minor units.
    pub max: [u32; 5],
    pub declined_24h: u32,
    pub distinct_merchants_24h: u32,
    pub distinct_merchants_30d: u32,
    pub distinct_countries_24h: u32,
    pub distinct_countries_30d: u32,
}

/// The last card-present place of the card.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Fix {
    pub lat: f32,
    pub lon: f32,
    pub at_ms: i64,
}

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CardState {
    /// Transactions of the last 30 days, oldest first.
    pub history: VecDeque<TxRecord>,
    /// Recently seen merchants, countries and devices (most recent last, bounded).
    pub merchants: Vec<u32>,
    pub countries: Vec<u16>,
    pub devices: Vec<u32>,
    /// Welford running mean and M2 of approved purchase amounts (base minor units).
    pub amount_n: u32,
    pub amount_mean: f64,
    pub amount_m2: f64,
    /// Timestamp of the previous transaction, 0 if none.
    pub last_ms: i64,
    pub last_fix: Option<Fix>,
    pub wrong_pin_streak: u8,
    /// When the PIN was locked by wrong tries, 0 if it is not.
    pub pin_locked_ms: i64,
    /// Times of recent wrong security codes (bounded).
    pub wrong_csc_ms: Vec<i64>,
    /// When a fraud label last arrived for the card, 0 if never, and how many.
    pub fraud_label_ms: i64,
    pub fraud_labels: u16,
    /// Purchases the cardholder confirmed after a hold: the same one again is approved
    /// until its time (bounded).
    pub released: Vec<Release>,
    /// When the cardholder said a purchase was not theirs (the card is blocked), 0 if never.
    pub blocked_ms: i64,
}

/// A held purchase the cardholder confirmed: merchant and base-currency amount, and until
/// when the same purchase is approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub merchant: u32,
    pub amount: u32,
    pub until_ms: i64,
}

const MAX_RELEASES: usize = 4;

fn remember<T: PartialEq + Copy>(set: &mut Vec<T>, v: T, cap: usize) -> bool {
    if let Some(i) = set.iter().position(|&x| x == v) {
        let x = set.remove(i);
        set.push(x);
        false
    } else {
        if set.len() == cap {
            set.remove(0);
        }
        set.push(v);
        true
    }
}

/// A small bounded set for distinct counts.
struct Distinct<T, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + PartialEq + Default, const N: usize> Distinct<T, N> {
    fn new() -> Self {
        Distinct {
            items: [T::default(); N],
            len: 0,
        }
    }
    fn insert(&mut self, v: T) {
        if self.len < N && !self.items[..self.len].contains(&v) {
            self.items[self.len] = v;
            self.len += 1;
        }
    }
}

impl CardState {
    /// Exact window statistics as of `now_ms`, counting transactions at or before it.
    pub fn windows(&self, now_ms: i64) -> WindowStats {
        let now = secs(now_ms);
        let mut w = WindowStats::default();
        let mut m24 = Distinct::<u32, DISTINCT_CAP>::new();
        let mut m30 = Distinct::<u32, DISTINCT_CAP>::new();
        let mut c24 = Distinct::<u16, DISTINCT_CAP>::new();
        let mut c30 = Distinct::<u16, DISTINCT_CAP>::new();
        for r in self.history.iter().rev() {
            if r.t > now {
                continue;
            }
            let age = now - r.t;
            if age >= HISTORY_S {
                break;
            }
            let counts_amount = r.flags & flags::APPROVED != 0 && r.flags & flags::REFUND == 0;
            for (i, &len) in WINDOWS_S.iter().enumerate() {
                if age < len {
                    w.count[i] += 1;
                    if counts_amount {
                        w.sum[i] += u64::from(r.amount);
                        w.max[i] = w.max[i].max(r.amount);
                    }
                }
            }
            m30.insert(r.merchant);
            c30.insert(r.country);
            if age < WINDOWS_S[2] {
                m24.insert(r.merchant);
                c24.insert(r.country);
                if r.flags & flags::APPROVED == 0 {
                    w.declined_24h += 1;
                }
            }
        }
        w.distinct_merchants_24h = m24.len as u32;
        w.distinct_merchants_30d = m30.len as u32;
        w.distinct_countries_24h = c24.len as u32;
        w.distinct_countries_30d = c30.len as u32;
        w
    }

    pub fn knows_merchant(&self, m: u32) -> bool {
        self.merchants.contains(&m)
    }
    pub fn knows_country(&self, c: u16) -> bool {
        self.countries.contains(&c)
    }
    pub fn knows_device(&self, d: u32) -> bool {
        self.devices.contains(&d)
    }

    /// Mean and standard deviation of approved purchase amounts, if there are two or more.
    pub fn amount_profile(&self) -> Option<(f64, f64)> {
        (self.amount_n >= 2).then(|| {
            (
                self.amount_mean,
                (self.amount_m2 / f64::from(self.amount_n - 1)).sqrt(),
            )
        })
    }

    /// Wrong security codes within `window_ms` before `now_ms`.
    pub fn wrong_csc_since(&self, now_ms: i64, window_ms: i64) -> usize {
        self.wrong_csc_ms
            .iter()
            .filter(|&&t| t <= now_ms && now_ms - t < window_ms)
            .count()
    }

    /// Records a transaction: inserted in time order, the history cut to 30 days. With
    /// `learn`, its merchant, country and device become known and its amount joins the
    /// profile.
    pub(crate) fn push(&mut self, rec: TxRecord, device: Option<u32>, learn: bool) {
        let pos = self
            .history
            .iter()
            .rposition(|r| r.t <= rec.t)
            .map_or(0, |p| p + 1);
        self.history.insert(pos, rec);
        let newest = self.history.back().map_or(rec.t, |r| r.t);
        while self
            .history
            .front()
            .is_some_and(|r| newest - r.t >= HISTORY_S)
        {
            self.history.pop_front();
        }
        if self.history.capacity() > 2 * self.history.len() + 8 {
            self.history.shrink_to_fit();
        }
        if !learn {
            return;
        }
        remember(&mut self.merchants, rec.merchant, MAX_MERCHANTS);
        remember(&mut self.countries, rec.country, MAX_COUNTRIES);
        if let Some(d) = device {
            remember(&mut self.devices, d, MAX_DEVICES);
        }
        if rec.flags & flags::APPROVED != 0 && rec.flags & flags::REFUND == 0 {
            self.amount_n = self.amount_n.saturating_add(1);
            let x = f64::from(rec.amount);
            let d = x - self.amount_mean;
            self.amount_mean += d / f64::from(self.amount_n);
            self.amount_m2 += d * (x - self.amount_mean);
        }
    }

    /// Takes back a transaction [`CardState::push`] recorded (a reversal): the record leaves
    /// the history, so that it no longer counts in any window, and an approved purchase
    /// leaves the amount profile. What the card's use showed (the merchants, countries and
    /// devices seen) stays. Returns false when the record is no longer in the history (older
    /// than 30 days), which leaves the state as it is.
    pub(crate) fn unpush(&mut self, rec: TxRecord) -> bool {
        let Some(pos) = self.history.iter().rposition(|r| *r == rec) else {
            return false;
        };
        self.history.remove(pos);
        if rec.flags & flags::APPROVED != 0 && rec.flags & flags::REFUND == 0 && self.amount_n > 0 {
            // Welford's update run backwards.
            let x = f64::from(rec.amount);
            if self.amount_n == 1 {
                (self.amount_n, self.amount_mean, self.amount_m2) = (0, 0.0, 0.0);
            } else {
                let n = f64::from(self.amount_n);
                let mean_before = (n * self.amount_mean - x) / (n - 1.0);
                self.amount_m2 =
                    (self.amount_m2 - (x - mean_before) * (x - self.amount_mean)).max(0.0);
                self.amount_mean = mean_before;
                self.amount_n -= 1;
            }
        }
        true
    }

    /// Whether the cardholder confirmed this purchase (merchant, amount) and the release
    /// holds at `now_ms`.
    pub fn released_for(&self, merchant: u32, amount: u32, now_ms: i64) -> Option<usize> {
        self.released
            .iter()
            .position(|r| r.merchant == merchant && r.amount == amount && now_ms <= r.until_ms)
    }

    /// Remembers a confirmed purchase (the oldest goes when there are too many).
    pub(crate) fn release(&mut self, r: Release) {
        self.released
            .retain(|x| x.until_ms >= r.until_ms - 86_400_000);
        if self.released.len() >= MAX_RELEASES {
            self.released.remove(0);
        }
        self.released.push(r);
    }

    /// Heap bytes held by this card's state (capacities, not lengths).
    pub fn heap_bytes(&self) -> usize {
        self.history.capacity() * std::mem::size_of::<TxRecord>()
            + self.merchants.capacity() * 4
            + self.countries.capacity() * 2
            + self.devices.capacity() * 4
            + self.wrong_csc_ms.capacity() * 8
            + self.released.capacity() * std::mem::size_of::<Release>()
    }
}

/// The capacity of a vector, kept by its copy.
pub(crate) fn clone_vec<T: Clone>(v: &[T], capacity: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(v);
    out
}

/// A copy with the same capacities, so that a card copied when a snapshot holds its shard
/// takes the memory the original took (and the engine's memory count stays exact).
impl Clone for CardState {
    fn clone(&self) -> Self {
        let mut history = VecDeque::with_capacity(self.history.capacity());
        history.extend(self.history.iter().copied());
        CardState {
            history,
            merchants: clone_vec(&self.merchants, self.merchants.capacity()),
            countries: clone_vec(&self.countries, self.countries.capacity()),
            devices: clone_vec(&self.devices, self.devices.capacity()),
            amount_n: self.amount_n,
            amount_mean: self.amount_mean,
            amount_m2: self.amount_m2,
            last_ms: self.last_ms,
            last_fix: self.last_fix,
            wrong_pin_streak: self.wrong_pin_streak,
            pin_locked_ms: self.pin_locked_ms,
            wrong_csc_ms: clone_vec(&self.wrong_csc_ms, self.wrong_csc_ms.capacity()),
            fraud_label_ms: self.fraud_label_ms,
            fraud_labels: self.fraud_labels,
            released: clone_vec(&self.released, self.released.capacity()),
            blocked_ms: self.blocked_ms,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t_ms: i64, amount: u32, merchant: u32, country: u16, approved: bool) -> TxRecord {
        TxRecord {
            t: secs(t_ms),
            amount,
            merchant,
            country,
            flags: if approved { flags::APPROVED } else { 0 },
        }
    }

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn windows_are_exact_at_their_edges() {
        let mut c = CardState::default();
        // 5 minutes minus one second ago, exactly 5 minutes ago, 2 hours, 3 days, 31 days.
        for (ago_s, amt) in [
            (299, 10),
            (300, 20),
            (7200, 40),
            (3 * 86400, 80),
            (31 * 86400, 160),
        ] {
            c.push(rec(T0 - ago_s * 1000, amt, amt, 1, true), None, true);
        }
        // The 31-day-old record is already gone: the newest is 299 s old, and 31 days > 30.
        assert_eq!(c.history.len(), 4);
        let w = c.windows(T0);
        assert_eq!(w.count, [1, 2, 3, 4, 4]);
        assert_eq!(w.sum, [10, 30, 70, 150, 150]);
        assert_eq!(w.distinct_merchants_30d, 4);
        // A transaction after `now` does not count.
        c.push(rec(T0 + 1000, 5, 1, 1, true), None, true);
        assert_eq!(c.windows(T0).count[0], 1);
    }

    #[test]
    fn out_of_order_records_are_kept_sorted() {
        let mut c = CardState::default();
        c.push(rec(T0, 1, 1, 1, true), None, true);
        c.push(rec(T0 - 60_000, 2, 2, 1, true), None, true);
        c.push(rec(T0 + 60_000, 3, 3, 1, false), None, true);
        let ts: Vec<u32> = c.history.iter().map(|r| r.t).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]));
        let w = c.windows(T0 + 60_000);
        assert_eq!(w.count[0], 3);
        assert_eq!(w.sum[0], 3, "declined amounts are not summed");
        assert_eq!(w.declined_24h, 1);
    }

    #[test]
    fn amount_profile_is_welford() {
        let mut c = CardState::default();
        for (i, a) in [100u32, 200, 300, 400].iter().enumerate() {
            c.push(rec(T0 + i as i64 * 1000, *a, 1, 1, true), None, true);
        }
        let (m, sd) = c.amount_profile().unwrap();
        assert!((m - 250.0).abs() < 1e-9);
        assert!((sd - 129.099_444_873_580_56).abs() < 1e-9);
    }

    #[test]
    fn unpush_takes_a_transaction_back() {
        let mut c = CardState::default();
        for (i, a) in [100u32, 200, 300].iter().enumerate() {
            c.push(rec(T0 + i as i64 * 1000, *a, 1, 1, true), None, true);
        }
        let before = (c.windows(T0 + 10_000), c.amount_profile().unwrap());
        let extra = rec(T0 + 5_000, 9_000, 7, 2, true);
        c.push(extra, Some(3), true);
        assert_ne!(c.windows(T0 + 10_000), before.0);
        assert!(c.unpush(extra));
        assert_eq!(c.windows(T0 + 10_000), before.0);
        let (m, sd) = c.amount_profile().unwrap();
        assert!((m - before.1.0).abs() < 1e-9 && (sd - before.1.1).abs() < 1e-9);
        assert!(c.knows_merchant(7), "the merchant was seen all the same");
        assert!(!c.unpush(extra), "taken back once");
        // The last approved purchase taken back empties the profile.
        let mut c = CardState::default();
        let one = rec(T0, 500, 1, 1, true);
        c.push(one, None, true);
        assert!(c.unpush(one));
        assert_eq!((c.amount_n, c.history.len()), (0, 0));
        assert!(c.amount_profile().is_none());
    }

    #[test]
    fn seen_sets_are_bounded() {
        let mut c = CardState::default();
        for i in 0..100u32 {
            c.push(
                rec(T0 + i64::from(i) * 1000, 1, i, (i % 20) as u16, true),
                Some(i),
                true,
            );
        }
        assert_eq!(c.merchants.len(), MAX_MERCHANTS);
        assert_eq!(c.countries.len(), MAX_COUNTRIES);
        assert_eq!(c.devices.len(), MAX_DEVICES);
        assert!(c.knows_merchant(99) && !c.knows_merchant(0));
    }
}
