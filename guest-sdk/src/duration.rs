//! Durations in balancer options, written as operators write them in the
//! rest of the config: `"500ms"`, `"30s"`, `"1h"`.

use std::time::Duration;

use serde::Deserialize;

/// A duration option, parsed with `humantime` (`"10s"`, `"1h 30m"`).
///
/// ```
/// # use bascule_guest_sdk::DurationOption;
/// let d: DurationOption = serde_json::from_str(r#""1m""#).unwrap();
/// assert_eq!(d.get().as_secs(), 60);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DurationOption(Duration);

// === impl DurationOption ===

impl DurationOption {
    /// Wraps a duration.
    pub const fn new(duration: Duration) -> Self {
        DurationOption(duration)
    }

    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl TryFrom<String> for DurationOption {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        humantime::parse_duration(&text)
            .map(DurationOption)
            .map_err(|e| format!("invalid duration `{text}`: {e} (write e.g. \"500ms\", \"30s\")"))
    }
}
