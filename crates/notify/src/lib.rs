//! Cardholder notifications: a consumer of the event log (its own durable cursor, never a
//! side effect of the request path) turns each authorization that calls for it into rows of
//! a durable outbox, and a delivery task sends them.
//!
//! - [`compose`]: what an authorization tells its cardholder (fraud alert, usage notice)
//!   and the signed answer links;
//! - [`templates`]: the texts, Japanese and English, built in and replaceable by files;
//! - [`email`]: SMTP through lettre, the idempotency key as the Message-ID;
//! - [`deliver`]: sends what is due, retries with backoff and jitter, dead letters;
//! - [`metrics`]: what `/metrics` shows of them.

pub mod compose;
pub mod deliver;
pub mod email;
pub mod metrics;
pub mod templates;

use cardguard_app::App;
use cardguard_app::consumer::{ConsumerHandle, ConsumerOptions, HandlerError, Start};
use cardguard_engine::Event;
use cardguard_store::SqliteOutbox;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Template(#[from] templates::TemplateError),
    #[error(transparent)]
    Email(#[from] email::EmailConfigError),
    #[error("notification outbox: {0}")]
    Outbox(#[from] cardguard_store::StoreError),
    #[error("notification consumer: {0}")]
    Consumer(String),
}

/// The running notifications: the consumer thread and the delivery task.
pub struct Notifier {
    consumer: Option<ConsumerHandle>,
    stop: watch::Sender<bool>,
    delivery: tokio::task::JoinHandle<()>,
    pub outbox: Arc<SqliteOutbox>,
}

/// The consumer's name (its cursor is `consumers/notify.cursor`).
pub const CONSUMER: &str = "notify";

impl Notifier {
    /// Starts notifications for `app`, if a channel is configured (`[notify.smtp]`);
    /// `None` otherwise. A consumer that has no cursor yet starts at the end of the log:
    /// turning notifications on does not send alerts for the whole history.
    pub fn start(app: &Arc<App>) -> Result<Option<Notifier>, NotifyError> {
        let cfg = &app.config.notify;
        let Some(smtp) = &cfg.smtp else {
            tracing::info!("notifications off: no [notify.smtp] in the config");
            return Ok(None);
        };
        let email = Arc::new(email::Email::new(smtp)?);
        let keys = Arc::clone(app);
        let composer = compose::Composer {
            templates: templates::Templates::load(cfg.templates_dir.as_deref())?,
            public_url: app.config.web.public_url.trim_end_matches('/').to_owned(),
            issuer: cfg.issuer_name.clone(),
            hold_expiry_ms: i64::from(cfg.hold_expiry_minutes) * 60_000,
            link: Box::new(move |id, expires| {
                cardguard_app::links::token(keys.keys(), id, expires)
            }),
        };
        let outbox = Arc::new(SqliteOutbox::open(&app.data_dir().join("notify.db"))?);
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
        let consumer = app
            .spawn_consumer(
                CONSUMER,
                ConsumerOptions {
                    start: Start::End,
                    ..ConsumerOptions::default()
                },
                move |d| {
                    let Event::Auth(rec) = d.event else {
                        return Ok(());
                    };
                    let Some(card) = a.card(&rec.tx.card_token) else {
                        return Ok(());
                    };
                    let rows = composer
                        .compose(rec, &card, a.fx())
                        .map_err(|e| HandlerError::from(e.to_string()))?;
                    if !rows.is_empty() {
                        let added = o
                            .insert(&rows)
                            .map_err(|e| HandlerError::from(e.to_string()))?;
                        m.queued(added);
                        w.notify_one();
                    }
                    Ok(())
                },
            )
            .map_err(|e| NotifyError::Consumer(e.to_string()))?;
        let (stop, stop_rx) = watch::channel(false);
        let delivery = tokio::spawn(deliver::run(
            Arc::clone(&outbox),
            email,
            deliver::Settings {
                max_tries: cfg.max_tries.max(1),
                retry_initial_ms: cfg.retry_initial_ms,
                retry_max_ms: cfg.retry_max_ms,
                concurrency: cfg.concurrency.max(1),
            },
            wake,
            metrics,
            stop_rx,
        ));
        Ok(Some(Notifier {
            consumer: Some(consumer),
            stop,
            delivery,
            outbox,
        }))
    }

    /// Stops the consumer (its cursor saved) and the delivery (what is in flight finishes).
    pub async fn stop(mut self) {
        if let Some(c) = self.consumer.take() {
            let _ = tokio::task::spawn_blocking(move || c.stop()).await;
        }
        let _ = self.stop.send(true);
        let _ = self.delivery.await;
    }
}
