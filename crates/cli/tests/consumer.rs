//! A consumer of the event log killed with SIGKILL in the middle of 100,000 events and
//! started again has seen every event at least once, in log order, and its saved cursor was
//! never ahead of what it had processed. The consumer is `cardguard log tail --consumer`
//! following a log that this test appends to while it reads.

use cardguard_core::Timestamp;
use cardguard_engine::{Event, LabelRecord};
use cardguard_store::{CursorStore, Durability, EventLog, FileCursors};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const EVENTS: u64 = 100_000;

fn payload(i: u64) -> Vec<u8> {
    Event::Label(LabelRecord {
        authorization_id: format!("au_{i:012}"),
        fraud: false,
        ts: Timestamp(i as i64),
        source: None,
    })
    .encode(cardguard_engine::EventEncoding::default())
    .unwrap()
}

fn start(data: &std::path::Path, out: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_cardguard"))
        .args([
            "log",
            "tail",
            "--consumer",
            "kill-test",
            "--follow",
            "--data-dir",
        ])
        .arg(data)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// (offset, next, authorization id) of every complete line printed.
fn lines(path: &std::path::Path) -> Vec<(u64, u64, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["offset"].as_u64().unwrap(),
                v["next"].as_u64().unwrap(),
                v["event"]["authorization_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_consumer_killed_mid_log_resumes_without_losing_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let (mut log, _) = EventLog::open(
        &data.join("events.log"),
        Durability::Write { sync_every_ms: 10 },
        0,
        |_| Ok(()),
    )
    .unwrap();
    let mut offsets = Vec::with_capacity(EVENTS as usize);
    let mut append = |log: &mut EventLog, range: std::ops::Range<u64>| {
        for i in range {
            offsets.push(log.appender().append(2, &payload(i), |_| {}).unwrap());
        }
    };
    append(&mut log, 0..40_000);
    let first_out = data.join("first.jsonl");
    let mut child = start(data, &first_out);
    // More events arrive while it reads.
    append(&mut log, 40_000..60_000);
    wait_for("the consumer to be part-way", || {
        lines(&first_out).len() >= 30_000
    });
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let first = lines(&first_out);
    let cursor = FileCursors::open(data)
        .unwrap()
        .load("kill-test")
        .unwrap()
        .expect("a cursor was saved");
    let processed_end = first.last().map_or(0, |l| l.1);
    assert!(
        cursor <= processed_end,
        "cursor {cursor} ahead of the last processed event (ends at {processed_end})"
    );
    assert!(cursor > 0, "the consumer acknowledged as it went");
    append(&mut log, 60_000..EVENTS);
    let second_out = data.join("second.jsonl");
    let mut child = start(data, &second_out);
    let end = log.end_offset();
    wait_for("the consumer to reach the end", || {
        lines(&second_out).last().is_some_and(|l| l.1 == end)
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let second = lines(&second_out);
    assert_eq!(second[0].0, cursor, "resumed at its saved cursor");
    // Each run read in log order, with no gap.
    for run in [&first, &second] {
        for w in run.windows(2) {
            assert_eq!(w[0].1, w[1].0, "in order, nothing skipped");
        }
    }
    let mut seen = vec![false; EVENTS as usize];
    for (offset, _, id) in first.iter().chain(&second) {
        let i: usize = id.trim_start_matches("au_").parse().unwrap();
        assert_eq!(offsets[i], *offset, "event {i} at its offset");
        seen[i] = true;
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "{missing} events never delivered");
    let again = first.len() + second.len() - EVENTS as usize;
    println!(
        "killed after {} events (cursor at {} of {} bytes); {again} delivered twice",
        first.len(),
        cursor,
        end
    );
}
