//! Snapshots as a chain of segments, through the application: written in turn while
//! authorizations and labels arrive, the segments no longer needed removed, and a restart
//! from the chain decides as a restart that replays the whole log does.

mod common;

use cardguard_app::{App, ClientId};
use cardguard_core::{Location, Timestamp};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const CARDS: u32 = 60;

/// A 16-digit test PAN with its Luhn check digit.
fn pan(i: u32) -> String {
    let body = format!("412345{i:09}");
    let d = cardguard_cardsec::luhn::check_digit(&body).unwrap();
    format!("{body}{d}")
}

/// Authorization `i`: card `i % CARDS`, a minute after the one before, in one of three
/// cities.
fn authorization(i: u32, id: &str) -> cardguard_core::Authorization {
    let mut a = common::authorization(id);
    a.card.pan = cardguard_core::Pan::parse(&pan(i % CARDS)).unwrap();
    a.timestamp = Timestamp(
        Timestamp::parse_rfc3339("2026-11-21T00:00:00Z").unwrap().0 + i64::from(i) * 60_000,
    );
    let (city, lat, lon) = [
        ("Tokyo", 35.68, 139.69),
        ("Osaka", 34.69, 135.50),
        ("Sapporo", 43.06, 141.35),
    ][(i % 3) as usize];
    a.merchant.city = city.into();
    a.merchant.location = Some(Location::new(lat, lon).unwrap());
    a.merchant.terminal_id = format!("t-{}", i % 11);
    a
}

fn open(data: &Path) -> (App, cardguard_app::OpenSummary) {
    let config = cardguard_app::Config::load(
        None,
        [
            ("CARDGUARD__ENGINE__MAX_CLOCK_SKEW_SECS", "0"),
            ("CARDGUARD__STORAGE__SNAPSHOT_EVERY", "10"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    )
    .unwrap();
    App::open(config, data, Arc::new(cardguard_core::SystemClock)).unwrap()
}

#[tokio::test]
async fn a_chain_of_segments_restores_what_a_full_replay_does() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let me = ClientId::local("test");
    let mut answers = Vec::new();
    {
        let (app, _) = open(&data);
        let app = Arc::new(app);
        for i in 0..CARDS {
            app.enroll(&common::card_record(&pan(i), &format!("ch-{i}")))
                .unwrap();
        }
        for i in 0..600 {
            let r = app
                .authorize(authorization(i, &format!("r-{i}")), 0, &me, Instant::now())
                .await
                .unwrap();
            if i % 7 == 3 {
                app.label(&r.authorization_id, i % 2 == 0, None)
                    .await
                    .unwrap();
            }
            answers.push(r);
        }
        app.snapshot_now();
    }
    // Sixty segments were written; those before the newest sixteen slices are gone.
    let heads = cardguard_store::list_segments(&data).unwrap();
    assert!(
        (2..=17).contains(&heads.len()),
        "{} segments kept",
        heads.len()
    );
    assert_eq!(cardguard_store::segment_chain(&heads).len(), heads.len());
    assert!(heads.iter().any(|h| h.slices.len() == 1), "{heads:?}");
    // The same data with no snapshot at all: its start replays the whole log.
    let replayed = dir.path().join("replayed");
    std::fs::create_dir(&replayed).unwrap();
    for e in std::fs::read_dir(&data).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && p.file_name().is_some_and(|n| n != "LOCK") {
            std::fs::copy(&p, replayed.join(p.file_name().unwrap())).unwrap();
        }
    }
    let (from_chain, summary) = open(&data);
    assert_eq!(
        (summary.snapshot_offset, summary.replayed),
        (heads.last().map(|h| h.offset), 0)
    );
    let (from_log, summary) = open(&replayed);
    assert_eq!(summary.snapshot_offset, None);
    let (a, b) = (from_chain.stats().engine, from_log.stats().engine);
    assert_eq!(
        (
            a.cards,
            a.terminals,
            a.authorizations,
            a.authorizations_retained
        ),
        (
            b.cards,
            b.terminals,
            b.authorizations,
            b.authorizations_retained
        )
    );
    assert_eq!(a.cards, CARDS as usize);
    let (from_chain, from_log) = (Arc::new(from_chain), Arc::new(from_log));
    // Retries find their answers; new authorizations of every card are decided alike.
    for (i, first) in answers.iter().enumerate().step_by(37) {
        let again = from_chain
            .authorize(
                authorization(i as u32, &format!("r-{i}")),
                0,
                &me,
                Instant::now(),
            )
            .await
            .unwrap();
        assert_eq!(again.authorization_id, first.authorization_id);
    }
    for i in 600..600 + CARDS {
        let id = format!("probe-{i}");
        let x = from_chain
            .authorize(authorization(i, &id), 0, &me, Instant::now())
            .await
            .unwrap();
        let y = from_log
            .authorize(authorization(i, &id), 0, &me, Instant::now())
            .await
            .unwrap();
        assert_eq!(x.outcome, y.outcome, "{id}");
        assert_eq!(x.authorization_id, y.authorization_id);
    }
}
