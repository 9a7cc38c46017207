//! `cargo bench --bench load`: the load benchmark from outside, as a bank
//! would run it — `tools/load-bench`, which builds the release binaries and
//! drives authbridge, an axum ceiling, nginx proxy_cache and an nginx + njs
//! adapter (each a separate process on loopback) with wrk, and prints one
//! table with req/s, p50/p99 and each server's CPU µs per request.
//!
//! The in-process generator this file used to hold ran its HTTP client on the
//! server's own runtime and cores and installed no log subscriber, so it both
//! diluted the differences between rows and left out the per-request tracing
//! cost that `serve` pays (see README, Performance).

fn main() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tools/load-bench");
    // cargo passes `--bench` (and any filter) to bench targets: not ours.
    let status = std::process::Command::new("bash")
        .arg(script)
        .status()
        .expect("bash runs tools/load-bench");
    std::process::exit(status.code().unwrap_or(1));
}
