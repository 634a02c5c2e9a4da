//! The step-up challenge page, the cardholder's (no API key: the signed, expiring link in
//! the challenge URL is its credential): the merchant and the amount, a field for the
//! 6-digit code, "send a new code", and the card's other factors. Japanese or English as
//! the card's language says; made for a phone's screen. A right code sets the device's
//! token as a cookie, so that the device is trusted for this card afterwards.

use crate::api::Ctx;
use crate::api::error::{ApiError, decode};
use crate::pages::{esc, page, page_with};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cardguard_app::AppError;
use cardguard_app::format;
use cardguard_app::links::{self, LinkError};
use cardguard_app::stepup::{Authentication, Factor, TransStatus};
use cardguard_core::{Clock, SystemClock};
use serde::Deserialize;

/// The path of the challenge page, as challenge URLs name it.
pub const CHALLENGE_PATH: &str = "/challenge";
/// The cookie that carries the device's token.
pub const DEVICE_COOKIE: &str = "cg_device";
/// The page's script for passkeys.
pub const PASSKEY_JS_PATH: &str = "/challenge/passkey.js";
/// The challenge page's policy: the passkey script from this server, its requests to it.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'";

#[derive(Debug, Deserialize)]
pub struct ChallengeParams {
    #[serde(default)]
    t: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    factor: String,
}

struct Words {
    lang: &'static str,
    title: &'static str,
    intro: &'static str,
    merchant: &'static str,
    amount: &'static str,
    card: &'static str,
    sent_sms: &'static str,
    sent_email: &'static str,
    totp: &'static str,
    code_label: &'static str,
    verify: &'static str,
    resend: &'static str,
    other: &'static str,
    wrong: &'static str,
    expired_code: &'static str,
    resent: &'static str,
    done_yes: &'static str,
    done_no: &'static str,
    back: &'static str,
    devices: &'static str,
    this_device: &'static str,
    remove: &'static str,
    last_used: &'static str,
    never: &'static str,
    attempts: &'static str,
    use_passkey: &'static str,
    passkey_intro: &'static str,
    create_passkey: &'static str,
    passkey_created: &'static str,
    passkey_failed: &'static str,
}

const JA: Words = Words {
    lang: "ja",
    title: "本人認証",
    intro: "お支払いを続けるため、ご本人であることを確認します。",
    merchant: "ご利用先",
    amount: "ご利用金額",
    card: "カード",
    sent_sms: "SMSで6桁の認証コードをお送りしました。",
    sent_email: "メールで6桁の認証コードをお送りしました。",
    totp: "認証アプリに表示されている6桁のコードを入力してください。",
    code_label: "認証コード（6桁）",
    verify: "認証する",
    resend: "コードを再送する",
    other: "別の方法で認証する",
    wrong: "認証コードが正しくありません。",
    expired_code: "認証コードの有効期限が切れました。コードを再送してください。",
    resent: "新しい認証コードをお送りしました。",
    done_yes: "本人認証が完了しました。お店の画面に戻ってお手続きを続けてください。",
    done_no: "本人認証ができませんでした。このお支払いは完了していません。お心当たりのない場合はカード会社にご連絡ください。",
    back: "お店に戻る",
    devices: "認証を省略できる端末",
    this_device: "この端末",
    remove: "削除",
    last_used: "最終利用",
    never: "認証コードは誰にも教えないでください。当社がおたずねすることはありません。",
    attempts: "あと{n}回入力できます。",
    use_passkey: "パスキーで認証する",
    passkey_intro: "この端末のパスキーで認証してください。",
    create_passkey: "次回からパスキーで認証する（パスキーを作成）",
    passkey_created: "パスキーを作成しました。次回からはパスキーで認証できます。",
    passkey_failed: "パスキーで認証できませんでした。もう一度お試しいただくか、別の方法をお選びください。",
};

const EN: Words = Words {
    lang: "en",
    title: "Verify it's you",
    intro: "To complete this payment, please confirm it is you.",
    merchant: "Merchant",
    amount: "Amount",
    card: "Card",
    sent_sms: "We sent a 6-digit code by SMS.",
    sent_email: "We sent a 6-digit code by email.",
    totp: "Enter the 6-digit code your authenticator app shows.",
    code_label: "Code (6 digits)",
    verify: "Verify",
    resend: "Send a new code",
    other: "Use another method",
    wrong: "That code is not right.",
    expired_code: "That code has expired. Please send a new one.",
    resent: "We sent you a new code.",
    done_yes: "You are verified. Go back to the shop to finish your purchase.",
    done_no: "We could not verify you, so this payment did not go through. If it was not you, please call your card issuer.",
    back: "Back to the shop",
    devices: "Devices that can skip this step",
    this_device: "this device",
    remove: "Remove",
    last_used: "last used",
    never: "Never tell anyone this code: we will never ask you for it.",
    attempts: "{n} tries left.",
    use_passkey: "Use your passkey",
    passkey_intro: "Confirm with the passkey on this device.",
    create_passkey: "Create a passkey for next time",
    passkey_created: "Your passkey is ready: next time, confirm with it.",
    passkey_failed: "That did not work. Try again, or choose another method.",
};

fn words(lang: &str) -> &'static Words {
    if lang == "ja" { &JA } else { &EN }
}

fn factor_name(f: Factor, w: &Words) -> &'static str {
    match (f, w.lang) {
        (Factor::Sms, "ja") => "SMS",
        (Factor::Email, "ja") => "メール",
        (Factor::Totp, "ja") => "認証アプリ",
        (Factor::Passkey, "ja") => "パスキー",
        (Factor::Sms, _) => "Text message (SMS)",
        (Factor::Email, _) => "Email",
        (Factor::Totp, _) => "Authenticator app",
        (Factor::Passkey, _) => "Passkey",
    }
}

/// A link that does not open its page, in both languages.
fn refused(e: LinkError) -> Response {
    let (ja, en, status) = match e {
        LinkError::Expired => (
            "このページの有効期限が切れています。お店の画面からもう一度お試しください。",
            "This page has expired. Please start again from the shop.",
            StatusCode::GONE,
        ),
        LinkError::Invalid => (
            "このページは無効です。",
            "This page is not valid.",
            StatusCode::BAD_REQUEST,
        ),
    };
    page(
        status,
        "ja",
        "本人認証 / Verify it's you",
        &format!("<p>{ja}</p><p>{en}</p>"),
    )
}

fn failed(e: AppError) -> Response {
    match e {
        AppError::NotFound(_) => refused(LinkError::Invalid),
        e => {
            tracing::error!(error = %e, "challenge page failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "en",
                "Verify it's you",
                "<p>Please try again in a few minutes.</p>",
            )
        }
    }
}

/// The purchase the challenge is about.
fn details(a: &Authentication, w: &Words) -> String {
    format!(
        "<dl><dt>{}</dt><dd id=\"merchant\">{}</dd><dt>{}</dt><dd id=\"amount\">{}</dd><dt>{}</dt><dd>•••• {}</dd></dl>",
        w.merchant,
        esc(&a.merchant_name),
        w.amount,
        esc(&format::money(&a.amount)),
        w.card,
        esc(&a.last4)
    )
}

const STYLE: &str = "<style>input.code{font-size:1.6rem;letter-spacing:.4rem;width:10ch;padding:.5rem;\
text-align:center;border:1px solid #444;border-radius:.4rem}form{margin:1rem 0}\
button.primary{background:#1a4fd8;color:#fff;border-color:#1a4fd8}button.link{border:none;\
background:none;color:#1a4fd8;text-decoration:underline;padding:.3rem 0;font-size:1rem}\
.error{color:#b42318;font-weight:600}.info{color:#1a7f37}</style>";

/// The page of an open challenge, with a message (an error, or that a code was sent).
fn open_page(
    t: &str,
    a: &Authentication,
    message: Option<(&str, bool)>,
    cfg: &cardguard_app::config::StepUpConfig,
) -> Response {
    let w = words(&a.language);
    let Some(ch) = a.challenge.as_ref() else {
        return refused(LinkError::Invalid);
    };
    let how = match ch.factor {
        Factor::Sms => format!("<p>{}</p>", w.sent_sms),
        Factor::Email => format!("<p>{}</p>", w.sent_email),
        Factor::Passkey => format!("<p>{}</p>", w.passkey_intro),
        Factor::Totp => format!("<p>{}</p>", w.totp),
    };
    let passkey = if ch.factors.contains(&Factor::Passkey) {
        format!(
            "<p><button type=\"button\" class=\"primary\" id=\"use-passkey\" data-t=\"{}\" data-failed=\"{}\">{}</button></p>\
<p id=\"passkey-status\" role=\"status\"></p>",
            esc(t),
            w.passkey_failed,
            w.use_passkey
        )
    } else {
        String::new()
    };
    let msg = match message {
        Some((m, true)) => format!("<p class=\"error\" role=\"alert\">{m}</p>"),
        Some((m, false)) => format!("<p class=\"info\" role=\"status\">{m}</p>"),
        None => String::new(),
    };
    let left = cfg.max_wrong_codes.saturating_sub(ch.wrong);
    let attempts = if ch.wrong > 0 {
        format!("<p>{}</p>", w.attempts.replace("{n}", &left.to_string()))
    } else {
        String::new()
    };
    let t = esc(t);
    let resend = if ch.factor.sends_code() {
        format!(
            "<form method=\"post\" action=\"{CHALLENGE_PATH}\"><input type=\"hidden\" name=\"t\" value=\"{t}\">\
<input type=\"hidden\" name=\"action\" value=\"resend\"><button type=\"submit\" class=\"link\" id=\"resend\">{}</button></form>",
            w.resend
        )
    } else {
        String::new()
    };
    let others: String = ch
        .factors
        .iter()
        .filter(|f| **f != ch.factor && **f != Factor::Passkey)
        .map(|f| {
            format!(
                "<form method=\"post\" action=\"{CHALLENGE_PATH}\"><input type=\"hidden\" name=\"t\" value=\"{t}\">\
<input type=\"hidden\" name=\"action\" value=\"switch\"><input type=\"hidden\" name=\"factor\" value=\"{}\">\
<button type=\"submit\" class=\"link\" id=\"switch-{}\">{}</button></form>",
                f.as_str(),
                f.as_str(),
                factor_name(*f, w)
            )
        })
        .collect();
    let others = if others.is_empty() {
        String::new()
    } else {
        format!("<p>{}:</p>{others}", w.other)
    };
    // A code form for the factors with a code; the passkey's button for a passkey.
    let form = if ch.factor == Factor::Passkey {
        String::new()
    } else {
        format!(
            "<form method=\"post\" action=\"{CHALLENGE_PATH}\"><input type=\"hidden\" name=\"t\" value=\"{t}\">\
<input type=\"hidden\" name=\"action\" value=\"verify\"><label for=\"code\">{}</label><br>\
<input class=\"code\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
pattern=\"[0-9]{{6}}\" maxlength=\"6\" required autofocus> \
<button type=\"submit\" class=\"primary\" id=\"verify\">{}</button></form>",
            w.code_label, w.verify
        )
    };
    let (passkey_first, passkey_later) = if ch.factor == Factor::Passkey {
        (passkey, String::new())
    } else {
        (String::new(), passkey)
    };
    let main = format!(
        "{STYLE}<p>{}</p>{}{how}{msg}{attempts}{passkey_first}{form}{resend}{passkey_later}{others}{}\
<script src=\"{PASSKEY_JS_PATH}\" defer></script>",
        w.intro,
        details(a, w),
        if ch.factor.sends_code() {
            format!("<p class=\"note\">{}</p>", w.never)
        } else {
            String::new()
        }
    );
    page_with(StatusCode::OK, w.lang, w.title, &main, CSP)
}

/// The page of an ended challenge: after a success, the card's trusted devices (each can be
/// removed: the cardholder has just proved it is them) and the offer of a passkey for the
/// next time (when passkeys are on).
fn done_page(ctx: &Ctx, a: &Authentication, t: &str) -> Response {
    let devices = if a.trans_status == TransStatus::Y {
        match ctx.app.devices(&a.card_token) {
            Ok(d) => d,
            Err(e) => return failed(e),
        }
    } else {
        Vec::new()
    };
    ended_page(a, t, &devices, ctx.app.stepup().passkeys_enabled())
}

/// The card's trusted devices, each with its remove button.
fn device_list(
    a: &Authentication,
    t: &str,
    devices: &[cardguard_store::DeviceRow],
    w: &Words,
) -> String {
    let live: Vec<_> = devices.iter().filter(|d| d.revoked_ms.is_none()).collect();
    if live.is_empty() {
        return String::new();
    }
    let items: String = live
        .iter()
        .map(|d| {
            let mine = if a.device_id.as_deref() == Some(d.id.as_str()) {
                format!(" ({})", w.this_device)
            } else {
                String::new()
            };
            let day = cardguard_core::Timestamp(d.last_used_ms).to_rfc3339();
            format!(
                "<li>{}{mine} <span class=\"note\">{} {}</span> \
<form method=\"post\" action=\"{CHALLENGE_PATH}\" style=\"display:inline;margin:0\"><input type=\"hidden\" name=\"t\" value=\"{}\">\
<input type=\"hidden\" name=\"action\" value=\"revoke\"><input type=\"hidden\" name=\"factor\" value=\"{}\">\
<button type=\"submit\" class=\"link\" data-device=\"{}\">{}</button></form></li>",
                esc(&d.label),
                w.last_used,
                esc(day.get(..10).unwrap_or(&day)),
                esc(t),
                esc(&d.id),
                esc(&d.id),
                w.remove
            )
        })
        .collect();
    format!(
        "<h2 style=\"font-size:1.1rem\">{}</h2><ul id=\"devices\">{items}</ul>",
        w.devices
    )
}

fn ended_page(
    a: &Authentication,
    t: &str,
    devices: &[cardguard_store::DeviceRow],
    passkeys: bool,
) -> Response {
    let w = words(&a.language);
    let (text, class) = if a.trans_status == TransStatus::Y {
        (w.done_yes, "info")
    } else {
        (w.done_no, "error")
    };
    let back = a
        .merchant_url
        .as_deref()
        .map(|u| format!("<p><a href=\"{}\" id=\"back\">{}</a></p>", esc(u), w.back))
        .unwrap_or_default();
    let passed = a.trans_status == TransStatus::Y;
    let list = if passed {
        device_list(a, t, devices, w)
    } else {
        String::new()
    };
    let offer = match passkeys {
        true if passed
            && a.challenge
                .as_ref()
                .is_some_and(|c| c.factor != Factor::Passkey) =>
        {
            format!(
                "<p><button type=\"button\" id=\"create-passkey\" data-t=\"{}\" data-done=\"{}\" data-failed=\"{}\">{}</button></p>\
<p id=\"passkey-status\" role=\"status\"></p><script src=\"{PASSKEY_JS_PATH}\" defer></script>",
                esc(t),
                w.passkey_created,
                w.passkey_failed,
                w.create_passkey
            )
        }
        _ => String::new(),
    };
    let main = format!(
        "{STYLE}<p class=\"{class}\" id=\"result\" data-status=\"{}\">{text}</p>{}{back}{offer}{list}",
        a.trans_status.as_str(),
        details(a, w)
    );
    page_with(StatusCode::OK, w.lang, w.title, &main, CSP)
}

fn challenge_of(ctx: &Ctx, t: &str) -> Result<(String, Authentication), Box<Response>> {
    let id =
        links::verify(ctx.app.keys(), t, SystemClock.now()).map_err(|e| Box::new(refused(e)))?;
    let a = ctx.app.challenge(&id).map_err(|e| Box::new(failed(e)))?;
    Ok((id, a))
}

/// GET: the challenge as it stands; nothing changes.
pub async fn show(State(ctx): State<Ctx>, Query(p): Query<ChallengeParams>) -> Response {
    let (_, a) = match challenge_of(&ctx, &p.t) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    if a.challenge.as_ref().is_some_and(|c| c.ended_ms.is_some()) {
        return done_page(&ctx, &a, &p.t);
    }
    open_page(&p.t, &a, None, ctx.app.stepup().config())
}

/// POST: a code, a resend, or a switch to another factor.
pub async fn submit(
    State(ctx): State<Ctx>,
    headers: HeaderMap,
    Form(p): Form<ChallengeParams>,
) -> Response {
    let (id, a) = match challenge_of(&ctx, &p.t) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let w = words(&a.language);
    let cfg = ctx.app.stepup().config();
    match p.action.as_str() {
        "verify" => {
            let code = p.code.trim();
            if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
                return open_page(&p.t, &a, Some((w.wrong, true)), cfg);
            }
            let ua = headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok());
            match ctx.app.enter_code(&id, code, ua).await {
                Ok(ans) if ans.auth.trans_status == TransStatus::C => {
                    let m = match ans.error {
                        Some("code_expired") => w.expired_code,
                        _ => w.wrong,
                    };
                    open_page(&p.t, &ans.auth, Some((m, true)), cfg)
                }
                Ok(ans) => with_device_cookie(
                    &ctx,
                    done_page(&ctx, &ans.auth, &p.t),
                    ans.device_token.as_deref(),
                ),
                Err(AppError::Conflict(_)) => ended_or_open(&ctx, &p.t, &id, None),
                Err(e) => failed(e),
            }
        }
        // The cardholder removes a trusted device, right after proving it is them.
        "revoke" => {
            if a.trans_status != TransStatus::Y {
                return refused(LinkError::Invalid);
            }
            match ctx.app.revoke_device(&a.card_token, &p.factor) {
                Ok(()) => {
                    crate::api::audit(
                        &ctx,
                        "cardholder:web".into(),
                        "remove device".into(),
                        format!("card {} device {}", a.card_token, p.factor),
                        "removed".into(),
                    )
                    .await;
                    done_page(&ctx, &a, &p.t)
                }
                Err(AppError::NotFound(_)) => done_page(&ctx, &a, &p.t),
                Err(e) => failed(e),
            }
        }
        "resend" | "switch" => {
            let to = if p.action == "switch" {
                match Factor::parse(&p.factor) {
                    Some(f) => Some(f),
                    None => return refused(LinkError::Invalid),
                }
            } else {
                None
            };
            match ctx.app.resend_code(&id, to) {
                Ok(ans) => {
                    let sent = ans
                        .auth
                        .challenge
                        .as_ref()
                        .is_some_and(|c| c.factor.sends_code());
                    open_page(&p.t, &ans.auth, sent.then_some((w.resent, false)), cfg)
                }
                Err(AppError::Conflict(m)) => ended_or_open(&ctx, &p.t, &id, Some(m)),
                Err(e) => failed(e),
            }
        }
        _ => refused(LinkError::Invalid),
    }
}

/// The page again after a step that was refused (too soon, too many, or it had ended).
fn ended_or_open(ctx: &Ctx, t: &str, id: &str, message: Option<String>) -> Response {
    match ctx.app.challenge(id) {
        Ok(a) if a.challenge.as_ref().is_some_and(|c| c.ended_ms.is_some()) => {
            done_page(ctx, &a, t)
        }
        Ok(a) => {
            let w = words(&a.language);
            let m = message.map(|m| localized(&m, w));
            open_page(
                t,
                &a,
                m.as_deref().map(|m| (m, true)),
                ctx.app.stepup().config(),
            )
        }
        Err(e) => failed(e),
    }
}

/// A refusal of a step in the page's language.
fn localized(m: &str, w: &Words) -> String {
    if w.lang != "ja" {
        return format!("{}{}.", m[..1].to_uppercase(), &m[1..]);
    }
    if let Some(secs) = m
        .strip_prefix("a new code can be sent in ")
        .and_then(|r| r.strip_suffix(" seconds"))
    {
        return format!("{secs}秒後にコードを再送できます。");
    }
    if m.starts_with("no more codes") {
        return "これ以上コードを再送できません。".into();
    }
    "この操作はできません。".into()
}

/// The device's token as its cookie (HttpOnly, SameSite=Lax, Secure on https), for as long
/// as a device stays trusted.
fn with_device_cookie(ctx: &Ctx, mut r: Response, token: Option<&str>) -> Response {
    let Some(token) = token else {
        return r;
    };
    let secure = if ctx.app.config.web.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let days = u64::from(ctx.app.stepup().config().device_trust_days);
    let cookie = format!(
        "{DEVICE_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
        days * 86_400
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// `GET /challenge/passkey.js`: the page's script.
pub async fn passkey_js() -> Response {
    let mut r = include_str!("../assets/passkey.js").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=3600"),
    );
    r
}

/// A passkey step's body: the challenge link's token and, to finish, the browser's
/// credential in WebAuthn's JSON form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeyStep {
    t: String,
    #[serde(default)]
    credential: Option<serde_json::Value>,
}

/// The path of the passkey steps, under the page's.
pub const PASSKEY_PATH: &str = "/challenge/passkey/";

fn step(ctx: &Ctx, raw: &[u8]) -> Result<(String, Option<serde_json::Value>), ApiError> {
    let s: PasskeyStep = decode(raw)?;
    let id = links::verify(ctx.app.keys(), &s.t, SystemClock.now()).map_err(|e| {
        ApiError::new(
            match e {
                LinkError::Expired => StatusCode::GONE,
                LinkError::Invalid => StatusCode::BAD_REQUEST,
            },
            "invalid_link",
            e.to_string(),
        )
    })?;
    Ok((id, s.credential))
}

fn credential(c: Option<serde_json::Value>) -> Result<serde_json::Value, ApiError> {
    c.ok_or_else(|| ApiError::field("credential", "is required"))
}

/// `POST /challenge/passkey/{step}`: `register/start`, `register/finish`, `auth/start`,
/// `auth/finish`; the link's token is the credential.
pub async fn passkey(
    State(ctx): State<Ctx>,
    axum::extract::Path((what, stage)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
    raw: bytes::Bytes,
) -> Result<Response, ApiError> {
    let (id, cred) = step(&ctx, &raw)?;
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    let json = |v: serde_json::Value| (StatusCode::OK, axum::Json(v)).into_response();
    Ok(match (what.as_str(), stage.as_str()) {
        ("register", "start") => json(ctx.app.passkey_register_start(&id)?),
        ("register", "finish") => {
            ctx.app
                .passkey_register_finish(&id, &credential(cred)?, ua)?;
            crate::api::audit(
                &ctx,
                "cardholder:web".into(),
                "create passkey".into(),
                format!("challenge {id}"),
                "registered".into(),
            )
            .await;
            json(serde_json::json!({"registered": true}))
        }
        ("auth", "start") => json(ctx.app.passkey_auth_start(&id)?),
        ("auth", "finish") => {
            let a = ctx
                .app
                .passkey_auth_finish(&id, &credential(cred)?, ua)
                .await?;
            let body = serde_json::json!({
                "trans_status": a.auth.trans_status.as_str(),
                "error": a.error,
            });
            with_device_cookie(&ctx, json(body), a.device_token.as_deref())
        }
        _ => return Err(ApiError::not_found("no such passkey step")),
    })
}
