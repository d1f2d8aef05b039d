//! Health interpreters: plugins that judge the outcome of one active probe.
//!
//! The host probes every backend of a pool with a `[pools.NAME.health]`
//! table (an HTTP request, or a TCP connect with optional bytes sent and an
//! answer read) and calls the pool's interpreter once per probe with the
//! outcome. The interpreter answers [`Verdict::Healthy`],
//! [`Verdict::Degraded`] (serving at a fraction of its weight) or
//! [`Verdict::Unhealthy`], each with a reason. Thresholds and hysteresis
//! stay in the host: write only the judgement.
//!
//! Implement [`HealthInterpreter`] and export it with
//! [`export_health_interpreter!`](crate::export_health_interpreter).
//! [`ProbeNeeds`] declares, once, which response headers to pass, whether
//! to read the body, and for TCP what to send and when an answer is
//! complete. Unit-test the judgement natively with [`ProbeOutcome`]'s
//! constructors; no host is needed.
//!
//! ```no_run
//! use bascule_guest_sdk::health::{
//!     HealthInterpreter, ProbeKind, ProbeNeeds, ProbeOutcome, Verdict,
//! };
//! use bascule_guest_sdk::{Error, Options};
//!
//! /// Healthy on 200, degraded while the backend says it is warming up.
//! struct WarmingUp;
//!
//! impl HealthInterpreter for WarmingUp {
//!     fn configure(options: &Options, kind: ProbeKind) -> Result<Self, Error> {
//!         options.expect_none()?;
//!         if kind != ProbeKind::Http {
//!             return Err(Error::new("warming-up reads an HTTP header"));
//!         }
//!         Ok(WarmingUp)
//!     }
//!
//!     fn needs(&self) -> ProbeNeeds {
//!         ProbeNeeds::default().header("x-warming-up")
//!     }
//!
//!     fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict {
//!         match outcome.status {
//!             Some(200) if outcome.header("x-warming-up").is_some() => {
//!                 Verdict::degraded(0.25, "warming up")
//!             }
//!             Some(200) => Verdict::healthy("200"),
//!             Some(status) => Verdict::unhealthy(format!("status {status}")),
//!             None => Verdict::unhealthy(outcome.error.clone().unwrap_or_default()),
//!         }
//!     }
//! }
//!
//! bascule_guest_sdk::export_health_interpreter!(WarmingUp);
//! ```

use crate::{Error, Options};

/// A health interpreter. One value lives per plugin instance and judges
/// many probes, one at a time.
pub trait HealthInterpreter: Sized {
    /// Builds the interpreter from the pool's `interpreter-options`, for a
    /// pool probed as `kind`. An error fails the config load.
    fn configure(options: &Options, kind: ProbeKind) -> Result<Self, Error>;

    /// What the host must send, read and pass, asked once after
    /// [`HealthInterpreter::configure`]. The default reads nothing past the
    /// status line (HTTP) or the connect (TCP).
    fn needs(&self) -> ProbeNeeds {
        ProbeNeeds::default()
    }

    /// Judges one probe.
    fn interpret(&mut self, outcome: &ProbeOutcome) -> Verdict;
}

/// How the host probes the pool's backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// An HTTP/1.1 request on a connection of its own.
    Http,
    /// A TCP connect, optionally with bytes sent and an answer read.
    Tcp,
    /// A UDP datagram sent (the declared payload) and one answer read.
    Udp,
}

/// What an interpreter declares once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeNeeds {
    /// HTTP response headers passed to [`HealthInterpreter::interpret`].
    pub headers: Vec<String>,
    /// Read the body (HTTP) or answer (TCP), up to the pool's `body-limit`.
    pub body: bool,
    /// TCP: bytes written once connected.
    pub send: Option<Vec<u8>>,
    /// TCP: the answer is complete once these bytes arrived.
    pub until: Option<Vec<u8>>,
}

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// HTTP or TCP.
    pub kind: ProbeKind,
    /// The HTTP status, when a response head arrived.
    pub status: Option<u16>,
    /// The declared response headers, names lowercase, in message order.
    pub headers: Vec<(String, String)>,
    /// The first bytes of the body or answer (when declared).
    pub body: Vec<u8>,
    /// Connect to last byte read, in microseconds.
    pub latency_us: u64,
    /// The transport error, when the probe did not complete.
    pub error: Option<String>,
}

/// The judgement of one probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Fit for its full weight.
    Healthy {
        /// Why, for logs and the status page.
        reason: String,
    },
    /// Serving at `weight × weight_factor`, `weight_factor` in (0, 1].
    Degraded {
        /// The fraction of its weight the backend keeps.
        weight_factor: f32,
        /// Why.
        reason: String,
    },
    /// Not fit for traffic.
    Unhealthy {
        /// Why.
        reason: String,
    },
}

// === impl ProbeNeeds ===

impl ProbeNeeds {
    /// Also pass response header `name`.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>) -> Self {
        self.headers.push(name.into().to_ascii_lowercase());
        self
    }

    /// Also read the body or answer.
    #[must_use]
    pub fn body(mut self) -> Self {
        self.body = true;
        self
    }
}

// === impl ProbeOutcome ===

impl ProbeOutcome {
    /// An HTTP probe that got `status`, for tests.
    pub fn http(status: u16) -> Self {
        ProbeOutcome {
            kind: ProbeKind::Http,
            status: Some(status),
            headers: Vec::new(),
            body: Vec::new(),
            latency_us: 1000,
            error: None,
        }
    }

    /// A UDP probe that got `answer` back, for native tests.
    pub fn udp(answer: impl Into<Vec<u8>>) -> Self {
        ProbeOutcome {
            kind: ProbeKind::Udp,
            ..ProbeOutcome::tcp(answer)
        }
    }

    /// A TCP probe that connected and read `answer`, for tests.
    pub fn tcp(answer: impl Into<Vec<u8>>) -> Self {
        ProbeOutcome {
            kind: ProbeKind::Tcp,
            status: None,
            headers: Vec::new(),
            body: answer.into(),
            latency_us: 1000,
            error: None,
        }
    }

    /// A probe of `kind` that failed at the transport, for tests.
    pub fn failed(kind: ProbeKind, error: impl Into<String>) -> Self {
        ProbeOutcome {
            kind,
            status: None,
            headers: Vec::new(),
            body: Vec::new(),
            latency_us: 1000,
            error: Some(error.into()),
        }
    }

    /// The same outcome with a response header added, for tests.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The same outcome with `body` as the body read, for tests.
    #[must_use]
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of response header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text, when it is UTF-8.
    pub fn body_text(&self) -> Option<&str> {
        std::str::from_utf8(&self.body).ok()
    }
}

// === impl Verdict ===

impl Verdict {
    /// Healthy, because of `reason`.
    pub fn healthy(reason: impl Into<String>) -> Self {
        Verdict::Healthy {
            reason: reason.into(),
        }
    }

    /// Degraded to `weight_factor` of its weight, because of `reason`.
    pub fn degraded(weight_factor: f32, reason: impl Into<String>) -> Self {
        Verdict::Degraded {
            weight_factor,
            reason: reason.into(),
        }
    }

    /// Unhealthy, because of `reason`.
    pub fn unhealthy(reason: impl Into<String>) -> Self {
        Verdict::Unhealthy {
            reason: reason.into(),
        }
    }

    /// The verdict of an interpreter that expects something in the answer
    /// (`tcp-expect`, `udp-expect`): healthy when `matched`, else
    /// unhealthy for the probe's error or, without one, for the answer
    /// (its first 64 characters are quoted either way).
    pub fn of_expected_answer(outcome: &ProbeOutcome, matched: bool) -> Self {
        let shown: String = String::from_utf8_lossy(&outcome.body)
            .trim_end()
            .chars()
            .take(64)
            .collect();
        match (&outcome.error, matched) {
            (_, true) => Verdict::healthy(format!("answered `{shown}`")),
            (Some(error), false) => Verdict::unhealthy(error.clone()),
            (None, false) => Verdict::unhealthy(format!("unexpected answer `{shown}`")),
        }
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Healthy { reason }
            | Verdict::Degraded { reason, .. }
            | Verdict::Unhealthy { reason } => reason,
        }
    }
}
