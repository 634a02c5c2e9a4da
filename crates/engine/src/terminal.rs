//! Per merchant-terminal state: transactions and labelled frauds per day, for counts over the
//! last 1, 7 and 30 days and fraud rates over 1, 7 and 30 days that end a label delay ago
//! (the handbook's "risk shifted back by the delay": recent days have few labels yet, so
//! their rate would read low). A fraud counts only once its label has arrived.

use serde::{Deserialize, Serialize};

/// Days kept: the longest window plus the longest label delay allowed, plus today.
const DAYS: usize = 45;
/// Longest label delay the fraud-rate windows may be shifted by, in days.
pub const MAX_RISK_DELAY_DAYS: u32 = (DAYS - 31) as u32;
pub const TERMINAL_WINDOWS_D: [i64; 3] = [1, 7, 30];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DayBucket {
    /// Days since the Unix epoch this bucket holds (buckets are reused modulo `DAYS`).
    day: i64,
    count: u32,
    frauds: u32,
}

/// A slot holding no day yet.
const EMPTY_BUCKET: DayBucket = DayBucket {
    day: i64::MIN,
    count: 0,
    frauds: 0,
};

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalState {
    buckets: Vec<DayBucket>,
}

/// A terminal's transactions over the last 1, 7 and 30 days, and its labelled frauds and
/// transactions over the 1, 7 and 30 days that end a label delay ago.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TerminalStats {
    pub count: [u32; 3],
    pub delayed_count: [u32; 3],
    pub frauds: [u32; 3],
    /// Days from the earliest and the latest day with a labelled fraud (of the days kept that
    /// end a label delay ago) to today: how long a terminal has been known compromised, and
    /// whether it still is (a skimmer stays for weeks).
    pub first_fraud_age: Option<u16>,
    pub last_fraud_age: Option<u16>,
    /// Transactions and labelled frauds from the earliest fraud's day to the delay's end.
    pub since_first_fraud: (u32, u32),
}

impl TerminalStats {
    /// Labelled frauds per transaction over the delayed window `i`.
    pub fn fraud_rate(&self, i: usize) -> f64 {
        if self.delayed_count[i] == 0 {
            0.0
        } else {
            f64::from(self.frauds[i]) / f64::from(self.delayed_count[i])
        }
    }

    /// Labelled frauds per transaction since the earliest labelled fraud (0 without one).
    pub fn fraud_rate_since_first_fraud(&self) -> f64 {
        let (count, frauds) = self.since_first_fraud;
        if count == 0 {
            0.0
        } else {
            f64::from(frauds) / f64::from(count)
        }
    }
}

impl TerminalState {
    /// A state restored from a snapshot written with another number of days kept gets its
    /// buckets laid out again (each day in its slot; the oldest dropped if they collide).
    fn relayout(&mut self) {
        if self.buckets.is_empty() || self.buckets.len() == DAYS {
            return;
        }
        let mut old = std::mem::take(&mut self.buckets);
        old.sort_by_key(|b| b.day);
        self.buckets = vec![EMPTY_BUCKET; DAYS];
        for b in old.into_iter().filter(|b| b.day != i64::MIN) {
            self.buckets[b.day.rem_euclid(DAYS as i64) as usize] = b;
        }
    }

    fn bucket(&mut self, day: i64) -> &mut DayBucket {
        self.relayout();
        if self.buckets.is_empty() {
            self.buckets = vec![EMPTY_BUCKET; DAYS];
        }
        let b = &mut self.buckets[day.rem_euclid(DAYS as i64) as usize];
        if b.day != day {
            if b.day > day {
                // Older than the days kept: a scratch bucket that nothing reads.
                return b;
            }
            *b = DayBucket {
                day,
                count: 0,
                frauds: 0,
            };
        }
        b
    }

    pub(crate) fn record_tx(&mut self, day: i64) {
        let b = self.bucket(day);
        if b.day == day {
            b.count += 1;
        }
    }

    /// Takes back a transaction of day `day` (a reversal).
    pub(crate) fn untally_tx(&mut self, day: i64) {
        self.relayout();
        if self.buckets.is_empty() {
            return;
        }
        let b = &mut self.buckets[day.rem_euclid(DAYS as i64) as usize];
        if b.day == day {
            b.count = b.count.saturating_sub(1);
        }
    }

    /// A fraud label (or its withdrawal, `delta` = -1) for a transaction of day `day`.
    pub(crate) fn record_label(&mut self, day: i64, delta: i32) {
        self.relayout();
        if self.buckets.is_empty() {
            return;
        }
        let b = &mut self.buckets[day.rem_euclid(DAYS as i64) as usize];
        if b.day == day {
            b.frauds = b.frauds.saturating_add_signed(delta);
        }
    }

    /// Statistics on day `today`: counts over the windows ending today (inclusive), fraud
    /// rates over the windows ending `delay_days` earlier (at most `MAX_RISK_DELAY_DAYS`).
    pub fn stats(&self, today: i64, delay_days: u32) -> TerminalStats {
        let delay = i64::from(delay_days.min(MAX_RISK_DELAY_DAYS));
        let mut s = TerminalStats::default();
        for b in &self.buckets {
            let age = today.saturating_sub(b.day);
            if !(0..DAYS as i64).contains(&age) {
                continue;
            }
            for (i, &w) in TERMINAL_WINDOWS_D.iter().enumerate() {
                if age < w {
                    s.count[i] += b.count;
                }
                if (delay..delay + w).contains(&age) {
                    s.delayed_count[i] += b.count;
                    s.frauds[i] += b.frauds;
                }
            }
            if age >= delay && b.frauds > 0 {
                let age = age as u16;
                s.first_fraud_age = Some(s.first_fraud_age.map_or(age, |a| a.max(age)));
                s.last_fraud_age = Some(s.last_fraud_age.map_or(age, |a| a.min(age)));
            }
        }
        if let Some(first) = s.first_fraud_age {
            let first = i64::from(first);
            for b in &self.buckets {
                let age = today.saturating_sub(b.day);
                if (delay..=first).contains(&age) {
                    s.since_first_fraud.0 += b.count;
                    s.since_first_fraud.1 += b.frauds;
                }
            }
        }
        s
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<DayBucket>()
    }
}

/// A copy with the same capacity (see `CardState`'s).
impl Clone for TerminalState {
    fn clone(&self) -> Self {
        TerminalState {
            buckets: crate::card::clone_vec(&self.buckets, self.buckets.capacity()),
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// A terminal compromised on day d-20 (every transaction a fraud from then on, two a
    /// day), labels 7 days late: on day d it is known compromised for 20 days, the latest
    /// known fraud 7 days ago, every known transaction since the first fraud a fraud.
    #[test]
    fn how_long_a_terminal_has_been_known_compromised() {
        let mut t = TerminalState::default();
        let d = 20_000;
        for day in d - 30..=d {
            t.record_tx(day);
            t.record_tx(day);
            if day >= d - 20 && day <= d - 7 {
                t.record_label(day, 2);
            }
        }
        let s = t.stats(d, 7);
        assert_eq!((s.first_fraud_age, s.last_fraud_age), (Some(20), Some(7)));
        assert_eq!(s.since_first_fraud, (28, 28));
        assert!((s.fraud_rate_since_first_fraud() - 1.0).abs() < 1e-12);
        // With labels known up to 12 days ago only, the latest known fraud is 12 days old.
        let s = t.stats(d, 12);
        assert_eq!((s.first_fraud_age, s.last_fraud_age), (Some(20), Some(12)));
        assert_eq!(
            TerminalState::default().stats(d, 7),
            TerminalStats::default()
        );
    }

    #[test]
    fn a_state_kept_with_fewer_days_is_laid_out_again() {
        let d = 20_000i64;
        let mut t = TerminalState {
            buckets: (0..31)
                .map(|i| DayBucket {
                    day: if i < 3 { d - 2 + i } else { i64::MIN },
                    count: 5,
                    frauds: 1,
                })
                .collect(),
        };
        t.record_label(d - 1, 1);
        assert_eq!(t.buckets.len(), DAYS);
        let s = t.stats(d, 0);
        assert_eq!((s.count[1], s.frauds[1]), (15, 4));
    }

    #[test]
    fn counts_and_labelled_frauds_by_day() {
        let mut t = TerminalState::default();
        let d = 20_000;
        for day in [d - 40, d - 20, d - 3, d, d] {
            t.record_tx(day);
        }
        t.record_label(d - 3, 1);
        t.record_label(d - 60, 1); // too old: ignored
        let s = t.stats(d, 0);
        assert_eq!(s.count, [2, 3, 4]);
        assert_eq!(s.delayed_count, [2, 3, 4]);
        assert_eq!(s.frauds, [0, 1, 1]);
        assert!((s.fraud_rate(1) - 1.0 / 3.0).abs() < 1e-12);
        // Shifted by 3 days: the windows end on day d-3.
        let s = t.stats(d, 3);
        assert_eq!(s.count, [2, 3, 4]);
        assert_eq!(s.delayed_count, [1, 1, 2]);
        assert_eq!(s.frauds, [1, 1, 1]);
        assert!((s.fraud_rate(2) - 0.5).abs() < 1e-12);
        assert_eq!((s.first_fraud_age, s.last_fraud_age), (Some(3), Some(3)));
        // 14 days back: d-20 is in the 7 days that end then, d-20 and d-40 in the 30.
        assert_eq!(t.stats(d, 14).delayed_count, [0, 1, 2]);
        t.record_label(d - 3, -1);
        assert_eq!(t.stats(d, 0).frauds, [0, 0, 0]);
        assert_eq!(t.stats(d, 0).first_fraud_age, None);
        // A late transaction for a day long gone does not disturb the kept days.
        t.record_tx(d - 100);
        assert_eq!(t.stats(d, 0).count, [2, 3, 4]);
    }
}
