//! The engine: its state (cards, terminals, devices, the authorization index), `decide`,
//! and the `apply_*` functions that a live decision and a replay both go through.

use crate::card::{CardState, Fix, TxRecord, secs};
use crate::config::EngineConfig;
use crate::cow::{ChunkedDeque, ShardCount, ShardedMap, deserialize_sharded};
use crate::decide::{self, CardChecks, CscCheck, Outcome, PinCheck};
use crate::device::DeviceState;
use crate::features::{self, Features, TxContext};
use crate::hash::{FastMap, FastSet, stable_hash};
use crate::lists::ListSet;
use crate::policy::Policy;
use crate::record::{AnswerRecord, AuthRecord, LabelRecord, ReversalRecord, TxFacts};
use crate::score::{Scorecard, Scorer};
use crate::segment::{Changes, Frozen};
use crate::terminal::TerminalState;
use cardguard_core::{CardToken, Decision};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("authorization id {0} was already applied")]
    DuplicateAuthorization(String),
    #[error("no authorization {0}")]
    UnknownAuthorization(String),
    #[error("authorization id {0} is not in the expected sequence")]
    OutOfSequence(String),
}

/// The label state of an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Label {
    None,
    Fraud,
    Genuine,
}

/// What the engine remembers of every authorization: enough to find its event in the log
/// (idempotent retries) and to apply a label to the right terminal and card.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthEntry {
    /// 128-bit hash of the acquirer's request id.
    pub key: u128,
    /// Where its event starts in the log (opaque to the engine).
    pub offset: u64,
    /// The transaction's time (never later than the engine's clock when it was applied).
    pub ts_ms: i64,
    /// When the server received it: retention goes by this.
    pub received_ms: i64,
    /// The digest of the request (0 if unknown): a retry with another body is a conflict.
    pub digest: u128,
    pub terminal: u64,
    pub card: CardToken,
    pub card_known: bool,
    pub label: Label,
    /// A reversal took it back.
    pub reversed: bool,
    /// The cardholder's answer to its alert.
    pub answer: Answer,
}

/// The cardholder's answer to an alert about an authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Answer {
    None,
    /// "It was me."
    Yes,
    /// "It was not me."
    No,
}

/// The tag a snapshot of [`EngineState`] starts with: a new layout of the state gets a new
/// tag, and a snapshot with another one is passed over (the log is replayed instead).
pub const STATE_FORMAT: &[u8; 8] = b"CGSTATE2";

/// A candidate in shadow mode: its ruleset, and its model when it has its own.
pub struct Shadow {
    pub policy: Arc<Policy>,
    pub scorer: Option<Arc<dyn Scorer>>,
}

/// A decision in the making: final, or waiting for the model's reasons.
pub enum Draft {
    Final(Outcome),
    NeedsReasons(Box<Pending>),
}

/// What computing the reasons of a decision needs: the features, the transaction and the
/// model that scored them. Computing them changes nothing and needs no lock.
pub struct Pending {
    features: Features,
    ctx: TxContext,
    scorer: Arc<dyn Scorer>,
    /// The decision without reasons.
    outcome: Outcome,
}

impl Pending {
    /// The model's contributions for these features (TreeSHAP for a tree model).
    pub fn explain(&self) -> Reasons {
        Reasons {
            features: self.features.values.map(f32::to_bits),
            scorer: Arc::clone(&self.scorer),
            contributions: self.scorer.explain(&self.features, &self.ctx),
        }
    }
}

/// The reasons computed for one feature vector by one model.
pub struct Reasons {
    features: [u32; crate::features::N_FEATURES],
    scorer: Arc<dyn Scorer>,
    contributions: Vec<crate::score::Contribution>,
}

impl Reasons {
    /// Whether these reasons explain exactly `f` scored by `scorer`.
    fn explains(&self, f: &Features, scorer: &Arc<dyn Scorer>) -> bool {
        Arc::ptr_eq(&self.scorer, scorer) && self.features == f.values.map(f32::to_bits)
    }
}

/// The 128-bit idempotency key of a request id (of no particular client).
pub fn request_key(id: &str) -> u128 {
    scoped_request_key(None, id)
}

/// The 128-bit idempotency key of a request id sent by `client`.
pub fn scoped_request_key(client: Option<&str>, id: &str) -> u128 {
    let mut b = Vec::with_capacity(id.len() + client.map_or(0, |c| c.len() + 1) + 1);
    if let Some(c) = client {
        b.extend_from_slice(c.as_bytes());
        b.push(0);
    }
    b.extend_from_slice(id.as_bytes());
    let a = stable_hash(&b);
    b.insert(0, 0x5a);
    (u128::from(a) << 64) | u128::from(stable_hash(&b))
}

/// Prefix of cardguard's authorization ids; the number after it is the index in the log.
pub const AUTH_ID_PREFIX: &str = "au_";

fn auth_id(n: usize) -> String {
    format!("{AUTH_ID_PREFIX}{n:012}")
}

/// The number of one of cardguard's authorization ids (`au_000000000042` → 42), if it is
/// one.
pub fn authorization_number(authorization_id: &str) -> Option<u64> {
    let n: u64 = authorization_id
        .strip_prefix(AUTH_ID_PREFIX)?
        .parse()
        .ok()?;
    (auth_id(n as usize) == authorization_id).then_some(n)
}

/// The offset of an index entry whose event was set aside as damaged: the number was
/// given, the authorization is unknown.
const MISSING: u64 = u64::MAX;

/// Everything the engine keeps, and what a snapshot holds (serialize it with any serde
/// format; the fields are private). Cloning it is cheap and shares every shard: that is how
/// [`Engine::freeze`] takes a snapshot without stopping the engine.
#[derive(Clone, Serialize, Deserialize)]
pub struct EngineState {
    #[serde(deserialize_with = "de_cards")]
    pub(crate) cards: ShardedMap<CardToken, CardState>,
    #[serde(deserialize_with = "de_terminals")]
    pub(crate) terminals: ShardedMap<u64, TerminalState>,
    #[serde(deserialize_with = "de_devices")]
    pub(crate) devices: ShardedMap<u64, DeviceState>,
    /// The retained authorizations; the first is number `auths_base`.
    pub(crate) auths: ChunkedDeque<AuthEntry>,
    /// Authorizations dropped from the front after `auth_retention_days`.
    pub(crate) auths_base: u64,
    /// The engine's clock: the latest server time an applied authorization was received
    /// at. Never moves back, and no request's own time moves it.
    pub(crate) clock_ms: i64,
    /// Authorization numbers skipped in a replay (their events were set aside as damaged).
    pub(crate) missing: u64,
}

/// Shards of the card and device maps: 32,768 (about 30 cards each with a million cards, so
/// a write during a snapshot copies a few dozen cards); fewer for the terminals.
struct CardShards;
impl ShardCount for CardShards {
    const BITS: u32 = 15;
}
struct TerminalShards;
impl ShardCount for TerminalShards {
    const BITS: u32 = 10;
}

fn de_cards<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<ShardedMap<CardToken, CardState>, D::Error> {
    deserialize_sharded::<D, _, _, CardShards>(d)
}
fn de_terminals<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<ShardedMap<u64, TerminalState>, D::Error> {
    deserialize_sharded::<D, _, _, TerminalShards>(d)
}
fn de_devices<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<ShardedMap<u64, DeviceState>, D::Error> {
    deserialize_sharded::<D, _, _, CardShards>(d)
}

impl EngineState {
    /// Lets go of a frozen state a page of shards at a time, calling `pause` between pages
    /// (see [`ShardedMap::release_gradually`]); a snapshot writer does this when it is done.
    pub fn release_gradually(self, mut pause: impl FnMut()) {
        self.cards.release_gradually(&mut pause);
        self.devices.release_gradually(&mut pause);
        self.terminals.release_gradually(&mut pause);
        self.auths.release_gradually(&mut pause);
    }
}

impl Default for EngineState {
    fn default() -> Self {
        EngineState {
            cards: ShardedMap::new(CardShards::BITS),
            terminals: ShardedMap::new(TerminalShards::BITS),
            devices: ShardedMap::new(CardShards::BITS),
            auths: ChunkedDeque::default(),
            auths_base: 0,
            clock_ms: i64::MIN,
            missing: 0,
        }
    }
}

/// Bytes the entries of the state hold on the heap, kept current as events apply so that
/// statistics never walk the state.
#[derive(Debug, Clone, Copy, Default)]
struct HeapBytes {
    cards: usize,
    terminals: usize,
    devices: usize,
}

/// Counts and an estimate of the heap the state holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub cards: usize,
    pub terminals: usize,
    pub devices: usize,
    /// Authorizations ever applied.
    pub authorizations: usize,
    /// Authorization numbers whose events a replay did not find (set aside as damaged).
    pub authorizations_missing: u64,
    /// Those still in memory (for idempotent retries and labels).
    pub authorizations_retained: usize,
    /// Bytes held by card state: map slots plus each card's own heap.
    pub card_bytes: usize,
    pub total_bytes: usize,
}

pub struct Engine {
    config: EngineConfig,
    scorer: Arc<dyn Scorer>,
    /// The active ruleset and the lists its rules look up: swapped whole, so that the next
    /// authorization sees a change.
    policy: Arc<Policy>,
    lists: Arc<ListSet>,
    /// A candidate ruleset (and model) deciding beside the active one without acting.
    shadow: Option<Arc<Shadow>>,
    state: EngineState,
    /// Request-id key → authorization number, for the retained authorizations (rebuilt
    /// from the state at restore, never snapshotted).
    by_key: FastMap<u128, u64>,
    heap: HeapBytes,
    /// Retained authorizations changed (labelled, answered, reversed) since the last
    /// freeze, among those numbered below `auths_frozen` (the later ones are all new).
    auth_changes: FastSet<u64>,
    /// Authorizations applied when the state was last frozen (or restored).
    auths_frozen: u64,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let scorer = Arc::new(Scorecard {
            base: config.fx.base,
            max_speed_kmh: config.max_speed_kmh,
            travel_allowance_km: config.travel_allowance_km,
        });
        Engine {
            config,
            scorer,
            policy: Arc::new(Policy::default_policy()),
            lists: Arc::new(ListSet::default()),
            shadow: None,
            state: EngineState::default(),
            by_key: FastMap::default(),
            heap: HeapBytes::default(),
            auth_changes: FastSet::default(),
            auths_frozen: 0,
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Swaps the scorer (a new model) for the next decisions.
    pub fn set_scorer(&mut self, scorer: Arc<dyn Scorer>) {
        self.scorer = scorer;
    }

    /// Swaps the ruleset for the next decisions.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.policy = policy;
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Sets (or, with none, ends) shadow mode for the next decisions.
    pub fn set_shadow(&mut self, shadow: Option<Arc<Shadow>>) {
        self.shadow = shadow;
    }

    pub fn shadow(&self) -> Option<&Arc<Shadow>> {
        self.shadow.as_ref()
    }

    /// Swaps the lists for the next decisions.
    pub fn set_lists(&mut self, lists: Arc<ListSet>) {
        self.lists = lists;
    }

    pub fn lists(&self) -> &Arc<ListSet> {
        &self.lists
    }

    /// The version of the scorer deciding now.
    pub fn scorer_version(&self) -> &str {
        self.scorer.version()
    }

    /// Authorizations ever applied (retained or not).
    fn auth_total(&self) -> u64 {
        self.state.auths_base + self.state.auths.len() as u64
    }

    /// The number the next authorization gets, and its id.
    pub fn next_authorization_id(&self) -> String {
        auth_id(self.auth_total() as usize)
    }

    /// The authorization a request id (of no particular client) was given, if it is
    /// still retained.
    pub fn find_request(&self, id: &str) -> Option<&AuthEntry> {
        self.find_key(request_key(id))
    }

    /// The authorization a request with this idempotency key (see
    /// [`TxFacts::request_key`]) was given, if it is still retained.
    pub fn find_key(&self, key: u128) -> Option<&AuthEntry> {
        let n = *self.by_key.get(&key)?;
        self.state.auths.get((n - self.state.auths_base) as usize)
    }

    /// Authorization numbers a replay found missing from the log.
    pub fn missing_authorizations(&self) -> u64 {
        self.state.missing
    }

    /// The entry of one of cardguard's authorization ids, if it is still retained.
    pub fn find_authorization(&self, authorization_id: &str) -> Option<&AuthEntry> {
        self.state.auths.get(self.auth_index(authorization_id)?)
    }

    /// Where in `auths` one of cardguard's authorization ids is, if it names a retained one
    /// whose event is known.
    fn auth_index(&self, authorization_id: &str) -> Option<usize> {
        let n = authorization_number(authorization_id)?;
        let i = (n >= self.state.auths_base && n < self.auth_total())
            .then(|| (n - self.state.auths_base) as usize)?;
        (self.state.auths.get(i)?.offset != MISSING).then_some(i)
    }

    /// The entry a label or reversal of `authorization_id` applies to. `None` when its
    /// number was given but the engine no longer has it: its event was set aside as damaged
    /// (`cardguard log repair`), or it left the retention (which a shorter
    /// `auth_retention_days` than when the event was logged makes happen earlier in a
    /// replay); what follows in the log must still replay. An error when the number was
    /// never given.
    fn entry_for(&mut self, authorization_id: &str) -> Result<Option<&mut AuthEntry>, EngineError> {
        let unknown = || EngineError::UnknownAuthorization(authorization_id.to_owned());
        let n = authorization_number(authorization_id).ok_or_else(unknown)?;
        if n >= self.auth_total() {
            return Err(unknown());
        }
        if n < self.state.auths_base {
            return Ok(None);
        }
        if n < self.auths_frozen {
            self.auth_changes.insert(n);
        }
        let entry = self
            .state
            .auths
            .get_mut((n - self.state.auths_base) as usize)
            .ok_or_else(unknown)?;
        Ok((entry.offset != MISSING).then_some(entry))
    }

    /// Drops the authorizations received longer than the retention before the engine's
    /// clock from the front: their retries are new requests and their labels unknown.
    /// Amortised O(1) per authorization.
    fn prune_auths(&mut self) {
        let days = self.config.auth_retention_days;
        if days == 0 {
            return;
        }
        let horizon = self.state.clock_ms - i64::from(days) * 86_400_000;
        while let Some(a) = self.state.auths.front() {
            if a.received_ms >= horizon {
                break;
            }
            if self.by_key.get(&a.key) == Some(&self.state.auths_base) {
                self.by_key.remove(&a.key);
            }
            self.state.auths.pop_front();
            self.state.auths_base += 1;
        }
    }

    pub fn card(&self, token: &CardToken) -> Option<&CardState> {
        self.state.cards.get(token)
    }

    pub fn context(&self, tx: &TxFacts) -> TxContext {
        TxContext::from_facts(tx, self.config.fx.base.exponent())
    }

    /// The features of `tx` from the current state.
    pub fn features(&self, tx: &TxFacts) -> Features {
        let ctx = self.context(tx);
        self.features_of(&ctx, &tx.card_token)
    }

    fn features_of(&self, ctx: &TxContext, token: &CardToken) -> Features {
        features::compute(
            ctx,
            self.state.cards.get(token),
            self.state.terminals.get(&ctx.terminal),
            ctx.device_key.and_then(|d| self.state.devices.get(&d)),
            &features::FeatureParams::from(&self.config),
        )
    }

    /// Decides an authorization from the current state. Changes nothing: the caller logs the
    /// record and then calls [`Engine::apply_auth`]. A decision that is not an approval
    /// carries the model's reasons, computed here; [`Engine::draft`] lets a caller compute
    /// them outside its lock instead.
    pub fn decide(&self, tx: &TxFacts, checks: &CardChecks) -> Outcome {
        match self.draft(tx, checks, None) {
            Draft::Final(o) => o,
            Draft::NeedsReasons(p) => {
                let reasons = p.explain();
                match self.draft(tx, checks, Some(&reasons)) {
                    Draft::Final(o) => o,
                    // Cannot happen: nothing changed in between.
                    Draft::NeedsReasons(_) => p.outcome,
                }
            }
        }
    }

    /// The decision without the model's reasons (the rules' own reasons are there): for
    /// backtests, which need the verdict of every transaction and no explanation.
    pub fn decide_unexplained(&self, tx: &TxFacts, checks: &CardChecks) -> Outcome {
        match self.draft(tx, checks, None) {
            Draft::Final(o) => o,
            Draft::NeedsReasons(p) => p.outcome,
        }
    }

    /// The decision if it needs nothing more, or what computing its reasons needs. With
    /// `reasons` computed from a previous draft, they are used when they explain exactly the
    /// features and model of this decision (the state did not change in between).
    pub fn draft(&self, tx: &TxFacts, checks: &CardChecks, reasons: Option<&Reasons>) -> Draft {
        let ctx = self.context(tx);
        let card = if checks.card_known() {
            self.state.cards.get(&tx.card_token)
        } else {
            None
        };
        let f = self.features_of(&ctx, &tx.card_token);
        let mut score = if checks.card_known() {
            self.scorer.score(&f, &ctx)
        } else {
            crate::score::Score {
                risk: 0,
                contributions: Vec::new(),
            }
        };
        let version = self.scorer.version();
        let known = checks.card_known();
        // One decision code for the rules in force and for a candidate in shadow mode.
        let run = |score: &crate::score::Score, model: &str, policy: &Policy| {
            decide::decide(
                &self.config,
                checks,
                card,
                &ctx,
                tx,
                &f,
                score,
                model,
                &decide::Rules {
                    policy,
                    lists: &self.lists,
                },
            )
        };
        let decide_now = |score: &crate::score::Score| {
            let mut o = run(score, version, &self.policy);
            if known {
                o.features = f.values.to_vec();
                if let Some(sh) = &self.shadow {
                    // The candidate's rules (and model); its reasons are not computed.
                    let own;
                    let (s_score, s_model) = match &sh.scorer {
                        Some(m) => {
                            own = crate::score::Score {
                                risk: m.score(&f, &ctx).risk,
                                contributions: Vec::new(),
                            };
                            (&own, m.version())
                        }
                        None => (score, version),
                    };
                    let so = run(s_score, s_model, &sh.policy);
                    o.shadow = Some(Box::new(decide::ShadowOutcome {
                        decision: so.decision,
                        response_code: so.response_code,
                        risk_score: so.risk_score,
                        ruleset_version: sh.policy.version(),
                        matched_rules: so.matched_rules,
                        model: so.model,
                    }));
                }
            }
            o
        };
        let o = decide_now(&score);
        if o.decision == Decision::Approve
            || !checks.card_known()
            || !score.contributions.is_empty()
            || !self.scorer.can_explain()
        {
            return Draft::Final(o);
        }
        // Not an approval: the reasons are worth their cost now.
        match reasons {
            Some(r) if r.explains(&f, &self.scorer) => {
                if r.contributions.is_empty() {
                    return Draft::Final(o);
                }
                score.contributions = r.contributions.clone();
                Draft::Final(decide_now(&score))
            }
            _ => Draft::NeedsReasons(Box::new(Pending {
                features: f,
                ctx,
                scorer: Arc::clone(&self.scorer),
                outcome: o,
            })),
        }
    }

    /// Applies a decided authorization whose event starts at `offset` in the log.
    /// Numbers are given in order; a replay that finds a number skipped (its event was set
    /// aside as damaged by `cardguard log repair`) keeps the number, unknown, and counts it.
    pub fn apply_auth(&mut self, rec: &AuthRecord, offset: u64) -> Result<(), EngineError> {
        let mut n = self.auth_total();
        let given = authorization_number(&rec.authorization_id)
            .filter(|&m| m >= n)
            .ok_or_else(|| EngineError::OutOfSequence(rec.authorization_id.clone()))?;
        let key = rec.tx.request_key();
        if self.by_key.contains_key(&key) {
            return Err(EngineError::DuplicateAuthorization(rec.tx.id.clone()));
        }
        while n < given {
            self.state.auths.push_back(AuthEntry {
                key: 0,
                offset: MISSING,
                ts_ms: 0,
                received_ms: i64::MIN,
                digest: 0,
                terminal: 0,
                card: rec.tx.card_token,
                card_known: false,
                label: Label::None,
                reversed: false,
                answer: Answer::None,
            });
            self.state.missing += 1;
            n += 1;
        }
        let ctx = self.context(&rec.tx);
        let known = rec.checks.card_known();
        // The server's clock moves the engine's; the request's own time never does, and the
        // state records no time past the engine's clock, so no request dated in the future
        // cuts a history, forgets an answered id or resets a counter.
        let now = ctx.now_ms;
        self.state.clock_ms = self.state.clock_ms.max(now);
        let at = ctx.ts_ms.min(self.state.clock_ms);
        self.by_key.insert(key, n);
        self.state.auths.push_back(AuthEntry {
            key,
            offset,
            ts_ms: at,
            received_ms: now,
            digest: rec.tx.digest_value(),
            terminal: ctx.terminal,
            card: rec.tx.card_token,
            card_known: known,
            label: Label::None,
            reversed: false,
            answer: Answer::None,
        });
        self.prune_auths();
        if !known {
            return Ok(());
        }
        let approved = rec.outcome.decision == Decision::Approve;
        let cfg = &self.config;
        let card = self.state.cards.entry_or_default(rec.tx.card_token);
        let card_heap_before = card.heap_bytes();
        if card.pin_locked_ms != 0 && !decide::pin_locked(card, now, cfg) {
            card.pin_locked_ms = 0;
            card.wrong_pin_streak = 0;
        }
        match rec.checks.pin {
            PinCheck::Correct if card.pin_locked_ms == 0 => card.wrong_pin_streak = 0,
            PinCheck::Wrong if card.pin_locked_ms == 0 => {
                card.wrong_pin_streak = card.wrong_pin_streak.saturating_add(1);
                if card.wrong_pin_streak >= cfg.pin_try_limit.max(1) {
                    card.pin_locked_ms = now;
                }
            }
            _ => {}
        }
        if rec.checks.csc == CscCheck::Mismatch {
            if card.wrong_csc_ms.len() >= 16 {
                card.wrong_csc_ms.remove(0);
            }
            card.wrong_csc_ms.push(now);
        }
        let record = TxRecord {
            t: secs(at),
            amount: ctx.amount_base.min(u64::from(u32::MAX)) as u32,
            merchant: ctx.merchant,
            country: ctx.country,
            flags: ctx.record_flags(approved),
        };
        if approved && let Some(i) = card.released_for(ctx.merchant, record.amount, now) {
            // The confirmed purchase came again: its release is used up.
            card.released.remove(i);
        }
        // Declined attempts count in the windows but teach nothing about the cardholder.
        card.push(record, ctx.device, approved);
        if let (true, Some(loc)) = (approved && ctx.channel.is_physical(), ctx.location)
            && card.last_fix.is_none_or(|f| f.at_ms <= at)
        {
            card.last_fix = Some(Fix {
                lat: loc.lat as f32,
                lon: loc.lon as f32,
                at_ms: at,
            });
        }
        card.last_ms = card.last_ms.max(at);
        self.heap.cards = (self.heap.cards + card.heap_bytes()).saturating_sub(card_heap_before);
        let t = self.state.terminals.entry_or_default(ctx.terminal);
        let before = t.heap_bytes();
        t.record_tx(at.div_euclid(86_400_000));
        self.heap.terminals = (self.heap.terminals + t.heap_bytes()).saturating_sub(before);
        if let Some(d) = ctx.device_key {
            let dev = self.state.devices.entry_or_default(d);
            let before = dev.heap_bytes();
            dev.record(ctx.card_hash, at);
            self.heap.devices = (self.heap.devices + dev.heap_bytes()).saturating_sub(before);
        }
        Ok(())
    }

    /// Applies one event of the log that starts at `offset`.
    pub fn apply(&mut self, event: &crate::record::Event, offset: u64) -> Result<(), EngineError> {
        match event {
            crate::record::Event::Auth(r) => self.apply_auth(r, offset),
            crate::record::Event::Label(l) => self.apply_label(l),
            crate::record::Event::Reversal(r) => self.apply_reversal(r).map(|_| ()),
            crate::record::Event::Answer(a) => self.apply_answer(a).map(|_| ()),
            crate::record::Event::Authentication(_)
            | crate::record::Event::CardStatus(_)
            | crate::record::Event::Coverage(_) => Ok(()),
        }
    }

    /// Applies a reversal: the original leaves the card's windows and amount profile and
    /// its terminal's count, as if it had not been made. What it showed stays: the card's
    /// last place and the merchants, countries and devices it was seen with (the card was
    /// there), its PIN and security-code failures, and its label. Returns false, changing
    /// nothing, when the authorization was reversed before.
    pub fn apply_reversal(&mut self, rev: &ReversalRecord) -> Result<bool, EngineError> {
        let Some(entry) = self.entry_for(&rev.authorization_id)? else {
            return Ok(false);
        };
        if entry.reversed {
            return Ok(false);
        }
        entry.reversed = true;
        let entry = *entry;
        self.state.clock_ms = self.state.clock_ms.max(rev.received.0);
        if !entry.card_known {
            return Ok(true);
        }
        let ctx = self.context(&rev.original);
        let record = TxRecord {
            t: secs(entry.ts_ms),
            amount: ctx.amount_base.min(u64::from(u32::MAX)) as u32,
            merchant: ctx.merchant,
            country: ctx.country,
            flags: ctx.record_flags(rev.approved),
        };
        if let Some(card) = self.state.cards.get_mut(&entry.card) {
            let before = card.heap_bytes();
            card.unpush(record);
            self.heap.cards = (self.heap.cards + card.heap_bytes()).saturating_sub(before);
        }
        if let Some(t) = self.state.terminals.get_mut(&entry.terminal) {
            t.untally_tx(entry.ts_ms.div_euclid(86_400_000));
        }
        Ok(true)
    }

    /// Applies the cardholder's answer to an alert, once per authorization (a second answer
    /// changes nothing and returns false). "It was me" labels it genuine and releases the
    /// purchase: the same merchant and amount again is approved for `release_minutes`. "It
    /// was not me" labels it fraud and blocks the card.
    pub fn apply_answer(&mut self, a: &AnswerRecord) -> Result<bool, EngineError> {
        let Some(entry) = self.entry_for(&a.authorization_id)? else {
            return Ok(false);
        };
        if entry.answer != Answer::None {
            return Ok(false);
        }
        entry.answer = if a.yes { Answer::Yes } else { Answer::No };
        let entry = *entry;
        let at = a.received.0;
        self.state.clock_ms = self.state.clock_ms.max(at);
        self.apply_label(&LabelRecord {
            authorization_id: a.authorization_id.clone(),
            fraud: !a.yes,
            ts: a.received,
            source: Some("cardholder".into()),
        })?;
        if !entry.card_known {
            return Ok(true);
        }
        let ctx = self.context(&a.original);
        let release_ms = i64::from(self.config.release_minutes) * 60_000;
        if let Some(card) = self.state.cards.get_mut(&entry.card) {
            let before = card.heap_bytes();
            if a.yes {
                card.release(crate::card::Release {
                    merchant: ctx.merchant,
                    amount: ctx.amount_base.min(u64::from(u32::MAX)) as u32,
                    until_ms: at + release_ms,
                });
            } else if card.blocked_ms == 0 {
                card.blocked_ms = at;
            }
            self.heap.cards = (self.heap.cards + card.heap_bytes()).saturating_sub(before);
        }
        Ok(true)
    }

    /// Applies a label. A label that repeats the current one changes nothing; a changed
    /// label moves the terminal's fraud count.
    pub fn apply_label(&mut self, label: &LabelRecord) -> Result<(), EngineError> {
        let Some(entry) = self.entry_for(&label.authorization_id)? else {
            return Ok(());
        };
        let new = if label.fraud {
            Label::Fraud
        } else {
            Label::Genuine
        };
        let old = entry.label;
        if old == new {
            return Ok(());
        }
        entry.label = new;
        let entry = *entry;
        let day = entry.ts_ms.div_euclid(86_400_000);
        if let Some(t) = self.state.terminals.get_mut(&entry.terminal) {
            match (old, new) {
                (_, Label::Fraud) => t.record_label(day, 1),
                (Label::Fraud, _) => t.record_label(day, -1),
                _ => {}
            }
        }
        if new == Label::Fraud
            && entry.card_known
            && let Some(c) = self.state.cards.get_mut(&entry.card)
        {
            c.fraud_labels = c.fraud_labels.saturating_add(1);
            c.fraud_label_ms = c.fraud_label_ms.max(label.ts.0);
        }
        Ok(())
    }

    /// Cards, terminals, devices and authorizations in state, without walking it.
    pub fn counts(&self) -> [(&'static str, u64); 4] {
        [
            ("cards", self.state.cards.len() as u64),
            ("terminals", self.state.terminals.len() as u64),
            ("devices", self.state.devices.len() as u64),
            ("authorizations", self.state.auths.len() as u64),
        ]
    }

    /// Counts and an estimate of the heap held, from counters kept as events apply: it
    /// never walks the cards (the map slots are summed over a fixed number of shards).
    pub fn stats(&self) -> EngineStats {
        let slot = |k: usize, v: usize| k + v + 8;
        let card_bytes = self.state.cards.capacity()
            * slot(
                std::mem::size_of::<CardToken>(),
                std::mem::size_of::<CardState>(),
            )
            + self.heap.cards;
        let term_bytes = self.state.terminals.capacity()
            * slot(8, std::mem::size_of::<TerminalState>())
            + self.heap.terminals;
        let dev_bytes = self.state.devices.capacity() * slot(8, std::mem::size_of::<DeviceState>())
            + self.heap.devices;
        let auth_bytes = self.state.auths.heap_bytes() + self.by_key.capacity() * slot(16, 8);
        EngineStats {
            cards: self.state.cards.len(),
            terminals: self.state.terminals.len(),
            devices: self.state.devices.len(),
            authorizations: self.auth_total() as usize,
            authorizations_missing: self.state.missing,
            authorizations_retained: self.state.auths.len(),
            card_bytes,
            total_bytes: card_bytes + term_bytes + dev_bytes + auth_bytes,
        }
    }

    /// The state, for a snapshot.
    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// The state as it is now, sharing every shard with the live state: O(shards), so it
    /// can be taken under a lock and encoded after the lock is released. A later write to a
    /// shard copies that shard for the live state and leaves this one as it was. With it,
    /// what changed since the freeze before (for an incremental snapshot); the record of
    /// changes starts again.
    pub fn freeze(&mut self) -> Frozen {
        let total = self.auth_total();
        let changes = Changes {
            cards: self.state.cards.take_changed(),
            terminals: self.state.terminals.take_changed(),
            devices: self.state.devices.take_changed(),
            auths: std::mem::take(&mut self.auth_changes),
            auths_from: std::mem::replace(&mut self.auths_frozen, total),
        };
        Frozen {
            state: self.state.clone(),
            changes,
        }
    }

    /// Entries changed since the last freeze (authorizations appended not counted).
    pub fn changes_pending(&self) -> usize {
        self.state.cards.changed_len()
            + self.state.terminals.changed_len()
            + self.state.devices.changed_len()
            + self.auth_changes.len()
    }

    /// Replaces the state with one read from a snapshot: what changes from here on is what
    /// the next freeze reports.
    pub fn restore(&mut self, mut st: EngineState) {
        st.cards.take_changed();
        st.terminals.take_changed();
        st.devices.take_changed();
        self.auth_changes = FastSet::default();
        self.auths_frozen = st.auths_base + st.auths.len() as u64;
        let base = st.auths_base;
        self.by_key = st
            .auths
            .iter()
            .enumerate()
            .map(|(i, a)| (a.key, base + i as u64))
            .collect();
        self.heap = HeapBytes {
            cards: st.cards.values().map(CardState::heap_bytes).sum(),
            terminals: st.terminals.values().map(TerminalState::heap_bytes).sum(),
            devices: st.devices.values().map(DeviceState::heap_bytes).sum(),
        };
        self.state = st;
    }
}
