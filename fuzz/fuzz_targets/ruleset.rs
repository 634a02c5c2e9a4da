//! The rules parser and compiler: any text is a ruleset or a list of errors, never a panic;
//! an accepted ruleset evaluates any record of its schema.
#![no_main]

use cardguard_rules::{NoLists, Record, Ruleset, Schema, Type, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = Schema::new()
        .with("amount", Type::Number)
        .with("currency", Type::Text)
        .with("is_new_device", Type::Bool);
    if let Ok(rs) = Ruleset::parse(
        text,
        &schema,
        &|n, _| if n.len() < 8 { Ok(()) } else { Err("unknown".into()) },
        &["CARD_TESTING"],
    ) {
        let values = [Value::Number(1.0), Value::Text("JPY"), Value::Bool(true)];
        let _ = rs.evaluate(&Record { values: &values }, &NoLists);
    }
});
