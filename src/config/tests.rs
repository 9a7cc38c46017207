use super::*;

#[test]
fn invalid_values_name_their_keys() {
    let err =
        Settings::from_toml("[upstream]\nbase_url = \"ftp://x\"\ntimeout_ms = 0\n").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("upstream.base_url: must be an http"), "{msg}");
    assert!(
        msg.contains("upstream.timeout_ms: must be at least 1"),
        "{msg}"
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let err = Settings::from_toml("[upstream]\nbase_url = \"http://x\"\ntoken = \"s3cr3t\"\n")
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown field `token`"), "{msg}");
    assert!(!msg.contains("s3cr3t"), "{msg}");
}

#[test]
fn auth_needs_a_secret_source() {
    let err = Settings::from_toml(
        "[upstream]\nbase_url = \"http://x\"\n[upstream.auth]\nkind = \"bearer\"\n",
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("upstream.auth.secret_env"),
        "{err}"
    );
}

#[test]
fn shipped_default_toml_equals_builtin_defaults() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
        .unwrap();
    let text = format!("{text}\n"); // default.toml leaves base_url unset: it must be given
    let file: Settings = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap();
    assert_eq!(format!("{file:?}"), format!("{:?}", Settings::default()));
}

#[test]
fn query_and_header_names_keep_their_case() {
    let s = Settings::from_toml(
        "[upstream]\nbase_url = \"http://x\"\n[upstream.query]\nsessionId = \"{token}\"\n[upstream.headers]\nX-Source = \"chat\"\n",
    )
    .unwrap();
    assert!(
        s.upstream.query.contains_key("sessionId"),
        "{:?}",
        s.upstream.query
    );
}
