//! The enrollment record: a card as an issuer brings it (over the API, in a JSON Lines or
//! CSV file), and its validation into a [`NewCard`] with the domain's rules: the named keys
//! exist, a channel has its contact, the PIN's validation data lies within the card number,
//! the usage notice defaults to 5,000 JPY.

use crate::keys::KeyRing;
use crate::registry::{Contact, CscMethod, Home, Notifications, PinMethod};
use crate::validate::{FieldError, digits, ident, location, money, parsed, text};
use cardguard_core::{Country, Expiry, Money, Pan};
use serde::Deserialize;

/// An amount as exchanged: minor units and an ISO 4217 code.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmountRecord {
    pub value: u64,
    pub currency: String,
}

impl AmountRecord {
    pub fn to_money(&self, prefix: &str) -> Result<Money, FieldError> {
        money(prefix, self.value, &self.currency)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardRecord {
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CscReq {
    pub method: String,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactReq {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    pub language: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsReq {
    #[serde(default)]
    pub usage_threshold: Option<AmountRecord>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
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

/// A validated enrollment: the parts the application still has to key (token, hashes).
pub struct NewCard {
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

impl CardRecord {
    /// Checks every field and the card's rules against the key ring: the named keys exist,
    /// channels have their contact, the PIN's validation data lies within the card number.
    pub fn validate(&self, keys: &KeyRing) -> Result<NewCard, FieldError> {
        let pan = parsed("number", Pan::parse(&self.number))?;
        let brand = cardguard_cardsec::check_pan(&pan)
            .map_err(|e| FieldError::new("number", e.to_string()))?;
        let expiry = parsed("expiry", Expiry::parse(&self.expiry))?;
        let status = cardguard_engine::CardStatus::parse(&self.status).ok_or_else(|| {
            FieldError::new(
                "status",
                "must be one of active, inactive, blocked, lost, stolen, closed",
            )
        })?;
        let service_code = digits("service_code", &self.service_code, 3, 3)?;
        let csc = match self.csc.method.as_str() {
            "cvv-3des" => {
                if self.csc.value.is_some() {
                    return Err(FieldError::new("csc.value", "is not used with cvv-3des"));
                }
                let id = self
                    .csc
                    .key_id
                    .as_deref()
                    .ok_or_else(|| FieldError::new("csc.key_id", "is required"))?;
                if !keys.cvk.contains_key(id) {
                    return Err(FieldError::new(
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
                    return Err(FieldError::new("csc.key_id", "is not used with stored"));
                }
                let v = self
                    .csc
                    .value
                    .as_deref()
                    .ok_or_else(|| FieldError::new("csc.value", "is required"))?;
                let n = brand.csc_len();
                Err(digits("csc.value", v, n, n)?)
            }
            _ => return Err(FieldError::new("csc.method", "must be cvv-3des or stored")),
        };
        let pin = match &self.pin {
            None => None,
            Some(p) => {
                if !keys.pvk.contains_key(&p.key_id) {
                    return Err(FieldError::new(
                        "pin.key_id",
                        "names no configured key in [keys.pvk]",
                    ));
                }
                Some(match p.method.as_str() {
                    "visa-pvv" => {
                        let pvki = p
                            .pvki
                            .ok_or_else(|| FieldError::new("pin.pvki", "is required"))?;
                        if pvki > 9 {
                            return Err(FieldError::new("pin.pvki", "must be 0 to 9"));
                        }
                        let pvv = p
                            .pvv
                            .as_deref()
                            .ok_or_else(|| FieldError::new("pin.pvv", "is required"))?;
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
                            .ok_or_else(|| FieldError::new("pin.offset", "is required"))?;
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
                            return Err(FieldError::new(
                                "pin.validation_length",
                                "validation data must be 1 to 16 digits within the card number",
                            ));
                        }
                        let pad = match &p.pad {
                            Some(s) if s.len() == 1 && s.chars().all(|c| c.is_ascii_hexdigit()) => {
                                s.chars().next().unwrap_or('F')
                            }
                            Some(_) => {
                                return Err(FieldError::new("pin.pad", "must be one hex digit"));
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
                    _ => return Err(FieldError::new("pin.method", "must be visa-pvv or ibm3624")),
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
                    return Err(FieldError::new("contact.email", "must be an email address"));
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
                    return Err(FieldError::new(
                        "contact.phone",
                        "must be an E.164 number (+ and 8 to 15 digits)",
                    ));
                }
                Some(p.clone())
            }
            None => None,
        };
        if !matches!(c.language.as_str(), "ja" | "en") {
            return Err(FieldError::new("contact.language", "must be ja or en"));
        }
        let contact = Contact {
            email,
            phone,
            language: c.language.clone(),
        };
        let mut notifications = Notifications::default_for(&contact);
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
                            return Err(FieldError::new(field, "email needs contact.email"));
                        }
                        "sms" if contact.phone.is_none() => {
                            return Err(FieldError::new(field, "sms needs contact.phone"));
                        }
                        "email" | "sms" | "push" => {}
                        _ => return Err(FieldError::new(field, "must be email, sms or push")),
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
        Ok(NewCard {
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
