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
