//! CVV/CVC verification with the 3DES card verification key pair: the algorithm Visa
//! (CVV, CVV2, iCVV), Mastercard (CVC) and JCB (CAV) share.

use crate::digits::{decimalize, pack_hex, to_ascii};
use crate::{CardDataError, TdesKey};
use subtle::ConstantTimeEq;

/// Computes a card verification value of `len` digits (3 in practice) for a PAN, an expiry
/// as `YYMM` and a 3-digit service code (`000` for CVV2, `999` for iCVV).
pub fn generate(
    cvk: &TdesKey,
    pan: &str,
    yymm: &str,
    service_code: &str,
    len: usize,
) -> Result<String, CardDataError> {
    if service_code.len() != 3 || !service_code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardDataError::ServiceCode);
    }
    let mut data = Vec::with_capacity(32);
    data.extend_from_slice(pan.as_bytes());
    data.extend_from_slice(yymm.as_bytes());
    data.extend_from_slice(service_code.as_bytes());
    if data.len() > 32 || !data.iter().all(u8::is_ascii_digit) {
        return Err(CardDataError::PinData("PAN, expiry and service code"));
    }
    data.resize(32, b'0');
    let packed = pack_hex(&data).ok_or(CardDataError::PinData("PAN"))?;
    let mut b1 = [0u8; 8];
    let mut b2 = [0u8; 8];
    b1.copy_from_slice(&packed[..8]);
    b2.copy_from_slice(&packed[8..]);
    let mut x = cvk.encrypt_left(b1);
    for i in 0..8 {
        x[i] ^= b2[i];
    }
    let out = cvk.encrypt(x);
    Ok(to_ascii(&decimalize(&out, len)))
}

/// Whether `presented` is the card's value, compared in constant time.
pub fn verify(
    cvk: &TdesKey,
    pan: &str,
    yymm: &str,
    service_code: &str,
    presented: &str,
) -> Result<bool, CardDataError> {
    let n = presented.len();
    if !(3..=4).contains(&n) || !presented.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CardDataError::CscFormat(3));
    }
    let expected = generate(cvk, pan, yymm, service_code, n)?;
    Ok(bool::from(expected.as_bytes().ct_eq(presented.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cvk() -> TdesKey {
        TdesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap()
    }

    #[test]
    fn published_vectors() {
        assert_eq!(
            generate(&cvk(), "4123456789012345", "8701", "101", 3).unwrap(),
            "561"
        );
        assert_eq!(
            generate(&cvk(), "1234567890123456", "9912", "220", 3).unwrap(),
            "170"
        );
        assert!(verify(&cvk(), "4123456789012345", "8701", "101", "561").unwrap());
        assert!(!verify(&cvk(), "4123456789012345", "8701", "101", "562").unwrap());
        assert!(verify(&cvk(), "4123456789012345", "8701", "101", "5a1").is_err());
        assert_eq!(
            generate(&cvk(), "4123456789012345", "8701", "1x1", 3),
            Err(CardDataError::ServiceCode)
        );
    }
}
