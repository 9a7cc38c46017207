//! `authbridge map` tells everything: every apply error in one run with the
//! rule's `file:line:column`, the value and what was expected; `--explain`
//! prints each card field with its source chain.

use crate::helpers::file;
use crate::process::command_in_repo;

fn map(mapping: &str, input: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let mapping = file(mapping);
    let input = file(input);
    let out = command_in_repo()
        .arg("map")
        .args(extra)
        .arg("--mapping")
        .arg(mapping.path())
        .arg("--input")
        .arg(input.path())
        .output()
        .unwrap();
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&mapping.path().display().to_string(), "M");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

const MAPPING: &str = r#"[client]
id = "$.id"
name = "$.name"
surname = "$.last"
firstName = { const = "" }
patronymic = { const = "" }
type = { const = "0" }
enabled = true
birthdate = { path = "$.born", date = ["%d.%m.%Y", "iso"] }

[client.branch]
id = "$.branch"

[companyList]
each = "$.orgs[*]"
item = { id = "@.id", name = "@.title" }
"#;

#[test]
fn map_lists_every_apply_error_with_position_value_and_expectation() {
    let (code, stdout, stderr) = map(
        MAPPING,
        r#"{"id": 1, "name": "A", "born": "1973/09/02", "branch": "9223372036854775808",
            "orgs": [{"id": "x7", "title": "Org"}]}"#,
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stdout.is_empty(), "no card on errors: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(
        lines[0].starts_with("M:4:1: client.surname: required")
            && lines[0].ends_with("(expected: a value at $.last)"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("M:9:1: client.birthdate: ")
            && lines[1].ends_with(
                "(value: \"1973/09/02\", expected: a date in one of the formats [%d.%m.%Y, iso])"
            ),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("M:12:1: client.branch.id: ")
            && lines[2]
                .contains("out of range for a 64-bit integer (value: \"9223372036854775808\""),
        "{stderr}"
    );
    assert!(
        lines[3].starts_with("M:16:10: companyList[0].id: ")
            && lines[3].contains("(value: \"x7\", expected: an integer from"),
        "{stderr}"
    );
}

#[test]
fn map_explain_prints_each_field_with_its_source_chain() {
    let (code, stdout, stderr) = map(
        MAPPING,
        r#"{"id": 1, "name": "A", "last": "B", "born": "02.09.1973", "branch": 7,
            "orgs": [{"id": 5, "title": "Org"}]}"#,
        &["--explain"],
    );
    assert_eq!(code, Some(0), "{stderr}");
    for line in [
        "client.id: $.id (value: \"1\")",
        "client.type: const \"0\" (value: \"0\")",
        "client.birthdate: $.born | date [%d.%m.%Y, iso] (value: \"1973-09-02\")",
        "client.branch.id: $.branch (value: 7)",
        "companyList[0].name: $.orgs[*] → @.title (value: \"Org\")",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line} in:\n{stdout}");
    }
}

#[test]
fn map_lists_every_load_error_and_the_bad_sample_at_once() {
    let (code, _, stderr) = map(
        "[client]\nid = \"$.id\"\nsurnme = \"$.x\"\n",
        "{not json",
        &[],
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(
            "M:3:1: client.surnme: unknown field `surnme` in Client; did you mean `surname`?"
        ),
        "{stderr}"
    );
}
