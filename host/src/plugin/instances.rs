//! What every kind of plugin shares: long-lived instances, each used by one
//! caller at a time, and one guarded call through them: the sandbox's time
//! budget, failure classification, metrics, instance replacement and the
//! suspension breaker.
//!
//! Each worker thread keeps its own instance per plugin use in a slot only
//! it and the supervisor touch ([`WorkerSlots`]), so the call path takes no
//! lock and a stateful plugin (round robin) is exact per worker. A slot is
//! one atomic pointer. New backend generations are double-buffered
//! ([`Instances::refresh`]): the supervisor brings a standby instance up to
//! date on its own thread (a Maglev or ring rebuild of milliseconds) and
//! swaps it into the worker's slot; the instance it replaces becomes the
//! next standby. A worker never waits for a rebuild and never finds its
//! slot empty because of one.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_utils::atomic::AtomicCell;
use wasmtime::{Engine, Store, Trap};

use super::Error;
use super::bindings::types;
use super::breaker::Breaker;
use super::budget::{self, Limits, Stopped};
use super::log_gate::{FAILURE_LOG_INTERVAL, LogGate};
use super::metric_registry::MetricRegistry;
use super::state::PluginState;

/// Spare instances kept per plugin use, beyond the workers' own: the
/// instance made at load time, and those a busy slot made a call create.
const MAX_SPARE_INSTANCES: usize = 64;

/// Threads that get a slot of their own; more (a runtime of over 64
/// workers) share the spare list.
const MAX_WORKER_SLOTS: usize = 64;

/// Instances of one plugin use (a pool's balancer, a route's filter).
pub(super) struct Instances<I: Send> {
    plugin: Arc<str>,
    /// What the plugin serves, for the failure counters' labels.
    used_by: PluginUse,
    /// Calls that failed, for `/status`.
    failures: std::sync::atomic::AtomicU64,
    slots: WorkerSlots<I>,
    spare: Mutex<Vec<Box<I>>>,
    breaker: Breaker,
    /// One log line per kind of failure and interval.
    failure_logs: Mutex<Vec<(&'static str, LogGate)>>,
}

/// What one use of a plugin serves: one `.wasm` may balance several pools
/// or filter under several names, and its failures say which.
#[derive(Debug, Clone)]
pub(super) enum PluginUse {
    /// A pool's balancer or health interpreter.
    Pool(Arc<str>),
    /// A `[filters.NAME]` header filter.
    Filter(Arc<str>),
}

impl PluginUse {
    /// The label that names it on metrics: `pool` or `filter`, and the
    /// name.
    pub(super) fn label(&self) -> (&'static str, &Arc<str>) {
        match self {
            PluginUse::Pool(pool) => ("pool", pool),
            PluginUse::Filter(filter) => ("filter", filter),
        }
    }
}

/// One instance slot per worker thread, indexed by [`worker_slot`].
/// `AtomicCell` of a `Box` is a single lock-free pointer swap; a slot is
/// claimed once its worker has put an instance there.
struct WorkerSlots<I> {
    cells: Box<[AtomicCell<Option<Box<I>>>]>,
    claimed: Box<[AtomicBool]>,
}

// === impl Instances ===

impl<I: Send> Instances<I> {
    pub(super) fn new(plugin: Arc<str>, used_by: PluginUse) -> Self {
        Instances {
            plugin,
            used_by,
            failures: std::sync::atomic::AtomicU64::new(0),
            slots: WorkerSlots::new(),
            spare: Mutex::new(Vec::new()),
            breaker: Breaker::new(),
            failure_logs: Mutex::new(Vec::new()),
        }
    }

    /// Calls that failed since this use was built.
    pub(super) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The plugin's name, as the config spells it.
    pub(super) fn plugin(&self) -> &Arc<str> {
        &self.plugin
    }

    /// Runs `call` on this worker's instance, or a spare one, or one made
    /// by `create`. An instance the call poisoned (trap, timeout, memory,
    /// invalid output) is dropped, not returned; failures are counted and
    /// feed the breaker, which refuses calls for a while after repeated
    /// poisoning failures.
    pub(super) fn call<T>(
        &self,
        create: impl FnOnce() -> Result<I, Error>,
        call: impl FnOnce(&mut I) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let result = if self.breaker.is_open() {
            Err(Error::Suspended {
                plugin: self.plugin.to_string(),
            })
        } else {
            let slot = worker_slot();
            self.check_out(slot, create).and_then(|mut instance| {
                let result = call(&mut instance);
                match &result {
                    Err(error) if error.poisons_instance() => {}
                    _ => self.return_instance(slot, instance),
                }
                result
            })
        };
        match &result {
            Ok(_) => self.breaker.record_success(),
            Err(error) => {
                let (use_label, user) = self.used_by.label();
                metrics::counter!(
                    crate::metrics::PLUGIN_FAILURES,
                    "plugin" => self.plugin.to_string(),
                    use_label => user.to_string(),
                    "kind" => error.kind(),
                )
                .increment(1);
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.log_failure(error);
                if error.poisons_instance() {
                    self.breaker.record_failure(&self.plugin);
                }
            }
        }
        result
    }

    /// Logs `error` unless this kind of failure was logged within the
    /// interval; the next line says how many were not.
    fn log_failure(&self, error: &Error) {
        let kind = error.kind();
        let admitted = {
            let mut gates = lock(&self.failure_logs);
            let index = match gates.iter().position(|(logged, _)| *logged == kind) {
                Some(index) => index,
                None => {
                    gates.push((kind, LogGate::new(FAILURE_LOG_INTERVAL, 1)));
                    gates.len() - 1
                }
            };
            gates.get_mut(index).and_then(|(_, gate)| gate.admit())
        };
        if let Some(suppressed) = admitted {
            tracing::warn!(
                plugin = %self.plugin,
                kind,
                not_logged_since_last = suppressed,
                error = %crate::error_chain(error),
                "plugin call failed"
            );
        }
    }

    fn check_out(
        &self,
        slot: Option<usize>,
        create: impl FnOnce() -> Result<I, Error>,
    ) -> Result<Box<I>, Error> {
        if let Some(instance) = slot.and_then(|slot| self.slots.take(slot)) {
            return Ok(instance);
        }
        let spare = lock(&self.spare).pop();
        match spare {
            Some(instance) => Ok(instance),
            None => create().map(Box::new),
        }
    }

    /// Puts `instance` in the worker's slot, or with the spares when the
    /// slot was filled meanwhile (the supervisor gave back an updated one).
    fn return_instance(&self, slot: Option<usize>, instance: Box<I>) {
        let left = match slot {
            Some(slot) => self.slots.put(slot, instance),
            None => Some(instance),
        };
        if let Some(instance) = left {
            self.keep_spare(instance);
        }
    }

    /// Keeps the instance made at load time for the first worker to call.
    pub(super) fn check_in(&self, instance: I) {
        self.keep_spare(Box::new(instance));
    }

    fn keep_spare(&self, instance: Box<I>) {
        let mut spare = lock(&self.spare);
        if spare.len() < MAX_SPARE_INSTANCES {
            spare.push(instance);
        }
    }

    /// Brings every worker's instance to a new state off the request path:
    /// for each slot a worker has used, a standby (a spare, or one made by
    /// `create`) is given `update` here and swapped in; the instance it
    /// replaces is kept as a spare, to be the next standby. Before any
    /// worker has called, the spares themselves are updated. Returns how
    /// many instances were brought up to date; one that fails its update
    /// is dropped, and the worker keeps its instance, which catches up on
    /// its next call.
    pub(super) fn refresh(
        &self,
        create: impl Fn() -> Result<I, Error>,
        mut update: impl FnMut(&mut I) -> Result<(), Error>,
    ) -> usize {
        let mut updated = 0;
        let failed = |error: Error| {
            tracing::warn!(plugin = %self.plugin, error = %crate::error_chain(&error), "standby instance failed an update, dropped");
        };
        let mut claimed_any = false;
        for slot in 0..self.slots.len() {
            if !self.slots.is_claimed(slot) {
                continue;
            }
            claimed_any = true;
            let standby = match lock(&self.spare).pop() {
                Some(spare) => Ok(spare),
                None => create().map(Box::new),
            };
            let mut standby = match standby {
                Ok(standby) => standby,
                Err(error) => {
                    failed(error);
                    continue;
                }
            };
            if let Err(error) = update(&mut standby) {
                failed(error);
                continue;
            }
            updated += 1;
            if let Some(replaced) = self.slots.swap(slot, standby) {
                self.keep_spare(replaced);
            }
        }
        if !claimed_any {
            lock(&self.spare).retain_mut(|instance| match update(instance) {
                Ok(()) => {
                    updated += 1;
                    true
                }
                Err(error) => {
                    failed(error);
                    false
                }
            });
        }
        updated
    }
}

// === impl WorkerSlots ===

impl<I> WorkerSlots<I> {
    fn new() -> Self {
        WorkerSlots {
            cells: (0..MAX_WORKER_SLOTS)
                .map(|_| AtomicCell::new(None))
                .collect(),
            claimed: (0..MAX_WORKER_SLOTS)
                .map(|_| AtomicBool::new(false))
                .collect(),
        }
    }

    fn len(&self) -> usize {
        self.cells.len()
    }

    fn is_claimed(&self, slot: usize) -> bool {
        self.claimed
            .get(slot)
            .is_some_and(|claimed| claimed.load(Ordering::Acquire))
    }

    fn take(&self, slot: usize) -> Option<Box<I>> {
        self.cells.get(slot).and_then(AtomicCell::take)
    }

    /// Fills `slot` if it is empty; otherwise hands `instance` back.
    fn put(&self, slot: usize, instance: Box<I>) -> Option<Box<I>> {
        let (Some(cell), Some(claimed)) = (self.cells.get(slot), self.claimed.get(slot)) else {
            return Some(instance);
        };
        claimed.store(true, Ordering::Release);
        match cell.swap(Some(instance)) {
            None => None,
            // Filled meanwhile (a refresh swapped a fresher one in): keep
            // that one, hand ours back.
            Some(fresher) => cell.swap(Some(fresher)),
        }
    }

    /// Puts `instance` in `slot` whatever is there; returns what was.
    fn swap(&self, slot: usize, instance: Box<I>) -> Option<Box<I>> {
        match self.cells.get(slot) {
            Some(cell) => cell.swap(Some(instance)),
            None => Some(instance),
        }
    }
}

/// This thread's slot index, handed out on its first plugin call; `None`
/// past [`MAX_WORKER_SLOTS`] threads. Only threads that call plugins (the
/// runtime's workers) take one: loading and generation pushes do not.
fn worker_slot() -> Option<usize> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<Option<Option<usize>>> = const { Cell::new(None) };
    }
    SLOT.with(|cell| match cell.get() {
        Some(slot) => slot,
        None => {
            let next = NEXT.fetch_add(1, Ordering::Relaxed);
            let slot = (next < MAX_WORKER_SLOTS).then_some(next);
            cell.set(Some(slot));
            slot
        }
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Instantiation, `configure` and a balancer's `set-backends` may build
/// tables (a Maglev table of 65,537 entries, a ring of 160 virtual nodes
/// per backend): they get a budget of their own, far above a call's.
pub(super) const SETUP_LIMITS: Limits = Limits {
    cpu: Duration::from_secs(1),
    wall_clock: Duration::from_secs(5),
};

/// A fresh store for one instance of `plugin`: its memory cap and the
/// deadline check installed. Arm it ([`budget::arm`]) before each entry.
pub(super) fn new_store(
    engine: &Engine,
    plugin: &Arc<str>,
    memory_limit_bytes: usize,
    metrics: &Arc<MetricRegistry>,
) -> Store<PluginState> {
    let state = PluginState::new(Arc::clone(plugin), memory_limit_bytes, Arc::clone(metrics));
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    budget::install(&mut store);
    store
}

/// Names what stopped a call: the memory cap, the CPU budget, the
/// wall-clock backstop, or a trap.
/// A new instance of a plugin, set up under [`SETUP_LIMITS`]:
/// `instantiate` makes it in a fresh store, `configure` calls its
/// `configure` export. Options it rejects come back as
/// [`Error::Rejected`]; a created instance is counted.
pub(super) fn set_up<B, N>(
    engine: &Engine,
    plugin: &Arc<str>,
    memory_limit_bytes: usize,
    metrics: &Arc<MetricRegistry>,
    instantiate: impl FnOnce(&mut Store<PluginState>) -> wasmtime::Result<B>,
    configure: impl FnOnce(
        &B,
        &mut Store<PluginState>,
    ) -> wasmtime::Result<Result<N, types::PluginError>>,
) -> Result<(Store<PluginState>, B, N), Error> {
    let mut store = new_store(engine, plugin, memory_limit_bytes, metrics);
    let _in_call = budget::arm(&mut store, SETUP_LIMITS);
    let bindings = instantiate(&mut store).map_err(|e| classify(e, &store, plugin))?;
    store.data_mut().configuring = true;
    let configured = configure(&bindings, &mut store);
    store.data_mut().configuring = false;
    let needs = configured
        .map_err(|e| classify(e, &store, plugin))?
        .map_err(|e| Error::Rejected {
            plugin: plugin.to_string(),
            message: e.message,
        })?;
    metrics::counter!(crate::metrics::PLUGIN_INSTANCES_CREATED, "plugin" => plugin.to_string())
        .increment(1);
    Ok((store, bindings, needs))
}

pub(super) fn classify(error: wasmtime::Error, store: &Store<PluginState>, plugin: &str) -> Error {
    let plugin = plugin.to_owned();
    let memory = &store.data().memory;
    if memory.exceeded() {
        return Error::MemoryLimit { plugin };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) if memory.grew_fast() => Error::MemoryLimit { plugin },
        Some(Trap::Interrupt) => match store.data().budget.stopped() {
            Some(Stopped::WallClock) => Error::WallClock { plugin },
            Some(Stopped::Cpu) | None => Error::Timeout { plugin },
        },
        _ => Error::Trap {
            plugin,
            source: error.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    /// An instance that knows which creation it was and counts its calls.
    struct Numbered {
        id: u32,
        generation: u32,
    }

    fn numbered(next: &AtomicU32) -> impl Fn() -> Result<Numbered, Error> + '_ {
        || {
            Ok(Numbered {
                id: next.fetch_add(1, Ordering::Relaxed),
                generation: 0,
            })
        }
    }

    fn ids_on_this_thread(instances: &Instances<Numbered>, next: &AtomicU32) -> Vec<u32> {
        (0..3)
            .map(|_| instances.call(numbered(next), |i| Ok(i.id)).unwrap())
            .collect()
    }

    #[test]
    fn each_thread_keeps_its_own_instance_and_the_supervisor_reaches_all() {
        let instances = Instances::new("test".into(), PluginUse::Pool("test".into()));
        let next = AtomicU32::new(0);
        instances.check_in(numbered(&next)().unwrap());

        let first = ids_on_this_thread(&instances, &next);
        let second = std::thread::scope(|s| {
            s.spawn(|| ids_on_this_thread(&instances, &next))
                .join()
                .unwrap()
        });
        assert_eq!(
            first,
            [0, 0, 0],
            "the load-time instance serves the first thread"
        );
        assert_eq!(
            second,
            [1, 1, 1],
            "another thread gets an instance of its own"
        );

        let updated = instances.refresh(numbered(&next), |i| {
            i.generation += 1;
            Ok(())
        });
        assert_eq!(updated, 2, "both threads' instances are replaced");
        let (id, generation) = instances
            .call(numbered(&next), |i| Ok((i.id, i.generation)))
            .unwrap();
        assert_eq!(generation, 1, "the worker got the updated standby");
        assert_eq!(id, 2, "a standby made off the request path");
        // The replaced instances are the next standbys: nothing new made.
        let updated = instances.refresh(numbered(&next), |i| {
            i.generation += 1;
            Ok(())
        });
        assert_eq!(updated, 2);
        // One standby was made (for the first slot); the first slot's
        // replaced instance served the second, and so on since.
        assert_eq!(
            next.load(Ordering::Relaxed),
            3,
            "instances made beyond one standby"
        );
    }

    #[test]
    fn a_standby_that_fails_its_update_leaves_the_worker_its_instance() {
        let instances = Instances::new("test".into(), PluginUse::Pool("test".into()));
        let next = AtomicU32::new(0);
        assert_eq!(ids_on_this_thread(&instances, &next), [0, 0, 0]);
        let updated = instances.refresh(numbered(&next), |_| {
            Err(Error::Suspended {
                plugin: "test".to_owned(),
            })
        });
        assert_eq!(updated, 0);
        assert_eq!(ids_on_this_thread(&instances, &next), [0, 0, 0]);
    }

    #[test]
    fn before_any_worker_calls_the_load_time_instance_is_updated_in_place() {
        let instances = Instances::new("test".into(), PluginUse::Pool("test".into()));
        let next = AtomicU32::new(0);
        instances.check_in(numbered(&next)().unwrap());
        let updated = instances.refresh(numbered(&next), |i| {
            i.generation = 7;
            Ok(())
        });
        assert_eq!(updated, 1);
        let seen = instances.call(numbered(&next), |i| Ok((i.id, i.generation)));
        assert_eq!(seen.unwrap(), (0, 7));
    }
}
