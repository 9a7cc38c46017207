use super::compile::step_of;
use super::*;

fn settings() -> UpstreamSettings {
    UpstreamSettings {
        base_url: Some("http://127.0.0.1:9".parse().unwrap()),
        ..Default::default()
    }
}

fn errors(text: &str) -> String {
    Pipeline::from_mapping_text("m.toml", text, &settings())
        .unwrap_err()
        .to_string()
}

#[test]
fn dependencies_come_from_placeholders_and_for_each() {
    let p = Pipeline::from_mapping_text(
        "m.toml",
        r#"
[[step]]
name = "session"
path = "/sessions/{token}"

[[step]]
name = "client"
path = "/clients/{$.steps.session.clientId}"

[[step]]
name = "companies"
path = "/companies/{@}"
for_each = "$.steps.client.companyIds[*]"
concurrency = 5

[[step]]
name = "limits"
path = "/limits/{$.steps.session.clientId}"
required = false
"#,
        &settings(),
    )
    .unwrap()
    .unwrap();
    let deps: Vec<_> = p.steps.iter().map(|s| s.deps.clone()).collect();
    assert_eq!(deps, vec![vec![], vec![0], vec![1], vec![0]]);
    assert_eq!(p.steps[2].concurrency, 5);
    assert!(!p.steps[3].required);
}

#[test]
fn step_references_in_any_notation() {
    assert_eq!(step_of("$.steps.client.id"), Some("client"));
    assert_eq!(step_of("$.steps['client'].id"), Some("client"));
    assert_eq!(step_of("$['steps'][\"client\"]"), Some("client"));
    assert_eq!(step_of("$.input.otp"), None);
    assert_eq!(step_of("@.id"), None);
}

#[test]
fn mistakes_are_reported_with_positions() {
    let err = errors(
        r#"[[step]]
name = "client"
path = "/clients/{$.steps.sesion.id}"

[[step]]
name = "client"
path = "/x/{tokn}"
"#,
    );
    assert!(
        err.contains("m.toml:3:8: step.client: reads step `sesion`, but no step has that name"),
        "{err}"
    );
    assert!(
        err.contains("m.toml:6:8: step.client: two steps have this name"),
        "{err}"
    );
    assert!(
        err.contains("m.toml:7:8: step.client.path: unknown placeholder `{tokn}`"),
        "{err}"
    );
    let err = errors("[[step]]\nname = \"a\"\npath = \"/\"\nmethd = \"GET\"\n");
    assert!(err.contains("unknown field `methd`"), "{err}");
    let err = errors(
        "[[step]]\nname = \"a\"\npath = \"/{$.steps.b.x}\"\n\n[[step]]\nname = \"b\"\npath = \"/\"\n",
    );
    assert!(err.contains("which is declared after it"), "{err}");
}

#[test]
fn limits_are_enforced_at_load() {
    let mut s = settings();
    s.max_steps = 1;
    let text = "[[step]]\nname = \"a\"\npath = \"/\"\n[[step]]\nname = \"b\"\npath = \"/\"\n";
    let err = Pipeline::from_mapping_text("m.toml", text, &s)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("2 steps, more than upstream.max_steps = 1"),
        "{err}"
    );
    let err =
        errors("[[step]]\nname = \"a\"\npath = \"/\"\nfor_each = \"$.x[*]\"\nconcurrency = 99\n");
    assert!(
        err.contains("must be 1 to upstream.max_concurrency = 8"),
        "{err}"
    );
    let err = errors("[[step]]\nname = \"a\"\npath = \"/\"\ntimeout_ms = 60000\n");
    assert!(
        err.contains("must be 1 to upstream.deadline_ms = 4000"),
        "{err}"
    );
}

#[test]
fn a_mapping_without_steps_has_no_pipeline() {
    assert!(
        Pipeline::from_mapping_text("m.toml", "[client]\nid = \"$.id\"\n", &settings())
            .unwrap()
            .is_none()
    );
}
