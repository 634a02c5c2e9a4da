//! Domain types of cardguard, shared by every other crate.
//!
//! The types carry their checks: a value of `Pan`, `Money`, `Mcc`, `Country`, `Location` or
//! `Expiry` exists only if it parsed. No type here does IO. A `Pan` has a masked `Debug`
//! and no `Display`, so a card number cannot slip into a log line by accident.

mod authorization;
mod card;
mod clock;
mod decision;
mod error;
mod geo;
mod merchant;
mod money;
pub mod rng;
mod text;

pub use authorization::{Authorization, CardData, Channel, Device, TxType};
pub use card::{CardToken, Expiry, Last4, Pan};
pub use clock::{Clock, FixedClock, SystemClock, Timestamp};
pub use decision::{Decision, Reason, ReasonCode, ResponseCode};
pub use error::ParseError;
pub use geo::Location;
pub use merchant::{Country, Mcc, Merchant};
pub use money::{Currency, Money};
