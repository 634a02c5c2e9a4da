//! The step-up challenge page, the cardholder's (no API key: the signed, expiring link in
//! the challenge URL is its credential): the merchant and the amount, a field for the
//! 6-digit code, "send a new code", and the card's other factors. Japanese or English as
//! the card's language says; made for a phone's screen. A right code sets the device's
//! token as a cookie, so that the device is trusted for this card afterwards.

use crate::api::Ctx;
use crate::pages::{esc, page};
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
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
    never: &'static str,
    attempts: &'static str,
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
    never: "認証コードは誰にも教えないでください。当社がおたずねすることはありません。",
    attempts: "あと{n}回入力できます。",
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
    never: "Never tell anyone this code: we will never ask you for it.",
    attempts: "{n} tries left.",
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
        _ => format!("<p>{}</p>", w.totp),
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
        .filter(|f| **f != ch.factor)
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
    let main = format!(
        "{STYLE}<p>{}</p>{}{how}{msg}{attempts}\
<form method=\"post\" action=\"{CHALLENGE_PATH}\"><input type=\"hidden\" name=\"t\" value=\"{t}\">\
<input type=\"hidden\" name=\"action\" value=\"verify\"><label for=\"code\">{}</label><br>\
<input class=\"code\" id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
pattern=\"[0-9]{{6}}\" maxlength=\"6\" required autofocus> \
<button type=\"submit\" class=\"primary\" id=\"verify\">{}</button></form>{resend}{others}<p class=\"note\">{}</p>",
        w.intro,
        details(a, w),
        w.code_label,
        w.verify,
        w.never
    );
    page(StatusCode::OK, w.lang, w.title, &main)
}

/// The page of an ended challenge.
fn ended_page(a: &Authentication) -> Response {
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
    let main = format!(
        "{STYLE}<p class=\"{class}\" id=\"result\" data-status=\"{}\">{text}</p>{}{back}",
        a.trans_status.as_str(),
        details(a, w)
    );
    page(StatusCode::OK, w.lang, w.title, &main)
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
        return ended_page(&a);
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
                Ok(ans) => {
                    let mut r = ended_page(&ans.auth);
                    if let Some(token) = &ans.device_token {
                        let secure = if ctx.app.config.web.public_url.starts_with("https://") {
                            "; Secure"
                        } else {
                            ""
                        };
                        let cookie = format!(
                            "{DEVICE_COOKIE}={token}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax{secure}",
                            u64::from(cfg.device_trust_days) * 86_400
                        );
                        if let Ok(v) = HeaderValue::from_str(&cookie) {
                            r.headers_mut().insert(header::SET_COOKIE, v);
                        }
                    }
                    r
                }
                Err(AppError::Conflict(_)) => ended_or_open(&ctx, &p.t, &id, None),
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
        Ok(a) if a.challenge.as_ref().is_some_and(|c| c.ended_ms.is_some()) => ended_page(&a),
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
