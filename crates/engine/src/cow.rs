//! Copy-on-write containers for the engine state, so that a snapshot is taken without
//! stopping the world: freezing the state clones the `Arc`s of its shards (microseconds),
//! the snapshot is encoded from the frozen shards on another thread, and the first write to
//! a shard that a snapshot still holds copies that shard alone (a few dozen cards).
//!
//! Both serialize exactly as the plain containers would (a map, a sequence), so a frozen
//! state and a live one encode to the same bytes.
//!
//! A [`ShardedMap`] also records which keys changed since its changes were last taken, and
//! divides its pages into slices: an incremental snapshot writes the changed entries and one
//! slice whole (see `crate::segment`).

use crate::hash::{FastMap, FastSet};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::VecDeque;
use std::hash::Hash;
use std::marker::PhantomData;
use std::sync::Arc;

/// Which shard a key lives in; keys are hashes or tokens already, so their bits are mixed.
pub trait ShardKey {
    fn shard_bits(&self) -> u64;
}

impl ShardKey for u64 {
    fn shard_bits(&self) -> u64 {
        self.rotate_left(17)
    }
}

impl ShardKey for cardguard_core::CardToken {
    fn shard_bits(&self) -> u64 {
        u64::from_le_bytes([
            self.0[8], self.0[9], self.0[10], self.0[11], self.0[12], self.0[13], self.0[14],
            self.0[15],
        ])
    }
}

/// Shards per page: a freeze clones one `Arc` a page, and the first write to a page that a
/// snapshot holds clones that page's shard pointers (64 of them, a few microseconds).
const PAGE: usize = 64;

type Shard<K, V> = Arc<FastMap<K, V>>;

/// A hash map in `2^bits` shards, each behind its own `Arc`, grouped in pages behind `Arc`s
/// too, so that freezing touches one reference count a page rather than one a shard.
pub struct ShardedMap<K, V> {
    pages: Vec<Arc<Vec<Shard<K, V>>>>,
    mask: u64,
    len: usize,
    /// Slots allocated across the shards, kept as they grow.
    capacity: usize,
    /// Keys written to (inserted or handed out for change) since [`ShardedMap::take_changed`].
    changed: FastSet<K>,
}

impl<K, V> Clone for ShardedMap<K, V> {
    /// Shares every page: O(pages), no entry is copied. The copy starts with no changes
    /// recorded (they stay the original's).
    fn clone(&self) -> Self {
        ShardedMap {
            pages: self.pages.clone(),
            mask: self.mask,
            len: self.len,
            capacity: self.capacity,
            changed: FastSet::default(),
        }
    }
}

impl<K: Eq + Hash + ShardKey + Clone, V: Clone> ShardedMap<K, V> {
    pub fn new(bits: u32) -> Self {
        let n = 1usize << bits;
        let per_page = n.min(PAGE);
        ShardedMap {
            pages: (0..n / per_page)
                .map(|_| {
                    Arc::new(
                        (0..per_page)
                            .map(|_| Arc::new(FastMap::default()))
                            .collect(),
                    )
                })
                .collect(),
            mask: (n - 1) as u64,
            len: 0,
            capacity: 0,
            changed: FastSet::default(),
        }
    }

    fn index(&self, k: &K) -> (usize, usize) {
        let i = (k.shard_bits() & self.mask) as usize;
        (i / PAGE, i % PAGE)
    }

    fn shard(&self, k: &K) -> &FastMap<K, V> {
        let (p, s) = self.index(k);
        &self.pages[p][s]
    }

    /// The shard of `k` for writing: its page and then the shard itself copied first if a
    /// snapshot still holds them. The key is recorded as changed.
    fn shard_mut(&mut self, k: &K) -> &mut FastMap<K, V> {
        self.mark(k);
        let (p, s) = self.index(k);
        Arc::make_mut(&mut Arc::make_mut(&mut self.pages[p])[s])
    }

    fn mark(&mut self, k: &K) {
        if !self.changed.contains(k) {
            self.changed.insert(k.clone());
        }
    }

    /// The keys written to since the last call (or since the map was made), and a fresh
    /// record from here on.
    pub fn take_changed(&mut self) -> FastSet<K> {
        std::mem::take(&mut self.changed)
    }

    /// Keys changed since [`ShardedMap::take_changed`] was last called.
    pub fn changed_len(&self) -> usize {
        self.changed.len()
    }

    /// Pages of shards: the unit a slice is made of.
    fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// The slice (of `slices`) that `k`'s page belongs to.
    pub fn slice_of(&self, k: &K, slices: u32) -> u32 {
        slice_of_page(self.index(k).0, self.page_count(), slices)
    }

    /// Entries of the slices `range` (of `slices`), page by page.
    pub fn slice_iter(
        &self,
        range: std::ops::Range<u32>,
        slices: u32,
    ) -> impl Iterator<Item = (&K, &V)> {
        let pages = self.page_count();
        self.pages
            .iter()
            .enumerate()
            .filter(move |(p, _)| range.contains(&slice_of_page(*p, pages, slices)))
            .flat_map(|(_, p)| p.iter())
            .flat_map(|s| s.iter())
    }

    /// Entries in the slices `range` (of `slices`), from the shards' lengths.
    pub fn slice_len(&self, range: std::ops::Range<u32>, slices: u32) -> usize {
        let pages = self.page_count();
        self.pages
            .iter()
            .enumerate()
            .filter(|(p, _)| range.contains(&slice_of_page(*p, pages, slices)))
            .flat_map(|(_, p)| p.iter())
            .map(|s| s.len())
            .sum()
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.shard(k).get(k)
    }

    pub fn contains_key(&self, k: &K) -> bool {
        self.get(k).is_some()
    }

    /// The entry to change; its shard is copied first if a snapshot still holds it.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        if !self.shard(k).contains_key(k) {
            return None;
        }
        self.shard_mut(k).get_mut(k)
    }

    pub fn entry_or_default(&mut self, k: K) -> &mut V
    where
        V: Default,
    {
        self.mark(&k);
        let (p, s) = self.index(&k);
        // Borrowing the pages alone leaves the counters free to update.
        let shard = Arc::make_mut(&mut Arc::make_mut(&mut self.pages[p])[s]);
        if !shard.contains_key(&k) {
            self.len += 1;
            let before = shard.capacity();
            shard.insert(k.clone(), V::default());
            self.capacity = self.capacity + shard.capacity() - before;
        }
        shard.entry(k).or_default()
    }

    pub fn insert(&mut self, k: K, v: V) {
        let shard = self.shard_mut(&k);
        let before = shard.capacity();
        let new = shard.insert(k, v).is_none();
        let grown = shard.capacity() - before;
        self.len += usize::from(new);
        self.capacity += grown;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Slots allocated across the shards (for memory estimates), without visiting them.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .flat_map(|s| s.iter())
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

/// Page `p` of `pages` belongs to slice `p * slices / pages`: consecutive pages, the same
/// number in each slice (give or take one).
fn slice_of_page(p: usize, pages: usize, slices: u32) -> u32 {
    (p as u64 * u64::from(slices) / pages.max(1) as u64) as u32
}

impl<K, V> ShardedMap<K, V> {
    /// Lets go of the pages one at a time, calling `pause` after each: whatever this copy
    /// was the last to hold is freed in small steps, not in one burst (an allocator that
    /// hands frees from another thread back to their owner then gets them a page at a time).
    pub fn release_gradually(self, pause: &mut impl FnMut()) {
        for page in self.pages {
            drop(page);
            pause();
        }
    }
}

impl<K: Serialize, V: Serialize> Serialize for ShardedMap<K, V> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut m = ser.serialize_map(Some(self.len))?;
        for (k, v) in self
            .pages
            .iter()
            .flat_map(|p| p.iter())
            .flat_map(|s| s.iter())
        {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// How many shards a map read back from a snapshot gets.
pub trait ShardCount {
    const BITS: u32;
}

struct MapVisitor<K, V, C>(PhantomData<(K, V, C)>);

impl<'de, K, V, C> Visitor<'de> for MapVisitor<K, V, C>
where
    K: Deserialize<'de> + Eq + Hash + ShardKey + Clone,
    V: Deserialize<'de> + Clone,
    C: ShardCount,
{
    type Value = ShardedMap<K, V>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut m = ShardedMap::new(C::BITS);
        while let Some((k, v)) = access.next_entry()? {
            m.insert(k, v);
        }
        // What was read back is not a change.
        m.take_changed();
        Ok(m)
    }
}

/// Deserializes a [`ShardedMap`] with `C::BITS` shard bits (`#[serde(deserialize_with)]`).
pub fn deserialize_sharded<'de, D, K, V, C>(de: D) -> Result<ShardedMap<K, V>, D::Error>
where
    D: Deserializer<'de>,
    K: Deserialize<'de> + Eq + Hash + ShardKey + Clone,
    V: Deserialize<'de> + Clone,
    C: ShardCount,
{
    de.deserialize_map(MapVisitor::<K, V, C>(PhantomData))
}

/// Entries per chunk of a [`ChunkedDeque`].
const CHUNK: usize = 4096;

/// A double-ended queue (push at the back, pop at the front) in chunks behind `Arc`s.
pub struct ChunkedDeque<T> {
    chunks: VecDeque<Arc<Vec<T>>>,
    /// Entries of the first chunk already popped.
    head: usize,
    len: usize,
}

impl<T> Clone for ChunkedDeque<T> {
    /// Shares every chunk.
    fn clone(&self) -> Self {
        ChunkedDeque {
            chunks: self.chunks.clone(),
            head: self.head,
            len: self.len,
        }
    }
}

impl<T> ChunkedDeque<T> {
    /// Lets go of the chunks one at a time, calling `pause` after each.
    pub fn release_gradually(self, pause: &mut impl FnMut()) {
        for chunk in self.chunks {
            drop(chunk);
            pause();
        }
    }
}

impl<T> Default for ChunkedDeque<T> {
    fn default() -> Self {
        ChunkedDeque {
            chunks: VecDeque::new(),
            head: 0,
            len: 0,
        }
    }
}

impl<T: Clone> ChunkedDeque<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, v: T) {
        if self.chunks.back().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push_back(Arc::new(Vec::with_capacity(CHUNK)));
        }
        if let Some(last) = self.chunks.back_mut() {
            let chunk = Arc::make_mut(last);
            chunk.reserve_exact(CHUNK - chunk.len());
            chunk.push(v);
            self.len += 1;
        }
    }

    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len {
            return None;
        }
        let j = i + self.head;
        self.chunks.get(j / CHUNK)?.get(j % CHUNK)
    }

    /// The entry to change; its chunk is copied first if a snapshot still holds it.
    pub fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i >= self.len {
            return None;
        }
        let j = i + self.head;
        Arc::make_mut(self.chunks.get_mut(j / CHUNK)?).get_mut(j % CHUNK)
    }

    pub fn front(&self) -> Option<&T> {
        self.get(0)
    }

    /// Drops the first entry (its chunk is freed once all of it is dropped).
    pub fn pop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        self.len -= 1;
        self.head += 1;
        if self.len == 0 {
            self.chunks.clear();
            self.head = 0;
        } else if self.head == CHUNK {
            self.chunks.pop_front();
            self.head = 0;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .skip(self.head)
            .take(self.len)
    }

    /// Bytes of the chunks' entries.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.len() * CHUNK * std::mem::size_of::<T>()
    }
}

impl<T: Serialize + Clone> Serialize for ChunkedDeque<T> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut s = ser.serialize_seq(Some(self.len))?;
        for v in self.iter() {
            s.serialize_element(v)?;
        }
        s.end()
    }
}

impl<'de, T: Deserialize<'de> + Clone> Deserialize<'de> for ChunkedDeque<T> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Clone> Visitor<'de> for V<T> {
            type Value = ChunkedDeque<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a sequence")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
                let mut d = ChunkedDeque::default();
                while let Some(v) = a.next_element()? {
                    d.push_back(v);
                }
                Ok(d)
            }
        }
        de.deserialize_seq(V(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Four;
    impl ShardCount for Four {
        const BITS: u32 = 2;
    }

    #[test]
    fn a_frozen_map_keeps_its_values_while_the_live_one_changes() {
        let mut m: ShardedMap<u64, Vec<u32>> = ShardedMap::new(2);
        for k in 0..100u64 {
            m.entry_or_default(k).push(k as u32);
        }
        assert_eq!(m.len(), 100);
        let frozen = m.clone();
        m.get_mut(&7).unwrap().push(99);
        m.entry_or_default(1000).push(1);
        assert_eq!(frozen.get(&7), Some(&vec![7]));
        assert_eq!(m.get(&7), Some(&vec![7, 99]));
        assert_eq!((frozen.len(), m.len()), (100, 101));
        assert!(frozen.get(&1000).is_none());
        let json = serde_json::to_string(&frozen).unwrap();
        let mut de = serde_json::Deserializer::from_str(&json);
        let back: ShardedMap<u64, Vec<u32>> =
            deserialize_sharded::<_, _, _, Four>(&mut de).unwrap();
        assert_eq!(back.len(), 100);
        assert_eq!(back.get(&42), Some(&vec![42]));
    }

    #[test]
    fn a_chunked_deque_pops_whole_chunks_and_copies_only_shared_ones() {
        let mut d: ChunkedDeque<u64> = ChunkedDeque::default();
        for i in 0..(3 * CHUNK as u64 + 5) {
            d.push_back(i);
        }
        let frozen = d.clone();
        *d.get_mut(10).unwrap() = 1;
        for _ in 0..CHUNK + 3 {
            d.pop_front();
        }
        assert_eq!(d.front(), Some(&(CHUNK as u64 + 3)));
        assert_eq!(d.len(), 2 * CHUNK + 2);
        assert_eq!(frozen.get(10), Some(&10));
        assert_eq!(frozen.len(), 3 * CHUNK + 5);
        assert_eq!(
            d.iter().copied().collect::<Vec<_>>(),
            (CHUNK as u64 + 3..3 * CHUNK as u64 + 5).collect::<Vec<_>>()
        );
        let bytes = serde_json::to_vec(&d).unwrap();
        let back: ChunkedDeque<u64> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            d.iter().collect::<Vec<_>>()
        );
        while !d.is_empty() {
            d.pop_front();
        }
        d.push_back(5);
        assert_eq!(d.front(), Some(&5));
    }
}
