//! Time: a millisecond timestamp and the `Clock` that the engine reads instead of the system.

use crate::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};

/// Milliseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

pub const MINUTE_MS: i64 = 60_000;
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
pub const DAY_MS: i64 = 24 * HOUR_MS;

impl Timestamp {
    /// Parses an RFC 3339 date-time with any offset (`2026-11-21T10:00:00-05:00`).
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, ParseError> {
        Self::parse_rfc3339_with_offset(s).map(|(t, _)| t)
    }

    /// Parses an RFC 3339 date-time and returns the offset it was written in, in minutes
    /// east of UTC. Years outside 2000-2099 are refused.
    pub fn parse_rfc3339_with_offset(s: &str) -> Result<(Timestamp, i16), ParseError> {
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .map_err(|_| ParseError::Format("an RFC 3339 date-time"))?;
        if !(2000..=2099).contains(&t.to_offset(time::UtcOffset::UTC).year()) {
            return Err(ParseError::Range("year must be 2000 to 2099"));
        }
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        let ts = i64::try_from(ms).map_err(|_| ParseError::Range("date-time out of range"))?;
        Ok((Timestamp(ts), t.offset().whole_minutes()))
    }

    /// RFC 3339 in UTC with milliseconds.
    pub fn to_rfc3339(self) -> String {
        let (y, m, d) = self.ymd();
        let ms_of_day = self.0.rem_euclid(DAY_MS);
        let (h, rest) = (ms_of_day / HOUR_MS, ms_of_day % HOUR_MS);
        let (min, rest) = (rest / MINUTE_MS, rest % MINUTE_MS);
        let (s, ms) = (rest / 1000, rest % 1000);
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{ms:03}Z")
    }

    /// RFC 3339 at a UTC offset given in minutes (`+09:00` for 540), without milliseconds.
    pub fn to_rfc3339_at_offset(self, offset_min: i16) -> String {
        let local = self.plus_ms(i64::from(offset_min) * MINUTE_MS);
        let base = local.to_rfc3339();
        let sign = if offset_min < 0 { '-' } else { '+' };
        let o = offset_min.unsigned_abs();
        format!("{}{sign}{:02}:{:02}", &base[..19], o / 60, o % 60)
    }

    /// The UTC calendar date (proleptic Gregorian).
    pub fn ymd(self) -> (i32, u8, u8) {
        civil_from_days(self.0.div_euclid(DAY_MS))
    }

    /// Whole days since the epoch (UTC).
    pub fn day(self) -> i64 {
        self.0.div_euclid(DAY_MS)
    }

    /// Hour of the day in UTC, 0-23.
    pub fn hour(self) -> u8 {
        (self.0.rem_euclid(DAY_MS) / HOUR_MS) as u8
    }

    /// Day of the week, 0 = Monday … 6 = Sunday (UTC).
    pub fn weekday(self) -> u8 {
        // 1970-01-01 was a Thursday.
        ((self.day() + 3).rem_euclid(7)) as u8
    }

    pub fn plus_ms(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// Where time comes from. The engine never reads the system clock itself, so a replay with
/// a fixed clock reproduces a decision.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }
}

/// A clock that says what it was told: for tests and replays.
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    pub fn new(at: Timestamp) -> FixedClock {
        FixedClock(AtomicI64::new(at.0))
    }
    pub fn set(&self, at: Timestamp) {
        self.0.store(at.0, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offsets_and_formats_utc() {
        let t = Timestamp::parse_rfc3339("2026-11-21T10:00:00-05:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-11-21T15:00:00.000Z");
        assert_eq!(t.ymd(), (2026, 11, 21));
        assert_eq!(t.hour(), 15);
        assert_eq!(t.weekday(), 5); // a Saturday
        assert!(Timestamp::parse_rfc3339("2026-11-21 10:00").is_err());
        assert!(Timestamp::parse_rfc3339("1999-12-31T23:59:59Z").is_err());
        let (_, off) = Timestamp::parse_rfc3339_with_offset("2026-11-21T10:00:00+09:00").unwrap();
        assert_eq!(off, 540);
        let t = Timestamp::parse_rfc3339("2026-11-21T01:30:00Z").unwrap();
        assert_eq!(t.to_rfc3339_at_offset(540), "2026-11-21T10:30:00+09:00");
        assert_eq!(t.to_rfc3339_at_offset(-300), "2026-11-20T20:30:00-05:00");
        let (back, off) =
            Timestamp::parse_rfc3339_with_offset(&t.to_rfc3339_at_offset(-300)).unwrap();
        assert_eq!((back, off), (t, -300));
    }

    #[test]
    fn civil_dates_match_the_time_crate() {
        for day in (-800_000i64..800_000).step_by(997) {
            let t = Timestamp(day * DAY_MS);
            let odt = time::OffsetDateTime::from_unix_timestamp(day * 86_400).unwrap();
            assert_eq!(
                t.ymd(),
                (odt.year(), u8::from(odt.month()), odt.day()),
                "day {day}"
            );
        }
    }
}
