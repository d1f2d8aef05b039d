//! The epoch ticker: advances the engine's epoch while plugin calls run,
//! and sleeps when none has run for a while.
//!
//! Call deadlines are counted in epochs, so something must advance the
//! epoch while a guest runs. A thread ticking at 1 kHz for the life of the
//! process woke an idle proxy a thousand times a second; this one ticks only
//! while calls are in progress or have been recently, and parks otherwise.
//!
//! Every thread that enters a guest marks it in its own cache line of
//! [`ACTIVITY`] ([`enter`]); the ticker reads them all once per tick. A call
//! that starts while the ticker sleeps wakes it; the handshake between the
//! two is the usual store-then-load on both sides, with sequentially
//! consistent ordering, so that one of them always sees the other.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use wasmtime::Engine;

/// How often the epoch advances while calls run; deadlines are counted in
/// these ticks.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Ticks without any call before the ticker parks: long enough that a
/// loaded proxy never pays a wake-up per call, short enough that an idle
/// one stops within a tenth of a second.
const IDLE_TICKS_BEFORE_SLEEP: u32 = 100;

/// Threads that get a cache line of their own; further threads share one
/// pair of counters.
const ACTIVITY_SLOTS: usize = 64;

/// Calls in progress and recently started, across the process.
static ACTIVITY: Activity = Activity::new();

/// Advances the engine's epoch while calls run, until dropped.
pub(super) struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Marks one guest call in progress on this thread; dropping it ends the
/// call.
#[must_use = "the call counts as in progress only while this is held"]
pub(super) struct InCall {
    counters: &'static Counters,
}

/// Started and finished calls of one thread. Only that thread writes them
/// (plain load-then-store), except the shared overflow pair.
struct Counters {
    started: AtomicU64,
    finished: AtomicU64,
}

struct Activity {
    slots: [CachePadded<Counters>; ACTIVITY_SLOTS],
    overflow: CachePadded<Counters>,
    next_slot: AtomicUsize,
    /// Tickers currently parked, to be woken by the next call.
    sleeping: AtomicUsize,
    sleepers: Mutex<Vec<Thread>>,
}

/// Marks a guest call as in progress on this thread, waking the ticker if
/// it sleeps. Hold the guard for the whole call, setup included.
pub(super) fn enter() -> InCall {
    let counters = ACTIVITY.counters();
    counters.start();
    if ACTIVITY.sleeping.load(Ordering::SeqCst) > 0 {
        ACTIVITY.wake_sleepers();
    }
    InCall { counters }
}

// === impl EpochTicker ===

impl EpochTicker {
    pub(super) fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("bascule-epoch".to_owned())
            .spawn(move || run(&engine, &stopping))?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

fn run(engine: &Engine, stop: &AtomicBool) {
    let mut seen = ACTIVITY.started();
    let mut idle_ticks = 0;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(EPOCH_TICK);
        engine.increment_epoch();
        let started = ACTIVITY.started();
        if started != seen || ACTIVITY.in_progress() {
            seen = started;
            idle_ticks = 0;
            continue;
        }
        idle_ticks += 1;
        if idle_ticks >= IDLE_TICKS_BEFORE_SLEEP {
            ACTIVITY.sleep_until_call(seen, stop);
            idle_ticks = 0;
        }
    }
}

// === impl InCall ===

impl Drop for InCall {
    fn drop(&mut self) {
        self.counters.finish();
    }
}

// === impl Counters ===

impl Counters {
    const fn new() -> Self {
        Counters {
            started: AtomicU64::new(0),
            finished: AtomicU64::new(0),
        }
    }

    fn start(&self) {
        // The overflow pair is shared, so it needs the read-modify-write;
        // it is also correct, if slower, for a slot of one's own.
        self.started.fetch_add(1, Ordering::SeqCst);
    }

    fn finish(&self) {
        self.finished.fetch_add(1, Ordering::Release);
    }
}

// === impl Activity ===

impl Activity {
    const fn new() -> Self {
        Activity {
            slots: [const { CachePadded::new(Counters::new()) }; ACTIVITY_SLOTS],
            overflow: CachePadded::new(Counters::new()),
            next_slot: AtomicUsize::new(0),
            sleeping: AtomicUsize::new(0),
            sleepers: Mutex::new(Vec::new()),
        }
    }

    /// This thread's counters, assigned on its first call.
    fn counters(&'static self) -> &'static Counters {
        thread_local! {
            static MINE: Cell<Option<&'static Counters>> = const { Cell::new(None) };
        }
        MINE.with(|mine| match mine.get() {
            Some(counters) => counters,
            None => {
                let index = self.next_slot.fetch_add(1, Ordering::Relaxed);
                let counters = self
                    .slots
                    .get(index)
                    .map_or(&*self.overflow, |slot| &**slot);
                mine.set(Some(counters));
                counters
            }
        })
    }

    fn all(&self) -> impl Iterator<Item = &Counters> {
        self.slots
            .iter()
            .map(|slot| &**slot)
            .chain(std::iter::once(&*self.overflow))
    }

    /// Calls started so far (wrapping sum), to notice new ones.
    fn started(&self) -> u64 {
        self.all().fold(0u64, |sum, counters| {
            sum.wrapping_add(counters.started.load(Ordering::SeqCst))
        })
    }

    /// Whether a call is running now. `finished` is read before `started`,
    /// so a call in progress across both reads is always seen.
    fn in_progress(&self) -> bool {
        self.all().any(|counters| {
            let finished = counters.finished.load(Ordering::SeqCst);
            counters.started.load(Ordering::SeqCst) != finished
        })
    }

    /// Parks the calling ticker until a call starts after `seen` (or
    /// `stop` is set and the ticker unparked).
    fn sleep_until_call(&self, seen: u64, stop: &AtomicBool) {
        self.lock_sleepers().push(std::thread::current());
        self.sleeping.fetch_add(1, Ordering::SeqCst);
        while self.started() == seen && !self.in_progress() && !stop.load(Ordering::SeqCst) {
            std::thread::park();
        }
        self.sleeping.fetch_sub(1, Ordering::SeqCst);
        let me = std::thread::current().id();
        self.lock_sleepers().retain(|thread| thread.id() != me);
    }

    fn wake_sleepers(&self) {
        for thread in self.lock_sleepers().iter() {
            thread.unpark();
        }
    }

    fn lock_sleepers(&self) -> std::sync::MutexGuard<'_, Vec<Thread>> {
        self.sleepers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_in_progress_is_seen_and_its_end_too() {
        let before = ACTIVITY.started();
        let call = enter();
        assert_ne!(ACTIVITY.started(), before, "the start is counted");
        assert!(ACTIVITY.in_progress());
        drop(call);
        // Other tests of this process may be calling plugins meanwhile;
        // this thread's own counters are exact.
        let mine = ACTIVITY.counters();
        assert_eq!(
            mine.started.load(Ordering::SeqCst),
            mine.finished.load(Ordering::SeqCst)
        );
    }
}
