//! Per-device state: the cards seen on a device.

use serde::{Deserialize, Serialize};

const MAX_CARDS: usize = 32;

#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceState {
    /// Stable 32-bit hashes of the card tokens seen, most recent last (bounded).
    pub cards: Vec<u32>,
    pub first_seen_ms: i64,
}

impl DeviceState {
    /// Distinct cards seen, counting `card` as if it were used now.
    pub fn cards_with(&self, card: u32) -> usize {
        self.cards.len() + usize::from(!self.cards.contains(&card))
    }

    pub(crate) fn record(&mut self, card: u32, at_ms: i64) {
        if self.cards.is_empty() {
            self.first_seen_ms = at_ms;
        }
        if let Some(i) = self.cards.iter().position(|&c| c == card) {
            self.cards.remove(i);
        } else if self.cards.len() == MAX_CARDS {
            self.cards.remove(0);
        }
        self.cards.push(card);
    }

    pub fn heap_bytes(&self) -> usize {
        self.cards.capacity() * 4
    }
}

/// A copy with the same capacity (see `CardState`'s).
impl Clone for DeviceState {
    fn clone(&self) -> Self {
        DeviceState {
            cards: crate::card::clone_vec(&self.cards, self.cards.capacity()),
            first_seen_ms: self.first_seen_ms,
        }
    }
}
