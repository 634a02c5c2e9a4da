//! The enrollment record: a card as an issuer brings it (over the API, in a JSON Lines or
//! CSV file), and its validation into a [`NewCard`] with the domain's rules: the named keys
//! exist, a channel has its contact, the PIN's validation data lies within the card number,
//! the usage notice defaults to 5,000 JPY.

use crate::keys::KeyRing;
use crate::registry::{Contact, CscMethod, Home, Notifications, PinMethod};
use crate::validate::{FieldError, digits, ident, location, money, parsed, text};
use cardguard_core::{Country, Expiry, Money, Pan};
use serde::{Deserialize, Serialize};

/// An amount as exchanged: minor units and an ISO 4217 code.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// One card as the issuer brings it: the body of `POST /v1/cards`, a line of a JSON Lines
/// file, or a CSV row whose columns are the field paths joined with dots.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardRecord {
    pub number: String,
    pub expiry: String,
    pub cardholder_id: String,
    pub product: String,
    pub status: String,
    pub service_code: String,
    pub csc: CscRecord,
    #[serde(default)]
    pub pin: Option<PinRecord>,
    pub contact: ContactRecord,
    #[serde(default)]
    pub notifications: Option<NotificationsRecord>,
    #[serde(default)]
    pub home: Option<HomeRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CscRecord {
    pub method: String,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinRecord {
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactRecord {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    pub language: String,
    /// An IANA time zone (`Asia/Tokyo`); notices show times in it.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsRecord {
    #[serde(default)]
    pub usage_threshold: Option<AmountRecord>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeRecord {
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

/// CSV columns whose cells are numbers.
const NUMERIC_COLUMNS: &[&str] = &[
    "pin.pvki",
    "pin.validation_offset",
    "pin.validation_length",
    "notifications.usage_threshold.value",
    "home.lat",
    "home.lon",
];
/// CSV columns whose cells are lists separated by `;`.
const LIST_COLUMNS: &[&str] = &["notifications.channels"];

impl CardRecord {
    /// The columns a CSV file of cards may have (the header names them, in any order).
    pub const CSV_COLUMNS: &'static [&'static str] = &[
        "number",
        "expiry",
        "cardholder_id",
        "product",
        "status",
        "service_code",
        "csc.method",
        "csc.key_id",
        "csc.value",
        "pin.method",
        "pin.key_id",
        "pin.pvki",
        "pin.pvv",
        "pin.offset",
        "pin.decimalization_table",
        "pin.validation_offset",
        "pin.validation_length",
        "pin.pad",
        "contact.email",
        "contact.phone",
        "contact.language",
        "contact.time_zone",
        "notifications.usage_threshold.value",
        "notifications.usage_threshold.currency",
        "notifications.channels",
        "home.country",
        "home.city",
        "home.lat",
        "home.lon",
    ];

    /// A record from a CSV row: `(column, cell)` pairs, the column a dotted field path. An
    /// empty cell is an absent field; numbers and `;`-separated lists where the field
    /// takes them.
    pub fn from_columns<'a>(
        cells: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<CardRecord, FieldError> {
        use serde_json::{Map, Value};
        let mut root = Map::new();
        for (column, cell) in cells {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            let value = if NUMERIC_COLUMNS.contains(&column) {
                let n = if column.ends_with("lat") || column.ends_with("lon") {
                    cell.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                } else {
                    cell.parse::<u64>().ok().map(serde_json::Number::from)
                };
                Value::Number(n.ok_or_else(|| FieldError::new(column, "must be a number"))?)
            } else if LIST_COLUMNS.contains(&column) {
                Value::Array(
                    cell.split(';')
                        .map(|x| Value::String(x.trim().to_owned()))
                        .collect(),
                )
            } else {
                Value::String(cell.to_owned())
            };
            let mut parts = column.split('.').peekable();
            let mut at = &mut root;
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    at.insert(part.to_owned(), value);
                    break;
                }
                let next = at
                    .entry(part.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                at = match next {
                    Value::Object(m) => m,
                    _ => return Err(FieldError::new(column, "is not a known field")),
                };
            }
        }
        Ok(crate::validate::decode_value(Value::Object(root))?)
    }

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
                "must be one of active, inactive, blocked, cnp_blocked, lost, stolen, closed",
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
                        let digits_in_pan = pan.expose().len();
                        if vo >= digits_in_pan {
                            return Err(FieldError::new(
                                "pin.validation_offset",
                                format!("must be 0 to {}", digits_in_pan - 1),
                            ));
                        }
                        if vl == 0 || vl > 16 || vo + vl > digits_in_pan {
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
        let time_zone = match &c.time_zone {
            Some(z) => {
                if jiff::tz::TimeZone::get(z).is_err() {
                    return Err(FieldError::new(
                        "contact.time_zone",
                        "must be an IANA time zone such as Asia/Tokyo",
                    ));
                }
                Some(z.clone())
            }
            None => None,
        };
        let contact = Contact {
            email,
            phone,
            language: c.language.clone(),
            time_zone,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[(&'static str, &'static str)]) -> Result<CardRecord, FieldError> {
        CardRecord::from_columns(cells.iter().copied())
    }

    const BASE: &[(&str, &str)] = &[
        ("number", "4123456789012349"),
        ("expiry", "2029-12"),
        ("cardholder_id", "ch-1"),
        ("product", "gold"),
        ("status", "active"),
        ("service_code", "101"),
        ("csc.method", "stored"),
        ("csc.value", "123"),
        ("csc.key_id", ""),
        ("contact.language", "ja"),
        ("contact.email", "hanako@example.jp"),
    ];

    #[test]
    fn csv_columns_are_dotted_paths_with_numbers_and_lists() {
        let mut cells = BASE.to_vec();
        cells.extend([
            ("notifications.usage_threshold.value", "10000"),
            ("notifications.usage_threshold.currency", "JPY"),
            ("notifications.channels", "email; push"),
            ("home.country", "JP"),
            ("home.lat", "35.68"),
            ("home.lon", "139.76"),
        ]);
        let r = row(&cells).unwrap();
        assert_eq!(r.csc.key_id, None, "an empty cell is absent");
        let n = r.notifications.unwrap();
        assert_eq!(n.usage_threshold.unwrap().value, 10_000);
        assert_eq!(n.channels.unwrap(), ["email", "push"]);
        assert_eq!(r.home.unwrap().lat, Some(35.68));
        let mut bad = BASE.to_vec();
        bad.push(("home.lat", "north"));
        assert_eq!(row(&bad).unwrap_err().field, "home.lat");
        let mut bad = BASE.to_vec();
        bad.push(("shoe_size", "9"));
        let e = row(&bad).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("shoe_size", "is not a known field")
        );
        let e = row(&BASE[1..]).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("number", "is required")
        );
    }

    #[test]
    fn the_default_usage_notice_is_5000_jpy_by_email() {
        let keys = crate::keys::KeyRing::load(
            &crate::config::KeysConfig::default(),
            tempfile::tempdir().unwrap().path(),
        )
        .unwrap()
        .0;
        let card = row(BASE).unwrap().validate(&keys).unwrap();
        assert_eq!(
            card.notifications.usage_threshold,
            crate::registry::DEFAULT_USAGE_THRESHOLD
        );
        assert_eq!(card.notifications.channels, ["email"]);
        assert_eq!(card.contact.time_zone, None);
        // A time zone for the times in notices: an IANA name, checked.
        let mut cells = BASE.to_vec();
        cells.push(("contact.time_zone", "America/Los_Angeles"));
        let card = row(&cells).unwrap().validate(&keys).unwrap();
        assert_eq!(
            card.contact.time_zone.as_deref(),
            Some("America/Los_Angeles")
        );
        cells.pop();
        cells.push(("contact.time_zone", "Mars/Olympus_Mons"));
        let e = row(&cells).unwrap().validate(&keys).err().unwrap();
        assert_eq!(e.field, "contact.time_zone");
    }

    #[test]
    fn an_ibm3624_validation_offset_past_the_number_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = crate::config::KeysConfig::default();
        cfg.pvk
            .insert("pvk-1".into(), "0123456789ABCDEFFEDCBA9876543210".into());
        let keys = crate::keys::KeyRing::load(&cfg, dir.path()).unwrap().0;
        let with = |offset: &'static str| {
            let mut cells = BASE.to_vec();
            cells.extend([
                ("pin.method", "ibm3624"),
                ("pin.key_id", "pvk-1"),
                ("pin.offset", "1234"),
                ("pin.validation_offset", offset),
            ]);
            row(&cells).unwrap().validate(&keys)
        };
        assert!(with("0").is_ok());
        for bad in ["16", "18446744073709551615"] {
            let e = with(bad).err().unwrap();
            assert_eq!(e.field, "pin.validation_offset", "{bad}: {e:?}");
        }
        let e = with("4").err().unwrap();
        assert_eq!(e.field, "pin.validation_length", "{e:?}");
    }
}
