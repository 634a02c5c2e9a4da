//! SPF, DKIM and DMARC end to end, offline: a fixed zone stands in for DNS, messages are signed
//! with a fresh Ed25519 key published in that zone, and the verdicts reach the analyzer.

use cardguard_mailauth::{AuthCheck, AuthMethod, Envelope, SenderVerifier, Zone};
use cardguard_phish::{BrandRegistry, Options, analyze_with};
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;

fn base64(bytes: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Bank {
    key_der: Vec<u8>,
    zone_text: String,
}

impl Bank {
    /// A bank that publishes SPF for 192.0.2.0/24, a DKIM key and DMARC p=reject.
    fn new() -> Self {
        let key_der = Ed25519Key::generate_pkcs8().unwrap();
        let public = Ed25519Key::from_pkcs8_der(&key_der).unwrap().public_key();
        let zone_text = format!(
            "bank.example TXT \"v=spf1 ip4:192.0.2.0/24 -all\"\n\
             sel._domainkey.bank.example TXT \"v=DKIM1; k=ed25519; p={}\"\n\
             _dmarc.bank.example TXT \"v=DMARC1; p=reject; adkim=r; aspf=r\"\n",
            base64(&public)
        );
        Bank { key_der, zone_text }
    }

    fn verifier(&self) -> SenderVerifier {
        SenderVerifier::offline(Zone::parse(&self.zone_text).unwrap()).unwrap()
    }

    fn sign(&self, message: &str) -> String {
        let key = Ed25519Key::from_pkcs8_der(&self.key_der).unwrap();
        let sig = DkimSigner::<Ed25519Key, _>::from_key(key)
            .domain("bank.example")
            .selector("sel")
            .headers(["From", "To", "Subject", "Date"])
            .sign(message.as_bytes())
            .unwrap();
        format!("{}{}", sig.to_header(), message)
    }
}

fn message(client_ip: &str, body: &str) -> String {
    format!(
        "Received: from relay.inside.example (relay.inside.example [10.1.2.3])\r\n\
         \tby mx.receiver.example with ESMTP id 1; Mon, 2 Nov 2026 10:00:01 +0900\r\n\
         Received: from mail.bank.example (mail.bank.example [{client_ip}])\r\n\
         \tby relay.inside.example with ESMTP id 2; Mon, 2 Nov 2026 10:00:00 +0900\r\n\
         Return-Path: <bounce@bank.example>\r\n\
         From: Bank Example <notice@bank.example>\r\n\
         To: member@receiver.example\r\n\
         Subject: Your statement is ready\r\n\
         Date: Mon, 2 Nov 2026 10:00:00 +0900\r\n\
         Message-ID: <s1@bank.example>\r\n\
         \r\n\
         {body}\r\n"
    )
}

fn result(checks: &[AuthCheck], m: AuthMethod) -> &str {
    checks
        .iter()
        .find(|c| c.method == m)
        .map(|c| c.result.as_str())
        .unwrap_or("missing")
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn envelope_comes_from_the_first_public_hop() {
    let raw = message("192.0.2.25", "hello");
    let env = Envelope::from_message(raw.as_bytes()).unwrap();
    assert_eq!(env.ip.to_string(), "192.0.2.25");
    assert_eq!(env.helo, "mail.bank.example");
    assert_eq!(env.mail_from, "bounce@bank.example");
    // Only internal hops: no envelope.
    let internal = raw.replace("192.0.2.25", "172.16.0.9");
    assert_eq!(Envelope::from_message(internal.as_bytes()), None);
}

#[test]
fn genuine_signed_mail_passes_all_three() {
    let bank = Bank::new();
    let raw = bank.sign(&message(
        "192.0.2.25",
        "Your statement is ready in the app.",
    ));
    let checks = run(bank.verifier().verify(raw.as_bytes(), None));
    assert_eq!(result(&checks, AuthMethod::Spf), "pass", "{checks:?}");
    assert_eq!(result(&checks, AuthMethod::Dkim), "pass", "{checks:?}");
    assert_eq!(result(&checks, AuthMethod::Dmarc), "pass", "{checks:?}");
    let dkim = checks
        .iter()
        .find(|c| c.method == AuthMethod::Dkim)
        .unwrap();
    assert_eq!(dkim.domain, "bank.example");
}

#[test]
fn forged_sender_fails_spf_and_dmarc_and_the_analyzer_says_so() {
    let bank = Bank::new();
    let raw = message(
        "203.0.113.9",
        "Your card is suspended. Verify your password at http://bank-example.top/login",
    );
    let checks = run(bank.verifier().verify(raw.as_bytes(), None));
    assert_eq!(result(&checks, AuthMethod::Spf), "fail", "{checks:?}");
    assert_eq!(result(&checks, AuthMethod::Dkim), "none", "{checks:?}");
    assert_eq!(result(&checks, AuthMethod::Dmarc), "fail", "{checks:?}");
    let dmarc = checks
        .iter()
        .find(|c| c.method == AuthMethod::Dmarc)
        .unwrap();
    assert_eq!(dmarc.domain, "bank.example");
    assert!(dmarc.detail.contains("reject"), "{}", dmarc.detail);

    let opts = Options {
        verified: checks,
        ..Options::default()
    };
    let report = analyze_with(raw.as_bytes(), &BrandRegistry::builtin(), &opts).unwrap();
    let codes: Vec<&str> = report.reasons.iter().map(|f| f.code).collect();
    assert!(codes.contains(&"SPF_FAIL"), "{codes:?}");
    assert!(codes.contains(&"DMARC_FAIL"), "{codes:?}");
    assert!(
        !codes.contains(&"DKIM_FAIL"),
        "no signature is not a failed one: {codes:?}"
    );
    let f = report
        .reasons
        .iter()
        .find(|f| f.code == "DMARC_FAIL")
        .unwrap();
    assert_eq!(f.evidence["domain"], "bank.example");
    assert_eq!(f.evidence["verified_by"], "cardguard");
}

#[test]
fn altered_body_fails_dkim_but_aligned_spf_keeps_dmarc() {
    let bank = Bank::new();
    let raw = bank
        .sign(&message("192.0.2.25", "Pay 100 JPY."))
        .replace("Pay 100 JPY.", "Pay 900000 JPY.");
    let checks = run(bank.verifier().verify(raw.as_bytes(), None));
    assert_eq!(result(&checks, AuthMethod::Dkim), "fail", "{checks:?}");
    assert_eq!(result(&checks, AuthMethod::Spf), "pass", "{checks:?}");
    assert_eq!(result(&checks, AuthMethod::Dmarc), "pass", "{checks:?}");
}

#[test]
fn a_caller_envelope_wins_over_the_headers() {
    let bank = Bank::new();
    let raw = message("192.0.2.25", "hello");
    let env = Envelope {
        ip: "198.51.100.7".parse().unwrap(),
        helo: "mx.elsewhere.example".to_owned(),
        mail_from: "x@bank.example".to_owned(),
    };
    let checks = run(bank.verifier().verify(raw.as_bytes(), Some(&env)));
    assert_eq!(result(&checks, AuthMethod::Spf), "fail", "{checks:?}");
}

#[test]
fn a_domain_without_records_is_none_not_fail() {
    let verifier = SenderVerifier::offline(Zone::parse("").unwrap()).unwrap();
    let raw = message("192.0.2.25", "hello");
    let checks = run(verifier.verify(raw.as_bytes(), None));
    assert_eq!(result(&checks, AuthMethod::Spf), "none", "{checks:?}");
    assert_eq!(result(&checks, AuthMethod::Dmarc), "none", "{checks:?}");
    let opts = Options {
        verified: checks,
        ..Options::default()
    };
    let report = analyze_with(raw.as_bytes(), &BrandRegistry::builtin(), &opts).unwrap();
    assert!(
        report.reasons.iter().all(|f| !f.code.ends_with("_FAIL")),
        "{:?}",
        report.reasons
    );
}
