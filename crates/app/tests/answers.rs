//! The cardholder's answer through the application, on the server's clock: a hold answered
//! within `notify.hold_expiry_minutes` takes effect; one answered later is refused and
//! changes nothing; an approval has nothing to answer.

mod common;

use cardguard_app::{App, AppError, ClientId, Config};
use cardguard_core::{FixedClock, Location, Merchant, Timestamp};
use std::sync::Arc;
use std::time::Instant;

fn at(city: &str, lat: f64, lon: f64, id: &str, t: Timestamp) -> cardguard_core::Authorization {
    let mut a = common::authorization(id);
    a.timestamp = t;
    a.merchant = Merchant {
        city: city.into(),
        location: Some(Location::new(lat, lon).unwrap()),
        country: cardguard_core::Country::parse("US").unwrap(),
        ..a.merchant
    };
    a
}

#[tokio::test]
async fn a_hold_answered_too_late_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Timestamp::parse_rfc3339("2026-12-01T15:00:00Z").unwrap();
    let clock = Arc::new(FixedClock::new(t0));
    let config = Config::load(None, std::iter::empty()).unwrap();
    let (app, _) = App::open(config, &dir.path().join("data"), clock.clone()).unwrap();
    let app = Arc::new(app);
    app.enroll(&common::card_record("4123456789012349", "ch-1"))
        .unwrap();
    let me = ClientId::local("test");
    let ny = app
        .authorize(
            at("New York", 40.71, -74.01, "e-1", t0),
            0,
            &me,
            Instant::now(),
        )
        .await
        .unwrap();
    let t1 = Timestamp(t0.0 + 5 * 60_000);
    clock.set(t1);
    let la = app
        .authorize(
            at("Los Angeles", 34.05, -118.24, "e-2", t1),
            0,
            &me,
            Instant::now(),
        )
        .await
        .unwrap();
    assert_eq!(la.outcome.decision, cardguard_core::Decision::Hold);
    assert!(matches!(
        app.answer(&ny.authorization_id, true, "api").await,
        Err(AppError::Conflict(_))
    ));
    // 31 minutes later (the default expiry is 30): refused, and nothing changed.
    clock.set(Timestamp(t1.0 + 31 * 60_000));
    let e = app
        .answer(&la.authorization_id, false, "api")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, AppError::Conflict(m) if m.contains("expired")),
        "{e}"
    );
    let view = app.answer_view(&la.authorization_id).await.unwrap();
    assert_eq!(view.answer, cardguard_engine::Answer::None);
    // Within the time it is taken.
    clock.set(Timestamp(t1.0 + 29 * 60_000));
    let a = app
        .answer(&la.authorization_id, false, "api")
        .await
        .unwrap();
    assert!(a.first && !a.yes);
}
