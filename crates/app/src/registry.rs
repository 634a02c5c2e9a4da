//! The in-memory card registry (loaded from SQLite at start, written through on enrollment)
//! and the card-data checks of an authorization: status, expiry, security code, PIN.

use crate::keys::{KeyRing, hex, unhex};
use cardguard_cardsec::pin::{Ibm3624, verify_visa_pvv};
use cardguard_cardsec::{Brand, cvv, pinblock, stored};
use cardguard_core::{CardData, CardToken, Channel, Country, Expiry, Location, Money, Timestamp};
use cardguard_engine::{CardChecks, CardStatus, CscCheck, PinCheck};
use cardguard_store::CardRow;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// How the card's security code is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method")]
pub enum CscMethod {
    /// The 3DES CVV algorithm with the named CVK pair.
    #[serde(rename = "cvv-3des")]
    Cvv3des { key_id: String },
    /// A keyed hash of the code (hex), for codes computed by another HSM.
    #[serde(rename = "stored")]
    Stored { hash: String },
}

/// How the card's PIN is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method")]
pub enum PinMethod {
    #[serde(rename = "visa-pvv")]
    VisaPvv {
        key_id: String,
        pvki: u8,
        pvv: String,
    },
    #[serde(rename = "ibm3624")]
    Ibm3624 {
        key_id: String,
        offset: String,
        decimalization_table: String,
        validation_offset: usize,
        validation_length: usize,
        pad: char,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    pub language: String,
    /// The cardholder's time zone (IANA name), for the times in notices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notifications {
    pub usage_threshold: Money,
    pub channels: Vec<String>,
}

/// Purchases at or above this get a usage notice unless the card says otherwise.
pub const DEFAULT_USAGE_THRESHOLD: Money = Money {
    value: 5000,
    currency: cardguard_core::Currency::JPY,
};

impl Notifications {
    /// The preferences of a card enrolled without any: usage notices from 5,000 JPY, by
    /// email when the cardholder has an address.
    pub fn default_for(contact: &Contact) -> Notifications {
        Notifications {
            usage_threshold: DEFAULT_USAGE_THRESHOLD,
            channels: if contact.email.is_some() {
                vec!["email".into()]
            } else {
                Vec::new()
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Home {
    pub country: Country,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
}

/// An enrolled card, without its PAN.
#[derive(Debug, Clone, PartialEq)]
pub struct CardInfo {
    pub token: CardToken,
    pub last4: String,
    pub expiry: Expiry,
    pub cardholder_id: String,
    pub product: String,
    pub status: CardStatus,
    pub service_code: String,
    pub brand: Brand,
    pub csc: CscMethod,
    pub pin: Option<PinMethod>,
    pub contact: Contact,
    pub notifications: Notifications,
    pub home: Option<Home>,
}

fn brand_from_name(s: &str) -> Brand {
    [
        Brand::AmericanExpress,
        Brand::Visa,
        Brand::Mastercard,
        Brand::Jcb,
        Brand::DinersClub,
        Brand::Discover,
        Brand::UnionPay,
    ]
    .into_iter()
    .find(|b| b.name() == s)
    .unwrap_or(Brand::Other)
}

/// A stored card row this version cannot read: which column, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card registry row {token}: {column} {why}")]
pub struct RowError {
    pub token: String,
    pub column: &'static str,
    pub why: String,
}

impl CardInfo {
    /// The card's last four digits, typed (checked when the card was enrolled).
    pub fn last4(&self) -> Result<cardguard_core::Last4, crate::AppError> {
        cardguard_core::Last4::parse(&self.last4)
            .map_err(|e| crate::AppError::Internal(e.to_string()))
    }

    pub fn from_row(r: &CardRow) -> Result<CardInfo, RowError> {
        let bad = |column: &'static str, why: String| RowError {
            token: r.token.clone(),
            column,
            why,
        };
        fn col<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
            serde_json::from_str(s).map_err(|e| e.to_string())
        }
        let token = CardToken::parse(&r.token).map_err(|e| bad("token", e.to_string()))?;
        Ok(CardInfo {
            token,
            last4: r.last4.clone(),
            expiry: Expiry::parse(&r.expiry).map_err(|e| bad("expiry", e.to_string()))?,
            cardholder_id: r.cardholder_id.clone(),
            product: r.product.clone(),
            status: CardStatus::parse(&r.status)
                .ok_or_else(|| bad("status", "is not a known status".into()))?,
            service_code: r.service_code.clone(),
            brand: brand_from_name(&r.brand),
            csc: col(&r.csc).map_err(|e| bad("csc", e))?,
            pin: r
                .pin
                .as_deref()
                .map(col)
                .transpose()
                .map_err(|e| bad("pin", e))?,
            contact: col(&r.contact).map_err(|e| bad("contact", e))?,
            notifications: col(&r.notifications).map_err(|e| bad("notifications", e))?,
            home: r
                .home
                .as_deref()
                .map(col)
                .transpose()
                .map_err(|e| bad("home", e))?,
        })
    }

    /// The row to store, given the encrypted PAN.
    pub fn to_row(&self, pan_ciphertext: Vec<u8>, pan_nonce: Vec<u8>, now: Timestamp) -> CardRow {
        CardRow {
            token: self.token.to_string(),
            last4: self.last4.clone(),
            pan_ciphertext,
            pan_nonce,
            expiry: self.expiry.to_string(),
            cardholder_id: self.cardholder_id.clone(),
            product: self.product.clone(),
            status: self.status.as_str().into(),
            service_code: self.service_code.clone(),
            brand: self.brand.name().into(),
            csc: json(&self.csc),
            pin: self.pin.as_ref().map(json),
            contact: json(&self.contact),
            notifications: json(&self.notifications),
            home: self.home.as_ref().map(json),
            created_ms: now.0,
            updated_ms: now.0,
        }
    }
}

/// A stored JSON column. These types serialize infallibly (no maps with non-string keys).
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The service code the card-not-present code was computed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cvv2ServiceCode {
    Card,
    Fixed(String),
}

/// Cards by token, shared by every request.
#[derive(Default)]
pub struct Registry {
    cards: RwLock<HashMap<CardToken, Arc<CardInfo>>>,
}

impl Registry {
    pub fn get(&self, t: &CardToken) -> Option<Arc<CardInfo>> {
        self.cards
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(t)
            .cloned()
    }
    pub fn insert(&self, c: CardInfo) {
        self.cards
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(c.token, Arc::new(c));
    }
    pub fn len(&self) -> usize {
        self.cards.read().unwrap_or_else(|e| e.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Checks the card data of a request against the enrolled card.
pub fn check_card(
    card: Option<&CardInfo>,
    data: &CardData,
    pan_valid: bool,
    at: Timestamp,
    channel: Channel,
    keys: &KeyRing,
    cvv2: &Cvv2ServiceCode,
) -> CardChecks {
    let Some(card) = card else {
        return CardChecks {
            pan_valid,
            status: CardStatus::Unknown,
            expired: false,
            expiry_matches: false,
            csc: CscCheck::NotPresented,
            pin: PinCheck::NotPresented,
        };
    };
    let pan = data.pan.expose();
    let csc = match &data.csc {
        None => CscCheck::NotPresented,
        Some(code) if code.len() != card.brand.csc_len() => CscCheck::Mismatch,
        Some(code) => match &card.csc {
            CscMethod::Cvv3des { key_id } => match keys.cvk.get(key_id) {
                None => CscCheck::Unverifiable,
                Some(k) => {
                    let sc = match (channel, cvv2) {
                        (Channel::CardPresent | Channel::Atm, _) | (_, Cvv2ServiceCode::Card) => {
                            card.service_code.as_str()
                        }
                        (_, Cvv2ServiceCode::Fixed(s)) => s.as_str(),
                    };
                    match cvv::verify(k, pan, &card.expiry.yymm(), sc, code) {
                        Ok(true) => CscCheck::Match,
                        Ok(false) => CscCheck::Mismatch,
                        Err(_) => CscCheck::Unverifiable,
                    }
                }
            },
            CscMethod::Stored { hash } => {
                match unhex(hash).and_then(|h| <[u8; 32]>::try_from(h).ok()) {
                    Some(h) if stored::verify(keys.csc_key(), &card.token.0, code, &h) => {
                        CscCheck::Match
                    }
                    Some(_) => CscCheck::Mismatch,
                    None => CscCheck::Unverifiable,
                }
            }
        },
    };
    let pin = match &data.pin_block {
        None => PinCheck::NotPresented,
        Some(block) => check_pin(card, block, pan, keys),
    };
    CardChecks {
        pan_valid,
        status: card.status,
        expired: card.expiry.is_expired_at(at),
        expiry_matches: data.expiry == card.expiry,
        csc,
        pin,
    }
}

/// The clear PIN of a PIN block (formats 0 and 3 under the 3DES PIN key, or clear when
/// none is configured; format 4 under the AES PIN key); `None` when no key can read it.
pub fn decode_pin_block(
    block: &[u8],
    pan: &str,
    keys: &KeyRing,
) -> Option<Result<String, cardguard_cardsec::CardDataError>> {
    match block.len() {
        8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(block);
            if let Some(k) = &keys.pin_tdes {
                b = k.decrypt(b);
            }
            Some(pinblock::decode_clear(&b, pan))
        }
        16 => keys.pin_aes.as_ref().map(|k| {
            let mut b = [0u8; 16];
            b.copy_from_slice(block);
            pinblock::decipher_iso4(k, &b, pan)
        }),
        _ => None,
    }
}

fn check_pin(card: &CardInfo, block: &[u8], pan: &str, keys: &KeyRing) -> PinCheck {
    let Some(method) = &card.pin else {
        return PinCheck::Unverifiable;
    };
    let Some(pin) = decode_pin_block(block, pan, keys) else {
        return PinCheck::Unverifiable;
    };
    // A block that does not decode is a wrong PIN entry (or a wrong key): it counts as a try.
    let Ok(pin) = pin else { return PinCheck::Wrong };
    let ok = match method {
        PinMethod::VisaPvv { key_id, pvki, pvv } => {
            let Some(k) = keys.pvk.get(key_id) else {
                return PinCheck::Unverifiable;
            };
            pin.len() == 4 && verify_visa_pvv(k, *pvki, &pin, pan, pvv).unwrap_or(false)
        }
        PinMethod::Ibm3624 {
            key_id,
            offset,
            decimalization_table,
            validation_offset,
            validation_length,
            pad,
        } => {
            let Some(k) = keys.pvk.get(key_id) else {
                return PinCheck::Unverifiable;
            };
            let p = Ibm3624 {
                decimalization_table: decimalization_table.clone(),
                pan_offset: *validation_offset,
                pan_length: *validation_length,
                pad: *pad,
            };
            p.verify(k, &pin, pan, offset).unwrap_or(false)
        }
    };
    if ok {
        PinCheck::Correct
    } else {
        PinCheck::Wrong
    }
}

/// The stored form of a security code: its keyed hash in hex.
pub fn stored_csc_hash(keys: &KeyRing, token: &CardToken, code: &str) -> String {
    hex(&stored::hash(keys.csc_key(), &token.0, code))
}
