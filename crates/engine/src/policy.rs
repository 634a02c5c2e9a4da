//! The risk policy as data: the attributes rules may name (the authorization, the card's
//! features, the model's score), the active ruleset with its version, and how a verdict
//! becomes an outcome with the deciding rules as its reasons. The default ruleset
//! (`default_rules.toml`) does what the configured thresholds did before rules existed.
//! A decision keeps what it saw (features, score, list hits), so that [`Policy::replay`]
//! evaluates the same rules on a recorded authorization and reproduces its verdict.

use crate::decide::{CardChecks, CscCheck, PinCheck};
use crate::features::{FEATURE_NAMES, N_FEATURES, TxContext, idx};
use crate::lists::{ListSet, check_list_use};
use crate::record::{AuthRecord, TxFacts};
use cardguard_core::{Reason, ReasonCode};
use cardguard_rules::{Action, Lists, Record, Ruleset, RulesetError, Schema, Type, Value, Verdict};
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::sync::LazyLock;

/// The ruleset a new data directory starts with.
pub const DEFAULT_RULES: &str = include_str!("default_rules.toml");

/// What rules see of one authorization.
pub struct Inputs<'a> {
    pub facts: &'a TxFacts,
    pub ctx: &'a TxContext,
    pub checks: &'a CardChecks,
    pub features: &'a [f32; N_FEATURES],
    pub risk: u8,
    /// The card token and the device's IP address as text, as lists hold them.
    card_hex: [u8; 32],
    ip: Option<String>,
}

impl<'a> Inputs<'a> {
    pub fn new(
        facts: &'a TxFacts,
        ctx: &'a TxContext,
        checks: &'a CardChecks,
        features: &'a [f32; N_FEATURES],
        risk: u8,
    ) -> Inputs<'a> {
        Inputs {
            facts,
            ctx,
            checks,
            features,
            risk,
            card_hex: facts.card_token.to_hex(),
            ip: facts.device_ip.map(|ip| ip.to_string()),
        }
    }

    fn card(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.card_hex).unwrap_or_default()
    }
}

fn num(x: f32) -> Value<'static> {
    Value::Number(f64::from(x))
}

/// A feature that is -1 when unknown (no previous place, no profile yet).
fn num_or_missing(x: f32) -> Value<'static> {
    if x == -1.0 { Value::Missing } else { num(x) }
}

fn text<'a>(s: Option<&'a str>) -> Value<'a> {
    s.map_or(Value::Missing, Value::Text)
}

/// Features that are -1 when unknown.
const MAY_BE_MISSING: [usize; 9] = [
    idx::KM_FROM_LAST,
    idx::KMH_FROM_LAST,
    idx::KM_FROM_HOME,
    idx::SECS_SINCE_PREV,
    idx::DAYS_SINCE_FRAUD_LABEL,
    idx::AMOUNT_TO_PROFILE,
    idx::MAX_7D_TO_PROFILE,
    idx::MEAN_7D_TO_30D,
    idx::AMOUNT_TO_MAX_30D,
];

macro_rules! attributes {
    ($($name:literal $ty:ident |$i:ident| $get:expr,)*) => {
        /// The named attributes, in slot order (the engine's features follow them).
        const NAMED: &[(&str, Type)] = &[$(($name, Type::$ty),)*];

        fn named_values<'v>(inp: &'v Inputs<'_>, out: &mut Slots<'v, '_>) {
            $(out.push({ let $i = inp; $get });)*
        }
    };
}

attributes! {
    "amount" Number |i| num(i.features[idx::AMOUNT]),
    "currency" Text |i| Value::Text(i.facts.amount.currency.code()),
    "mcc" Number |i| Value::Number(f64::from(i.facts.merchant.mcc.code())),
    "merchant_id" Text |i| Value::Text(&i.facts.merchant.id),
    "merchant_name" Text |i| Value::Text(&i.facts.merchant.name),
    "terminal_id" Text |i| Value::Text(&i.facts.merchant.terminal_id),
    "merchant_country" Text |i| Value::Text(i.facts.merchant.country.as_str()),
    "merchant_city" Text |i| Value::Text(&i.facts.merchant.city),
    "card_country" Text |i| text(i.facts.home_country.as_ref().map(|c| c.as_str())),
    "ip_country" Text |i| text(i.facts.ip_country.as_ref().map(|c| c.as_str())),
    "ip" Text |i| text(i.ip.as_deref()),
    "device_id" Text |i| text(i.facts.device_id.as_deref()),
    "email_domain" Text |i| text(i.facts.email_domain.as_deref()),
    "authenticated" Bool |i| Value::Bool(i.facts.authenticated.is_some()),
    "card" Text |i| Value::Text(i.card()),
    "channel" Text |i| Value::Text(i.facts.channel.as_str()),
    "type" Text |i| Value::Text(i.facts.tx_type.as_str()),
    "csc_result" Text |i| Value::Text(match i.checks.csc {
        CscCheck::NotPresented => "not_presented",
        CscCheck::Match => "match",
        CscCheck::Mismatch => "mismatch",
        CscCheck::Unverifiable => "unverifiable",
    }),
    "pin_result" Text |i| Value::Text(match i.checks.pin {
        PinCheck::NotPresented => "not_presented",
        PinCheck::Correct => "correct",
        PinCheck::Wrong => "wrong",
        PinCheck::Unverifiable => "unverifiable",
    }),
    "risk_score" Number |i| Value::Number(f64::from(i.risk)),
    "local_hour" Number |i| Value::Number(f64::from(i.ctx.local_hour)),
    "card_tx_count_1h" Number |i| num(i.features[idx::CARD_COUNT_1H]),
    "card_amount_sum_24h" Number |i| num(i.features[idx::CARD_SUM_24H]),
    "distance_from_last_km" Number |i| num_or_missing(i.features[idx::KM_FROM_LAST]),
    "speed_from_last_kmh" Number |i| num_or_missing(i.features[idx::KMH_FROM_LAST]),
    "distance_from_home_km" Number |i| num_or_missing(i.features[idx::KM_FROM_HOME]),
    "minutes_since_last" Number |i| match num_or_missing(i.features[idx::SECS_SINCE_PREV]) {
        Value::Number(s) => Value::Number(s / 60.0),
        v => v,
    },
    "is_new_device" Bool |i| Value::Bool(i.features[idx::NEW_DEVICE] > 0.5),
    "is_new_merchant" Bool |i| Value::Bool(i.features[idx::NEW_MERCHANT] > 0.5),
    "is_new_country" Bool |i| Value::Bool(i.features[idx::NEW_COUNTRY] > 0.5),
    "is_foreign" Bool |i| Value::Bool(i.features[idx::FOREIGN] > 0.5),
    "is_night" Bool |i| Value::Bool(i.features[idx::IS_NIGHT] > 0.5),
    "is_weekend" Bool |i| Value::Bool(i.features[idx::IS_WEEKEND] > 0.5),
    "is_high_risk_mcc" Bool |i| Value::Bool(i.features[idx::MCC_HIGH_RISK] > 0.5),
}

/// The engine's features that rules may also name, by their own names (the ones a named
/// attribute does not already give).
static FEATURE_SLOTS: LazyLock<Vec<usize>> = LazyLock::new(|| {
    (0..N_FEATURES)
        .filter(|&k| !NAMED.iter().any(|(n, _)| *n == FEATURE_NAMES[k]))
        .collect()
});

/// Every attribute rules may name, with its type.
pub static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    let mut s = Schema::new();
    for (n, t) in NAMED {
        s = s.with(n, *t);
    }
    for &k in FEATURE_SLOTS.iter() {
        s = s.with(FEATURE_NAMES[k], Type::Number);
    }
    s
});

/// Room for every attribute's value on the stack.
const MAX_ATTRIBUTES: usize = 48 + N_FEATURES;
const _: () = assert!(NAMED.len() <= 48);

/// The values of `inp` in slot order, in `buf`.
fn values<'v, 'b>(
    inp: &'v Inputs<'_>,
    buf: &'b mut [Value<'v>; MAX_ATTRIBUTES],
) -> &'b [Value<'v>] {
    let mut out = Slots { buf, len: 0 };
    named_values(inp, &mut out);
    for &k in FEATURE_SLOTS.iter() {
        out.push(if MAY_BE_MISSING.contains(&k) {
            num_or_missing(inp.features[k])
        } else {
            num(inp.features[k])
        });
    }
    let Slots { buf, len } = out;
    &buf[..len]
}

/// A fixed buffer filled in order.
struct Slots<'a, 'b> {
    buf: &'b mut [Value<'a>; MAX_ATTRIBUTES],
    len: usize,
}

impl<'a> Slots<'a, '_> {
    fn push(&mut self, v: Value<'a>) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = v;
            self.len += 1;
        }
    }
}

/// A list that held a value a rule looked up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListHit {
    pub list: String,
    pub value: String,
}

/// What the rules said of one authorization.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judgement {
    pub action: Option<Action>,
    /// The matched rules, by their place in the ruleset.
    pub matched: Vec<usize>,
    pub hits: Vec<ListHit>,
}

/// A ruleset in force: its version and its compiled rules.
#[derive(Debug, Clone)]
pub struct Policy {
    version: u64,
    ruleset: Ruleset,
    reasons: Vec<ReasonCode>,
}

struct LiveLists<'a> {
    names: &'a [String],
    set: &'a ListSet,
    now_ms: i64,
    hits: RefCell<Vec<ListHit>>,
}

impl Lists for LiveLists<'_> {
    fn contains(&self, list: usize, v: &Value<'_>) -> bool {
        let (Value::Text(t), Some(name)) = (v, self.names.get(list)) else {
            return false;
        };
        let hit = self
            .set
            .get(name)
            .is_some_and(|l| l.contains(t, self.now_ms));
        if hit {
            self.hits.borrow_mut().push(ListHit {
                list: name.clone(),
                value: (*t).to_owned(),
            });
        }
        hit
    }
}

/// The lists as a decision recorded them: what was hit then is hit now.
struct RecordedLists<'a> {
    names: &'a [String],
    hits: &'a [ListHit],
}

impl Lists for RecordedLists<'_> {
    fn contains(&self, list: usize, v: &Value<'_>) -> bool {
        let (Value::Text(t), Some(name)) = (v, self.names.get(list)) else {
            return false;
        };
        self.hits.iter().any(|h| h.list == *name && h.value == *t)
    }
}

/// The reason codes a rule may give.
fn reason_names() -> Vec<&'static str> {
    ReasonCode::ALL.iter().map(|c| c.as_str()).collect()
}

impl Policy {
    /// Compiles a ruleset as version `version`, or every error in it.
    pub fn compile(text: &str, version: u64) -> Result<Policy, Vec<RulesetError>> {
        let ruleset = Ruleset::parse(text, &SCHEMA, &check_list_use, &reason_names())?;
        let reasons = ruleset
            .sources()
            .iter()
            .map(|s| {
                s.reason
                    .as_deref()
                    .and_then(ReasonCode::parse)
                    .unwrap_or(ReasonCode::Rule)
            })
            .collect();
        Ok(Policy {
            version,
            ruleset,
            reasons,
        })
    }

    /// The default ruleset as version 0 (before anything was stored).
    pub fn default_policy() -> Policy {
        // The default ruleset is part of the program and tested to compile.
        Policy::compile(DEFAULT_RULES, 0).unwrap_or_else(|e| panic!("default ruleset: {e:?}"))
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The same rules under another version number (a ruleset is compiled before it is
    /// stored and numbered).
    pub fn numbered(mut self, version: u64) -> Policy {
        self.version = version;
        self
    }

    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    /// The rules' verdict on `inp` with `lists` answering for the lists.
    fn evaluate(&self, inp: &Inputs<'_>, lists: &dyn Lists) -> Verdict {
        let mut buf = [Value::Missing; MAX_ATTRIBUTES];
        self.ruleset.evaluate(
            &Record {
                values: values(inp, &mut buf),
            },
            lists,
        )
    }

    /// What the rules say of `inp`, looking lists up in `lists` at `now_ms`.
    pub fn judge(&self, inp: &Inputs<'_>, lists: &ListSet, now_ms: i64) -> Judgement {
        let live = LiveLists {
            names: self.ruleset.lists(),
            set: lists,
            now_ms,
            hits: RefCell::new(Vec::new()),
        };
        let v = self.evaluate(inp, &live);
        Judgement {
            action: v.action,
            matched: v.matched,
            hits: live.hits.into_inner(),
        }
    }

    /// What the rules say of `inp` given the list hits a decision recorded.
    pub fn replay(&self, inp: &Inputs<'_>, hits: &[ListHit]) -> Judgement {
        let recorded = RecordedLists {
            names: self.ruleset.lists(),
            hits,
        };
        let v = self.evaluate(inp, &recorded);
        Judgement {
            action: v.action,
            matched: v.matched,
            hits: hits.to_vec(),
        }
    }

    /// The rules' verdict on a recorded authorization, from what its decision saw (the
    /// features, the score, the list hits): none when the record kept no features (a
    /// card-data failure, or an event of a version before rules).
    pub fn replay_record(&self, rec: &AuthRecord, base_exponent: u8) -> Option<Judgement> {
        let features: [f32; N_FEATURES] = rec.outcome.features.as_slice().try_into().ok()?;
        let ctx = TxContext::from_facts(&rec.tx, base_exponent);
        let inp = Inputs::new(
            &rec.tx,
            &ctx,
            &rec.checks,
            &features,
            rec.outcome.risk_score,
        );
        Some(self.replay(&inp, &rec.outcome.list_hits))
    }

    /// The ids of the matched rules.
    pub fn ids(&self, matched: &[usize]) -> Vec<String> {
        matched
            .iter()
            .filter_map(|&i| self.ruleset.sources().get(i))
            .map(|s| s.id.clone())
            .collect()
    }

    /// The reasons of the rules that decided: the matched rules whose action is the
    /// verdict's. A reason's detail says what the rule saw where its code has numbers to
    /// show, and is the rule's description otherwise.
    pub fn reasons(&self, j: &Judgement, inp: &Inputs<'_>, window_minutes: u32) -> Vec<Reason> {
        let Some(action) = j.action else {
            return Vec::new();
        };
        j.matched
            .iter()
            .filter_map(|&i| {
                let c = self.ruleset.compiled().get(i)?;
                (c.action == action).then_some(i)
            })
            .filter_map(|i| {
                let src = self.ruleset.sources().get(i)?;
                let code = self.reasons.get(i).copied().unwrap_or(ReasonCode::Rule);
                let f = inp.features;
                let detail = match code {
                    ReasonCode::ImpossibleTravel if f[idx::KM_FROM_LAST] >= 0.0 => {
                        let minutes = f[idx::KM_FROM_LAST] / f[idx::KMH_FROM_LAST].max(1e-3) * 60.0;
                        format!(
                            "{:.0} km from the previous card-present transaction {:.0} minutes earlier ({:.0} km/h)",
                            f[idx::KM_FROM_LAST],
                            minutes,
                            f[idx::KMH_FROM_LAST]
                        )
                    }
                    ReasonCode::CardTesting => {
                        let this = inp.checks.csc == CscCheck::Mismatch;
                        format!(
                            "{} wrong security codes in the last {window_minutes} minutes{}",
                            f[idx::WRONG_CSC_10M] as u32 + u32::from(this),
                            if this { ", this one included" } else { "" }
                        )
                    }
                    _ if !src.description.is_empty() => src.description.clone(),
                    _ => src.rule.clone(),
                };
                Some(Reason {
                    code,
                    detail,
                    rule: Some(src.id.clone()),
                })
            })
            .collect()
    }

    /// Whether a matched rule declines.
    pub fn declines(&self, j: &Judgement) -> bool {
        j.matched.iter().any(|&i| {
            self.ruleset
                .compiled()
                .get(i)
                .is_some_and(|c| c.action == Action::Decline)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_ruleset_compiles_and_names_the_issue_attributes() {
        let p = Policy::default_policy();
        assert_eq!(p.version(), 0);
        assert!(p.ruleset().sources().len() >= 5);
        for a in [
            "amount",
            "currency",
            "mcc",
            "merchant_id",
            "merchant_country",
            "card_country",
            "ip_country",
            "channel",
            "type",
            "risk_score",
            "card_tx_count_1h",
            "card_amount_sum_24h",
            "distance_from_last_km",
            "minutes_since_last",
            "is_new_device",
            "is_new_merchant",
            "terminal_fraud_rate_7d",
            "card_count_5m",
        ] {
            assert!(SCHEMA.get(a).is_some(), "{a}");
        }
        assert_eq!(SCHEMA.len(), NAMED.len() + FEATURE_SLOTS.len());
        assert!(SCHEMA.len() <= MAX_ATTRIBUTES);
    }

    #[test]
    fn rules_are_type_checked_against_the_schema_and_lists_by_kind() {
        let bad = "[[rules]]\nid = \"x\"\nrule = \"decline if :amount: > 'big' or :merchant_id: in @blocked_ips or :nope: = 1\"\n";
        let e = Policy::compile(bad, 1).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
        let ok = "[[rules]]\nid = \"x\"\nreason = \"HIGH_RISK_MCC\"\nrule = \"decline if :mcc: in (7995, 5967) or :ip: in @blocked_ips\"\n";
        assert!(Policy::compile(ok, 1).is_ok());
    }
}
