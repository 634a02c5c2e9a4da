//! The rules language analysts change cardguard's decisions with, in the form Stripe Radar
//! made familiar: `<action> if <condition>`, the actions `challenge`, `approve`, `decline`
//! and `hold` (taken in that precedence when several rules match), conditions over typed
//! attributes (`:amount: > 100000`), `and`/`or`/`not`, parentheses, `in (…)`, `in @list`
//! and `starts_with`. A rule is parsed with pest (errors give the line, the column and what
//! was expected), type-checked against a [`Schema`] (an amount is not compared with text; an
//! unknown attribute or list is an error, never a silent false), and compiled to a tree of
//! typed nodes over value slots, so that 200 rules evaluate in about a microsecond. Pure: no
//! IO; the caller fills a [`Record`] and says what lists contain ([`Lists`]).

mod ruleset;

pub use ruleset::{RuleSource, Ruleset, RulesetError, Verdict};

use pest::Parser;
use pest::iterators::Pair;

#[derive(pest_derive::Parser)]
#[grammar = "grammar.pest"]
struct RuleParser;

/// What a rule does when it matches, in precedence order: a matching `challenge` rule wins
/// over a matching `approve`, which wins over `decline`, then `hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Challenge,
    Approve,
    Decline,
    Hold,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Challenge => "challenge",
            Action::Approve => "approve",
            Action::Decline => "decline",
            Action::Hold => "hold",
        }
    }
}

/// The type of an attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Number,
    Text,
    Bool,
}

impl Type {
    fn name(self) -> &'static str {
        match self {
            Type::Number => "a number",
            Type::Text => "text",
            Type::Bool => "true or false",
        }
    }
}

/// The attributes rules may name, each with its type and its slot in a [`Record`].
#[derive(Debug, Clone, Default)]
pub struct Schema {
    attributes: Vec<(String, Type)>,
}

impl Schema {
    pub fn new() -> Schema {
        Schema::default()
    }

    /// Adds an attribute; its slot is the number of attributes before it.
    pub fn with(mut self, name: &str, ty: Type) -> Schema {
        self.attributes.push((name.to_owned(), ty));
        self
    }

    /// The slot and type of an attribute.
    pub fn get(&self, name: &str) -> Option<(usize, Type)> {
        self.attributes
            .iter()
            .position(|(n, _)| n == name)
            .map(|i| (i, self.attributes[i].1))
    }

    pub fn len(&self) -> usize {
        self.attributes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.attributes.iter().map(|(n, _)| n.as_str())
    }
}

/// The value of an attribute for one authorization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    Text(&'a str),
    Bool(bool),
    /// Not known for this authorization (no device, no previous place): every comparison
    /// with it is false, and its negation true.
    Missing,
}

/// The values of one authorization, by the schema's slots.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    pub values: &'a [Value<'a>],
}

/// What lists contain, for `in @name`.
pub trait Lists {
    /// Whether list number `list` (in the order the ruleset names them, see
    /// [`Ruleset::lists`]) holds `value`.
    fn contains(&self, list: usize, value: &Value<'_>) -> bool;
}

/// No lists at all.
pub struct NoLists;

impl Lists for NoLists {
    fn contains(&self, _: usize, _: &Value<'_>) -> bool {
        false
    }
}

/// A position in the rule's text, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Why a rule was refused: where, and what was wrong or expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {message}", at.line, at.column)]
pub struct RuleError {
    pub at: Position,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A compiled condition.
#[derive(Debug, Clone)]
enum Cond {
    And(Box<[Cond]>),
    Or(Box<[Cond]>),
    Not(Box<Cond>),
    /// `lo <= x <= hi`: every comparison but `!=` (`> v` is `>= next_up(v)`), one test.
    NumRange {
        slot: usize,
        lo: f64,
        hi: f64,
    },
    NumNe {
        slot: usize,
        v: f64,
    },
    Text {
        slot: usize,
        eq: bool,
        v: Box<str>,
    },
    Bool {
        slot: usize,
        v: bool,
    },
    NumIn {
        slot: usize,
        set: Box<[f64]>,
    },
    TextIn {
        slot: usize,
        set: Box<[Box<str>]>,
    },
    StartsWith {
        slot: usize,
        prefix: Box<str>,
    },
    InList {
        slot: usize,
        list: usize,
    },
}

impl Cond {
    fn eval(&self, r: &Record<'_>, lists: &dyn Lists) -> bool {
        let at = |slot: &usize| r.values.get(*slot).copied().unwrap_or(Value::Missing);
        match self {
            Cond::NumRange { slot, lo, hi } => {
                matches!(r.values.get(*slot), Some(Value::Number(x)) if *x >= *lo && *x <= *hi)
            }
            Cond::And(cs) => {
                for c in cs.iter() {
                    if !c.eval(r, lists) {
                        return false;
                    }
                }
                true
            }
            Cond::Or(cs) => {
                for c in cs.iter() {
                    if c.eval(r, lists) {
                        return true;
                    }
                }
                false
            }
            Cond::Not(c) => !c.eval(r, lists),
            Cond::NumNe { slot, v } => {
                matches!(r.values.get(*slot), Some(Value::Number(x)) if *x != *v)
            }
            Cond::Text { slot, eq, v } => match at(slot) {
                Value::Text(x) => (x == &**v) == *eq,
                _ => false,
            },
            Cond::Bool { slot, v } => matches!(at(slot), Value::Bool(x) if x == *v),
            Cond::NumIn { slot, set } => {
                matches!(at(slot), Value::Number(x) if set.contains(&x))
            }
            Cond::TextIn { slot, set } => {
                matches!(at(slot), Value::Text(x) if set.iter().any(|s| &**s == x))
            }
            Cond::StartsWith { slot, prefix } => {
                matches!(at(slot), Value::Text(x) if x.starts_with(&**prefix))
            }
            Cond::InList { slot, list } => {
                let v = at(slot);
                v != Value::Missing && lists.contains(*list, &v)
            }
        }
    }
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub action: Action,
    cond: Cond,
}

impl Compiled {
    /// Whether the rule's condition holds for `r`.
    pub fn matches(&self, r: &Record<'_>, lists: &dyn Lists) -> bool {
        self.cond.eval(r, lists)
    }

    /// A test the rule cannot match without passing: its condition's first conjunct when
    /// that is a numeric range or a true-or-false attribute.
    pub(crate) fn guard(&self) -> Guard {
        let mut c = &self.cond;
        while let Cond::And(cs) = c {
            match cs.first() {
                Some(first) => c = first,
                None => return Guard::None,
            }
        }
        match c {
            Cond::NumRange { slot, lo, hi } => Guard::Num {
                slot: *slot,
                lo: *lo,
                hi: *hi,
            },
            Cond::Bool { slot, v } => Guard::Bool { slot: *slot, v: *v },
            _ => Guard::None,
        }
    }
}

/// A cheap necessary condition of a rule, checked in a tight loop before the rule's tree.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Guard {
    None,
    Num { slot: usize, lo: f64, hi: f64 },
    Bool { slot: usize, v: bool },
}

impl Guard {
    #[inline]
    pub(crate) fn passes(&self, r: &Record<'_>) -> bool {
        match *self {
            Guard::None => true,
            Guard::Num { slot, lo, hi } => {
                matches!(r.values.get(slot), Some(Value::Number(x)) if *x >= lo && *x <= hi)
            }
            Guard::Bool { slot, v } => {
                matches!(r.values.get(slot), Some(Value::Bool(x)) if *x == v)
            }
        }
    }
}

/// Whether `:attribute: in @list` may be written: `Ok`, or why not (an unknown list, a
/// list of IP ranges for a merchant id). The caller knows its lists and what they hold.
pub type ListCheck<'a> = &'a dyn Fn(&str, &str) -> Result<(), String>;

/// Compiles one rule against `schema`; the lists it names are added to `lists` (their
/// numbers are their places there) when `known` accepts them.
pub fn compile(
    text: &str,
    schema: &Schema,
    known: ListCheck<'_>,
    lists: &mut Vec<String>,
) -> Result<Compiled, Vec<RuleError>> {
    let mut pairs = RuleParser::parse(Rule::rule, text).map_err(|e| vec![parse_error(&e)])?;
    let rule = pairs.next().ok_or_else(|| {
        vec![RuleError {
            at: Position { line: 1, column: 1 },
            message: "empty rule".into(),
        }]
    })?;
    let mut inner = rule.into_inner();
    let mut errors = Vec::new();
    let action = match inner.next().map(|p| p.as_str()) {
        Some("challenge") => Action::Challenge,
        Some("approve") => Action::Approve,
        Some("decline") => Action::Decline,
        _ => Action::Hold,
    };
    let cond = match inner.find(|p| p.as_rule() == Rule::expr) {
        Some(expr) => {
            let mut c = Compiler {
                schema,
                known,
                lists,
                errors: &mut errors,
            };
            c.expr(expr)
        }
        None => None,
    };
    match cond {
        Some(cond) if errors.is_empty() => Ok(Compiled { action, cond }),
        _ => Err(errors),
    }
}

fn position(p: &Pair<'_, Rule>) -> Position {
    let (line, column) = p.line_col();
    Position { line, column }
}

fn parse_error(e: &pest::error::Error<Rule>) -> RuleError {
    let (line, column) = match e.line_col {
        pest::error::LineColLocation::Pos(p) | pest::error::LineColLocation::Span(p, _) => p,
    };
    let message = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut want: Vec<&str> = positives.iter().map(|r| describe(*r)).collect();
            want.sort_unstable();
            want.dedup();
            if want.is_empty() {
                "unexpected text".into()
            } else {
                format!("expected {}", want.join(" or "))
            }
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    RuleError {
        at: Position { line, column },
        message,
    }
}

/// What a grammar rule is, as an analyst would call it.
fn describe(r: Rule) -> &'static str {
    match r {
        Rule::action => "an action (challenge, approve, decline, hold)",
        Rule::attribute | Rule::predicate | Rule::primary | Rule::factor | Rule::term => {
            "an attribute such as :amount:"
        }
        Rule::expr => "a condition",
        Rule::if_kw => "if",
        Rule::or_op | Rule::and_op => "and, or",
        Rule::not_op => "not",
        Rule::cmp_op | Rule::comparison => "a comparison (=, !=, <, <=, >, >=)",
        Rule::in_set | Rule::in_list | Rule::in_kw => "in",
        Rule::starts_with | Rule::starts_kw => "starts_with",
        Rule::literal => "a value (a number, 'text', true or false)",
        Rule::number => "a number",
        Rule::string | Rule::text => "'text'",
        Rule::boolean => "true or false",
        Rule::list_ref => "a list such as @blocked_merchants",
        Rule::ident | Rule::ident_char => "a name",
        Rule::WHITESPACE => "a space",
        Rule::EOI => "the end of the rule",
        Rule::rule => "a rule",
    }
}

/// A literal as written.
enum Lit {
    Num(f64),
    Text(String),
    Bool(bool),
}

impl Lit {
    fn ty(&self) -> Type {
        match self {
            Lit::Num(_) => Type::Number,
            Lit::Text(_) => Type::Text,
            Lit::Bool(_) => Type::Bool,
        }
    }
}

struct Compiler<'a> {
    schema: &'a Schema,
    known: ListCheck<'a>,
    lists: &'a mut Vec<String>,
    errors: &'a mut Vec<RuleError>,
}

impl Compiler<'_> {
    fn error(&mut self, at: Position, message: String) {
        self.errors.push(RuleError { at, message });
    }

    fn expr(&mut self, p: Pair<'_, Rule>) -> Option<Cond> {
        let mut terms = Vec::new();
        let mut ok = true;
        for t in p.into_inner().filter(|x| x.as_rule() == Rule::term) {
            match self.term(t) {
                Some(c) => terms.push(c),
                None => ok = false,
            }
        }
        (ok && !terms.is_empty()).then(|| {
            if terms.len() == 1 {
                terms.pop().unwrap_or(Cond::Or(Box::new([])))
            } else {
                Cond::Or(terms.into_boxed_slice())
            }
        })
    }

    fn term(&mut self, p: Pair<'_, Rule>) -> Option<Cond> {
        let mut factors = Vec::new();
        let mut ok = true;
        for f in p.into_inner().filter(|x| x.as_rule() == Rule::factor) {
            match self.factor(f) {
                Some(c) => factors.push(c),
                None => ok = false,
            }
        }
        (ok && !factors.is_empty()).then(|| {
            if factors.len() == 1 {
                factors.pop().unwrap_or(Cond::And(Box::new([])))
            } else {
                Cond::And(factors.into_boxed_slice())
            }
        })
    }

    fn factor(&mut self, p: Pair<'_, Rule>) -> Option<Cond> {
        let mut inner = p.into_inner();
        let first = inner.next()?;
        match first.as_rule() {
            Rule::not_op => {
                let f = inner.next()?;
                self.factor(f).map(|c| Cond::Not(Box::new(c)))
            }
            _ => self.primary(first),
        }
    }

    fn primary(&mut self, p: Pair<'_, Rule>) -> Option<Cond> {
        let inner = p.into_inner().next()?;
        match inner.as_rule() {
            Rule::expr => self.expr(inner),
            _ => self.predicate(inner),
        }
    }

    fn literal(p: Pair<'_, Rule>) -> Lit {
        let v = p.into_inner().next();
        match v.as_ref().map(|x| x.as_rule()) {
            Some(Rule::number) => Lit::Num(
                v.as_ref()
                    .and_then(|x| x.as_str().parse().ok())
                    .unwrap_or(f64::NAN),
            ),
            Some(Rule::string) => Lit::Text(
                v.and_then(|x| x.into_inner().next())
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default(),
            ),
            _ => Lit::Bool(v.is_some_and(|x| x.as_str() == "true")),
        }
    }

    fn predicate(&mut self, p: Pair<'_, Rule>) -> Option<Cond> {
        let mut inner = p.into_inner();
        let attr = inner.next()?;
        let at = position(&attr);
        let name = attr.clone().into_inner().next()?.as_str().to_owned();
        let Some((slot, ty)) = self.schema.get(&name) else {
            self.error(at, format!("unknown attribute :{name}:"));
            return None;
        };
        let Some(op) = inner.next() else {
            // An attribute alone: a true-or-false one that holds.
            if ty != Type::Bool {
                self.error(
                    at,
                    format!(":{name}: is {}; compare it with a value", ty.name()),
                );
                return None;
            }
            return Some(Cond::Bool { slot, v: true });
        };
        let op_at = position(&op);
        match op.as_rule() {
            Rule::comparison => {
                let mut c = op.into_inner();
                let cmp = match c.next()?.as_str() {
                    "=" => Cmp::Eq,
                    "!=" => Cmp::Ne,
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    ">" => Cmp::Gt,
                    _ => Cmp::Ge,
                };
                let lit_pair = c.next()?;
                let lit_at = position(&lit_pair);
                let lit = Self::literal(lit_pair);
                if lit.ty() != ty {
                    self.error(
                        lit_at,
                        format!(
                            ":{name}: is {}; it cannot be compared with {}",
                            ty.name(),
                            lit.ty().name()
                        ),
                    );
                    return None;
                }
                match (lit, cmp) {
                    (Lit::Num(v), Cmp::Ne) => Some(Cond::NumNe { slot, v }),
                    (Lit::Num(v), cmp) => {
                        let (lo, hi) = match cmp {
                            Cmp::Eq => (v, v),
                            Cmp::Lt => (f64::NEG_INFINITY, v.next_down()),
                            Cmp::Le => (f64::NEG_INFINITY, v),
                            Cmp::Gt => (v.next_up(), f64::INFINITY),
                            _ => (v, f64::INFINITY),
                        };
                        Some(Cond::NumRange { slot, lo, hi })
                    }
                    (Lit::Text(v), Cmp::Eq | Cmp::Ne) => Some(Cond::Text {
                        slot,
                        eq: cmp == Cmp::Eq,
                        v: v.into(),
                    }),
                    (Lit::Bool(v), Cmp::Eq) => Some(Cond::Bool { slot, v }),
                    (Lit::Bool(v), Cmp::Ne) => Some(Cond::Bool { slot, v: !v }),
                    _ => {
                        self.error(
                            op_at,
                            format!(":{name}: is {}; only = and != apply", ty.name()),
                        );
                        None
                    }
                }
            }
            Rule::in_set => {
                let mut nums = Vec::new();
                let mut texts = Vec::new();
                let mut ok = true;
                for l in op.into_inner().filter(|x| x.as_rule() == Rule::literal) {
                    let l_at = position(&l);
                    match (Self::literal(l), ty) {
                        (Lit::Num(v), Type::Number) => nums.push(v),
                        (Lit::Text(v), Type::Text) => texts.push(v.into_boxed_str()),
                        (lit, _) => {
                            self.error(
                                l_at,
                                format!(":{name}: is {}; this is {}", ty.name(), lit.ty().name()),
                            );
                            ok = false;
                        }
                    }
                }
                if !ok {
                    return None;
                }
                match ty {
                    Type::Number => Some(Cond::NumIn {
                        slot,
                        set: nums.into_boxed_slice(),
                    }),
                    Type::Text => Some(Cond::TextIn {
                        slot,
                        set: texts.into_boxed_slice(),
                    }),
                    Type::Bool => {
                        self.error(op_at, format!(":{name}: is true or false; use = instead"));
                        None
                    }
                }
            }
            Rule::in_list => {
                let list = op.into_inner().find(|x| x.as_rule() == Rule::list_ref)?;
                let l_at = position(&list);
                let lname = list.into_inner().next()?.as_str().to_owned();
                if let Err(why) = (self.known)(&lname, &name) {
                    self.error(l_at, why);
                    return None;
                }
                let n = match self.lists.iter().position(|x| *x == lname) {
                    Some(n) => n,
                    None => {
                        self.lists.push(lname);
                        self.lists.len() - 1
                    }
                };
                Some(Cond::InList { slot, list: n })
            }
            _ => {
                // starts_with
                if ty != Type::Text {
                    self.error(
                        op_at,
                        format!(":{name}: is {}; starts_with is for text", ty.name()),
                    );
                    return None;
                }
                let prefix = op
                    .into_inner()
                    .find(|x| x.as_rule() == Rule::string)
                    .and_then(|s| s.into_inner().next())
                    .map(|t| t.as_str().to_owned())
                    .unwrap_or_default();
                Some(Cond::StartsWith {
                    slot,
                    prefix: prefix.into(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::new()
            .with("amount", Type::Number)
            .with("currency", Type::Text)
            .with("channel", Type::Text)
            .with("distance_from_last_km", Type::Number)
            .with("minutes_since_last", Type::Number)
            .with("is_new_device", Type::Bool)
            .with("merchant_id", Type::Text)
            .with("mcc", Type::Text)
    }

    fn one(text: &str) -> Result<Compiled, Vec<RuleError>> {
        let mut lists = Vec::new();
        compile(
            text,
            &schema(),
            &|n, _| {
                if n == "blocked_merchants" {
                    Ok(())
                } else {
                    Err(format!("unknown list @{n}"))
                }
            },
            &mut lists,
        )
    }

    struct Blocked;
    impl Lists for Blocked {
        fn contains(&self, list: usize, v: &Value<'_>) -> bool {
            list == 0 && *v == Value::Text("m-evil")
        }
    }

    fn rec<'a>(values: &'a [Value<'a>]) -> Record<'a> {
        Record { values }
    }

    #[test]
    fn comparisons_hold_exactly_at_their_bounds() {
        let schema = Schema::new().with("amount", Type::Number);
        let eval = |rule: &str, x: f64| {
            let c = compile(rule, &schema, &|_, _| Err("no".into()), &mut Vec::new()).unwrap();
            let values = [Value::Number(x)];
            c.matches(&Record { values: &values }, &NoLists)
        };
        for (op, below, at, above) in [
            (">", false, false, true),
            (">=", false, true, true),
            ("<", true, false, false),
            ("<=", true, true, false),
            ("=", false, true, false),
            ("!=", true, false, true),
        ] {
            let rule = format!("hold if :amount: {op} 5000.5");
            assert_eq!(eval(&rule, 5_000.499_999), below, "{rule} below");
            assert_eq!(eval(&rule, 5000.5), at, "{rule} at");
            assert_eq!(eval(&rule, 5_000.500_001), above, "{rule} above");
            let missing = compile(&rule, &schema, &|_, _| Err("no".into()), &mut Vec::new())
                .unwrap()
                .matches(
                    &Record {
                        values: &[Value::Missing],
                    },
                    &NoLists,
                );
            assert!(!missing, "{rule}: a missing value compares false");
        }
    }

    #[test]
    fn conditions_mean_what_they_say() {
        use Value::*;
        let base = [
            Number(120_000.0),
            Text("JPY"),
            Text("card_present"),
            Number(850.0),
            Number(20.0),
            Bool(false),
            Text("m-evil"),
            Text("5732"),
        ];
        let r = rec(&base);
        let yes = |t: &str| one(t).unwrap().matches(&r, &Blocked);
        assert!(yes("decline if :amount: > 100000"));
        assert!(!yes("decline if :amount: > 120000"));
        assert!(yes("decline if :amount: >= 120000 and :currency: = 'JPY'"));
        assert!(yes(
            "hold if :distance_from_last_km: > 500 and :minutes_since_last: < 60 and :channel: = 'card_present'"
        ));
        assert!(yes("hold if :currency: in ('USD', 'JPY')"));
        assert!(!yes("hold if :currency: in ('USD', 'EUR')"));
        assert!(yes("hold if not :is_new_device:"));
        assert!(yes("hold if :is_new_device: = false"));
        assert!(yes("decline if :merchant_id: in @blocked_merchants"));
        assert!(yes("decline if :mcc: starts_with '57'"));
        assert!(yes(
            "decline if (:amount: < 10 or :mcc: = '5732') and not :currency: != 'JPY'"
        ));
        assert!(!yes("approve if :amount: < 10 or :mcc: = '5999'"));
        assert_eq!(
            one("challenge if :amount: > 1").unwrap().action,
            Action::Challenge
        );
        // A missing value makes every comparison false.
        let missing = [
            Missing,
            Text("JPY"),
            Missing,
            Missing,
            Missing,
            Missing,
            Missing,
            Missing,
        ];
        let m = rec(&missing);
        assert!(!one("hold if :amount: > 0").unwrap().matches(&m, &Blocked));
        assert!(!one("hold if :amount: <= 0").unwrap().matches(&m, &Blocked));
        assert!(
            one("hold if not :amount: > 0")
                .unwrap()
                .matches(&m, &Blocked)
        );
        assert!(
            !one("hold if :merchant_id: in @blocked_merchants")
                .unwrap()
                .matches(&m, &Blocked)
        );
    }

    #[test]
    fn errors_say_where_and_what() {
        let err = |t: &str| one(t).unwrap_err();
        let e = err("decline iff :amount: > 1");
        assert_eq!(e[0].at, Position { line: 1, column: 9 });
        let e = err("decline if :amount: > ");
        assert_eq!(e[0].at.column, 23);
        assert!(e[0].message.contains("expected"), "{}", e[0].message);
        let e = err("decline if :amount: = 'JPY'");
        assert!(e[0].message.contains(":amount: is a number"), "{:?}", e);
        assert_eq!(e[0].at.column, 23);
        let e = err("decline if :amont: > 1 and :currency: > 'A' or :x: in @nope");
        let msgs: Vec<&str> = e.iter().map(|x| x.message.as_str()).collect();
        assert_eq!(e.len(), 3, "{msgs:?}");
        assert!(msgs[0].contains("unknown attribute :amont:"));
        assert!(msgs[1].contains("only = and != apply"));
        assert!(msgs[2].contains("unknown attribute :x:"));
        let e = err("decline if :merchant_id: in @nope");
        assert_eq!(e[0].message, "unknown list @nope");
        let e = err("decline if :amount:");
        assert!(e[0].message.contains("compare it with a value"));
        let e = err("block if :amount: > 1");
        assert!(e[0].message.contains("an action"), "{}", e[0].message);
        let e = err("decline if :amount: > 1\nand :currency: = 5");
        assert_eq!(
            e[0].at,
            Position {
                line: 2,
                column: 18
            }
        );
    }
}
