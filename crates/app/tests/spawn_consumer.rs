//! `App::spawn_consumer`: a consumer registered in process sees the authorizations the
//! application logs, and its cursor in the data directory ends where the log does.

use cardguard_app::consumer::{ConsumerOptions, Start};
use cardguard_app::{App, Config};
use cardguard_core::{
    Authorization, CardData, Channel, Country, Currency, Expiry, Mcc, Merchant, Money, Pan,
    SystemClock, Timestamp, TxType,
};
use cardguard_engine::Event;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn authorization(id: &str) -> Authorization {
    Authorization {
        id: id.into(),
        timestamp: Timestamp::parse_rfc3339("2026-11-21T10:00:00Z").unwrap(),
        card: CardData {
            pan: Pan::parse("4123456789012349").unwrap(),
            expiry: Expiry::parse("2029-12").unwrap(),
            csc: None,
            pin_block: None,
        },
        amount: Money::new(1200, Currency::JPY).unwrap(),
        merchant: Merchant {
            id: "m-1".into(),
            terminal_id: "t-1".into(),
            name: "SHOP".into(),
            mcc: Mcc::parse("5411").unwrap(),
            country: Country::parse("JP").unwrap(),
            city: "Tokyo".into(),
            location: None,
        },
        channel: Channel::CardPresent,
        tx_type: TxType::Purchase,
        device: None,
    }
}

#[tokio::test]
async fn a_consumer_in_process_follows_the_authorizations() {
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "CARDGUARD__ENGINE__MAX_CLOCK_SKEW_SECS".to_owned(),
        "0".to_owned(),
    )];
    let config = Config::load(None, env).unwrap();
    let (app, _) = App::open(config, dir.path(), Arc::new(SystemClock)).unwrap();
    let app = Arc::new(app);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let consumer = app
        .spawn_consumer(
            "test",
            ConsumerOptions {
                start: Start::Beginning,
                ..ConsumerOptions::default()
            },
            move |d| {
                if let Event::Auth(r) = d.event {
                    s.lock().unwrap().push(r.tx.id.clone());
                }
                Ok(())
            },
        )
        .unwrap();
    for id in ["a-1", "a-2", "a-3"] {
        app.authorize(
            authorization(id),
            0,
            &cardguard_app::ClientId::local("test"),
            Instant::now(),
        )
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let saved = consumer.stop().unwrap();
    assert_eq!(*seen.lock().unwrap(), ["a-1", "a-2", "a-3"]);
    assert_eq!(
        saved,
        app.events().durable().unwrap(),
        "the cursor ends at the log's end"
    );
}
