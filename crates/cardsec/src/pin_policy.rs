//! PIN hygiene: what makes a PIN easy to guess for someone who holds the card (or knows the
//! cardholder), so that a new PIN is refused with the reason: one digit repeated or a short
//! block repeated (1111, 1212), a run of consecutive digits (1234, 9876, 7890), one of the
//! most commonly chosen PINs (the DataGenetics analysis of 3.4 million four-digit PINs and
//! the common six-digit ones), the cardholder's birth date (MMDD, DDMM, YYMM, MMYY, the year;
//! YYMMDD, DDMMYY, MMDDYY for six digits), or digits of the cardholder's phone number.
//! The reasons never contain the PIN.

/// Why a PIN is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WeakPin {
    #[error("the PIN repeats a digit or a block of digits")]
    Repeated,
    #[error("the PIN is a run of consecutive digits")]
    Sequential,
    #[error("the PIN is one of the most commonly chosen PINs")]
    Common,
    #[error("the PIN is derived from the cardholder's birth date")]
    BirthDate,
    #[error("the PIN is part of the cardholder's phone number")]
    Phone,
}

/// The most commonly chosen PINs (four digits: the top of the DataGenetics table; six
/// digits: keyboard and repetition patterns).
const COMMON: &[&str] = &[
    "1234", "1111", "0000", "1212", "7777", "1004", "2000", "4444", "2222", "6969", "9999", "3333",
    "5555", "6666", "1122", "1313", "8888", "4321", "2001", "1010", "2580", "0852", "1998", "1999",
    "2468", "1357", "5683", "0007", "123456", "654321", "111111", "000000", "123123", "666666",
    "121212", "112233", "789456", "159753", "147258", "258369",
];

/// A cardholder's birth date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BirthDate {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

impl BirthDate {
    /// Reads `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<BirthDate> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year: u16 = s[0..4].parse().ok()?;
        let month: u8 = s[5..7].parse().ok()?;
        let day: u8 = s[8..10].parse().ok()?;
        ((1900..=2100).contains(&year) && (1..=12).contains(&month) && (1..=31).contains(&day))
            .then_some(BirthDate { year, month, day })
    }

    /// The PINs a birth date gives.
    fn pins(&self) -> Vec<String> {
        let (y4, y2, m, d) = (
            format!("{:04}", self.year),
            format!("{:02}", self.year % 100),
            format!("{:02}", self.month),
            format!("{:02}", self.day),
        );
        vec![
            format!("{m}{d}"),
            format!("{d}{m}"),
            format!("{y2}{m}"),
            format!("{m}{y2}"),
            y4.clone(),
            format!("{y2}{m}{d}"),
            format!("{d}{m}{y2}"),
            format!("{m}{d}{y2}"),
        ]
    }
}

/// Whether a PIN is easy to guess, and why. `pin` must be digits (4 to 12).
pub fn weakness(pin: &str, birth: Option<BirthDate>, phones: &[&str]) -> Option<WeakPin> {
    let d: Vec<u8> = pin.bytes().map(|b| b.wrapping_sub(b'0')).collect();
    let n = d.len();
    // A block repeated: 1111 (block of one), 1212 (two), 123123 (three).
    if (1..=n / 2).any(|k| n.is_multiple_of(k) && (k..n).all(|i| d[i] == d[i - k])) {
        return Some(WeakPin::Repeated);
    }
    let step = |up: bool| (1..n).all(|i| d[i] == (d[i - 1] + if up { 1 } else { 9 }) % 10);
    if step(true) || step(false) {
        return Some(WeakPin::Sequential);
    }
    if COMMON.contains(&pin) {
        return Some(WeakPin::Common);
    }
    if birth.is_some_and(|b| b.pins().iter().any(|p| p == pin)) {
        return Some(WeakPin::BirthDate);
    }
    for phone in phones {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= n && digits.contains(pin) {
            return Some(WeakPin::Phone);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn easy_pins_are_refused_with_their_reason() {
        let birth = BirthDate::parse("1987-03-14");
        let phones = ["+81 90-1234-5678"];
        let cases = [
            ("1111", Some(WeakPin::Repeated)),
            ("1212", Some(WeakPin::Repeated)),
            ("123123", Some(WeakPin::Repeated)),
            ("1234", Some(WeakPin::Sequential)),
            ("9876", Some(WeakPin::Sequential)),
            ("7890", Some(WeakPin::Sequential)),
            ("2580", Some(WeakPin::Common)),
            ("6969", Some(WeakPin::Repeated)),
            ("1004", Some(WeakPin::Common)),
            ("0314", Some(WeakPin::BirthDate)),
            ("1403", Some(WeakPin::BirthDate)),
            ("8703", Some(WeakPin::BirthDate)),
            ("0387", Some(WeakPin::BirthDate)),
            ("1987", Some(WeakPin::BirthDate)),
            ("870314", Some(WeakPin::BirthDate)),
            ("5678", Some(WeakPin::Sequential)),
            ("9012", Some(WeakPin::Sequential)),
            ("0123", Some(WeakPin::Sequential)),
            ("2345", Some(WeakPin::Sequential)),
            ("4567", Some(WeakPin::Sequential)),
            ("3456", Some(WeakPin::Sequential)),
            ("8190", Some(WeakPin::Phone)),
            ("2756", None),
            ("4831", None),
            ("739164", None),
        ];
        for (pin, want) in cases {
            assert_eq!(weakness(pin, birth, &phones), want, "{pin}");
        }
        // Without the cardholder's data, only the general rules.
        assert_eq!(weakness("0314", None, &[]), None);
        assert!(WeakPin::BirthDate.to_string().contains("birth date"));
    }

    #[test]
    fn birth_dates_are_read_strictly() {
        assert_eq!(
            BirthDate::parse("1987-03-14"),
            Some(BirthDate {
                year: 1987,
                month: 3,
                day: 14
            })
        );
        for bad in ["1987-13-01", "1987-3-14", "87-03-14", "", "1987-03-32"] {
            assert_eq!(BirthDate::parse(bad), None, "{bad}");
        }
    }
}
