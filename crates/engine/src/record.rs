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
    /// The country of the device's IP address, as the acquirer located it (cardguard has
    /// no IP geolocation of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_country: Option<Country>,
    /// The domain of the purchaser's email address, when the merchant sent one (the address
    /// itself is not kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_domain: Option<String>,
    /// The cardholder's home as enrolled, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_country: Option<Country>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home: Option<Location>,
    /// When the server received the request, by its own clock: what retention, the PIN and
    /// security-code counters and lockouts go by, and a bound no recorded time may pass.
    /// Absent in replays of recorded data and in events of earlier versions, where the
    /// request's own time stands in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<Timestamp>,
    /// The API client (its key's id) that sent the request: request ids are unique per
    /// client, so one client's ids never find another's decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// A keyed digest of the whole canonical request (32 hex digits): a retry of the id must
    /// carry the same request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The step-up authentication whose single-use value the request presented, verified
    /// (bound to this card, amount and merchant) and used up before the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authenticated: Option<String>,
}

impl TxFacts {
    /// The engine's "now" for this request: the server's clock when it was received, or the
    /// request's time where no server clock was recorded.
    pub fn now(&self) -> Timestamp {
        self.received.unwrap_or(self.ts)
    }

    /// The idempotency key of the request: its id, scoped by its client.
    pub fn request_key(&self) -> u128 {
        crate::state::scoped_request_key(self.client.as_deref(), &self.id)
    }

    /// What differs between two requests, in the terms of the request and without values
    /// (the card data is compared through the card token; the rest of it, security code,
    /// PIN block and expiry, only through the digest).
    pub fn differences(&self, other: &TxFacts) -> String {
        let m = (&self.merchant, &other.merchant);
        let differs = [
            ("card", self.card_token != other.card_token),
            ("amount", self.amount != other.amount),
            (
                "timestamp",
                self.ts != other.ts || self.utc_offset_min != other.utc_offset_min,
            ),
            ("merchant", m.0 != m.1),
            ("channel", self.channel != other.channel),
            ("type", self.tx_type != other.tx_type),
            (
                "device",
                self.device_id != other.device_id || self.device_ip != other.device_ip,
            ),
        ];
        let named: Vec<&str> = differs.iter().filter(|d| d.1).map(|d| d.0).collect();
        if named.is_empty() {
            "another security code, PIN block, expiry or device detail".into()
        } else {
            format!("another {}", named.join(", "))
        }
    }

    /// The request digest as a number (0 when there is none, as in older events).
    pub fn digest_value(&self) -> u128 {
        self.digest
            .as_deref()
            .and_then(|d| u128::from_str_radix(d, 16).ok())
            .unwrap_or(0)
    }
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

/// The reversal of an authorization (the acquirer's "it did not happen": a timeout, a
/// cancelled sale). It carries the original's facts, so that a replay undoes exactly what
/// the original applied without looking anything up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReversalRecord {
    /// The authorization reversed.
    pub authorization_id: String,
    /// The original's facts and whether it was approved, as its event recorded them.
    pub original: TxFacts,
    pub approved: bool,
    /// When the server received the reversal, by its own clock.
    pub received: Timestamp,
    /// What sent it: `iso8583 0400`, `iso8583 0420`, `api`.
    pub source: String,
    /// The client that sent it, and its own reference (an ISO 8583 reversal's STAN and
    /// RRN), for the audit trail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The cardholder's answer to an alert ("was this you?"): yes releases the hold (the same
/// purchase again is approved for a while) and labels it genuine; no blocks the card and
/// labels it fraud. It carries the original's facts, as a reversal does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerRecord {
    pub authorization_id: String,
    /// True: "it was me".
    pub yes: bool,
    pub original: TxFacts,
    /// When the server received the answer.
    pub received: Timestamp,
    /// How it came: `web`, `sms`, `api`.
    pub via: String,
}

/// The end of a step-up authentication that asked the cardholder for proof: authenticated
/// (`Y`) or not (`N`, after too many wrong codes, an expired challenge or a locked-out
/// card). A failed one is a fraud signal the cardholder is alerted to. It changes no engine
/// state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthenticationRecord {
    /// The requestor's id of the authentication.
    pub authentication_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    pub card_token: CardToken,
    pub last4: Last4,
    pub amount: Money,
    pub merchant_id: String,
    pub merchant_name: String,
    /// `Y` or `N`.
    pub trans_status: String,
    /// The factor the challenge used last: `sms`, `email`, `totp`, `passkey`.
    pub factor: String,
    /// Why it ended so: `code_accepted`, `too_many_wrong_codes`, `challenge_expired`, …
    pub reason: String,
    /// When the server received what ended it.
    pub received: Timestamp,
}

/// A card's status changed by the issuer (an analyst's block): the cardholder is told. It
/// changes no engine state (the status lives in the card registry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardStatusRecord {
    pub card_token: CardToken,
    pub last4: Last4,
    /// The new status (`blocked`).
    pub status: String,
    /// Why, as the cardholder may read it (`suspected_fraud`).
    pub reason: String,
    /// Who changed it (an API key's client).
    pub actor: String,
    pub received: Timestamp,
    /// For a reissue: the new card's last four digits and when it is expected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement_last4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Timestamp>,
}

/// The issuer's decision on covering a cardholder's loss: fraud compensation after a case is
/// resolved, or a shopping-protection claim. The cardholder is told; it changes no engine
/// state (the money is in the ledger).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CoverageRecord {
    pub card_token: CardToken,
    pub last4: Last4,
    /// `fraud_compensation` or `shopping_protection`.
    pub scheme: String,
    /// The case's or the claim's id.
    pub reference: i64,
    /// Whether anything is covered.
    pub covered: bool,
    /// What is credited to the card, per currency.
    pub credited: Vec<Money>,
    /// What is billed to the cardholder after all (not covered, or a deductible).
    pub billed: Vec<Money>,
    /// The decision's reasons, as the cardholder may read them.
    pub reasons: Vec<String>,
    pub actor: String,
    pub received: Timestamp,
}

/// One event of the log: the domain schema every writer and reader of the log shares (the
/// application appends them, a replay applies them, consumers follow them).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Auth(Box<AuthRecord>),
    Label(LabelRecord),
    Reversal(Box<ReversalRecord>),
    Answer(Box<AnswerRecord>),
    Authentication(Box<AuthenticationRecord>),
    CardStatus(Box<CardStatusRecord>),
    Coverage(Box<CoverageRecord>),
}

/// Why an event could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("unknown event kind {0}")]
    UnknownKind(u8),
    #[error("event of kind {kind} does not decode: {why}")]
    Decode { kind: u8, why: String },
    #[error("event does not encode: {0}")]
    Encode(String),
}

impl Event {
    /// Frame kind of an authorization in the log.
    pub const KIND_AUTH: u8 = 1;
    /// Frame kind of a label.
    pub const KIND_LABEL: u8 = 2;
    /// Frame kind of a reversal.
    pub const KIND_REVERSAL: u8 = 3;
    /// Frame kind of a cardholder's answer.
    pub const KIND_ANSWER: u8 = 4;
    /// Frame kind of the end of a challenged step-up authentication.
    pub const KIND_AUTHENTICATION: u8 = 5;
    /// Frame kind of a card status change.
    pub const KIND_CARD_STATUS: u8 = 6;
    /// Frame kind of a decision on covering a cardholder's loss.
    pub const KIND_COVERAGE: u8 = 7;

    pub fn kind(&self) -> u8 {
        match self {
            Event::Auth(_) => Event::KIND_AUTH,
            Event::Label(_) => Event::KIND_LABEL,
            Event::Reversal(_) => Event::KIND_REVERSAL,
            Event::Answer(_) => Event::KIND_ANSWER,
            Event::Authentication(_) => Event::KIND_AUTHENTICATION,
            Event::CardStatus(_) => Event::KIND_CARD_STATUS,
            Event::Coverage(_) => Event::KIND_COVERAGE,
        }
    }

    /// The authorization the event is about (the authentication's id for an authentication).
    pub fn authorization_id(&self) -> &str {
        match self {
            Event::Auth(a) => &a.authorization_id,
            Event::Label(l) => &l.authorization_id,
            Event::Reversal(r) => &r.authorization_id,
            Event::Answer(a) => &a.authorization_id,
            Event::Authentication(a) => &a.authentication_id,
            Event::CardStatus(_) | Event::Coverage(_) => "",
        }
    }

    /// The frame payload (JSON: readable with standard tools, stable across versions).
    pub fn encode(&self) -> Result<Vec<u8>, EventError> {
        match self {
            Event::Auth(r) => encode(r.as_ref()),
            Event::Label(l) => encode(l),
            Event::Reversal(r) => encode(r.as_ref()),
            Event::Answer(a) => encode(a.as_ref()),
            Event::Authentication(a) => encode(a.as_ref()),
            Event::CardStatus(c) => encode(c.as_ref()),
            Event::Coverage(c) => encode(c.as_ref()),
        }
    }

    pub fn decode(kind: u8, payload: &[u8]) -> Result<Event, EventError> {
        let bad = |e: serde_json::Error| EventError::Decode {
            kind,
            why: e.to_string(),
        };
        match kind {
            Event::KIND_AUTH => Ok(Event::Auth(Box::new(
                serde_json::from_slice(payload).map_err(bad)?,
            ))),
            Event::KIND_LABEL => Ok(Event::Label(serde_json::from_slice(payload).map_err(bad)?)),
            Event::KIND_REVERSAL => Ok(Event::Reversal(Box::new(
                serde_json::from_slice(payload).map_err(bad)?,
            ))),
            Event::KIND_ANSWER => Ok(Event::Answer(Box::new(
                serde_json::from_slice(payload).map_err(bad)?,
            ))),
            Event::KIND_AUTHENTICATION => Ok(Event::Authentication(Box::new(
                serde_json::from_slice(payload).map_err(bad)?,
            ))),
            Event::KIND_CARD_STATUS => Ok(Event::CardStatus(Box::new(
                serde_json::from_slice(payload).map_err(bad)?,
            ))),
            Event::KIND_COVERAGE => Ok(Event::Coverage(Box::new(
                serde_json::from_slice(payload).map_err(bad)?,
            ))),
            k => Err(EventError::UnknownKind(k)),
        }
    }
}

/// Encodes one record as an event payload.
pub fn encode<T: Serialize>(rec: &T) -> Result<Vec<u8>, EventError> {
    serde_json::to_vec(rec).map_err(|e| EventError::Encode(e.to_string()))
}

impl AuthRecord {
    /// Decodes an authorization event's payload.
    pub fn decode(payload: &[u8]) -> Result<AuthRecord, EventError> {
        serde_json::from_slice(payload).map_err(|e| EventError::Decode {
            kind: Event::KIND_AUTH,
            why: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_unknown_kinds_are_refused() {
        let l = Event::Label(LabelRecord {
            authorization_id: "au_000000000001".into(),
            fraud: true,
            ts: Timestamp(1_700_000_000_000),
            source: Some("chargeback".into()),
        });
        let bytes = l.encode().unwrap();
        assert_eq!(Event::decode(l.kind(), &bytes).unwrap(), l);
        assert_eq!(
            Event::decode(9, &bytes).unwrap_err(),
            EventError::UnknownKind(9)
        );
        assert!(matches!(
            Event::decode(Event::KIND_AUTH, &bytes),
            Err(EventError::Decode { kind: 1, .. })
        ));
    }
}
