//! Load benchmark: a fast mock CRM and authbridge (release build, this
//! process) on loopback, driven by an open-loop load generator at a fixed
//! request rate (latency is measured from each request's scheduled start, so
//! a stall is not hidden) plus a closed-loop run for maximum throughput.
//! Scenarios: hit (one hot token), miss (every token new), mixed (Zipf over
//! more tokens than the cache holds), coalesce (a burst for one cold token);
//! baselines: a minimal axum server returning the same bytes, and the mock
//! CRM itself. Prints one table.
//!
//! Run: `cargo bench --bench load` (about a minute; `LOAD_SECS` changes the
//! length of each run, `LOAD_RATE` the open-loop rate).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use authbridge::{Application, Settings};
use axum::Router;
use axum::routing::get;
use hdrhistogram::Histogram;

struct Row {
    scenario: &'static str,
    mode: String,
    rps: f64,
    p50: f64,
    p99: f64,
    p999: f64,
    crm_calls: usize,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Servers: the mock CRM, authbridge (two cache sizes) and the axum baseline.
struct Servers {
    crm: String,
    crm_calls: Arc<AtomicUsize>,
    authbridge: String,
    small_cache: String,
    baseline: String,
}

async fn start_servers() -> Servers {
    let root = env!("CARGO_MANIFEST_DIR");
    let crm_body: &'static str = Box::leak(
        std::fs::read_to_string(format!(
            "{root}/tests/fixtures/generic-bank/alice.input.json"
        ))
        .unwrap()
        .into_boxed_str(),
    );
    let crm_calls = Arc::new(AtomicUsize::new(0));
    let calls = crm_calls.clone();
    let crm = Router::new().route(
        "/api/v1/sessions/{token}/client",
        get(move || {
            calls.fetch_add(1, Ordering::Relaxed);
            async move { ([("content-type", "application/json")], crm_body) }
        }),
    );
    let crm_addr = serve(crm).await;

    let card: &'static str = Box::leak(
        std::fs::read_to_string(format!(
            "{root}/tests/fixtures/generic-bank/alice.expected.json"
        ))
        .unwrap()
        .into_boxed_str(),
    );
    let card: &'static str = Box::leak(
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(card).unwrap())
            .unwrap()
            .into_boxed_str(),
    );
    let baseline = Router::new().route(
        "/rest/chat/client/id/{*token}",
        get(move || async move {
            (
                [
                    ("content-type", "application/json"),
                    ("cache-control", "no-store"),
                ],
                card,
            )
        }),
    );
    let baseline_addr = serve(baseline).await;

    let app = |max_bytes: u64| {
        let mut s = Settings::default();
        s.server.listen = "127.0.0.1:0".into();
        s.upstream.base_url = format!("http://{crm_addr}");
        s.upstream.path = "/api/v1/sessions/{token}/client".into();
        s.upstream.max_in_flight = 4096;
        s.upstream.max_queue = 65_536;
        s.auth_api.mapping = format!("{root}/mappings/generic-bank.toml").into();
        s.cache.max_bytes = max_bytes;
        s.reload.watch_files = false;
        s
    };
    let start_app = |settings: Settings| async move {
        let app = Application::build(settings).await.unwrap();
        let addr = app.local_addr();
        tokio::spawn(app.run_with_shutdown(std::future::pending()));
        format!("http://{addr}")
    };
    Servers {
        crm: format!("http://{crm_addr}/api/v1/sessions"),
        crm_calls,
        authbridge: start_app(app(512 * 1024 * 1024)).await,
        // ~20 k cards: smaller than the mixed scenario's token set.
        small_cache: start_app(app(20_000 * 1_400)).await,
        baseline: format!("http://{baseline_addr}"),
    }
}

async fn serve(router: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1024)
        .build()
        .unwrap()
}

/// Open loop: `rate` requests per second for `secs`, URLs from `url(i)`.
async fn open_loop(rate: u64, secs: u64, url: impl Fn(u64) -> String) -> (f64, Histogram<u64>) {
    let client = client();
    let total = rate * secs;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let scheduled = start + interval * i as u32;
        tokio::time::sleep_until(scheduled).await;
        let (client, url) = (client.clone(), url(i));
        tasks.push(tokio::spawn(async move {
            let ok = client
                .get(url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success() || r.status() == 404);
            (ok, scheduled.elapsed())
        }));
    }
    let mut hist = Histogram::<u64>::new(3).unwrap();
    let mut failed = 0;
    for t in tasks {
        let (ok, latency) = t.await.unwrap();
        if !ok {
            failed += 1;
        }
        hist.record(latency.as_micros() as u64).unwrap();
    }
    assert_eq!(failed, 0, "requests failed during the open-loop run");
    (total as f64 / start.elapsed().as_secs_f64(), hist)
}

/// Closed loop: `workers` concurrent loops for `secs`; requests per second.
async fn closed_loop(workers: usize, secs: u64, url: String) -> (f64, Histogram<u64>) {
    let client = client();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new(3).unwrap();
                while Instant::now() < deadline {
                    let t = Instant::now();
                    let r = client.get(&url).send().await.unwrap();
                    let _ = r.bytes().await.unwrap();
                    hist.record(t.elapsed().as_micros() as u64).unwrap();
                }
                hist
            })
        })
        .collect();
    let started = Instant::now();
    let mut all = Histogram::<u64>::new(3).unwrap();
    for h in handles {
        all.add(h.await.unwrap()).unwrap();
    }
    (all.len() as f64 / started.elapsed().as_secs_f64(), all)
}

fn row(
    scenario: &'static str,
    mode: String,
    (rps, h): (f64, Histogram<u64>),
    crm_calls: usize,
) -> Row {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Row {
        scenario,
        mode,
        rps,
        p50: ms(0.5),
        p99: ms(0.99),
        p999: ms(0.999),
        crm_calls,
    }
}

/// Zipf(s = 1.0) over `n` items, by inverse CDF.
fn zipf_cdf(n: usize) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf: Vec<f64> = (1..=n)
        .map(|k| {
            acc += 1.0 / k as f64;
            acc
        })
        .collect();
    for c in &mut cdf {
        *c /= acc;
    }
    cdf
}

fn main() {
    let secs = env_num("LOAD_SECS", 5);
    let rate = env_num("LOAD_RATE", 4_000);
    // Servers on their own runtime; the load generator on another thread.
    let servers_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let s = servers_rt.block_on(start_servers());
    let load = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let calls = || s.crm_calls.load(Ordering::Relaxed);
    let mut rows = Vec::new();
    load.block_on(async {
        // Warm connections and the hot card.
        let _ = closed_loop(8, 1, format!("{}/rest/chat/client/id/hot", s.authbridge)).await;
        let _ = closed_loop(8, 1, format!("{}/rest/chat/client/id/hot", s.baseline)).await;

        let before = calls();
        rows.push(row(
            "crm direct",
            format!("open {rate}/s"),
            open_loop(rate, secs, |i| format!("{}/t{i}/client", s.crm)).await,
            calls() - before,
        ));
        rows.push(row(
            "baseline axum",
            format!("open {rate}/s"),
            open_loop(rate, secs, |_| {
                format!("{}/rest/chat/client/id/hot", s.baseline)
            })
            .await,
            0,
        ));
        let before = calls();
        rows.push(row(
            "hit",
            format!("open {rate}/s"),
            open_loop(rate, secs, |_| {
                format!("{}/rest/chat/client/id/hot", s.authbridge)
            })
            .await,
            calls() - before,
        ));
        let before = calls();
        rows.push(row(
            "miss",
            format!("open {rate}/s"),
            open_loop(rate, secs, |i| {
                format!("{}/rest/chat/client/id/miss-{i}", s.authbridge)
            })
            .await,
            calls() - before,
        ));
        let cdf = zipf_cdf(200_000);
        let before = calls();
        let mixed = open_loop(rate, secs, |_| {
            let u = fastrand::f64();
            let k = cdf.partition_point(|c| *c < u);
            format!("{}/rest/chat/client/id/zipf-{k}", s.small_cache)
        })
        .await;
        let mixed_calls = calls() - before;
        rows.push(row(
            "mixed (Zipf, 200k tokens, ~20k cached)",
            format!("open {rate}/s"),
            mixed,
            mixed_calls,
        ));
        // Coalesce: 1000 concurrent requests for one cold token.
        let before = calls();
        let client = client();
        let start = Instant::now();
        let burst: Vec<_> = (0..1000)
            .map(|_| {
                let (client, url) = (
                    client.clone(),
                    format!("{}/rest/chat/client/id/cold-burst", s.authbridge),
                );
                tokio::spawn(async move {
                    let t = Instant::now();
                    assert!(client.get(url).send().await.unwrap().status().is_success());
                    t.elapsed()
                })
            })
            .collect();
        let mut hist = Histogram::<u64>::new(3).unwrap();
        for b in burst {
            hist.record(b.await.unwrap().as_micros() as u64).unwrap();
        }
        let burst_rps = 1000.0 / start.elapsed().as_secs_f64();
        rows.push(row(
            "coalesce (1000 at once, one cold token)",
            "burst".into(),
            (burst_rps, hist),
            calls() - before,
        ));
        // Maximum throughput, closed loop, 64 connections.
        rows.push(row(
            "baseline axum",
            "closed 64 conns".into(),
            closed_loop(64, secs, format!("{}/rest/chat/client/id/hot", s.baseline)).await,
            0,
        ));
        let before = calls();
        rows.push(row(
            "hit",
            "closed 64 conns".into(),
            closed_loop(
                64,
                secs,
                format!("{}/rest/chat/client/id/hot", s.authbridge),
            )
            .await,
            calls() - before,
        ));
    });

    println!("\n| scenario | mode | requests/s | p50 ms | p99 ms | p99.9 ms | CRM calls |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {} |",
            r.scenario, r.mode, r.rps, r.p50, r.p99, r.p999, r.crm_calls
        );
    }
    let find = |scenario: &str, mode: &str| {
        rows.iter()
            .find(|r| r.scenario == scenario && r.mode.starts_with(mode))
            .unwrap()
    };
    let (hit, base) = (find("hit", "closed"), find("baseline axum", "closed"));
    let (miss, crm) = (find("miss", "open"), find("crm direct", "open"));
    println!(
        "\nhit / baseline throughput (closed loop): {:.2}",
        hit.rps / base.rps
    );
    println!(
        "hit / baseline p99 (open loop): {:.3} ms vs {:.3} ms",
        find("hit", "open").p99,
        find("baseline axum", "open").p99
    );
    println!(
        "miss latency minus CRM latency: p50 {:+.3} ms, p99 {:+.3} ms",
        miss.p50 - crm.p50,
        miss.p99 - crm.p99
    );
    println!(
        "cores: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
}
