//! What cardguard answers: a decision, an ISO 8583 response code and the reasons.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The outcome of an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approve,
    Decline,
    /// Held until the cardholder confirms it (ISO 8583 response 01, refer to issuer).
    Hold,
    /// Step-up authentication required (response 1A).
    Challenge,
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Decline => "decline",
            Decision::Hold => "hold",
            Decision::Challenge => "challenge",
        }
    }
}

/// ISO 8583 field 39 response codes that cardguard gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseCode {
    /// 00
    Approved,
    /// 01: hold, the cardholder is asked to confirm.
    ReferToIssuer,
    /// 05
    DoNotHonour,
    /// 14
    InvalidCardNumber,
    /// 41
    LostCard,
    /// 43
    StolenCard,
    /// 54
    ExpiredCard,
    /// 55
    IncorrectPin,
    /// 59
    SuspectedFraud,
    /// 62
    RestrictedCard,
    /// 75
    PinTriesExceeded,
    /// 1A: additional customer authentication required.
    AdditionalAuthRequired,
    /// N7: CVV2 mismatch.
    CscMismatch,
}

impl ResponseCode {
    pub const ALL: [ResponseCode; 13] = [
        ResponseCode::Approved,
        ResponseCode::ReferToIssuer,
        ResponseCode::DoNotHonour,
        ResponseCode::InvalidCardNumber,
        ResponseCode::LostCard,
        ResponseCode::StolenCard,
        ResponseCode::ExpiredCard,
        ResponseCode::IncorrectPin,
        ResponseCode::SuspectedFraud,
        ResponseCode::RestrictedCard,
        ResponseCode::PinTriesExceeded,
        ResponseCode::AdditionalAuthRequired,
        ResponseCode::CscMismatch,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ResponseCode::Approved => "00",
            ResponseCode::ReferToIssuer => "01",
            ResponseCode::DoNotHonour => "05",
            ResponseCode::InvalidCardNumber => "14",
            ResponseCode::LostCard => "41",
            ResponseCode::StolenCard => "43",
            ResponseCode::ExpiredCard => "54",
            ResponseCode::IncorrectPin => "55",
            ResponseCode::SuspectedFraud => "59",
            ResponseCode::RestrictedCard => "62",
            ResponseCode::PinTriesExceeded => "75",
            ResponseCode::AdditionalAuthRequired => "1A",
            ResponseCode::CscMismatch => "N7",
        }
    }

    pub fn parse(s: &str) -> Option<ResponseCode> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ResponseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
impl Serialize for ResponseCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}
impl<'de> Deserialize<'de> for ResponseCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::text::parse_str(d, |s| ResponseCode::parse(s).ok_or("unknown response code"))
    }
}

/// Defines `ReasonCode` with each code's stable name, once: the enum, `as_str` and `ALL`.
macro_rules! reason_codes {
    ($($(#[$doc:meta])* $code:ident = $name:literal,)*) => {
        /// Why a decision was made. Codes are stable identifiers; details are for people.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        pub enum ReasonCode {
            $($(#[$doc])* $code,)*
        }

        impl ReasonCode {
            /// Every code.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$code,)*];

            pub fn as_str(&self) -> &'static str {
                match self {
                    $(ReasonCode::$code => $name,)*
                }
            }
        }
    };
}

reason_codes! {
    // Card data
    CardNotFound = "CARD_NOT_FOUND",
    InvalidCardNumber = "INVALID_CARD_NUMBER",
    CardExpired = "CARD_EXPIRED",
    ExpiryMismatch = "EXPIRY_MISMATCH",
    CardStatus = "CARD_STATUS",
    CscMismatch = "CSC_MISMATCH",
    CscMissing = "CSC_MISSING",
    CardTesting = "CARD_TESTING",
    PinIncorrect = "PIN_INCORRECT",
    PinTriesExceeded = "PIN_TRIES_EXCEEDED",
    PinUnverifiable = "PIN_UNVERIFIABLE",
    // Behaviour
    ImpossibleTravel = "IMPOSSIBLE_TRAVEL",
    AmountAboveProfile = "AMOUNT_ABOVE_PROFILE",
    HighVelocity = "HIGH_VELOCITY",
    NewCountry = "NEW_COUNTRY",
    NewMerchant = "NEW_MERCHANT",
    NewDevice = "NEW_DEVICE",
    ManyCountries = "MANY_COUNTRIES",
    RiskyTerminal = "RISKY_TERMINAL",
    DeviceManyCards = "DEVICE_MANY_CARDS",
    CardCompromised = "CARD_COMPROMISED",
    HighRiskMcc = "HIGH_RISK_MCC",
    NightTime = "NIGHT_TIME",
    CashAdvance = "CASH_ADVANCE",
    /// A feature among the largest pushes of the fraud model's score.
    ModelContribution = "MODEL_CONTRIBUTION",
    /// A rule of the active ruleset that gives no more specific reason.
    Rule = "RULE",
}

impl ReasonCode {
    /// The code with this stable name (`IMPOSSIBLE_TRAVEL`).
    pub fn parse(s: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reason for a decision, with a detail for the analyst (never a card number).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub detail: String,
    /// The id of the rule that gave this reason, when a rule did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

impl Reason {
    pub fn new(code: ReasonCode, detail: impl Into<String>) -> Reason {
        Reason {
            code,
            detail: detail.into(),
            rule: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_parse_from_their_names() {
        for &c in ReasonCode::ALL {
            assert_eq!(ReasonCode::parse(c.as_str()), Some(c));
            // The stable name is the serialized one.
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        let mut names: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ReasonCode::ALL.len());
        assert_eq!(ReasonCode::parse("NOPE"), None);
    }

    #[test]
    fn codes_serialize_as_the_contract_says() {
        for c in ResponseCode::ALL {
            assert_eq!(ResponseCode::parse(c.as_str()), Some(c));
        }
        assert_eq!(
            serde_json::to_string(&ReasonCode::ImpossibleTravel).unwrap(),
            "\"IMPOSSIBLE_TRAVEL\""
        );
        assert_eq!(serde_json::to_string(&Decision::Hold).unwrap(), "\"hold\"");
        assert_eq!(
            serde_json::to_string(&ResponseCode::AdditionalAuthRequired).unwrap(),
            "\"1A\""
        );
    }

    #[test]
    fn reason_code_strings_match_serde() {
        let all = [
            ReasonCode::CardNotFound,
            ReasonCode::InvalidCardNumber,
            ReasonCode::CardExpired,
            ReasonCode::ExpiryMismatch,
            ReasonCode::CardStatus,
            ReasonCode::CscMismatch,
            ReasonCode::CscMissing,
            ReasonCode::CardTesting,
            ReasonCode::PinIncorrect,
            ReasonCode::PinTriesExceeded,
            ReasonCode::PinUnverifiable,
            ReasonCode::ImpossibleTravel,
            ReasonCode::AmountAboveProfile,
            ReasonCode::HighVelocity,
            ReasonCode::NewCountry,
            ReasonCode::NewMerchant,
            ReasonCode::NewDevice,
            ReasonCode::ManyCountries,
            ReasonCode::RiskyTerminal,
            ReasonCode::DeviceManyCards,
            ReasonCode::CardCompromised,
            ReasonCode::HighRiskMcc,
            ReasonCode::NightTime,
            ReasonCode::CashAdvance,
            ReasonCode::ModelContribution,
        ];
        for c in all {
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
    }
}
