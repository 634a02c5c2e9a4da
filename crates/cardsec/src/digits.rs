//! Small helpers for nibble strings, hex and decimalisation shared by the algorithms.

/// Packs a string of hex digits (even length, checked by the caller) into bytes.
pub(crate) fn pack_hex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2)
        .map(|p| Some((nibble(p[0])? << 4) | nibble(p[1])?))
        .collect()
}

pub(crate) fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The nibbles of `bytes`, high first.
pub(crate) fn nibbles(bytes: &[u8]) -> impl Iterator<Item = u8> + '_ {
    bytes.iter().flat_map(|b| [b >> 4, b & 0x0f])
}

/// Decimalisation as CVV and PVV use it: first the decimal nibbles in order, then the
/// others minus ten, until `n` digits are taken.
pub(crate) fn decimalize(block: &[u8], n: usize) -> Vec<u8> {
    let mut out: Vec<u8> = nibbles(block).filter(|&d| d < 10).take(n).collect();
    if out.len() < n {
        out.extend(
            nibbles(block)
                .filter(|&d| d >= 10)
                .map(|d| d - 10)
                .take(n - out.len()),
        );
    }
    out
}

pub(crate) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// ASCII digits to their values (caller checked they are digits).
pub(crate) fn digit_values(s: &str) -> Vec<u8> {
    s.bytes().map(|b| b - b'0').collect()
}

pub(crate) fn to_ascii(d: &[u8]) -> String {
    d.iter().map(|&x| char::from(b'0' + x)).collect()
}
