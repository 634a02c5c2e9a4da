//! The ISO 8583 front door: an adapter over the transport-free application, as the HTTP one
//! is. [`map`] turns a request message into the application's authorization (or reversal) and
//! its answer into the response message; [`listener`] serves them over TCP (2-byte length prefix, several
//! requests in flight per connection).

pub mod listener;
pub mod map;
