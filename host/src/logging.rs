//! The process's own log on stderr: level and format from `[log]` (or
//! `RUST_LOG`, which wins when set), timestamps on every line, colours
//! only for a terminal.
//!
//! The level follows reloads; the format is chosen once, at start (a
//! log pipeline does not expect it to change under it).

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, reload};

use crate::config::{LogConfig, LogFormat};

/// The level when neither `[log] level` nor `RUST_LOG` says.
const DEFAULT_LEVEL: &str = "info";

/// Swaps the filter when a reload changes `[log] level`; `None` until
/// [`init`] ran, or when `RUST_LOG` fixed the level.
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` is not a filter.
    #[error("RUST_LOG is not a log filter")]
    Env(#[source] tracing_subscriber::filter::FromEnvError),
    /// Another subscriber was installed first.
    #[error("a logger is already installed")]
    Installed(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the process's logger as `config` says.
pub fn init(config: &LogConfig) -> Result<(), LoggingError> {
    let from_env = std::env::var_os(EnvFilter::DEFAULT_ENV).is_some();
    let filter = if from_env {
        EnvFilter::try_from_default_env().map_err(LoggingError::Env)?
    } else {
        filter_for(config)
    };
    let (filter, handle) = reload::Layer::new(filter);
    // Colours for a person at a terminal; none in files and journals.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let registry = tracing_subscriber::registry().with(filter);
    match config.format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(ansi),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    }
    .map_err(LoggingError::Installed)?;
    if !from_env {
        let _ = LEVEL.set(handle);
    }
    Ok(())
}

/// Applies a reloaded config's level (unless `RUST_LOG` fixed it).
pub fn apply(config: &LogConfig) {
    if let Some(level) = LEVEL.get()
        && let Err(error) = level.reload(filter_for(config))
    {
        tracing::warn!(%error, "log level not changed");
    }
}

/// `[log] level`, validated at load; the default when absent.
fn filter_for(config: &LogConfig) -> EnvFilter {
    let level = config.level.as_deref().unwrap_or(DEFAULT_LEVEL);
    EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new(DEFAULT_LEVEL))
}
