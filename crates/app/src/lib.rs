//! The cardguard application, transport-free. Every front door (HTTP, ISO 8583, web pages,
//! a cluster node) is an adapter over [`App`]; every follow-up (alerts, cases, label
//! feedback) is a [`consumer`] of the event log.
//!
//! - [`config`]: the one TOML file plus `CARDGUARD__SECTION__KEY` overrides;
//! - [`keys`]: the key ring (token HMAC, PAN encryption, stored codes, CVKs, PVKs, PIN keys);
//! - [`access`]: API keys with scopes, checked for whatever transport presents them;
//! - [`registry`]: the in-memory card registry and the card-data checks;
//! - [`enroll`]: the enrollment record and its rules; [`validate`]: shared field checks;
//! - [`app`]: `App` (open/replay, enroll, authorize, reverse, label, reload, snapshots,
//!   stats);
//! - [`consumer`]: tailing readers of the log with durable cursors;
//! - [`cases`]: cases (opened from holds, answers, labels, analysts), their lifecycle and
//!   timers, the card transactions they are about;
//! - [`password`]: the online account's password policy (NIST SP 800-63B);
//! - [`links`]: signed, expiring links to the cardholder's pages; [`format`]: amounts and
//!   times as the cardholder reads them;
//! - [`rules`]: the rule book: the ruleset in force, its versions, the lists;
//! - [`drift`]: the live score's and features' drift from the model's training data;
//! - [`stepup`]: risk-based step-up authentication (3-D Secure's statuses), one-time
//!   codes, trusted devices, authenticator apps, authentication values;
//! - [`snapshots`]: the snapshot writer thread;
//! - [`metrics`]: Prometheus counters and the latency histogram.

pub mod access;
pub mod app;
pub mod cases;
pub mod claims;
pub mod config;
pub mod consumer;
pub mod coverage;
pub mod drift;
pub mod enroll;
pub mod error;
pub mod format;
pub mod keys;
pub mod links;
pub mod metrics;
pub mod password;
pub mod registry;
pub mod reports;
pub mod rules;
pub mod snapshots;
pub mod stepup;
pub mod validate;

pub use access::{AccessError, ApiKeys, ClientId, Scope};
pub use app::{
    AnswerView, Answered, App, AuthorizationView, Enrolled, Health, MetricSource, OpenSummary,
    Original, Replayed, ReversalRequest, Reversed, ShadowTally, Stats,
};
pub use config::Config;
pub use enroll::{CardRecord, NewCard};
pub use error::{AppError, OpenError};
pub use validate::FieldError;
