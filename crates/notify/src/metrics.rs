//! Metrics of the notifications: sent by kind, failed tries, dead letters, the time from
//! the event to the channel's acceptance, and the outbox by state.

use cardguard_store::OutboxCounts;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

pub const SENT: &str = "cardguard_notifications_sent_total";
pub const FAILED: &str = "cardguard_notification_failures_total";
pub const OUTBOX: &str = "cardguard_notification_outbox";
pub const LATENCY: &str = "cardguard_notification_seconds";

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 9] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0];

#[derive(Default)]
pub struct NotifyMetrics {
    sent: [AtomicU64; crate::templates::KINDS.len()],
    retried: AtomicU64,
    dead: AtomicU64,
    latency: Latency,
    /// The outbox by state: counted once at start, then kept as rows move.
    pending: AtomicU64,
    sent_rows: AtomicU64,
    dead_rows: AtomicU64,
}

/// The time from an event to its notice's acceptance, over [`BUCKETS`].
struct Latency(cardguard_app::metrics::Histogram);

impl Default for Latency {
    fn default() -> Self {
        Latency(cardguard_app::metrics::Histogram::new(&BUCKETS))
    }
}

impl NotifyMetrics {
    /// Metrics over an outbox that holds `c`.
    pub fn with_outbox(c: OutboxCounts) -> NotifyMetrics {
        let m = NotifyMetrics::default();
        m.pending.store(c.pending, Ordering::Relaxed);
        m.sent_rows.store(c.sent, Ordering::Relaxed);
        m.dead_rows.store(c.dead, Ordering::Relaxed);
        m
    }

    /// `n` new rows in the outbox.
    pub fn queued(&self, n: usize) {
        self.pending.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// A notification of `kind` accepted by its channel `took_ms` after its event.
    pub fn sent(&self, kind: &str, took_ms: i64) {
        if let Some(i) = crate::templates::KINDS.iter().position(|k| *k == kind) {
            self.sent[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency
            .0
            .observe(std::time::Duration::from_millis(took_ms.max(0) as u64));
        self.pending.fetch_sub(1, Ordering::Relaxed);
        self.sent_rows.fetch_add(1, Ordering::Relaxed);
    }

    /// A try failed; `dead` when the notification will not be tried again.
    pub fn failed(&self, dead: bool) {
        if dead {
            self.dead.fetch_add(1, Ordering::Relaxed);
            self.pending.fetch_sub(1, Ordering::Relaxed);
            self.dead_rows.fetch_add(1, Ordering::Relaxed);
        } else {
            self.retried.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut o = String::new();
        let _ = writeln!(
            o,
            "# HELP {SENT} Notifications accepted by their channel.\n# TYPE {SENT} counter"
        );
        for (k, c) in crate::templates::KINDS.iter().zip(&self.sent) {
            let _ = writeln!(o, "{SENT}{{kind=\"{k}\"}} {}", g(c));
        }
        let _ = writeln!(
            o,
            "# HELP {FAILED} Tries of a notification that failed.\n# TYPE {FAILED} counter\n{FAILED}{{outcome=\"retry\"}} {}\n{FAILED}{{outcome=\"dead\"}} {}",
            g(&self.retried),
            g(&self.dead)
        );
        self.latency.0.render(
            &mut o,
            LATENCY,
            "Time from the event to the channel's acceptance.",
        );
        let _ = writeln!(
            o,
            "# HELP {OUTBOX} Notifications in the outbox by state.\n# TYPE {OUTBOX} gauge\n{OUTBOX}{{state=\"pending\"}} {}\n{OUTBOX}{{state=\"sent\"}} {}\n{OUTBOX}{{state=\"dead\"}} {}",
            g(&self.pending),
            g(&self.sent_rows),
            g(&self.dead_rows)
        );
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_sent_render_as_counters_a_histogram_and_the_outbox() {
        let m = NotifyMetrics::with_outbox(OutboxCounts {
            pending: 3,
            sent: 10,
            dead: 1,
        });
        m.sent("usage-notice", 120);
        m.sent("fraud-alert", 3_000);
        m.failed(false);
        let t = m.render();
        for line in [
            "cardguard_notifications_sent_total{kind=\"usage-notice\"} 1",
            "cardguard_notifications_sent_total{kind=\"fraud-alert\"} 1",
            "cardguard_notification_failures_total{outcome=\"retry\"} 1",
            "# TYPE cardguard_notification_seconds histogram",
            "cardguard_notification_seconds_bucket{le=\"0.1\"} 0",
            "cardguard_notification_seconds_bucket{le=\"0.25\"} 1",
            "cardguard_notification_seconds_bucket{le=\"5\"} 2",
            "cardguard_notification_seconds_bucket{le=\"+Inf\"} 2",
            "cardguard_notification_seconds_sum 3.12",
            "cardguard_notification_seconds_count 2",
            "cardguard_notification_outbox{state=\"pending\"} 1",
            "cardguard_notification_outbox{state=\"sent\"} 12",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} missing from\n{t}");
        }
    }
}
