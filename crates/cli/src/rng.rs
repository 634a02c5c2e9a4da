//! Card numbers for the demo and the benchmark traffic, drawn from cardguard's one
//! deterministic generator (`cardguard_core::rng`): the same seed gives the same traffic.

pub use cardguard_core::rng::Rng;

/// A card number with the given prefix and length and a valid Luhn digit.
pub fn luhn_pan(rng: &mut Rng, prefix: &str, len: usize) -> String {
    let mut body: String = prefix.to_owned();
    while body.len() < len - 1 {
        body.push(char::from(b'0' + rng.below(10) as u8));
    }
    let d = cardguard_cardsec::luhn::check_digit(&body).unwrap_or(0);
    body.push(char::from(b'0' + d));
    body
}
