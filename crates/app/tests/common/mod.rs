//! Helpers shared by the application's tests.

#![allow(dead_code)] // each test binary uses some of them

use cardguard_app::{App, CardRecord, Config};
use cardguard_core::{
    Authorization, CardData, Channel, Country, Currency, Expiry, Mcc, Merchant, Money, Pan,
    SystemClock, Timestamp, TxType,
};
use std::path::Path;
use std::sync::Arc;

/// A card-present purchase in Tokyo with a recorded time (the clock-skew check is off in
/// [`open`]).
pub fn authorization(id: &str) -> Authorization {
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
        email_domain: None,
        authentication: None,
    }
}

/// The application on `data_dir` with the defaults, but the clock-skew check off (the tests
/// send a recorded time) and `extra` environment overrides.
pub fn open(data_dir: &Path, extra: &[(&str, &str)]) -> App {
    let mut env = vec![(
        "CARDGUARD__ENGINE__MAX_CLOCK_SKEW_SECS".to_owned(),
        "0".to_owned(),
    )];
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let config = Config::load(None, env).unwrap();
    App::open(config, data_dir, Arc::new(SystemClock))
        .unwrap()
        .0
}

/// An active gold card with a stored security code (123) and an English-speaking
/// cardholder reached by email, as enrolled.
pub fn card_record(number: &str, cardholder: &str) -> CardRecord {
    CardRecord::from_columns([
        ("number", number),
        ("expiry", "2029-12"),
        ("cardholder_id", cardholder),
        ("product", "gold"),
        ("status", "active"),
        ("service_code", "101"),
        ("csc.method", "stored"),
        ("csc.value", "123"),
        ("contact.language", "en"),
        ("contact.email", "hanako@example.jp"),
    ])
    .unwrap()
}

/// A consumer from the log's start that keeps the request ids of the authorizations it sees.
pub fn follow_authorizations(
    app: &App,
) -> (
    cardguard_app::consumer::ConsumerHandle,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    use cardguard_app::consumer::{ConsumerOptions, Start};
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let consumer = app
        .spawn_consumer(
            "test",
            ConsumerOptions {
                start: Start::Beginning,
                ..ConsumerOptions::default()
            },
            move |d| {
                if let cardguard_engine::Event::Auth(r) = d.event {
                    s.lock().unwrap().push(r.tx.id.clone());
                }
                Ok(())
            },
        )
        .unwrap();
    (consumer, seen)
}

/// Waits up to 10 s until `seen` holds `n` ids.
pub async fn until_seen(seen: &std::sync::Mutex<Vec<String>>, n: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while seen.lock().unwrap().len() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
