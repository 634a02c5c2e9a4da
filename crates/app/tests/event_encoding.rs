//! A log written as JSON (by versions before MessagePack, or with `storage.event_encoding =
//! "json"`) is read on: the application replays it at start, appends MessagePack after it,
//! and a consumer reads the events of both encodings in order.

mod common;

use cardguard_app::{App, ClientId, Config};
use cardguard_core::SystemClock;
use common::authorization;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

fn open(data: &Path, encoding: &str) -> (Arc<App>, u64) {
    let env = [
        ("CARDGUARD__ENGINE__MAX_CLOCK_SKEW_SECS", "0"),
        ("CARDGUARD__STORAGE__EVENT_ENCODING", encoding),
    ];
    let config = Config::load(None, env.map(|(k, v)| (k.to_owned(), v.to_owned()))).unwrap();
    let (app, report) = App::open(config, data, Arc::new(SystemClock)).unwrap();
    (Arc::new(app), report.replayed)
}

async fn authorize(app: &Arc<App>, id: &str) -> String {
    let client = ClientId::local("test");
    let rec = app
        .authorize(authorization(id), 0, &client, Instant::now())
        .await
        .unwrap();
    rec.authorization_id
}

/// The first byte of each event's payload in the log.
fn first_bytes(app: &App) -> Vec<u8> {
    let frames = app.events().read_from(0, 100).unwrap();
    frames.iter().map(|f| f.payload[0]).collect()
}

#[tokio::test]
async fn a_json_log_replays_and_goes_on_in_message_pack() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (app, replayed) = open(&data, "json");
    assert_eq!(replayed, 0);
    let first = authorize(&app, "a-1").await;
    authorize(&app, "a-2").await;
    assert_eq!(first_bytes(&app), b"{{");
    drop(app);

    let (app, replayed) = open(&data, "msgpack");
    assert_eq!(replayed, 2, "both JSON events replayed");
    // The retry of a-1 is answered from the state the JSON events rebuilt.
    assert_eq!(authorize(&app, "a-1").await, first);
    authorize(&app, "a-3").await;
    let bytes = first_bytes(&app);
    assert_eq!(bytes[..2], *b"{{");
    assert!(
        bytes[2..].iter().all(|b| (0x80..=0x8f).contains(b)),
        "{bytes:?}"
    );

    let (consumer, seen) = common::follow_authorizations(&app);
    common::until_seen(&seen, 3).await;
    consumer.stop().unwrap();
    assert_eq!(*seen.lock().unwrap(), ["a-1", "a-2", "a-3"]);
    drop(app);
    let (_, replayed) = open(&data, "msgpack");
    assert_eq!(replayed, 3, "a log of both encodings replays");
}
