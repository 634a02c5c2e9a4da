//! Keys for card cryptography, parsed from hex. Their `Debug` never shows key material.

use crate::digits::pack_hex;
use des::cipher::generic_array::GenericArray;
use des::cipher::{BlockDecrypt, BlockEncrypt, KeyInit};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key must be {0} hex digits")]
    Length(&'static str),
    #[error("key must be hex digits")]
    Hex,
}

/// A double-length Triple DES key (two 8-byte halves, A and B), as CVK and PVK pairs are.
#[derive(Clone)]
pub struct TdesKey {
    /// The expanded key schedules, made once.
    ede: des::TdesEde2,
    left: des::Des,
}

impl TdesKey {
    /// Parses 32 hex digits.
    pub fn from_hex(s: &str) -> Result<TdesKey, KeyError> {
        if s.len() != 32 {
            return Err(KeyError::Length("32"));
        }
        let v = pack_hex(s.as_bytes()).ok_or(KeyError::Hex)?;
        let mut k = [0u8; 16];
        k.copy_from_slice(&v);
        Ok(TdesKey::from_bytes(k))
    }

    pub fn from_bytes(k: [u8; 16]) -> TdesKey {
        TdesKey {
            ede: des::TdesEde2::new(GenericArray::from_slice(&k)),
            left: des::Des::new(GenericArray::from_slice(&k[..8])),
        }
    }

    fn cipher(&self) -> &des::TdesEde2 {
        &self.ede
    }

    /// Encrypts one 8-byte block with 3DES EDE (A, B, A).
    pub fn encrypt(&self, block: [u8; 8]) -> [u8; 8] {
        let mut b = GenericArray::from(block);
        self.cipher().encrypt_block(&mut b);
        b.into()
    }

    pub fn decrypt(&self, block: [u8; 8]) -> [u8; 8] {
        let mut b = GenericArray::from(block);
        self.cipher().decrypt_block(&mut b);
        b.into()
    }

    /// Encrypts with single DES under the left half (key A), as step one of the CVV algorithm.
    pub fn encrypt_left(&self, block: [u8; 8]) -> [u8; 8] {
        let mut b = GenericArray::from(block);
        self.left.encrypt_block(&mut b);
        b.into()
    }
}

impl fmt::Debug for TdesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TdesKey(***)")
    }
}

/// An AES key (128, 192 or 256 bits), as ISO 9564 format 4 PIN blocks use.
#[derive(Clone)]
pub struct AesKey(Vec<u8>);

impl AesKey {
    /// Parses 32, 48 or 64 hex digits.
    pub fn from_hex(s: &str) -> Result<AesKey, KeyError> {
        if !matches!(s.len(), 32 | 48 | 64) {
            return Err(KeyError::Length("32, 48 or 64"));
        }
        Ok(AesKey(pack_hex(s.as_bytes()).ok_or(KeyError::Hex)?))
    }

    pub fn encrypt(&self, block: [u8; 16]) -> [u8; 16] {
        let mut b = GenericArray::from(block);
        match self.0.len() {
            16 => aes::Aes128::new(GenericArray::from_slice(&self.0)).encrypt_block(&mut b),
            24 => aes::Aes192::new(GenericArray::from_slice(&self.0)).encrypt_block(&mut b),
            _ => aes::Aes256::new(GenericArray::from_slice(&self.0)).encrypt_block(&mut b),
        }
        b.into()
    }

    pub fn decrypt(&self, block: [u8; 16]) -> [u8; 16] {
        let mut b = GenericArray::from(block);
        match self.0.len() {
            16 => aes::Aes128::new(GenericArray::from_slice(&self.0)).decrypt_block(&mut b),
            24 => aes::Aes192::new(GenericArray::from_slice(&self.0)).decrypt_block(&mut b),
            _ => aes::Aes256::new(GenericArray::from_slice(&self.0)).decrypt_block(&mut b),
        }
        b.into()
    }
}

impl fmt::Debug for AesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AesKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_hide() {
        let k = TdesKey::from_hex("0123456789ABCDEFFEDCBA9876543210").unwrap();
        assert_eq!(format!("{k:?}"), "TdesKey(***)");
        assert_eq!(
            TdesKey::from_hex("0123").unwrap_err(),
            KeyError::Length("32")
        );
        assert_eq!(
            TdesKey::from_hex("0123456789ABCDEFFEDCBA987654321G").unwrap_err(),
            KeyError::Hex
        );
        let block = [1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(k.decrypt(k.encrypt(block)), block);
        let a = AesKey::from_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        // FIPS-197 appendix C.1
        let pt: [u8; 16] = [
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let ct = a.encrypt(pt);
        assert_eq!(
            ct,
            [
                0x69, 0xc4, 0xe0, 0xd8, 0x6a, 0x7b, 0x04, 0x30, 0xd8, 0xcd, 0xb7, 0x80, 0x70, 0xb4,
                0xc5, 0x5a
            ]
        );
        assert_eq!(a.decrypt(ct), pt);
    }
}
