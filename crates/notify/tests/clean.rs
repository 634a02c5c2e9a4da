//! cardguard's own notices, as they go out by email, are clean to cardguard's own phishing
//! analyzer in both languages: nothing in them looks like the phishing it flags (no request
//! for a card number or password, links to the issuer's own server).

use cardguard_app::config::{SmtpConfig, SmtpTls};
use cardguard_notify::email::Email;
use cardguard_notify::templates::{KINDS, LANGUAGES, Templates, sample};
use cardguard_phish::analyze::Verdict;
use cardguard_store::{OutboxRow, OutboxState};

#[test]
fn every_notice_in_every_language_is_clean() {
    let t = Templates::load(None).unwrap();
    let email = Email::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port: 25,
        from: "Example Card <alerts@cards.example>".into(),
        tls: SmtpTls::None,
        username: None,
        password: None,
        timeout_ms: 1000,
    })
    .unwrap();
    let reg = cardguard_phish::BrandRegistry::builtin();
    for kind in KINDS {
        for lang in LANGUAGES {
            for held in [true, false] {
                let r = t.render(kind, lang, sample(held)).unwrap();
                let row = OutboxRow {
                    key: format!("au_000000000001.{kind}.email"),
                    authorization_id: "au_000000000001".into(),
                    card_token: "00".into(),
                    kind: kind.into(),
                    channel: "email".into(),
                    recipient: "hanako@example.jp".into(),
                    subject: r.subject,
                    body: r.body,
                    created_ms: 0,
                    state: OutboxState::Pending,
                    tries: 0,
                    next_ms: 0,
                    last_error: None,
                    sent_ms: None,
                };
                let raw = email.message(&row).unwrap().formatted();
                let report = cardguard_phish::analyze(&raw, &reg).unwrap();
                assert_eq!(
                    report.verdict,
                    Verdict::Clean,
                    "{kind} {lang} held={held}: {:?}",
                    report.reasons
                );
            }
        }
    }
}
