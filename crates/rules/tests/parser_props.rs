//! Properties of the parser and compiler: any text gets a rule or errors with positions
//! inside the text, never a panic; rules generated from the grammar compile, and their
//! conditions agree with the same condition computed here.

use cardguard_rules::{Action, NoLists, Record, Schema, Type, Value, compile};
use proptest::prelude::*;

fn schema() -> Schema {
    Schema::new()
        .with("amount", Type::Number)
        .with("currency", Type::Text)
        .with("is_new_device", Type::Bool)
}

proptest! {
    #[test]
    fn any_text_is_a_rule_or_errors_with_positions(text in ".{0,80}") {
        let mut lists = Vec::new();
        match compile(&text, &schema(), &|_, _| Err("no lists".into()), &mut lists) {
            Ok(_) => {}
            Err(es) => {
                prop_assert!(!es.is_empty());
                let lines = text.split('\n').count();
                for e in es {
                    prop_assert!(e.at.line >= 1 && e.at.line <= lines.max(1), "{e}");
                    prop_assert!(e.at.column >= 1);
                }
            }
        }
    }

    #[test]
    fn generated_rules_compile_and_mean_what_they_say(
        limit in -1_000_000i64..1_000_000,
        amount in -1_000_000i64..1_000_000,
        cur in prop::sample::select(vec!["JPY", "USD", "EUR"]),
        want in prop::sample::select(vec!["JPY", "USD", "EUR"]),
        new_device in any::<bool>(),
        op in prop::sample::select(vec![">", ">=", "<", "<=", "=", "!="]),
        join in prop::sample::select(vec!["and", "or"]),
        negate in any::<bool>(),
    ) {
        let text = format!(
            "decline if {}(:amount: {op} {limit} {join} :currency: = '{want}') or :is_new_device: = {new_device}",
            if negate { "not " } else { "" }
        );
        let mut lists = Vec::new();
        let c = compile(&text, &schema(), &|_, _| Err("no lists".into()), &mut lists).unwrap();
        prop_assert_eq!(c.action, Action::Decline);
        let values = [Value::Number(amount as f64), Value::Text(cur), Value::Bool(new_device)];
        let (a, l) = (amount, limit);
        let cmp = match op {
            ">" => a > l, ">=" => a >= l, "<" => a < l, "<=" => a <= l, "=" => a == l, _ => a != l,
        };
        let inner = if join == "and" { cmp && cur == want } else { cmp || cur == want };
        // `:is_new_device: = X` with X its own value holds, so the whole rule does.
        let holds = c.matches(&Record { values: &values }, &NoLists);
        prop_assert!(holds);
        let values = [Value::Number(amount as f64), Value::Text(cur), Value::Bool(!new_device)];
        prop_assert_eq!(c.matches(&Record { values: &values }, &NoLists), inner != negate);
    }
}
