//! Header filters: plugins that rewrite request headers before a backend is
//! chosen, rewrite response headers before they reach the client, or answer
//! a request themselves.
//!
//! Implement [`HeaderFilter`] and export it with
//! [`export_header_filter!`](crate::export_header_filter):
//!
//! ```no_run
//! use bascule_guest_sdk::{Error, HeaderFilter, Headers, LocalResponse, Options, Request, Verdict};
//!
//! /// Refuses requests without an API key; tags every response.
//! struct RequireKey;
//!
//! impl HeaderFilter for RequireKey {
//!     fn configure(options: &Options) -> Result<Self, Error> {
//!         options.expect_none()?;
//!         Ok(RequireKey)
//!     }
//!
//!     fn on_request(&mut self, _request: &Request, headers: &mut Headers) -> Result<Verdict, Error> {
//!         if headers.get("x-api-key").is_none() {
//!             return Ok(Verdict::Respond(LocalResponse::new(401, "api key required")));
//!         }
//!         headers.remove("x-api-key")?;
//!         Ok(Verdict::Forward)
//!     }
//!
//!     fn on_response(&mut self, _status: u16, _request: &Request, headers: &mut Headers) -> Result<(), Error> {
//!         headers.set("x-served-by", "bascule")
//!     }
//! }
//!
//! bascule_guest_sdk::export_header_filter!(RequireKey);
//! ```

#[cfg(target_arch = "wasm32")]
use crate::filter_bindings::bascule::plugin::headers as host;
use crate::{Error, Options, Request};

/// A header filter. One value lives per plugin instance and sees many
/// requests, one at a time.
pub trait HeaderFilter: Sized {
    /// Builds the filter from its `options` (the route's `[filters.NAME]`
    /// options table). An error fails the config load.
    fn configure(options: &Options) -> Result<Self, Error>;

    /// Called for each request before a backend is chosen, with its headers
    /// (`X-Forwarded-*` already set). The default forwards it untouched.
    fn on_request(&mut self, request: &Request, headers: &mut Headers) -> Result<Verdict, Error> {
        let _ = (request, headers);
        Ok(Verdict::Forward)
    }

    /// Called for each backend response with its status and headers. The
    /// default changes nothing.
    fn on_response(
        &mut self,
        status: u16,
        request: &Request,
        headers: &mut Headers,
    ) -> Result<(), Error> {
        let _ = (status, request, headers);
        Ok(())
    }
}

/// What to do with a request after [`HeaderFilter::on_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it, with this filter's header changes.
    Forward,
    /// Answer the client with this; no backend sees the request.
    Respond(LocalResponse),
}

/// An answer the proxy sends on a filter's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    /// HTTP status, 200-599.
    pub status: u16,
    /// Extra headers; `content-type` defaults to `text/plain`.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

/// The headers of the message being filtered: the request in
/// [`HeaderFilter::on_request`], the response in
/// [`HeaderFilter::on_response`]. Names are case-insensitive.
///
/// Inside a plugin every method is one call into the host, which refuses
/// changes to headers that frame the message (`content-length`,
/// `transfer-encoding`, `connection`, ...). Compiled natively it is a plain
/// list built with [`Headers::fixture`], for unit tests.
#[derive(Debug)]
pub struct Headers {
    #[cfg(not(target_arch = "wasm32"))]
    fixture: Vec<(String, String)>,
    #[cfg(target_arch = "wasm32")]
    _handle: (),
}

// === impl LocalResponse ===

impl LocalResponse {
    /// A `status` answer with a text body.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        LocalResponse {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// The same answer with one more header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

// === impl Headers ===

impl Headers {
    /// The handle for the message of the current call.
    #[doc(hidden)]
    #[cfg(target_arch = "wasm32")]
    pub fn current() -> Self {
        Headers { _handle: () }
    }

    /// Headers that answer from (and edit) `pairs` (native builds only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fixture<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Headers {
            fixture: pairs
                .into_iter()
                .map(|(name, value)| (name.into().to_ascii_lowercase(), value.into()))
                .collect(),
        }
    }

    /// Every (name, value) pair, names lowercase (native builds only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn pairs(&self) -> &[(String, String)] {
        &self.fixture
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        #[cfg(target_arch = "wasm32")]
        return host::get(name);
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        #[cfg(target_arch = "wasm32")]
        return host::get_all(name);
        #[cfg(not(target_arch = "wasm32"))]
        self.fixture
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// The names present, lowercase, each once.
    pub fn names(&self) -> Vec<String> {
        #[cfg(target_arch = "wasm32")]
        return host::names();
        #[cfg(not(target_arch = "wasm32"))]
        {
            let mut names: Vec<String> = Vec::new();
            for (name, _) in &self.fixture {
                if !names.contains(name) {
                    names.push(name.clone());
                }
            }
            names
        }
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        return host::set(name, value).map_err(|e| Error::new(e.message));
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.remove(name)?;
            self.append(name, value)
        }
    }

    /// Adds `value` after the values `name` already has.
    pub fn append(&mut self, name: &str, value: &str) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        return host::append(name, value).map_err(|e| Error::new(e.message));
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.fixture
                .push((name.to_ascii_lowercase(), value.to_owned()));
            Ok(())
        }
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) -> Result<(), Error> {
        #[cfg(target_arch = "wasm32")]
        return host::remove(name).map_err(|e| Error::new(e.message));
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.fixture.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            Ok(())
        }
    }
}
