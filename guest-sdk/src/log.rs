//! Logging into the host's log; lines carry the plugin's name. Compiled
//! natively (unit tests), lines go to standard error.

#[cfg(target_arch = "wasm32")]
use crate::bindings::bascule::plugin::log::{Level, write};

#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

#[cfg(not(target_arch = "wasm32"))]
fn write(level: Level, message: &str) {
    eprintln!("{level:?}: {message}");
}

/// Logs at debug level.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    write(Level::Error, message);
}
