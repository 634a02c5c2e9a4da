//! An ISO 8583 message: its message type indicator and its data elements as they are on the
//! wire (the characters of an ASCII field, the bytes of a binary one).

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// The message type indicator: four digits (`0100`, `0110`, `0800`, ...).
    pub mti: String,
    /// Data elements 2 to 128 by number. The bitmaps are not fields here: encoding writes
    /// them from which fields are present.
    pub fields: BTreeMap<u8, Vec<u8>>,
    /// Whether the secondary bitmap is written even with no field above 64 (a decoded
    /// message that had one keeps it, so that it encodes to the same bytes).
    pub secondary_bitmap: bool,
}

impl Message {
    pub fn new(mti: &str) -> Message {
        Message {
            mti: mti.to_owned(),
            ..Message::default()
        }
    }

    /// Sets data element `n`.
    pub fn set(&mut self, n: u8, value: impl Into<Vec<u8>>) -> &mut Message {
        self.fields.insert(n, value.into());
        self
    }

    /// Data element `n`, as bytes.
    pub fn get(&self, n: u8) -> Option<&[u8]> {
        self.fields.get(&n).map(Vec::as_slice)
    }

    /// Data element `n` as text, if it is present and ASCII.
    pub fn text(&self, n: u8) -> Option<&str> {
        self.get(n)
            .filter(|b| b.is_ascii())
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Whether data element `n` is present.
    pub fn has(&self, n: u8) -> bool {
        self.fields.contains_key(&n)
    }
}
