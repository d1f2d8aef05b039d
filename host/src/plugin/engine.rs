//! The process-wide wasmtime engine, its epoch ticker, and compilation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Cache, CacheConfig, Engine, OptLevel};

use super::balancer::CompiledBalancer;
use super::bindings::{
    Balancer, BalancerPre, HeaderFilterPre, HealthInterpreterPre, headers, rate_limit,
};
use super::filter::CompiledFilter;
use super::interpreter::CompiledInterpreter;
use super::state::PluginState;
use super::ticker::EpochTicker;
use super::{Error, source, wasi};
use crate::config::PluginRef;

/// The contract this host implements, as components name it in their
/// imports and exports. Plugins built against an earlier patch version of
/// the same `0.4` line load too: wasmtime links `@0.4.1` (or `@0.4.0`) names to the
/// `@0.4.2` definitions (semver-compatible), and patch versions only add.
pub const CONTRACT: &str = "bascule:plugin@0.4.2";

/// Guests get a modest stack: balancing needs no deep recursion, and a
/// runaway recursion should trap quickly.
const MAX_WASM_STACK: usize = 512 * 1024;

/// Compiled components kept for reuse; past this many distinct plugins the
/// cache starts over (reloads with ever-changing plugin files).
const MAX_CACHED_COMPONENTS: usize = 64;

/// The engine, a linker with the host imports, and compiled components by
/// content, so that pools sharing a plugin and reloads that keep it do not
/// compile it again.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<PluginState>,
    compiled: Mutex<HashMap<ContentKey, Component>>,
    _ticker: EpochTicker,
}

// === impl PluginRuntime ===

impl PluginRuntime {
    /// Creates the engine and its epoch ticker. Compiled plugins are
    /// cached on disk in wasmtime's cache directory (`~/.cache/wasmtime`),
    /// keyed by content and compiler settings, so a restart or reload loads
    /// machine code instead of compiling again.
    pub fn new() -> Result<Self, Error> {
        let mut config = wasmtime::Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK)
            .cranelift_opt_level(OptLevel::Speed);
        match Cache::new(CacheConfig::new()) {
            Ok(cache) => {
                config.cache(Some(cache));
            }
            // Compilation still works, just again at every start.
            Err(error) => tracing::warn!(%error, "no compilation cache for plugins"),
        }
        let engine = Engine::new(&config).map_err(|e| load_error("engine", e))?;
        let mut linker = Linker::new(&engine);
        wasi::add_to_linker(&mut linker).map_err(|e| load_error("wasi", e))?;
        // One linker serves every world: a component instantiates with the
        // imports it names, whatever else is defined.
        Balancer::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |state| state)
            .map_err(|e| load_error("host imports", e))?;
        headers::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |state| state)
            .map_err(|e| load_error("host imports", e))?;
        rate_limit::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |state| state)
            .map_err(|e| load_error("host imports", e))?;
        let ticker = EpochTicker::start(engine.clone()).map_err(|e| Error::Load {
            plugin: "epoch ticker".to_owned(),
            source: Box::new(e),
        })?;
        Ok(PluginRuntime {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
            _ticker: ticker,
        })
    }

    /// Compiles a balancer plugin and links it against the host imports.
    /// Identical bytes are compiled once per process.
    pub fn compile_balancer(&self, plugin: &PluginRef) -> Result<Arc<CompiledBalancer>, Error> {
        let (name, digest, component) = self.component(plugin)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(BalancerPre::new)
            .map_err(|e| load_error(&name, e.context(self.why_not(&component, "a balancer"))))?;
        Ok(Arc::new(CompiledBalancer::new(
            name,
            digest,
            self.engine.clone(),
            pre,
        )))
    }

    /// Compiles (or finds already compiled) a header filter plugin and
    /// links it against the host's imports.
    pub fn compile_filter(&self, plugin: &PluginRef) -> Result<Arc<CompiledFilter>, Error> {
        let (name, digest, component) = self.component(plugin)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(HeaderFilterPre::new)
            .map_err(|e| {
                load_error(
                    &name,
                    e.context(self.why_not(&component, "a header filter")),
                )
            })?;
        Ok(Arc::new(CompiledFilter::new(
            name,
            digest,
            self.engine.clone(),
            pre,
        )))
    }

    /// Compiles (or finds already compiled) a health interpreter plugin and
    /// links it against the host's imports.
    pub fn compile_interpreter(
        &self,
        plugin: &PluginRef,
    ) -> Result<Arc<CompiledInterpreter>, Error> {
        let (name, digest, component) = self.component(plugin)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(HealthInterpreterPre::new)
            .map_err(|e| {
                load_error(
                    &name,
                    e.context(self.why_not(&component, "a health interpreter")),
                )
            })?;
        Ok(Arc::new(CompiledInterpreter::new(
            name,
            digest,
            self.engine.clone(),
            pre,
        )))
    }

    /// Why `component` does not link as `role`: built against another
    /// contract version (named), or not that kind of plugin.
    fn why_not(&self, component: &Component, role: &str) -> String {
        let ty = component.component_type();
        let names: Vec<String> = ty
            .imports(&self.engine)
            .map(|(name, _)| name.to_owned())
            .chain(ty.exports(&self.engine).map(|(name, _)| name.to_owned()))
            .collect();
        match other_contract(&names) {
            Some(version) => format!(
                "it was built against bascule:plugin@{version}, and this host speaks {CONTRACT}: \
                 rebuild it with the guest SDK of {CONTRACT}"
            ),
            None => format!("it is not {role} of {CONTRACT}"),
        }
    }

    /// The plugin's name, the SHA-256 of its bytes (hex, as `sha256sum`
    /// prints it) and its compiled component, from the in-memory cache
    /// when the same bytes were compiled before.
    fn component(&self, plugin: &PluginRef) -> Result<(String, String, Component), Error> {
        let name = plugin.to_string();
        let bytes = source::read(plugin)?;
        let digest = sha256_hex(&bytes);
        let key = ContentKey::of(&bytes);
        if let Some(component) = self.cache().get(&key) {
            return Ok((name, digest, component.clone()));
        }
        let component = Component::new(&self.engine, &bytes).map_err(|e| load_error(&name, e))?;
        let mut cache = self.cache();
        if cache.len() >= MAX_CACHED_COMPONENTS {
            cache.clear();
        }
        cache.insert(key, component.clone());
        Ok((name, digest, component))
    }

    /// The engine and the linker holding every host import, for
    /// [`super::inspect`].
    pub(super) fn parts(&self) -> (&Engine, &Linker<PluginState>) {
        (&self.engine, &self.linker)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<ContentKey, Component>> {
        self.compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `bytes`' SHA-256, in lowercase hex.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            use std::fmt::Write as _;
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// A component's bytes by length and 128-bit hash: keeping the bytes
/// themselves as the key would hold a copy of every plugin (hundreds of KiB
/// each) for the life of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ContentKey {
    len: usize,
    hash: u128,
}

impl ContentKey {
    fn of(bytes: &[u8]) -> Self {
        ContentKey {
            len: bytes.len(),
            hash: xxhash_rust::xxh3::xxh3_128(bytes),
        }
    }
}

/// The version of the `bascule:plugin` package `names` (a component's
/// imports and exports) refer to, when this host cannot load it: another
/// `0.MINOR` line (a patch version of ours is compatible).
fn other_contract(names: &[String]) -> Option<&str> {
    names
        .iter()
        .filter(|name| name.starts_with("bascule:plugin/"))
        .filter_map(|name| name.split_once('@').map(|(_, version)| version))
        .find(|version| !loads_contract(version))
}

/// Whether this host loads plugins built against `bascule:plugin` at
/// `version`: those of its own compatible line.
pub fn loads_contract(version: &str) -> bool {
    compatible_line(version) == compatible_line(our_version())
}

/// The contract versions this host loads, as `bascule:plugin@0.4.x`.
pub fn loadable_contracts() -> String {
    format!("bascule:plugin@{}.x", compatible_line(our_version()))
}

/// `0.4.2` of [`CONTRACT`].
fn our_version() -> &'static str {
    CONTRACT.split_once('@').map_or("", |(_, version)| version)
}

/// `0.MINOR` of a `0.MINOR.PATCH` version (`MAJOR` from 1.0 on): versions
/// with the same line are semver-compatible.
fn compatible_line(version: &str) -> &str {
    let mut dots = version.match_indices('.').map(|(at, _)| at);
    let end = if version.starts_with("0.") {
        dots.nth(1)
    } else {
        dots.next()
    };
    end.and_then(|at| version.get(..at)).unwrap_or(version)
}

fn load_error(plugin: &str, error: wasmtime::Error) -> Error {
    Error::Load {
        plugin: plugin.to_owned(),
        source: error.into(),
    }
}
