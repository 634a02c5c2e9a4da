//! Card data checks and card cryptography, with no IO.
//!
//! - [`luhn`] and [`brand`]: the check digit, IIN ranges, brands and their lengths.
//! - [`keys`]: Triple DES and AES keys parsed from hex, never printed.
//! - [`cvv`]: CVV/CVC/CAV verification with the card verification key pair (3DES).
//! - [`stored`]: keyed hashes for security codes whose algorithm lives in another HSM.
//! - [`pinblock`]: ISO 9564 PIN blocks, formats 0, 3 and 4.
//! - [`pin`]: PIN verification by Visa PVV and IBM 3624 offset.
//! - [`otp`]: HOTP and TOTP (RFC 4226, RFC 6238), base32 secrets.
//! - [`pin_policy`]: PINs too easy to guess (repeated, sequential, common, birth date, phone).
//!
//! Secrets are compared in constant time; no error message carries a PAN, PIN or code.

pub mod brand;
pub mod cvv;
pub mod keys;
pub mod luhn;
pub mod otp;
pub mod pin;
pub mod pin_policy;
pub mod pinblock;
pub mod stored;

mod digits;

pub use brand::{Brand, check_pan};
pub use keys::{AesKey, KeyError, TdesKey};

/// Why card data or a cryptographic input was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardDataError {
    #[error("card number fails the Luhn check")]
    Luhn,
    #[error("card number length {len} is not valid for {brand}")]
    Length { brand: &'static str, len: usize },
    #[error("security code must be {0} digits")]
    CscFormat(usize),
    #[error("service code must be 3 digits")]
    ServiceCode,
    #[error("PIN must be 4 to 12 digits")]
    PinFormat,
    #[error("PIN block is malformed: {0}")]
    PinBlock(&'static str),
    #[error("PIN verification data is malformed: {0}")]
    PinData(&'static str),
}
