//! Cardholder notifications: a consumer of the event log (its own durable cursor, never a
//! side effect of the request path) keeps the holds waiting for the cardholder's answer and
//! turns each event that calls for a message into rows of a durable outbox, which a
//! delivery task sends; step-up challenges put their one-time codes in the same outbox.
//!
//! - [`compose`]: what an authorization tells its cardholder (fraud alert, usage notice)
//!   and the signed answer links;
//! - [`templates`]: the texts, Japanese and English, built in and replaceable by files;
//! - [`email`]: SMTP through lettre, the idempotency key as the Message-ID;
//! - [`http`]: SMS through a provider's HTTP API, push through a signed webhook;
//! - [`deliver`]: sends what is due, retries with backoff and jitter, dead letters;
//! - [`metrics`]: what `/metrics` shows of them.

pub mod compose;
pub mod deliver;
pub mod email;
pub mod http;
pub mod metrics;
pub mod templates;

use cardguard_app::App;
use cardguard_app::consumer::{
    Buffer, ConsumerHandle, ConsumerOptions, HandlerError, Start, SyncHook,
};
use cardguard_engine::Event;
use cardguard_store::HoldRow;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
    #[error(transparent)]
    Email(#[from] email::EmailConfigError),
    #[error(transparent)]
    Http(#[from] http::HttpConfigError),
    #[error("notification outbox: {0}")]
    Outbox(#[from] cardguard_store::StoreError),
    #[error("notification consumer: {0}")]
    Consumer(String),
}

/// The running notifications: the consumer thread and, when a channel is configured, the
/// delivery task.
pub struct Notifier {
    consumer: Option<ConsumerHandle>,
    stop: watch::Sender<bool>,
    delivery: Option<tokio::task::JoinHandle<()>>,
}

/// The consumer's name (its cursor is `consumers/notify.cursor`).
pub const CONSUMER: &str = "notify";

/// A hold as the holds table keeps it.
fn hold_row(rec: &cardguard_engine::AuthRecord, expiry_ms: i64) -> HoldRow {
    let m = &rec.tx.merchant;
    let received = rec.tx.now().0;
    HoldRow {
        authorization_id: rec.authorization_id.clone(),
        card_token: rec.tx.card_token.to_string(),
        last4: rec.tx.last4.to_string(),
        merchant: cardguard_app::format::merchant(m),
        amount: rec.tx.amount.value,
        currency: rec.tx.amount.currency.code().to_owned(),
        created_ms: received,
        expires_ms: received + expiry_ms,
        answer: None,
        answered_ms: None,
        via: None,
    }
}

/// Sends one-time codes through the outbox: the row committed and synced before the
/// challenge answers (a code the cardholder was told about is never lost), the delivery
/// woken at once.
struct Codes {
    composer: Arc<compose::Composer>,
    outbox: Arc<cardguard_store::SqliteOutbox>,
    wake: Arc<Notify>,
    metrics: Arc<metrics::NotifyMetrics>,
    factors: Vec<cardguard_app::stepup::Factor>,
}

impl cardguard_app::stepup::CodeSender for Codes {
    fn factors(&self) -> Vec<cardguard_app::stepup::Factor> {
        self.factors.clone()
    }

    fn send(&self, m: &cardguard_app::stepup::CodeMessage) -> Result<(), String> {
        let rows = self.composer.code(m).map_err(|e| e.to_string())?;
        let added = self.outbox.insert(&rows).map_err(|e| e.to_string())?;
        self.outbox.sync().map_err(|e| e.to_string())?;
        self.metrics.queued(added);
        self.wake.notify_one();
        Ok(())
    }
}

impl Notifier {
    /// Starts the consumer of `app`'s log that keeps the holds and, when a
    /// channel is configured (`[notify.smtp]`), fills the outbox, and the delivery of the
    /// outbox. A consumer that has no cursor yet starts at the end of the log: turning
    /// notifications on does not send alerts for the whole history.
    pub fn start(app: &Arc<App>) -> Result<Notifier, NotifyError> {
        let cfg = &app.config.notify;
        let channels = deliver::Channels {
            email: cfg.smtp.as_ref().map(email::Email::new).transpose()?,
            sms: cfg.sms.as_ref().map(http::Sms::new).transpose()?,
            push: cfg.push.as_ref().map(http::Push::new).transpose()?,
        };
        let names = channels.names();
        if names.is_empty() {
            tracing::info!(
                "no [notify.smtp], [notify.sms] or [notify.push] in the config: holds are kept, nothing is sent"
            );
        }
        let keys = Arc::clone(app);
        let composer = Arc::new(compose::Composer {
            templates: templates::Templates::load(cfg.templates_dir.as_deref())?,
            public_url: app.config.web.public_url.trim_end_matches('/').to_owned(),
            issuer: cfg.issuer_name.clone(),
            hold_expiry_ms: i64::from(cfg.hold_expiry_minutes) * 60_000,
            link: Box::new(move |id, expires| {
                cardguard_app::links::token(keys.keys(), id, expires)
            }),
            channels: names.clone(),
        });
        let outbox = Arc::clone(app.outbox());
        let holds = Arc::clone(app.holds());
        let metrics = Arc::new(metrics::NotifyMetrics::with_outbox(outbox.counts()?));
        let m = Arc::clone(&metrics);
        app.add_metrics(Arc::new(move || m.render()));
        let wake = Arc::new(Notify::new());
        let (a, o, w, m) = (
            Arc::clone(app),
            Arc::clone(&outbox),
            Arc::clone(&wake),
            Arc::clone(&metrics),
        );
        let sending = !names.is_empty();
        let (sync_outbox, sync_holds) = (Arc::clone(&outbox), Arc::clone(&holds));
        let expiry_ms = composer.hold_expiry_ms;
        let failed = |e: &dyn std::fmt::Display| HandlerError::from(e.to_string());
        // Holds and notifications of a batch of events, written at its end (each in one
        // transaction; a key already there is left) and the delivery woken.
        type Batch = (Vec<HoldRow>, Vec<cardguard_store::OutboxRow>);
        let buffer: Arc<Buffer<Batch>> = Arc::default();
        let flush: SyncHook = {
            let (buffer, holds) = (Arc::clone(&buffer), Arc::clone(&holds));
            Arc::new(move || {
                buffer.flush(|(new_holds, rows)| {
                    if !new_holds.is_empty() {
                        holds.insert_all(new_holds).map_err(|e| failed(&e))?;
                    }
                    if !rows.is_empty() {
                        let added = o.insert(rows).map_err(|e| failed(&e))?;
                        m.queued(added);
                        w.notify_one();
                    }
                    Ok(())
                })
            })
        };
        let queue = {
            let buffer = Arc::clone(&buffer);
            move |rows: Vec<cardguard_store::OutboxRow>| buffer.with(|b| b.1.extend(rows))
        };
        // One-time codes of step-up challenges go through the same outbox, at once.
        if sending {
            use cardguard_app::stepup::Factor;
            let mut factors = Vec::new();
            if names.contains(&"sms") {
                factors.push(Factor::Sms);
            }
            if names.contains(&"email") {
                factors.push(Factor::Email);
            }
            app.stepup().set_sender(Arc::new(Codes {
                composer: Arc::clone(&composer),
                outbox: Arc::clone(&outbox),
                wake: Arc::clone(&wake),
                metrics: Arc::clone(&metrics),
                factors,
            }));
        }
        let consumer = app
            .spawn_consumer(
                CONSUMER,
                ConsumerOptions {
                    start: Start::End,
                    // The rows written for the events before a position are on disk before
                    // the position is saved.
                    flush: Some(Arc::clone(&flush)),
                    linger: cardguard_app::consumer::LINGER,
                    ack_interval: cardguard_app::consumer::ACK_INTERVAL,
                    priority: cardguard_app::consumer::Priority::Low,
                    before_save: Some(Arc::new(move || {
                        sync_outbox
                            .sync()
                            .map_err(|e| HandlerError::from(e.to_string()))?;
                        sync_holds
                            .sync()
                            .map_err(|e| HandlerError::from(e.to_string()))
                    })),
                    ..ConsumerOptions::default()
                },
                move |d| {
                    // The card to tell, looked up only when notices are sent.
                    let card = |t: &cardguard_core::CardToken| sending.then(|| a.card(t)).flatten();
                    match d.event {
                        Event::Auth(rec) => {
                            if rec.outcome.decision == cardguard_core::Decision::Hold {
                                buffer.with(|b| b.0.push(hold_row(rec, expiry_ms)));
                            }
                            let Some(card) = card(&rec.tx.card_token) else {
                                return Ok(());
                            };
                            queue(
                                composer
                                    .compose(rec, &card, a.fx())
                                    .map_err(|e| failed(&e))?,
                            );
                        }
                        Event::Answer(ans) => {
                            // The hold answered is written first.
                            flush()?;
                            holds
                                .answer(&ans.authorization_id, ans.yes, ans.received.0, &ans.via)
                                .map_err(|e| failed(&e))?;
                            // "Not me" blocked the card: the cardholder is told so.
                            if let Some(card) = card(&ans.original.card_token) {
                                queue(composer.blocked(ans, &card).map_err(|e| failed(&e))?);
                            }
                        }
                        Event::CardStatus(rec) => {
                            if let Some(card) = card(&rec.card_token) {
                                queue(composer.stopped(rec, &card).map_err(|e| failed(&e))?);
                            }
                        }
                        Event::Coverage(rec) => {
                            if let Some(card) = card(&rec.card_token) {
                                queue(composer.coverage(rec, &card).map_err(|e| failed(&e))?);
                            }
                        }
                        Event::Authentication(rec) => {
                            if let Some(card) = card(&rec.card_token) {
                                queue(
                                    composer
                                        .authentication_failed(rec, &card)
                                        .map_err(|e| failed(&e))?,
                                );
                            }
                        }
                        _ => {}
                    }
                    Ok(())
                },
            )
            .map_err(|e| NotifyError::Consumer(e.to_string()))?;
        let (stop, stop_rx) = watch::channel(false);
        let delivery = sending.then(|| {
            tokio::spawn(deliver::run(
                outbox,
                Arc::new(channels),
                deliver::Settings {
                    max_tries: cfg.max_tries.max(1),
                    retry_initial_ms: cfg.retry_initial_ms,
                    retry_max_ms: cfg.retry_max_ms,
                    concurrency: cfg.concurrency.max(1),
                },
                wake,
                metrics,
                stop_rx,
            ))
        });
        Ok(Notifier {
            consumer: Some(consumer),
            stop,
            delivery,
        })
    }

    /// Stops the consumer (its cursor saved) and the delivery (what is in flight finishes).
    pub async fn stop(mut self) {
        if let Some(c) = self.consumer.take() {
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        }
        let _ = self.stop.send(true);
        if let Some(d) = self.delivery.take() {
            let _ = d.await;
        }
    }
}
