//! The email channel: SMTP through lettre (plain, STARTTLS or TLS from the first byte;
//! authentication when configured). The notification's idempotency key is the message's
//! `Message-ID`, so that a receiver can drop a message delivered twice.

use cardguard_app::config::{SmtpConfig, SmtpTls};
use cardguard_store::OutboxRow;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// Why a message was not sent: `permanent` when trying again cannot help (the server
/// refused the recipient or the message with a 5xx).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub permanent: bool,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum EmailConfigError {
    #[error("notify.smtp.from: {0}")]
    From(String),
    #[error("notify.smtp.host: {0}")]
    Host(String),
}

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// The right-hand side of every Message-ID.
    domain: String,
}

impl Email {
    pub fn new(cfg: &SmtpConfig) -> Result<Email, EmailConfigError> {
        let from: Mailbox = cfg
            .from
            .parse()
            .map_err(|e: lettre::address::AddressError| EmailConfigError::From(e.to_string()))?;
        let builder = match cfg.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&cfg.host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&cfg.host)
                .map_err(|e| EmailConfigError::Host(e.to_string()))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&cfg.host)
                .map_err(|e| EmailConfigError::Host(e.to_string()))?,
        };
        let mut builder = builder
            .port(cfg.port)
            .timeout(Some(Duration::from_millis(cfg.timeout_ms.max(1))));
        if let (Some(u), Some(p)) = (&cfg.username, &cfg.password) {
            builder = builder.credentials(Credentials::new(u.clone(), p.clone()));
        }
        let domain = from.email.domain().to_owned();
        Ok(Email {
            transport: builder.build(),
            from,
            domain,
        })
    }

    /// The message of an outbox row, as it goes out.
    pub fn message(&self, row: &OutboxRow) -> Result<Message, SendError> {
        let permanent = |message: String| SendError {
            permanent: true,
            message,
        };
        let to: Mailbox = row
            .recipient
            .parse()
            .map_err(|e: lettre::address::AddressError| permanent(format!("recipient: {e}")))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(row.subject.clone())
            .message_id(Some(format!("<{}@{}>", row.key, self.domain)))
            .header(ContentType::TEXT_PLAIN)
            .body(row.body.clone())
            .map_err(|e| permanent(e.to_string()))
    }

    /// Sends one notification; Ok once the SMTP server accepted it.
    pub async fn send(&self, row: &OutboxRow) -> Result<(), SendError> {
        let msg = self.message(row)?;
        self.transport
            .send(msg)
            .await
            .map(|_| ())
            .map_err(|e| SendError {
                permanent: e.is_permanent(),
                message: e.to_string(),
            })
    }
}
