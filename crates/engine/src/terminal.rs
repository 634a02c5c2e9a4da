//! Per merchant-terminal state: transactions and labelled frauds per day, for counts and
//! fraud rates over 1, 7 and 30 days. A fraud counts only once its label has arrived.

use serde::{Deserialize, Serialize};

const DAYS: usize = 31;
pub const TERMINAL_WINDOWS_D: [i64; 3] = [1, 7, 30];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct DayBucket {
    /// Days since the Unix epoch this bucket holds (buckets are reused modulo 31).
    day: i64,
    count: u32,
    frauds: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalState {
    buckets: Vec<DayBucket>,
}

/// Counts and labelled-fraud rates of a terminal's transactions over 1, 7 and 30 days.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TerminalStats {
    pub count: [u32; 3],
    pub frauds: [u32; 3],
}

impl TerminalStats {
    pub fn fraud_rate(&self, i: usize) -> f64 {
        if self.count[i] == 0 {
            0.0
        } else {
            f64::from(self.frauds[i]) / f64::from(self.count[i])
        }
    }
}

impl TerminalState {
    fn bucket(&mut self, day: i64) -> &mut DayBucket {
        if self.buckets.is_empty() {
            self.buckets = vec![
                DayBucket {
                    day: i64::MIN,
                    count: 0,
                    frauds: 0
                };
                DAYS
            ];
        }
        let b = &mut self.buckets[day.rem_euclid(DAYS as i64) as usize];
        if b.day != day {
            if b.day > day {
                // Older than the 31 days kept: a scratch bucket that nothing reads.
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

    /// A fraud label (or its withdrawal, `delta` = -1) for a transaction of day `day`.
    pub(crate) fn record_label(&mut self, day: i64, delta: i32) {
        if self.buckets.is_empty() {
            return;
        }
        let b = &mut self.buckets[day.rem_euclid(DAYS as i64) as usize];
        if b.day == day {
            b.frauds = b.frauds.saturating_add_signed(delta);
        }
    }

    /// Statistics over the windows ending with day `today` (inclusive).
    pub fn stats(&self, today: i64) -> TerminalStats {
        let mut s = TerminalStats::default();
        for b in &self.buckets {
            let age = today.saturating_sub(b.day);
            if !(0..30).contains(&age) {
                continue;
            }
            for (i, &w) in TERMINAL_WINDOWS_D.iter().enumerate() {
                if age < w {
                    s.count[i] += b.count;
                    s.frauds[i] += b.frauds;
                }
            }
        }
        s
    }

    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<DayBucket>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_labelled_frauds_by_day() {
        let mut t = TerminalState::default();
        let d = 20_000;
        for day in [d - 40, d - 20, d - 3, d, d] {
            t.record_tx(day);
        }
        t.record_label(d - 3, 1);
        t.record_label(d - 40, 1); // too old: ignored
        let s = t.stats(d);
        assert_eq!(s.count, [2, 3, 4]);
        assert_eq!(s.frauds, [0, 1, 1]);
        assert!((s.fraud_rate(1) - 1.0 / 3.0).abs() < 1e-12);
        t.record_label(d - 3, -1);
        assert_eq!(t.stats(d).frauds, [0, 0, 0]);
        // A late transaction for a day long gone does not disturb the kept days.
        t.record_tx(d - 100);
        assert_eq!(t.stats(d).count, [2, 3, 4]);
    }
}
