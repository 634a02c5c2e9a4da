//! Engine scenarios end to end through `decide` and `apply_auth`: impossible travel, PIN
//! tries, card testing, labels and terminal risk, and replay determinism.

use cardguard_core::{
    CardToken, Channel, Country, Currency, Decision, Last4, Location, Mcc, Merchant, Money,
    ReasonCode, ResponseCode, Timestamp, TxType,
};
use cardguard_engine::synth::ok_checks;
use cardguard_engine::{
    AuthRecord, CardChecks, CardStatus, CscCheck, Engine, EngineConfig, LabelRecord, Outcome,
    PinCheck, TxFacts, idx,
};

fn tx(id: &str, at: &str, card: u8, city: (&str, &str, f64, f64), amount: u64) -> TxFacts {
    TxFacts {
        id: id.into(),
        ts: Timestamp::parse_rfc3339(at).unwrap(),
        utc_offset_min: 0,
        card_token: CardToken([card; 16]),
        last4: Last4::parse("2349").unwrap(),
        amount: Money::new(amount, Currency::JPY).unwrap(),
        amount_base: amount,
        merchant: Merchant {
            id: format!("m-{}", city.1),
            terminal_id: "t-1".into(),
            name: "SHOP".into(),
            mcc: Mcc::parse("5411").unwrap(),
            country: Country::parse(city.0).unwrap(),
            city: city.1.into(),
            location: Some(Location::new(city.2, city.3).unwrap()),
        },
        channel: Channel::CardPresent,
        tx_type: TxType::Purchase,
        device_id: None,
        device_ip: None,
        ip_country: None,
        email_domain: None,
        home_country: Some(Country::parse("US").unwrap()),
        home: None,
        received: None,
        client: None,
        digest: None,
        authenticated: None,
    }
}

const NY: (&str, &str, f64, f64) = ("US", "New York", 40.71, -74.01);
const LA: (&str, &str, f64, f64) = ("US", "Los Angeles", 34.05, -118.24);
const NEWARK: (&str, &str, f64, f64) = ("US", "Newark", 40.74, -74.17);

/// The card checks of a wrong PIN and of the right one.
fn pin_checks() -> (CardChecks, CardChecks) {
    let with = |pin| CardChecks { pin, ..ok_checks() };
    (with(PinCheck::Wrong), with(PinCheck::Correct))
}

/// Decides and applies, as the server does.
fn run(e: &mut Engine, t: TxFacts, checks: CardChecks) -> Outcome {
    let outcome = e.decide(&t, &checks);
    let rec = AuthRecord {
        authorization_id: e.next_authorization_id(),
        tx: t,
        checks,
        outcome,
    };
    e.apply_auth(&rec, 0).unwrap();
    rec.outcome
}

#[test]
fn new_york_then_los_angeles_five_minutes_later_is_held() {
    let mut e = Engine::new(EngineConfig::default());
    let first = run(
        &mut e,
        tx("a1", "2026-11-21T10:00:00-05:00", 1, NY, 3000),
        ok_checks(),
    );
    assert_eq!(first.decision, Decision::Approve);
    let second = run(
        &mut e,
        tx("a2", "2026-11-21T10:05:00-05:00", 1, LA, 3000),
        ok_checks(),
    );
    assert_eq!(second.decision, Decision::Hold);
    assert_eq!(second.response_code, ResponseCode::ReferToIssuer);
    let r = &second.reasons[0];
    assert_eq!(r.code, ReasonCode::ImpossibleTravel);
    assert!(r.detail.contains("5 minutes"), "{}", r.detail);
    assert!(
        r.detail.starts_with("39"),
        "distance in the detail: {}",
        r.detail
    );
}

#[test]
fn a_nearby_town_or_a_plausible_flight_is_not_impossible_travel() {
    let mut e = Engine::new(EngineConfig::default());
    run(
        &mut e,
        tx("a1", "2026-11-21T10:00:00Z", 1, NY, 3000),
        ok_checks(),
    );
    // 14 km in 2 minutes: within the small-distance allowance.
    let near = run(
        &mut e,
        tx("a2", "2026-11-21T10:02:00Z", 1, NEWARK, 3000),
        ok_checks(),
    );
    assert_eq!(near.decision, Decision::Approve);
    // Newark to Los Angeles in 6 hours: a flight.
    let flight = run(
        &mut e,
        tx("a3", "2026-11-21T16:02:00Z", 1, LA, 3000),
        ok_checks(),
    );
    assert_eq!(flight.decision, Decision::Approve, "{flight:?}");
    // E-commerce is not a place: no travel check.
    let mut online = tx("a4", "2026-11-21T16:03:00Z", 1, NY, 3000);
    online.channel = Channel::Ecommerce;
    assert_ne!(
        run(&mut e, online, ok_checks()).response_code,
        ResponseCode::ReferToIssuer
    );
}

#[test]
fn third_wrong_pin_in_a_row_answers_75_and_the_lock_holds() {
    let mut e = Engine::new(EngineConfig::default());
    let (wrong, right) = pin_checks();
    let at = |m: u32| format!("2026-11-21T10:{m:02}:00Z");
    assert_eq!(
        run(&mut e, tx("p1", &at(0), 1, NY, 100), wrong).response_code,
        ResponseCode::IncorrectPin
    );
    // A correct PIN in between resets the streak.
    assert_eq!(
        run(&mut e, tx("p2", &at(1), 1, NY, 100), right).response_code,
        ResponseCode::Approved
    );
    assert_eq!(
        run(&mut e, tx("p3", &at(2), 1, NY, 100), wrong).response_code,
        ResponseCode::IncorrectPin
    );
    assert_eq!(
        run(&mut e, tx("p4", &at(3), 1, NY, 100), wrong).response_code,
        ResponseCode::IncorrectPin
    );
    let third = run(&mut e, tx("p5", &at(4), 1, NY, 100), wrong);
    assert_eq!(third.response_code, ResponseCode::PinTriesExceeded);
    assert_eq!(third.reasons[0].code, ReasonCode::PinTriesExceeded);
    // Locked: even the right PIN is refused until the lock lifts (24 h by default).
    assert_eq!(
        run(&mut e, tx("p6", &at(5), 1, NY, 100), right).response_code,
        ResponseCode::PinTriesExceeded
    );
    let next_day = run(&mut e, tx("p7", "2026-11-22T10:06:00Z", 1, NY, 100), right);
    assert_eq!(next_day.response_code, ResponseCode::Approved);
    // Another card is not affected.
    assert_eq!(
        run(&mut e, tx("p8", &at(6), 2, NY, 100), right).response_code,
        ResponseCode::Approved
    );
}

#[test]
fn a_burst_of_wrong_security_codes_is_card_testing() {
    let mut e = Engine::new(EngineConfig::default());
    let bad = CardChecks {
        csc: CscCheck::Mismatch,
        ..ok_checks()
    };
    let t = |i: u32| {
        let mut x = tx(
            &format!("c{i}"),
            &format!("2026-11-21T10:00:{:02}Z", i * 5),
            1,
            NY,
            100,
        );
        x.channel = Channel::Ecommerce;
        x
    };
    assert_eq!(
        run(&mut e, t(0), bad).response_code,
        ResponseCode::CscMismatch
    );
    assert_eq!(
        run(&mut e, t(1), bad).response_code,
        ResponseCode::CscMismatch
    );
    let third = run(&mut e, t(2), bad);
    assert_eq!(third.response_code, ResponseCode::SuspectedFraud);
    assert_eq!(third.reasons[0].code, ReasonCode::CardTesting);
    // The right code right after the burst does not get through either.
    let after = run(&mut e, t(3), ok_checks());
    assert_eq!(after.response_code, ResponseCode::SuspectedFraud);
}

#[test]
fn card_status_and_expiry_come_first() {
    let mut e = Engine::new(EngineConfig::default());
    let cases = [
        (
            CardChecks {
                pan_valid: false,
                ..ok_checks()
            },
            ResponseCode::InvalidCardNumber,
        ),
        (
            CardChecks {
                status: CardStatus::Unknown,
                ..ok_checks()
            },
            ResponseCode::InvalidCardNumber,
        ),
        (
            CardChecks {
                status: CardStatus::Stolen,
                ..ok_checks()
            },
            ResponseCode::StolenCard,
        ),
        (
            CardChecks {
                expired: true,
                ..ok_checks()
            },
            ResponseCode::ExpiredCard,
        ),
        (
            CardChecks {
                expiry_matches: false,
                ..ok_checks()
            },
            ResponseCode::ExpiredCard,
        ),
    ];
    for (i, (c, code)) in cases.into_iter().enumerate() {
        let o = run(
            &mut e,
            tx(&format!("s{i}"), "2026-11-21T10:00:00Z", 9, NY, 100),
            c,
        );
        assert_eq!((o.decision, o.response_code), (Decision::Decline, code));
    }
}

#[test]
fn labels_raise_the_terminal_fraud_rate_only_once_they_arrive() {
    // Rates over windows ending today (no label-delay shift), to see each label land.
    let mut e = Engine::new(EngineConfig {
        terminal_risk_delay_days: 0,
        ..EngineConfig::default()
    });
    let mut ids = Vec::new();
    for i in 0..10u8 {
        let t = tx(
            &format!("l{i}"),
            &format!("2026-11-2{}T10:00:00Z", i % 3),
            10 + i,
            NY,
            500,
        );
        ids.push(e.next_authorization_id());
        run(&mut e, t, ok_checks());
    }
    let probe = tx("probe", "2026-11-22T12:00:00Z", 99, NY, 500);
    assert_eq!(e.features(&probe).get(idx::TERM_RATE_7D), 0.0);
    for id in &ids[..4] {
        let l = LabelRecord {
            authorization_id: id.clone(),
            fraud: true,
            ts: Timestamp::parse_rfc3339("2026-11-22T11:00:00Z").unwrap(),
            source: None,
        };
        e.apply_label(&l).unwrap();
        e.apply_label(&l).unwrap(); // the same label twice counts once
    }
    assert!((e.features(&probe).get(idx::TERM_RATE_7D) - 0.4).abs() < 1e-6);
    // Withdrawn as genuine: the rate drops again.
    let l = LabelRecord {
        authorization_id: ids[0].clone(),
        fraud: false,
        ts: Timestamp::parse_rfc3339("2026-11-22T11:30:00Z").unwrap(),
        source: None,
    };
    e.apply_label(&l).unwrap();
    assert!((e.features(&probe).get(idx::TERM_RATE_7D) - 0.3).abs() < 1e-6);
    let o = e.decide(&probe, &ok_checks());
    // 3 labelled frauds in 10 transactions: the scorecard gives the terminal 30 points.
    assert_eq!((o.decision, o.risk_score), (Decision::Approve, 30));
    assert!(
        e.apply_label(&LabelRecord {
            authorization_id: "au_999999999999".into(),
            ..l
        })
        .is_err()
    );
}

#[test]
fn duplicate_request_ids_are_refused_by_apply() {
    let mut e = Engine::new(EngineConfig::default());
    run(
        &mut e,
        tx("dup", "2026-11-21T10:00:00Z", 1, NY, 100),
        ok_checks(),
    );
    let t = tx("dup", "2026-11-21T10:01:00Z", 1, NY, 100);
    let outcome = e.decide(&t, &ok_checks());
    let rec = AuthRecord {
        authorization_id: e.next_authorization_id(),
        tx: t,
        checks: ok_checks(),
        outcome,
    };
    assert!(e.apply_auth(&rec, 0).is_err());
    assert!(e.find_request("dup").is_some());
    assert_eq!(e.stats().authorizations, 1);
}

#[test]
fn authorizations_past_the_retention_are_forgotten_and_ids_keep_counting() {
    let mut e = Engine::new(EngineConfig {
        auth_retention_days: 30,
        ..EngineConfig::default()
    });
    let first = e.next_authorization_id();
    run(
        &mut e,
        tx("old", "2026-01-01T10:00:00Z", 1, NY, 100),
        ok_checks(),
    );
    run(
        &mut e,
        tx("mid", "2026-01-20T10:00:00Z", 1, NY, 100),
        ok_checks(),
    );
    assert!(e.find_request("old").is_some());
    // 40 days on: the first is past 30 days and leaves; the second stays.
    let late = e.next_authorization_id();
    run(
        &mut e,
        tx("new", "2026-02-10T10:00:00Z", 1, NY, 100),
        ok_checks(),
    );
    assert!(e.find_request("old").is_none());
    assert!(e.find_authorization(&first).is_none());
    assert!(e.find_request("mid").is_some());
    assert_eq!(
        e.find_authorization(&late).map(|a| a.ts_ms),
        e.find_request("new").map(|a| a.ts_ms)
    );
    assert_eq!(e.next_authorization_id(), "au_000000000003");
    let s = e.stats();
    assert_eq!((s.authorizations, s.authorizations_retained), (3, 2));
    // A label for the forgotten one changes nothing (the application refuses it before it
    // is logged, as `find_authorization` has none; a replay passes over it); one for a kept
    // one lands.
    let label = |id: &str| LabelRecord {
        authorization_id: id.to_owned(),
        fraud: true,
        ts: Timestamp::parse_rfc3339("2026-02-11T00:00:00Z").unwrap(),
        source: None,
    };
    let before = e.stats();
    assert!(e.apply_label(&label(&first)).is_ok());
    assert_eq!(e.stats(), before);
    assert!(e.apply_label(&label(&late)).is_ok());
    // The same request id after it was forgotten is a new authorization.
    run(
        &mut e,
        tx("old", "2026-02-12T10:00:00Z", 1, NY, 100),
        ok_checks(),
    );
    assert_eq!(e.stats().authorizations, 4);
    // A snapshot keeps the numbering.
    let bytes = serde_json::to_vec(e.state()).unwrap();
    let mut back = Engine::new(EngineConfig::default());
    back.restore(serde_json::from_slice(&bytes).unwrap());
    assert_eq!(back.next_authorization_id(), e.next_authorization_id());
    assert!(back.find_authorization(&late).is_some());
    assert!(back.find_request("mid").is_some());
}

#[test]
fn replaying_the_records_reproduces_every_decision_and_the_snapshot_round_trips() {
    let mut live = Engine::new(EngineConfig::default());
    let mut records = Vec::new();
    let places = [NY, LA, NEWARK];
    let mut frozen = None;
    for i in 0..300u32 {
        if i == 150 {
            frozen = Some(live.freeze());
        }
        let mut t = tx(
            &format!("r{i}"),
            &format!(
                "2026-11-{:02}T{:02}:{:02}:00Z",
                1 + i / 20,
                (i * 7) % 24,
                (i * 13) % 60
            ),
            (i % 7) as u8,
            places[(i % 3) as usize],
            u64::from(100 + (i * 37) % 5000),
        );
        if i % 5 == 0 {
            t.channel = Channel::Ecommerce;
            t.device_id = Some(format!("dev-{}", i % 4));
        }
        let checks = CardChecks {
            csc: if i % 11 == 0 {
                CscCheck::Mismatch
            } else {
                CscCheck::Match
            },
            ..ok_checks()
        };
        let outcome = live.decide(&t, &checks);
        let rec = AuthRecord {
            authorization_id: live.next_authorization_id(),
            tx: t,
            checks,
            outcome,
        };
        live.apply_auth(&rec, u64::from(i)).unwrap();
        records.push(rec);
    }
    let mut replay = Engine::new(EngineConfig::default());
    for (i, rec) in records.iter().enumerate() {
        // The replayed engine, in the same state, decides the same.
        assert_eq!(
            replay.decide(&rec.tx, &rec.checks),
            rec.outcome,
            "record {i}"
        );
        replay.apply_auth(rec, i as u64).unwrap();
    }
    assert_eq!(replay.stats(), live.stats());
    let bytes = serde_json::to_vec(live.state()).unwrap();
    let mut restored = Engine::new(EngineConfig::default());
    restored.restore(serde_json::from_slice(&bytes).unwrap());
    let probe = tx("probe", "2026-11-16T12:00:00Z", 3, LA, 999);
    assert_eq!(
        restored.decide(&probe, &ok_checks()),
        live.decide(&probe, &ok_checks())
    );
    assert_eq!(restored.features(&probe), live.features(&probe));
    assert!(restored.find_request("r17").is_some());
    // A state frozen half-way kept its shards while the live engine wrote on: restored and
    // with the later records replayed, it is the live state.
    let bytes = serde_json::to_vec(&frozen.unwrap().state).unwrap();
    let mut half = Engine::new(EngineConfig::default());
    half.restore(serde_json::from_slice(&bytes).unwrap());
    assert_eq!(half.next_authorization_id(), "au_000000000150");
    for (i, rec) in records.iter().enumerate().skip(150) {
        assert_eq!(half.decide(&rec.tx, &rec.checks), rec.outcome, "record {i}");
        half.apply_auth(rec, i as u64).unwrap();
    }
    for card in 0..7u8 {
        let p = tx("probe", "2026-11-16T12:00:00Z", card, LA, 999);
        assert_eq!(half.features(&p), live.features(&p), "card {card}");
    }
    assert_eq!(half.next_authorization_id(), live.next_authorization_id());
    assert_eq!(half.counts(), live.counts());
}

/// A one-split model on the card's transactions in the last hour: from the second one on,
/// the margin is +6 (held or declined, with reasons).
fn velocity_model() -> std::sync::Arc<cardguard_engine::TreeModel> {
    use cardguard_engine::model_file::{Comparison, Model, StumpLeaf, Tree};
    let f = cardguard_engine::FEATURE_NAMES
        .iter()
        .position(|n| *n == "card_count_1h")
        .expect("the engine computes card_count_1h");
    let leaf = |value, cover| StumpLeaf { value, cover };
    let tree = Tree::stump(0, 0.5, leaf(-6.0, 90.0), leaf(6.0, 10.0));
    let m = Model::new(
        vec![cardguard_engine::FEATURE_NAMES[f].to_owned()],
        Comparison::Le,
        0.0,
        vec![tree],
        serde_json::json!({}),
        "gbdt-velocity",
    )
    .unwrap();
    std::sync::Arc::new(m.compile().unwrap())
}

#[test]
fn reasons_computed_outside_the_lock_are_used_only_for_the_state_they_explain() {
    use cardguard_engine::Draft;
    let mut e = Engine::new(EngineConfig::default());
    e.set_scorer(velocity_model());
    run(
        &mut e,
        tx("a", "2026-11-21T10:00:00Z", 1, NY, 1000),
        ok_checks(),
    );
    let second = tx("b", "2026-11-21T10:01:00Z", 1, NY, 1000);
    let Draft::NeedsReasons(p) = e.draft(&second, &ok_checks(), None) else {
        panic!("a decline from the model asks for its reasons");
    };
    let reasons = p.explain();
    let Draft::Final(o) = e.draft(&second, &ok_checks(), Some(&reasons)) else {
        panic!("reasons of the same state are used");
    };
    assert_ne!(o.decision, Decision::Approve);
    assert!(
        o.reasons
            .iter()
            .any(|r| r.code == ReasonCode::ModelContribution && r.detail.contains("card_count_1h")),
        "{o:?}"
    );
    assert_eq!(
        o,
        e.decide(&second, &ok_checks()),
        "the same as deciding at once"
    );
    // Another authorization of the card in between changes the features: the reasons no
    // longer explain this decision and are asked for again.
    run(
        &mut e,
        tx("c", "2026-11-21T10:00:30Z", 1, NY, 1000),
        ok_checks(),
    );
    assert!(matches!(
        e.draft(&second, &ok_checks(), Some(&reasons)),
        Draft::NeedsReasons(_)
    ));
}

/// `t` as received by the server at `received` (its own clock).
fn received_at(mut t: TxFacts, received: &str) -> TxFacts {
    t.received = Some(Timestamp::parse_rfc3339(received).unwrap());
    t
}

/// Seconds after 2026-11-21T10:00:00Z, as RFC 3339.
fn server_time(s: u32) -> String {
    Timestamp(Timestamp::parse_rfc3339("2026-11-21T10:00:00Z").unwrap().0 + i64::from(s) * 1000)
        .to_rfc3339()
}

#[test]
fn wrong_pins_dated_later_do_not_reset_the_lock_the_servers_clock_does() {
    let mut e = Engine::new(EngineConfig::default());
    let (wrong, right) = pin_checks();
    // Each request claims to be a day after the one before; the server got them seconds
    // apart.
    let mut codes = Vec::new();
    for (i, checks) in [wrong, wrong, wrong, wrong, wrong, right]
        .into_iter()
        .enumerate()
    {
        let claimed = format!("2026-11-{}T10:00:00Z", 21 + i);
        let t = received_at(
            tx(&format!("p{i}"), &claimed, 1, NY, 100),
            &server_time(i as u32),
        );
        codes.push(run(&mut e, t, checks).response_code);
    }
    use ResponseCode::{IncorrectPin as Wrong, PinTriesExceeded as Locked};
    assert_eq!(codes, [Wrong, Wrong, Locked, Locked, Locked, Locked]);
    // A day later by the server's clock the lock has lifted, whatever the request says.
    let t = received_at(
        tx("p-late", "2026-11-21T10:00:00Z", 1, NY, 100),
        &server_time(25 * 3600),
    );
    assert_eq!(run(&mut e, t, right).response_code, ResponseCode::Approved);
}

#[test]
fn wrong_security_codes_dated_backwards_still_count_as_card_testing() {
    let mut e = Engine::new(EngineConfig::default());
    let bad = CardChecks {
        csc: CscCheck::Mismatch,
        ..ok_checks()
    };
    let mut codes = Vec::new();
    for i in 0..4u32 {
        // Each request claims to be an hour before the one before.
        let claimed = format!("2026-11-21T{:02}:00:00Z", 20 - i);
        let mut t = received_at(tx(&format!("c{i}"), &claimed, 1, NY, 100), &server_time(i));
        t.channel = Channel::Ecommerce;
        codes.push(run(&mut e, t, if i < 3 { bad } else { ok_checks() }).response_code);
    }
    use ResponseCode::{CscMismatch as N7, SuspectedFraud as Testing};
    assert_eq!(codes, [N7, N7, Testing, Testing]);
}

#[test]
fn a_request_dated_2099_neither_forgets_answered_ids_nor_cuts_a_history() {
    let mut e = Engine::new(EngineConfig {
        auth_retention_days: 30,
        ..EngineConfig::default()
    });
    let first = received_at(
        tx("first", "2026-11-21T10:00:00Z", 1, NY, 100),
        &server_time(0),
    );
    run(&mut e, first, ok_checks());
    let future = received_at(
        tx("future", "2099-01-01T00:00:00Z", 1, NY, 100),
        &server_time(1),
    );
    run(&mut e, future, ok_checks());
    assert!(
        e.find_request("first").is_some(),
        "an answered id was forgotten"
    );
    // Eight purchases in 40 seconds after it: every one stays in the card's history and
    // counts in its windows.
    for i in 0..8u32 {
        let t = received_at(
            tx(&format!("v{i}"), &server_time(10 + 5 * i), 1, NY, 100),
            &server_time(10 + 5 * i),
        );
        run(&mut e, t, ok_checks());
    }
    let probe = received_at(tx("probe", &server_time(60), 1, NY, 100), &server_time(60));
    // The first, the one dated 2099 (recorded at the server's time: no time past the
    // engine's clock is kept) and the eight, all within five minutes.
    let f = e.features(&probe);
    assert_eq!(f.windows.count[0], 10, "{:?}", f.windows);
    assert_eq!(e.card(&probe.card_token).unwrap().history.len(), 10);
    assert_eq!(e.stats().authorizations_retained, 10);
}

#[test]
fn a_reversal_takes_the_authorization_out_of_the_windows_once_and_replays_the_same() {
    use cardguard_engine::{Event, ReversalRecord};
    let mut live = Engine::new(EngineConfig::default());
    let mut events = Vec::new();
    let auth = |e: &mut Engine, t: TxFacts, events: &mut Vec<Event>| {
        let outcome = e.decide(&t, &ok_checks());
        let rec = AuthRecord {
            authorization_id: e.next_authorization_id(),
            tx: t,
            checks: ok_checks(),
            outcome,
        };
        e.apply_auth(&rec, events.len() as u64).unwrap();
        events.push(Event::Auth(Box::new(rec.clone())));
        rec
    };
    for (i, at) in ["09:00", "09:20", "09:40"].iter().enumerate() {
        let t = tx(
            &format!("v{i}"),
            &format!("2026-11-21T{at}:00Z"),
            5,
            NY,
            2000,
        );
        auth(&mut live, t, &mut events);
    }
    let probe = tx("probe", "2026-11-21T10:30:00Z", 5, NY, 2000);
    let before = live.features(&probe);
    let big = auth(
        &mut live,
        tx("big", "2026-11-21T10:00:00Z", 5, NY, 180_000),
        &mut events,
    );
    assert_eq!(big.outcome.decision, Decision::Approve);
    let during = live.features(&probe);
    assert_eq!(during.get(idx::CARD_COUNT_1H), 2.0);
    assert_eq!(during.get(idx::TERM_COUNT_1D), 4.0);
    let rev = ReversalRecord {
        authorization_id: big.authorization_id.clone(),
        original: big.tx.clone(),
        approved: true,
        received: Timestamp::parse_rfc3339("2026-11-21T10:01:00Z").unwrap(),
        source: "test".into(),
        client: None,
        reference: None,
    };
    assert!(live.apply_reversal(&rev).unwrap());
    assert!(
        !live.apply_reversal(&rev).unwrap(),
        "a second reversal changes nothing"
    );
    let after = live.features(&probe);
    for (i, name) in cardguard_engine::FEATURE_NAMES.iter().enumerate() {
        if i == idx::SECS_SINCE_PREV || i == idx::KMH_FROM_LAST {
            // The card was at the shop at 10:00 all the same: its last use and place stay.
            assert_eq!(after.values[i], during.values[i], "{name}");
            continue;
        }
        assert_eq!(after.values[i], before.values[i], "{name}");
    }
    assert!(live.find_request("big").unwrap().reversed);
    events.push(Event::Reversal(Box::new(rev.clone())));
    // A replay of the events, the reversal among them, is the same state.
    let mut replay = Engine::new(EngineConfig::default());
    for (i, ev) in events.iter().enumerate() {
        replay.apply(ev, i as u64).unwrap();
    }
    assert_eq!(replay.features(&probe), after);
    assert_eq!(replay.stats(), live.stats());
    // An authorization that is not there cannot be reversed.
    let unknown = ReversalRecord {
        authorization_id: "au_000000000099".into(),
        ..rev
    };
    assert!(live.apply_reversal(&unknown).is_err());
}

#[test]
fn labels_and_reversals_of_authorizations_set_aside_as_damaged_replay_as_nothing() {
    use cardguard_engine::ReversalRecord;
    let mut e = Engine::new(EngineConfig::default());
    let t = tx("g1", "2026-11-21T10:00:00Z", 1, NY, 100);
    let outcome = e.decide(&t, &ok_checks());
    // Numbers 0 and 1 were in a span `cardguard log repair` set aside.
    let rec = AuthRecord {
        authorization_id: "au_000000000002".into(),
        tx: t,
        checks: ok_checks(),
        outcome,
    };
    e.apply_auth(&rec, 0).unwrap();
    assert_eq!(e.missing_authorizations(), 2);
    let before = e.stats();
    let label = LabelRecord {
        authorization_id: "au_000000000001".into(),
        fraud: true,
        ts: Timestamp::parse_rfc3339("2026-11-21T11:00:00Z").unwrap(),
        source: None,
    };
    e.apply_label(&label).unwrap();
    let rev = ReversalRecord {
        authorization_id: "au_000000000000".into(),
        original: rec.tx.clone(),
        approved: true,
        received: Timestamp::parse_rfc3339("2026-11-21T11:00:00Z").unwrap(),
        source: "test".into(),
        client: None,
        reference: None,
    };
    assert!(!e.apply_reversal(&rev).unwrap());
    assert_eq!(e.stats(), before);
    // A number never given is still an error.
    let later = LabelRecord {
        authorization_id: "au_000000000003".into(),
        ..label
    };
    assert!(e.apply_label(&later).is_err());
}

#[test]
fn it_was_me_releases_the_same_purchase_and_it_was_not_me_blocks_the_card() {
    use cardguard_engine::{AnswerRecord, Event};
    let mut e = Engine::new(EngineConfig::default());
    let mut events = Vec::new();
    let step = |e: &mut Engine, t: TxFacts, events: &mut Vec<Event>| {
        let outcome = e.decide(&t, &ok_checks());
        let rec = AuthRecord {
            authorization_id: e.next_authorization_id(),
            tx: t,
            checks: ok_checks(),
            outcome,
        };
        e.apply_auth(&rec, events.len() as u64).unwrap();
        events.push(Event::Auth(Box::new(rec.clone())));
        rec
    };
    let answer = |rec: &AuthRecord, yes: bool, at: &str| AnswerRecord {
        authorization_id: rec.authorization_id.clone(),
        yes,
        original: rec.tx.clone(),
        received: Timestamp::parse_rfc3339(at).unwrap(),
        via: "web".into(),
    };
    step(
        &mut e,
        tx("a1", "2026-11-21T10:00:00-05:00", 1, NY, 3000),
        &mut events,
    );
    let held = step(
        &mut e,
        tx("a2", "2026-11-21T10:05:00-05:00", 1, LA, 3000),
        &mut events,
    );
    assert_eq!(held.outcome.decision, Decision::Hold);
    let yes = answer(&held, true, "2026-11-21T15:06:00Z");
    assert!(e.apply_answer(&yes).unwrap());
    assert!(
        !e.apply_answer(&answer(&held, false, "2026-11-21T15:06:30Z"))
            .unwrap(),
        "answered once"
    );
    events.push(Event::Answer(Box::new(yes)));
    // Another amount at the same shop is still held; the same purchase is approved, once.
    let other = step(
        &mut e,
        tx("a3", "2026-11-21T10:06:40-05:00", 1, LA, 3100),
        &mut events,
    );
    assert_eq!(other.outcome.decision, Decision::Hold);
    let again = step(
        &mut e,
        tx("a4", "2026-11-21T10:07:00-05:00", 1, LA, 3000),
        &mut events,
    );
    assert_eq!(
        again.outcome.decision,
        Decision::Approve,
        "{:?}",
        again.outcome
    );
    assert!(
        e.card(&CardToken([1; 16])).unwrap().released.is_empty(),
        "used up"
    );
    // "It was not me" on another card's hold: that card is blocked.
    step(
        &mut e,
        tx("b1", "2026-11-21T10:00:00-05:00", 2, NY, 3000),
        &mut events,
    );
    let held = step(
        &mut e,
        tx("b2", "2026-11-21T10:05:00-05:00", 2, LA, 3000),
        &mut events,
    );
    let no = answer(&held, false, "2026-11-21T15:10:00Z");
    assert!(e.apply_answer(&no).unwrap());
    events.push(Event::Answer(Box::new(no)));
    let after = step(
        &mut e,
        tx("b3", "2026-11-21T10:30:00-05:00", 2, NY, 100),
        &mut events,
    );
    assert_eq!(
        (after.outcome.decision, after.outcome.response_code),
        (Decision::Decline, ResponseCode::RestrictedCard)
    );
    assert_eq!(
        e.find_request("b2").unwrap().label,
        cardguard_engine::Label::Fraud
    );
    assert_eq!(
        e.find_request("a2").unwrap().label,
        cardguard_engine::Label::Genuine
    );
    // A replay of the events is the same state.
    let mut replay = Engine::new(EngineConfig::default());
    for (i, ev) in events.iter().enumerate() {
        replay.apply(ev, i as u64).unwrap();
    }
    for card in [1u8, 2] {
        let p = tx("probe", "2026-11-21T11:00:00-05:00", card, LA, 3000);
        assert_eq!(
            replay.decide(&p, &ok_checks()),
            e.decide(&p, &ok_checks()),
            "card {card}"
        );
    }
    assert_eq!(replay.stats(), e.stats());
}

/// The built-in scorecard gives its reasons with its score and has no others: a decision
/// that is not an approval is final at once, even when the score had nothing to say (a rule
/// decided), not handed out to compute reasons that are always none.
#[test]
fn a_scorecard_decision_needs_no_reasons_computed_apart() {
    use cardguard_engine::{Draft, Policy};
    let mut e = Engine::new(EngineConfig::default());
    let rules = r#"
[[rules]]
id = "large"
description = "a large purchase"
rule = "decline if :amount: > 500"
"#;
    e.set_policy(std::sync::Arc::new(Policy::compile(rules, 2).unwrap()));
    let t = tx("big", &server_time(0), 1, NY, 1000);
    let Draft::Final(o) = e.draft(&t, &ok_checks(), None) else {
        panic!("the scorecard's decision is final");
    };
    assert_eq!(o.decision, Decision::Decline, "{o:?}");
    assert_eq!(o.risk_score, 0, "{o:?}");
    assert_eq!(o.matched_rules, ["large"]);
    assert_eq!(o, e.decide(&t, &ok_checks()));
}
