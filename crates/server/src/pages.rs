//! The cardholder's own answers, the routes without an API key: the answer page of an alert
//! ("was this you?") and the SMS provider's inbound webhook of replies ("YES 0042"). The link in the alert carries a signed, expiring token; opening it
//! (GET) changes nothing and shows the purchase and one form, whose POST records the
//! answer, so that a mail scanner that follows links cannot answer for the cardholder. The
//! answer is taken once; the page then says what was done.

use crate::api::Ctx;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cardguard_app::links::{self, LinkError};
use cardguard_app::{AnswerView, AppError, format};
use cardguard_core::{Clock, SystemClock};
use cardguard_engine::Answer;
use serde::Deserialize;

/// The path of the answer page, as links in alerts name it.
pub const ANSWER_PATH: &str = "/answer";

#[derive(Debug, Deserialize)]
pub struct AnswerParams {
    #[serde(default)]
    t: String,
    #[serde(default)]
    answer: String,
}

/// Text with `& < > " '` escaped, for HTML.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Words of the page in one language.
struct Words {
    lang: &'static str,
    title: &'static str,
    question: &'static str,
    merchant: &'static str,
    amount: &'static str,
    time: &'static str,
    yes: &'static str,
    no: &'static str,
    thanks_yes: &'static str,
    thanks_no: &'static str,
    answered_yes: &'static str,
    answered_no: &'static str,
    never: &'static str,
}

const JA: Words = Words {
    lang: "ja",
    title: "カードご利用の確認",
    question: "次のご利用は、お客さまご本人によるものですか。",
    merchant: "ご利用先",
    amount: "ご利用金額",
    time: "ご利用日時",
    yes: "はい、本人の利用です",
    no: "いいえ、本人の利用ではありません",
    thanks_yes: "ご回答ありがとうございます。このご利用の保留を解除しました。同じお店で同じ金額のお支払いをもう一度お試しください。",
    thanks_no: "ご回答ありがとうございます。このカードのご利用を停止しました。このご利用分をお支払いいただく必要はありません。新しいカードをお送りします。",
    answered_yes: "このご利用には「本人の利用です」とご回答いただいています。",
    answered_no: "このご利用には「本人の利用ではありません」とご回答いただき、カードを停止しています。",
    never: "カード番号・暗証番号・パスワードをおたずねすることはありません。",
};

const EN: Words = Words {
    lang: "en",
    title: "Was this you?",
    question: "Did you make this purchase?",
    merchant: "Merchant",
    amount: "Amount",
    time: "Date",
    yes: "Yes, it was me",
    no: "No, it was not me",
    thanks_yes: "Thank you. We have released this purchase: please try the same payment at the same shop again.",
    thanks_no: "Thank you. We have stopped this card; you will not pay for this purchase, and we will send you a new card.",
    answered_yes: "You have already told us this purchase was yours.",
    answered_no: "You have already told us this purchase was not yours; the card is stopped.",
    never: "We never ask for your card number, PIN or password.",
};

/// The pages' content security policy: their own styles, forms to themselves, no framing.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'";

pub(crate) fn page(status: StatusCode, lang: &str, title: &str, main: &str) -> Response {
    page_with(status, lang, title, main, CSP)
}

/// A page under the content security policy `csp`.
pub(crate) fn page_with(
    status: StatusCode,
    lang: &str,
    title: &str,
    main: &str,
    csp: &'static str,
) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<style>body{{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;color:#222}}\
h1{{font-size:1.4rem}}dl{{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem}}dt{{color:#666}}dd{{margin:0}}\
button{{font-size:1.1rem;padding:.7rem 1.2rem;border-radius:.4rem;border:1px solid #444;background:#fff;cursor:pointer}}\
button.yes{{background:#1a7f37;color:#fff;border-color:#1a7f37}}button.no{{background:#b42318;color:#fff;border-color:#b42318}}\
.note{{color:#666;font-size:.9rem;margin-top:2rem}}</style></head><body><h1>{title}</h1>{main}</body></html>",
        title = esc(title)
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    // The token is in the URL: no caching, no referrer, no framing.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    r
}

/// A page for a link that does not open, in both languages (the card is not known).
fn refused(e: LinkError) -> Response {
    let (ja, en, status) = match e {
        LinkError::Expired => (
            "このリンクの有効期限が切れています。",
            "This link has expired.",
            StatusCode::GONE,
        ),
        LinkError::Invalid => (
            "このリンクは無効です。",
            "This link is not valid.",
            StatusCode::BAD_REQUEST,
        ),
    };
    let main = format!(
        "<p>{ja}</p><p>{en}</p><p class=\"note\">{} {}</p>",
        JA.never, EN.never
    );
    page(status, "ja", "カードご利用の確認 / Was this you?", &main)
}

fn words(view: &AnswerView) -> &'static Words {
    match view.card.as_ref().map(|c| c.contact.language.as_str()) {
        Some("ja") => &JA,
        _ => &EN,
    }
}

/// The purchase, as the alert showed it.
fn details(view: &AnswerView, w: &Words) -> String {
    let tx = &view.record.tx;
    let card = view.card.as_ref();
    let tz = format::zone(
        card.and_then(|c| c.contact.time_zone.as_deref()),
        card.and_then(|c| c.home.as_ref())
            .map(|h| h.country.as_str()),
    );
    let merchant = format::merchant(&tx.merchant);
    format!(
        "<dl><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd></dl>",
        w.merchant,
        esc(&merchant),
        w.amount,
        esc(&format::money(&tx.amount)),
        w.time,
        esc(&format::local_time(tx.ts, &tz, w.lang)),
    )
}

fn app_error(e: AppError) -> Response {
    match e {
        AppError::NotFound(_) | AppError::Conflict(_) => refused(LinkError::Invalid),
        e => {
            tracing::error!(error = %e, "answer page failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "en",
                "Was this you?",
                "<p>Please try again in a few minutes.</p>",
            )
        }
    }
}

/// GET: the purchase and the one form that answers; nothing changes.
pub async fn show(State(ctx): State<Ctx>, Query(p): Query<AnswerParams>) -> Response {
    let id = match links::verify(ctx.app.keys(), &p.t, SystemClock.now()) {
        Ok(id) => id,
        Err(e) => return refused(e),
    };
    let yes = match p.answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => return refused(LinkError::Invalid),
    };
    let view = match ctx.app.answer_view(&id).await {
        Ok(v) => v,
        Err(e) => return app_error(e),
    };
    let w = words(&view);
    let body = match view.answer {
        Answer::Yes => format!("<p>{}</p>", w.answered_yes),
        Answer::No => format!("<p>{}</p>", w.answered_no),
        Answer::None => format!(
            "<form method=\"post\" action=\"{ANSWER_PATH}\"><input type=\"hidden\" name=\"t\" value=\"{}\">\
<input type=\"hidden\" name=\"answer\" value=\"{}\"><button type=\"submit\" class=\"{}\">{}</button></form>",
            esc(&p.t),
            if yes { "yes" } else { "no" },
            if yes { "yes" } else { "no" },
            if yes { w.yes } else { w.no }
        ),
    };
    let main = format!(
        "<p>{}</p>{}{body}<p class=\"note\">{}</p>",
        w.question,
        details(&view, w),
        w.never
    );
    page(StatusCode::OK, w.lang, w.title, &main)
}

/// POST: the answer, once.
pub async fn answer(State(ctx): State<Ctx>, Form(p): Form<AnswerParams>) -> Response {
    let id = match links::verify(ctx.app.keys(), &p.t, SystemClock.now()) {
        Ok(id) => id,
        Err(e) => return refused(e),
    };
    let yes = match p.answer.as_str() {
        "yes" => true,
        "no" => false,
        _ => return refused(LinkError::Invalid),
    };
    let done = match ctx.app.answer(&id, yes, "web").await {
        Ok(a) => a,
        Err(e) => return app_error(e),
    };
    crate::api::audit(
        &ctx,
        "cardholder:web".into(),
        "answer".into(),
        id.clone(),
        answer_text(done.first, yes).into(),
    )
    .await;
    let view = match ctx.app.answer_view(&id).await {
        Ok(v) => v,
        Err(e) => return app_error(e),
    };
    let w = words(&view);
    let said = match (done.first, done.yes) {
        (true, true) => w.thanks_yes,
        (true, false) => w.thanks_no,
        (false, true) => w.answered_yes,
        (false, false) => w.answered_no,
    };
    let main = format!(
        "<p>{said}</p>{}<p class=\"note\">{}</p>",
        details(&view, w),
        w.never
    );
    page(StatusCode::OK, w.lang, w.title, &main)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc("<b>\"A&B's\"</b>"),
            "&lt;b&gt;&quot;A&amp;B&#39;s&quot;&lt;/b&gt;"
        );
    }
}

/// The inbound webhook's query: the shared secret the provider was configured with.
#[derive(Debug, Deserialize)]
pub struct InboundQuery {
    #[serde(default)]
    secret: String,
}

/// The path of the SMS provider's inbound webhook.
pub const SMS_INBOUND_PATH: &str = "/v1/sms/inbound";

/// A reply by SMS ("YES 0042" / "NO 0042"): the same answer as the page's, for the open
/// hold (or suspected-fraud decline) whose code it names, of a card whose phone sent it.
/// Answered 200 whatever it matched (the sender learns nothing); 401 without the secret.
pub async fn sms_inbound(
    State(ctx): State<Ctx>,
    Query(q): Query<InboundQuery>,
    Form(fields): Form<std::collections::HashMap<String, String>>,
) -> Response {
    use subtle::ConstantTimeEq;
    let Some(sms) = ctx.app.config.notify.sms.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let ok = sms.inbound_secret.as_deref().is_some_and(|s| {
        s.len() == q.secret.len() && bool::from(s.as_bytes().ct_eq(q.secret.as_bytes()))
    });
    if !ok {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let from = fields
        .get(&sms.inbound_from_field)
        .map(String::as_str)
        .unwrap_or("");
    let text = fields
        .get(&sms.inbound_text_field)
        .map(String::as_str)
        .unwrap_or("");
    let Some((yes, code)) = links::parse_reply(text) else {
        tracing::info!("SMS reply not understood");
        return StatusCode::OK.into_response();
    };
    let app = std::sync::Arc::clone(&ctx.app);
    let now = SystemClock.now().0;
    let expiry = i64::from(app.config.notify.hold_expiry_minutes) * 60_000;
    let from = from.to_owned();
    // The open holds of the expiry window whose code it names, of a card with this phone.
    let found = tokio::task::spawn_blocking(move || {
        let holds = app.holds().recent(now - expiry, 10_000).ok()?;
        holds.into_iter().find(|h| {
            h.state(now) == "open"
                && links::reply_code(&h.authorization_id) == code
                && cardguard_core::CardToken::parse(&h.card_token)
                    .ok()
                    .and_then(|t| app.card(&t))
                    .is_some_and(|c| c.contact.phone.as_deref() == Some(from.as_str()))
        })
    })
    .await
    .ok()
    .flatten();
    match found {
        Some(h) => match ctx.app.answer(&h.authorization_id, yes, "sms").await {
            Ok(a) => {
                crate::api::audit(
                    &ctx,
                    "cardholder:sms".into(),
                    "answer".into(),
                    h.authorization_id.clone(),
                    answer_text(a.first, yes).into(),
                )
                .await;
            }
            Err(e) => tracing::info!(error = %e, "SMS reply not taken"),
        },
        None => tracing::info!("SMS reply names no open hold of its sender"),
    }
    StatusCode::OK.into_response()
}

/// An answer as the audit trail records it.
fn answer_text(first: bool, yes: bool) -> &'static str {
    match (first, yes) {
        (true, true) => "yes",
        (true, false) => "no",
        (false, _) => "answered before",
    }
}
