//! ISO 9564-1 PIN blocks: format 0 (ANSI X9.8), format 3 and format 4 (AES).
//!
//! Formats 0 and 3 are 8-byte blocks, the PIN field XORed with the PAN field; in transit
//! they are enciphered under a PIN encryption key, which the caller removes first. Format 4
//! is a 16-byte block enciphered twice under an AES key with the PAN field in between.
//! Random fill comes from the caller: this crate does no IO.

use crate::digits::{is_digits, nibbles};
use crate::{AesKey, CardDataError};
use subtle::ConstantTimeEq;

const BAD: CardDataError = CardDataError::PinBlock("not a valid PIN field");

fn check_pin(pin: &str) -> Result<(), CardDataError> {
    if !(4..=12).contains(&pin.len()) || !is_digits(pin) {
        return Err(CardDataError::PinFormat);
    }
    Ok(())
}

/// The PAN field of formats 0 and 3: four zero nibbles and the 12 rightmost PAN digits
/// without the check digit.
fn pan_field_03(pan: &str) -> Result<[u8; 8], CardDataError> {
    if pan.len() < 2 || !is_digits(pan) {
        return Err(CardDataError::PinData("PAN"));
    }
    let body = &pan.as_bytes()[..pan.len() - 1];
    let take = &body[body.len().saturating_sub(12)..];
    let mut digits = [0u8; 16];
    let start = 16 - take.len();
    for (i, &c) in take.iter().enumerate() {
        digits[start + i] = c - b'0';
    }
    let mut out = [0u8; 8];
    for i in 0..8 {
        out[i] = (digits[2 * i] << 4) | digits[2 * i + 1];
    }
    Ok(out)
}

/// Builds the PIN field: control nibble, length nibble, PIN digits, then `fill(i)` for
/// nibble position `i` up to `total` nibbles.
fn pin_field(control: u8, pin: &str, total: usize, mut fill: impl FnMut(usize) -> u8) -> Vec<u8> {
    let mut n: Vec<u8> = Vec::with_capacity(total);
    n.push(control);
    n.push(pin.len() as u8);
    n.extend(pin.bytes().map(|b| b - b'0'));
    while n.len() < total {
        let i = n.len();
        n.push(fill(i) & 0x0f);
    }
    n.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

/// Reads the PIN out of a clear PIN field, checking control nibble and fill.
fn read_pin_field(
    field: &[u8],
    control: u8,
    fill_ok: impl Fn(usize, u8) -> bool,
) -> Result<String, CardDataError> {
    let n: Vec<u8> = nibbles(field).collect();
    if n[0] != control {
        return Err(CardDataError::PinBlock("unexpected format"));
    }
    let len = usize::from(n[1]);
    if !(4..=12).contains(&len) {
        return Err(BAD);
    }
    let pin = &n[2..2 + len];
    if pin.iter().any(|&d| d > 9) {
        return Err(BAD);
    }
    if !(2 + len..n.len()).all(|i| fill_ok(i, n[i])) {
        return Err(BAD);
    }
    Ok(pin.iter().map(|&d| char::from(b'0' + d)).collect())
}

fn xor8(a: &[u8], b: &[u8; 8]) -> [u8; 8] {
    let mut o = [0u8; 8];
    for i in 0..8 {
        o[i] = a[i] ^ b[i];
    }
    o
}

/// Format 0: `0`, length, PIN, `F` fill, XOR the PAN field.
pub fn encode_iso0(pin: &str, pan: &str) -> Result<[u8; 8], CardDataError> {
    check_pin(pin)?;
    Ok(xor8(&pin_field(0, pin, 16, |_| 0xf), &pan_field_03(pan)?))
}

pub fn decode_iso0(block: &[u8; 8], pan: &str) -> Result<String, CardDataError> {
    let clear = xor8(block, &pan_field_03(pan)?);
    read_pin_field(&clear, 0, |_, v| v == 0xf)
}

/// Format 3: like format 0 with random fill nibbles from A to F. `random` gives the fill:
/// each byte is mapped into A-F.
pub fn encode_iso3(pin: &str, pan: &str, random: &[u8; 8]) -> Result<[u8; 8], CardDataError> {
    check_pin(pin)?;
    let field = pin_field(3, pin, 16, |i| {
        0xa + random[i % 8].wrapping_add(i as u8) % 6
    });
    Ok(xor8(&field, &pan_field_03(pan)?))
}

pub fn decode_iso3(block: &[u8; 8], pan: &str) -> Result<String, CardDataError> {
    let clear = xor8(block, &pan_field_03(pan)?);
    read_pin_field(&clear, 3, |_, v| v >= 0xa)
}

/// The PAN field of format 4: length minus 12, the PAN (left-padded to 12 digits), zeros.
fn pan_field_4(pan: &str) -> Result<[u8; 16], CardDataError> {
    if pan.is_empty() || pan.len() > 19 || !is_digits(pan) {
        return Err(CardDataError::PinData("PAN"));
    }
    let mut d = [0u8; 32];
    d[0] = pan.len().saturating_sub(12) as u8;
    let pad = 12usize.saturating_sub(pan.len());
    for (i, c) in pan.bytes().enumerate() {
        d[1 + pad + i] = c - b'0';
    }
    let mut out = [0u8; 16];
    for i in 0..16 {
        out[i] = (d[2 * i] << 4) | d[2 * i + 1];
    }
    Ok(out)
}

fn xor16(a: &[u8; 16], b: &[u8; 16]) -> [u8; 16] {
    let mut o = [0u8; 16];
    for i in 0..16 {
        o[i] = a[i] ^ b[i];
    }
    o
}

/// Format 4: PIN field `4`, length, PIN, `A` fill to 16 nibbles, 8 random bytes; enciphered,
/// XORed with the PAN field, enciphered again.
pub fn encipher_iso4(
    key: &AesKey,
    pin: &str,
    pan: &str,
    random: &[u8; 8],
) -> Result<[u8; 16], CardDataError> {
    check_pin(pin)?;
    let head = pin_field(4, pin, 16, |_| 0xa);
    let mut field = [0u8; 16];
    field[..8].copy_from_slice(&head);
    field[8..].copy_from_slice(random);
    let a = key.encrypt(field);
    Ok(key.encrypt(xor16(&a, &pan_field_4(pan)?)))
}

pub fn decipher_iso4(key: &AesKey, block: &[u8; 16], pan: &str) -> Result<String, CardDataError> {
    let b = key.decrypt(*block);
    let field = key.decrypt(xor16(&b, &pan_field_4(pan)?));
    read_pin_field(&field, 4, |i, v| i >= 16 || v == 0xa)
}

/// A clear 8-byte PIN block of format 0 or 3, told apart by its control nibble once the PAN
/// field is removed.
pub fn decode_clear(block: &[u8; 8], pan: &str) -> Result<String, CardDataError> {
    let clear = xor8(block, &pan_field_03(pan)?);
    match clear[0] >> 4 {
        0 => decode_iso0(block, pan),
        3 => decode_iso3(block, pan),
        _ => Err(CardDataError::PinBlock(
            "only formats 0, 3 and 4 are supported",
        )),
    }
}

/// Whether two PINs are equal, in constant time for equal lengths.
pub fn pins_equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02X}")).collect()
    }

    #[test]
    fn iso0_published_vector() {
        let b = encode_iso0("1234", "5544332211009966").unwrap();
        assert_eq!(hex(&b), "041277CDDEEFF669");
        assert_eq!(decode_iso0(&b, "5544332211009966").unwrap(), "1234");
        assert_eq!(decode_clear(&b, "5544332211009966").unwrap(), "1234");
        // The same block against another PAN does not decode to a valid field.
        assert!(decode_iso0(&b, "4123456789012349").is_err());
    }

    #[test]
    fn iso3_round_trips_and_fill_is_a_to_f() {
        let b = encode_iso3("98765", "4123456789012349", &[7, 1, 250, 3, 4, 5, 6, 7]).unwrap();
        assert_eq!(decode_iso3(&b, "4123456789012349").unwrap(), "98765");
        assert_eq!(decode_clear(&b, "4123456789012349").unwrap(), "98765");
        assert!(decode_iso0(&b, "4123456789012349").is_err());
    }

    #[test]
    fn iso4_round_trips() {
        let k = AesKey::from_hex("00112233445566778899AABBCCDDEEFF").unwrap();
        let b = encipher_iso4(&k, "1234", "1122334455667788990", &[9; 8]).unwrap();
        assert_eq!(
            decipher_iso4(&k, &b, "1122334455667788990").unwrap(),
            "1234"
        );
        assert!(decipher_iso4(&k, &b, "1122334455667788991").is_err());
        assert_eq!(
            hex(&pan_field_4("1122334455667788990").unwrap()),
            "71122334455667788990000000000000"
        );
        assert_eq!(
            hex(&pan_field_4("12345").unwrap()),
            "00000000123450000000000000000000"
        );
    }

    #[test]
    fn bad_pins_are_refused() {
        assert_eq!(
            encode_iso0("123", "5544332211009966"),
            Err(CardDataError::PinFormat)
        );
        assert_eq!(
            encode_iso0("12a4", "5544332211009966"),
            Err(CardDataError::PinFormat)
        );
    }
}
