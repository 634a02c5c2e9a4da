//! Differential test against the independent `pyiso8583` Python package (4.0.1, its
//! `default_ascii` spec): random valid messages encoded by each side are decoded by the
//! other, both ways, and the bytes of both encoders compared. Data element 65 is left out:
//! pyiso8583 reads it as a tertiary bitmap, which ISO 8583:1987 networks do not use; here it is
//! an ordinary field of 16 characters, as the table says.
//!
//! The Python is `CARDGUARD_PYTHON` (scripts/test.sh sets it to its virtual environment,
//! where it installs pyiso8583) or `python3`. Without pyiso8583 the test says so and passes,
//! unless CARDGUARD_REQUIRE_ORACLES is set (scripts/test.sh sets it).

use cardguard_iso8583::{LenType, Message, Spec, decode, encode};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

const CASES: u64 = 400;

/// splitmix64: the messages are the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_message(spec: &Spec, r: &mut Rng) -> Message {
    let mut m = Message::new(["0100", "0110", "0200", "0400", "0800"][r.below(5) as usize]);
    for _ in 0..r.below(25) {
        let n = 2 + r.below(127) as u8;
        let Some(f) = spec.field(usize::from(n)).filter(|_| n != 65) else {
            continue;
        };
        let len = match f.len {
            LenType::Fixed => f.max,
            _ => r.below(f.max as u64 + 1) as usize,
        };
        // Printable ASCII, quotes and backslashes included.
        let v: Vec<u8> = (0..len).map(|_| b' ' + r.below(95) as u8).collect();
        m.set(n, v);
    }
    m
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn agrees_with_pyiso8583() {
    let python = std::env::var("CARDGUARD_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/oracle/pyiso8583_oracle.py"
    );
    let required = std::env::var_os("CARDGUARD_REQUIRE_ORACLES").is_some();
    let probe = Command::new(&python)
        .args(["-c", "import iso8583"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(!required, "pyiso8583 oracle unavailable: {probe:?}");
        eprintln!("pyiso8583 oracle unavailable (pip install pyiso8583==4.0.1): not compared");
        return;
    }
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to = child.stdin.take().unwrap();
    let mut from = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut ask = |req: serde_json::Value| -> serde_json::Value {
        writeln!(to, "{req}").unwrap();
        serde_json::from_str(&from.next().unwrap().unwrap()).unwrap()
    };
    let spec = Spec::default_ascii();
    let mut r = Rng(20261202);
    for case in 0..CASES {
        let m = random_message(&spec, &mut r);
        let ours = encode(&spec, &m).unwrap();
        let fields: serde_json::Map<String, serde_json::Value> = m
            .fields
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8(v.clone()).unwrap().into()))
            .collect();
        // Their encoding of our message is our bytes.
        let theirs = ask(serde_json::json!({"op": "encode", "mti": m.mti, "fields": fields}));
        let keys: Vec<String> = m
            .fields
            .iter()
            .map(|(n, v)| format!("{n}:{}", v.len()))
            .collect();
        assert_eq!(
            theirs["hex"].as_str().unwrap(),
            hex(&ours),
            "case {case}: fields {keys:?}"
        );
        // They decode our bytes to our message.
        let back = ask(serde_json::json!({"op": "decode", "hex": hex(&ours)}));
        assert_eq!(back["mti"].as_str().unwrap(), m.mti, "case {case}");
        assert_eq!(
            back["fields"],
            serde_json::Value::Object(fields),
            "case {case}"
        );
        // We decode their bytes to the message.
        let their_bytes: Vec<u8> = (0..theirs["hex"].as_str().unwrap().len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&theirs["hex"].as_str().unwrap()[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(
            decode(&spec, &their_bytes).unwrap().fields,
            m.fields,
            "case {case}"
        );
    }
    drop(to);
    child.wait().unwrap();
}
