//! Risk-based step-up authentication, like 3-D Secure: an authentication request is
//! assessed with the card's state (the engine's decision on it as an online purchase) and
//! the device's history; a trusted device at low risk passes (`Y`, frictionless), anything
//! else is challenged (`C`) with the best factor the card has (a one-time code by SMS or
//! email, an authenticator app), refused (`R`) or not authenticated (`N`), or cannot be
//! performed (`U`: no factor).
//!
//! Secrets: one-time codes are 6 digits from the operating system's random source, kept
//! only as a keyed hash and compared in constant time; device tokens and authentication
//! values are MACs under keys of their own, kept as keyed hashes; authenticator-app keys are
//! encrypted. None of them is logged.

use crate::config::StepUpConfig;
use crate::keys::{KeyRing, hex, random_bytes};
use crate::registry::CardInfo;
use crate::{AppError, ClientId};
use cardguard_core::{CardData, CardToken, Merchant, Money, Timestamp};
use cardguard_engine::{AuthenticationRecord, CardChecks, CardStatus, Outcome};
use cardguard_store::{DeviceRow, SqliteStepUp};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use subtle::ConstantTimeEq;

/// 3-D Secure's transaction status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransStatus {
    /// Authenticated without friction.
    Y,
    /// A challenge is needed.
    C,
    /// Not authenticated.
    N,
    /// Rejected: do not authorize.
    R,
    /// Could not be performed.
    U,
}

impl TransStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TransStatus::Y => "Y",
            TransStatus::C => "C",
            TransStatus::N => "N",
            TransStatus::R => "R",
            TransStatus::U => "U",
        }
    }
}

/// A way for the cardholder to prove it is them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Factor {
    Passkey,
    Totp,
    Sms,
    Email,
}

impl Factor {
    pub const ALL: [Factor; 4] = [Factor::Passkey, Factor::Totp, Factor::Sms, Factor::Email];

    pub fn parse(s: &str) -> Option<Factor> {
        Factor::ALL.into_iter().find(|f| f.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Factor::Passkey => "passkey",
            Factor::Totp => "totp",
            Factor::Sms => "sms",
            Factor::Email => "email",
        }
    }

    /// Whether the factor is a code cardguard sends.
    pub fn sends_code(self) -> bool {
        matches!(self, Factor::Sms | Factor::Email)
    }
}

/// Where the purchase is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChannel {
    Browser,
    App,
}

/// What the browser told the merchant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserInfo {
    pub user_agent: Option<String>,
    pub ip: Option<std::net::IpAddr>,
    pub accept_language: Option<String>,
    pub screen: Option<String>,
    pub time_zone: Option<String>,
}

/// What the merchant knows of the cardholder's account with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountInfo {
    /// Days since the account was opened.
    pub age_days: Option<u32>,
    /// The shipping address is the billing address.
    pub shipping_matches_billing: Option<bool>,
    /// Purchases on the account in the last 24 hours.
    pub purchases_24h: Option<u32>,
}

/// An authentication request, validated: what a 3-D Secure authentication request carries.
#[derive(Debug, Clone)]
pub struct AuthenticationRequest {
    /// The requestor's id; the idempotency key.
    pub id: String,
    pub card: CardData,
    pub amount: Money,
    pub merchant: Merchant,
    pub merchant_url: Option<String>,
    pub channel: DeviceChannel,
    pub browser: BrowserInfo,
    /// The device token the device holds, when it has one.
    pub device_token: Option<String>,
    pub account: AccountInfo,
}

/// One reason of an assessment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReason {
    pub code: String,
    pub detail: String,
}

fn reason(code: &str, detail: impl Into<String>) -> StepReason {
    StepReason {
        code: code.into(),
        detail: detail.into(),
    }
}

/// An open or ended challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: String,
    /// The factor in use, and every factor the card could switch to.
    pub factor: Factor,
    pub factors: Vec<Factor>,
    /// The keyed hash of the code sent last (hex); none for factors that send none.
    pub code_hash: Option<String>,
    pub code_expires_ms: i64,
    pub wrong: u32,
    /// Codes sent (the first one included), and when the last one was.
    pub sends: u32,
    pub last_sent_ms: i64,
    pub expires_ms: i64,
    pub ended_ms: Option<i64>,
    pub end_reason: Option<String>,
    /// The WebAuthn ceremony under way (its state, as webauthn-rs keeps it), between its
    /// start and its finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey_state: Option<String>,
}

/// One authentication as stored (`stepup.db`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authentication {
    pub id: String,
    pub client: String,
    pub card_token: CardToken,
    pub last4: String,
    pub amount: Money,
    pub merchant_id: String,
    pub merchant_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant_url: Option<String>,
    pub created_ms: i64,
    pub trans_status: TransStatus,
    pub reasons: Vec<StepReason>,
    pub risk_score: u8,
    /// The cardholder's language (`ja`, `en`), for the challenge page and the code.
    pub language: String,
    /// The device that made it frictionless, or that a successful challenge trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// The browser as the cardholder's device list names it.
    pub device_label: String,
    /// Until when the authentication value may be used (set with `Y`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_expires_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Challenge>,
}

/// The answer to an authentication request or a challenge step.
#[derive(Debug, Clone)]
pub struct AuthenticationAnswer {
    pub auth: Authentication,
    /// For `C`: the challenge page.
    pub challenge_url: Option<String>,
    /// For `Y` after a challenge: the token the device keeps (a cookie on the page).
    pub device_token: Option<String>,
    /// For `Y`: the single-use value the authorization presents.
    pub authentication_value: Option<String>,
    /// What went wrong with the last step, when the challenge goes on (`wrong_code`,
    /// `code_expired`).
    pub error: Option<&'static str>,
}

impl AuthenticationAnswer {
    /// Wrong codes the challenge still takes.
    pub fn attempts_left(&self, cfg: &StepUpConfig) -> Option<u32> {
        let c = self.auth.challenge.as_ref()?;
        (c.ended_ms.is_none()).then(|| cfg.max_wrong_codes.saturating_sub(c.wrong))
    }
}

/// A one-time code for the cardholder, to be sent through the outbox.
#[derive(Debug, Clone)]
pub struct CodeMessage {
    /// The idempotency key of the message (challenge and send number).
    pub key: String,
    pub authentication_id: String,
    pub card_token: CardToken,
    pub last4: String,
    pub factor: Factor,
    pub recipient: String,
    pub language: String,
    pub code: String,
    pub merchant: String,
    pub amount: Money,
    pub valid_minutes: u32,
    pub created_ms: i64,
}

/// What sends one-time codes (the notifications' outbox, when a channel is configured).
pub trait CodeSender: Send + Sync {
    /// The code-sending factors that can send.
    fn factors(&self) -> Vec<Factor>;
    /// Puts the message in the outbox (durably) and wakes the delivery.
    fn send(&self, m: &CodeMessage) -> Result<(), String>;
}

/// Why a step of a challenge was refused (nothing changed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("no such challenge")]
    NotFound,
    #[error("the challenge has ended")]
    Ended,
    #[error("no more codes can be sent for this challenge")]
    TooManySends,
    #[error("a new code can be sent in {0} seconds")]
    TooSoon(u64),
    #[error("the factor {0} is not available for this card")]
    FactorUnavailable(&'static str),
    #[error("the code must be 6 digits")]
    BadCode,
}

impl From<StepError> for AppError {
    fn from(e: StepError) -> AppError {
        match e {
            StepError::NotFound => AppError::NotFound("no such authentication".into()),
            StepError::BadCode => AppError::invalid("code", "must be 6 digits"),
            e => AppError::Conflict(e.to_string()),
        }
    }
}

/// The step-up service: its store, settings and the code sender.
pub struct StepUp {
    store: SqliteStepUp,
    cfg: StepUpConfig,
    factors: Vec<Factor>,
    sender: RwLock<Option<Arc<dyn CodeSender>>>,
    public_url: String,
    /// The passkeys' relying party; none when the public URL's host is not a domain and
    /// none was configured (passkeys are then not offered).
    webauthn: Option<webauthn_rs::Webauthn>,
}

/// What the application found before the step-up assessment.
pub struct Assessed<'a> {
    pub req: AuthenticationRequest,
    pub client: &'a ClientId,
    pub token: CardToken,
    pub card: Option<&'a CardInfo>,
    pub checks: CardChecks,
    /// The engine's decision on the purchase (none for a card it does not know).
    pub outcome: Option<Outcome>,
    pub now: Timestamp,
}

const CODE_PURPOSE: &str = "one-time code";
const DEVICE_PURPOSE: &str = "device token";
const VALUE_PURPOSE: &str = "authentication value";
const VALUE_HASH_PURPOSE: &str = "authentication value hash";
/// The purpose an authenticator app's key is sealed for.
pub const TOTP_PURPOSE: &str = "totp secret";

/// A 6-digit code, uniform over 000000-999999 (draws at or above the largest multiple of a
/// million below 2^32 are drawn again).
pub fn new_code() -> Result<String, AppError> {
    loop {
        let r =
            u32::from_be_bytes(random_bytes::<4>().map_err(|e| AppError::Internal(e.to_string()))?);
        if r < 4_294_000_000 {
            return Ok(format!("{:06}", r % 1_000_000));
        }
    }
}

fn code_hash(keys: &KeyRing, challenge_id: &str, code: &str) -> String {
    hex(&keys.keyed(CODE_PURPOSE, format!("{challenge_id}\0{code}").as_bytes()))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The device token of a device: its id and a MAC binding it to its card.
pub fn device_token(keys: &KeyRing, device_id: &str, card: &CardToken) -> String {
    let mac = keys.keyed(DEVICE_PURPOSE, format!("{device_id}\0{card}").as_bytes());
    format!("{device_id}.{}", hex(&mac[..16]))
}

/// The authentication value of an authentication (derived, so that a retry gets the same
/// one without it being stored): 20 bytes, base64url, as a CAVV is 20 bytes.
fn auth_value(keys: &KeyRing, key: &str) -> String {
    use base64::Engine;
    let mac = keys.keyed(VALUE_PURPOSE, key.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&mac[..20])
}

fn value_hash(keys: &KeyRing, value: &str) -> String {
    hex(&keys.keyed(VALUE_HASH_PURPOSE, value.as_bytes()))
}

fn store_key(client: &str, id: &str) -> String {
    format!("{client}\0{id}")
}

/// A browser's name for the device list, from its user agent.
fn device_label(ua: Option<&str>) -> String {
    let ua = ua.unwrap_or("");
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .into_iter()
    .find(|(k, _)| ua.contains(k))
    .map_or("Browser", |(_, n)| n);
    let os = [
        ("iPhone", "iPhone"),
        ("Android", "Android"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(k, _)| ua.contains(k))
    .map(|(_, n)| n);
    match os {
        Some(os) => format!("{browser} on {os}"),
        None => browser.to_owned(),
    }
}

fn parse_doc(doc: &str) -> Result<Authentication, AppError> {
    serde_json::from_str(doc)
        .map_err(|e| AppError::Internal(format!("stored authentication does not read: {e}")))
}

fn to_doc(a: &Authentication) -> Result<String, AppError> {
    serde_json::to_string(a).map_err(|e| AppError::Internal(e.to_string()))
}

fn store_err(e: cardguard_store::StoreError) -> AppError {
    AppError::Unavailable(format!("step-up store: {e}"))
}

impl StepUp {
    pub fn open(
        path: &std::path::Path,
        cfg: StepUpConfig,
        public_url: &str,
    ) -> Result<StepUp, crate::OpenError> {
        cfg.check()?;
        let factors = cfg
            .factors
            .iter()
            .filter_map(|f| Factor::parse(f))
            .collect();
        let webauthn = relying_party(&cfg, public_url)?;
        Ok(StepUp {
            store: SqliteStepUp::open(path)?,
            cfg,
            factors,
            sender: RwLock::new(None),
            public_url: public_url.trim_end_matches('/').to_owned(),
            webauthn,
        })
    }

    pub fn config(&self) -> &StepUpConfig {
        &self.cfg
    }

    /// Whether passkeys can be registered and used (a relying party is set).
    pub fn passkeys_enabled(&self) -> bool {
        self.webauthn.is_some()
    }

    pub fn store(&self) -> &SqliteStepUp {
        &self.store
    }

    pub fn set_sender(&self, s: Arc<dyn CodeSender>) {
        *self.sender.write().unwrap_or_else(|e| e.into_inner()) = Some(s);
    }

    fn sender(&self) -> Option<Arc<dyn CodeSender>> {
        self.sender
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The authentication stored under the requestor's id, if any (a retry gets it back).
    pub fn find(&self, client: &ClientId, id: &str) -> Result<Option<Authentication>, AppError> {
        self.store
            .get(&store_key(client.as_str(), id))
            .map_err(store_err)?
            .map(|d| parse_doc(&d))
            .transpose()
    }

    /// The trusted device a token names, for this card: the token's MAC verifies, the
    /// device is the card's, not revoked, and used within the trust period.
    fn trusted_device(
        &self,
        keys: &KeyRing,
        token: Option<&str>,
        card: &CardToken,
        now: Timestamp,
    ) -> Result<Result<DeviceRow, &'static str>, AppError> {
        let Some(token) = token else {
            return Ok(Err("new_device"));
        };
        let Some((id, _)) = token.split_once('.') else {
            return Ok(Err("device_token_invalid"));
        };
        if !same(&device_token(keys, id, card), token) {
            return Ok(Err("device_token_invalid"));
        }
        let Some(d) = self.store.device(id).map_err(store_err)? else {
            return Ok(Err("device_token_invalid"));
        };
        if d.card_token != card.to_string() {
            return Ok(Err("device_token_invalid"));
        }
        if d.revoked_ms.is_some() {
            return Ok(Err("device_revoked"));
        }
        let trust_ms = i64::from(self.cfg.device_trust_days) * 86_400_000;
        if now.0 - d.last_used_ms > trust_ms {
            return Ok(Err("device_trust_expired"));
        }
        Ok(Ok(d))
    }

    /// The factors a card has, in the configured order.
    fn factors_of(&self, card: &CardInfo) -> Result<Vec<Factor>, AppError> {
        let sending = self.sender().map(|s| s.factors()).unwrap_or_default();
        let totp = self
            .store
            .totp(&card.token.to_string())
            .map_err(store_err)?
            .is_some_and(|t| t.confirmed_ms.is_some());
        let passkeys = self.webauthn.is_some()
            && !self
                .store
                .passkeys(&card.token.to_string())
                .map_err(store_err)?
                .is_empty();
        Ok(self
            .factors
            .iter()
            .copied()
            .filter(|f| match f {
                Factor::Passkey => passkeys,
                Factor::Totp => totp,
                Factor::Sms => sending.contains(f) && card.contact.phone.is_some(),
                Factor::Email => sending.contains(f) && card.contact.email.is_some(),
            })
            .collect())
    }

    /// Decides a new authentication request and records it; a frictionless one gets its
    /// value, a challenged one its first code.
    pub fn assess(
        &self,
        keys: &KeyRing,
        a: Assessed<'_>,
    ) -> Result<AuthenticationAnswer, AppError> {
        let now = a.now;
        let req = &a.req;
        let mut reasons = Vec::new();
        let language = a
            .card
            .map(|c| c.contact.language.clone())
            .filter(|l| l == "ja" || l == "en")
            .unwrap_or_else(|| {
                if req
                    .browser
                    .accept_language
                    .as_deref()
                    .is_some_and(|l| l.trim_start().starts_with("ja"))
                {
                    "ja".into()
                } else {
                    "en".into()
                }
            });
        let mut auth = Authentication {
            id: req.id.clone(),
            client: a.client.as_str().to_owned(),
            card_token: a.token,
            last4: req.card.pan.last4().to_string(),
            amount: req.amount,
            merchant_id: req.merchant.id.clone(),
            merchant_name: req.merchant.name.clone(),
            merchant_url: req.merchant_url.clone(),
            created_ms: now.0,
            trans_status: TransStatus::U,
            reasons: Vec::new(),
            risk_score: a.outcome.as_ref().map_or(0, |o| o.risk_score),
            language,
            device_id: None,
            device_label: device_label(req.browser.user_agent.as_deref()),
            value_expires_ms: None,
            challenge: None,
        };
        let c = &a.checks;
        let card_token = a.token.to_string();
        let status = if !c.card_known() {
            reasons.push(reason(
                "card_unknown",
                "the card is not one of this issuer's",
            ));
            TransStatus::N
        } else if matches!(
            c.status,
            CardStatus::Blocked
                | CardStatus::Lost
                | CardStatus::Stolen
                | CardStatus::Closed
                | CardStatus::CnpBlocked
        ) {
            reasons.push(reason(
                "card_blocked",
                format!("the card is {}", c.status.as_str()),
            ));
            TransStatus::R
        } else if c.status != CardStatus::Active {
            reasons.push(reason("card_inactive", "the card is not active"));
            TransStatus::N
        } else if c.expired || !c.expiry_matches {
            reasons.push(reason(
                "card_expired",
                "the expiry date is not the card's or has passed",
            ));
            TransStatus::N
        } else if self.store.card_failures(&card_token).map_err(store_err)?
            >= self.cfg.max_card_failures
        {
            reasons.push(reason(
                "card_locked_out",
                "too many wrong codes in a row for this card; the issuer can unlock it",
            ));
            TransStatus::R
        } else {
            let outcome = a.outcome.as_ref();
            let decision = outcome.map(|o| o.decision);
            if decision == Some(cardguard_core::Decision::Decline) {
                reasons.extend(engine_reasons(outcome));
                TransStatus::R
            } else {
                let device =
                    self.trusted_device(keys, req.device_token.as_deref(), &a.token, now)?;
                let score = auth.risk_score;
                let mut frictionless = true;
                match &device {
                    Ok(d) => reasons.push(reason(
                        "trusted_device",
                        format!("a device trusted since {}", fmt_day(d.created_ms)),
                    )),
                    Err(why) => {
                        frictionless = false;
                        reasons.push(reason(
                            why,
                            match *why {
                                "new_device" => "the device has not authenticated with this card",
                                "device_revoked" => {
                                    "the device was removed from the card's trusted devices"
                                }
                                "device_trust_expired" => {
                                    "the device has not been used for too long"
                                }
                                _ => "the device token does not verify for this card",
                            },
                        ));
                    }
                }
                // The rules' "challenge" asks for step-up authentication, which a trusted
                // device at low risk is (something the cardholder has); a hold (impossible
                // travel, velocity) asks for the cardholder.
                if !matches!(
                    decision,
                    Some(cardguard_core::Decision::Approve | cardguard_core::Decision::Challenge)
                ) {
                    frictionless = false;
                    reasons.extend(engine_reasons(outcome));
                }
                if score >= self.cfg.frictionless_below {
                    frictionless = false;
                    reasons.push(reason(
                        "risk_score",
                        format!(
                            "risk score {score} is {} or more",
                            self.cfg.frictionless_below
                        ),
                    ));
                }
                if let Some(age) = req.account.age_days.filter(|d| *d < 30) {
                    frictionless = false;
                    reasons.push(reason(
                        "new_account",
                        format!("the merchant account is {age} days old"),
                    ));
                }
                if req.account.shipping_matches_billing == Some(false) {
                    frictionless = false;
                    reasons.push(reason(
                        "shipping_address",
                        "goods ship to an address that is not the billing address",
                    ));
                }
                if let Some(n) = req.account.purchases_24h.filter(|n| *n > 5) {
                    frictionless = false;
                    reasons.push(reason(
                        "account_velocity",
                        format!("{n} purchases on the account in 24 hours"),
                    ));
                }
                if frictionless {
                    let d = device.as_ref().ok();
                    auth.device_id = d.map(|d| d.id.clone());
                    // The trust period runs from the last use: noted once an hour at most,
                    // so that a frictionless answer rarely writes twice.
                    if let Some(d) = d.filter(|d| now.0 - d.last_used_ms > 3_600_000) {
                        self.store.touch_device(&d.id, now.0).map_err(store_err)?;
                    }
                    TransStatus::Y
                } else {
                    TransStatus::C
                }
            }
        };
        auth.trans_status = status;
        auth.reasons = reasons;
        let key = store_key(a.client.as_str(), &req.id);
        let mut code = None;
        match status {
            TransStatus::Y => {
                auth.value_expires_ms =
                    Some(now.0 + i64::from(self.cfg.value_valid_minutes) * 60_000);
            }
            TransStatus::C => {
                let card = a
                    .card
                    .ok_or_else(|| AppError::Internal("challenge without a card".into()))?;
                let factors = self.factors_of(card)?;
                match factors.first() {
                    None => {
                        auth.trans_status = TransStatus::U;
                        auth.reasons.push(reason(
                            "no_factor",
                            "the card has no way to authenticate the cardholder (no phone, email or authenticator app that can be used)",
                        ));
                    }
                    Some(&factor) => {
                        let id = format!(
                            "ch_{}",
                            hex(&random_bytes::<16>()
                                .map_err(|e| AppError::Internal(e.to_string()))?)
                        );
                        let mut ch = Challenge {
                            id,
                            factor,
                            factors: factors.clone(),
                            code_hash: None,
                            code_expires_ms: 0,
                            wrong: 0,
                            sends: 0,
                            last_sent_ms: 0,
                            expires_ms: now.0
                                + i64::from(self.cfg.challenge_valid_minutes) * 60_000,
                            ended_ms: None,
                            end_reason: None,
                            passkey_state: None,
                        };
                        if factor.sends_code() {
                            code = Some(self.new_code_for(keys, &mut ch, now)?);
                        }
                        auth.challenge = Some(ch);
                    }
                }
            }
            _ => {}
        }
        let vh = (auth.trans_status == TransStatus::Y)
            .then(|| value_hash(keys, &auth_value(keys, &key)));
        let doc = to_doc(&auth)?;
        let challenge_id = auth.challenge.as_ref().map(|c| c.id.clone());
        if let Some(first) = self
            .store
            .create(
                &key,
                challenge_id.as_deref(),
                &card_token,
                now.0,
                &doc,
                vh.as_deref(),
            )
            .map_err(store_err)?
        {
            // Another request under the same id got in first: its answer stands.
            let first = parse_doc(&first)?;
            return self.answer_again(keys, first, req);
        }
        if let (Some(code), Some(card)) = (code, a.card) {
            self.send_code(&auth, card, &code, now)?;
        }
        Ok(self.answer(keys, auth, None))
    }

    /// The stored answer to a request id seen before, if the request is the same one.
    pub fn answer_again(
        &self,
        keys: &KeyRing,
        first: Authentication,
        req: &AuthenticationRequest,
    ) -> Result<AuthenticationAnswer, AppError> {
        if first.card_token != keys.token(&req.card.pan)
            || first.amount != req.amount
            || first.merchant_id != req.merchant.id
        {
            return Err(AppError::Conflict(format!(
                "authentication id {} was used before for another card, amount or merchant",
                req.id
            )));
        }
        Ok(self.answer(keys, first, None))
    }

    /// The answer for a stored authentication: the challenge URL while it is open, the
    /// value (derived again) while it is `Y`.
    pub fn answer_of(&self, keys: &KeyRing, auth: Authentication) -> AuthenticationAnswer {
        self.answer(keys, auth, None)
    }

    fn answer(
        &self,
        keys: &KeyRing,
        auth: Authentication,
        error: Option<&'static str>,
    ) -> AuthenticationAnswer {
        let key = store_key(&auth.client, &auth.id);
        let challenge_url = auth
            .challenge
            .as_ref()
            .filter(|c| c.ended_ms.is_none())
            .map(|c| self.challenge_url(keys, c));
        let authentication_value =
            (auth.trans_status == TransStatus::Y).then(|| auth_value(keys, &key));
        let device_token = match (&auth.device_id, &auth.challenge) {
            (Some(d), Some(_)) if auth.trans_status == TransStatus::Y => {
                Some(device_token(keys, d, &auth.card_token))
            }
            _ => None,
        };
        AuthenticationAnswer {
            auth,
            challenge_url,
            device_token,
            authentication_value,
            error,
        }
    }

    /// The signed link to a challenge's page.
    pub fn challenge_url(&self, keys: &KeyRing, c: &Challenge) -> String {
        let t = crate::links::token(keys, &c.id, Timestamp(c.expires_ms));
        format!("{}/challenge?t={t}", self.public_url)
    }

    /// A new code for a challenge: its hash and expiry set, its sends counted.
    fn new_code_for(
        &self,
        keys: &KeyRing,
        ch: &mut Challenge,
        now: Timestamp,
    ) -> Result<String, AppError> {
        let code = new_code()?;
        ch.code_hash = Some(code_hash(keys, &ch.id, &code));
        ch.code_expires_ms = now.0 + i64::from(self.cfg.code_valid_minutes) * 60_000;
        ch.sends += 1;
        ch.last_sent_ms = now.0;
        Ok(code)
    }

    /// Puts a code in the outbox for the challenge's factor.
    fn send_code(
        &self,
        auth: &Authentication,
        card: &CardInfo,
        code: &str,
        now: Timestamp,
    ) -> Result<(), AppError> {
        let ch = auth
            .challenge
            .as_ref()
            .ok_or_else(|| AppError::Internal("no challenge".into()))?;
        let recipient = match ch.factor {
            Factor::Sms => card.contact.phone.clone(),
            Factor::Email => card.contact.email.clone(),
            _ => None,
        }
        .ok_or_else(|| AppError::Internal("the factor has no recipient".into()))?;
        let sender = self
            .sender()
            .ok_or_else(|| AppError::Unavailable("no channel can send codes".into()))?;
        sender
            .send(&CodeMessage {
                key: format!("{}.code{}.{}", ch.id, ch.sends, ch.factor.as_str()),
                authentication_id: auth.id.clone(),
                card_token: auth.card_token,
                last4: auth.last4.clone(),
                factor: ch.factor,
                recipient,
                language: auth.language.clone(),
                code: code.to_owned(),
                merchant: auth.merchant_name.clone(),
                amount: auth.amount,
                valid_minutes: self.cfg.code_valid_minutes,
                created_ms: now.0,
            })
            .map_err(|e| AppError::Unavailable(format!("the code could not be queued: {e}")))
    }

    /// The authentication a challenge belongs to (its page shows it).
    pub fn by_challenge(&self, challenge_id: &str) -> Result<Option<Authentication>, AppError> {
        self.store
            .by_challenge(challenge_id)
            .map_err(store_err)?
            .map(|(_, d)| parse_doc(&d))
            .transpose()
    }

    /// A code entered for a challenge. A right one ends it with `Y` (the value, and a
    /// device token for the device it was entered on); a wrong one counts against the
    /// challenge and the card, and the last one allowed ends it with `N`. Returns the
    /// answer and, when the challenge ended now, the event to log.
    pub fn enter_code(
        &self,
        keys: &KeyRing,
        challenge_id: &str,
        code: &str,
        totp_key: Option<(&[u8], Option<i64>)>,
        user_agent: Option<&str>,
        now: Timestamp,
    ) -> Result<(AuthenticationAnswer, Option<AuthenticationRecord>), AppError> {
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(StepError::BadCode.into());
        }
        let mut totp_step = None;
        let (auth, error, ended_now) = self.attempt(keys, challenge_id, user_agent, now, |ch| {
            Ok(match ch.factor {
                Factor::Totp => match totp_key {
                    Some((key, last)) => {
                        let t = cardguard_cardsec::otp::Totp::default();
                        totp_step = t.verify(
                            key,
                            code,
                            (now.0 / 1000).max(0) as u64,
                            1,
                            last.map(|l| l.max(0) as u64),
                        );
                        Verdict::of(totp_step.is_some())
                    }
                    None => Verdict::Wrong,
                },
                Factor::Passkey => Verdict::Wrong,
                _ => match &ch.code_hash {
                    Some(h) if now.0 <= ch.code_expires_ms => {
                        Verdict::of(same(h, &code_hash(keys, &ch.id, code)))
                    }
                    Some(_) => Verdict::Expired,
                    None => Verdict::Wrong,
                },
            })
        })?;
        if let (Some(step), true) = (totp_step, auth.trans_status == TransStatus::Y) {
            // The time step is taken once, whichever challenge it was entered in.
            if !self
                .store
                .use_totp_step(&auth.card_token.to_string(), step as i64, now.0)
                .map_err(store_err)?
            {
                tracing::warn!("an authenticator code was used twice at once");
            }
        }
        self.settle(keys, auth, error, ended_now, now)
    }

    /// One try at a challenge, in one transaction: `verify` judges it (with the challenge
    /// as it stands); a right one ends the challenge with `Y` (a new device id, the value),
    /// a wrong one counts against the challenge and the card and may end it with `N`, an
    /// expired code changes nothing. The authentication after it, what went wrong, and
    /// whether it ended now.
    fn attempt(
        &self,
        keys: &KeyRing,
        challenge_id: &str,
        user_agent: Option<&str>,
        now: Timestamp,
        verify: impl FnOnce(&mut Challenge) -> Result<Verdict, AppError>,
    ) -> Result<(Authentication, Option<&'static str>, bool), AppError> {
        let cfg = &self.cfg;
        let ((error, ended), auth) = self.change_auth(challenge_id, now, |auth, tx| {
            let ch = auth.challenge.as_mut().ok_or(StepError::NotFound)?;
            if ch.ended_ms.is_some() {
                return Err(StepError::Ended.into());
            }
            Ok(if now.0 > ch.expires_ms {
                end(auth, TransStatus::N, "challenge_expired", now);
                (None, true)
            } else {
                match verify(ch)? {
                    Verdict::Right => {
                        let id =
                            random_bytes::<16>().map_err(|e| AppError::Internal(e.to_string()))?;
                        auth.device_id = Some(format!("dv_{}", hex(&id)));
                        if let Some(ua) = user_agent {
                            auth.device_label = device_label(Some(ua));
                        }
                        auth.value_expires_ms =
                            Some(now.0 + i64::from(cfg.value_valid_minutes) * 60_000);
                        let why = if ch.factor == Factor::Passkey {
                            "passkey_verified"
                        } else {
                            "code_accepted"
                        };
                        end(auth, TransStatus::Y, why, now);
                        tx.card_failures = 0;
                        tx.value_hash = Some(value_hash(
                            keys,
                            &auth_value(keys, &store_key(&auth.client, &auth.id)),
                        ));
                        (None, true)
                    }
                    Verdict::Expired => (Some("code_expired"), false),
                    Verdict::Wrong => {
                        ch.wrong += 1;
                        tx.card_failures = tx.card_failures.saturating_add(1);
                        if ch.wrong >= cfg.max_wrong_codes {
                            end(auth, TransStatus::N, "too_many_wrong_codes", now);
                            (None, true)
                        } else if tx.card_failures >= cfg.max_card_failures {
                            end(auth, TransStatus::N, "card_locked_out", now);
                            (None, true)
                        } else {
                            (Some("wrong_code"), false)
                        }
                    }
                }
            })
        })?;
        Ok((auth, error, ended))
    }

    /// Changes the authentication of a challenge in one transaction: `f` gets it (and the
    /// transaction's card failures and value hash); what it leaves is stored, unless it
    /// fails. Its result and the authentication after it.
    fn change_auth<T>(
        &self,
        challenge_id: &str,
        now: Timestamp,
        f: impl FnOnce(&mut Authentication, &mut cardguard_store::ChallengeTx) -> Result<T, AppError>,
    ) -> Result<(T, Authentication), AppError> {
        self.store
            .change(challenge_id, now.0, |tx| {
                let mut auth = parse_doc(&tx.doc)?;
                let out = f(&mut auth, tx)?;
                tx.doc = to_doc(&auth)?;
                Ok((out, auth))
            })
            .map_err(store_err)?
            .ok_or(StepError::NotFound)?
    }

    /// After a try: the device a success trusts, the event of a challenge that ended, the
    /// answer.
    fn settle(
        &self,
        keys: &KeyRing,
        auth: Authentication,
        error: Option<&'static str>,
        ended_now: bool,
        now: Timestamp,
    ) -> Result<(AuthenticationAnswer, Option<AuthenticationRecord>), AppError> {
        if let (Some(d), TransStatus::Y, true) = (&auth.device_id, auth.trans_status, ended_now) {
            self.store
                .add_device(&DeviceRow {
                    id: d.clone(),
                    card_token: auth.card_token.to_string(),
                    created_ms: now.0,
                    last_used_ms: now.0,
                    label: auth.device_label.clone(),
                    revoked_ms: None,
                })
                .map_err(store_err)?;
        }
        let event = ended_now.then(|| record(&auth, now));
        Ok((self.answer(keys, auth, error), event))
    }

    /// Sends a new code (the same factor, or `to` when the cardholder switched factor),
    /// within the challenge's limits; switching to an authenticator app sends nothing.
    pub fn resend(
        &self,
        keys: &KeyRing,
        challenge_id: &str,
        to: Option<Factor>,
        card: &CardInfo,
        now: Timestamp,
    ) -> Result<AuthenticationAnswer, AppError> {
        let cfg = &self.cfg;
        let available = self.factors_of(card)?;
        let mut code = None;
        let ((), auth) = self.change_auth(challenge_id, now, |auth, _| {
            let ch = auth.challenge.as_mut().ok_or(StepError::NotFound)?;
            if ch.ended_ms.is_some() || now.0 > ch.expires_ms {
                return Err(StepError::Ended.into());
            }
            let factor = to.unwrap_or(ch.factor);
            if !available.contains(&factor) {
                return Err(StepError::FactorUnavailable(factor.as_str()).into());
            }
            let switching = factor != ch.factor;
            ch.factor = factor;
            if factor.sends_code() {
                if ch.sends > cfg.max_resends {
                    return Err(StepError::TooManySends.into());
                }
                let wait =
                    (ch.last_sent_ms + cfg.resend_interval_secs as i64 * 1000 - now.0) / 1000;
                if !switching && ch.sends > 0 && wait > 0 {
                    return Err(StepError::TooSoon(wait as u64).into());
                }
                code = Some(self.new_code_for(keys, ch, now)?);
            } else {
                ch.code_hash = None;
            }
            Ok(())
        })?;
        if let Some(code) = code {
            self.send_code(&auth, card, &code, now)?;
        }
        Ok(self.answer(keys, auth, None))
    }

    fn relying(&self) -> Result<&webauthn_rs::Webauthn, AppError> {
        self.webauthn
            .as_ref()
            .ok_or_else(|| StepError::FactorUnavailable("passkey").into())
    }

    /// A card's passkeys as webauthn-rs takes them, with their rows.
    fn passkeys_of(
        &self,
        card: &CardToken,
    ) -> Result<Vec<(cardguard_store::PasskeyRow, webauthn_rs::prelude::Passkey)>, AppError> {
        self.store
            .passkeys(&card.to_string())
            .map_err(store_err)?
            .into_iter()
            .map(|r| {
                let p = serde_json::from_str(&r.credential).map_err(|e| {
                    AppError::Internal(format!("stored passkey {} does not read: {e}", r.id))
                })?;
                Ok((r, p))
            })
            .collect()
    }

    /// Starts a passkey's registration for the card of a challenge the cardholder has just
    /// passed (its link still valid): the options for `navigator.credentials.create`.
    pub fn passkey_register_start(
        &self,
        challenge_id: &str,
        issuer: &str,
        now: Timestamp,
    ) -> Result<serde_json::Value, AppError> {
        let rp = self.relying()?;
        let auth = self
            .by_challenge(challenge_id)?
            .ok_or(StepError::NotFound)?;
        let existing: Vec<_> = self
            .passkeys_of(&auth.card_token)?
            .into_iter()
            .map(|(_, p)| p.cred_id().clone())
            .collect();
        let user = webauthn_rs::prelude::Uuid::from_bytes(auth.card_token.0);
        let name = format!("card-{}", auth.last4);
        let display = format!("{issuer} •••• {}", auth.last4);
        let (options, state) = rp
            .start_passkey_registration(user, &name, &display, Some(existing))
            .map_err(|e| AppError::Internal(format!("passkey registration: {e}")))?;
        let state = serde_json::to_string(&state).map_err(|e| AppError::Internal(e.to_string()))?;
        self.change_auth(challenge_id, now, |auth, _| {
            let passed = auth.trans_status == TransStatus::Y;
            let ch = auth.challenge.as_mut().ok_or(StepError::NotFound)?;
            // Only right after a success, while the page's link is valid.
            if !passed || ch.ended_ms.is_none() || now.0 > ch.expires_ms {
                return Err(StepError::Ended.into());
            }
            ch.passkey_state = Some(state);
            Ok(())
        })?;
        serde_json::to_value(&options).map_err(|e| AppError::Internal(e.to_string()))
    }

    /// Finishes a passkey's registration with what the browser made: the card's new
    /// passkey, a factor from now on.
    pub fn passkey_register_finish(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        user_agent: Option<&str>,
        now: Timestamp,
    ) -> Result<(), AppError> {
        let rp = self.relying()?;
        let reg: webauthn_rs::prelude::RegisterPublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| {
                AppError::invalid("credential", format!("is not a WebAuthn registration: {e}"))
            })?;
        let (state, auth) = self.change_auth(challenge_id, now, |auth, _| {
            let ch = auth.challenge.as_mut().ok_or(StepError::NotFound)?;
            Ok(ch.passkey_state.take().ok_or(StepError::Ended)?)
        })?;
        let card = auth.card_token;
        let state: webauthn_rs::prelude::PasskeyRegistration =
            serde_json::from_str(&state).map_err(|e| AppError::Internal(e.to_string()))?;
        let passkey = rp.finish_passkey_registration(&reg, &state).map_err(|e| {
            AppError::invalid(
                "credential",
                format!("the passkey registration does not verify: {e}"),
            )
        })?;
        let id = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(passkey.cred_id().as_ref() as &[u8])
        };
        self.store
            .put_passkey(&cardguard_store::PasskeyRow {
                id,
                card_token: card.to_string(),
                created_ms: now.0,
                last_used_ms: now.0,
                label: device_label(user_agent),
                credential: serde_json::to_string(&passkey)
                    .map_err(|e| AppError::Internal(e.to_string()))?,
            })
            .map_err(store_err)
    }

    /// Starts a passkey's use in an open challenge (switching it to the passkey): the
    /// options for `navigator.credentials.get`.
    pub fn passkey_auth_start(
        &self,
        challenge_id: &str,
        now: Timestamp,
    ) -> Result<serde_json::Value, AppError> {
        let rp = self.relying()?;
        let auth = self
            .by_challenge(challenge_id)?
            .ok_or(StepError::NotFound)?;
        let keys: Vec<_> = self
            .passkeys_of(&auth.card_token)?
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        if keys.is_empty() {
            return Err(StepError::FactorUnavailable("passkey").into());
        }
        let (options, state) = rp
            .start_passkey_authentication(&keys)
            .map_err(|e| AppError::Internal(format!("passkey authentication: {e}")))?;
        let state = serde_json::to_string(&state).map_err(|e| AppError::Internal(e.to_string()))?;
        self.change_auth(challenge_id, now, |auth, _| {
            let ch = auth.challenge.as_mut().ok_or(StepError::NotFound)?;
            if ch.ended_ms.is_some() || now.0 > ch.expires_ms {
                return Err(StepError::Ended.into());
            }
            if !ch.factors.contains(&Factor::Passkey) {
                return Err(StepError::FactorUnavailable("passkey").into());
            }
            ch.factor = Factor::Passkey;
            ch.code_hash = None;
            ch.passkey_state = Some(state);
            Ok(())
        })?;
        serde_json::to_value(&options).map_err(|e| AppError::Internal(e.to_string()))
    }

    /// Finishes a passkey's use: a signature that verifies ends the challenge with `Y`
    /// (as a right code does); one that does not counts as a wrong try.
    pub fn passkey_auth_finish(
        &self,
        keys: &KeyRing,
        challenge_id: &str,
        credential: &serde_json::Value,
        user_agent: Option<&str>,
        now: Timestamp,
    ) -> Result<(AuthenticationAnswer, Option<AuthenticationRecord>), AppError> {
        let rp = self.relying()?;
        let cred: webauthn_rs::prelude::PublicKeyCredential =
            serde_json::from_value(credential.clone()).map_err(|e| {
                AppError::invalid("credential", format!("is not a WebAuthn assertion: {e}"))
            })?;
        let auth = self
            .by_challenge(challenge_id)?
            .ok_or(StepError::NotFound)?;
        let stored = self.passkeys_of(&auth.card_token)?;
        let mut used = None;
        let (auth, error, ended_now) = self.attempt(keys, challenge_id, user_agent, now, |ch| {
            let Some(state) = ch.passkey_state.take() else {
                return Ok(Verdict::Wrong);
            };
            if ch.factor != Factor::Passkey {
                return Ok(Verdict::Wrong);
            }
            let state: webauthn_rs::prelude::PasskeyAuthentication =
                serde_json::from_str(&state).map_err(|e| AppError::Internal(e.to_string()))?;
            Ok(match rp.finish_passkey_authentication(&cred, &state) {
                Ok(result) => {
                    used = Some(result);
                    Verdict::Right
                }
                Err(e) => {
                    tracing::info!(error = %e, "a passkey assertion did not verify");
                    Verdict::Wrong
                }
            })
        })?;
        // The credential's counter moves on (a cloned authenticator shows as one going back).
        if let Some(result) = used {
            for (mut row, mut p) in stored {
                if p.update_credential(&result).is_some() {
                    row.last_used_ms = now.0;
                    row.credential =
                        serde_json::to_string(&p).map_err(|e| AppError::Internal(e.to_string()))?;
                    self.store.put_passkey(&row).map_err(store_err)?;
                }
            }
        }
        let error = error.map(|e| {
            if e == "wrong_code" {
                "passkey_failed"
            } else {
                e
            }
        });
        self.settle(keys, auth, error, ended_now, now)
    }

    /// Uses an authentication value for an authorization, once: the authentication's id
    /// when it is bound to this card, amount and merchant and has not expired. A value that
    /// does not fit is used up all the same.
    pub fn redeem(
        &self,
        keys: &KeyRing,
        value: &str,
        card: &CardToken,
        amount: &Money,
        merchant_id: &str,
        now: Timestamp,
    ) -> Result<Option<String>, AppError> {
        let Some(doc) = self
            .store
            .use_value(&value_hash(keys, value), now.0)
            .map_err(store_err)?
        else {
            tracing::info!("an authentication value that is unknown or used was presented");
            return Ok(None);
        };
        let auth = parse_doc(&doc)?;
        let fits = auth.card_token == *card
            && auth.amount == *amount
            && auth.merchant_id == merchant_id
            && auth.value_expires_ms.is_some_and(|e| now.0 <= e);
        if !fits {
            tracing::info!(authentication_id = %auth.id, "an authentication value was presented for another card, amount or merchant, or too late");
            return Ok(None);
        }
        Ok(Some(auth.id))
    }
}

/// The passkeys' relying party from the settings: its id and origin as configured, or the
/// public URL's; `None` (passkeys off, said in the log) when that URL's host is no domain.
fn relying_party(
    cfg: &StepUpConfig,
    public_url: &str,
) -> Result<Option<webauthn_rs::Webauthn>, crate::OpenError> {
    use webauthn_rs::prelude::Url;
    let bad = |m: String| crate::OpenError::Config(crate::config::ConfigError::Invalid(m));
    let origin = cfg.passkey_origin.as_deref().unwrap_or(public_url);
    let origin = Url::parse(origin).map_err(|e| bad(format!("stepup.passkey_origin: {e}")))?;
    let rp_id = match (&cfg.passkey_rp_id, origin.domain()) {
        (Some(id), _) => id.clone(),
        (None, Some(d)) => d.to_owned(),
        (None, None) => {
            tracing::info!(
                "passkeys are off: web.public_url's host is not a domain (set stepup.passkey_rp_id and passkey_origin)"
            );
            return Ok(None);
        }
    };
    let rp = webauthn_rs::WebauthnBuilder::new(&rp_id, &origin)
        .map_err(|e| {
            bad(format!(
                "stepup.passkey_rp_id {rp_id} for origin {origin}: {e}"
            ))
        })?
        .rp_name("cardguard")
        .allow_any_port(cfg.passkey_any_port)
        .build()
        .map_err(|e| bad(format!("passkeys: {e}")))?;
    Ok(Some(rp))
}

/// How a try at a challenge went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Right,
    Wrong,
    /// The code was right once, but its time has passed: send a new one.
    Expired,
}

impl Verdict {
    fn of(right: bool) -> Verdict {
        if right {
            Verdict::Right
        } else {
            Verdict::Wrong
        }
    }
}

/// Ends a challenge with `status`.
fn end(auth: &mut Authentication, status: TransStatus, why: &str, now: Timestamp) {
    auth.trans_status = status;
    if let Some(ch) = auth.challenge.as_mut() {
        ch.ended_ms = Some(now.0);
        ch.end_reason = Some(why.to_owned());
        ch.code_hash = None;
    }
    auth.reasons.push(reason(
        why,
        match why {
            "code_accepted" => "the cardholder entered the right code",
            "passkey_verified" => "the cardholder's passkey verified",
            "too_many_wrong_codes" => "too many wrong codes",
            "card_locked_out" => "too many wrong codes in a row for this card",
            _ => "the challenge was not completed in time",
        },
    ));
}

/// The event that records the end of a challenge.
fn record(auth: &Authentication, now: Timestamp) -> AuthenticationRecord {
    let ch = auth.challenge.as_ref();
    AuthenticationRecord {
        authentication_id: auth.id.clone(),
        client: Some(auth.client.clone()),
        card_token: auth.card_token,
        last4: cardguard_core::Last4::parse(&auth.last4)
            .unwrap_or_else(|_| cardguard_core::Last4::parse("0000").expect("four digits")),
        amount: auth.amount,
        merchant_id: auth.merchant_id.clone(),
        merchant_name: auth.merchant_name.clone(),
        trans_status: auth.trans_status.as_str().to_owned(),
        factor: ch.map_or("", |c| c.factor.as_str()).to_owned(),
        reason: ch.and_then(|c| c.end_reason.clone()).unwrap_or_default(),
        received: now,
    }
}

fn engine_reasons(outcome: Option<&Outcome>) -> Vec<StepReason> {
    outcome
        .map(|o| {
            o.reasons
                .iter()
                .map(|r| reason(r.code.as_str(), r.detail.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn fmt_day(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> =
            (0..200).map(|_| new_code().unwrap()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(codes.len() > 190, "random: {}", codes.len());
    }

    #[test]
    fn device_tokens_are_bound_to_their_card() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::load(&crate::config::KeysConfig::default(), dir.path())
            .unwrap()
            .0;
        let a = CardToken([1; 16]);
        let b = CardToken([2; 16]);
        let t = device_token(&keys, "dv_1", &a);
        assert!(same(&t, &device_token(&keys, "dv_1", &a)));
        assert!(!same(&t, &device_token(&keys, "dv_1", &b)));
        assert!(!same(&t, &device_token(&keys, "dv_2", &a)));
    }

    #[test]
    fn browsers_are_named() {
        assert_eq!(
            device_label(Some(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Mobile/15E148 Safari/604.1"
            )),
            "Safari on iPhone"
        );
        assert_eq!(
            device_label(Some(
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
            )),
            "Chrome on Linux"
        );
        assert_eq!(device_label(None), "Browser");
    }
}
