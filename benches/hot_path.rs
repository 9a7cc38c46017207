//! The per-request work of a lookup, without the network: the keyed hash of a
//! token, a cache hit, and (on a miss) mapping + serialisation of a card.
//!
//! Run: `cargo bench --bench hot_path`.

use std::hint::black_box;

use authbridge::config::AuthApiSettings;
use authbridge::config::CacheSettings;
use authbridge::front::auth_api::card::CardBuilder;
use authbridge::lookup::CardProducer;
use authbridge::lookup::cache::{Answer, AnswerCache, CachePolicy, KeyHasher};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;

fn bench(c: &mut Criterion) {
    let root = env!("CARGO_MANIFEST_DIR");
    let crm: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{root}/tests/fixtures/generic-bank/alice.input.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let cards = CardBuilder::load(&AuthApiSettings {
        mapping: format!("{root}/mappings/generic-bank.toml").into(),
        ..Default::default()
    })
    .unwrap();
    let card = cards.produce(&crm).unwrap();

    let mut group = c.benchmark_group("hot_path");
    let hasher = KeyHasher::random();
    group.bench_function("hmac_key", |b| {
        b.iter(|| hasher.key("auth-api", black_box("a57974242d0146c28056")))
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let cache = AnswerCache::new(&CacheSettings::default());
    let key = hasher.key("auth-api", "a57974242d0146c28056");
    let entry = CachePolicy::new(&CacheSettings::default())
        .entry(Answer::Card(Bytes::from(card.clone())), 0)
        .unwrap();
    runtime.block_on(cache.insert(key, entry));
    group.bench_function("cache_hit", |b| {
        b.iter(|| runtime.block_on(cache.get(black_box(&key))).unwrap())
    });

    group.bench_function("map_and_serialise_card", |b| {
        b.iter(|| cards.produce(black_box(&crm)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
