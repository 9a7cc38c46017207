//! Golden tests: every `mappings/NAME.toml` turns each
//! `tests/fixtures/NAME/*.input.json` into exactly `*.expected.json`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use authbridge::config::AuthApiSettings;
use authbridge::front::auth_api::card::CardBuilder;
use authbridge::lookup::CardProducer;

use crate::helpers::{
    Pairs, assert_expected_cards, mappings_with_fixture_pairs, read_json, repo_path,
};

/// Every mapping in `folder` with its fixture pairs (see
/// [`mappings_with_fixture_pairs`]). Every fixture folder there belongs to a
/// mapping, so none is left unchecked.
fn mappings_with_fixtures(folder: &str, fixtures: &str) -> Vec<(PathBuf, Pairs)> {
    let all = mappings_with_fixture_pairs(folder, fixtures);
    let names: BTreeSet<String> = all
        .iter()
        .map(|(m, _)| m.file_stem().unwrap().to_string_lossy().into_owned())
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
    all
}

fn folder_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_shipped_mapping_reproduces_its_fixtures() {
    let mappings = mappings_with_fixtures("mappings", "tests/fixtures/");
    let checked = assert_expected_cards(mappings, |mapping| {
        let cards = CardBuilder::load(&AuthApiSettings {
            mapping,
            ..Default::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        move |input| {
            let crm = read_json(input);
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
            serde_json::to_value(card).unwrap()
        }
    });
    assert!(checked >= 2);
}

#[test]
fn every_users_api_mapping_reproduces_its_fixtures() {
    let mappings = mappings_with_fixtures("mappings/users", "tests/fixtures/users/");
    let checked = assert_expected_cards(mappings, |mapping| {
        let settings = AuthApiSettings {
            mapping,
            ..Default::default()
        };
        move |input| {
            let text = std::fs::read_to_string(input).unwrap();
            let out = authbridge::tools::dry_run(&settings, &text)
                .unwrap_or_else(|e| panic!("{}: {e:?}", input.display()));
            serde_json::from_str(&out).unwrap()
        }
    });
    assert!(checked >= 10, "every users mapping, order history included");
}
