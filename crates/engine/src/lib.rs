//! The decision engine: per-card, per-terminal and per-device feature state, the one feature
//! function, impossible travel, scoring and `decide()`. Synchronous, no IO, no clock reads.
//!
//! The flow for one authorization (see `docs/ARCHITECTURE.md`):
//! 1. the transport verifies the card data with the keys it holds and fills [`CardChecks`];
//! 2. [`Engine::decide`] reads the state, computes [`Features`], scores them and returns an
//!    [`Outcome`] (decision, response code, risk score, reasons) without changing anything;
//! 3. the caller turns request and outcome into an [`AuthRecord`], appends it to the event
//!    log and calls [`Engine::apply_auth`]. A replay of the log calls only `apply_auth`, so
//!    live and replayed state are the same by construction.

mod card;
mod config;
pub mod cow;
mod decide;
mod device;
pub mod drift;
mod features;
mod hash;
pub mod lists;
pub mod model_file;
pub mod policy;
mod record;
mod score;
pub mod segment;
mod state;
pub mod synth;
mod terminal;
mod tree;

pub use card::{CardState, Release, TxRecord};
pub use config::{EngineConfig, FxRates};
pub use decide::{CardChecks, CardStatus, CscCheck, Outcome, PinCheck, ShadowOutcome};
pub use features::{
    FEATURE_NAMES, FeatureParams, Features, N_FEATURES, TxContext, idx, terminal_key,
};
pub use hash::{stable_hash, stable_hash32};
pub use lists::{ListError, ListKind, ListSet};
pub use model_file::{Model, ModelError, StumpLeaf};
pub use policy::{DEFAULT_RULES, ListHit, Policy};
pub use record::{
    AnswerRecord, AuthRecord, AuthenticationRecord, CardStatusRecord, CoverageRecord, Event,
    EventEncoding, EventError, LabelRecord, ReversalRecord, TxFacts, encode as encode_event,
};
pub use score::{Contribution, Score, Scorecard, Scorer};
pub use state::{
    AUTH_ID_PREFIX, Answer, AuthEntry, Draft, Engine, EngineError, EngineState, EngineStats, Label,
    Pending, Reasons, STATE_FORMAT, Shadow, authorization_number, request_key, scoped_request_key,
};
pub use terminal::{MAX_RISK_DELAY_DAYS, TerminalStats};
pub use tree::{TreeError, TreeModel, TreeNode};
