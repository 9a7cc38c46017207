//! An open-loop, fixed-rate HTTP/1.1 load generator for `tools/load-bench`,
//! for the latency rows that must be measured at a given rate (wrk only runs
//! closed loops: it sends the next request when the last one returns, so a
//! slow server lowers the rate instead of raising the latency).
//!
//! A pacer thread releases request `n` at `start + n / rate` whatever the
//! server is doing; `conns` keep-alive connections take released requests in
//! order, and each request's latency is counted from its *scheduled* time, so
//! queueing behind a stall is counted, not hidden. The pacer sleeps on an OS
//! thread (tens of µs late at most), not on tokio's 1 ms timer wheel.
//!
//! Usage: `bench_rate URL_TEMPLATE RATE SECS CONNS`, e.g.
//! `bench_rate 'http://127.0.0.1:8080/rest/chat/client/id/run7-{n}' 5000 5 32`;
//! `{n}` becomes 0, 1, 2, ... so every request can carry a fresh token.
//! Prints `rps p50_ms p99_ms` on stdout (details on stderr) and exits 1 if any
//! request failed or was not answered 2xx.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, mpsc};

/// Released requests: the counter for `{n}` and when it was due.
type Queue = Arc<Mutex<mpsc::UnboundedReceiver<(u64, Instant)>>>;

struct Target {
    addr: String,
    path: String,
}

/// One keep-alive connection; only `Content-Length` bodies are understood,
/// which is what hyper sends for the in-memory answers measured here.
struct Conn {
    addr: String,
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr: addr.to_owned(),
            stream,
            buf: Vec::with_capacity(8192),
        })
    }

    /// Sends one GET and reads the whole answer; returns its status.
    async fn get(&mut self, path: &str) -> anyhow::Result<u16> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        self.stream.write_all(request.as_bytes()).await?;
        let head_len = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_len])?;
        let status: u16 = head.split(' ').nth(1).context("no status line")?.parse()?;
        let body_len: usize = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .context("an answer without Content-Length")?;
        while self.buf.len() < head_len + body_len {
            self.fill().await?;
        }
        self.buf.drain(..head_len + body_len);
        Ok(status)
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            bail!("connection closed by the server");
        }
        Ok(())
    }
}

/// Latencies in µs, 3 significant digits, up to 60 s. The bounds are
/// explicit because `Histogram::new` starts at a top of 2,047 µs and
/// `saturating_record` clamps to the top instead of growing: every latency
/// over 2 ms would have been recorded as 2.047 ms.
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("1 µs to 60 s at 3 digits are valid bounds")
}

fn parse_url(url: &str) -> anyhow::Result<Target> {
    let rest = url
        .strip_prefix("http://")
        .context("the URL must start with http://")?;
    let slash = rest.find('/').unwrap_or(rest.len());
    let (addr, path) = rest.split_at(slash);
    Ok(Target {
        addr: addr.to_owned(),
        path: if path.is_empty() {
            "/".into()
        } else {
            path.into()
        },
    })
}

/// Takes released requests until the pacer is done; returns latencies (µs)
/// and the number of failed requests.
async fn worker(mut conn: Conn, queue: Queue, target: Arc<Target>) -> (Histogram<u64>, u64) {
    let mut hist = new_histogram();
    let mut failed = 0;
    loop {
        let next = queue.lock().await.recv().await;
        let Some((n, due)) = next else { break };
        let path = target.path.replace("{n}", &n.to_string());
        match conn.get(&path).await {
            Ok(status) if (200..300).contains(&status) => {
                hist.saturating_record(due.elapsed().as_micros() as u64);
            }
            Ok(status) => {
                failed += 1;
                eprintln!("bench_rate: {path}: status {status}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("bench_rate: {path}: {e:#}");
                match Conn::open(&target.addr).await {
                    Ok(fresh) => conn = fresh,
                    Err(e) => {
                        eprintln!("bench_rate: reconnect failed: {e:#}");
                        break;
                    }
                }
            }
        }
    }
    (hist, failed)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, rate, secs, conns] = args.as_slice() else {
        bail!("usage: bench_rate URL_TEMPLATE RATE SECS CONNS");
    };
    let target = Arc::new(parse_url(url)?);
    let rate: f64 = rate.parse().context("RATE")?;
    let secs: f64 = secs.parse().context("SECS")?;
    let conns: usize = conns.parse().context("CONNS")?;
    if rate <= 0.0 || secs <= 0.0 || conns == 0 {
        bail!("RATE, SECS and CONNS must be positive");
    }
    let total = (rate * secs).round() as u64;

    // One thread is plenty for the client side and leaves the other cores
    // to the servers being measured.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (done, elapsed) = runtime.block_on(async {
        let mut open = Vec::with_capacity(conns);
        for _ in 0..conns {
            open.push(Conn::open(&target.addr).await?);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let queue: Queue = Arc::new(Mutex::new(rx));
        let workers: Vec<_> = open
            .into_iter()
            .map(|conn| tokio::spawn(worker(conn, queue.clone(), target.clone())))
            .collect();
        let start = Instant::now();
        std::thread::spawn(move || {
            for n in 0..total {
                let due = start + Duration::from_secs_f64(n as f64 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                if tx.send((n, due)).is_err() {
                    break;
                }
            }
        });
        let mut all = new_histogram();
        let mut failed = 0;
        for w in workers {
            let (hist, f) = w.await?;
            all.add(hist)?;
            failed += f;
        }
        anyhow::Ok(((all, failed), start.elapsed()))
    })?;
    let (hist, failed) = done;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{:.0} {:.3} {:.3}",
        hist.len() as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99)
    );
    eprintln!(
        "bench_rate: {} ok, {failed} failed of {total} in {:.2}s; p99.9 {:.3} ms, max {:.3} ms",
        hist.len(),
        elapsed.as_secs_f64(),
        ms(0.999),
        hist.max() as f64 / 1000.0
    );
    if failed > 0 {
        bail!("{failed} requests failed");
    }
    Ok(())
}
