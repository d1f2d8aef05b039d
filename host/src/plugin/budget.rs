//! The time budget of one plugin call: charged in the CPU time the guest
//! uses, with a wall-clock backstop.
//!
//! A budget counted in wall-clock epochs alone kills a well-behaved plugin
//! whose thread the kernel happened to deschedule mid-call: on a loaded
//! machine, round robin was "timed out" eight times in 10,000 requests. So
//! the epoch deadline is only a prompt to look: when it passes, the
//! deadline callback reads the thread's CPU clock and lets the guest go on
//! while it has not used its budget.
//!
//! Reading a thread's CPU clock is a system call (about 0.3 µs, no vDSO),
//! too dear for every call of a 0.3 µs `select`, so the clock is read for
//! the first time only at the first deadline check. The budget is split in
//! two halves: the first is wall-clock time before that check, in which the
//! guest can have used at most that much CPU; the second is CPU time the
//! guest is charged from there on. A runaway guest is stopped after at most
//! its budget of CPU time; a guest that needs microseconds finishes within
//! the second half however long its thread waited for a core. The
//! backstop stops any call still running after `wall-clock-limit`, whatever
//! it was charged: a plugin blocked in the host (or a host too overloaded
//! to run it) cannot hold a request for ever.

use std::time::Duration;

use tokio::time::Instant;

use wasmtime::{Store, UpdateDeadline};

use super::state::PluginState;
use super::ticker::{self, EPOCH_TICK, InCall};
use crate::config::SandboxConfig;

/// Why a call was interrupted at a deadline check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stopped {
    /// The guest used its CPU budget.
    Cpu,
    /// The call ran past the wall-clock backstop.
    WallClock,
}

/// The accounting of the call in progress on one store.
#[derive(Debug)]
pub(super) struct CallBudget {
    /// CPU time the guest may be charged after the first check.
    charged_limit: Duration,
    /// Wall-clock time before the first check.
    first_window: Duration,
    /// Wall-clock limit of the whole call.
    backstop: Duration,
    /// When the first check ran, and the thread's CPU clock then.
    first_check: Option<(Instant, Duration)>,
    stopped: Option<Stopped>,
}

/// The limits a call runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Limits {
    /// CPU time budget.
    pub cpu: Duration,
    /// Wall-clock backstop; never below `cpu`.
    pub wall_clock: Duration,
}

impl Limits {
    /// The limits of a request-path call under `sandbox`.
    pub(super) fn of(sandbox: &SandboxConfig) -> Self {
        Limits {
            cpu: sandbox.call_timeout,
            wall_clock: sandbox.wall_clock_limit,
        }
    }
}

/// Starts a call on `store` under `limits`: resets its accounting, sets the
/// first deadline and marks the call in progress for the epoch ticker.
/// Hold the guard until the guest returns.
pub(super) fn arm(store: &mut Store<PluginState>, limits: Limits) -> InCall {
    store.data_mut().memory.begin_call();
    let first = store.data_mut().budget.begin(limits);
    store.set_epoch_deadline(ticks(first));
    ticker::enter()
}

/// Installs the deadline check on a new store.
pub(super) fn install(store: &mut Store<PluginState>) {
    store.epoch_deadline_callback(|mut context| Ok(context.data_mut().budget.check()));
}

/// Epoch ticks for a wall-clock span, rounded up, plus one because the
/// current tick may be about to end.
fn ticks(span: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    u64::try_from(span.as_micros().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The CPU time this thread has used, user and system.
fn thread_cpu_time() -> Duration {
    let time = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

// === impl CallBudget ===

impl CallBudget {
    pub(super) fn new() -> Self {
        CallBudget {
            charged_limit: Duration::ZERO,
            first_window: Duration::ZERO,
            backstop: Duration::ZERO,
            first_check: None,
            stopped: None,
        }
    }

    /// Resets the accounting for a new call; returns the wall-clock span to
    /// the first check.
    fn begin(&mut self, limits: Limits) -> Duration {
        self.first_window = limits.cpu / 2;
        self.charged_limit = limits.cpu - self.first_window;
        self.backstop = limits.wall_clock.max(limits.cpu);
        self.first_check = None;
        self.stopped = None;
        self.first_window
    }

    /// Why the last call was interrupted, if it was.
    pub(super) fn stopped(&self) -> Option<Stopped> {
        self.stopped
    }

    /// The deadline passed: go on while the guest has CPU budget left and
    /// the backstop has not passed.
    fn check(&mut self) -> UpdateDeadline {
        let cpu_now = thread_cpu_time();
        let (first_at, cpu_then) = *self.first_check.get_or_insert((Instant::now(), cpu_now));
        let charged = cpu_now.saturating_sub(cpu_then);
        let wall = first_at.elapsed() + self.first_window;
        match self.verdict(charged, wall) {
            Ok(left) => UpdateDeadline::Continue(ticks(left)),
            Err(stopped) => {
                self.stopped = Some(stopped);
                UpdateDeadline::Interrupt
            }
        }
    }

    /// Given CPU time `charged` since the first check and the call's `wall`
    /// time so far: the span to the next check, or why to stop.
    fn verdict(&self, charged: Duration, wall: Duration) -> Result<Duration, Stopped> {
        if charged >= self.charged_limit {
            return Err(Stopped::Cpu);
        }
        if wall >= self.backstop {
            return Err(Stopped::WallClock);
        }
        let cpu_left = self.charged_limit - charged;
        Ok(cpu_left.min(self.backstop - wall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(cpu_ms: u64, wall_ms: u64) -> CallBudget {
        let mut budget = CallBudget::new();
        let first = budget.begin(Limits {
            cpu: Duration::from_millis(cpu_ms),
            wall_clock: Duration::from_millis(wall_ms),
        });
        assert_eq!(first, Duration::from_millis(cpu_ms / 2));
        budget
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_guest_that_waited_for_a_core_is_not_charged_for_the_wait() {
        let budget = budget(10, 250);
        // 200 ms of wall time, 1 µs of CPU since the first check.
        assert_eq!(
            budget.verdict(Duration::from_micros(1), 200 * MS),
            Ok(5 * MS - Duration::from_micros(1))
        );
    }

    #[test]
    fn a_guest_that_used_its_cpu_is_stopped() {
        let budget = budget(10, 250);
        assert_eq!(budget.verdict(5 * MS, 6 * MS), Err(Stopped::Cpu));
        assert_eq!(budget.verdict(4 * MS, 6 * MS), Ok(MS));
    }

    #[test]
    fn the_backstop_stops_a_call_however_little_it_used() {
        let budget = budget(10, 250);
        assert_eq!(budget.verdict(MS, 250 * MS), Err(Stopped::WallClock));
        // The next check is never later than the backstop.
        assert_eq!(budget.verdict(Duration::ZERO, 248 * MS), Ok(2 * MS));
    }

    #[test]
    fn the_backstop_is_never_below_the_cpu_budget() {
        let budget = budget(1000, 250);
        assert_eq!(budget.verdict(MS, 600 * MS), Ok(400 * MS));
    }

    #[test]
    fn the_thread_clock_counts_this_threads_work_not_its_waits() {
        let before = thread_cpu_time();
        std::thread::sleep(50 * MS);
        let slept = thread_cpu_time() - before;
        assert!(slept < 25 * MS, "{slept:?} of CPU charged for 50 ms asleep");

        let before = thread_cpu_time();
        let give_up = Instant::now() + Duration::from_secs(10);
        let mut spins = 0u64;
        while thread_cpu_time() - before < 5 * MS && Instant::now() < give_up {
            spins = std::hint::black_box(spins + 1);
        }
        let used = thread_cpu_time() - before;
        assert!(used >= 5 * MS, "{used:?} of CPU after {spins} spins");
    }
}
