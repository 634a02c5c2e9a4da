//! Card identity: the primary account number (never displayed), its token, last four digits
//! and the expiry date.

use crate::{ParseError, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A primary account number: 12 to 19 ASCII digits. It has no `Display`, its `Debug` shows
/// only the first six and last four digits, and the digits are reachable only through
/// [`Pan::expose`], so every use of the clear number is visible in the code.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pan(String);

impl Pan {
    /// Parses a PAN of 12 to 19 digits. The Luhn check and the brand's lengths are card data
    /// checks (the `cardsec` crate), not syntax, so they are not made here.
    pub fn parse(s: &str) -> Result<Pan, ParseError> {
        if s.is_empty() {
            return Err(ParseError::Empty);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::NotDigits);
        }
        if !(12..=19).contains(&s.len()) {
            return Err(ParseError::Length { min: 12, max: 19 });
        }
        Ok(Pan(s.to_owned()))
    }

    /// The clear digits. Callers must not log, store or return them.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn last4(&self) -> Last4 {
        let d = self.0.as_bytes();
        let n = d.len();
        Last4([d[n - 4], d[n - 3], d[n - 2], d[n - 1]])
    }

    /// First six and last four digits with the middle masked, as card schemes allow printing.
    pub fn masked(&self) -> String {
        let n = self.0.len();
        let mut s = String::with_capacity(n);
        s.push_str(&self.0[..6]);
        for _ in 6..n - 4 {
            s.push('*');
        }
        s.push_str(&self.0[n - 4..]);
        s
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pan({})", self.masked())
    }
}

/// The last four digits of a PAN, the only part of it that events and responses carry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Last4([u8; 4]);

impl Last4 {
    pub fn parse(s: &str) -> Result<Last4, ParseError> {
        let b = s.as_bytes();
        if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::Format("4 digits"));
        }
        Ok(Last4([b[0], b[1], b[2], b[3]]))
    }
    pub fn as_str(&self) -> &str {
        // The bytes are ASCII digits by construction.
        std::str::from_utf8(&self.0).unwrap_or("????")
    }
}

impl fmt::Display for Last4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for Last4 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Last4({})", self.as_str())
    }
}
impl Serialize for Last4 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for Last4 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::parse_str(d, Last4::parse)
    }
}

/// A card token: the first 16 bytes of a keyed HMAC-SHA-256 of the PAN, written as 32
/// lowercase hex digits. It identifies a card everywhere the PAN must not appear.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CardToken(pub [u8; 16]);

impl CardToken {
    pub fn parse(s: &str) -> Result<CardToken, ParseError> {
        let b = s.as_bytes();
        if b.len() != 32 {
            return Err(ParseError::Format("32 hex digits"));
        }
        let mut out = [0u8; 16];
        for (i, pair) in b.chunks(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or(ParseError::Format("32 hex digits"))?;
            let lo = hex_val(pair[1]).ok_or(ParseError::Format("32 hex digits"))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(CardToken(out))
    }
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl CardToken {
    /// The token as 32 lower-case hex digits (its `Display`), without allocating.
    pub fn to_hex(&self) -> [u8; 32] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[usize::from(b >> 4)];
            out[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        out
    }
}

impl fmt::Display for CardToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hex digits are ASCII.
        f.write_str(std::str::from_utf8(&self.to_hex()).map_err(|_| fmt::Error)?)
    }
}
impl fmt::Debug for CardToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CardToken({self})")
    }
}
impl Serialize for CardToken {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for CardToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::parse_str(d, CardToken::parse)
    }
}

/// A card's expiry month. The card is valid through the last day of that month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expiry {
    pub year: u16,
    pub month: u8,
}

impl Expiry {
    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Result<Expiry, ParseError> {
        let b = s.as_bytes();
        const FORM: ParseError = ParseError::Format("a month written YYYY-MM");
        if b.len() != 7 || b[4] != b'-' {
            return Err(FORM);
        }
        let digits = |r: std::ops::Range<usize>| -> Result<u16, ParseError> {
            b[r].iter().try_fold(0u16, |acc, &c| {
                if c.is_ascii_digit() {
                    Ok(acc * 10 + u16::from(c - b'0'))
                } else {
                    Err(FORM)
                }
            })
        };
        let year = digits(0..4)?;
        let month = digits(5..7)?;
        if !(2000..=2099).contains(&year) {
            return Err(ParseError::Range("year must be 2000 to 2099"));
        }
        if !(1..=12).contains(&month) {
            return Err(ParseError::Range("month must be 01 to 12"));
        }
        Ok(Expiry {
            year,
            month: month as u8,
        })
    }

    /// `YYMM`, as card verification values and track data encode the expiry.
    pub fn yymm(&self) -> String {
        format!("{:02}{:02}", self.year % 100, self.month)
    }

    /// Whether the card has expired at `at` (UTC): it is valid through the month's last day.
    pub fn is_expired_at(&self, at: Timestamp) -> bool {
        let (y, m, _) = at.ymd();
        (y, m) > (i32::from(self.year), self.month)
    }
}

impl fmt::Display for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pan_debug_is_masked_and_parse_rejects_bad_input() {
        let pan = Pan::parse("4123456789012349").unwrap();
        assert_eq!(format!("{pan:?}"), "Pan(412345******2349)");
        assert_eq!(pan.last4().as_str(), "2349");
        assert_eq!(Pan::parse(""), Err(ParseError::Empty));
        assert_eq!(Pan::parse("4123 4567"), Err(ParseError::NotDigits));
        assert_eq!(
            Pan::parse("41234567890"),
            Err(ParseError::Length { min: 12, max: 19 })
        );
    }

    #[test]
    fn expiry_is_valid_through_the_last_day_of_the_month() {
        let e = Expiry::parse("2026-11").unwrap();
        assert_eq!(e.yymm(), "2611");
        let last = Timestamp::parse_rfc3339("2026-11-30T23:59:59Z").unwrap();
        let next = Timestamp::parse_rfc3339("2026-12-01T00:00:00Z").unwrap();
        assert!(!e.is_expired_at(last));
        assert!(e.is_expired_at(next));
        assert!(Expiry::parse("2026-13").is_err());
        assert!(Expiry::parse("26-11").is_err());
        assert!(Expiry::parse("2026/11").is_err());
    }

    #[test]
    fn token_round_trips_through_hex() {
        let t = CardToken([0xab; 16]);
        assert_eq!(CardToken::parse(&t.to_string()).unwrap(), t);
        assert!(CardToken::parse("zz").is_err());
    }
}
