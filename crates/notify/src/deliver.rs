//! Delivery from the outbox: due rows are sent, several at once, each marked sent when the
//! channel accepted it; a failure is tried again after an exponentially growing wait with
//! jitter, and set aside as dead after `max_tries` or at once when the channel refused it
//! for good. Nothing here runs on the authorization path: a provider that is down only
//! makes the outbox longer.

use crate::email::{Email, SendError};
use crate::http::{Push, Sms};
use crate::metrics::NotifyMetrics;
use cardguard_store::{OutboxRow, SqliteOutbox};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// When to try again after `tries` failed tries: `initial · 2^(tries-1)`, at most `max`,
/// then a random half of it taken off ("equal jitter"), so that many failures at once do
/// not come back at once.
pub fn backoff_ms(tries: u32, initial_ms: u64, max_ms: u64, unit_random: f64) -> u64 {
    let exp = initial_ms.saturating_mul(1u64 << tries.saturating_sub(1).min(32));
    let full = exp.min(max_ms).max(1);
    let half = full / 2;
    half + (half as f64 * unit_random.clamp(0.0, 1.0)) as u64
}

fn unit_random() -> f64 {
    let mut b = [0u8; 8];
    let _ = getrandom::fill(&mut b);
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The channels the server can send through.
#[derive(Default)]
pub struct Channels {
    pub email: Option<Email>,
    pub sms: Option<Sms>,
    pub push: Option<Push>,
}

impl Channels {
    /// The names of the configured channels.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("email", self.email.is_some()),
            ("sms", self.sms.is_some()),
            ("push", self.push.is_some()),
        ]
        .into_iter()
        .filter(|c| c.1)
        .map(|c| c.0)
        .collect()
    }

    /// Sends one row through its channel.
    pub async fn send(&self, row: &OutboxRow) -> Result<(), SendError> {
        let missing = || SendError {
            permanent: true,
            message: format!("no {} channel is configured", row.channel),
        };
        match row.channel.as_str() {
            "email" => self.email.as_ref().ok_or_else(missing)?.send(row).await,
            "sms" => self.sms.as_ref().ok_or_else(missing)?.send(row).await,
            "push" => self.push.as_ref().ok_or_else(missing)?.send(row).await,
            _ => Err(missing()),
        }
    }
}

/// The settings of the loop.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub max_tries: u32,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    pub concurrency: usize,
}

/// Runs until `stop` turns true; sends what is in flight before it returns.
pub async fn run(
    outbox: Arc<SqliteOutbox>,
    channels: Arc<Channels>,
    settings: Settings,
    wake: Arc<Notify>,
    metrics: Arc<NotifyMetrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut in_flight: HashSet<String> = HashSet::new();
    let mut sends = tokio::task::JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let free = settings.concurrency.max(1).saturating_sub(in_flight.len());
        if free > 0 {
            let o = Arc::clone(&outbox);
            let limit = free + in_flight.len();
            let due = tokio::task::spawn_blocking(move || o.due(now_ms(), limit)).await;
            match due {
                Ok(Ok(rows)) => {
                    let fresh: Vec<OutboxRow> = rows
                        .into_iter()
                        .filter(|r| !in_flight.contains(&r.key))
                        .take(free)
                        .collect();
                    for row in fresh {
                        in_flight.insert(row.key.clone());
                        let (channels, outbox, metrics) = (
                            Arc::clone(&channels),
                            Arc::clone(&outbox),
                            Arc::clone(&metrics),
                        );
                        sends.spawn(async move {
                            let r = channels.send(&row).await;
                            // Recorded at once: a message the channel took is marked sent
                            // before anything else, so that a crash resends as few as can be.
                            let key = row.key.clone();
                            finish(&outbox, &settings, &metrics, row, r).await;
                            key
                        });
                    }
                }
                Ok(Err(e)) => tracing::error!(error = %e, "notification outbox not readable"),
                Err(e) => tracing::error!(error = %e, "notification outbox read failed"),
            }
        }
        let o = Arc::clone(&outbox);
        let next = tokio::task::spawn_blocking(move || o.next_due())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let wait = match next {
            Some(at) if in_flight.len() < settings.concurrency => {
                Duration::from_millis((at - now_ms()).clamp(0, 1000) as u64)
            }
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
            Some(done) = sends.join_next(), if !sends.is_empty() => {
                if let Ok(key) = done {
                    in_flight.remove(&key);
                }
            }
        }
        // Everything else that finished meanwhile.
        while let Some(Ok(key)) = sends.try_join_next() {
            in_flight.remove(&key);
        }
    }
    while sends.join_next().await.is_some() {}
}

/// Records the outcome of one try.
async fn finish(
    outbox: &Arc<SqliteOutbox>,
    settings: &Settings,
    metrics: &NotifyMetrics,
    row: OutboxRow,
    result: Result<(), SendError>,
) {
    let tries = row.tries + 1;
    let now = now_ms();
    let o = Arc::clone(outbox);
    let key = row.key.clone();
    let stored = match &result {
        Ok(()) => {
            metrics.sent(&row.kind, now - row.created_ms);
            tracing::debug!(key = %row.key, tries, "notification sent");
            tokio::task::spawn_blocking(move || o.mark_sent(&key, tries, now)).await
        }
        Err(e) => {
            let dead = e.permanent || tries >= settings.max_tries;
            metrics.failed(dead);
            let next = now
                + backoff_ms(
                    tries,
                    settings.retry_initial_ms,
                    settings.retry_max_ms,
                    unit_random(),
                ) as i64;
            if dead {
                tracing::warn!(key = %row.key, tries, error = %e, "notification set aside as dead");
            } else {
                tracing::info!(key = %row.key, tries, error = %e, "notification not sent; tried again later");
            }
            let why = e.message.clone();
            tokio::task::spawn_blocking(move || o.mark_failed(&key, tries, next, &why, dead)).await
        }
    };
    match stored {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, key = %row.key, "notification state not saved"),
        Err(e) => tracing::error!(error = %e, key = %row.key, "notification state not saved"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        // Without jitter's share: half the exponential value; with all of it: the whole.
        assert_eq!(backoff_ms(1, 2000, 600_000, 0.0), 1000);
        assert_eq!(backoff_ms(1, 2000, 600_000, 1.0), 2000);
        assert_eq!(backoff_ms(3, 2000, 600_000, 1.0), 8000);
        assert_eq!(backoff_ms(30, 2000, 600_000, 1.0), 600_000);
        assert_eq!(backoff_ms(30, 2000, 600_000, 0.0), 300_000);
        let r = unit_random();
        assert!((0.0..1.0).contains(&r));
    }
}
