//! `bascule plugin inspect`: what a `.wasm` file is, which world of which
//! contract version it implements, what it imports and exports, what it
//! costs to compile, and whether this host would load it, or why not.

use std::time::Duration;

use wasmtime::component::Component;

use super::bindings::{BalancerPre, HeaderFilterPre, HealthInterpreterPre};
use super::engine::{CONTRACT, PluginRuntime, loadable_contracts, loads_contract, sha256_hex};
use super::state::PluginState;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A WebAssembly component (what the host loads).
    Component,
    /// A core WebAssembly module: it needs componentizing
    /// (`wasm-tools component new`, or a toolchain that targets
    /// `wasm32-wasip2`).
    CoreModule,
    /// Not WebAssembly at all.
    NotWasm,
}

/// The Bascule world a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `balancer` (exports `balance`).
    Balancer,
    /// `header-filter` (exports `filter`).
    HeaderFilter,
    /// `health-interpreter` (exports `health`).
    HealthInterpreter,
}

/// Everything `inspect` found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// Bytes in the file.
    pub size: usize,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Component, core module or neither.
    pub format: Format,
    /// How long compiling it took (machine code for this host).
    pub compile_time: Option<Duration>,
    /// The world its exports implement, when one of Bascule's.
    pub world: Option<World>,
    /// The `bascule:plugin` version its names refer to.
    pub contract: Option<String>,
    /// Its imports, by name.
    pub imports: Vec<String>,
    /// Its exports, by name.
    pub exports: Vec<String>,
    /// `Ok` when this host would load it; otherwise why not.
    pub loads: Result<(), String>,
}

// === impl Format ===

impl Format {
    /// How `plugin inspect` names it, in its text and in its JSON.
    pub fn name(self) -> &'static str {
        match self {
            Format::Component => "component",
            Format::CoreModule => "core module",
            Format::NotWasm => "not WebAssembly",
        }
    }
}

// === impl World ===

impl World {
    /// The world's name in `wit/`.
    pub fn name(self) -> &'static str {
        match self {
            World::Balancer => "balancer",
            World::HeaderFilter => "header-filter",
            World::HealthInterpreter => "health-interpreter",
        }
    }

    /// The world whose interface `export` (`bascule:plugin/balance@0.4.2`)
    /// is.
    fn of_export(export: &str) -> Option<World> {
        let interface = export.strip_prefix("bascule:plugin/")?;
        let interface = interface.split('@').next().unwrap_or(interface);
        match interface {
            "balance" => Some(World::Balancer),
            "filter" => Some(World::HeaderFilter),
            "health" => Some(World::HealthInterpreter),
            _ => None,
        }
    }
}

// === impl PluginRuntime ===

impl PluginRuntime {
    /// Inspects `bytes` as a plugin for this host.
    pub fn inspect(&self, bytes: &[u8]) -> Inspection {
        let mut inspection = Inspection {
            size: bytes.len(),
            sha256: sha256_hex(bytes),
            format: format_of(bytes),
            compile_time: None,
            world: None,
            contract: None,
            imports: Vec::new(),
            exports: Vec::new(),
            loads: Ok(()),
        };
        match inspection.format {
            Format::NotWasm => {
                inspection.loads = Err("not a WebAssembly file".to_owned());
                return inspection;
            }
            Format::CoreModule => {
                inspection.loads = Err(
                    "a core WebAssembly module, not a component: build for `wasm32-wasip2`, or \
                     wrap it with `wasm-tools component new` (with the WASI preview-1 adapter if \
                     it imports WASI)"
                        .to_owned(),
                );
                return inspection;
            }
            Format::Component => {}
        }
        let (engine, linker) = self.parts();
        let started = quanta::Instant::now();
        let component = match Component::new(engine, bytes) {
            Ok(component) => component,
            Err(error) => {
                inspection.loads = Err(format!("does not compile: {}", chain(&error)));
                return inspection;
            }
        };
        inspection.compile_time = Some(started.elapsed());
        let ty = component.component_type();
        inspection.imports = ty
            .imports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        inspection.exports = ty
            .exports(engine)
            .map(|(name, _)| name.to_owned())
            .collect();
        inspection.world = inspection
            .exports
            .iter()
            .find_map(|name| World::of_export(name));
        inspection.contract = inspection
            .imports
            .iter()
            .chain(&inspection.exports)
            .filter(|name| name.starts_with("bascule:plugin/"))
            .find_map(|name| name.split_once('@').map(|(_, version)| version.to_owned()));
        inspection.loads = would_load(linker, &component, inspection.world, &inspection);
        inspection
    }
}

/// Whether `component` links against this host's imports and exports the
/// world it claims, with the reason when not.
fn would_load(
    linker: &wasmtime::component::Linker<PluginState>,
    component: &Component,
    world: Option<World>,
    inspection: &Inspection,
) -> Result<(), String> {
    if let Some(theirs) = &inspection.contract
        && !loads_contract(theirs)
    {
        return Err(format!(
            "built against bascule:plugin@{theirs}; this host speaks {CONTRACT} and loads {}",
            loadable_contracts()
        ));
    }
    let Some(world) = world else {
        return Err(format!(
            "exports no Bascule world (balance, filter or health of {CONTRACT}); its exports: {}",
            list(&inspection.exports)
        ));
    };
    let pre = linker
        .instantiate_pre(component)
        .map_err(|error| format!("an import this host does not provide: {}", chain(&error)))?;
    let checked = match world {
        World::Balancer => BalancerPre::new(pre).map(|_| ()),
        World::HeaderFilter => HeaderFilterPre::new(pre).map(|_| ()),
        World::HealthInterpreter => HealthInterpreterPre::new(pre).map(|_| ()),
    };
    checked.map_err(|error| format!("not a {} of {CONTRACT}: {}", world.name(), chain(&error)))
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// `error` and its causes on one line.
fn chain(error: &wasmtime::Error) -> String {
    format!("{error:#}")
}

/// Component, core module, or neither, from the preamble: `\0asm`, then
/// version 1 for a core module or the component layer's `0x0d 0x00 0x01
/// 0x00`.
fn format_of(bytes: &[u8]) -> Format {
    match bytes.get(..8) {
        Some([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]) => Format::CoreModule,
        Some([0x00, 0x61, 0x73, 0x6d, _, _, 0x01, 0x00]) => Format::Component,
        _ => Format::NotWasm,
    }
}
