//! Each worker's own set of fresh answers, in front of the shared cache.
//!
//! A moka hit writes shared memory on every read: its read log, the entry's
//! access time, the card's reference count — lines that every worker writes,
//! so under load they move between cores on each request — and it reads the
//! clock twice. A worker that answers a token again finds it here instead:
//! a map owned by the thread, holding the thread's own copy of the card,
//! with nothing written that another thread reads.
//!
//! An answer is kept only while fresh (never stale ones: those go through
//! the shared cache's rules) and only for the mapping generation it was made
//! with. Whatever removes answers from the shared cache (a purge, a reload
//! that changes the mapping; the cache lets only `Lookup` do it) advances
//! the lookup's epoch, and an answer kept under an older epoch is never
//! served. Bounded: [`CAPACITY`] answers per thread; a full set drops what
//! is no longer fresh, then everything.
//!
//! Copies are found by [`TokenKey`], a keyed hash of the token like the
//! shared cache's HMAC key, but one a hit can afford: the HMAC (two SHA-256
//! blocks) is computed only when the worker has no copy.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hasher as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use siphasher::sip128::{Hasher128 as _, SipHasher13};

use super::cache::{Answer, Entry, KeyBuildHasher};

/// Answers kept per thread (all caches of the process together): about
/// 2 MiB of cards per worker at the demo card's size, on top of
/// `cache.max_bytes`.
pub const CAPACITY: usize = 1024;

/// Which cache of the process an answer belongs to (tests run many).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where a token's copy is kept: SipHash-1-3 with 128-bit output under a
/// 128-bit key drawn from the OS once per process, so nobody outside can aim
/// two tokens at one copy, and two tokens meet by chance about once in 2^128.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey(u128);

impl TokenKey {
    pub fn of(token: &str) -> Self {
        static KEY: OnceLock<(u64, u64)> = OnceLock::new();
        let &(k0, k1) = KEY.get_or_init(|| {
            let mut key = [0u8; 16];
            getrandom::fill(&mut key).expect("the OS random source is available");
            let (k0, k1) = key.split_at(8);
            (
                u64::from_le_bytes(k0.try_into().expect("8 bytes")),
                u64::from_le_bytes(k1.try_into().expect("8 bytes")),
            )
        });
        let mut hasher = SipHasher13::new_with_keys(k0, k1);
        hasher.write(token.as_bytes());
        Self(hasher.finish128().into())
    }
}

struct Kept {
    answer: Answer,
    fresh_until: Instant,
    generation: u64,
    epoch: u64,
}

thread_local! {
    static KEPT: RefCell<HashMap<(u64, TokenKey), Kept, KeyBuildHasher>> =
        const { RefCell::new(HashMap::with_hasher(KeyBuildHasher)) };
}

/// One shared cache's handle on the per-thread sets.
#[derive(Debug)]
pub struct HotSet {
    id: u64,
    epoch: AtomicU64,
}

impl Default for HotSet {
    fn default() -> Self {
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            epoch: AtomicU64::new(0),
        }
    }
}

impl HotSet {
    /// The current epoch; read it before reading the shared cache, and keep
    /// what that read found under it (see [`Self::keep`]).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Makes every kept answer unservable; call it after the shared cache
    /// dropped entries, so that no answer read before is kept under the new
    /// epoch.
    pub fn advance(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// This thread's answer for `key`, if it is fresh at `now`, made with
    /// `generation` and kept in the current `epoch`.
    pub fn get(&self, key: TokenKey, generation: u64, epoch: u64, now: Instant) -> Option<Answer> {
        KEPT.with(|kept| {
            let kept = kept.borrow();
            let k = kept.get(&(self.id, key))?;
            (k.epoch == epoch && k.generation == generation && now < k.fresh_until)
                .then(|| k.answer.clone())
        })
    }

    /// Keeps a fresh `entry` the shared cache gave for `key` after the
    /// epoch was `epoch`, with its own copy of the card.
    pub fn keep(&self, key: TokenKey, entry: &Entry, epoch: u64, now: Instant) {
        let answer = match &entry.answer {
            Answer::Card(card) => Answer::Card(Bytes::copy_from_slice(card)),
            Answer::NotFound => Answer::NotFound,
        };
        KEPT.with(|kept| {
            let mut kept = kept.borrow_mut();
            if kept.len() >= CAPACITY {
                kept.retain(|_, k| now < k.fresh_until);
                if kept.len() >= CAPACITY {
                    kept.clear();
                }
            }
            kept.insert(
                (self.id, key),
                Kept {
                    answer,
                    fresh_until: entry.fresh_until,
                    generation: entry.generation,
                    epoch,
                },
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fresh(card: &'static [u8], generation: u64) -> Entry {
        Entry::restored(
            Answer::Card(Bytes::from_static(card)),
            Duration::from_secs(60),
            Duration::from_secs(60),
            generation,
        )
    }

    #[test]
    fn kept_answers_are_served_only_while_fresh_same_generation_same_epoch() {
        let set = HotSet::default();
        let now = Instant::now();
        let epoch = set.epoch();
        let (a, b) = (TokenKey::of("a"), TokenKey::of("b"));
        assert_eq!(a, TokenKey::of("a"));
        set.keep(a, &fresh(b"card", 7), epoch, now);
        let card = Some(Answer::Card(Bytes::from_static(b"card")));
        assert_eq!(set.get(a, 7, epoch, now), card);
        assert_eq!(set.get(b, 7, epoch, now), None, "another token");
        assert_eq!(set.get(a, 8, epoch, now), None, "another mapping");
        let later = now + Duration::from_secs(61);
        assert_eq!(set.get(a, 7, epoch, later), None, "no longer fresh");
        assert_eq!(HotSet::default().get(a, 7, 0, now), None, "another cache");
        set.advance();
        assert_eq!(set.get(a, 7, set.epoch(), now), None, "purged");
        // Read before the purge, kept after it: never served.
        set.keep(a, &fresh(b"card", 7), epoch, now);
        assert_eq!(set.get(a, 7, set.epoch(), now), None);
    }

    #[test]
    fn each_thread_keeps_its_own_and_the_set_stays_bounded() {
        let set = HotSet::default();
        let now = Instant::now();
        let a = TokenKey::of("a");
        set.keep(a, &fresh(b"card", 0), 0, now);
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(set.get(a, 0, 0, now), None));
        });
        for i in 0..=CAPACITY {
            set.keep(TokenKey::of(&i.to_string()), &fresh(b"c", 0), 0, now);
        }
        KEPT.with(|kept| assert!(kept.borrow().len() <= CAPACITY));
    }
}
