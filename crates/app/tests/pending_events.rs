//! A decision the cardholder is told of (a compensation, a claim) keeps its event pending in
//! the decision's transaction: when the process stops after the commit and before the event
//! is logged, the next start logs it, once.

mod common;

use cardguard_app::consumer::{ConsumerOptions, MemoryCursors, run};
use cardguard_core::{CardToken, Currency, Last4, Money, Timestamp};
use cardguard_engine::{CoverageRecord, Event};
use cardguard_store::{PendingEvent, Transition};
use std::sync::atomic::AtomicBool;

/// The coverage events in the application's log, in order.
fn coverage_events(app: &cardguard_app::App) -> Vec<CoverageRecord> {
    let mut seen = Vec::new();
    run(
        "check",
        app.events().as_ref(),
        &MemoryCursors::default(),
        &ConsumerOptions {
            stop_at_end: true,
            ..ConsumerOptions::default()
        },
        &AtomicBool::new(false),
        |d| {
            if let Event::Coverage(c) = d.event {
                seen.push((**c).clone());
            }
            Ok(())
        },
    )
    .unwrap();
    seen
}

#[tokio::test]
async fn a_decision_committed_before_a_stop_is_told_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rec = CoverageRecord {
        card_token: CardToken([9; 16]),
        last4: Last4::parse("2349").unwrap(),
        scheme: "fraud_compensation".into(),
        reference: 1,
        covered: true,
        credited: vec![Money::new(12_800, Currency::JPY).unwrap()],
        billed: vec![],
        reasons: vec!["WITHIN_WINDOW".into()],
        actor: "key:analyst".into(),
        received: Timestamp(1_764_600_000_000),
    };
    let pending = PendingEvent {
        id: "cov-fraud_compensation-1-1764600000000".into(),
        kind: Event::KIND_COVERAGE,
        payload: serde_json::to_string(&rec).unwrap(),
        created_ms: rec.received.0,
    };
    {
        // The decision commits with its event pending; the process stops before logging it.
        let app = common::open(&data, &[]);
        let s = app.cases_store();
        let (case, _) = s
            .open_case(
                "tok",
                None,
                "label",
                "investigating",
                None,
                "system",
                "",
                1_000,
            )
            .unwrap();
        let t = Transition {
            from: &["investigating"],
            to: "resolved_fraud",
            actor: "key:analyst",
            action: "resolve",
            note: "",
            due_ms: None,
            at_ms: 2_000,
        };
        let moved = s
            .transition_with(case.id, &t, &[], None, Some(&pending))
            .unwrap();
        assert!(matches!(moved, Some(Ok(_))));
        assert!(
            coverage_events(&app).is_empty(),
            "not logged before the stop"
        );
        // A refused move keeps nothing pending.
        let refused = s
            .transition_with(
                case.id,
                &t,
                &[],
                None,
                Some(&PendingEvent {
                    id: "other".into(),
                    ..pending.clone()
                }),
            )
            .unwrap();
        assert!(matches!(refused, Some(Err(_))));
        assert_eq!(s.pending_events().unwrap(), vec![pending.clone()]);
    }
    let app = common::open(&data, &[]);
    assert_eq!(app.log_pending_events().await.unwrap(), 1);
    assert_eq!(coverage_events(&app), vec![rec.clone()]);
    assert!(app.cases_store().pending_events().unwrap().is_empty());
    // Told once: another start logs nothing more.
    assert_eq!(app.log_pending_events().await.unwrap(), 0);
    drop(app);
    let app = common::open(&data, &[]);
    assert_eq!(app.log_pending_events().await.unwrap(), 0);
    assert_eq!(coverage_events(&app), vec![rec]);
}
