//! Request and response bodies of the JSON API, and their validation into domain values.
//! Every field is checked; errors name the field; unknown fields are refused.

use super::error::ApiError;
use cardguard_app::validate::{
    digits, hex_bytes, ident, location, money, optional_ip, optional_text, parsed, text,
};
use cardguard_core::{
    Authorization, CardData, Channel, Country, Device, Expiry, Mcc, Merchant, Money, Pan,
    Timestamp, TxType,
};
use serde::{Deserialize, Serialize};

/// The enrollment body is the application's enrollment record (the same one bulk files use).
pub type EnrollReq = cardguard_app::CardRecord;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountReq {
    pub value: u64,
    pub currency: String,
}

impl AmountReq {
    pub fn to_money(&self, prefix: &str) -> Result<Money, ApiError> {
        Ok(money(prefix, self.value, &self.currency)?)
    }
}

// ---------------------------------------------------------------- authorizations

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationReq {
    pub id: String,
    pub timestamp: String,
    pub card: CardReq,
    pub amount: AmountReq,
    pub merchant: MerchantReq,
    pub channel: String,
    #[serde(rename = "type")]
    pub tx_type: String,
    #[serde(default)]
    pub device: Option<DeviceReq>,
    /// The purchaser's email address as the merchant has it (only its domain is kept).
    #[serde(default)]
    pub email: Option<String>,
    /// The result of a step-up authentication of this purchase.
    #[serde(default)]
    pub authentication: Option<AuthenticationRef>,
}

/// The authentication value (`POST /v1/authentications`' answer on `Y`) an authorization
/// presents.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationRef {
    pub value: String,
}

impl AuthenticationRef {
    pub fn validate(&self, field: &str) -> Result<String, ApiError> {
        let v = &self.value;
        if v.is_empty()
            || v.len() > 64
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ApiError::field(
                field,
                "must be the authentication value an authentication gave (base64url)",
            ));
        }
        Ok(v.clone())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardReq {
    pub number: String,
    pub expiry: String,
    #[serde(default)]
    pub csc: Option<String>,
    #[serde(default)]
    pub pin_block: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantReq {
    pub id: String,
    pub terminal_id: String,
    pub name: String,
    pub mcc: String,
    pub country: String,
    pub city: String,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceReq {
    pub id: String,
    #[serde(default)]
    pub ip: Option<String>,
    /// ISO 3166 alpha-2 country of `ip`, as the acquirer located it.
    #[serde(default)]
    pub ip_country: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

impl AuthorizationReq {
    /// The validated authorization and the UTC offset its timestamp was written in.
    pub fn validate(&self) -> Result<(Authorization, i16), ApiError> {
        let id = ident("id", &self.id)?;
        let (timestamp, offset) = parsed(
            "timestamp",
            Timestamp::parse_rfc3339_with_offset(&self.timestamp),
        )?;
        let pan = parsed("card.number", Pan::parse(&self.card.number))?;
        let expiry = parsed("card.expiry", Expiry::parse(&self.card.expiry))?;
        let csc = match &self.card.csc {
            Some(c) => Some(digits("card.csc", c, 3, 4)?),
            None => None,
        };
        let pin_block = match &self.card.pin_block {
            Some(b) => {
                if !(b.len() == 16 || b.len() == 32) {
                    return Err(ApiError::field(
                        "card.pin_block",
                        "must be 16 hex digits (formats 0, 3) or 32 (format 4)",
                    ));
                }
                Some(hex_bytes("card.pin_block", b)?)
            }
            None => None,
        };
        let amount = self.amount.to_money("amount")?;
        if amount.value == 0 {
            return Err(ApiError::field(
                "amount.value",
                "must be at least 1 minor unit",
            ));
        }
        let m = &self.merchant;
        let merchant = Merchant {
            id: ident("merchant.id", &m.id)?,
            terminal_id: ident("merchant.terminal_id", &m.terminal_id)?,
            name: text("merchant.name", &m.name, 100)?,
            mcc: parsed("merchant.mcc", Mcc::parse(&m.mcc))?,
            country: parsed("merchant.country", Country::parse(&m.country))?,
            city: text("merchant.city", &m.city, 100)?,
            location: location("merchant.", m.lat, m.lon)?,
        };
        let channel = parsed("channel", Channel::parse(&self.channel))?;
        let tx_type = parsed("type", TxType::parse(&self.tx_type))?;
        let device = match &self.device {
            Some(d) => Some(Device {
                id: ident("device.id", &d.id)?,
                ip: optional_ip("device.ip", &d.ip)?,
                ip_country: match &d.ip_country {
                    Some(c) => Some(parsed("device.ip_country", Country::parse(c))?),
                    None => None,
                },
                user_agent: optional_text("device.user_agent", &d.user_agent, 512)?,
            }),
            None => None,
        };
        let email_domain = match &self.email {
            Some(e) => {
                let bad = || ApiError::field("email", "must be an email address");
                let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
                if local.is_empty() || e.len() > 254 {
                    return Err(bad());
                }
                Some(
                    cardguard_engine::ListKind::EmailDomains
                        .normalize(domain)
                        .map_err(|_| bad())?,
                )
            }
            None => None,
        };
        let card = CardData {
            pan,
            expiry,
            csc,
            pin_block,
        };
        Ok((
            Authorization {
                id,
                timestamp,
                card,
                amount,
                merchant,
                channel,
                tx_type,
                device,
                email_domain,
                authentication: self
                    .authentication
                    .as_ref()
                    .map(|a| a.validate("authentication.value"))
                    .transpose()?,
            },
            offset,
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonResp {
    pub code: String,
    pub detail: String,
    /// The id of the rule that gave the reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// The answer to an authorization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationResp {
    pub authorization_id: String,
    pub id: String,
    pub decision: String,
    pub response_code: String,
    pub risk_score: u8,
    pub reasons: Vec<ReasonResp>,
    pub card_token: String,
    pub last4: String,
    pub model: String,
    /// The ruleset version that decided (absent when no rule was consulted, as for a
    /// card-data failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ruleset_version: Option<u64>,
    /// Every rule that matched, whichever action won.
    #[serde(default)]
    pub matched_rules: Vec<String>,
}

impl AuthorizationResp {
    pub fn from_record(r: &cardguard_engine::AuthRecord) -> AuthorizationResp {
        AuthorizationResp {
            authorization_id: r.authorization_id.clone(),
            id: r.tx.id.clone(),
            decision: r.outcome.decision.as_str().into(),
            response_code: r.outcome.response_code.as_str().into(),
            risk_score: r.outcome.risk_score,
            reasons: r
                .outcome
                .reasons
                .iter()
                .map(|x| ReasonResp {
                    code: x.code.as_str().into(),
                    detail: x.detail.clone(),
                    rule: x.rule.clone(),
                })
                .collect(),
            card_token: r.tx.card_token.to_string(),
            last4: r.tx.last4.to_string(),
            model: r.outcome.model.clone(),
            ruleset_version: Some(r.outcome.ruleset_version).filter(|v| *v > 0),
            matched_rules: r.outcome.matched_rules.clone(),
        }
    }
}

// ---------------------------------------------------------------- cards

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResp {
    pub card_token: String,
    pub last4: String,
    pub brand: String,
    pub created: bool,
}

impl From<cardguard_app::Enrolled> for EnrollResp {
    fn from(e: cardguard_app::Enrolled) -> EnrollResp {
        EnrollResp {
            card_token: e.card_token.to_string(),
            last4: e.last4,
            brand: e.brand.to_owned(),
            created: e.created,
        }
    }
}

/// Cards in one `POST /v1/cards:batch`, and the largest body it takes.
pub const MAX_BATCH: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 16 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchReq {
    pub cards: Vec<EnrollReq>,
}

/// One card's result in a batch: enrolled, or the error that refused it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItem {
    pub index: usize,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub card: Option<EnrollResp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<BatchError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResp {
    pub created: usize,
    pub updated: usize,
    pub failed: usize,
    pub results: Vec<BatchItem>,
}

impl BatchResp {
    pub fn new(results: Vec<Result<cardguard_app::Enrolled, cardguard_app::AppError>>) -> Self {
        let mut out = BatchResp {
            created: 0,
            updated: 0,
            failed: 0,
            results: Vec::with_capacity(results.len()),
        };
        for (index, r) in results.into_iter().enumerate() {
            let item = match r {
                Ok(e) => {
                    if e.created {
                        out.created += 1;
                    } else {
                        out.updated += 1;
                    }
                    BatchItem {
                        index,
                        card: Some(e.into()),
                        error: None,
                    }
                }
                Err(e) => {
                    out.failed += 1;
                    let e = ApiError::from(e);
                    BatchItem {
                        index,
                        card: None,
                        error: Some(BatchError {
                            code: e.code.to_owned(),
                            message: e.message,
                            field: e.field,
                        }),
                    }
                }
            };
            out.results.push(item);
        }
        out
    }
}

// ---------------------------------------------------------------- labels

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelReq {
    pub authorization_id: String,
    pub fraud: bool,
    #[serde(default)]
    pub source: Option<String>,
}

impl LabelReq {
    pub fn validate(&self) -> Result<(), ApiError> {
        ident("authorization_id", &self.authorization_id)?;
        if let Some(s) = &self.source {
            ident("source", s)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- reversals

/// A reversal: the original named by the client's own request id (what an acquirer whose
/// request timed out knows) or by cardguard's authorization id, exactly one of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReversalReq {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub authorization_id: Option<String>,
    /// The original's amount, checked when given.
    #[serde(default)]
    pub amount: Option<AmountReq>,
    /// The acquirer's own reference of the reversal, kept in the log.
    #[serde(default)]
    pub reference: Option<String>,
}

impl ReversalReq {
    pub fn to_domain(&self) -> Result<cardguard_app::ReversalRequest, ApiError> {
        use cardguard_app::Original;
        let original = match (&self.id, &self.authorization_id) {
            (Some(id), None) => Original::Request(ident("id", id)?),
            (None, Some(a)) => Original::Authorization(ident("authorization_id", a)?),
            _ => {
                return Err(cardguard_app::FieldError::new(
                    "id",
                    "give either id (the request id of the original) or authorization_id",
                )
                .into());
            }
        };
        Ok(cardguard_app::ReversalRequest {
            original,
            pan: None,
            amount: self
                .amount
                .as_ref()
                .map(|a| a.to_money("amount"))
                .transpose()?,
            source: "api".into(),
            reference: self
                .reference
                .as_deref()
                .map(|r| ident("reference", r))
                .transpose()?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalResp {
    pub authorization_id: String,
    pub reversed: bool,
    /// False when it had been reversed before (this request changed nothing).
    pub first: bool,
}

// ---------------------------------------------------------------- holds and notifications

/// `?state=…&limit=…` of a list.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub limit: Option<usize>,
}

impl ListQuery {
    /// At most 1,000; 100 when not given.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(100),
            Some(n @ 1..=1000) => Ok(n),
            Some(_) => Err(cardguard_app::FieldError::new("limit", "must be 1 to 1000").into()),
        }
    }

    /// The state asked for, if any, when it is one of `allowed`.
    pub fn state_in(&self, allowed: &[&'static str]) -> Result<Option<&'static str>, ApiError> {
        match &self.state {
            None => Ok(None),
            Some(s) => allowed
                .iter()
                .find(|a| *a == s)
                .map(|a| Some(*a))
                .ok_or_else(|| {
                    cardguard_app::FieldError::new(
                        "state",
                        format!("must be one of {}", allowed.join(", ")),
                    )
                    .into()
                }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldResp {
    pub authorization_id: String,
    pub card_token: String,
    pub last4: String,
    pub merchant: String,
    pub amount: AmountResp,
    pub created: String,
    pub expires: String,
    /// `open`, `released`, `refused` or `expired`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answered: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountResp {
    pub value: u64,
    pub currency: String,
}

fn rfc3339(ms: i64) -> String {
    Timestamp(ms).to_rfc3339()
}

impl HoldResp {
    pub fn from_row(h: &cardguard_store::HoldRow, now_ms: i64) -> HoldResp {
        HoldResp {
            authorization_id: h.authorization_id.clone(),
            card_token: h.card_token.clone(),
            last4: h.last4.clone(),
            merchant: h.merchant.clone(),
            amount: AmountResp {
                value: h.amount,
                currency: h.currency.clone(),
            },
            created: rfc3339(h.created_ms),
            expires: rfc3339(h.expires_ms),
            state: h.state(now_ms).into(),
            answered: h.answered_ms.map(rfc3339),
            via: h.via.clone(),
        }
    }
}

/// The cardholder's answer, given through the API.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerReq {
    pub answer: String,
}

impl AnswerReq {
    pub fn yes(&self) -> Result<bool, ApiError> {
        match self.answer.as_str() {
            "yes" => Ok(true),
            "no" => Ok(false),
            _ => Err(cardguard_app::FieldError::new("answer", "must be yes or no").into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerResp {
    pub authorization_id: String,
    /// The answer in force (the first one given).
    pub answer: String,
    /// False when it had been answered before.
    pub first: bool,
}

/// A notification as operators see it: its recipient and text are not shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationResp {
    pub key: String,
    pub authorization_id: String,
    pub kind: String,
    pub channel: String,
    pub state: String,
    pub tries: u32,
    pub created: String,
    pub next_try: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl NotificationResp {
    pub fn from_row(r: &cardguard_store::OutboxRow) -> NotificationResp {
        NotificationResp {
            key: r.key.clone(),
            authorization_id: r.authorization_id.clone(),
            kind: r.kind.clone(),
            channel: r.channel.clone(),
            state: r.state.as_str().into(),
            tries: r.tries,
            created: rfc3339(r.created_ms),
            next_try: rfc3339(r.next_ms),
            last_error: r.last_error.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelResp {
    pub authorization_id: String,
    pub fraud: bool,
    pub card_token: String,
}
