//! Golden tests: every `mappings/NAME.toml` turns each
//! `tests/fixtures/NAME/*.input.json` into exactly `*.expected.json`.

use std::path::Path;

use authbridge::config::AuthApiSettings;
use authbridge::front::auth_api::card::CardBuilder;
use authbridge::lookup::CardProducer;
use serde_json::Value;

use crate::helpers::repo_path;

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_shipped_mapping_reproduces_its_fixtures() {
    let mut checked = 0;
    let mut mappings: Vec<_> = std::fs::read_dir(repo_path("mappings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    mappings.sort();
    assert!(!mappings.is_empty());
    for mapping_path in mappings {
        let name = mapping_path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cards = CardBuilder::load(&AuthApiSettings {
            mapping: mapping_path.clone(),
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let dir = repo_path(&format!("tests/fixtures/{name}"));
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("mapping {name} has no fixtures in {}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".input.json"))
            .collect();
        inputs.sort();
        assert!(
            !inputs.is_empty(),
            "mapping {name} has no *.input.json fixtures"
        );
        for input in inputs {
            let expected_path = input
                .to_string_lossy()
                .replace(".input.json", ".expected.json");
            let crm = read_json(&input);
            let card = cards
                .card(&crm)
                .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
            // What the server sends (written from the descriptor) is byte for
            // byte what the typed structs serialise to.
            let served = cards
                .produce(&crm)
                .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
            assert_eq!(
                String::from_utf8(served).unwrap(),
                serde_json::to_string(&card).unwrap(),
                "{}",
                input.display()
            );
            let card = serde_json::to_value(card).unwrap();
            assert_eq!(
                card,
                read_json(Path::new(&expected_path)),
                "{}",
                input.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 2);
}

#[test]
fn every_users_api_mapping_reproduces_its_fixtures() {
    let mut checked = 0;
    for mapping in authbridge::tools::mapping_files(&repo_path("mappings/users")) {
        let name = mapping.file_stem().unwrap().to_string_lossy().into_owned();
        let dir = repo_path(&format!("tests/fixtures/users/{name}"));
        let inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("users mapping {name} has no fixtures in {}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with(".input.json"))
            .collect();
        assert!(!inputs.is_empty(), "users mapping {name} has no fixtures");
        for input in inputs {
            let settings = AuthApiSettings {
                mapping: mapping.clone(),
                ..Default::default()
            };
            let text = std::fs::read_to_string(&input).unwrap();
            let out = authbridge::tools::dry_run(&settings, &text)
                .unwrap_or_else(|e| panic!("{}: {e:?}", input.display()));
            let expected_path = input
                .to_string_lossy()
                .replace(".input.json", ".expected.json");
            let card: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(
                card,
                read_json(Path::new(&expected_path)),
                "{}",
                input.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "every users mapping, order history included");
}
