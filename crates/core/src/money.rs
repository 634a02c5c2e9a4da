//! Money: integer minor units with an ISO 4217 currency. No floats for money.

use crate::ParseError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// ISO 4217 alphabetic code, minor-unit exponent and numeric code of the currencies
/// cardguard accepts.
const CURRENCIES: &[(&str, u8, u16)] = &[
    ("AED", 2, 784),
    ("ARS", 2, 32),
    ("AUD", 2, 36),
    ("BHD", 3, 48),
    ("BRL", 2, 986),
    ("CAD", 2, 124),
    ("CHF", 2, 756),
    ("CLP", 0, 152),
    ("CNY", 2, 156),
    ("COP", 2, 170),
    ("CZK", 2, 203),
    ("DKK", 2, 208),
    ("EGP", 2, 818),
    ("EUR", 2, 978),
    ("GBP", 2, 826),
    ("HKD", 2, 344),
    ("HUF", 2, 348),
    ("IDR", 2, 360),
    ("ILS", 2, 376),
    ("INR", 2, 356),
    ("ISK", 0, 352),
    ("JOD", 3, 400),
    ("JPY", 0, 392),
    ("KRW", 0, 410),
    ("KWD", 3, 414),
    ("MXN", 2, 484),
    ("MYR", 2, 458),
    ("NOK", 2, 578),
    ("NZD", 2, 554),
    ("OMR", 3, 512),
    ("PHP", 2, 608),
    ("PLN", 2, 985),
    ("QAR", 2, 634),
    ("RON", 2, 946),
    ("RUB", 2, 643),
    ("SAR", 2, 682),
    ("SEK", 2, 752),
    ("SGD", 2, 702),
    ("THB", 2, 764),
    ("TND", 3, 788),
    ("TRY", 2, 949),
    ("TWD", 2, 901),
    ("UAH", 2, 980),
    ("USD", 2, 840),
    ("VND", 0, 704),
    ("ZAR", 2, 710),
];

/// An ISO 4217 currency that cardguard knows the minor unit of.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

impl Currency {
    pub const JPY: Currency = Currency {
        code: *b"JPY",
        exponent: 0,
    };
    pub const USD: Currency = Currency {
        code: *b"USD",
        exponent: 2,
    };
    pub const EUR: Currency = Currency {
        code: *b"EUR",
        exponent: 2,
    };

    pub fn parse(s: &str) -> Result<Currency, ParseError> {
        if s.len() != 3 || !s.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(ParseError::Format("an ISO 4217 code of 3 capital letters"));
        }
        CURRENCIES
            .binary_search_by(|(c, _, _)| (*c).cmp(s))
            .map(|i| {
                let b = s.as_bytes();
                Currency {
                    code: [b[0], b[1], b[2]],
                    exponent: CURRENCIES[i].1,
                }
            })
            .map_err(|_| ParseError::Unknown("ISO 4217 currency"))
    }

    /// The currency of an ISO 4217 numeric code (`392` JPY, `840` USD), as ISO 8583's DE49
    /// gives it.
    pub fn from_numeric(s: &str) -> Result<Currency, ParseError> {
        let n: u16 = match s.len() {
            3 if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().unwrap_or(0),
            _ => return Err(ParseError::Format("an ISO 4217 numeric code of 3 digits")),
        };
        CURRENCIES
            .iter()
            .find(|c| c.2 == n)
            .map(|c| Currency {
                code: c.0.as_bytes().try_into().unwrap_or(*b"XXX"),
                exponent: c.1,
            })
            .ok_or(ParseError::Unknown("ISO 4217 currency"))
    }

    /// The ISO 4217 numeric code.
    pub fn numeric(&self) -> u16 {
        CURRENCIES
            .iter()
            .find(|c| c.0.as_bytes() == self.code)
            .map_or(0, |c| c.2)
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Digits after the decimal point: 0 for JPY, 2 for USD, 3 for BHD.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}
impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}
impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::parse_str(d, Currency::parse)
    }
}

/// The largest amount accepted, in minor units: enough for any card transaction in any
/// currency, far from overflow when summed.
pub const MAX_MINOR_UNITS: u64 = 1_000_000_000_000_000;

/// An amount of money: a whole number of minor units of one currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub value: u64,
    pub currency: Currency,
}

impl Money {
    pub fn new(value: u64, currency: Currency) -> Result<Money, ParseError> {
        if value > MAX_MINOR_UNITS {
            return Err(ParseError::Range("amount is too large"));
        }
        Ok(Money { value, currency })
    }

    /// The amount in major units as a float: for features and display only, never for sums
    /// of money.
    pub fn major_f64(&self) -> f64 {
        self.value as f64 / 10f64.powi(i32::from(self.currency.exponent))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = u32::from(self.currency.exponent);
        if e == 0 {
            write!(f, "{} {}", self.value, self.currency)
        } else {
            let p = 10u64.pow(e);
            write!(
                f,
                "{}.{:0w$} {}",
                self.value / p,
                self.value % p,
                self.currency,
                w = e as usize
            )
        }
    }
}
impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_for_binary_search() {
        assert!(CURRENCIES.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn minor_units_follow_the_currency() {
        let jpy = Currency::parse("JPY").unwrap();
        assert_eq!(jpy, Currency::JPY);
        assert_eq!(Currency::from_numeric("392").unwrap(), jpy);
        assert_eq!(Currency::from_numeric("840").unwrap(), Currency::USD);
        assert_eq!(Currency::USD.numeric(), 840);
        assert!(Currency::from_numeric("999").is_err() && Currency::from_numeric("39").is_err());
        assert_eq!(Money::new(12800, jpy).unwrap().to_string(), "12800 JPY");
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(Money::new(1205, usd).unwrap().to_string(), "12.05 USD");
        let bhd = Currency::parse("BHD").unwrap();
        assert_eq!(Money::new(1005, bhd).unwrap().to_string(), "1.005 BHD");
        assert!(Currency::parse("jpy").is_err());
        assert_eq!(
            Currency::parse("XYZ"),
            Err(ParseError::Unknown("ISO 4217 currency"))
        );
        assert!(Money::new(MAX_MINOR_UNITS + 1, usd).is_err());
    }
}
