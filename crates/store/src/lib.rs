//! Persistence for cardguard's embedded default, in one data directory with no setup:
//!
//! - [`log`]: the append-only event log, checksummed frames, group commit on a writer
//!   thread, torn-tail detection at open;
//! - [`snapshot`]: atomic snapshots of the engine state with the log offset they cover;
//! - [`cards`]: the card registry in SQLite (the PAN arrives here already encrypted).
//!
//! The crate knows bytes and rows, not the engine: the server decides what goes in them.

pub mod cards;
pub mod log;
pub mod snapshot;

pub use cards::{CardRegistry, CardRow};
pub use log::{Appender, Durability, DurableWatch, EventLog, Frame, LogReader, OpenReport};
pub use snapshot::{read_snapshot, write_snapshot};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("io error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("event log is corrupt at offset {offset}: {why}")]
    Corrupt { offset: u64, why: &'static str },
    #[error("event at offset {offset} does not apply: {why}")]
    Replay { offset: u64, why: String },
    #[error("snapshot {path} is invalid: {why}")]
    BadSnapshot { path: String, why: &'static str },
    #[error("sqlite error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("the event log writer has failed: {0}")]
    WriterFailed(String),
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}
