//! `decide()` with a million cards in state (criterion), with the built-in scorecard and with
//! a 300-tree model of depth 6; the model alone (margin, and margin plus TreeSHAP reasons);
//! the freeze of the state that a snapshot takes, and the encoding of a snapshot segment
//! against the whole state; an authorization's event encoded (under the engine lock) and
//! decoded (by each consumer of the log).
//! Set CARDGUARD_BENCH_CARDS to change the number of cards (default 1,000,000; each with 12
//! transactions over 30 days).

use cardguard_core::Timestamp;
use cardguard_engine::segment::SLICES;
use cardguard_engine::synth::{ok_checks, populate, random_trees, transaction};
use cardguard_engine::{AuthRecord, Engine, EngineConfig, EventEncoding, Outcome, Scorer};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::sync::Arc;

fn bench(c: &mut Criterion) {
    let cards: u64 = std::env::var("CARDGUARD_BENCH_CARDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let now = Timestamp::parse_rfc3339("2026-11-21T12:00:00Z").unwrap();
    let mut e = Engine::new(EngineConfig::default());
    populate(&mut e, cards, 12, now, 7);
    let probes: Vec<_> = (0..4096u64)
        .map(|i| {
            transaction(
                i * 7919 + 1,
                (i * 2_654_435_761) % cards,
                now,
                format!("p{i}"),
            )
        })
        .collect();
    let checks = ok_checks();
    let mut i = 0usize;
    c.bench_function(&format!("decide/{cards}_cards"), |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            black_box(e.decide(black_box(&probes[i]), &checks))
        })
    });

    // A snapshot's freeze (taken under the application's lock) and its release.
    c.bench_function(&format!("freeze/{cards}_cards"), |b| {
        b.iter(|| black_box(e.freeze()))
    });

    // A snapshot segment after 50,000 authorizations (the cards they changed and a
    // sixteenth of the state whole), against the whole state, encoded as the snapshot
    // writer does (postcard).
    let _ = e.freeze();
    for i in 0..50_000u64 {
        let card = (i * 2_654_435_761 + 17) % cards;
        let rec = AuthRecord {
            authorization_id: e.next_authorization_id(),
            tx: transaction(i * 31 + 5, card, now, format!("s{i}")),
            checks: ok_checks(),
            outcome: Outcome::unscored_approval(),
        };
        let _ = e.apply_auth(&rec, i);
    }
    let frozen = e.freeze();
    let mut buf = Vec::new();
    let mut encode = |slices: std::ops::Range<u32>| {
        buf.clear();
        postcard::to_io(&frozen.segment(slices), &mut buf)?;
        Ok::<_, postcard::Error>(buf.len())
    };
    println!(
        "segment {} bytes, whole state {} bytes",
        encode(3..4).unwrap_or(0),
        encode(0..SLICES).unwrap_or(0)
    );
    let mut g = c.benchmark_group("snapshot");
    g.sample_size(10);
    g.bench_function(format!("segment/{cards}_cards_50000_authorizations"), |b| {
        b.iter(|| black_box(encode(3..4)))
    });
    g.bench_function(format!("whole/{cards}_cards"), |b| {
        b.iter(|| black_box(encode(0..SLICES)))
    });
    g.finish();

    // An authorization's event as the request path encodes it and each consumer of the
    // log decodes it (a decision of the default ruleset, its features and reasons).
    let rec = AuthRecord {
        authorization_id: e.next_authorization_id(),
        tx: probes[0].clone(),
        checks: ok_checks(),
        outcome: e.decide(&probes[0], &checks),
    };
    for (name, encoding) in [
        ("msgpack", EventEncoding::MessagePack),
        ("json", EventEncoding::Json),
    ] {
        let payload = cardguard_engine::encode_event(&rec, encoding).unwrap();
        let n = payload.len();
        c.bench_function(&format!("event/encode_auth_{name}_{n}_bytes"), |b| {
            b.iter(|| black_box(cardguard_engine::encode_event(black_box(&rec), encoding).unwrap()))
        });
        c.bench_function(&format!("event/decode_auth_{name}_{n}_bytes"), |b| {
            b.iter(|| black_box(AuthRecord::decode(black_box(&payload)).unwrap()))
        });
    }

    let feats: Vec<_> = probes.iter().map(|p| e.features(p)).collect();
    let model = random_trees(300, 6, &feats, 11);
    c.bench_function("model/300_trees_depth_6/margin", |b| {
        b.iter(|| {
            i = (i + 1) % feats.len();
            black_box(model.margin(black_box(&feats[i].values)))
        })
    });
    let ctx = e.context(&probes[0]);
    c.bench_function("model/300_trees_depth_6/treeshap_reasons", |b| {
        b.iter(|| {
            i = (i + 1) % feats.len();
            black_box(model.explain(black_box(&feats[i]), &ctx))
        })
    });
    e.set_scorer(Arc::new(model));
    c.bench_function(&format!("decide_with_model/{cards}_cards"), |b| {
        b.iter(|| {
            i = (i + 1) % probes.len();
            black_box(e.decide(black_box(&probes[i]), &checks))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = bench
}
criterion_main!(benches);
