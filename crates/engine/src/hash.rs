//! Stable hashes for ids (the same on every run, so snapshots stay valid) and a fast hasher
//! for maps whose keys are already well mixed.

use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a, 64 bits, finished with a multiply-xorshift mix. Stable across runs and machines.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// The stable hash folded to 32 bits, for the compact per-card sets.
pub fn stable_hash32(bytes: &[u8]) -> u32 {
    let h = stable_hash(bytes);
    (h ^ (h >> 32)) as u32
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// A hasher for keys that are hashes or tokens already: it mixes the written words instead
/// of running SipHash over them.
#[derive(Default, Clone, Copy)]
pub struct MixHasher(u64);

impl Hasher for MixHasher {
    fn finish(&self) -> u64 {
        mix(self.0)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(w)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0 ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64)
    }
}

pub type FastMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<MixHasher>>;
pub type FastSet<K> = std::collections::HashSet<K, BuildHasherDefault<MixHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_values() {
        // Fixed values: a change here invalidates every snapshot.
        assert_eq!(stable_hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(stable_hash(b"m-42"), stable_hash(b"m-42"));
        assert_ne!(stable_hash(b"m-42"), stable_hash(b"m-43"));
    }
}
