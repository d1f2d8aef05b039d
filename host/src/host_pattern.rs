//! Host and TLS server-name patterns, shared by HTTP host routes and TCP
//! SNI routes.

/// A host to match: exact (`api.example.com`) or a wildcard for subdomains
/// (`*.example.com` matches `a.example.com`, not `example.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostPattern {
    /// Lowercase exact name.
    Exact(String),
    /// Lowercase suffix including the leading dot (`.example.com`).
    Wildcard(String),
}

// === impl HostPattern ===

impl HostPattern {
    /// Whether a route's optional pattern accepts a request's optional
    /// name: no pattern accepts anything, a pattern needs a name it matches.
    pub fn accepts(pattern: Option<&HostPattern>, name: Option<&str>) -> bool {
        match (pattern, name) {
            (None, _) => true,
            (Some(pattern), Some(name)) => pattern.matches(name),
            (Some(_), None) => false,
        }
    }

    /// Whether `host` (lowercase, without port) matches.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(name) => host == name,
            HostPattern::Wildcard(suffix) => host.len() > suffix.len() && host.ends_with(suffix),
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(name) => f.write_str(name),
            HostPattern::Wildcard(suffix) => write!(f, "*{suffix}"),
        }
    }
}
