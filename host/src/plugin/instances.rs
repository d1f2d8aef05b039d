//! What every kind of plugin shares: long-lived instances, each used by one
//! caller at a time, and one guarded call through them: the sandbox's time
//! budget, failure classification, metrics, instance replacement and the
//! suspension breaker.
//!
//! Idle instances wait in one list per plugin use, taken last-in first-out
//! so that sequential traffic always meets the same instance (an exact
//! rotation). The supervisor reaches them there to push a new backend
//! generation ([`Instances::for_each_idle`]) off the request path.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use wasmtime::{Engine, Store, Trap};

use super::Error;
use super::breaker::Breaker;
use super::engine::EPOCH_TICK;
use super::state::PluginState;

/// Idle instances kept per plugin use; more are created under load and
/// dropped when returned to a full list.
const MAX_IDLE_INSTANCES: usize = 64;

/// Instances of one plugin use (a pool's balancer, a route's filter).
pub(super) struct Instances<I: Send> {
    plugin: Arc<str>,
    idle: Mutex<Vec<I>>,
    breaker: Breaker,
}

// === impl Instances ===

impl<I: Send> Instances<I> {
    pub(super) fn new(plugin: Arc<str>) -> Self {
        Instances {
            plugin,
            idle: Mutex::new(Vec::new()),
            breaker: Breaker::new(),
        }
    }

    /// The plugin's name, as the config spells it.
    pub(super) fn plugin(&self) -> &Arc<str> {
        &self.plugin
    }

    /// Runs `call` on an idle instance, or on one made by `create`. An
    /// instance the call poisoned (trap, timeout, memory, invalid output)
    /// is dropped, not returned; failures are counted and feed the breaker,
    /// which refuses calls for a while after repeated poisoning failures.
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
            self.check_out(create).and_then(|mut instance| {
                let result = call(&mut instance);
                match &result {
                    Err(error) if error.poisons_instance() => {}
                    _ => self.check_in(instance),
                }
                result
            })
        };
        match &result {
            Ok(_) => self.breaker.record_success(),
            Err(error) => {
                metrics::counter!(
                    crate::metrics::PLUGIN_FAILURES,
                    "plugin" => self.plugin.to_string(),
                    "kind" => error.kind(),
                )
                .increment(1);
                if error.poisons_instance() {
                    self.breaker.record_failure(&self.plugin);
                }
            }
        }
        result
    }

    fn check_out(&self, create: impl FnOnce() -> Result<I, Error>) -> Result<I, Error> {
        let reused = lock(&self.idle).pop();
        match reused {
            Some(instance) => Ok(instance),
            None => create(),
        }
    }

    /// Keeps `instance` for later calls (the one made at load time, or one
    /// a call returns), unless enough are idle already.
    pub(super) fn check_in(&self, instance: I) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_INSTANCES {
            idle.push(instance);
        }
    }

    /// Runs `update` on every idle instance, dropping those it fails on;
    /// returns how many it updated. A call that wants an instance
    /// meanwhile waits for this one update; instances checked out now
    /// catch up on their next call.
    pub(super) fn for_each_idle(
        &self,
        mut update: impl FnMut(&mut I) -> Result<(), Error>,
    ) -> usize {
        let mut updated = 0;
        lock(&self.idle).retain_mut(|instance| match update(instance) {
            Ok(()) => {
                updated += 1;
                true
            }
            Err(error) => {
                tracing::warn!(plugin = %self.plugin, error = %crate::error_chain(&error), "idle instance failed an update, dropped");
                false
            }
        });
        updated
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Instantiation, `configure` and a balancer's `set-backends` may build
/// tables (a Maglev table of 65,537 entries, a ring of 160 virtual nodes
/// per backend): they get a budget of their own, far above a call's.
pub(super) const SETUP_BUDGET: Duration = Duration::from_secs(1);

/// A fresh store for one instance of `plugin`: its memory cap installed
/// and the setup budget as its deadline.
pub(super) fn new_store(
    engine: &Engine,
    plugin: &Arc<str>,
    memory_limit_bytes: usize,
) -> Store<PluginState> {
    let state = PluginState::new(Arc::clone(plugin), memory_limit_bytes);
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    store.set_epoch_deadline(ticks(SETUP_BUDGET));
    store
}

/// Epoch ticks for a wall-clock budget, rounded up, plus one because the
/// current tick may be about to end.
pub(super) fn ticks(budget: Duration) -> u64 {
    let tick = EPOCH_TICK.as_micros().max(1);
    u64::try_from(budget.as_micros().div_ceil(tick))
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// Names what stopped a call: the memory cap, the time budget, or a trap.
pub(super) fn classify(error: wasmtime::Error, store: &Store<PluginState>, plugin: &str) -> Error {
    let plugin = plugin.to_owned();
    if store.data().memory.exceeded() {
        return Error::MemoryLimit { plugin };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Error::Timeout { plugin },
        _ => Error::Trap {
            plugin,
            source: error.into(),
        },
    }
}
