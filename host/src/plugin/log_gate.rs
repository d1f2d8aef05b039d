//! Rate limits on the log lines a plugin can cause, so that a failing or
//! chatty plugin costs a few lines per interval, never one per request.

use std::time::Duration;

use tokio::time::Instant;

/// A failing plugin is reported once per kind of failure this often, with
/// the count of failures not reported since.
pub(super) const FAILURE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Lines a plugin may write through the `log` import per instance and
/// [`PLUGIN_LOG_INTERVAL`]: enough to debug with, too few to flood the
/// host's log.
pub(super) const PLUGIN_LOG_BURST: u32 = 20;
/// The window [`PLUGIN_LOG_BURST`] counts in.
pub(super) const PLUGIN_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Admits `burst` lines per `interval` and counts the rest.
#[derive(Debug)]
pub(super) struct LogGate {
    interval: Duration,
    burst: u32,
    window_start: Option<Instant>,
    written: u32,
    suppressed: u64,
}

// === impl LogGate ===

impl LogGate {
    pub(super) const fn new(interval: Duration, burst: u32) -> Self {
        LogGate {
            interval,
            burst,
            window_start: None,
            written: 0,
            suppressed: 0,
        }
    }

    /// Whether a line may be written now; if so, how many lines were
    /// suppressed since the last one written (to say so in it).
    pub(super) fn admit(&mut self) -> Option<u64> {
        self.admit_at(Instant::now())
    }

    fn admit_at(&mut self, now: Instant) -> Option<u64> {
        match self.window_start {
            Some(start) if now.duration_since(start) < self.interval => {
                if self.written >= self.burst {
                    self.suppressed += 1;
                    return None;
                }
                self.written += 1;
            }
            _ => {
                self.window_start = Some(now);
                self.written = 1;
            }
        }
        Some(std::mem::take(&mut self.suppressed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_a_burst_per_interval_and_counts_the_rest() {
        let mut gate = LogGate::new(Duration::from_secs(10), 2);
        let start = Instant::now();
        assert_eq!(gate.admit_at(start), Some(0));
        assert_eq!(gate.admit_at(start), Some(0));
        for _ in 0..5 {
            assert_eq!(gate.admit_at(start + Duration::from_secs(9)), None);
        }
        assert_eq!(gate.admit_at(start + Duration::from_secs(10)), Some(5));
        assert_eq!(gate.admit_at(start + Duration::from_secs(11)), Some(0));
        assert_eq!(gate.admit_at(start + Duration::from_secs(12)), None);
    }
}
