//! Request ids without a syscall: a random per-process prefix (read once from
//! the OS) and a counter, e.g. `6f1c2a9e4b7d0c35-000000000000002a`.
//!
//! A UUID v4 per request costs a `getrandom` call each time; these ids are as
//! unique within a process, the prefix tells replicas and restarts apart, and
//! an id reveals nothing but the request's rank (roughly: each thread takes
//! its numbers in blocks of [`BLOCK`], so that the request workers do not
//! all write one shared counter per request, and ids are not in the order
//! the requests came).

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::HeaderValue;

const HEX: &[u8; 16] = b"0123456789abcdef";

static PREFIX: OnceLock<[u8; 16]> = OnceLock::new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Numbers a thread takes from [`COUNTER`] at once.
const BLOCK: u64 = 1024;

thread_local! {
    /// This thread's next number and the end of its block.
    static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The next number of this process, unique across threads.
fn number() -> u64 {
    RANGE.with(|range| {
        let (mut next, mut end) = range.get();
        if next == end {
            next = COUNTER.fetch_add(BLOCK, Ordering::Relaxed);
            end = next + BLOCK;
        }
        range.set((next + 1, end));
        next
    })
}

fn hex(mut n: u64, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
}

fn prefix() -> &'static [u8; 16] {
    PREFIX.get_or_init(|| {
        let mut seed = [0u8; 8];
        // Without an OS random source, the process id and start time still
        // tell processes apart; the ids stay unique within this one.
        if getrandom::fill(&mut seed).is_err() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            seed = (now ^ u64::from(std::process::id())).to_be_bytes();
        }
        let mut out = [0u8; 16];
        hex(u64::from_be_bytes(seed), &mut out);
        out
    })
}

/// The next id of this process.
pub fn next() -> HeaderValue {
    let n = number();
    let mut id = [0u8; 33];
    id[..16].copy_from_slice(prefix());
    id[16] = b'-';
    hex(n, &mut id[17..]);
    HeaderValue::from_bytes(&id).expect("hex digits and '-' are a valid header value")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_share_the_process_prefix() {
        let (a, b) = (super::next(), super::next());
        assert_ne!(a, b);
        let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(a.len(), 33);
        assert_eq!(a[..17], b[..17]);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'));
    }

    #[test]
    fn threads_never_share_a_number() {
        let ids: Vec<Vec<u64>> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..3000).map(|_| super::number()).collect()))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let mut all: Vec<u64> = ids.concat();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4 * 3000);
    }
}
