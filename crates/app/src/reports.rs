//! A cardholder's phishing report: the mail they were sent (forwarded through the issuer's
//! app) and what they typed into the page it led to. The phishing analyzer reads the mail;
//! when it flags the mail and the cardholder entered card data, a `phishing_report` case
//! opens for an analyst (with the analyzer's verdict and reasons, and what leaked), and the
//! answer advises what follows (a reissue when the number leaked with what completes it).

use crate::{App, AppError};
use cardguard_core::CardToken;
use cardguard_phish::{Report, Verdict};
use cardguard_store::CaseRow;

/// What a cardholder may have entered on the page.
pub const ENTERED: [&str; 6] = ["card_number", "expiry", "csc", "pin", "password", "otp"];

/// A phishing report taken.
#[derive(Debug, Clone)]
pub struct PhishingReport {
    pub report: Report,
    /// The case opened for it (a flagged mail and card data entered).
    pub case: Option<CaseRow>,
    pub advice: Vec<String>,
}

impl App {
    /// The phishing analyzer's report on a raw RFC 5322 message, its sender verified when
    /// the config says so (the analysis on a blocking thread): `Err` with why a message is
    /// not one.
    pub async fn scan_mail(&self, raw: Vec<u8>) -> Result<Result<Report, String>, AppError> {
        let opts = self.mail_options(&raw).await;
        let brands = self.brands();
        tokio::task::spawn_blocking(move || {
            cardguard_phish::analyze_with(&raw, &brands, &opts).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))
    }

    /// Takes a cardholder's report of a mail (`raw`, RFC 5322) and what they `entered` on
    /// the page it led to; see the module's documentation. An unreadable mail or an unknown
    /// entry is refused and nothing is opened.
    pub async fn phishing_report(
        &self,
        card: &CardToken,
        raw: Vec<u8>,
        entered: &[String],
        actor: &str,
    ) -> Result<PhishingReport, AppError> {
        for e in entered {
            if !ENTERED.contains(&e.as_str()) {
                return Err(AppError::invalid(
                    "entered",
                    format!("{e:?} is not one of {}", ENTERED.join(", ")),
                ));
            }
        }
        if self.card(card).is_none() {
            return Err(AppError::NotFound(format!("no card {card}")));
        }
        let report = self
            .scan_mail(raw)
            .await?
            .map_err(|e| AppError::invalid("body", e))?;
        let has = |what: &str| entered.iter().any(|e| e == what);
        let mut advice = Vec::new();
        let flagged = report.verdict != Verdict::Clean;
        if !flagged {
            advice.push("the analyzer finds the mail genuine: no case is opened".to_owned());
            return Ok(PhishingReport {
                report,
                case: None,
                advice,
            });
        }
        if entered.is_empty() {
            advice.push(
                "the mail is flagged, and nothing was entered: delete it; no case is opened"
                    .to_owned(),
            );
            return Ok(PhishingReport {
                report,
                case: None,
                advice,
            });
        }
        if has("card_number") && (has("expiry") || has("csc")) {
            advice.push(
                "reissue the card: its number leaked with what completes it for online use \
                 (a card-not-present block keeps the chip usable in shops until the new card)"
                    .to_owned(),
            );
        } else if has("card_number") {
            advice.push("watch the card: its number leaked".to_owned());
        }
        if has("pin") {
            advice.push("change the PIN".to_owned());
        }
        if has("password") || has("otp") {
            advice.push("reset the online account's password and its devices".to_owned());
        }
        let verdict = match report.verdict {
            Verdict::Phishing => "phishing",
            _ => "suspicious",
        };
        let reasons: Vec<&str> = report.reasons.iter().take(5).map(|f| f.code).collect();
        let note = format!(
            "the cardholder entered {} on a page of a mail the analyzer flags ({verdict} {}{}: {})",
            entered.join(", "),
            report.score,
            report
                .brand
                .as_deref()
                .map(|b| format!(", impersonating {b}"))
                .unwrap_or_default(),
            reasons.join(", ")
        );
        let (case, _) = self.open_case(card, None, "phishing_report", &note, actor)?;
        Ok(PhishingReport {
            report,
            case: Some(case),
            advice,
        })
    }
}
