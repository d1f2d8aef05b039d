//! The header-filter step: what a filter is to the request path.
//!
//! A [`HeaderFilter`] sees the request after routing and before a backend
//! is chosen (it may edit headers, rewrite the path or answer locally), and
//! the response before it reaches the client. For the response it keeps
//! only what it declared ([`KeptRequest`]), never the request head. The
//! sandboxed implementation lives in `plugin/`; the request path knows only
//! this trait.

use http::{HeaderMap, StatusCode};

use crate::upstream::{RequestFacts, RequestView};

/// Rewrites requests and responses of the routes that list it.
pub trait HeaderFilter: Send + Sync {
    /// The filter's name in the config (`[filters.NAME]`).
    fn name(&self) -> &str;

    /// What implements it (`builtin:headers`, a path), for status pages.
    fn plugin(&self) -> &str;

    /// Its plugin's digest and failures, for `/status`.
    fn report(&self) -> Option<crate::upstream::PluginReport> {
        None
    }

    /// Runs on a request; may edit `request.http`'s headers (never the
    /// proxy-owned ones) and path. On error the caller answers with an
    /// error and forwards nothing.
    fn on_request(&self, request: &mut RequestView) -> Result<FilterVerdict, FilterError>;

    /// What the response phase needs of `request` as it is sent; `None`
    /// when the filter does nothing to responses (then
    /// [`HeaderFilter::on_response`] is not called).
    fn keep_for_response(&self, request: &RequestView) -> Option<KeptRequest>;

    /// Runs on a backend's response head with what
    /// [`HeaderFilter::keep_for_response`] kept.
    fn on_response(
        &self,
        request: KeptRequest,
        status: StatusCode,
        headers: &mut HeaderMap,
    ) -> Result<(), FilterError>;
}

/// What a filter's response phase keeps of the request: the values it
/// declared, taken when the request was sent.
#[derive(Debug)]
pub struct KeptRequest {
    /// The values the filter's response call declared.
    pub call: RequestFacts,
    /// The values its static response edits render.
    pub templates: RequestFacts,
}

/// What a filter decided about a request.
#[derive(Debug)]
pub enum FilterVerdict {
    /// Forward it, with the filter's header changes.
    Forward,
    /// Answer the client with this instead.
    Respond(LocalResponse),
}

/// An answer a filter asked the proxy to send, already validated.
#[derive(Debug)]
pub struct LocalResponse {
    /// The status.
    pub status: StatusCode,
    /// Headers to send besides the proxy's own.
    pub headers: HeaderMap,
    /// The body.
    pub body: String,
}

/// A filter failed; the request is answered with 500.
#[derive(Debug, thiserror::Error)]
#[error("header filter failed")]
pub struct FilterError {
    #[source]
    cause: Box<dyn std::error::Error + Send + Sync>,
}

// === impl FilterError ===

impl FilterError {
    /// Wraps the cause.
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        FilterError {
            cause: Box::new(cause),
        }
    }
}
