//! Everything that names wasmtime: the engine, compiled plugins, sandbox
//! limits, and the three kinds of plugin on top of them: balancers
//! ([`WasmBalancer`]), header filters ([`WasmFilter`]) and health
//! interpreters ([`WasmInterpreter`]).
//!
//! Plugins are compiled when a plan is built, never on the request path.
//! Each call runs under an epoch deadline and a memory cap; a call that
//! traps, times out or returns nonsense is counted in
//! `bascule_plugin_failures_total`, its instance is thrown away, and the
//! caller falls back to its policy.

mod balancer;
mod bindings;
mod breaker;
mod budget;
mod edits;
mod engine;
mod filter;
mod hook_metrics;
mod inspect;
mod instances;
mod interpreter;
mod limits;
mod log_gate;
mod metric_registry;
mod metrics_import;
mod rate_limit;
mod source;
mod state;
mod ticker;
mod wasi;

use std::path::PathBuf;

pub use balancer::{CompiledBalancer, WasmBalancer};
pub use engine::{CONTRACT, PluginRuntime, loadable_contracts};
pub use filter::{CompiledFilter, WasmFilter};
pub use inspect::{Format, Inspection, World};
pub use interpreter::{CompiledInterpreter, WasmInterpreter};
pub use source::builtin_names;

/// Why a plugin could not be loaded or did not answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `.wasm` file could not be read.
    #[error("cannot read plugin {path}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No built-in plugin has this name.
    #[error("no built-in plugin named `{name}` (built-ins: {known})")]
    UnknownBuiltin {
        /// The requested name.
        name: String,
        /// The available names.
        known: String,
    },
    /// The bytes are not a component implementing the expected world.
    #[error("plugin {plugin} cannot be loaded")]
    Load {
        /// The plugin.
        plugin: String,
        /// The compiler's or linker's error.
        #[source]
        source: Cause,
    },
    /// The plugin rejected its options.
    #[error("plugin {plugin} rejected its options: {message}")]
    Rejected {
        /// The plugin.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
    /// The call used its CPU time budget.
    #[error("plugin {plugin} used its CPU time budget")]
    Timeout {
        /// The plugin.
        plugin: String,
    },
    /// The call ran past the wall-clock backstop, however little CPU time
    /// it used: the host was too loaded to run it, or it was blocked.
    #[error("plugin {plugin} ran past the wall-clock limit")]
    WallClock {
        /// The plugin.
        plugin: String,
    },
    /// The instance tried to grow past its memory cap, or used its time
    /// budget growing fast toward it.
    #[error("plugin {plugin} exceeded its memory limit")]
    MemoryLimit {
        /// The plugin.
        plugin: String,
    },
    /// The guest trapped.
    #[error("plugin {plugin} trapped")]
    Trap {
        /// The plugin.
        plugin: String,
        /// The trap, with wasmtime's backtrace.
        #[source]
        source: Cause,
    },
    /// The guest returned something the host will not use.
    #[error("plugin {plugin} returned invalid output: {reason}")]
    InvalidOutput {
        /// The plugin.
        plugin: String,
        /// What was wrong.
        reason: String,
    },
    /// The plugin failed repeatedly and is suspended for a while.
    #[error("plugin {plugin} is suspended after repeated failures")]
    Suspended {
        /// The plugin.
        plugin: String,
    },
    /// The guest reported an error of its own.
    #[error("plugin {plugin} failed: {message}")]
    Guest {
        /// The plugin.
        plugin: String,
        /// The plugin's message.
        message: String,
    },
}

/// Header names a plugin declared it reads, checked.
fn declared_header_names(names: &[String]) -> Result<Vec<http::HeaderName>, String> {
    names
        .iter()
        .map(|name| {
            http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("declared `{name}` is not a valid header name"))
        })
        .collect()
}

/// The underlying error of a load failure or trap. wasmtime's own error
/// type does not leave this module; its chain of causes does.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

// === impl Error ===

impl Error {
    /// A short label for metrics: `timeout`, `memory`, `trap`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Read { .. } | Error::UnknownBuiltin { .. } | Error::Load { .. } => "load",
            Error::Rejected { .. } => "rejected",
            Error::Timeout { .. } => "timeout",
            Error::WallClock { .. } => "wall-clock",
            Error::MemoryLimit { .. } => "memory",
            Error::Trap { .. } => "trap",
            Error::InvalidOutput { .. } => "invalid-output",
            Error::Guest { .. } => "guest-error",
            Error::Suspended { .. } => "suspended",
        }
    }

    /// Whether the instance that produced this error must be replaced:
    /// wasmtime refuses re-entry after a trap, and an instance that looped
    /// or hoarded memory cannot be trusted.
    pub fn poisons_instance(&self) -> bool {
        matches!(
            self,
            Error::Timeout { .. }
                | Error::WallClock { .. }
                | Error::MemoryLimit { .. }
                | Error::Trap { .. }
                | Error::InvalidOutput { .. }
        )
    }
}

#[cfg(test)]
mod tests;
