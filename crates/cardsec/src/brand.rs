//! Card brands by IIN range, their PAN lengths and security-code lengths.

use crate::{CardDataError, luhn};
use cardguard_core::Pan;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Brand {
    AmericanExpress,
    Visa,
    Mastercard,
    Jcb,
    DinersClub,
    Discover,
    UnionPay,
    /// An IIN outside the ranges above (a private-label card, say).
    Other,
}

impl Brand {
    /// The brand of a PAN by its leading digits. UnionPay's 622126-622925 is matched before
    /// Discover, which accepts those cards but does not issue them.
    pub fn identify(pan: &str) -> Brand {
        let p = |n: usize| -> u32 { pan.get(..n).and_then(|s| s.parse().ok()).unwrap_or(0) };
        match (p(1), p(2), p(3), p(4), p(6)) {
            (_, 34 | 37, ..) => Brand::AmericanExpress,
            (4, ..) => Brand::Visa,
            (_, 51..=55, ..) => Brand::Mastercard,
            (_, _, _, 2221..=2720, _) => Brand::Mastercard,
            (_, _, _, 3528..=3589, _) => Brand::Jcb,
            (_, _, 300..=305, ..) | (_, _, _, 3095, _) | (_, 36 | 38 | 39, ..) => Brand::DinersClub,
            (.., 622126..=622925) => Brand::UnionPay,
            (_, _, _, 6011, _) | (_, _, 644..=649, ..) | (_, 65, ..) => Brand::Discover,
            (_, 62 | 81, ..) => Brand::UnionPay,
            _ => Brand::Other,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Brand::AmericanExpress => "American Express",
            Brand::Visa => "Visa",
            Brand::Mastercard => "Mastercard",
            Brand::Jcb => "JCB",
            Brand::DinersClub => "Diners Club",
            Brand::Discover => "Discover",
            Brand::UnionPay => "UnionPay",
            Brand::Other => "other",
        }
    }

    /// PAN lengths the brand issues.
    pub fn lengths(&self) -> std::ops::RangeInclusive<usize> {
        match self {
            Brand::AmericanExpress => 15..=15,
            Brand::Visa => 13..=19,
            Brand::Mastercard => 16..=16,
            Brand::Jcb => 16..=19,
            Brand::DinersClub => 14..=19,
            Brand::Discover | Brand::UnionPay => 16..=19,
            Brand::Other => 12..=19,
        }
    }

    /// Digits of the card security code: the 4-digit CID on the front of an American Express
    /// card, 3 digits on the back of the others.
    pub fn csc_len(&self) -> usize {
        match self {
            Brand::AmericanExpress => 4,
            _ => 3,
        }
    }
}

impl fmt::Display for Brand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Checks a PAN as an issuer would before anything else: Luhn, then the brand's length.
/// Visa issues 13, 16 and 19 digits only.
pub fn check_pan(pan: &Pan) -> Result<Brand, CardDataError> {
    let s = pan.expose();
    if !luhn::is_valid(s) {
        return Err(CardDataError::Luhn);
    }
    let brand = Brand::identify(s);
    let len = s.len();
    let ok = match brand {
        Brand::Visa => matches!(len, 13 | 16 | 19),
        b => b.lengths().contains(&len),
    };
    if !ok {
        return Err(CardDataError::Length {
            brand: brand.name(),
            len,
        });
    }
    Ok(brand)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pan(s: &str) -> Pan {
        Pan::parse(s).unwrap()
    }

    #[test]
    fn brands_by_range() {
        let cases = [
            ("378282246310005", Brand::AmericanExpress),
            ("371449635398431", Brand::AmericanExpress),
            ("4111111111111111", Brand::Visa),
            ("5555555555554444", Brand::Mastercard),
            ("2223003122003222", Brand::Mastercard),
            ("3530111333300000", Brand::Jcb),
            ("3566002020360505", Brand::Jcb),
            ("30569309025904", Brand::DinersClub),
            ("36227206271667", Brand::DinersClub),
            ("6011111111111117", Brand::Discover),
            ("6221260000000000", Brand::UnionPay),
            ("6200000000000005", Brand::UnionPay),
            ("9000000000000000", Brand::Other),
        ];
        for (p, b) in cases {
            assert_eq!(Brand::identify(p), b, "{p}");
        }
        assert_eq!(Brand::identify("2720990000000000"), Brand::Mastercard);
        assert_eq!(Brand::identify("2721000000000000"), Brand::Other);
        assert_eq!(Brand::identify("3527000000000000"), Brand::Other);
    }

    #[test]
    fn check_pan_applies_luhn_then_length() {
        assert_eq!(
            check_pan(&pan("378282246310005")),
            Ok(Brand::AmericanExpress)
        );
        assert_eq!(check_pan(&pan("4123456789012349")), Ok(Brand::Visa));
        assert_eq!(
            check_pan(&pan("4123456789012345")),
            Err(CardDataError::Luhn)
        );
        // A 16-digit number in the American Express range that passes Luhn.
        let body = "371449635398431";
        let d = luhn::check_digit(body).unwrap();
        assert_eq!(
            check_pan(&pan(&format!("{body}{d}"))),
            Err(CardDataError::Length {
                brand: "American Express",
                len: 16
            })
        );
        assert_eq!(Brand::AmericanExpress.csc_len(), 4);
        assert_eq!(Brand::Jcb.csc_len(), 3);
    }
}
