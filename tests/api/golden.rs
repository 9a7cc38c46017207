//! Golden tests: every `mappings/NAME.toml` turns each
//! `tests/fixtures/NAME/*.input.json` into exactly `*.expected.json`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use authbridge::config::AuthApiSettings;
use authbridge::front::auth_api::card::CardBuilder;
use authbridge::lookup::CardProducer;
use serde_json::Value;

use crate::helpers::{fixture_pairs, read_json, repo_path};

/// Fixture (input, expected) paths.
type Pairs = Vec<(PathBuf, PathBuf)>;

/// Every mapping in `folder` (sorted, non-empty) with the fixture pairs of
/// `{fixtures}NAME/`; also the number of pairs in all. Every fixture folder
/// there belongs to a mapping, so none is left unchecked.
fn mappings_with_fixtures(folder: &str, fixtures: &str) -> (Vec<(PathBuf, Pairs)>, usize) {
    let mappings = authbridge::tools::mapping_files(&repo_path(folder));
    assert!(!mappings.is_empty(), "no mappings in {folder}");
    let names: BTreeSet<String> = mappings
        .iter()
        .map(|m| m.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let folders: BTreeSet<String> = std::fs::read_dir(repo_path(fixtures))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| folder_name(&p))
        // `users` holds the users mappings' own folders; `openapi` the
        // vendored OpenAPI schema (not a mapping's).
        .filter(|name| !matches!(name.as_str(), "users" | "openapi"))
        .collect();
    assert_eq!(folders, names, "one fixture folder per mapping in {folder}");
    let all: Vec<_> = mappings
        .into_iter()
        .map(|mapping| {
            let name = mapping.file_stem().unwrap().to_string_lossy().into_owned();
            let pairs = fixture_pairs(&repo_path(&format!("{fixtures}{name}")));
            (mapping, pairs)
        })
        .collect();
    let total = all.iter().map(|(_, pairs)| pairs.len()).sum();
    (all, total)
}

fn folder_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_shipped_mapping_reproduces_its_fixtures() {
    let (mappings, total) = mappings_with_fixtures("mappings", "tests/fixtures/");
    let mut checked = 0;
    for (mapping, pairs) in mappings {
        let cards = CardBuilder::load(&AuthApiSettings {
            mapping,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        for (input, expected) in pairs {
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
            assert_eq!(card, read_json(&expected), "{}", input.display());
            checked += 1;
        }
    }
    assert_eq!(checked, total, "every fixture pair was checked");
    assert!(checked >= 2);
}

#[test]
fn every_users_api_mapping_reproduces_its_fixtures() {
    let (mappings, total) = mappings_with_fixtures("mappings/users", "tests/fixtures/users/");
    let mut checked = 0;
    for (mapping, pairs) in mappings {
        let settings = AuthApiSettings {
            mapping,
            ..Default::default()
        };
        for (input, expected) in pairs {
            let text = std::fs::read_to_string(&input).unwrap();
            let out = authbridge::tools::dry_run(&settings, &text)
                .unwrap_or_else(|e| panic!("{}: {e:?}", input.display()));
            let card: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(card, read_json(&expected), "{}", input.display());
            checked += 1;
        }
    }
    assert_eq!(checked, total, "every fixture pair was checked");
    assert!(checked >= 10, "every users mapping, order history included");
}
