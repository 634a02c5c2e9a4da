//! An authorization request after validation: every field parsed into its domain type.

use crate::{Expiry, Merchant, Money, Pan, ParseError, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How the card was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    CardPresent,
    Ecommerce,
    Moto,
    Atm,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::CardPresent,
        Channel::Ecommerce,
        Channel::Moto,
        Channel::Atm,
    ];

    /// Parses the API's and the datasets' name of a channel.
    pub fn parse(s: &str) -> Result<Channel, ParseError> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(ParseError::OneOf("card_present, ecommerce, moto, atm"))
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Channel::CardPresent => "card_present",
            Channel::Ecommerce => "ecommerce",
            Channel::Moto => "moto",
            Channel::Atm => "atm",
        }
    }
    /// Card present at a terminal (a shop or an ATM): the place of the terminal is the place
    /// of the card.
    pub fn is_physical(&self) -> bool {
        matches!(self, Channel::CardPresent | Channel::Atm)
    }
}

/// What the transaction does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxType {
    Purchase,
    CashAdvance,
    Refund,
}

impl TxType {
    pub const ALL: [TxType; 3] = [TxType::Purchase, TxType::CashAdvance, TxType::Refund];

    /// Parses the API's and the datasets' name of a transaction type.
    pub fn parse(s: &str) -> Result<TxType, ParseError> {
        TxType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or(ParseError::OneOf("purchase, cash_advance, refund"))
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            TxType::Purchase => "purchase",
            TxType::CashAdvance => "cash_advance",
            TxType::Refund => "refund",
        }
    }
}

/// The device the cardholder used, when the channel has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub ip: Option<std::net::IpAddr>,
    /// The country of `ip` as the acquirer located it.
    #[serde(default)]
    pub ip_country: Option<crate::Country>,
    pub user_agent: Option<String>,
}

/// The card data of a request. The CSC and PIN block are secrets: their `Debug` hides them.
#[derive(Clone, PartialEq, Eq)]
pub struct CardData {
    pub pan: Pan,
    pub expiry: Expiry,
    /// The card security code as typed or read (CVV2, CVC2, CID): 3 or 4 digits.
    pub csc: Option<String>,
    /// An ISO 9564 PIN block, 8 bytes (formats 0 and 3) or 16 bytes (format 4).
    pub pin_block: Option<Vec<u8>>,
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardData")
            .field("pan", &self.pan)
            .field("expiry", &self.expiry)
            .field("csc", &self.csc.as_ref().map(|_| "***"))
            .field("pin_block", &self.pin_block.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A validated authorization request.
#[derive(Debug, Clone, PartialEq)]
pub struct Authorization {
    /// The acquirer's id for the request; the idempotency key.
    pub id: String,
    pub timestamp: Timestamp,
    pub card: CardData,
    pub amount: Money,
    pub merchant: Merchant,
    pub channel: Channel,
    pub tx_type: TxType,
    pub device: Option<Device>,
    /// The domain of the purchaser's email address, lower case, when the merchant sent one.
    pub email_domain: Option<String>,
    /// The single-use value of a step-up authentication (3-D Secure's CAVV), when the
    /// cardholder authenticated this purchase.
    pub authentication: Option<String>,
}
