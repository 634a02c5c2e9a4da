//! Incremental snapshots of the engine state. A snapshot is a chain of segments; each holds
//! the entries changed since the segment before it and one slice of the whole state (the
//! slices taking turns), so that the last [`SLICES`] segments together hold every entry:
//! written in order, later entries over earlier ones, they give back the state as of the
//! newest. What a segment costs to write is what changed plus a sixteenth of the state,
//! every time, instead of the whole state every time.
//!
//! [`Engine::freeze`](crate::Engine::freeze) hands out the frozen state with the
//! [`Changes`] since the freeze before; [`Frozen::segment`] is the segment to encode (any
//! serde format); a [`Restorer`] reads segments back in order.

use crate::cow::ShardedMap;
use crate::hash::FastSet;
use crate::state::{AuthEntry, EngineState};
use cardguard_core::CardToken;
use serde::de::{DeserializeSeed, Error as _, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, SerializeTuple};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::hash::Hash;
use std::ops::Range;

/// The slices the state is divided into: a full snapshot is spread over this many segments.
pub const SLICES: u32 = 16;

/// The tag a segment's body starts with: a new layout gets a new tag, and segments with
/// another are passed over (the log is replayed instead).
pub const SEGMENT_FORMAT: &[u8; 8] = b"CGSEGST1";

/// Authorizations go to slices in runs of this many consecutive numbers (a few in the unit
/// tests, so that their few hundred authorizations spread over the slices).
const AUTH_RUN: u64 = if cfg!(test) { 4 } else { 4096 };

/// The slices the segment after one of `prev` holds whole: the next slice in turn, or all of
/// them when there is no segment before (a new chain starts with a full snapshot).
pub fn next_slices(prev: Option<&Range<u32>>) -> Range<u32> {
    match prev {
        None => 0..SLICES,
        Some(p) => {
            let next = p.end % SLICES;
            next..next + 1
        }
    }
}

/// Where the segments to load start, given the slices each of a contiguous chain holds
/// (oldest first): the latest start from which the segments to the newest hold every slice
/// whole. `None` when they do not.
pub fn window(slices: &[Range<u32>]) -> Option<usize> {
    let mut covered = [false; SLICES as usize];
    let mut left = SLICES;
    for (i, r) in slices.iter().enumerate().rev() {
        for s in r.clone() {
            if let Some(c) = covered.get_mut(s as usize)
                && !*c
            {
                *c = true;
                left -= 1;
            }
        }
        if left == 0 {
            return Some(i);
        }
    }
    None
}

fn auth_slice(n: u64) -> u32 {
    ((n / AUTH_RUN) % u64::from(SLICES)) as u32
}

/// What changed in the state between two freezes: the keys written to and the
/// authorizations labelled, answered or reversed; authorizations appended since are those
/// numbered from `auths_from`.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    pub(crate) cards: FastSet<CardToken>,
    pub(crate) terminals: FastSet<u64>,
    pub(crate) devices: FastSet<u64>,
    pub(crate) auths: FastSet<u64>,
    pub(crate) auths_from: u64,
}

impl Changes {
    /// Takes in the changes of an earlier freeze whose segment was not written, so that the
    /// next segment covers both.
    pub fn absorb(&mut self, earlier: Changes) {
        self.cards.extend(earlier.cards);
        self.terminals.extend(earlier.terminals);
        self.devices.extend(earlier.devices);
        self.auths.extend(earlier.auths);
        self.auths_from = self.auths_from.min(earlier.auths_from);
    }

    /// Entries changed (cards, terminals, devices, authorizations other than appended).
    pub fn len(&self) -> usize {
        self.cards.len() + self.terminals.len() + self.devices.len() + self.auths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A frozen state (sharing its shards with the live one) and what changed before it.
pub struct Frozen {
    pub state: EngineState,
    pub changes: Changes,
}

/// The scalars of the state as of a segment; the newest segment's are the state's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preamble {
    pub auths_base: u64,
    pub auths_total: u64,
    pub clock_ms: i64,
    pub missing: u64,
}

impl Frozen {
    /// The segment holding the changes and the slices `slices` (of [`SLICES`]) whole;
    /// `0..SLICES` is a full snapshot.
    pub fn segment(&self, slices: Range<u32>) -> Segment<'_> {
        Segment {
            frozen: self,
            slices,
        }
    }

    pub fn preamble(&self) -> Preamble {
        let st = &self.state;
        Preamble {
            auths_base: st.auths_base,
            auths_total: st.auths_base + st.auths.len() as u64,
            clock_ms: st.clock_ms,
            missing: st.missing,
        }
    }
}

/// A segment to encode: the [`Preamble`], then the cards, terminals and devices as
/// sequences of `(key, value)`, then the authorizations as `(number, entry)`.
pub struct Segment<'a> {
    frozen: &'a Frozen,
    slices: Range<u32>,
}

impl Serialize for Segment<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let (st, ch) = (&self.frozen.state, &self.frozen.changes);
        let mut t = ser.serialize_tuple(5)?;
        t.serialize_element(&self.frozen.preamble())?;
        t.serialize_element(&MapPart::new(&st.cards, &ch.cards, &self.slices))?;
        t.serialize_element(&MapPart::new(&st.terminals, &ch.terminals, &self.slices))?;
        t.serialize_element(&MapPart::new(&st.devices, &ch.devices, &self.slices))?;
        t.serialize_element(&AuthPart {
            frozen: self.frozen,
            slices: &self.slices,
        })?;
        t.end()
    }
}

/// A map's entries in a segment: its slices whole, then the changed keys outside them.
struct MapPart<'a, K, V> {
    map: &'a ShardedMap<K, V>,
    slices: &'a Range<u32>,
    extra: Vec<(&'a K, &'a V)>,
}

impl<'a, K: Eq + Hash + crate::cow::ShardKey + Clone, V: Clone> MapPart<'a, K, V> {
    fn new(map: &'a ShardedMap<K, V>, changed: &'a FastSet<K>, slices: &'a Range<u32>) -> Self {
        let extra = changed
            .iter()
            .filter(|k| !slices.contains(&map.slice_of(k, SLICES)))
            .filter_map(|k| Some((k, map.get(k)?)))
            .collect();
        MapPart { map, slices, extra }
    }
}

impl<K, V> Serialize for MapPart<'_, K, V>
where
    K: Serialize + Eq + Hash + crate::cow::ShardKey + Clone,
    V: Serialize + Clone,
{
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let n = self.map.slice_len(self.slices.clone(), SLICES) + self.extra.len();
        let mut seq = ser.serialize_seq(Some(n))?;
        for e in self.map.slice_iter(self.slices.clone(), SLICES) {
            seq.serialize_element(&e)?;
        }
        for e in &self.extra {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

/// The authorizations in a segment: those of its slices, those appended since the freeze
/// before and those changed since.
struct AuthPart<'a> {
    frozen: &'a Frozen,
    slices: &'a Range<u32>,
}

impl AuthPart<'_> {
    fn numbers(&self) -> impl Iterator<Item = u64> + '_ {
        let p = self.frozen.preamble();
        let ch = &self.frozen.changes;
        let from = ch.auths_from.max(p.auths_base);
        let whole = (p.auths_base..p.auths_total)
            .filter(move |&n| n >= from || self.slices.contains(&auth_slice(n)));
        let changed = ch.auths.iter().copied().filter(move |&n| {
            n >= p.auths_base && n < from && !self.slices.contains(&auth_slice(n))
        });
        whole.chain(changed)
    }
}

impl Serialize for AuthPart<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let st = &self.frozen.state;
        let mut seq = ser.serialize_seq(Some(self.numbers().count()))?;
        for n in self.numbers() {
            if let Some(e) = st.auths.get((n - st.auths_base) as usize) {
                seq.serialize_element(&(n, e))?;
            }
        }
        seq.end()
    }
}

/// Why segments did not give back a state.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("the segments leave authorization {0} out")]
    AuthorizationLeftOut(u64),
}

/// Builds a state back from segments applied oldest first (see [`Restorer::apply`]).
pub struct Restorer {
    state: EngineState,
    /// Authorizations from the newest segment's `auths_base`, as the segments fill them.
    auths: Vec<Option<AuthEntry>>,
    last: Preamble,
}

impl Restorer {
    /// `last` is the newest segment's preamble (see [`Restorer::preamble`]): the state's
    /// scalars and which authorizations it retains.
    pub fn new(last: Preamble) -> Restorer {
        let n = last.auths_total.saturating_sub(last.auths_base) as usize;
        Restorer {
            state: EngineState::default(),
            auths: vec![None; n],
            last,
        }
    }

    /// Reads a segment's preamble alone (the deserializer is left after it).
    pub fn preamble<'de, D: Deserializer<'de>>(d: D) -> Result<Preamble, D::Error> {
        Preamble::deserialize(d)
    }

    /// Applies one segment (its body after [`SEGMENT_FORMAT`]); segments are applied from
    /// the oldest to the newest.
    pub fn apply<'de, D: Deserializer<'de>>(&mut self, d: D) -> Result<(), D::Error> {
        d.deserialize_tuple(5, Body(self))
    }

    /// The state, once every segment is applied.
    pub fn finish(mut self) -> Result<EngineState, SegmentError> {
        let base = self.last.auths_base;
        for (i, e) in self.auths.into_iter().enumerate() {
            let e = e.ok_or(SegmentError::AuthorizationLeftOut(base + i as u64))?;
            self.state.auths.push_back(e);
        }
        self.state.auths_base = base;
        self.state.clock_ms = self.last.clock_ms;
        self.state.missing = self.last.missing;
        self.state.cards.take_changed();
        self.state.terminals.take_changed();
        self.state.devices.take_changed();
        Ok(self.state)
    }
}

struct Body<'a>(&'a mut Restorer);

impl<'de> Visitor<'de> for Body<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a snapshot segment")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let r = self.0;
        let missing = |what| A::Error::custom(format_args!("segment without its {what}"));
        seq.next_element::<Preamble>()?
            .ok_or_else(|| missing("preamble"))?;
        seq.next_element_seed(MapSeed(&mut r.state.cards))?
            .ok_or_else(|| missing("cards"))?;
        seq.next_element_seed(MapSeed(&mut r.state.terminals))?
            .ok_or_else(|| missing("terminals"))?;
        seq.next_element_seed(MapSeed(&mut r.state.devices))?
            .ok_or_else(|| missing("devices"))?;
        seq.next_element_seed(AuthSeed {
            auths: &mut r.auths,
            base: r.last.auths_base,
        })?
        .ok_or_else(|| missing("authorizations"))?;
        Ok(())
    }
}

/// Inserts a segment's entries into a map as they are read.
struct MapSeed<'a, K, V>(&'a mut ShardedMap<K, V>);

impl<'de, K, V> DeserializeSeed<'de> for MapSeed<'_, K, V>
where
    K: Deserialize<'de> + Eq + Hash + crate::cow::ShardKey + Clone,
    V: Deserialize<'de> + Clone,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, K, V> Visitor<'de> for MapSeed<'_, K, V>
where
    K: Deserialize<'de> + Eq + Hash + crate::cow::ShardKey + Clone,
    V: Deserialize<'de> + Clone,
{
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence of entries")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some((k, v)) = seq.next_element::<(K, V)>()? {
            self.0.insert(k, v);
        }
        Ok(())
    }
}

/// Fills the authorizations' slots as a segment's are read (those before the newest
/// segment's `auths_base` left the retention and are dropped).
struct AuthSeed<'a> {
    auths: &'a mut Vec<Option<AuthEntry>>,
    base: u64,
}

impl<'de> DeserializeSeed<'de> for AuthSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for AuthSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence of authorizations")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some((n, e)) = seq.next_element::<(u64, AuthEntry)>()? {
            let Some(i) = n.checked_sub(self.base) else {
                continue;
            };
            let slot = self.auths.get_mut(i as usize).ok_or_else(|| {
                A::Error::custom(format_args!(
                    "authorization {n} is past the newest segment's"
                ))
            })?;
            *slot = Some(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{AuthRecord, LabelRecord, ReversalRecord};
    use crate::synth::{ok_checks, transaction};
    use crate::{Engine, EngineConfig, Outcome};
    use cardguard_core::Timestamp;
    use proptest::prelude::*;

    /// The state as sorted text, to compare two states whatever order their maps hold.
    fn canonical(st: &EngineState) -> String {
        fn sorted<K: Serialize, V: Serialize>(it: impl Iterator<Item = (K, V)>) -> Vec<String> {
            let mut v: Vec<String> = it
                .map(|e| serde_json::to_string(&e).unwrap_or_default())
                .collect();
            v.sort();
            v
        }
        serde_json::to_string(&(
            sorted(st.cards.iter()),
            sorted(st.terminals.iter()),
            sorted(st.devices.iter()),
            st.auths.iter().collect::<Vec<_>>(),
            st.auths_base,
            st.clock_ms,
            st.missing,
        ))
        .unwrap_or_default()
    }

    #[derive(Debug, Clone)]
    enum Op {
        Auth { card: u64, minutes: i64 },
        Label { back: usize, fraud: bool },
        Reverse { back: usize },
        Snapshot,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => (0..400u64, 0..600i64).prop_map(|(card, minutes)| Op::Auth { card, minutes }),
            2 => (0..40usize, any::<bool>()).prop_map(|(back, fraud)| Op::Label { back, fraud }),
            1 => (0..40usize).prop_map(|back| Op::Reverse { back }),
            1 => Just(Op::Snapshot),
        ]
    }

    /// A chain on "disk": each segment's slices and bytes, the oldest ones dropped as a
    /// writer drops them.
    #[derive(Default)]
    struct Chain(Vec<(Range<u32>, Vec<u8>)>);

    impl Chain {
        fn write(&mut self, frozen: &Frozen) {
            let slices = next_slices(self.0.last().map(|s| &s.0));
            let mut bytes = SEGMENT_FORMAT.to_vec();
            postcard::to_io(&frozen.segment(slices.clone()), &mut bytes).unwrap();
            self.0.push((slices, bytes));
            let ranges: Vec<_> = self.0.iter().map(|s| s.0.clone()).collect();
            let start = window(&ranges).unwrap();
            self.0.drain(..start);
        }

        fn restore(&self) -> EngineState {
            let body = |i: usize| &self.0[i].1[SEGMENT_FORMAT.len()..];
            let last = self.0.len() - 1;
            let (pre, _) = postcard::take_from_bytes::<Preamble>(body(last)).unwrap();
            let mut r = Restorer::new(pre);
            for i in 0..=last {
                let mut de = postcard::Deserializer::from_bytes(body(i));
                r.apply(&mut de).unwrap();
            }
            r.finish().unwrap()
        }
    }

    fn run(ops: &[Op], retention_days: u32) {
        let mut e = Engine::new(EngineConfig {
            auth_retention_days: retention_days,
            ..EngineConfig::default()
        });
        let mut chain = Chain::default();
        let mut ids: Vec<(String, AuthRecord)> = Vec::new();
        let mut t = Timestamp::parse_rfc3339("2026-11-01T00:00:00Z").unwrap().0;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Auth { card, minutes } => {
                    t += minutes * 60_000;
                    let tx = transaction(i as u64, *card, Timestamp(t), format!("r{i}"));
                    let rec = AuthRecord {
                        authorization_id: e.next_authorization_id(),
                        tx,
                        checks: ok_checks(),
                        outcome: Outcome::unscored_approval(),
                    };
                    e.apply_auth(&rec, i as u64).unwrap();
                    ids.push((rec.authorization_id.clone(), rec));
                }
                Op::Label { back, fraud } => {
                    if let Some((id, _)) = ids.iter().rev().nth(*back) {
                        e.apply_label(&LabelRecord {
                            authorization_id: id.clone(),
                            fraud: *fraud,
                            ts: Timestamp(t),
                            source: None,
                        })
                        .unwrap();
                    }
                }
                Op::Reverse { back } => {
                    if let Some((id, rec)) = ids.iter().rev().nth(*back) {
                        e.apply_reversal(&ReversalRecord {
                            authorization_id: id.clone(),
                            original: rec.tx.clone(),
                            approved: true,
                            received: Timestamp(t),
                            source: "test".into(),
                            client: None,
                            reference: None,
                        })
                        .unwrap();
                    }
                }
                Op::Snapshot => {
                    let frozen = e.freeze();
                    chain.write(&frozen);
                    // The chain gives back the state as it was frozen.
                    assert_eq!(canonical(&chain.restore()), canonical(&frozen.state));
                }
            }
        }
        let frozen = e.freeze();
        chain.write(&frozen);
        assert_eq!(canonical(&chain.restore()), canonical(e.state()));
        assert!(chain.0.len() <= SLICES as usize);
        // Restored, the engine numbers on and finds the retained authorizations.
        let mut back = Engine::new(e.config().clone());
        back.restore(chain.restore());
        assert_eq!(back.next_authorization_id(), e.next_authorization_id());
        assert_eq!(back.counts(), e.counts());
        let (b, l) = (back.stats(), e.stats());
        assert_eq!(
            (
                b.authorizations,
                b.authorizations_retained,
                b.authorizations_missing
            ),
            (
                l.authorizations,
                l.authorizations_retained,
                l.authorizations_missing
            )
        );
    }

    #[test]
    fn the_window_starts_where_every_slice_is_held() {
        let one = |s: u32| s..s + 1;
        assert_eq!(window(&[]), None);
        assert_eq!(window(std::slice::from_ref(&(0..SLICES))), Some(0));
        assert_eq!(window(&[0..SLICES, one(0), one(1)]), Some(0));
        let turns: Vec<_> = std::iter::once(0..SLICES)
            .chain((0..SLICES + 3).map(|i| one(i % SLICES)))
            .collect();
        assert_eq!(window(&turns), Some(4));
        assert_eq!(window(&turns[1..SLICES as usize]), None);
        assert_eq!(next_slices(None), 0..SLICES);
        assert_eq!(next_slices(Some(&(0..SLICES))), one(0));
        assert_eq!(next_slices(Some(&one(SLICES - 1))), one(0));
        assert_eq!(next_slices(Some(&one(3))), one(4));
    }

    #[test]
    fn a_segment_holds_only_the_changes_and_its_slice() {
        let mut e = Engine::new(EngineConfig::default());
        let now = Timestamp::parse_rfc3339("2026-11-30T00:00:00Z").unwrap();
        crate::synth::populate(&mut e, 2000, 2, now, 7);
        let full = e.freeze();
        let mut first = Vec::new();
        postcard::to_io(&full.segment(0..SLICES), &mut first).unwrap();
        let tx = transaction(1, 5, now, "one more".into());
        let rec = AuthRecord {
            authorization_id: e.next_authorization_id(),
            tx,
            checks: ok_checks(),
            outcome: Outcome::unscored_approval(),
        };
        e.apply_auth(&rec, 0).unwrap();
        let frozen = e.freeze();
        assert_eq!(frozen.changes.cards.len(), 1);
        assert_eq!(frozen.changes.terminals.len(), 1);
        assert_eq!(frozen.changes.auths_from, 4000);
        let mut next = Vec::new();
        postcard::to_io(&frozen.segment(3..4), &mut next).unwrap();
        // About a sixteenth of the whole, give or take the shards' spread.
        assert!(
            next.len() * 10 < first.len() && next.len() * 30 > first.len(),
            "{} of {}",
            next.len(),
            first.len()
        );
        // Nothing changed: the next segment is its slice alone.
        let mut quiet = Vec::new();
        postcard::to_io(&e.freeze().segment(3..4), &mut quiet).unwrap();
        assert!(quiet.len() < next.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn a_chain_of_segments_gives_back_the_state(ops in proptest::collection::vec(op(), 1..400)) {
            run(&ops, 400);
        }

        #[test]
        fn authorizations_that_leave_the_retention_leave_the_chain(ops in proptest::collection::vec(op(), 1..400)) {
            run(&ops, 2);
        }
    }
}
