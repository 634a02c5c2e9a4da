//! The engine's event schema: what the log keeps of every authorization and label. It
//! carries the card token and last four digits, never the PAN, CSC or PIN block.

use crate::decide::{CardChecks, Outcome};
use cardguard_core::{
    CardToken, Channel, Country, Last4, Location, Merchant, Money, Timestamp, TxType,
};
use serde::{Deserialize, Serialize};

/// The facts of one authorization request, as the engine needs them to decide and to replay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxFacts {
    /// The acquirer's request id.
    pub id: String,
    pub ts: Timestamp,
    /// The offset the request's timestamp was given in, for local-time features.
    pub utc_offset_min: i16,
    pub card_token: CardToken,
    pub last4: Last4,
    pub amount: Money,
    /// The amount in base-currency minor units at decision time (features only).
    pub amount_base: u64,
    pub merchant: Merchant,
    pub channel: Channel,
    pub tx_type: TxType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_ip: Option<std::net::IpAddr>,
    /// The cardholder's home as enrolled, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_country: Option<Country>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<Location>,
}

/// One decided authorization: the event the log keeps and a replay applies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthRecord {
    /// cardguard's id for the authorization (`au_…`).
    pub authorization_id: String,
    pub tx: TxFacts,
    pub checks: CardChecks,
    pub outcome: Outcome,
}

/// A fraud or genuine label for an authorization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRecord {
    pub authorization_id: String,
    pub fraud: bool,
    /// When the label became known.
    pub ts: Timestamp,
    /// Where it came from: `chargeback`, `cardholder`, `analyst`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}
