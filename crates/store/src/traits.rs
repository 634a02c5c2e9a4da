//! The narrow interfaces the application stores through, so that another backend
//! (PostgreSQL for cards, NATS JetStream for events) can be added without touching the
//! application: an event log (append in order, read by offset and in order up to what is
//! durable, wait for durability), a card repository, and consumer cursors.
//!
//! Offsets are opaque positions: a frame's offset, and [`Frame::end`] for the next one.

use crate::{CardRow, Frame, StoreError};
use std::time::Duration;

/// Called once an appended frame is durable (or with the error that stopped it).
pub type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// The write side of an event log. There is one writer: whoever holds it decides the order.
pub trait EventWriter: Send {
    /// Appends a frame and returns its offset; `done` is called once it is durable.
    fn append(&mut self, kind: u8, payload: &[u8], done: Completion) -> Result<u64, StoreError>;
    /// Where the next frame will start.
    fn end_offset(&self) -> u64;
    /// Why the writer stopped taking appends, if it did.
    fn failure(&self) -> Option<crate::log::WriterFailure>;
    /// Takes appends again after a failure whose cause is gone, if it can.
    fn recover(&mut self) -> Result<(), StoreError>;
}

/// The read side of an event log, shared by every reader.
pub trait EventReader: Send + Sync {
    /// The frame at `offset` (idempotent answers read their event back).
    fn read_at(&self, offset: u64) -> Result<Frame, StoreError>;
    /// Up to `max` durable frames from `offset` on, in log order.
    fn read_from(&self, offset: u64, max: usize) -> Result<Vec<Frame>, StoreError>;
    /// The offset below which every frame is durable.
    fn durable(&self) -> Result<u64, StoreError>;
    /// Waits up to `timeout` for the durable end to pass `offset`; returns the durable end.
    fn wait_beyond(&self, offset: u64, timeout: Duration) -> Result<u64, StoreError>;
    /// Blocks until everything before `offset` is durable, or the log failed.
    fn wait_durable(&self, offset: u64) -> Result<(), StoreError>;
}

/// Where enrolled cards are kept (the PAN arrives encrypted).
pub trait CardRepository: Send + Sync {
    /// Inserts a card or replaces an enrolled one; whether it is new.
    fn upsert(&self, row: &CardRow) -> Result<bool, StoreError>;
    /// Several cards in one transaction: all are written or none; whether each is new.
    fn upsert_many(&self, rows: &[CardRow]) -> Result<Vec<bool>, StoreError>;
    /// Every card, for the in-memory registry at start.
    fn load_all(&self) -> Result<Vec<CardRow>, StoreError>;
    /// One card by its token.
    fn get(&self, token: &str) -> Result<Option<CardRow>, StoreError>;
    fn count(&self) -> Result<u64, StoreError>;
}

/// The durable positions of the log's consumers: the offset each one will read next.
pub trait CursorStore: Send + Sync {
    fn load(&self, consumer: &str) -> Result<Option<u64>, StoreError>;
    /// Saves a position durably before returning.
    fn save(&self, consumer: &str, offset: u64) -> Result<(), StoreError>;
}

impl EventWriter for crate::EventLog {
    fn append(&mut self, kind: u8, payload: &[u8], done: Completion) -> Result<u64, StoreError> {
        self.appender().append(kind, payload, done)
    }
    fn end_offset(&self) -> u64 {
        crate::EventLog::end_offset(self)
    }
    fn failure(&self) -> Option<crate::log::WriterFailure> {
        crate::EventLog::failure(self)
    }
    fn recover(&mut self) -> Result<(), StoreError> {
        crate::EventLog::recover(self)
    }
}

impl EventReader for crate::LogReader {
    fn read_at(&self, offset: u64) -> Result<Frame, StoreError> {
        crate::LogReader::read_at(self, offset)
    }
    fn read_from(&self, offset: u64, max: usize) -> Result<Vec<Frame>, StoreError> {
        crate::LogReader::read_from(self, offset, max)
    }
    fn durable(&self) -> Result<u64, StoreError> {
        crate::LogReader::durable(self)
    }
    fn wait_beyond(&self, offset: u64, timeout: Duration) -> Result<u64, StoreError> {
        crate::LogReader::wait_beyond(self, offset, timeout)
    }
    fn wait_durable(&self, offset: u64) -> Result<(), StoreError> {
        crate::LogReader::wait_durable(self, offset)
    }
}
