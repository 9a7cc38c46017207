//! Property tests: whatever JSON a CRM sends, every shipped mapping returns a
//! card or an error — it never panics.

use std::sync::OnceLock;

use authbridge::config::AuthApiSettings;
use authbridge::front::auth_api::card::CardBuilder;
use authbridge::lookup::CardProducer;
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::helpers::repo_path;

/// Every shipped mapping, compiled once, with its fixture inputs.
fn shipped() -> &'static [(String, CardBuilder, Vec<Value>)] {
    static ALL: OnceLock<Vec<(String, CardBuilder, Vec<Value>)>> = OnceLock::new();
    ALL.get_or_init(|| {
        authbridge::tools::mapping_files(&repo_path("mappings"))
            .into_iter()
            .map(|file| {
                let name = file.file_stem().unwrap().to_string_lossy().into_owned();
                let cards = CardBuilder::load(&AuthApiSettings {
                    mapping: file,
                    ..Default::default()
                })
                .unwrap();
                let dir = repo_path(&format!("tests/fixtures/{name}"));
                let fixtures = std::fs::read_dir(dir)
                    .map(|d| {
                        d.filter_map(Result::ok)
                            .map(|e| e.path())
                            .filter(|p| p.to_string_lossy().ends_with(".input.json"))
                            .map(|p| {
                                serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (name, cards, fixtures)
            })
            .collect()
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "[ -~а-я]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("Y"),
            Just("N"),
            Just("1973-09-02"),
            Just("02.09.1973"),
            Just("MOBILE"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z_]{1,10}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Replaces the value at the `pick`-th leaf of `doc` (in walk order) with `new`.
fn replace_leaf(doc: &mut Value, pick: &mut usize, new: &Value) {
    match doc {
        Value::Array(items) => items.iter_mut().for_each(|v| replace_leaf(v, pick, new)),
        Value::Object(map) => map.values_mut().for_each(|v| replace_leaf(v, pick, new)),
        leaf => {
            if *pick == 0 {
                *leaf = new.clone();
            }
            *pick = pick.wrapping_sub(1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_panics(doc in json_value()) {
        for (name, cards, _) in shipped() {
            // Never a panic; and a card that comes out is a valid one, an
            // error is one of the lookup's named errors.
            match cards.produce(&doc) {
                Ok(bytes) => {
                    let card: authbridge::schema::auth_api::Response = serde_json::from_slice(&bytes)
                        .map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
                    prop_assert!(card.client.is_some(), "{}", name);
                }
                Err(e) => prop_assert!(
                    matches!(e, authbridge::error::LookupError::Mapping(_)),
                    "{}: {}",
                    name,
                    e
                ),
            }
        }
    }

    #[test]
    fn fixtures_with_a_corrupted_value_never_panic(pick in 0usize..200, new in json_value()) {
        for (_, cards, fixtures) in shipped() {
            for fixture in fixtures {
                let mut doc = fixture.clone();
                let mut at = pick;
                replace_leaf(&mut doc, &mut at, &new);
                if let Ok(bytes) = cards.produce(&doc) {
                    // Whatever came out is a valid Auth API card.
                    let card: authbridge::schema::auth_api::Response = serde_json::from_slice(&bytes).unwrap();
                    prop_assert!(card.client.is_some());
                }
            }
        }
    }
}

#[test]
fn every_shipped_mapping_is_exercised() {
    assert!(
        shipped().len() >= 6,
        "all six shipped mappings are exercised"
    );
    for (name, _, fixtures) in shipped() {
        assert!(!fixtures.is_empty(), "{name} has fixtures to corrupt");
    }
}
