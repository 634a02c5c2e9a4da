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
    // The chain written at shutdown: one segment with the whole state.
    let heads = cardguard_store::list_segments(&data).unwrap();
    assert_eq!(heads.len(), 1);
    let (seg, offset) = (&heads[0], heads[0].offset);
    let body = cardguard_store::read_segment(seg).unwrap();
    assert!(body.starts_with(cardguard_engine::segment::SEGMENT_FORMAT));
    let tag = cardguard_engine::segment::SEGMENT_FORMAT.len();
    let (pre, _) = postcard::take_from_bytes(&body[tag..]).unwrap();
    let mut r = cardguard_engine::segment::Restorer::new(pre);
    r.apply(&mut postcard::Deserializer::from_bytes(&body[tag..]))
        .unwrap();
    let state = r.finish().unwrap();
    let config = || {
        Config::load(
            None,
            [(
                "CARDGUARD__ENGINE__MAX_CLOCK_SKEW_SECS".to_owned(),
                "0".to_owned(),
            )],
        )
        .unwrap()
    };
    // The same state in the single file of earlier versions is read when there is no
    // chain (an upgrade does not replay the whole log).
    let mut single = cardguard_engine::STATE_FORMAT.to_vec();
    single.extend(postcard::to_allocvec(&state).unwrap());
    cardguard_store::remove_snapshots(&data).unwrap();
    cardguard_store::write_snapshot(&data, offset, &single).unwrap();
    {
        let (app, summary) =
            cardguard_app::App::open(config(), &data, Arc::new(SystemClock)).unwrap();
        assert_eq!(
            (summary.snapshot_offset, summary.replayed),
            (Some(offset), 0)
        );
        let app = Arc::new(app);
        assert!(!app.reverse(reversal("a-2"), &me).await.unwrap().first);
    }
    // A segment without its tag stands for one of a layout this version cannot read.
    cardguard_store::remove_snapshots(&data).unwrap();
    cardguard_store::write_segment(&data, 0, offset, None, seg.slices.clone(), |w| {
        w.write_all(&body[tag..])
    })
    .unwrap();
    let (app, summary) = cardguard_app::App::open(config(), &data, Arc::new(SystemClock)).unwrap();
    assert_eq!(
        summary.snapshot_offset, None,
        "the snapshot was passed over"
    );
    let app = Arc::new(app);
    assert!(!app.reverse(reversal("a-2"), &me).await.unwrap().first);
    assert!(app.reverse(reversal("a-3"), &me).await.unwrap().first);
    assert_eq!(app.stats().engine.authorizations, 3);
}
