//! Rule evaluation: 200 rules of a few comparisons each over a record, the goal ≤ 2 µs.

use cardguard_rules::{Lists, Record, Ruleset, Schema, Type, Value};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

struct Blocked;
impl Lists for Blocked {
    fn contains(&self, _: usize, v: &Value<'_>) -> bool {
        *v == Value::Text("m-evil")
    }
}

fn bench(c: &mut Criterion) {
    let schema = Schema::new()
        .with("amount", Type::Number)
        .with("currency", Type::Text)
        .with("channel", Type::Text)
        .with("distance_from_last_km", Type::Number)
        .with("minutes_since_last", Type::Number)
        .with("card_tx_count_1h", Type::Number)
        .with("is_new_device", Type::Bool)
        .with("merchant_id", Type::Text)
        .with("mcc", Type::Text)
        .with("risk_score", Type::Number);
    let mut text = String::new();
    for i in 0..200 {
        let rule = match i % 5 {
            0 => format!(
                "hold if :distance_from_last_km: > {} and :minutes_since_last: < 60 and :channel: = 'card_present'",
                400 + i
            ),
            1 => format!(
                "decline if :amount: > {} and :currency: in ('USD', 'EUR', 'GBP')",
                100_000 + i
            ),
            2 => format!(
                "challenge if :is_new_device: and :risk_score: >= {}",
                50 + i % 40
            ),
            3 => format!(
                "decline if :merchant_id: in @blocked or :mcc: starts_with '{}'",
                6000 + i
            ),
            _ => format!(
                "hold if :card_tx_count_1h: > {} or (:amount: > 50000 and not :channel: = 'ecommerce')",
                8 + i % 5
            ),
        };
        text.push_str(&format!("[[rules]]\nid = \"r{i}\"\nrule = \"{rule}\"\n\n"));
    }
    let rs = Ruleset::parse(&text, &schema, &|_, _| Ok(()), &[]).unwrap();
    let values = [
        Value::Number(12_800.0),
        Value::Text("JPY"),
        Value::Text("card_present"),
        Value::Number(12.0),
        Value::Number(300.0),
        Value::Number(2.0),
        Value::Bool(false),
        Value::Text("m-42"),
        Value::Text("5732"),
        Value::Number(20.0),
    ];
    let r = Record { values: &values };
    c.bench_function("rules/200_rules", |b| {
        b.iter(|| black_box(rs.evaluate(black_box(&r), &Blocked)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
