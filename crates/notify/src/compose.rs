//! What an authorization tells its cardholder, and through which channels: a fraud alert
//! for a hold or a decline as suspected fraud (with the two answer links), a usage notice
//! for an approved purchase at or above the card's threshold (cash advances and refunds
//! excluded). Each becomes an outbox row per channel, keyed by authorization, kind and
//! channel, so that the same event seen again adds nothing.

use crate::templates::{TemplateError, Templates};
use cardguard_app::format;
use cardguard_app::registry::CardInfo;
use cardguard_core::{Decision, Money, ResponseCode, TxType};
use cardguard_engine::{AuthRecord, FxRates};
use cardguard_store::{OutboxRow, OutboxState};
use minijinja::context;

/// Makes the token of an answer link to an authorization, valid until a time (see
/// `cardguard_app::links::token`).
pub type LinkMaker = Box<dyn Fn(&str, cardguard_core::Timestamp) -> String + Send + Sync>;

/// What the composer needs besides the event and the card.
pub struct Composer {
    pub templates: Templates,
    /// The base of the links, without a trailing slash.
    pub public_url: String,
    pub issuer: String,
    /// How long a hold waits for the answer.
    pub hold_expiry_ms: i64,
    /// The channels that can send (`email`, `sms`, `push`): a card's other choices wait
    /// for their configuration.
    pub channels: Vec<&'static str>,
    pub link: LinkMaker,
}

/// How long the answer links of a decline stay valid: the answer labels it and can block
/// the card, which is worth doing days later.
const DECLINE_LINK_MS: i64 = 30 * 86_400_000;

/// The kind of notice an authorization calls for, if any.
pub fn kind_of(rec: &AuthRecord, card: &CardInfo, fx: &FxRates) -> Option<&'static str> {
    let o = &rec.outcome;
    let suspected = o.decision == Decision::Hold
        || (o.decision == Decision::Decline && o.response_code == ResponseCode::SuspectedFraud);
    if suspected {
        return Some("fraud-alert");
    }
    if o.decision == Decision::Approve
        && rec.tx.tx_type == TxType::Purchase
        && at_or_above(
            &rec.tx.amount,
            rec.tx.amount_base,
            &card.notifications.usage_threshold,
            fx,
        )
    {
        return Some("usage-notice");
    }
    None
}

/// Whether `amount` reaches `threshold`: compared as they are in one currency, through the
/// base currency otherwise.
fn at_or_above(amount: &Money, amount_base: u64, threshold: &Money, fx: &FxRates) -> bool {
    if amount.currency == threshold.currency {
        amount.value >= threshold.value
    } else {
        amount_base >= fx.to_base_minor(threshold)
    }
}

impl Composer {
    /// The outbox rows for one authorization of an enrolled card (none when it calls for
    /// no notice or the card has no channel that can take it).
    pub fn compose(
        &self,
        rec: &AuthRecord,
        card: &CardInfo,
        fx: &FxRates,
    ) -> Result<Vec<OutboxRow>, TemplateError> {
        let Some(kind) = kind_of(rec, card, fx) else {
            return Ok(Vec::new());
        };
        let held = rec.outcome.decision == Decision::Hold;
        self.rows(kind, &rec.authorization_id, &rec.tx, held, card)
    }

    /// The notice that the card is blocked, after its cardholder said `answer`'s
    /// authorization was not theirs.
    pub fn blocked(
        &self,
        answer: &cardguard_engine::AnswerRecord,
        card: &CardInfo,
    ) -> Result<Vec<OutboxRow>, TemplateError> {
        if answer.yes {
            return Ok(Vec::new());
        }
        let mut tx = answer.original.clone();
        // Sent when the answer came.
        tx.received = Some(answer.received);
        self.rows("card-blocked", &answer.authorization_id, &tx, false, card)
    }

    /// The rows of a notice of `kind` about the authorization `authorization_id` of `tx`.
    fn rows(
        &self,
        kind: &'static str,
        authorization_id: &str,
        tx: &cardguard_engine::TxFacts,
        held: bool,
        card: &CardInfo,
    ) -> Result<Vec<OutboxRow>, TemplateError> {
        let (lang, tz) = self.reader(card);
        let received = tx.now();
        let expires_ms = received.0
            + if held {
                self.hold_expiry_ms
            } else {
                DECLINE_LINK_MS
            };
        let token = (self.link)(authorization_id, cardguard_core::Timestamp(expires_ms));
        let link = |answer: &str| format!("{}/answer?t={token}&answer={answer}", self.public_url);
        let ctx = context! {
            issuer => self.issuer.as_str(),
            last4 => tx.last4.to_string(),
            merchant => format::merchant(&tx.merchant),
            amount => format::money(&tx.amount),
            time => format::local_time(tx.ts, &tz, lang),
            held => held,
            expires => format::local_time(cardguard_core::Timestamp(expires_ms), &tz, lang),
            yes_url => link("yes"),
            no_url => link("no"),
            code => cardguard_app::links::reply_code(authorization_id),
        };
        let answer = (kind == "fraud-alert")
            .then(|| serde_json::json!({"yes": link("yes"), "no": link("no")}));
        self.emit(
            kind,
            authorization_id,
            card,
            &ctx,
            received.0,
            answer,
            &card.notifications.channels,
        )
    }

    /// The card's language and time zone.
    fn reader<'c>(&self, card: &'c CardInfo) -> (&'c str, jiff::tz::TimeZone) {
        let tz = format::zone(
            card.contact.time_zone.as_deref(),
            card.home.as_ref().map(|h| h.country.as_str()),
        );
        (card.contact.language.as_str(), tz)
    }

    /// A row per channel of `channels` that can send and has the card's recipient: `kind`
    /// rendered with `ctx`, about `id` (an authorization or an authentication), keyed by id,
    /// kind and channel; a push document carries `answer` links when given.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        kind: &'static str,
        id: &str,
        card: &CardInfo,
        ctx: &minijinja::Value,
        created_ms: i64,
        answer: Option<serde_json::Value>,
        channels: &[String],
    ) -> Result<Vec<OutboxRow>, TemplateError> {
        // The channels that can send, each with its recipient.
        let recipients: Vec<(&str, String)> = channels
            .iter()
            .filter(|c| self.channels.contains(&c.as_str()))
            .filter_map(|c| match c.as_str() {
                "email" => card.contact.email.clone().map(|e| ("email", e)),
                "sms" => card.contact.phone.clone().map(|p| ("sms", p)),
                "push" => Some(("push", card.token.to_string())),
                _ => None,
            })
            .collect();
        if recipients.is_empty() {
            return Ok(Vec::new());
        }
        let lang = card.contact.language.as_str();
        let email = self.templates.render(kind, lang, ctx.clone())?;
        let row = |channel: &str, recipient: String, subject: String, body: String| OutboxRow {
            key: format!("{id}.{kind}.{channel}"),
            authorization_id: id.to_owned(),
            card_token: card.token.to_string(),
            kind: kind.into(),
            channel: channel.into(),
            recipient,
            subject,
            body,
            created_ms,
            state: OutboxState::Pending,
            tries: 0,
            next_ms: created_ms,
            last_error: None,
            sent_ms: None,
        };
        let mut rows = Vec::with_capacity(recipients.len());
        for (channel, recipient) in recipients {
            rows.push(match channel {
                "sms" => {
                    let text = self.templates.render_sms(kind, lang, ctx.clone())?;
                    row(channel, recipient, String::new(), text)
                }
                "push" => {
                    let mut doc = serde_json::json!({
                        "key": format!("{id}.{kind}.push"),
                        "kind": kind,
                        "authorization_id": id,
                        "card_token": card.token.to_string(),
                        "last4": card.last4,
                        "language": lang,
                        "subject": email.subject,
                        "text": email.body,
                    });
                    if let Some(a) = &answer {
                        doc["answer"] = a.clone();
                    }
                    row(channel, recipient, email.subject.clone(), doc.to_string())
                }
                _ => row(
                    channel,
                    recipient,
                    email.subject.clone(),
                    email.body.clone(),
                ),
            });
        }
        Ok(rows)
    }

    /// The one-time code of a step-up challenge, by its factor's channel: one row, keyed
    /// by challenge and send, whatever channels the card chose for notices.
    pub fn code(
        &self,
        m: &cardguard_app::stepup::CodeMessage,
    ) -> Result<Vec<OutboxRow>, TemplateError> {
        let ctx = context! {
            issuer => self.issuer.as_str(),
            last4 => m.last4.clone(),
            merchant => m.merchant.clone(),
            amount => format::money(&m.amount),
            otp => m.code.clone(),
            valid_minutes => m.valid_minutes,
        };
        let lang = m.language.as_str();
        let (subject, body) = match m.factor {
            cardguard_app::stepup::Factor::Sms => (
                String::new(),
                self.templates.render_sms("one-time-code", lang, ctx)?,
            ),
            _ => {
                let r = self.templates.render("one-time-code", lang, ctx)?;
                (r.subject, r.body)
            }
        };
        Ok(vec![OutboxRow {
            key: m.key.clone(),
            authorization_id: m.authentication_id.clone(),
            card_token: m.card_token.to_string(),
            kind: cardguard_store::outbox::SECRET_KIND.into(),
            channel: m.factor.as_str().into(),
            recipient: m.recipient.clone(),
            subject,
            body,
            created_ms: m.created_ms,
            state: OutboxState::Pending,
            tries: 0,
            next_ms: m.created_ms,
            last_error: None,
            sent_ms: None,
        }])
    }

    /// The alert that a challenged step-up authentication failed (too many wrong codes).
    pub fn authentication_failed(
        &self,
        rec: &cardguard_engine::AuthenticationRecord,
        card: &CardInfo,
    ) -> Result<Vec<OutboxRow>, TemplateError> {
        if rec.trans_status != "N" {
            return Ok(Vec::new());
        }
        let (lang, tz) = self.reader(card);
        let why = match (lang, rec.reason.as_str()) {
            ("ja", "too_many_wrong_codes" | "card_locked_out") => "認証コードの誤りが続いたため",
            ("ja", _) => "認証が完了しなかったため",
            (_, "too_many_wrong_codes" | "card_locked_out") => "too many wrong codes",
            _ => "the code was not entered in time",
        };
        let ctx = context! {
            issuer => self.issuer.as_str(),
            last4 => rec.last4.to_string(),
            merchant => rec.merchant_name.clone(),
            amount => format::money(&rec.amount),
            time => format::local_time(rec.received, &tz, lang),
            why => why,
        };
        let id = format!(
            "authn-{}-{}",
            rec.client.as_deref().unwrap_or(""),
            rec.authentication_id
        );
        self.emit(
            "authentication-failed",
            &id,
            card,
            &ctx,
            rec.received.0,
            None,
            &card.notifications.channels,
        )
    }
}

impl Composer {
    /// The notice that the issuer stopped the card (an analyst's block) or is replacing it.
    pub fn stopped(
        &self,
        rec: &cardguard_engine::CardStatusRecord,
        card: &CardInfo,
    ) -> Result<Vec<OutboxRow>, TemplateError> {
        let kind = match rec.status.as_str() {
            "blocked" => "card-stopped",
            "reissued" => "card-reissued",
            _ => return Ok(Vec::new()),
        };
        let (lang, tz) = self.reader(card);
        let ctx = context! {
            issuer => self.issuer.as_str(),
            last4 => rec.last4.to_string(),
            time => format::local_time(rec.received, &tz, lang),
            new_last4 => rec.replacement_last4.clone().unwrap_or_default(),
            expected => rec.expected.map(|e| format::local_time(e, &tz, lang)).unwrap_or_default(),
            cnp => rec.reason == "card_not_present",
        };
        let id = format!("cs-{}-{}", rec.card_token, rec.received.0);
        self.emit(
            kind,
            &id,
            card,
            &ctx,
            rec.received.0,
            None,
            &card.notifications.channels,
        )
    }
}

impl Composer {
    /// The notice of a decision on covering the cardholder's loss (fraud compensation, a
    /// shopping-protection claim).
    pub fn coverage(
        &self,
        rec: &cardguard_engine::CoverageRecord,
        card: &CardInfo,
    ) -> Result<Vec<OutboxRow>, TemplateError> {
        let (lang, tz) = self.reader(card);
        let sum = |m: &[Money]| m.iter().map(format::money).collect::<Vec<_>>().join(" + ");
        let ctx = context! {
            issuer => self.issuer.as_str(),
            last4 => rec.last4.to_string(),
            time => format::local_time(rec.received, &tz, lang),
            scheme => rec.scheme.as_str(),
            reference => rec.reference,
            covered => rec.covered,
            credited => sum(&rec.credited),
            billed => sum(&rec.billed),
            reasons => rec.reasons.clone(),
        };
        let id = format!("cov-{}-{}-{}", rec.scheme, rec.reference, rec.received.0);
        self.emit(
            "coverage-decision",
            &id,
            card,
            &ctx,
            rec.received.0,
            None,
            &card.notifications.channels,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cardguard_app::registry::{Contact, CscMethod, Home, Notifications};
    use cardguard_core::{
        CardToken, Channel, Country, Currency, Expiry, Last4, Mcc, Merchant, Timestamp,
    };
    use cardguard_engine::{CardStatus, Outcome, TxFacts, synth::ok_checks};

    fn card(channels: &[&str], threshold: Money) -> CardInfo {
        CardInfo {
            token: CardToken([7; 16]),
            last4: "2349".into(),
            expiry: Expiry::parse("2029-12").unwrap(),
            cardholder_id: "ch-1".into(),
            product: "gold".into(),
            status: CardStatus::Active,
            service_code: "101".into(),
            brand: cardguard_cardsec::Brand::Visa,
            csc: CscMethod::Stored { hash: "00".into() },
            pin: None,
            contact: Contact {
                email: Some("hanako@example.jp".into()),
                phone: None,
                language: "en".into(),
                time_zone: None,
            },
            notifications: Notifications {
                usage_threshold: threshold,
                channels: channels.iter().map(|c| (*c).to_owned()).collect(),
            },
            home: Some(Home {
                country: Country::parse("JP").unwrap(),
                city: None,
                location: None,
            }),
        }
    }

    fn record(decision: Decision, code: ResponseCode, amount: Money, base: u64) -> AuthRecord {
        AuthRecord {
            authorization_id: "au_000000000042".into(),
            tx: TxFacts {
                id: "r-1".into(),
                ts: Timestamp::parse_rfc3339("2026-12-01T01:15:00Z").unwrap(),
                utc_offset_min: 540,
                card_token: CardToken([7; 16]),
                last4: Last4::parse("2349").unwrap(),
                amount,
                amount_base: base,
                merchant: Merchant {
                    id: "m-1".into(),
                    terminal_id: "t-1".into(),
                    name: "BIC CAMERA".into(),
                    mcc: Mcc::parse("5732").unwrap(),
                    country: Country::parse("JP").unwrap(),
                    city: "Tokyo".into(),
                    location: None,
                },
                channel: Channel::CardPresent,
                tx_type: TxType::Purchase,
                device_id: None,
                device_ip: None,
                ip_country: None,
                email_domain: None,
                home_country: None,
                home: None,
                received: Some(Timestamp::parse_rfc3339("2026-12-01T01:15:01Z").unwrap()),
                client: None,
                digest: None,
                authenticated: None,
            },
            checks: ok_checks(),
            outcome: Outcome {
                decision,
                response_code: code,
                risk_score: 70,
                model: "scorecard-1".into(),
                ..Outcome::unscored_approval()
            },
        }
    }

    fn composer() -> Composer {
        Composer {
            templates: Templates::load(None).unwrap(),
            public_url: "https://cards.example".into(),
            issuer: "Example Card".into(),
            hold_expiry_ms: 30 * 60_000,
            link: Box::new(|id, exp| format!("{id}.{}.test", exp.0 / 1000)),
            channels: vec!["email", "sms", "push"],
        }
    }

    #[test]
    fn what_each_decision_tells_and_through_which_channel() {
        let fx = FxRates::default();
        let yen = |v| Money::new(v, Currency::JPY).unwrap();
        let usd = |v| Money::new(v, Currency::USD).unwrap();
        let c = card(&["email"], yen(5000));
        let approve = |m, base| record(Decision::Approve, ResponseCode::Approved, m, base);
        assert_eq!(
            kind_of(&approve(yen(5000), 5000), &c, &fx),
            Some("usage-notice")
        );
        assert_eq!(kind_of(&approve(yen(4999), 4999), &c, &fx), None);
        // Another currency is compared through the base currency.
        assert_eq!(
            kind_of(&approve(usd(5000), 7500), &c, &fx),
            Some("usage-notice")
        );
        assert_eq!(kind_of(&approve(usd(100), 150), &c, &fx), None);
        let mut cash = approve(yen(90_000), 90_000);
        cash.tx.tx_type = TxType::CashAdvance;
        assert_eq!(
            kind_of(&cash, &c, &fx),
            None,
            "cash advances get no usage notice"
        );
        let hold = record(Decision::Hold, ResponseCode::ReferToIssuer, yen(100), 100);
        assert_eq!(kind_of(&hold, &c, &fx), Some("fraud-alert"));
        let fraud = record(
            Decision::Decline,
            ResponseCode::SuspectedFraud,
            yen(100),
            100,
        );
        assert_eq!(kind_of(&fraud, &c, &fx), Some("fraud-alert"));
        let expired = record(Decision::Decline, ResponseCode::ExpiredCard, yen(100), 100);
        assert_eq!(
            kind_of(&expired, &c, &fx),
            None,
            "a card-data decline is no alert"
        );

        let rows = composer().compose(&hold, &c, &fx).unwrap();
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(r.key, "au_000000000042.fraud-alert.email");
        assert_eq!(r.recipient, "hanako@example.jp");
        assert!(r.body.contains("1 Dec 2026, 10:15 JST"), "{}", r.body);
        // Expires 30 minutes after the server received it: 10:45 in Tokyo.
        assert!(r.body.contains("by 1 Dec 2026, 10:45 JST"), "{}", r.body);
        let expires = Timestamp::parse_rfc3339("2026-12-01T01:45:01Z").unwrap().0 / 1000;
        let token = format!("au_000000000042.{expires}.test");
        assert!(
            r.body.contains(&format!(
                "https://cards.example/answer?t={token}&answer=yes"
            )),
            "{}",
            r.body
        );
        // Every channel the card chose and the server can send: SMS with a reply code, push
        // as a JSON document with the answer links.
        let mut c3 = card(&["email", "sms", "push"], yen(5000));
        c3.contact.phone = Some("+819012345678".into());
        let rows = composer().compose(&hold, &c3, &fx).unwrap();
        let channels: Vec<&str> = rows.iter().map(|r| r.channel.as_str()).collect();
        assert_eq!(channels, ["email", "sms", "push"]);
        assert_eq!(rows[1].recipient, "+819012345678");
        assert!(rows[1].body.contains("Reply YES 0042"), "{}", rows[1].body);
        let doc: serde_json::Value = serde_json::from_str(&rows[2].body).unwrap();
        assert_eq!(doc["key"], "au_000000000042.fraud-alert.push");
        assert!(doc["answer"]["no"].as_str().unwrap().ends_with("answer=no"));
        // A channel the server cannot send is left out; none left, nothing is composed.
        let mut email_only = composer();
        email_only.channels = vec!["email"];
        assert_eq!(email_only.compose(&hold, &c3, &fx).unwrap().len(), 1);
        assert!(
            email_only
                .compose(&hold, &card(&["push"], yen(5000)), &fx)
                .unwrap()
                .is_empty()
        );
    }
}
