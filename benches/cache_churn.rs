//! The cache under churn: fresh cards inserted at a fixed rate while older
//! ones expire, timing each lookup-then-insert (what a miss does to the
//! cache) on one single-threaded runtime, as a worker runs it. Two rows in
//! one run:
//! - authbridge's `AnswerCache` (one time-to-live for every entry, each
//!   entry's own lifetime checked on read);
//! - the same moka cache with per-entry expiry (`expire_after`), what
//!   `AnswerCache` used before: moka keeps those expiries in a timer wheel
//!   and moves a whole wheel slot in one maintenance run, inline, on the
//!   task whose insert triggered it.
//!
//! Lifetimes are 75 s (±10 %), past the wheel's first level (~68 s), so the
//! run shows both the per-second expiry batches and the per-minute moves.
//! Prints, per 10-second window: entries, mean, p99.9 and max of the
//! operation, and how many took over 1 ms.
//!
//! Then a full cache: 1 GiB of 1.5 KB cards, fresh ones inserted as fast as
//! one thread can, so that past ~480,000 entries each insert also removes
//! one. Two rows again, per 250,000 operations:
//! - authbridge's `AnswerCache`, split into moka caches of at most
//!   `SHARD_BYTES`;
//! - one moka cache of 1 GiB, as before: its hash table copies a whole
//!   segment (1/64 of the entries) each time removals leave enough
//!   tombstones in it, inside the write that tipped it.
//!
//! Run: `cargo bench --bench cache_churn` (two rows of `CHURN_SECS`, default
//! 100 s each, at `CHURN_RATE`, default 8,000 a second, then two rows of
//! `FULL_OPS`, default 1,500,000; up to ~1.5 GB RSS).

use std::time::{Duration, Instant};

use authbridge::config::CacheSettings;
use authbridge::lookup::cache::{
    Answer, AnswerCache, CachePolicy, Entry, KeyBuildHasher, KeyHasher, SHARD_BYTES, weight,
};
use bytes::Bytes;
use hdrhistogram::Histogram;

/// One of the two caches, behind the calls a miss makes.
enum Row {
    Authbridge(AnswerCache),
    PerEntryExpiry(moka::future::Cache<[u8; 32], Entry>),
    Unsharded(moka::future::Cache<[u8; 32], Entry, KeyBuildHasher>),
}

impl Row {
    async fn miss(&self, key: [u8; 32], entry: Entry) {
        match self {
            Row::Authbridge(cache) => {
                assert!(cache.get(&key).await.is_none(), "fresh keys only");
                cache.insert(key, entry).await;
            }
            Row::PerEntryExpiry(cache) => {
                assert!(cache.get(&key).await.is_none(), "fresh keys only");
                cache.insert(key, entry).await;
            }
            Row::Unsharded(cache) => {
                assert!(cache.get(&key).await.is_none(), "fresh keys only");
                cache.insert(key, entry).await;
            }
        }
    }

    /// One miss with a fresh card, timed into `hist`; returns its time.
    async fn timed_miss(
        &self,
        key: [u8; 32],
        policy: &CachePolicy,
        card: Answer,
        hist: &mut Histogram<u64>,
    ) -> Duration {
        let entry = policy.entry(card, 0).expect("cards are cached");
        let began = Instant::now();
        self.miss(key, entry).await;
        let took = began.elapsed();
        hist.saturating_record(took.as_micros() as u64);
        took
    }

    fn entries(&self) -> u64 {
        match self {
            Row::Authbridge(cache) => cache.entry_count(),
            Row::PerEntryExpiry(cache) => cache.entry_count(),
            Row::Unsharded(cache) => cache.entry_count(),
        }
    }
}

/// moka's per-entry expiry, as `AnswerCache` configured it before.
struct Lifetime;

impl moka::Expiry<[u8; 32], Entry> for Lifetime {
    fn expire_after_create(&self, _: &[u8; 32], entry: &Entry, _: Instant) -> Option<Duration> {
        Some(entry.remaining_lifetime())
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What every row starts with: its title and table head printed, the
/// policy and key hasher for `settings`, a card of `card_len` bytes.
fn start_row(
    name: &str,
    head: &str,
    settings: &CacheSettings,
    card_len: usize,
) -> (CachePolicy, KeyHasher, Bytes) {
    println!("\n{name}\n{head}");
    let hasher = KeyHasher::from_settings(settings).expect("a random key");
    (
        CachePolicy::new(settings),
        hasher,
        Bytes::from(vec![b'x'; card_len]),
    )
}

/// Latencies in µs, up to a minute.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("bounds")
}

async fn run(name: &str, row: Row, settings: &CacheSettings, rate: u64, secs: u64) {
    let head = "| seconds | entries | mean µs | p99.9 µs | max µs | over 1 ms |\n|---|---:|---:|---:|---:|---:|";
    let (policy, hasher, card) = start_row(name, head, settings, 300);
    let start = Instant::now();
    let mut n: u64 = 0;
    for window in 0..secs / 10 {
        let mut hist = histogram();
        let mut total = Duration::ZERO;
        for _ in 0..rate * 10 {
            n += 1;
            let key = hasher.key("churn", &n.to_string());
            let card = Answer::Card(Bytes::copy_from_slice(&card));
            total += row.timed_miss(key, &policy, card, &mut hist).await;
            // Paced on the OS clock: a stall is measured, then caught up.
            let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        println!(
            "| {}–{} | {} | {:.1} | {} | {} | {} |",
            window * 10,
            window * 10 + 10,
            row.entries(),
            total.as_secs_f64() * 1e6 / (rate * 10) as f64,
            hist.value_at_quantile(0.999),
            hist.max(),
            hist.count_between(1_001, u64::MAX),
        );
    }
}

/// Fresh 1.5 KB cards into a full cache, unpaced, `ops` in all.
async fn fill(name: &str, row: Row, settings: &CacheSettings, ops: u64) {
    const WINDOW: u64 = 250_000;
    let head = "| operations | entries | mean µs | p99 µs | p99.9 µs | max µs | over 1 ms |\n|---|---:|---:|---:|---:|---:|---:|";
    let (policy, hasher, card) = start_row(name, head, settings, 1_500);
    let mut hist = histogram();
    let mut total = Duration::ZERO;
    for n in 1..=ops {
        let key = hasher.key("full", &n.to_string());
        total += row
            .timed_miss(key, &policy, Answer::Card(card.clone()), &mut hist)
            .await;
        if n % WINDOW == 0 {
            println!(
                "| {}–{} | {} | {:.1} | {} | {} | {} | {} |",
                n - WINDOW,
                n,
                row.entries(),
                total.as_secs_f64() * 1e6 / WINDOW as f64,
                hist.value_at_quantile(0.99),
                hist.value_at_quantile(0.999),
                hist.max(),
                hist.count_between(1_001, u64::MAX),
            );
            hist.reset();
            total = Duration::ZERO;
        }
    }
}

fn main() {
    let rate = env_or("CHURN_RATE", 8_000);
    let secs = env_or("CHURN_SECS", 100).max(10);
    let settings = CacheSettings {
        max_bytes: 1 << 30,
        found_ttl: Duration::from_secs(75),
        grace: Duration::ZERO,
        ttl_jitter: 0.1,
        ..CacheSettings::default()
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        println!("{rate} fresh cards a second, lifetimes 75 s ±10 %, {secs} s a row");
        let cache = AnswerCache::new(&settings);
        run(
            "authbridge AnswerCache (one time-to-live)",
            Row::Authbridge(cache),
            &settings,
            rate,
            secs,
        )
        .await;
        let per_entry = moka::future::Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(|_, _| 1_000)
            .expire_after(Lifetime)
            .build();
        run(
            "moka per-entry expiry (before)",
            Row::PerEntryExpiry(per_entry),
            &settings,
            rate,
            secs,
        )
        .await;

        let ops = env_or("FULL_OPS", 1_500_000);
        let full = CacheSettings {
            found_ttl: Duration::from_secs(3_600),
            ..settings.clone()
        };
        let sharded = AnswerCache::new(&full);
        println!(
            "\na full 1 GiB cache, {ops} fresh 1.5 KB cards, unpaced: authbridge's {} shards of at most {} MiB, then one moka cache",
            sharded.shard_count(),
            SHARD_BYTES >> 20
        );
        fill(
            "authbridge AnswerCache (shards)",
            Row::Authbridge(sharded),
            &full,
            ops,
        )
        .await;
        let single = moka::future::Cache::builder()
            .max_capacity(full.max_bytes)
            .weigher(|_, entry| weight(entry))
            .time_to_live(full.retention())
            .build_with_hasher(KeyBuildHasher);
        fill("one moka cache (before)", Row::Unsharded(single), &full, ops).await;
    });
}
