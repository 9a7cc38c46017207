//! Is reqwest the floor of a CRM call? Sends the same requests to the mock
//! CRM (`examples/bench_crm.rs`) through reqwest — configured as authbridge
//! configures it — and through hyper-util's client, which reqwest wraps, and
//! prints each one's CPU µs per request (this process's utime + stime from
//! `/proc/self/stat`), on one single-threaded runtime as a worker has.
//!
//! Run: `cargo run --release --example bench_crm -- 18070 &` then
//! `cargo run --release --example bench_client -- http://127.0.0.1:18070 50000 32`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// CPU time of this process so far, in clock ticks (100 per second on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split(' ').collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:18070".into());
    let total: usize = args.next().map_or(Ok(50_000), |v| v.parse())?;
    let concurrency: usize = args.next().map_or(Ok(32), |v| v.parse())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let reqwest = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .build()?;
        let hyper = Client::builder(TokioExecutor::new())
            .build_http::<Empty<bytes::Bytes>>();
        for round in 0..2 {
            for client in ["reqwest", "hyper-util"] {
                let next = Arc::new(AtomicUsize::new(0));
                let (t0, c0) = (Instant::now(), cpu_ticks());
                let tasks = (0..concurrency).map(|_| {
                    let (next, base) = (next.clone(), base.clone());
                    let (reqwest, hyper) = (reqwest.clone(), hyper.clone());
                    tokio::task::spawn_local(async move {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= total {
                                return Ok::<_, anyhow::Error>(());
                            }
                            let url = format!("{base}/api/v1/sessions/r{round}-{n}/client");
                            let body = if client == "reqwest" {
                                reqwest
                                    .get(&url)
                                    .timeout(Duration::from_secs(5))
                                    .send()
                                    .await?
                                    .bytes()
                                    .await?
                            } else {
                                let response = hyper.get(url.parse()?).await?;
                                response.into_body().collect().await?.to_bytes()
                            };
                            anyhow::ensure!(!body.is_empty(), "empty CRM answer");
                        }
                    })
                });
                let local = tokio::task::LocalSet::new();
                local
                    .run_until(async {
                        for task in tasks.collect::<Vec<_>>() {
                            task.await??;
                        }
                        Ok::<_, anyhow::Error>(())
                    })
                    .await?;
                let ticks = cpu_ticks() - c0;
                println!(
                    "round {round} {client:<10} {total} requests in {:.2} s: {:.1} µs CPU per request",
                    t0.elapsed().as_secs_f64(),
                    ticks as f64 * 10_000.0 / total as f64
                );
            }
        }
        Ok(())
    })
}
