//! Mapping speed: `apply()` (CRM JSON → card value) and the full card build
//! (apply + typed schema check + serialisation) on the generic bank mapping,
//! for a ~1.5 KB card with two companies and a card with 50 companies.
//!
//! Run: `cargo bench --bench mapping`.

use std::hint::black_box;

use authbridge::config::AuthApiSettings;
use authbridge::front::auth_api::card::CardBuilder;
use authbridge::lookup::CardProducer;
use authbridge::mapping::Mapping;
use authbridge::schema::{ApiVersion, auth_api::RESPONSE};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

fn bench(c: &mut Criterion) {
    let root = env!("CARGO_MANIFEST_DIR");
    let path = format!("{root}/mappings/generic-bank.toml");
    let two: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{root}/tests/fixtures/generic-bank/alice.input.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut fifty = two.clone();
    let company = two["companies"][0].clone();
    fifty["companies"] = Value::Array(
        (0..50)
            .map(|i| {
                let mut c = company.clone();
                c["id"] = Value::from(300_000 + i);
                c
            })
            .collect(),
    );
    let mapping = Mapping::load(std::path::Path::new(&path), &RESPONSE, ApiVersion::V1_2).unwrap();
    let cards = CardBuilder::load(&AuthApiSettings {
        mapping: path.clone().into(),
        ..Default::default()
    })
    .unwrap();

    let mut group = c.benchmark_group("mapping");
    for (name, input) in [("2_companies", &two), ("50_companies", &fifty)] {
        let bytes = cards.produce(input).unwrap().len();
        eprintln!("{name}: card is {bytes} bytes");
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("apply/{name}"), |b| {
            b.iter(|| mapping.apply(black_box(input)).unwrap())
        });
        group.bench_function(format!("card_bytes/{name}"), |b| {
            b.iter(|| cards.produce(black_box(input)).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
