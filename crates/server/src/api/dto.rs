//! Request and response bodies of the JSON API, and their validation into domain values.
//! Every field is checked; errors name the field; unknown fields are refused.

use super::error::ApiError;
use crate::registry::{Contact, CscMethod, Home, Notifications, PinMethod};
use cardguard_core::{
    Authorization, CardData, Channel, Country, Currency, Device, Expiry, Location, Mcc, Merchant,
    Money, Pan, Timestamp, TxType,
};
use serde::{Deserialize, Serialize};

fn text(field: &str, v: &str, max: usize) -> Result<String, ApiError> {
    if v.trim().is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(ApiError::field(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::field(
            field,
            "must not contain control characters",
        ));
    }
    Ok(v.to_owned())
}

/// Identifiers: 1 to 64 characters of letters, digits and `._:-`.
fn ident(field: &str, v: &str) -> Result<String, ApiError> {
    if v.is_empty() || v.len() > 64 {
        return Err(ApiError::field(field, "must be 1 to 64 characters"));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    {
        return Err(ApiError::field(
            field,
            "may contain only letters, digits and . _ : -",
        ));
    }
    Ok(v.to_owned())
}

fn parsed<T>(field: &str, r: Result<T, cardguard_core::ParseError>) -> Result<T, ApiError> {
    r.map_err(|e| ApiError::field(field, e.to_string()))
}

fn location(
    prefix: &str,
    lat: Option<f64>,
    lon: Option<f64>,
) -> Result<Option<Location>, ApiError> {
    match (lat, lon) {
        (None, None) => Ok(None),
        (Some(lat), Some(lon)) => Location::new(lat, lon)
            .map(Some)
            .map_err(|e| ApiError::field(format!("{prefix}lat"), e.to_string())),
        (Some(_), None) => Err(ApiError::field(
            format!("{prefix}lon"),
            "is required with lat",
        )),
        (None, Some(_)) => Err(ApiError::field(
            format!("{prefix}lat"),
            "is required with lon",
        )),
    }
}

fn digits(field: &str, v: &str, min: usize, max: usize) -> Result<String, ApiError> {
    if v.len() < min || v.len() > max || !v.bytes().all(|b| b.is_ascii_digit()) {
        let what = if min == max {
            format!("{min} digits")
        } else {
            format!("{min} to {max} digits")
        };
        return Err(ApiError::field(field, format!("must be {what}")));
    }
    Ok(v.to_owned())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountReq {
    pub value: u64,
    pub currency: String,
}

impl AmountReq {
    fn to_money(&self, prefix: &str) -> Result<Money, ApiError> {
        let c = parsed(
            &format!("{prefix}.currency"),
            Currency::parse(&self.currency),
        )?;
        parsed(&format!("{prefix}.value"), Money::new(self.value, c))
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
                Some(
                    crate::keys::unhex(b)
                        .ok_or_else(|| ApiError::field("card.pin_block", "must be hex digits"))?,
                )
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
        let channel = match self.channel.as_str() {
            "card_present" => Channel::CardPresent,
            "ecommerce" => Channel::Ecommerce,
            "moto" => Channel::Moto,
            "atm" => Channel::Atm,
            _ => {
                return Err(ApiError::field(
                    "channel",
                    "must be one of card_present, ecommerce, moto, atm",
                ));
            }
        };
        let tx_type = match self.tx_type.as_str() {
            "purchase" => TxType::Purchase,
            "cash_advance" => TxType::CashAdvance,
            "refund" => TxType::Refund,
            _ => {
                return Err(ApiError::field(
                    "type",
                    "must be one of purchase, cash_advance, refund",
                ));
            }
        };
        let device = match &self.device {
            Some(d) => Some(Device {
                id: ident("device.id", &d.id)?,
                ip: match &d.ip {
                    Some(ip) => Some(ip.parse().map_err(|_| {
                        ApiError::field("device.ip", "must be an IPv4 or IPv6 address")
                    })?),
                    None => None,
                },
                user_agent: match &d.user_agent {
                    Some(u) => Some(text("device.user_agent", u, 512)?),
                    None => None,
                },
            }),
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
            },
            offset,
        ))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReasonResp {
    pub code: String,
    pub detail: String,
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
                })
                .collect(),
            card_token: r.tx.card_token.to_string(),
            last4: r.tx.last4.to_string(),
            model: r.outcome.model.clone(),
        }
    }
}

// ---------------------------------------------------------------- cards

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollReq {
    pub number: String,
    pub expiry: String,
    pub cardholder_id: String,
    pub product: String,
    pub status: String,
    pub service_code: String,
    pub csc: CscReq,
    #[serde(default)]
    pub pin: Option<PinReq>,
    pub contact: ContactReq,
    #[serde(default)]
    pub notifications: Option<NotificationsReq>,
    #[serde(default)]
    pub home: Option<HomeReq>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CscReq {
    pub method: String,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinReq {
    pub method: String,
    pub key_id: String,
    #[serde(default)]
    pub pvki: Option<u8>,
    #[serde(default)]
    pub pvv: Option<String>,
    #[serde(default)]
    pub offset: Option<String>,
    #[serde(default)]
    pub decimalization_table: Option<String>,
    #[serde(default)]
    pub validation_offset: Option<usize>,
    #[serde(default)]
    pub validation_length: Option<usize>,
    #[serde(default)]
    pub pad: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactReq {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    pub language: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsReq {
    #[serde(default)]
    pub usage_threshold: Option<AmountReq>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeReq {
    pub country: String,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub lat: Option<f64>,
    #[serde(default)]
    pub lon: Option<f64>,
}

/// A validated enrollment: the parts the server still has to key (token, hashes).
pub struct Enrollment {
    pub pan: Pan,
    pub brand: cardguard_cardsec::Brand,
    pub expiry: Expiry,
    pub cardholder_id: String,
    pub product: String,
    pub status: cardguard_engine::CardStatus,
    pub service_code: String,
    /// `Ok(method)` for a CVK, `Err(value)` for a stored code still to be hashed.
    pub csc: Result<CscMethod, String>,
    pub pin: Option<PinMethod>,
    pub contact: Contact,
    pub notifications: Notifications,
    pub home: Option<Home>,
}

impl EnrollReq {
    pub fn validate(&self, keys: &crate::keys::KeyRing) -> Result<Enrollment, ApiError> {
        let pan = parsed("number", Pan::parse(&self.number))?;
        let brand = cardguard_cardsec::check_pan(&pan)
            .map_err(|e| ApiError::field("number", e.to_string()))?;
        let expiry = parsed("expiry", Expiry::parse(&self.expiry))?;
        let status = cardguard_engine::CardStatus::parse(&self.status).ok_or_else(|| {
            ApiError::field(
                "status",
                "must be one of active, inactive, blocked, lost, stolen, closed",
            )
        })?;
        let service_code = digits("service_code", &self.service_code, 3, 3)?;
        let csc = match self.csc.method.as_str() {
            "cvv-3des" => {
                if self.csc.value.is_some() {
                    return Err(ApiError::field("csc.value", "is not used with cvv-3des"));
                }
                let id = self
                    .csc
                    .key_id
                    .as_deref()
                    .ok_or_else(|| ApiError::field("csc.key_id", "is required"))?;
                if !keys.cvk.contains_key(id) {
                    return Err(ApiError::field(
                        "csc.key_id",
                        "names no configured key in [keys.cvk]",
                    ));
                }
                Ok(CscMethod::Cvv3des {
                    key_id: id.to_owned(),
                })
            }
            "stored" => {
                if self.csc.key_id.is_some() {
                    return Err(ApiError::field("csc.key_id", "is not used with stored"));
                }
                let v = self
                    .csc
                    .value
                    .as_deref()
                    .ok_or_else(|| ApiError::field("csc.value", "is required"))?;
                let n = brand.csc_len();
                Err(digits("csc.value", v, n, n)?)
            }
            _ => return Err(ApiError::field("csc.method", "must be cvv-3des or stored")),
        };
        let pin = match &self.pin {
            None => None,
            Some(p) => {
                if !keys.pvk.contains_key(&p.key_id) {
                    return Err(ApiError::field(
                        "pin.key_id",
                        "names no configured key in [keys.pvk]",
                    ));
                }
                Some(match p.method.as_str() {
                    "visa-pvv" => {
                        let pvki = p
                            .pvki
                            .ok_or_else(|| ApiError::field("pin.pvki", "is required"))?;
                        if pvki > 9 {
                            return Err(ApiError::field("pin.pvki", "must be 0 to 9"));
                        }
                        let pvv = p
                            .pvv
                            .as_deref()
                            .ok_or_else(|| ApiError::field("pin.pvv", "is required"))?;
                        PinMethod::VisaPvv {
                            key_id: p.key_id.clone(),
                            pvki,
                            pvv: digits("pin.pvv", pvv, 4, 4)?,
                        }
                    }
                    "ibm3624" => {
                        let offset = p
                            .offset
                            .as_deref()
                            .ok_or_else(|| ApiError::field("pin.offset", "is required"))?;
                        let d = cardguard_cardsec::pin::Ibm3624::default();
                        let table = match &p.decimalization_table {
                            Some(t) => digits("pin.decimalization_table", t, 16, 16)?,
                            None => d.decimalization_table,
                        };
                        let vo = p.validation_offset.unwrap_or(d.pan_offset);
                        let vl = p
                            .validation_length
                            .unwrap_or(d.pan_length.min(pan.expose().len()));
                        if vl == 0 || vl > 16 || vo + vl > pan.expose().len() {
                            return Err(ApiError::field(
                                "pin.validation_length",
                                "validation data must be 1 to 16 digits within the card number",
                            ));
                        }
                        let pad = match &p.pad {
                            Some(s) if s.len() == 1 && s.chars().all(|c| c.is_ascii_hexdigit()) => {
                                s.chars().next().unwrap_or('F')
                            }
                            Some(_) => {
                                return Err(ApiError::field("pin.pad", "must be one hex digit"));
                            }
                            None => d.pad,
                        };
                        PinMethod::Ibm3624 {
                            key_id: p.key_id.clone(),
                            offset: digits("pin.offset", offset, 4, 12)?,
                            decimalization_table: table,
                            validation_offset: vo,
                            validation_length: vl,
                            pad,
                        }
                    }
                    _ => return Err(ApiError::field("pin.method", "must be visa-pvv or ibm3624")),
                })
            }
        };
        let c = &self.contact;
        let email = match &c.email {
            Some(e) => {
                let e = text("contact.email", e, 254)?;
                let ok = e.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.')
                }) && !e.contains(char::is_whitespace);
                if !ok {
                    return Err(ApiError::field("contact.email", "must be an email address"));
                }
                Some(e)
            }
            None => None,
        };
        let phone = match &c.phone {
            Some(p) => {
                let ok = p.starts_with('+')
                    && (8..=15).contains(&(p.len() - 1))
                    && p[1..].bytes().all(|b| b.is_ascii_digit());
                if !ok {
                    return Err(ApiError::field(
                        "contact.phone",
                        "must be an E.164 number (+ and 8 to 15 digits)",
                    ));
                }
                Some(p.clone())
            }
            None => None,
        };
        if !matches!(c.language.as_str(), "ja" | "en") {
            return Err(ApiError::field("contact.language", "must be ja or en"));
        }
        let contact = Contact {
            email,
            phone,
            language: c.language.clone(),
        };
        let mut notifications = Notifications {
            usage_threshold: Money {
                value: 5000,
                currency: Currency::JPY,
            },
            channels: if contact.email.is_some() {
                vec!["email".into()]
            } else {
                Vec::new()
            },
        };
        if let Some(n) = &self.notifications {
            if let Some(t) = &n.usage_threshold {
                notifications.usage_threshold = t.to_money("notifications.usage_threshold")?;
            }
            if let Some(ch) = &n.channels {
                let mut out: Vec<String> = Vec::new();
                for (i, x) in ch.iter().enumerate() {
                    let field = format!("notifications.channels[{i}]");
                    match x.as_str() {
                        "email" if contact.email.is_none() => {
                            return Err(ApiError::field(field, "email needs contact.email"));
                        }
                        "sms" if contact.phone.is_none() => {
                            return Err(ApiError::field(field, "sms needs contact.phone"));
                        }
                        "email" | "sms" | "push" => {}
                        _ => return Err(ApiError::field(field, "must be email, sms or push")),
                    }
                    if !out.contains(x) {
                        out.push(x.clone());
                    }
                }
                notifications.channels = out;
            }
        }
        let home = match &self.home {
            Some(h) => Some(Home {
                country: parsed("home.country", Country::parse(&h.country))?,
                city: match &h.city {
                    Some(c) => Some(text("home.city", c, 100)?),
                    None => None,
                },
                location: location("home.", h.lat, h.lon)?,
            }),
            None => None,
        };
        Ok(Enrollment {
            pan,
            brand,
            expiry,
            cardholder_id: ident("cardholder_id", &self.cardholder_id)?,
            product: ident("product", &self.product)?,
            status,
            service_code,
            csc,
            pin,
            contact,
            notifications,
            home,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollResp {
    pub card_token: String,
    pub last4: String,
    pub brand: String,
    pub created: bool,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelResp {
    pub authorization_id: String,
    pub fraud: bool,
    pub card_token: String,
}
