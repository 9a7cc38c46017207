//! Memory: resident set size with 100 k and 1 M cached cards of ~1.5 KB, and
//! under churn (3 M distinct cards through a cache bounded at 256 MiB), to
//! show the byte bound holds.
//!
//! Run: `cargo bench --bench memory` (about half a minute, up to ~2 GB RSS).

use std::time::Duration;

use authbridge::config::CacheSettings;
use authbridge::lookup::cache::{Answer, AnswerCache, CachePolicy, KeyHasher};
use bytes::Bytes;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn card(i: u64) -> Bytes {
    // ~1.5 KB, distinct per card (as real cards are).
    let mut s = format!("{{\"client\":{{\"id\":\"{i}\",\"name\":\"");
    while s.len() < 1_500 {
        s.push_str("Ivanova Anna Sergeevna ");
    }
    s.push_str("\"}}");
    Bytes::from(s)
}

async fn fill(cache: &AnswerCache, policy: &CachePolicy, hasher: &KeyHasher, from: u64, to: u64) {
    for i in from..to {
        let entry = policy.entry(Answer::Card(card(i)), 0).unwrap();
        cache
            .insert(hasher.key("auth-api", &format!("token-{i}")), entry)
            .await;
    }
    cache.sync().await;
}

fn main() {
    // Each phase in its own process, so one phase's freed memory (which the
    // allocator keeps) does not hide the other's.
    match std::env::var("MEMORY_PHASE").as_deref() {
        Ok("unbounded") => unbounded(),
        Ok("bounded") => bounded(),
        _ => {
            println!(
                "\n| cache | distinct cards inserted | cards held | weigher bytes | RSS MiB | RSS growth MiB | RSS per card held |"
            );
            println!("|---|---:|---:|---:|---:|---:|---:|");
            for phase in ["unbounded", "bounded"] {
                let out = std::process::Command::new(std::env::current_exe().unwrap())
                    .env("MEMORY_PHASE", phase)
                    .output()
                    .unwrap();
                print!("{}", String::from_utf8_lossy(&out.stdout));
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn report(label: &str, inserted: u64, cache: &AnswerCache, base: f64) {
    let rss = rss_mib();
    let held = cache.entry_count().max(1);
    println!(
        "| {label} | {inserted} | {held} | {} | {rss:.0} | {:.0} | {:.0} B |",
        cache.weighted_size(),
        rss - base,
        (rss - base) * 1024.0 * 1024.0 / held as f64
    );
}

fn unbounded() {
    runtime().block_on(async {
        let hasher = KeyHasher::random();
        let base = rss_mib();
        let settings = CacheSettings {
            max_bytes: 8 * 1024 * 1024 * 1024,
            found_ttl: Duration::from_secs(3_600),
            ..Default::default()
        };
        let (cache, policy) = (AnswerCache::new(&settings), CachePolicy::new(&settings));
        let mut filled = 0;
        for target in [100_000u64, 1_000_000] {
            fill(&cache, &policy, &hasher, filled, target).await;
            filled = target;
            report("8 GiB (never full)", target, &cache, base);
        }
    });
}

fn bounded() {
    runtime().block_on(async {
        let hasher = KeyHasher::random();
        let base = rss_mib();
        let settings = CacheSettings {
            max_bytes: 256 * 1024 * 1024,
            found_ttl: Duration::from_secs(3_600),
            ..Default::default()
        };
        let (cache, policy) = (AnswerCache::new(&settings), CachePolicy::new(&settings));
        let mut filled = 0;
        for target in [1_000_000u64, 2_000_000, 3_000_000] {
            fill(&cache, &policy, &hasher, filled, target).await;
            filled = target;
            report("256 MiB (churn)", target, &cache, base);
        }
    });
}
