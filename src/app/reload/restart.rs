//! Which changed settings a reload cannot apply: they are built into the
//! listener, the connection pools, the caches' sizes, the secrets read at
//! start or the router. A reload that changes them still applies the rest
//! and names these in its answer and its log line.

use crate::config::{Settings, UsersApiSettings};

fn changed(a: &impl std::fmt::Debug, b: &impl std::fmt::Debug) -> bool {
    format!("{a:?}") != format!("{b:?}")
}

/// The restart-only settings that differ between `old` and `new`, by key.
pub(super) fn needs_restart(old: &Settings, new: &Settings) -> Vec<&'static str> {
    let (o, n) = (&old.server, &new.server);
    let (ou, nu) = (&old.upstream, &new.upstream);
    [
        ("server.listen", o.listen != n.listen),
        (
            "server.max_connections",
            o.max_connections != n.max_connections,
        ),
        (
            "server.header_read_timeout_ms",
            o.header_read_timeout != n.header_read_timeout,
        ),
        ("server.access", changed(&o.access, &n.access)),
        (
            "server.trusted_proxies",
            o.trusted_proxies != n.trusted_proxies || o.client_ip_header != n.client_ip_header,
        ),
        ("upstream.base_url", ou.base_url != nu.base_url),
        ("upstream.auth", changed(&ou.auth, &nu.auth)),
        ("upstream.tls", changed(&ou.tls, &nu.tls)),
        (
            "upstream.max_in_flight",
            ou.max_in_flight != nu.max_in_flight,
        ),
        (
            "cache.max_bytes",
            old.cache.max_bytes != new.cache.max_bytes,
        ),
        (
            "cache.hash_key",
            old.cache.hash_key_env != new.cache.hash_key_env
                || old.cache.hash_key_file != new.cache.hash_key_file,
        ),
        ("server.tls", changed(&o.tls, &n.tls)),
        (
            "upstream.connect_timeout_ms",
            ou.connect_timeout != nu.connect_timeout,
        ),
        (
            "upstream.pool",
            ou.pool_idle_timeout != nu.pool_idle_timeout
                || ou.pool_max_idle != nu.pool_max_idle
                || ou.http2_prior_knowledge != nu.http2_prior_knowledge,
        ),
        ("upstream.max_queue", ou.max_queue != nu.max_queue),
        ("redis", changed(&old.redis, &new.redis)),
        (
            "users_api",
            changed(&restart_only(&old.users_api), &restart_only(&new.users_api)),
        ),
        ("cache.retention", retention_grows(old, new)),
        ("telemetry", changed(&old.telemetry, &new.telemetry)),
        ("admin", changed(&old.admin, &new.admin)),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}

/// True when `new` keeps some cache's entries longer than `old`: each cache
/// drops entries at the retention it was built with, so a reload lengthens
/// lifetimes only up to it (shortening applies at once).
fn retention_grows(old: &Settings, new: &Settings) -> bool {
    let each = |s: &Settings| {
        let (profiles, histories) = crate::front::users_api::state::caches(s);
        [
            s.cache.retention(),
            profiles.retention(),
            histories.retention(),
        ]
    };
    each(old).iter().zip(each(new)).any(|(o, n)| n > *o)
}

/// `[users_api]` without what a reload applies (the calls' mapping files,
/// the TTLs, the identifier limit): on, key, paths, body limit, cache
/// size, messages.
fn restart_only(u: &UsersApiSettings) -> UsersApiSettings {
    let mut kept = u.clone();
    let defaults = UsersApiSettings::default();
    for (op, default) in [
        (&mut kept.get, &defaults.get),
        (&mut kept.update, &defaults.update),
        (&mut kept.otp_request, &defaults.otp_request),
        (&mut kept.otp_confirm, &defaults.otp_confirm),
        (&mut kept.login, &defaults.login),
        (&mut kept.orders, &defaults.orders),
    ] {
        op.mapping = default.mapping.clone();
    }
    kept.found_ttl = defaults.found_ttl;
    kept.not_found_ttl = defaults.not_found_ttl;
    kept.orders_ttl = defaults.orders_ttl;
    kept.max_identifier_bytes = defaults.max_identifier_bytes;
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_breaker_and_users_mappings_reload_the_rest_is_named() {
        let old = Settings::default();
        let mut new = old.clone();
        new.upstream.retry.max_attempts = 5;
        new.upstream.breaker.consecutive_failures = 3;
        new.users_api.get.mapping = "elsewhere.toml".into();
        new.users_api.orders_ttl = std::time::Duration::from_secs(1);
        new.users_api.max_identifier_bytes = 64;
        assert!(needs_restart(&old, &new).is_empty());
        new.users_api.get.path = "/elsewhere".into();
        new.server.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            needs_restart(&old, &new),
            ["server.trusted_proxies", "users_api"]
        );
    }

    #[test]
    fn longer_cache_lifetimes_are_named_shorter_ones_reload() {
        let old = Settings::default();
        let mut new = old.clone();
        new.cache.grace = std::time::Duration::from_secs(60);
        new.users_api.found_ttl = std::time::Duration::from_secs(1);
        assert!(needs_restart(&old, &new).is_empty());
        let longer: [fn(&mut Settings); 3] = [
            |s| s.cache.ttl_jitter = 0.3,
            |s| s.users_api.found_ttl *= 100,
            |s| s.users_api.orders_ttl *= 100,
        ];
        for longer in longer {
            let mut new = old.clone();
            longer(&mut new);
            assert_eq!(needs_restart(&old, &new), ["cache.retention"]);
        }
    }
}
