//! What an HTTP route matches beyond host and path prefix, where it sends
//! what it matched (one pool, a weighted split, a redirect, a local
//! answer) and how it rewrites the path first.

/// Conditions a request must meet, besides host and path prefix; every
/// one given must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteConditions {
    /// The whole path, exactly.
    pub path: Option<String>,
    /// A regular expression the whole path must match.
    pub path_regex: Option<Pattern>,
    /// Methods accepted (uppercase); empty accepts any.
    pub methods: Vec<String>,
    /// Header tests, names lowercase.
    pub headers: Vec<FieldCondition>,
    /// Query parameter tests, names as written.
    pub query: Vec<FieldCondition>,
}

/// One header or query parameter test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldCondition {
    /// The header (lowercase) or parameter name.
    pub name: String,
    /// What its value must be.
    pub test: ValueTest,
}

/// What a header or parameter value must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueTest {
    /// Present, any value.
    Present,
    /// Absent.
    Absent,
    /// This exact value (headers: any of the field's values).
    Exact(String),
    /// A value the regular expression matches.
    Regex(Pattern),
}

/// A regular expression as routes use it: compiled when the config loads,
/// anchored at both ends (the whole path or value, never a part of it).
#[derive(Debug, Clone)]
pub struct Pattern(regex::Regex);

/// A pool a route sends to, and its share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightedPool {
    /// The pool, known to exist.
    pub pool: String,
    /// Relative weight (0 takes nothing: a side switched off).
    pub weight: u32,
}

/// What keeps a client on one side of a weighted split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitKey {
    /// The client's address.
    ClientIp,
    /// A request header's value (lowercase name).
    Header(String),
    /// A cookie's value.
    Cookie(String),
}

/// How the path is rewritten before the request is forwarded (the query
/// string is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRewrite {
    /// Remove the route's `path-prefix` (`/api/users` → `/users`).
    StripPrefix,
    /// Replace the path; with `path-regex`, `$1`, `${name}` name its groups.
    Replace(String),
}

/// An answer the proxy gives itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalAnswer {
    /// A redirect to `location`, a template of `{scheme}`, `{host}`,
    /// `{path}`, `{query}` (with its `?`, or empty) and `{uri}` (path and
    /// query).
    Redirect {
        /// 301, 302, 303, 307 or 308.
        status: u16,
        /// The `Location` template.
        location: String,
    },
    /// A fixed response (maintenance page, health endpoint).
    Respond {
        /// Any status 200-599.
        status: u16,
        /// The body.
        body: String,
        /// Its `Content-Type`.
        content_type: String,
    },
}

// === impl Pattern ===

impl Pattern {
    /// Compiles `pattern`, anchored.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        regex::Regex::new(&format!("^(?:{pattern})$")).map(Pattern)
    }

    /// The compiled expression.
    pub fn regex(&self) -> &regex::Regex {
        &self.0
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

/// A route's `retry`: what failures are tried again on the balancer's
/// next candidate, how often, and within what budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// The failures retried.
    pub on: RetryOn,
    /// Attempts per request, the first included; `None`: the pool's
    /// `max-attempts`.
    pub max_attempts: Option<u32>,
    /// The wait for one attempt's response head; `None`: the pool's
    /// `response-timeout`.
    pub per_try_timeout: Option<std::time::Duration>,
    /// Retries allowed per thousand requests of the last ten seconds.
    pub budget_permille: u32,
    /// Retries allowed per second whatever the traffic.
    pub budget_min_per_second: u32,
    /// Most request body bytes kept to send again; a longer body is not
    /// retried once sent.
    pub buffer: usize,
}

/// The failures a route retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOn {
    /// No connection (refused, unreachable, timed out), or one that failed
    /// before the request was written: retried whatever the method.
    pub connect_failure: bool,
    /// The connection reset after the request was sent, before a response
    /// (idempotent methods only).
    pub reset: bool,
    /// No response head within the per-try timeout (idempotent methods).
    pub timeout: bool,
    /// Response statuses retried (idempotent methods).
    pub statuses: Vec<u16>,
}

/// Retries per thousand requests a budget allows by default: Linkerd's
/// and Finagle's 20%.
pub const DEFAULT_RETRY_BUDGET_PERMILLE: u32 = 200;
/// Retries per second a budget allows whatever the traffic (Linkerd: 10).
pub const DEFAULT_RETRY_MIN_PER_SECOND: u32 = 10;
/// Request body bytes kept for a retry by default.
pub const DEFAULT_RETRY_BUFFER: usize = 64 * 1024;

// === impl RetryConfig ===

impl Default for RetryConfig {
    /// What a route without `retry` does: connect failures go to the next
    /// candidate, within the budget; nothing sent is tried again.
    fn default() -> Self {
        RetryConfig {
            on: RetryOn {
                connect_failure: true,
                reset: false,
                timeout: false,
                statuses: Vec::new(),
            },
            max_attempts: None,
            per_try_timeout: None,
            budget_permille: DEFAULT_RETRY_BUDGET_PERMILLE,
            budget_min_per_second: DEFAULT_RETRY_MIN_PER_SECOND,
            buffer: DEFAULT_RETRY_BUFFER,
        }
    }
}

/// `[limits.NAME]`: a token bucket per key, shared by the routes that name
/// it and by every worker thread.
#[derive(Debug, Clone, PartialEq)]
pub struct LimitConfig {
    /// Unique name.
    pub name: String,
    /// Tokens added per second (requests allowed per second, sustained).
    pub rate: f64,
    /// The bucket's size: requests allowed at once after a quiet spell.
    pub burst: u32,
    /// What a bucket belongs to.
    pub key: LimitKey,
    /// Most buckets kept; past it idle (full) buckets and then the least
    /// recently used go.
    pub max_keys: usize,
}

/// What a rate limit counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's address.
    ClientIp,
    /// A request header's value (lowercase name); requests without it
    /// share one bucket.
    Header(String),
    /// Nothing: one bucket for every request of the routes.
    Route,
}
