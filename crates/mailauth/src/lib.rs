//! Sender authentication for the phishing analyzer: SPF (RFC 7208), DKIM (RFC 6376) and DMARC
//! (RFC 7489) verified with `mail-auth`, against live DNS or a fixed zone.
//!
//! The analyzer (`cardguard-phish`) does no IO: this crate asks DNS, turns the answers into
//! [`AuthCheck`]s and the caller hands them to the analyzer in its `Options`. A reported message
//! has no SMTP session around it, so SPF reads its envelope from the message's trace headers
//! (see [`Envelope::from_message`]) unless the caller knows better.

pub mod load;
pub mod zone;

pub use cardguard_phish::{AuthCheck, AuthMethod};
pub use zone::Zone;

use mail_auth::dkim::DkimError;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimResult, DmarcResult, Error, MessageAuthenticator, SpfResult,
};
use std::net::IpAddr;

/// What can go wrong setting the verifier up (verification itself reports through results).
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A zone file line that is not a record.
    #[error("zone line {line}: {why}")]
    Zone {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        why: String,
    },
    /// The system resolver configuration could not be read.
    #[error("dns resolver: {0}")]
    Resolver(String),
}

/// The SMTP facts SPF checks: the client's address, its HELO name and the MAIL FROM address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The address that handed the message to the receiving organisation.
    pub ip: IpAddr,
    /// The name it greeted with.
    pub helo: String,
    /// The envelope sender (Return-Path), empty for a bounce.
    pub mail_from: String,
}

/// Addresses that never appear as the Internet-facing client of a receiving server.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
        }
    }
}

impl Envelope {
    /// The envelope as the message's own headers tell it: the newest `Received` header whose
    /// client address is public is the hop that handed the message in (the ones above it are
    /// the receiver's own relays); `Return-Path` is the MAIL FROM. `None` without such a hop.
    pub fn from_message(raw: &[u8]) -> Option<Self> {
        let msg = mail_parser::MessageParser::default().parse_headers(raw)?;
        let hop = msg
            .received_all()
            .find(|r| r.from_ip.is_some_and(|ip| !is_internal(ip)))?;
        let ip = hop.from_ip?;
        let helo = match hop.from.as_ref().or(hop.helo.as_ref()) {
            Some(mail_parser::Host::Name(n)) => n.to_string(),
            Some(mail_parser::Host::IpAddr(a)) => a.to_string(),
            None => ip.to_string(),
        };
        let mail_from = msg
            .return_address()
            .map(|a| a.trim().trim_matches(['<', '>']).to_owned())
            .unwrap_or_default();
        Some(Envelope {
            ip,
            helo,
            mail_from,
        })
    }
}

/// Verifies SPF, DKIM and DMARC for messages.
pub struct SenderVerifier {
    auth: MessageAuthenticator,
    zone: Zone,
    /// This verifier's own name, for SPF's `%{r}` macro.
    host: String,
}

fn dkim_word(r: &DkimResult) -> (&'static str, String) {
    match r {
        DkimResult::Pass => ("pass", String::new()),
        // The body changed after signing: the signature does not verify (RFC 8601 "fail"),
        // whatever mail-auth files it under.
        DkimResult::Neutral(e @ Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            ("fail", e.to_string())
        }
        DkimResult::Neutral(e) => ("neutral", e.to_string()),
        DkimResult::Fail(e) => ("fail", e.to_string()),
        DkimResult::PermError(e) => ("permerror", e.to_string()),
        DkimResult::TempError(e) => ("temperror", e.to_string()),
        DkimResult::None => ("none", String::new()),
    }
}

fn spf_word(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

fn dmarc_word(r: &DmarcResult) -> &'static str {
    match r {
        DmarcResult::Pass => "pass",
        DmarcResult::Fail(_) => "fail",
        DmarcResult::TempError(_) => "temperror",
        DmarcResult::PermError(_) => "permerror",
        DmarcResult::None => "none",
    }
}

impl SenderVerifier {
    /// A verifier asking the system's resolvers (`/etc/resolv.conf`), caching answers for their
    /// TTL.
    pub fn system() -> Result<Self, AuthError> {
        let auth = MessageAuthenticator::new_system_conf()
            .map_err(|e| AuthError::Resolver(e.to_string()))?;
        Ok(SenderVerifier {
            auth,
            zone: Zone::live(),
            host: "cardguard.invalid".to_owned(),
        })
    }

    /// A verifier that answers every DNS question from `zone` and never asks the network.
    pub fn offline(zone: Zone) -> Result<Self, AuthError> {
        // The resolver is built but never reached: an offline zone answers every name.
        let auth = MessageAuthenticator::new_cloudflare()
            .map_err(|e| AuthError::Resolver(e.to_string()))?;
        Ok(SenderVerifier {
            auth,
            zone,
            host: "cardguard.invalid".to_owned(),
        })
    }

    /// Verifies one message. `envelope` overrides what the trace headers say. A message
    /// mail-auth cannot read yields no checks (the analyzer reports it as unreadable).
    pub async fn verify(&self, raw: &[u8], envelope: Option<&Envelope>) -> Vec<AuthCheck> {
        let Some(msg) = AuthenticatedMessage::parse(raw) else {
            return Vec::new();
        };
        let z = &self.zone;
        let mut out = Vec::new();
        let from_domain = msg
            .from()
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();

        let dkim = self.auth.verify_dkim(z.params(&msg)).await;
        if dkim.is_empty() {
            out.push(AuthCheck {
                method: AuthMethod::Dkim,
                result: "none".to_owned(),
                domain: from_domain.clone(),
                detail: "no signature".to_owned(),
            });
        }
        for d in &dkim {
            let (word, detail) = dkim_word(d.result());
            out.push(AuthCheck {
                method: AuthMethod::Dkim,
                result: word.to_owned(),
                domain: d.signature().map(|s| s.d.clone()).unwrap_or_default(),
                detail,
            });
        }

        let found = envelope.cloned().or_else(|| Envelope::from_message(raw));
        let spf = match &found {
            Some(env) => {
                let out = self
                    .auth
                    .verify_spf(z.params(SpfParameters::verify_mail_from(
                        env.ip,
                        &env.helo,
                        &self.host,
                        &env.mail_from,
                    )))
                    .await;
                let mut detail = format!("client {}", env.ip);
                if let Some(e) = out.explanation() {
                    detail.push_str(": ");
                    detail.push_str(e);
                }
                let check = AuthCheck {
                    method: AuthMethod::Spf,
                    result: spf_word(out.result()).to_owned(),
                    domain: out.domain().to_owned(),
                    detail,
                };
                Some((out, check))
            }
            None => None,
        };
        match &spf {
            Some((_, check)) => out.push(check.clone()),
            None => out.push(AuthCheck {
                method: AuthMethod::Spf,
                result: "none".to_owned(),
                domain: String::new(),
                detail: "no public client address in the Received headers".to_owned(),
            }),
        }

        let none_spf = mail_auth::SpfOutput::new(String::new());
        let (spf_out, mail_from_domain) = match (&spf, &found) {
            (Some((o, _)), Some(env)) => (
                o,
                env.mail_from
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_owned())
                    .unwrap_or_else(|| env.helo.clone()),
            ),
            _ => (&none_spf, String::new()),
        };
        let dmarc = self
            .auth
            .verify_dmarc(z.params(DmarcParameters::new(
                &msg,
                &dkim,
                &mail_from_domain,
                spf_out,
            )))
            .await;
        out.push(AuthCheck {
            method: AuthMethod::Dmarc,
            result: dmarc_word(&dmarc.result()).to_owned(),
            domain: if dmarc.domain().is_empty() {
                from_domain
            } else {
                dmarc.domain().to_owned()
            },
            detail: format!(
                "policy {}; spf {}; dkim {}",
                format!("{:?}", dmarc.policy()).to_ascii_lowercase(),
                dmarc_word(dmarc.spf_result()),
                dmarc_word(dmarc.dkim_result()),
            ),
        });
        out
    }
}
