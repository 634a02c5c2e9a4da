//! Prometheus metrics: counters of decisions, response codes, labels and refused requests,
//! a histogram of the time from request to answer and one of the waits for the engine lock.
//! Names are typed constants.

use cardguard_core::{Decision, ResponseCode};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const AUTHORIZATIONS: &str = "cardguard_authorizations_total";
pub const RESPONSE_CODES: &str = "cardguard_response_codes_total";
pub const LABELS: &str = "cardguard_labels_total";
pub const REVERSALS: &str = "cardguard_reversals_total";
pub const REFUSED: &str = "cardguard_refused_requests_total";
pub const REFUSED_CONNECTIONS: &str = "cardguard_refused_connections_total";
pub const LATENCY: &str = "cardguard_authorization_seconds";
pub const STATE: &str = "cardguard_state";
pub const SHADOW: &str = "cardguard_shadow_decisions_total";
pub const LOCK_WAIT: &str = "cardguard_engine_lock_wait_seconds";

const DECISIONS: [Decision; 4] = [
    Decision::Approve,
    Decision::Decline,
    Decision::Hold,
    Decision::Challenge,
];
/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Default)]
pub struct Metrics {
    decisions: [AtomicU64; 4],
    codes: [AtomicU64; ResponseCode::ALL.len()],
    labels: [AtomicU64; 2],
    reversals: AtomicU64,
    refused_4xx: AtomicU64,
    refused_5xx: AtomicU64,
    refused_connections: AtomicU64,
    latency: Histogram,
    /// Waits for the engine lock that another thread held (an uncontended lock is not
    /// counted): how long requests queue behind each other's decisions.
    lock_waits: Histogram,
    /// Decisions of the shadow candidate, by the active decision and the shadow one.
    shadow: [[AtomicU64; 4]; 4],
}

/// The place of a decision in the counters.
pub fn decision_index(d: Decision) -> usize {
    DECISIONS.iter().position(|x| *x == d).unwrap_or(0)
}

/// The decisions in counter order.
pub const DECISION_ORDER: [Decision; 4] = DECISIONS;

impl Metrics {
    pub fn authorization(&self, decision: Decision, code: ResponseCode, took: Duration) {
        if let Some(i) = DECISIONS.iter().position(|d| *d == decision) {
            self.decisions[i].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(i) = ResponseCode::ALL.iter().position(|c| *c == code) {
            self.codes[i].fetch_add(1, Ordering::Relaxed);
        }
        self.latency.observe(took);
    }

    /// A wait for the engine lock while another thread held it.
    pub fn lock_waited(&self, took: Duration) {
        self.lock_waits.observe(took);
    }

    /// A decision of the shadow candidate beside the active one.
    pub fn shadow(&self, active: Decision, shadow: Decision) {
        self.shadow[decision_index(active)][decision_index(shadow)].fetch_add(1, Ordering::Relaxed);
    }

    /// The shadow counters: by active decision, then shadow decision.
    pub fn shadow_counts(&self) -> [[u64; 4]; 4] {
        self.shadow
            .each_ref()
            .map(|row| row.each_ref().map(|c| c.load(Ordering::Relaxed)))
    }

    pub fn label(&self, fraud: bool) {
        self.labels[usize::from(fraud)].fetch_add(1, Ordering::Relaxed);
    }

    /// An authorization reversed (not counting repeats of a reversal).
    pub fn reversal(&self) {
        self.reversals.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused(&self, status: u16) {
        if status >= 500 {
            self.refused_5xx.fetch_add(1, Ordering::Relaxed);
        } else {
            self.refused_4xx.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A connection refused over `server.max_connections`.
    pub fn connection_refused(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format, with the given gauges of the engine state.
    pub fn render(&self, state: &[(&str, u64)]) -> String {
        let mut o = String::new();
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            o,
            "# HELP {AUTHORIZATIONS} Authorizations decided, by decision.\n# TYPE {AUTHORIZATIONS} counter"
        );
        for (d, c) in DECISIONS.iter().zip(&self.decisions) {
            let _ = writeln!(
                o,
                "{AUTHORIZATIONS}{{decision=\"{}\"}} {}",
                d.as_str(),
                g(c)
            );
        }
        let _ = writeln!(
            o,
            "# HELP {RESPONSE_CODES} Authorizations by ISO 8583 response code.\n# TYPE {RESPONSE_CODES} counter"
        );
        for (r, c) in ResponseCode::ALL.iter().zip(&self.codes) {
            let _ = writeln!(o, "{RESPONSE_CODES}{{code=\"{}\"}} {}", r.as_str(), g(c));
        }
        let _ = writeln!(
            o,
            "# HELP {LABELS} Labels recorded.\n# TYPE {LABELS} counter"
        );
        let _ = writeln!(o, "{LABELS}{{fraud=\"false\"}} {}", g(&self.labels[0]));
        let _ = writeln!(o, "{LABELS}{{fraud=\"true\"}} {}", g(&self.labels[1]));
        let _ = writeln!(
            o,
            "# HELP {REVERSALS} Authorizations reversed.\n# TYPE {REVERSALS} counter\n{REVERSALS} {}",
            g(&self.reversals)
        );
        let _ = writeln!(
            o,
            "# HELP {REFUSED} Requests answered with an error.\n# TYPE {REFUSED} counter"
        );
        let _ = writeln!(o, "{REFUSED}{{class=\"4xx\"}} {}", g(&self.refused_4xx));
        let _ = writeln!(o, "{REFUSED}{{class=\"5xx\"}} {}", g(&self.refused_5xx));
        let _ = writeln!(
            o,
            "# HELP {REFUSED_CONNECTIONS} Connections refused over server.max_connections.\n# TYPE {REFUSED_CONNECTIONS} counter\n{REFUSED_CONNECTIONS} {}",
            g(&self.refused_connections)
        );
        self.latency
            .render(&mut o, LATENCY, "Time from a valid request to its answer.");
        self.lock_waits.render(
            &mut o,
            LOCK_WAIT,
            "Waits for the engine lock while another request or task held it.",
        );
        let _ = writeln!(
            o,
            "# HELP {SHADOW} Decisions of the ruleset in shadow mode, by the active decision and the shadow one.\n# TYPE {SHADOW} counter"
        );
        for (a, row) in DECISIONS.iter().zip(&self.shadow) {
            for (b, c) in DECISIONS.iter().zip(row) {
                let _ = writeln!(
                    o,
                    "{SHADOW}{{active=\"{}\",shadow=\"{}\"}} {}",
                    a.as_str(),
                    b.as_str(),
                    g(c)
                );
            }
        }
        let _ = writeln!(
            o,
            "# HELP {STATE} Sizes of the engine state and the event log.\n# TYPE {STATE} gauge"
        );
        for (k, v) in state {
            let _ = writeln!(o, "{STATE}{{part=\"{k}\"}} {v}");
        }
        o
    }
}

/// A Prometheus histogram of durations over fixed upper bounds (seconds), cumulative when
/// rendered. By default over [`BUCKETS`] (0.1 ms to 1 s: a request's time).
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_ns: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(&BUCKETS)
    }
}

impl Histogram {
    /// A histogram with these upper bounds, in seconds, ascending.
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    /// Counts one duration in every bucket whose bound it does not pass.
    pub fn observe(&self, took: Duration) {
        let s = took.as_secs_f64();
        for (b, c) in self.bounds.iter().zip(self.buckets.iter()) {
            if s <= *b {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Appends the histogram's exposition, `name` with its help line, to `o`.
    pub fn render(&self, o: &mut String, name: &str, help: &str) {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (b, c) in self.bounds.iter().zip(self.buckets.iter()) {
            let _ = writeln!(o, "{name}_bucket{{le=\"{b}\"}} {}", g(c));
        }
        let count = g(&self.count);
        let _ = writeln!(o, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(o, "{name}_sum {}", g(&self.sum_ns) as f64 / 1e9);
        let _ = writeln!(o, "{name}_count {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.authorization(
            Decision::Approve,
            ResponseCode::Approved,
            Duration::from_micros(300),
        );
        m.authorization(
            Decision::Hold,
            ResponseCode::ReferToIssuer,
            Duration::from_millis(3),
        );
        m.label(true);
        m.refused(400);
        m.shadow(Decision::Approve, Decision::Hold);
        m.lock_waited(Duration::from_micros(40));
        m.lock_waited(Duration::from_millis(2));
        let t = m.render(&[("cards", 7)]);
        assert!(t.contains("cardguard_authorizations_total{decision=\"approve\"} 1"));
        assert!(t.contains("cardguard_response_codes_total{code=\"01\"} 1"));
        assert!(t.contains("cardguard_authorization_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(t.contains("cardguard_authorization_seconds_bucket{le=\"0.005\"} 2"));
        assert!(t.contains("cardguard_authorization_seconds_count 2"));
        assert!(t.contains("# TYPE cardguard_engine_lock_wait_seconds histogram"));
        assert!(t.contains("cardguard_engine_lock_wait_seconds_bucket{le=\"0.0001\"} 1"));
        assert!(t.contains("cardguard_engine_lock_wait_seconds_bucket{le=\"0.001\"} 1"));
        assert!(t.contains("cardguard_engine_lock_wait_seconds_bucket{le=\"0.0025\"} 2"));
        assert!(t.contains("cardguard_engine_lock_wait_seconds_sum 0.00204"));
        assert!(t.contains("cardguard_engine_lock_wait_seconds_count 2"));
        assert!(t.contains("cardguard_labels_total{fraud=\"true\"} 1"));
        assert!(t.contains("cardguard_refused_requests_total{class=\"4xx\"} 1"));
        assert!(t.contains("cardguard_state{part=\"cards\"} 7"));
        assert!(
            t.contains("cardguard_shadow_decisions_total{active=\"approve\",shadow=\"hold\"} 1")
        );
    }
}
