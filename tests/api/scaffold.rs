//! `authbridge scaffold` on every shipped fixture: each draft passes `check`
//! through the binary, and the share of the expected card the draft alone
//! reproduces is measured per shipped CRM mapping (printed; run with
//! `--nocapture` to read it).

use std::path::PathBuf;

use serde_json::Value;

use authbridge::config::AuthApiSettings;

use crate::helpers::repo_path;
use crate::process::{command, output_ok};

/// Every `(mapping name, fixture input)` pair of the shipped Auth API mappings.
fn shipped_inputs() -> Vec<(String, PathBuf)> {
    let mut pairs = Vec::new();
    for mapping in authbridge::tools::mapping_files(&repo_path("mappings")) {
        let name = mapping.file_stem().unwrap().to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir(repo_path(&format!("tests/fixtures/{name}"))) else {
            continue;
        };
        let mut inputs: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.to_string_lossy().ends_with(".input.json"))
            .collect();
        inputs.sort();
        pairs.extend(inputs.into_iter().map(|p| (name.clone(), p)));
    }
    assert!(pairs.len() >= 6, "fixtures not found: {pairs:?}");
    pairs
}

#[test]
fn scaffold_drafts_pass_check_for_every_shipped_fixture() {
    for (_, input) in shipped_inputs() {
        let out = output_ok(command().args(["scaffold", "--input"]).arg(&input));
        let draft = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(draft.path(), &out.stdout).unwrap();
        let check = command()
            .args(["check", "--mapping"])
            .arg(draft.path())
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "the draft for {} fails check:\n{}\n{}",
            input.display(),
            String::from_utf8_lossy(&check.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Every scalar of `value` by its path (`client.contacts.phone`,
/// `companyList[0].id`).
fn flatten(value: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                flatten(v, path, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, format!("{at}[{i}]"), out);
            }
        }
        scalar => out.push((at, scalar.clone())),
    }
}

#[test]
fn scaffold_hit_rate_per_shipped_mapping() {
    let mut rates: Vec<(String, usize, usize)> = Vec::new();
    for (name, input) in shipped_inputs() {
        let text = std::fs::read_to_string(&input).unwrap();
        let expected_file = input
            .to_string_lossy()
            .replace(".input.json", ".expected.json");
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(expected_file).unwrap()).unwrap();
        let draft = authbridge::scaffold::draft(&serde_json::from_str(&text).unwrap());
        let trial =
            authbridge::tools::trial("draft.toml", &draft, &AuthApiSettings::default(), &text);
        assert!(
            trial.load_errors.is_empty(),
            "{:?}\n{draft}",
            trial.load_errors
        );
        let mut want = Vec::new();
        flatten(&expected, String::new(), &mut want);
        let mut got = Vec::new();
        if let Some(card) = &trial.card {
            flatten(card, String::new(), &mut got);
        }
        let hits = want.iter().filter(|w| got.contains(w)).count();
        match rates.iter_mut().find(|(n, ..)| *n == name) {
            Some((_, h, t)) => {
                *h += hits;
                *t += want.len();
            }
            None => rates.push((name, hits, want.len())),
        }
    }
    println!("scaffold hit rate: expected card values the draft alone reproduces");
    println!("| mapping | reproduced | expected | share |\n|---|---|---|---|");
    for (name, hits, total) in &rates {
        println!(
            "| {name} | {hits} | {total} | {:.0} % |",
            100.0 * *hits as f64 / *total as f64
        );
    }
    // A floor, not a target: a change that breaks the basic guesses
    // (names, ids, companies of the plainest CRM) shows here.
    let (_, hits, total) = rates.iter().find(|(n, ..)| n == "generic-bank").unwrap();
    assert!(*hits * 2 >= *total, "{rates:?}");
}
