use super::*;

/// A refused file names every key at fault (unknown keys included) and
/// never echoes what it was given for them.
#[test]
fn refusals_name_the_keys_at_fault_and_never_echo_a_secret() {
    // The text, what its error must say, what it must not.
    let cases: [(&str, &[&str], &[&str]); 6] = [
        (
            "[upstream]\nbase_url = \"ftp://x\"\ntimeout_ms = 0\n",
            &[
                "upstream.base_url: must be an http",
                "upstream.timeout_ms: must be at least 1",
            ],
            &[],
        ),
        (
            "[upstream]\nbase_url = \"http://x\"\ntoken = \"s3cr3t\"\n",
            &["unknown field `token`"],
            &["s3cr3t"],
        ),
        (
            "[upstream]\nbase_url = \"http://x\"\n[upstream.auth]\nkind = \"bearer\"\n",
            &["upstream.auth.secret_env"],
            &[],
        ),
        // A word a key does not take: the key and the words it does take
        // (not the Rust enum's name).
        (
            "[upstream]\nbase_url = \"http://x\"\n[telemetry]\nlog_format = \"xml\"\n",
            &["telemetry.log_format: unknown value `xml`, expected `pretty` or `json`"],
            &["LogFormat"],
        ),
        (
            "[upstream]\nbase_url = \"http://x\"\n[server]\npin_workers = \"yes\"\n",
            &["server.pin_workers: unknown value `yes`, expected one of `auto`, `on`, `off`"],
            &["PinWorkers"],
        ),
        (
            "[upstream]\nbase_url = \"http://x\"\n[server.access]\nkind = \"token\"\n",
            &[
                "server.access.kind: unknown value `token`, expected one of `none`, `bearer`, `basic`",
            ],
            &["AccessKind"],
        ),
    ];
    for (toml, said, unsaid) in cases {
        let msg = Settings::from_toml(toml).unwrap_err().to_string();
        for part in said {
            assert!(msg.contains(part), "{toml}: {part} not in {msg}");
        }
        for part in unsaid {
            assert!(!msg.contains(part), "{toml}: {part} in {msg}");
        }
    }
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

#[test]
fn values_that_do_not_parse_name_their_keys() {
    for (toml, expected) in [
        (
            "[server]\nlisten = \"nowhere\"\n[upstream]\nbase_url = \"http://x\"\n",
            "configuration: server.listen: must be an address like 0.0.0.0:8080",
        ),
        (
            "[server]\ntoken_pattern = \"[a-\"\n[upstream]\nbase_url = \"http://x\"\n",
            "configuration: server.token_pattern: is not a valid regex",
        ),
        (
            "[server.access]\nallow_cidrs = [\"10.0.0.0/8\", \"ten\"]\n[upstream]\nbase_url = \"http://x\"\n",
            "configuration: server.access.allow_cidrs: must be CIDR networks like 10.0.0.0/8 or fd00::/8",
        ),
        (
            "[server]\ntrusted_proxies = [\"10.0.0.0/24\", \"lb\"]\n[upstream]\nbase_url = \"http://x\"\n",
            "configuration: server.trusted_proxies: must be CIDR networks like 10.0.0.0/8 or fd00::/8",
        ),
        (
            "[server]\ntrusted_proxies = [\"10.0.0.0/24\", \"::/0\"]\n[upstream]\nbase_url = \"http://x\"\n",
            "configuration: server.trusted_proxies: a /0 network trusts every client to name its own address; list the proxies' networks",
        ),
        (
            "[admin]\nlisten = \"localhost\"\n[upstream]\nbase_url = \"http://x\"\n",
            "configuration: admin.listen: must be empty (off) or an address like 127.0.0.1:9090",
        ),
        (
            "[upstream]\nbase_url = \"not a url\"\n",
            "configuration: upstream.base_url: must be set to the CRM's URL, e.g. https://crm.bank.local/api",
        ),
    ] {
        let err = Settings::from_toml(toml).unwrap_err();
        assert_eq!(err.to_string(), expected);
    }
}

#[test]
fn values_are_typed_once_at_load() {
    let s = Settings::from_toml(
        "[server]\nlisten = \"127.0.0.1:9\"\nrequest_timeout_ms = 1500\ntoken_pattern = \"^a+$\"\n[server.access]\nallow_cidrs = [\"10.0.0.0/8\"]\n[upstream]\nbase_url = \"http://x/api\"\n[cache]\nfound_ttl_secs = 7\n",
    )
    .unwrap();
    assert_eq!(s.server.listen.port(), 9);
    assert_eq!(
        s.server.request_timeout,
        std::time::Duration::from_millis(1500)
    );
    assert!(s.server.token_pattern.as_ref().unwrap().is_match("aaa"));
    assert!(
        s.server.access.allow_cidrs[0].contains(&"10.1.2.3".parse::<std::net::IpAddr>().unwrap())
    );
    assert_eq!(s.upstream.base_url.as_ref().unwrap().path(), "/api");
    assert_eq!(s.cache.found_ttl, std::time::Duration::from_secs(7));
    assert_eq!(s.admin.listen, None);
    let s = Settings::from_toml(
        "[server]\ntrusted_proxies = [\"10.0.0.0/24\"]\nclient_ip_header = \"forwarded\"\n[upstream]\nbase_url = \"http://x\"\n",
    )
    .unwrap();
    assert!(s.server.trusted_proxies[0].contains(&"10.0.0.9".parse::<std::net::IpAddr>().unwrap()));
    assert_eq!(s.server.client_ip_header, super::ClientIpHeader::Forwarded);
}

#[test]
fn redis_topologies_parse_from_the_url_or_the_explicit_keys() {
    let base = "[upstream]\nbase_url = \"http://x\"\n[cache]\nhash_key_env = \"K\"\n[redis]\n";
    let s = Settings::from_toml(&format!(
        "{base}url = \"redis+sentinel://10.0.0.1:26379,[fd00::2]:26380/cache/2\"\n"
    ))
    .unwrap();
    match s.redis.topology() {
        Some(RedisTopology::Sentinel {
            sentinels,
            master_name,
            db,
        }) => {
            assert_eq!(sentinels[1].host, "fd00::2");
            assert_eq!(sentinels[1].port, 26380);
            assert_eq!((master_name.as_str(), db), ("cache", 2));
        }
        other => panic!("{other:?}"),
    }
    let s = Settings::from_toml(&format!(
        "{base}sentinels = [\"s1:26379\", \"s2:26379\"]\nmaster_name = \"m\"\n"
    ))
    .unwrap();
    assert!(matches!(
        s.redis.topology(),
        Some(RedisTopology::Sentinel { sentinels, db: 0, .. }) if sentinels.len() == 2
    ));
    let s = Settings::from_toml(&format!(
        "{base}url = \"redis+cluster://n1:7000,n2:7001/\"\n"
    ))
    .unwrap();
    assert!(matches!(
        s.redis.topology(),
        Some(RedisTopology::Cluster { nodes }) if nodes.len() == 2
    ));
    let s = Settings::from_toml(&format!("{base}cluster_nodes = [\"n1:7000\"]\n")).unwrap();
    assert!(matches!(
        s.redis.topology(),
        Some(RedisTopology::Cluster { .. })
    ));
    let s = Settings::from_toml(&format!("{base}url = \"redis://h:6379/1\"\n")).unwrap();
    assert!(matches!(s.redis.topology(), Some(RedisTopology::Server(_))));
    assert!(
        Settings::from_toml(base)
            .unwrap()
            .redis
            .topology()
            .is_none()
    );
}

#[test]
fn redis_topologies_that_cannot_work_name_their_keys() {
    let base = "[upstream]\nbase_url = \"http://x\"\n[cache]\nhash_key_env = \"K\"\n[redis]\n";
    for (redis, expected) in [
        (
            "url = \"redis+sentinel://s1:26379\"",
            "redis.url: a sentinel URL names its master",
        ),
        (
            "url = \"redis+sentinel:///m\"",
            "redis.url: a sentinel URL lists at least one sentinel",
        ),
        (
            "url = \"redis+cluster://\"",
            "redis.url: a cluster URL lists at least one node",
        ),
        (
            "url = \"redis+cluster://n1:7000/3\"",
            "redis.url: a cluster has no database",
        ),
        (
            "url = \"redis+sentinel://user:pw@s1:26379/m\"",
            "redis.url: carries no credentials",
        ),
        (
            "url = \"http://h\"",
            "redis.url: must be redis://host:port/db",
        ),
        (
            "sentinels = [\"s1:26379\"]",
            "redis.master_name: redis.sentinels need the name of the master",
        ),
        (
            "master_name = \"m\"",
            "redis.master_name: names a master only",
        ),
        (
            "sentinels = [\"s1\"]\nmaster_name = \"m\"",
            "redis.sentinels: each must be host:port",
        ),
        (
            "cluster_nodes = [\"n1:notaport\"]",
            "redis.cluster_nodes: each must be host:port",
        ),
        (
            "url = \"redis://h/\"\ncluster_nodes = [\"n1:7000\"]",
            "redis.url: set one of redis.url, redis.sentinels and redis.cluster_nodes",
        ),
        (
            "url = \"redis://h/\"\nsentinel_password_env = \"P\"",
            "redis.sentinel_password_env: sentinel credentials need a Sentinel topology",
        ),
    ] {
        let err = Settings::from_toml(&format!("{base}{redis}\n")).unwrap_err();
        assert!(err.to_string().contains(expected), "{redis}: {err}");
        assert!(!err.to_string().contains("pw"), "{err}");
    }
}
