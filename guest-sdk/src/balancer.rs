//! The [`Balancer`] trait and the plain types it speaks in.

use serde::de::DeserializeOwned;

use crate::{Protocol, Request, RequestNeeds};

/// Candidate backend indices, best first. The host tries at most
/// [`MAX_CANDIDATES`] of them; later ones are not sent.
pub type Candidates = Vec<u32>;

/// How many candidates one `select` answer carries (the contract's flat
/// `candidates` record).
pub const MAX_CANDIDATES: usize = 4;

/// How many candidates [`with_successors`] ranks: the choice and two
/// fallbacks, enough to ride over a dead backend without making a call cost
/// O(backends).
pub const FALLBACKS: u32 = 2;

/// `first` followed by the next [`FALLBACKS`] indices in list order,
/// wrapping, never more than `len`: the candidate list of algorithms whose
/// fallback order does not matter.
pub fn with_successors(first: u32, len: u32) -> Candidates {
    if len == 0 {
        return Vec::new();
    }
    (0..(FALLBACKS + 1).min(len))
        .map(|offset| (first % len + offset) % len)
        .collect()
}

/// A load-balancing algorithm that lives inside a plugin instance.
///
/// The type holds the algorithm's state (counters, rings, tables). The host
/// keeps instances alive across requests, so state persists between calls.
pub trait Balancer: Sized + 'static {
    /// Builds the balancer from the pool's options. Returning an error
    /// rejects the config that named this plugin.
    fn configure(options: &Options) -> Result<Self, Error>;

    /// What [`Balancer::select`] reads of each request, asked once after
    /// [`Balancer::configure`]: the host passes exactly these values with
    /// every call. The default declares nothing (the client address is
    /// always passed); reading an undeclared value still works, through a
    /// host call per read.
    fn needs(&self) -> RequestNeeds {
        RequestNeeds::nothing()
    }

    /// Replaces the backend list; `generation` grows with every change.
    fn set_backends(&mut self, generation: u64, backends: Vec<Backend>);

    /// Returns candidate indices into the last backend list, best first.
    fn select(&mut self, request: &Request) -> Result<Candidates, Error>;
}

/// One backend of the pool, as configured by the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Stable identifier within the pool: hash on this, not on the index.
    pub id: String,
    /// `host:port` the host connects to.
    pub address: String,
    /// Relative weight as configured, at least 1.
    pub weight: u32,
    /// Slow-start progress in thousandths (1..=1000); 1000 unless the
    /// backend recently joined or recovered. See [`Backend::effective_weight`].
    pub ramp_permille: u32,
    /// Capacity left by health checks in thousandths (1..=1000); below 1000
    /// while the pool's health interpreter calls the backend degraded. See
    /// [`Backend::effective_weight`].
    pub health_permille: u32,
    /// Opaque token naming the backend to clients, for affinity cookies.
    pub token: String,
    /// Operator-supplied labels, sorted by key.
    pub metadata: Vec<(String, String)>,
}

/// The cookie a balancer asks the host to set so that the client comes back
/// to the backend that served it. See [`Request::pin_with_cookie`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AffinityCookie {
    /// Cookie name (letters, digits, `-`, `_`).
    pub name: String,
    /// `Max-Age` in seconds; `None` for a session cookie.
    pub max_age_seconds: Option<u32>,
    /// `Path`, starting with `/`.
    pub path: String,
    /// `Secure` attribute.
    pub secure: bool,
    /// `HttpOnly` attribute.
    pub http_only: bool,
    /// `SameSite` attribute; `None` leaves it out (browsers then treat the
    /// cookie as `Lax`). [`SameSite::None`] requires `secure`.
    pub same_site: Option<SameSite>,
}

/// The `SameSite` attribute of an [`AffinityCookie`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent only on requests from the same site.
    Strict,
    /// Also on top-level navigations from other sites.
    Lax,
    /// Sent on cross-site requests too; only with `secure`, or the host
    /// refuses the cookie.
    None,
}

/// An error reported to the host; it is logged with the plugin's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

/// The pool's balancer options, a JSON object, and what the pool serves.
#[derive(Debug, Clone)]
pub struct Options {
    raw: String,
    protocols: Vec<Protocol>,
}

// === impl Backend ===

impl Backend {
    /// A backend with weight 1, fully ramped, with `id` as its address and
    /// token: for tests and examples.
    pub fn named(id: impl Into<String>) -> Self {
        let id = id.into();
        Backend {
            address: id.clone(),
            token: id.clone(),
            id,
            weight: 1,
            ramp_permille: 1000,
            health_permille: 1000,
            metadata: Vec::new(),
        }
    }

    /// `count` backends named `backend-0`, `backend-1`, ... (see
    /// [`Backend::named`]): for tests and examples.
    pub fn numbered(count: usize) -> Vec<Backend> {
        (0..count)
            .map(|i| Backend::named(format!("backend-{i}")))
            .collect()
    }

    /// The weight to balance by: the configured weight scaled by slow-start
    /// progress and by health capacity, in thousandths of a configured unit
    /// (never 0).
    pub fn effective_weight(&self) -> u64 {
        let ramp = u64::from(self.ramp_permille.clamp(1, 1000));
        let health = u64::from(self.health_permille.clamp(1, 1000));
        (u64::from(self.weight) * ramp * health / 1000).max(1)
    }
}

// === impl Error ===

impl Error {
    /// An error with the given message (lowercase, naming the object).
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

// === impl Options ===

impl Options {
    /// Wraps the JSON text the host passed to `configure`, for a pool
    /// served over HTTP only.
    pub fn from_json(raw: impl Into<String>) -> Self {
        Options::for_protocols(raw, vec![Protocol::Http])
    }

    /// Wraps the JSON text and the protocols of the listeners that send to
    /// the pool.
    pub fn for_protocols(raw: impl Into<String>, protocols: Vec<Protocol>) -> Self {
        Options {
            raw: raw.into(),
            protocols,
        }
    }

    /// Whether a TCP listener sends to this pool: then only the client
    /// address and SNI exist, no HTTP fields.
    pub fn serves_tcp(&self) -> bool {
        self.protocols.contains(&Protocol::Tcp)
    }

    /// Whether a TCP or UDP listener sends to this pool: then requests
    /// have no HTTP fields.
    pub fn serves_l4(&self) -> bool {
        self.protocols
            .iter()
            .any(|protocol| matches!(protocol, Protocol::Tcp | Protocol::Udp))
    }

    /// The raw JSON text.
    pub fn as_json(&self) -> &str {
        &self.raw
    }

    /// Deserializes the options into `T`. Use `#[serde(deny_unknown_fields)]`
    /// on `T` so that an operator's typo is reported, not ignored.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(&self.raw).map_err(|e| Error::new(format!("invalid options: {e}")))
    }

    /// Fails unless no options were given: for algorithms without options.
    pub fn expect_none(&self) -> Result<(), Error> {
        let value: serde_json::Value = serde_json::from_str(&self.raw)
            .map_err(|e| Error::new(format!("invalid options: {e}")))?;
        match value.as_object() {
            Some(map) if map.is_empty() => Ok(()),
            Some(map) => {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                Err(Error::new(format!(
                    "this balancer takes no options, got: {}",
                    keys.join(", ")
                )))
            }
            None => Err(Error::new("options must be a table")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Ring {
        vnodes: u32,
    }

    #[test]
    fn effective_weight_scales_by_ramp_and_health() {
        let mut backend = Backend::named("a");
        backend.weight = 4;
        assert_eq!(backend.effective_weight(), 4000);
        backend.health_permille = 200;
        assert_eq!(backend.effective_weight(), 800, "degraded to a fifth");
        backend.ramp_permille = 500;
        assert_eq!(
            backend.effective_weight(),
            400,
            "and half way up its slow start"
        );
        backend.health_permille = 0;
        backend.ramp_permille = 0;
        assert_eq!(backend.effective_weight(), 1, "never 0");
    }

    #[test]
    fn options_parse_typed() {
        let options = Options::from_json(r#"{"vnodes": 160}"#);
        assert_eq!(options.parse::<Ring>().unwrap(), Ring { vnodes: 160 });
    }

    #[test]
    fn options_typo_is_an_error() {
        let err = Options::from_json(r#"{"vnode": 160}"#)
            .parse::<Ring>()
            .unwrap_err();
        assert!(err.message().contains("unknown field `vnode`"), "{err}");
    }

    #[test]
    fn expect_none_names_unexpected_keys() {
        assert!(Options::from_json("{}").expect_none().is_ok());
        let err = Options::from_json(r#"{"seed": 1}"#)
            .expect_none()
            .unwrap_err();
        assert!(err.message().contains("seed"), "{err}");
    }
}
