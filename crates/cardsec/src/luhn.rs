//! The Luhn (mod 10) check digit of ISO/IEC 7812.

/// Whether a string of digits passes the Luhn check. Non-digits fail.
pub fn is_valid(digits: &str) -> bool {
    let b = digits.as_bytes();
    if b.len() < 2 || !b.iter().all(u8::is_ascii_digit) {
        return false;
    }
    sum(b, false).is_multiple_of(10)
}

/// The check digit to append to `body` (digits only) to make it pass.
pub fn check_digit(body: &str) -> Option<u8> {
    let b = body.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(((10 - sum(b, true) % 10) % 10) as u8)
}

/// Luhn sum, doubling every second digit from the right; `appending` says the check digit
/// is still to come, which shifts the doubling by one.
fn sum(b: &[u8], appending: bool) -> u32 {
    b.iter()
        .rev()
        .enumerate()
        .map(|(i, &c)| {
            let d = u32::from(c - b'0');
            if (i % 2 == 1) != appending {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                d
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_numbers() {
        assert!(is_valid("4123456789012349"));
        assert!(is_valid("378282246310005"));
        assert!(is_valid("79927398713"));
        assert!(!is_valid("79927398710"));
        assert!(!is_valid("4123456789012345"));
        assert!(!is_valid("41234a"));
        assert_eq!(check_digit("7992739871"), Some(3));
    }

    proptest! {
        #[test]
        fn appending_the_check_digit_validates(body in "[0-9]{1,18}") {
            let d = check_digit(&body).unwrap();
            let full = format!("{body}{d}");
            prop_assert!(is_valid(&full));
            let wrong = format!("{body}{}", (d + 1) % 10);
            prop_assert!(!is_valid(&wrong));
        }
    }
}
