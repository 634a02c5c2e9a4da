//! ISO 8583:1987, the message format card networks and processors speak to an issuer. Pure:
//! bytes in, messages out, and back, with no IO.
//!
//! - [`spec`]: the field table (which fields exist, fixed or LLVAR/LLLVAR, ASCII or binary),
//!   data-driven: the common ASCII variant is built in ([`Spec::default_ascii`]) and a
//!   network's own table loads from TOML;
//! - [`message`]: a message, its MTI and fields as they are on the wire;
//! - [`codec`]: [`encode`] and [`decode`], bitmaps included; encoding what was decoded gives
//!   the same bytes, and decoding what was encoded the same message.

pub mod codec;
pub mod message;
pub mod spec;

pub use codec::{DecodeError, EncodeError, decode, encode};
pub use message::Message;
pub use spec::{Bitmap, Data, FieldSpec, LenType, Spec, SpecError};
