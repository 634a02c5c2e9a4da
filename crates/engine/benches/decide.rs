//! `decide()` with a million cards in state (criterion), with the built-in scorecard and with
//! a 300-tree model of depth 6; the model alone (margin, and margin plus TreeSHAP reasons);
//! the freeze of the state that a snapshot takes.
//! Set CARDGUARD_BENCH_CARDS to change the number of cards (default 1,000,000; each with 12
//! transactions over 30 days).

use cardguard_core::Timestamp;
use cardguard_engine::synth::{ok_checks, populate, random_trees, transaction};
use cardguard_engine::{Engine, EngineConfig, Scorer};
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
