//! The interpreter's side of a probe: what it declared it needs, the
//! outcome it is handed, the verdict it answers, and the trait the plugin
//! module implements with a sandboxed component.

use std::time::Duration;

use http::HeaderName;

/// How a pool's backends are probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// An HTTP/1.1 request on a connection of its own.
    Http,
    /// A TCP connect, with the declared bytes sent and answer read.
    Tcp,
    /// The declared datagram sent over UDP, and one answer read.
    Udp,
}

/// What the interpreter declared at configure time, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProbeNeeds {
    /// Response headers passed to `interpret`.
    pub headers: Vec<HeaderName>,
    /// Read the body or answer, up to the pool's `body-limit`.
    pub body: bool,
    /// TCP: written once connected.
    pub send: Option<Vec<u8>>,
    /// TCP: the answer is complete once these bytes arrived.
    pub until: Option<Vec<u8>>,
}

/// The result of one probe, as the interpreter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// HTTP or TCP.
    pub kind: ProbeKind,
    /// The HTTP status, when a response head arrived.
    pub status: Option<u16>,
    /// The declared response headers (names lowercase, message order).
    pub headers: Vec<(String, String)>,
    /// The first bytes of the body or answer, when declared.
    pub body: Vec<u8>,
    /// Connect to last byte read.
    pub latency: Duration,
    /// The transport error, when the probe did not complete.
    pub error: Option<String>,
}

/// The judgement of one probe.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Fit for its full weight.
    Healthy(String),
    /// Serving at a fraction of its weight.
    Degraded {
        /// The fraction kept, in thousandths (1 to 1000).
        permille: u32,
        /// Why.
        reason: String,
    },
    /// Not fit for traffic.
    Unhealthy(String),
}

/// Judges probe outcomes for one pool. Implementations are shared by the
/// pool's probers; `interpret` runs in a prober's task, off the request
/// path.
pub trait Interpreter: Send + Sync {
    /// The plugin's name, for logs and the status page.
    fn name(&self) -> &str;

    /// What the prober must send, read and pass.
    fn needs(&self) -> &ProbeNeeds;

    /// Its plugin's digest and failures, for `/status`.
    fn report(&self) -> Option<crate::upstream::PluginReport> {
        None
    }

    /// One verdict. An error (trap, timeout, invalid verdict) counts as a
    /// failed probe; the implementation has counted it as a plugin failure.
    fn interpret(&self, outcome: &ProbeOutcome) -> Result<Verdict, InterpretError>;
}

/// An interpreter failed to judge a probe.
#[derive(Debug, thiserror::Error)]
#[error("health interpreter failed")]
pub struct InterpretError {
    #[source]
    cause: Box<dyn std::error::Error + Send + Sync>,
}

// === impl Verdict ===

impl Verdict {
    /// Whether the verdict counts toward `healthy-threshold`.
    pub fn is_good(&self) -> bool {
        !matches!(self, Verdict::Unhealthy(_))
    }

    /// The reason given.
    pub fn reason(&self) -> &str {
        match self {
            Verdict::Healthy(reason)
            | Verdict::Degraded { reason, .. }
            | Verdict::Unhealthy(reason) => reason,
        }
    }

    /// The label in metrics and on the status page.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Healthy(_) => "healthy",
            Verdict::Degraded { .. } => "degraded",
            Verdict::Unhealthy(_) => "unhealthy",
        }
    }
}

// === impl InterpretError ===

impl InterpretError {
    /// Wraps the cause.
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        InterpretError {
            cause: Box::new(cause),
        }
    }
}
