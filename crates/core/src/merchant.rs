//! The merchant side of an authorization: merchant and terminal ids, MCC, country, place.

use crate::{Location, ParseError};
use serde::{Deserialize, Serialize};
use std::fmt;

/// A merchant category code (ISO 18245): four digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mcc(u16);

impl Mcc {
    pub fn parse(s: &str) -> Result<Mcc, ParseError> {
        let b = s.as_bytes();
        if b.len() != 4 || !b.iter().all(u8::is_ascii_digit) {
            return Err(ParseError::Format("4 digits"));
        }
        Ok(Mcc(b
            .iter()
            .fold(0u16, |a, &c| a * 10 + u16::from(c - b'0'))))
    }
    pub fn code(&self) -> u16 {
        self.0
    }
    /// Categories that card fraud favours: cash and quasi-cash, money transfer, gambling,
    /// digital goods, electronics and jewellery.
    pub fn is_high_risk(&self) -> bool {
        matches!(
            self.0,
            4829 | 6010 | 6011 | 6012 | 6051 | 6540 | 7995 | 5816 | 5732 | 5944 | 5094
        )
    }
}

impl fmt::Display for Mcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}
impl fmt::Debug for Mcc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mcc({:04})", self.0)
    }
}
impl Serialize for Mcc {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
impl<'de> Deserialize<'de> for Mcc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::parse_str(d, Mcc::parse)
    }
}

/// ISO 3166-1 alpha-2 codes, sorted.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// [`COUNTRIES`] as a table: bit `j` of entry `i` is set when the code of the letters `i` and
/// `j` (from A) is assigned. A lookup is one load (a search of the list was 6% of decoding
/// an authorization's event, which names three countries).
const KNOWN: [u32; 26] = {
    let mut t = [0u32; 26];
    let b = COUNTRIES.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        t[(b[i] - b'A') as usize] |= 1 << (b[i + 1] - b'A');
        i += 3;
    }
    t
};

/// An ISO 3166-1 alpha-2 country code.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    pub fn parse(s: &str) -> Result<Country, ParseError> {
        let b = s.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_uppercase) {
            return Err(ParseError::Format(
                "an ISO 3166-1 alpha-2 code of 2 capital letters",
            ));
        }
        if KNOWN[usize::from(b[0] - b'A')] & (1 << (b[1] - b'A')) == 0 {
            return Err(ParseError::Unknown("ISO 3166-1 country"));
        }
        Ok(Country([b[0], b[1]]))
    }
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
    /// The code packed in 16 bits, for compact feature state.
    pub fn as_u16(&self) -> u16 {
        u16::from_be_bytes(self.0)
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl Serialize for Country {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::parse_str(d, Country::parse)
    }
}

/// The merchant and terminal of an authorization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Merchant {
    pub id: String,
    pub terminal_id: String,
    pub name: String,
    pub mcc: Mcc,
    pub country: Country,
    pub city: String,
    /// Where the terminal stands; absent for e-commerce merchants that do not say.
    pub location: Option<Location>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn country_list_is_sorted_and_complete_enough() {
        let codes: Vec<&str> = COUNTRIES.split(' ').collect();
        assert!(codes.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(codes.len(), 249);
        assert_eq!(Country::parse("JP").unwrap().as_str(), "JP");
        assert!(Country::parse("XX").is_err());
        assert!(Country::parse("jp").is_err());
    }

    #[test]
    fn the_table_of_codes_agrees_with_the_list_for_every_pair_of_letters() {
        for a in b'A'..=b'Z' {
            for b in b'A'..=b'Z' {
                let code = String::from_utf8(vec![a, b]).unwrap();
                let listed = COUNTRIES.split(' ').any(|c| c == code);
                assert_eq!(Country::parse(&code).is_ok(), listed, "{code}");
            }
        }
    }

    #[test]
    fn mcc_is_four_digits() {
        assert_eq!(Mcc::parse("5732").unwrap().code(), 5732);
        assert_eq!(Mcc::parse("0742").unwrap().to_string(), "0742");
        assert!(Mcc::parse("573").is_err());
        assert!(Mcc::parse("57a2").is_err());
    }
}
