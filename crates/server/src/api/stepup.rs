//! The step-up authentication API: `POST /v1/authentications` (a 3-D Secure server asks
//! whether the cardholder must prove it is them), the challenge's code entry and resend
//! for requestors that show their own page, and the issuer's management of a card's
//! trusted devices, authenticator app and lockout.

use super::error::{ApiError, decode};
use super::{Answer, Ctx};
use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use cardguard_app::ClientId;
use cardguard_app::stepup::{
    AccountInfo, AuthenticationAnswer, AuthenticationRequest, BrowserInfo, DeviceChannel, Factor,
    StepReason,
};
use cardguard_app::validate::{ident, optional_ip, optional_text, parsed, text};
use cardguard_core::{CardData, CardToken, Country, Expiry, Mcc, Merchant, Pan};
use serde::{Deserialize, Serialize};

/// The header a device's token comes in.
pub const DEVICE_TOKEN_HEADER: &str = "x-device-token";
/// The most an authentication body may hold.
pub const MAX_AUTHENTICATION_BYTES: usize = 8 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationReq {
    pub id: String,
    pub card: CardRef,
    pub amount: super::dto::AmountReq,
    pub merchant: MerchantRef,
    pub channel: String,
    #[serde(default)]
    pub browser: Option<BrowserReq>,
    #[serde(default)]
    pub account: Option<AccountReq>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardRef {
    pub number: String,
    pub expiry: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantRef {
    pub id: String,
    pub name: String,
    pub mcc: String,
    pub country: String,
    #[serde(default)]
    pub url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserReq {
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub accept_language: Option<String>,
    /// `WIDTHxHEIGHT`.
    #[serde(default)]
    pub screen: Option<String>,
    /// An IANA name or a UTC offset in minutes, as the browser gave it.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountReq {
    #[serde(default)]
    pub age_days: Option<u32>,
    #[serde(default)]
    pub shipping_matches_billing: Option<bool>,
    #[serde(default)]
    pub purchases_24h: Option<u32>,
}

impl AuthenticationReq {
    pub fn validate(
        &self,
        device_token: Option<String>,
    ) -> Result<AuthenticationRequest, ApiError> {
        let pan = parsed("card.number", Pan::parse(&self.card.number))?;
        let expiry = parsed("card.expiry", Expiry::parse(&self.card.expiry))?;
        let amount = self.amount.to_money("amount")?;
        if amount.value == 0 {
            return Err(ApiError::field(
                "amount.value",
                "must be at least 1 minor unit",
            ));
        }
        let m = &self.merchant;
        let url = optional_text("merchant.url", &m.url, 2048)?;
        if let Some(u) = &url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err(ApiError::field("merchant.url", "must be an http(s) URL"));
        }
        let merchant = Merchant {
            id: ident("merchant.id", &m.id)?,
            terminal_id: String::new(),
            name: text("merchant.name", &m.name, 100)?,
            mcc: parsed("merchant.mcc", Mcc::parse(&m.mcc))?,
            country: parsed("merchant.country", Country::parse(&m.country))?,
            city: String::new(),
            location: None,
        };
        let channel = match self.channel.as_str() {
            "browser" => DeviceChannel::Browser,
            "app" => DeviceChannel::App,
            _ => return Err(ApiError::field("channel", "must be one of browser, app")),
        };
        let b = self.browser.as_ref();
        let browser = match b {
            Some(b) => BrowserInfo {
                user_agent: optional_text("browser.user_agent", &b.user_agent, 512)?,
                ip: optional_ip("browser.ip", &b.ip)?,
                accept_language: optional_text("browser.accept_language", &b.accept_language, 256)?,
                screen: optional_text("browser.screen", &b.screen, 32)?,
                time_zone: optional_text("browser.time_zone", &b.time_zone, 64)?,
            },
            None => BrowserInfo::default(),
        };
        let a = self.account.as_ref();
        let device_token = match device_token {
            Some(t) if t.len() > 128 || !t.is_ascii() => {
                return Err(ApiError::field("X-Device-Token", "is not a device token"));
            }
            t => t.filter(|t| !t.is_empty()),
        };
        Ok(AuthenticationRequest {
            id: ident("id", &self.id)?,
            card: CardData {
                pan,
                expiry,
                csc: None,
                pin_block: None,
            },
            amount,
            merchant,
            merchant_url: url,
            channel,
            browser,
            device_token,
            account: AccountInfo {
                age_days: a.and_then(|a| a.age_days),
                shipping_matches_billing: a.and_then(|a| a.shipping_matches_billing),
                purchases_24h: a.and_then(|a| a.purchases_24h),
            },
        })
    }
}

/// The answer to an authentication or a challenge step.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuthenticationResp {
    pub id: String,
    pub trans_status: String,
    pub reasons: Vec<StepReason>,
    pub risk_score: u8,
    /// For `C`: the challenge page, the factor in use and the others the card has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<u32>,
    /// For `Y` after a challenge: the device's new token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    /// For `Y`: the value the authorization presents, once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_value: Option<String>,
    /// What went wrong with the last code (`wrong_code`, `code_expired`); the challenge
    /// goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AuthenticationResp {
    pub fn new(a: &AuthenticationAnswer, cfg: &cardguard_app::config::StepUpConfig) -> Self {
        let ch = a.auth.challenge.as_ref().filter(|c| c.ended_ms.is_none());
        AuthenticationResp {
            id: a.auth.id.clone(),
            trans_status: a.auth.trans_status.as_str().into(),
            reasons: a.auth.reasons.clone(),
            risk_score: a.auth.risk_score,
            challenge_url: a.challenge_url.clone(),
            factor: ch.map(|c| c.factor.as_str().into()),
            factors: ch
                .map(|c| c.factors.iter().map(|f| f.as_str().to_owned()).collect())
                .unwrap_or_default(),
            attempts_left: a.attempts_left(cfg),
            device_token: a.device_token.clone(),
            authentication_value: a.authentication_value.clone(),
            error: a.error.map(str::to_owned),
        }
    }
}

fn respond(ctx: &Ctx, a: &AuthenticationAnswer) -> Answer<AuthenticationResp> {
    Ok((
        StatusCode::OK,
        Json(AuthenticationResp::new(a, ctx.app.stepup().config())),
    ))
}

/// `POST /v1/authentications`: assess, and challenge when needed.
pub async fn create(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer<AuthenticationResp> {
    let req: AuthenticationReq = decode(&raw)?;
    let token = headers
        .get(DEVICE_TOKEN_HEADER)
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| ApiError::field("X-Device-Token", "is not a device token"))?;
    let req = req.validate(token)?;
    let a = ctx.app.authenticate(req, &client)?;
    respond(&ctx, &a)
}

/// `GET /v1/authentications/{id}`: where it stands.
pub async fn get(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(id): Path<String>,
) -> Answer<AuthenticationResp> {
    let auth = ctx.app.authentication(&client, &id)?;
    let a = ctx.app.stepup().answer_of(ctx.app.keys(), auth);
    respond(&ctx, &a)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeReq {
    pub code: String,
}

fn challenge_id(ctx: &Ctx, client: &ClientId, id: &str) -> Result<String, ApiError> {
    let auth = ctx.app.authentication(client, id)?;
    auth.challenge.map(|c| c.id).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("authentication {id} has no challenge"),
        )
    })
}

/// `POST /v1/authentications/{id}/challenge`: a code the cardholder entered on the
/// requestor's own page.
pub async fn challenge(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    raw: Bytes,
) -> Answer<AuthenticationResp> {
    let req: CodeReq = decode(&raw)?;
    let cid = challenge_id(&ctx, &client, &id)?;
    let ua = headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let a = ctx.app.enter_code(&cid, req.code.trim(), ua).await?;
    respond(&ctx, &a)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResendReq {
    #[serde(default)]
    pub factor: Option<String>,
}

pub fn factor(v: Option<&str>) -> Result<Option<Factor>, ApiError> {
    v.map(|f| {
        Factor::parse(f)
            .ok_or_else(|| ApiError::field("factor", "must be one of passkey, totp, sms, email"))
    })
    .transpose()
}

/// `POST /v1/authentications/{id}/resend`: a new code, or another factor.
pub async fn resend(
    State(ctx): State<Ctx>,
    Extension(client): Extension<ClientId>,
    Path(id): Path<String>,
    raw: Bytes,
) -> Answer<AuthenticationResp> {
    let req: ResendReq = if raw.is_empty() {
        ResendReq::default()
    } else {
        decode(&raw)?
    };
    let to = factor(req.factor.as_deref())?;
    let cid = challenge_id(&ctx, &client, &id)?;
    let a = ctx.app.resend_code(&cid, to)?;
    respond(&ctx, &a)
}

fn card_token(s: &str) -> Result<CardToken, ApiError> {
    CardToken::parse(s).map_err(|_| ApiError::not_found(format!("no card {s}")))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceResp {
    pub id: String,
    pub label: String,
    pub created_at: String,
    pub last_used_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

fn rfc3339(ms: i64) -> String {
    cardguard_core::Timestamp(ms).to_rfc3339()
}

/// `GET /v1/cards/{token}/devices` (admin): the card's trusted devices.
pub async fn devices(State(ctx): State<Ctx>, Path(token): Path<String>) -> Answer<Vec<DeviceResp>> {
    let rows = ctx.app.devices(&card_token(&token)?)?;
    Ok((
        StatusCode::OK,
        Json(
            rows.into_iter()
                .map(|d| DeviceResp {
                    id: d.id,
                    label: d.label,
                    created_at: rfc3339(d.created_ms),
                    last_used_at: rfc3339(d.last_used_ms),
                    revoked_at: d.revoked_ms.map(rfc3339),
                })
                .collect(),
        ),
    ))
}

/// `DELETE /v1/cards/{token}/devices/{id}` (admin): the device is no longer trusted.
pub async fn revoke_device(
    State(ctx): State<Ctx>,
    Path((token, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.app.revoke_device(&card_token(&token)?, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TotpResp {
    /// The key in base32, for typing into the app.
    pub secret: String,
    /// The `otpauth://` URI, for a QR code.
    pub uri: String,
    pub confirmed: bool,
}

/// `POST /v1/cards/{token}/totp` (admin): a new authenticator-app key for the card.
pub async fn enroll_totp(State(ctx): State<Ctx>, Path(token): Path<String>) -> Answer<TotpResp> {
    let (secret, uri) = ctx.app.enroll_totp(&card_token(&token)?)?;
    Ok((
        StatusCode::CREATED,
        Json(TotpResp {
            secret,
            uri,
            confirmed: false,
        }),
    ))
}

/// `POST /v1/cards/{token}/totp/confirm` (admin): a first code from the app makes it a
/// factor.
pub async fn confirm_totp(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
    raw: Bytes,
) -> Result<StatusCode, ApiError> {
    let req: CodeReq = decode(&raw)?;
    if ctx
        .app
        .confirm_totp(&card_token(&token)?, req.code.trim())?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::field("code", "is not the app's current code"))
    }
}

/// `DELETE /v1/cards/{token}/totp` (admin).
pub async fn remove_totp(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    if ctx.app.remove_totp(&card_token(&token)?)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("the card has no authenticator app"))
    }
}

/// `POST /v1/cards/{token}/stepup/unlock` (admin): the card's run of wrong codes ends.
pub async fn unlock(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    ctx.app.unlock_stepup(&card_token(&token)?)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinReq {
    /// The new PIN as an ISO 9564 PIN block in hex (formats 0 and 3: 16 digits under the PIN
    /// key; format 4: 32).
    pub pin_block: String,
    /// The cardholder's birth date (`YYYY-MM-DD`), to refuse PINs made from it; not kept.
    #[serde(default)]
    pub birth_date: Option<String>,
}

/// `POST /v1/cards/{token}/pin` (admin): sets or changes the card's PIN; a PIN that is
/// easy to guess is refused with the reason.
pub async fn set_pin(
    State(ctx): State<Ctx>,
    Path(token): Path<String>,
    raw: Bytes,
) -> Result<StatusCode, ApiError> {
    let req: PinReq = decode(&raw)?;
    let card = card_token(&token)?;
    if !(req.pin_block.len() == 16 || req.pin_block.len() == 32) {
        return Err(ApiError::field(
            "pin_block",
            "must be 16 hex digits (formats 0, 3) or 32 (format 4)",
        ));
    }
    let block = cardguard_app::validate::hex_bytes("pin_block", &req.pin_block)?;
    let birth = match &req.birth_date {
        Some(b) => Some(
            cardguard_cardsec::pin_policy::BirthDate::parse(b)
                .ok_or_else(|| ApiError::field("birth_date", "must be a date YYYY-MM-DD"))?,
        ),
        None => None,
    };
    let app = std::sync::Arc::clone(&ctx.app);
    tokio::task::spawn_blocking(move || app.set_pin(&card, &block, birth))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordReq {
    pub password: String,
    /// Words a guesser tries first: the user's name, email, the service's name.
    #[serde(default)]
    pub context: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct PasswordResp {
    pub acceptable: bool,
    pub problems: Vec<String>,
}

/// `POST /v1/passwords/check` (admin): the online account's password against the policy
/// (NIST SP 800-63B). The password is neither kept nor logged.
pub async fn check_password(State(ctx): State<Ctx>, raw: Bytes) -> Answer<PasswordResp> {
    let req: PasswordReq = decode(&raw)?;
    let app = std::sync::Arc::clone(&ctx.app);
    let problems = tokio::task::spawn_blocking(move || {
        let context: Vec<&str> = req.context.iter().map(String::as_str).collect();
        app.password_policy().check(&req.password, &context)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| {
        ApiError::unavailable(format!("the breached-password file cannot be read: {e}"))
    })?;
    Ok((
        StatusCode::OK,
        Json(PasswordResp {
            acceptable: problems.is_empty(),
            problems: problems.iter().map(ToString::to_string).collect(),
        }),
    ))
}
