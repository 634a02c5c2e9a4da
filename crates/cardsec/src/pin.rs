//! PIN verification: Visa PVV and IBM 3624 offset.

use crate::digits::{decimalize, digit_values, is_digits, nibbles, pack_hex, to_ascii};
use crate::{CardDataError, TdesKey};
use subtle::ConstantTimeEq;

/// The Visa PIN verification value: 3DES of the transformed security parameter (11 PAN
/// digits left of the check digit, PVKI, the 4-digit PIN), decimalised to 4 digits.
pub fn visa_pvv(pvk: &TdesKey, pvki: u8, pin: &str, pan: &str) -> Result<String, CardDataError> {
    if pvki > 9 {
        return Err(CardDataError::PinData("PVKI must be 0 to 9"));
    }
    if pin.len() != 4 || !is_digits(pin) {
        return Err(CardDataError::PinData("Visa PVV takes a 4-digit PIN"));
    }
    if pan.len() < 12 || !is_digits(pan) {
        return Err(CardDataError::PinData("PAN"));
    }
    let mut tsp = Vec::with_capacity(16);
    tsp.extend_from_slice(&pan.as_bytes()[pan.len() - 12..pan.len() - 1]);
    tsp.push(b'0' + pvki);
    tsp.extend_from_slice(pin.as_bytes());
    let packed = pack_hex(&tsp).ok_or(CardDataError::PinData("PAN"))?;
    let mut block = [0u8; 8];
    block.copy_from_slice(&packed);
    Ok(to_ascii(&decimalize(&pvk.encrypt(block), 4)))
}

pub fn verify_visa_pvv(
    pvk: &TdesKey,
    pvki: u8,
    pin: &str,
    pan: &str,
    pvv: &str,
) -> Result<bool, CardDataError> {
    let expected = visa_pvv(pvk, pvki, pin, pan)?;
    Ok(bool::from(expected.as_bytes().ct_eq(pvv.as_bytes())))
}

/// Parameters of the IBM 3624 method, as the issuer personalised its cards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ibm3624 {
    /// 16 decimal digits that map each hex nibble to a digit.
    pub decimalization_table: String,
    /// Where the validation data starts in the PAN, and how many digits it takes.
    pub pan_offset: usize,
    pub pan_length: usize,
    /// Hex digit that pads the validation data to 16 nibbles.
    pub pad: char,
}

impl Default for Ibm3624 {
    /// The common set-up: table 0123456789012345, the PAN's 12 digits left of the check
    /// digit padded with F is not universal, so the default takes the first 16 PAN digits.
    fn default() -> Self {
        Ibm3624 {
            decimalization_table: "0123456789012345".into(),
            pan_offset: 0,
            pan_length: 16,
            pad: 'F',
        }
    }
}

impl Ibm3624 {
    fn check(&self) -> Result<(), CardDataError> {
        if self.decimalization_table.len() != 16 || !is_digits(&self.decimalization_table) {
            return Err(CardDataError::PinData(
                "decimalization table must be 16 digits",
            ));
        }
        if !self.pad.is_ascii_hexdigit() {
            return Err(CardDataError::PinData("pad must be a hex digit"));
        }
        if self.pan_length == 0 || self.pan_length > 16 {
            return Err(CardDataError::PinData("validation length must be 1 to 16"));
        }
        Ok(())
    }

    /// The natural PIN digits: 3DES of the padded validation data, each nibble decimalised
    /// by the table.
    fn natural(&self, pvk: &TdesKey, pan: &str, len: usize) -> Result<Vec<u8>, CardDataError> {
        self.check()?;
        let vd = pan
            .get(self.pan_offset..self.pan_offset.saturating_add(self.pan_length))
            .filter(|v| is_digits(v))
            .ok_or(CardDataError::PinData(
                "validation data must lie within the PAN",
            ))?;
        let mut data: Vec<u8> = vd.bytes().collect();
        data.resize(16, self.pad.to_ascii_uppercase() as u8);
        let packed = pack_hex(&data).ok_or(CardDataError::PinData("validation data"))?;
        let mut block = [0u8; 8];
        block.copy_from_slice(&packed);
        let table = digit_values(&self.decimalization_table);
        Ok(nibbles(&pvk.encrypt(block))
            .take(len)
            .map(|n| table[usize::from(n)])
            .collect())
    }

    /// The offset that turns the natural PIN into `pin`.
    pub fn offset(&self, pvk: &TdesKey, pin: &str, pan: &str) -> Result<String, CardDataError> {
        if !(4..=12).contains(&pin.len()) || !is_digits(pin) {
            return Err(CardDataError::PinFormat);
        }
        let nat = self.natural(pvk, pan, pin.len())?;
        let off: Vec<u8> = pin
            .bytes()
            .zip(nat)
            .map(|(p, n)| (10 + (p - b'0') - n) % 10)
            .collect();
        Ok(to_ascii(&off))
    }

    /// Whether `pin` is the natural PIN plus `offset`, compared in constant time.
    pub fn verify(
        &self,
        pvk: &TdesKey,
        pin: &str,
        pan: &str,
        offset: &str,
    ) -> Result<bool, CardDataError> {
        if !(4..=12).contains(&offset.len()) || !is_digits(offset) {
            return Err(CardDataError::PinData("offset must be 4 to 12 digits"));
        }
        if pin.len() != offset.len() {
            return Ok(false);
        }
        let nat = self.natural(pvk, pan, offset.len())?;
        let expected: Vec<u8> = offset
            .bytes()
            .zip(nat)
            .map(|(o, n)| b'0' + (n + (o - b'0')) % 10)
            .collect();
        Ok(bool::from(expected.ct_eq(pin.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pvk() -> TdesKey {
        TdesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap()
    }

    #[test]
    fn visa_pvv_published_vectors() {
        assert_eq!(
            visa_pvv(&pvk(), 1, "4524", "1122334455667788").unwrap(),
            "8523"
        );
        assert_eq!(
            visa_pvv(&pvk(), 3, "4524", "1122334455667788").unwrap(),
            "4021"
        );
        assert!(verify_visa_pvv(&pvk(), 1, "4524", "1122334455667788", "8523").unwrap());
        assert!(!verify_visa_pvv(&pvk(), 1, "4525", "1122334455667788", "8523").unwrap());
    }

    #[test]
    fn ibm3624_published_vector_and_round_trip() {
        // psec's documented example: table 1234567890123456, whole PAN, pad F, offset 0000.
        let p = Ibm3624 {
            decimalization_table: "1234567890123456".into(),
            pan_offset: 0,
            pan_length: 16,
            pad: 'F',
        };
        assert_eq!(
            p.offset(&pvk(), "4524", "1122334455667788").unwrap(),
            "0000"
        );
        let d = Ibm3624::default();
        let off = d.offset(&pvk(), "987654", "4123456789012349").unwrap();
        assert!(
            d.verify(&pvk(), "987654", "4123456789012349", &off)
                .unwrap()
        );
        assert!(
            !d.verify(&pvk(), "987655", "4123456789012349", &off)
                .unwrap()
        );
        assert!(!d.verify(&pvk(), "98765", "4123456789012349", &off).unwrap());
    }
}
