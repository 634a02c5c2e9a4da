//! Reversals through the application: once per authorization, only by its client, kept in
//! snapshots and the log; and a snapshot of another layout of the state is passed over (the
//! log replayed) instead of being misread.

mod common;

use cardguard_app::{AppError, ClientId, Config, Original, ReversalRequest};
use cardguard_core::SystemClock;
use common::authorization;
use std::sync::Arc;
use std::time::Instant;

fn reversal(id: &str) -> ReversalRequest {
    ReversalRequest {
        original: Original::Request(id.into()),
        pan: None,
        amount: None,
        source: "test".into(),
        reference: None,
    }
}

#[tokio::test]
async fn reversed_once_by_its_client_and_a_snapshot_of_another_layout_is_replayed_over() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let me = ClientId::local("test");
    {
        let app = Arc::new(common::open(&data, &[]));
        for id in ["a-1", "a-2", "a-3"] {
            app.authorize(authorization(id), 0, &me, Instant::now())
                .await
                .unwrap();
        }
        let r = app.reverse(reversal("a-2"), &me).await.unwrap();
        assert_eq!(
            (r.authorization_id.as_str(), r.first),
            ("au_000000000001", true)
        );
        assert!(!app.reverse(reversal("a-2"), &me).await.unwrap().first);
        let someone = ClientId::local("someone-else");
        assert!(matches!(
            app.reverse(reversal("a-2"), &someone).await,
            Err(AppError::NotFound(_))
        ));
        let mut wrong_card = reversal("a-3");
        wrong_card.pan = Some(cardguard_core::Pan::parse("4111111111111111").unwrap());
        assert!(matches!(
            app.reverse(wrong_card, &me).await,
            Err(AppError::Conflict(_))
        ));
        app.snapshot_now();
    }
    let (offset, body) = cardguard_store::read_snapshot(&data).unwrap().unwrap();
    assert!(body.starts_with(cardguard_engine::STATE_FORMAT));
    // The same state without its tag stands for a snapshot an older version wrote.
    cardguard_store::write_snapshot(&data, offset, &body[8..]).unwrap();
    let config = Config::load(
        None,
        [(
            "CARDGUARD__ENGINE__MAX_CLOCK_SKEW_SECS".to_owned(),
            "0".to_owned(),
        )],
    )
    .unwrap();
    let (app, summary) = cardguard_app::App::open(config, &data, Arc::new(SystemClock)).unwrap();
    assert_eq!(
        summary.snapshot_offset, None,
        "the snapshot was passed over"
    );
    let app = Arc::new(app);
    assert!(!app.reverse(reversal("a-2"), &me).await.unwrap().first);
    assert!(app.reverse(reversal("a-3"), &me).await.unwrap().first);
    assert_eq!(app.stats().engine.authorizations, 3);
}
