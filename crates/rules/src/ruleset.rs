//! A ruleset: rules in TOML (`[[rules]]` with `id`, `description` and `rule`), compiled
//! together or refused whole with every error, each at its line and column in the file.
//! Evaluation runs every rule and reports those that matched; the action is the matched
//! rules' first in precedence (challenge, approve, decline, hold).

use crate::{Action, Compiled, Guard, ListCheck, Lists, Position, Record, Schema, compile};
use serde::Deserialize;

/// One rule as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSource {
    pub id: String,
    pub description: String,
    pub rule: String,
    /// The reason code the rule's decisions carry (one the caller knows), when not the
    /// generic one.
    pub reason: Option<String>,
}

/// Why a ruleset was refused: the rule (when the error is in one), where in the file, and
/// what was wrong or expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {}{message}", at.line, at.column, rule.as_deref().map(|r| format!("rule {r}: ")).unwrap_or_default())]
pub struct RulesetError {
    pub rule: Option<String>,
    pub at: Position,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rules: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    id: toml::Spanned<String>,
    #[serde(default)]
    description: String,
    rule: toml::Spanned<String>,
    #[serde(default)]
    reason: Option<toml::Spanned<String>>,
}

/// A compiled ruleset.
#[derive(Debug, Clone)]
pub struct Ruleset {
    sources: Vec<RuleSource>,
    compiled: Vec<Compiled>,
    /// Each rule's guard, beside one another so that most rules are passed over in a tight
    /// loop.
    guards: Vec<Guard>,
    lists: Vec<String>,
}

/// What a ruleset says of one authorization.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// The action of the matched rules' first in precedence; none when no rule matched.
    pub action: Option<Action>,
    /// The matched rules, by their place in the ruleset.
    pub matched: Vec<usize>,
}

/// Line and column (1-based, in characters) of byte `offset` of `text`.
fn line_col(text: &str, offset: usize) -> Position {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Position { line, column }
}

/// Byte offset of (line, column) of `text`.
fn offset_of(text: &str, at: Position) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == at.line {
            return offset
                + l.char_indices()
                    .nth(at.column.saturating_sub(1))
                    .map_or(l.len(), |(b, _)| b);
        }
        offset += l.len();
    }
    text.len()
}

impl Ruleset {
    /// Compiles the ruleset `toml`; lists it names must be `known`, and a rule's `reason`
    /// one of `reasons`.
    pub fn parse(
        toml_text: &str,
        schema: &Schema,
        known: ListCheck<'_>,
        reasons: &[&str],
    ) -> Result<Ruleset, Vec<RulesetError>> {
        let file: File = toml::from_str(toml_text).map_err(|e| {
            let at = e.span().map_or(Position { line: 1, column: 1 }, |s| {
                line_col(toml_text, s.start)
            });
            vec![RulesetError {
                rule: None,
                at,
                message: format!("not a ruleset: {}", e.message()),
            }]
        })?;
        let mut errors = Vec::new();
        let mut lists = Vec::new();
        let mut sources = Vec::new();
        let mut compiled = Vec::new();
        for e in file.rules {
            let id = e.id.get_ref().clone();
            let id_at = line_col(toml_text, e.id.span().start);
            let valid_id = !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if !valid_id {
                errors.push(RulesetError {
                    rule: None,
                    at: id_at,
                    message: "a rule id is 1 to 64 letters, digits, . _ -".into(),
                });
            } else if sources.iter().any(|s: &RuleSource| s.id == id) {
                errors.push(RulesetError {
                    rule: Some(id.clone()),
                    at: id_at,
                    message: "the id is used by an earlier rule".into(),
                });
            }
            let text = e.rule.get_ref();
            // Where the rule's text starts in the file (exact when it is written without
            // escapes, as rules are).
            let span = e.rule.span();
            let raw = &toml_text[span.start..span.end.min(toml_text.len())];
            let base = raw
                .find(text.as_str())
                .map_or(span.start, |i| span.start + i);
            match compile(text, schema, known, &mut lists) {
                Ok(c) => compiled.push(c),
                Err(es) => errors.extend(es.into_iter().map(|x| RulesetError {
                    rule: Some(id.clone()),
                    at: line_col(toml_text, base + offset_of(text, x.at)),
                    message: x.message,
                })),
            }
            if let Some(r) = &e.reason
                && !reasons.contains(&r.get_ref().as_str())
            {
                errors.push(RulesetError {
                    rule: Some(id.clone()),
                    at: line_col(toml_text, r.span().start),
                    message: format!(
                        "unknown reason {}; one of {}",
                        r.get_ref(),
                        reasons.join(", ")
                    ),
                });
            }
            sources.push(RuleSource {
                id,
                description: e.description,
                rule: text.clone(),
                reason: e.reason.map(|r| r.into_inner()),
            });
        }
        if errors.is_empty() {
            Ok(Ruleset {
                sources,
                guards: compiled.iter().map(Compiled::guard).collect(),
                compiled,
                lists,
            })
        } else {
            Err(errors)
        }
    }

    /// The rules as written.
    pub fn sources(&self) -> &[RuleSource] {
        &self.sources
    }

    /// The compiled rules, in the ruleset's order.
    pub fn compiled(&self) -> &[Compiled] {
        &self.compiled
    }

    /// The lists the rules name, in the order [`Lists::contains`] numbers them.
    pub fn lists(&self) -> &[String] {
        &self.lists
    }

    /// Every rule's verdict on `r`.
    pub fn evaluate(&self, r: &Record<'_>, lists: &dyn Lists) -> Verdict {
        let mut v = Verdict::default();
        for (i, (g, c)) in self.guards.iter().zip(&self.compiled).enumerate() {
            if g.passes(r) && c.matches(r, lists) {
                v.matched.push(i);
                v.action = Some(v.action.map_or(c.action, |a| a.min(c.action)));
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NoLists, Type, Value};

    fn schema() -> Schema {
        Schema::new()
            .with("amount", Type::Number)
            .with("currency", Type::Text)
    }

    fn no_lists(list: &str, _: &str) -> Result<(), String> {
        Err(format!("unknown list @{list}"))
    }

    #[test]
    fn a_ruleset_compiles_whole_and_the_first_in_precedence_decides() {
        let text = r#"
[[rules]]
id = "big"
description = "large amounts"
rule = "hold if :amount: > 100000"

[[rules]]
id = "huge"
rule = "decline if :amount: > 500000"

[[rules]]
id = "vip"
rule = "approve if :currency: = 'JPY' and :amount: < 600000"
"#;
        let rs = Ruleset::parse(text, &schema(), &no_lists, &[]).unwrap();
        let eval = |amount: f64| {
            let values = [Value::Number(amount), Value::Text("JPY")];
            rs.evaluate(&Record { values: &values }, &NoLists)
        };
        assert_eq!(eval(1000.0).action, Some(Action::Approve));
        let v = eval(550_000.0);
        assert_eq!(
            (v.action, v.matched),
            (Some(Action::Approve), vec![0, 1, 2])
        );
        let v = eval(700_000.0);
        assert_eq!((v.action, v.matched), (Some(Action::Decline), vec![0, 1]));
        assert_eq!(rs.sources()[0].description, "large amounts");
    }

    #[test]
    fn every_error_is_reported_at_its_place_in_the_file() {
        let text = "[[rules]]\nid = \"a\"\nrule = \"hold if :amount: > 'x'\"\n\n[[rules]]\nid = \"a\"\nrule = \"decline iff :amount: > 1\"\nreason = \"CARD_TESTNG\"\n";
        let e = Ruleset::parse(text, &schema(), &no_lists, &["CARD_TESTING"]).unwrap_err();
        assert_eq!(e.len(), 4, "{e:?}");
        // `'x'` starts at column 28 of line 3 (after `rule = "`).
        assert_eq!(
            (e[0].rule.as_deref(), e[0].at),
            (
                Some("a"),
                Position {
                    line: 3,
                    column: 28
                }
            )
        );
        assert!(e[1].message.contains("earlier rule"));
        assert_eq!(
            e[2].at,
            Position {
                line: 7,
                column: 17
            }
        );
        assert!(e[2].message.contains("expected"), "{}", e[2].message);
        assert_eq!(
            e[3].at,
            Position {
                line: 8,
                column: 10
            }
        );
        assert!(e[3].message.starts_with("unknown reason CARD_TESTNG"));
        let e = Ruleset::parse("[[rules]]\nid = \"a\"\n", &schema(), &no_lists, &[]).unwrap_err();
        assert!(e[0].message.starts_with("not a ruleset"), "{}", e[0]);
    }
}
