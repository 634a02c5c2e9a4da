//! Keyed hashes for card security codes checked against a stored value: for brands whose
//! algorithm lives in the issuer's HSM (American Express CID). Only the hash is kept.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// HMAC-SHA-256 of the code, bound to the card by its token so that equal codes on two
/// cards hash apart.
pub fn hash(key: &[u8], card_binding: &[u8], code: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"cardguard-csc-v1\0");
    mac.update(card_binding);
    mac.update(b"\0");
    mac.update(code.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Whether `presented` hashes to `stored`, compared in constant time.
pub fn verify(key: &[u8], card_binding: &[u8], presented: &str, stored: &[u8; 32]) -> bool {
    bool::from(hash(key, card_binding, presented).ct_eq(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_key_card_and_code() {
        let h = hash(b"k", b"card-1", "1234");
        assert!(verify(b"k", b"card-1", "1234", &h));
        assert!(!verify(b"k", b"card-1", "1235", &h));
        assert!(!verify(b"k", b"card-2", "1234", &h));
        assert!(!verify(b"other", b"card-1", "1234", &h));
    }
}
