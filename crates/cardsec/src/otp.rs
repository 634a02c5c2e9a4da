//! One-time passwords: HOTP (RFC 4226) and TOTP (RFC 6238) with HMAC-SHA-1, SHA-256 and
//! SHA-512, their verification in constant time within a window of time steps (a step once
//! used is refused again), and the base32 (RFC 4648) of authenticator-app secrets.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

/// The HMAC of a TOTP secret (authenticator apps use SHA-1 unless told otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpHash {
    Sha1,
    Sha256,
    Sha512,
}

impl OtpHash {
    /// The name an `otpauth://` URI gives it.
    pub fn uri_name(self) -> &'static str {
        match self {
            OtpHash::Sha1 => "SHA1",
            OtpHash::Sha256 => "SHA256",
            OtpHash::Sha512 => "SHA512",
        }
    }
}

fn mac(hash: OtpHash, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("any key length");
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    match hash {
        OtpHash::Sha1 => run::<Hmac<sha1::Sha1>>(key, msg),
        OtpHash::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg),
        OtpHash::Sha512 => run::<Hmac<sha2::Sha512>>(key, msg),
    }
}

/// The HOTP value of `counter` (RFC 4226 section 5.3: dynamic truncation), `digits` long
/// (6 to 9).
pub fn hotp(hash: OtpHash, key: &[u8], counter: u64, digits: u32) -> u32 {
    let h = mac(hash, key, &counter.to_be_bytes());
    let off = usize::from(h[h.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    bin % 10u32.pow(digits.clamp(6, 9))
}

/// A code as text, zero-padded to `digits`.
pub fn format_code(code: u32, digits: u32) -> String {
    format!("{code:0width$}", width = digits as usize)
}

/// TOTP settings: RFC 6238's defaults are a 30-second step from the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totp {
    pub hash: OtpHash,
    pub digits: u32,
    pub step_secs: u64,
}

impl Default for Totp {
    fn default() -> Totp {
        Totp {
            hash: OtpHash::Sha1,
            digits: 6,
            step_secs: 30,
        }
    }
}

impl Totp {
    /// The time step of a Unix time.
    pub fn step(&self, unix_secs: u64) -> u64 {
        unix_secs / self.step_secs.max(1)
    }

    /// The code at a Unix time.
    pub fn code(&self, key: &[u8], unix_secs: u64) -> String {
        format_code(
            hotp(self.hash, key, self.step(unix_secs), self.digits),
            self.digits,
        )
    }

    /// The step whose code `code` is, among the steps within `window` of now's (a clock
    /// that drifts a little is accepted) and after `last_used` (a code once accepted is
    /// never accepted again). Every candidate is compared, in constant time.
    pub fn verify(
        &self,
        key: &[u8],
        code: &str,
        unix_secs: u64,
        window: u64,
        last_used: Option<u64>,
    ) -> Option<u64> {
        let now = self.step(unix_secs);
        let mut found = None;
        for step in now.saturating_sub(window)..=now.saturating_add(window) {
            let want = format_code(hotp(self.hash, key, step, self.digits), self.digits);
            let same =
                want.len() == code.len() && bool::from(want.as_bytes().ct_eq(code.as_bytes()));
            if same && last_used.is_none_or(|l| step > l) && found.is_none() {
                found = Some(step);
            }
        }
        found
    }
}

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Base32 without padding, as authenticator apps take secrets.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((acc >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Base32 decoded (upper or lower case, padding and spaces ignored); `None` for any other
/// character.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter(|c| !matches!(c, b'=' | b' ')) {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())? as u32;
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4226 appendix D: the secret "12345678901234567890", counters 0 to 9.
    #[test]
    fn rfc4226_hotp_vectors() {
        let key = b"12345678901234567890";
        let want = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (c, w) in want.iter().enumerate() {
            assert_eq!(hotp(OtpHash::Sha1, key, c as u64, 6), *w, "counter {c}");
        }
    }

    /// RFC 6238 appendix B: 8-digit codes at the listed times, one seed per hash.
    #[test]
    fn rfc6238_totp_vectors() {
        let seeds: [(OtpHash, &[u8]); 3] = [
            (OtpHash::Sha1, b"12345678901234567890"),
            (OtpHash::Sha256, b"12345678901234567890123456789012"),
            (
                OtpHash::Sha512,
                b"1234567890123456789012345678901234567890123456789012345678901234",
            ),
        ];
        let table: [(u64, [&str; 3]); 6] = [
            (59, ["94287082", "46119246", "90693936"]),
            (1111111109, ["07081804", "68084774", "25091201"]),
            (1111111111, ["14050471", "67062674", "99943326"]),
            (1234567890, ["89005924", "91819424", "93441116"]),
            (2000000000, ["69279037", "90698825", "38618901"]),
            (20000000000, ["65353130", "77737706", "47863826"]),
        ];
        for (t, codes) in table {
            for ((hash, key), want) in seeds.iter().zip(codes) {
                let totp = Totp {
                    hash: *hash,
                    digits: 8,
                    step_secs: 30,
                };
                assert_eq!(totp.code(key, t), want, "{hash:?} at {t}");
            }
        }
    }

    #[test]
    fn verify_takes_a_step_of_the_window_once() {
        let key = b"12345678901234567890";
        let t = Totp::default();
        let now = 1_800_000_000;
        let code = t.code(key, now - 30);
        assert_eq!(t.verify(key, &code, now, 1, None), Some(t.step(now) - 1));
        assert_eq!(
            t.verify(key, &code, now, 0, None),
            None,
            "outside the window"
        );
        assert_eq!(
            t.verify(key, &code, now, 1, Some(t.step(now) - 1)),
            None,
            "used once already"
        );
        assert_eq!(t.verify(key, "12345", now, 1, None), None);
        assert_eq!(t.verify(key, "", now, 1, None), None);
    }

    #[test]
    fn base32_round_trips_rfc4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw 6===").unwrap(), b"foo");
        assert_eq!(base32_decode("MZ1"), None);
    }
}
