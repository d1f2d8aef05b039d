//! Header filters: plugins that rewrite request headers before a backend is
//! chosen, rewrite response headers before they reach the client, or answer
//! a request themselves.
//!
//! Implement [`HeaderFilter`] and export it with
//! [`export_header_filter!`](crate::export_header_filter). Declare in
//! [`HeaderFilter::declare`] what the filter needs: the host never calls a
//! phase nothing was declared for, applies literal and templated edits
//! ([`FilterNeeds::request_edits`]) itself with no call at all, and passes a
//! call only the values declared for it. [`Headers`] is a local edit buffer
//! over the declared headers: what a call changes goes back to the host as
//! data when it returns, and is applied all or nothing.
//!
//! ```no_run
//! use bascule_guest_sdk::{
//!     Edit, Error, FilterNeeds, HeaderFilter, Headers, LocalResponse, Options, Request,
//!     RequestNeeds, Verdict,
//! };
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
//!     fn declare(&self) -> FilterNeeds {
//!         FilterNeeds {
//!             // Called for requests, with the one header it reads.
//!             on_request: Some(RequestNeeds::nothing().header("x-api-key")),
//!             // Never called for responses: the host adds the header.
//!             on_response: None,
//!             response_edits: vec![Edit::set("x-served-by", "bascule")],
//!             ..FilterNeeds::default()
//!         }
//!     }
//!
//!     fn on_request(&mut self, _request: &Request, headers: &mut Headers) -> Result<Verdict, Error> {
//!         if headers.get("x-api-key").is_none() {
//!             return Ok(Verdict::Respond(LocalResponse::new(401, "api key required")));
//!         }
//!         headers.remove("x-api-key")?;
//!         Ok(Verdict::Forward)
//!     }
//! }
//!
//! bascule_guest_sdk::export_header_filter!(RequireKey);
//! ```

#[cfg(target_arch = "wasm32")]
use crate::filter_bindings::bascule::plugin::headers as host;
use crate::{Error, Options, Request, RequestNeeds};

/// A header filter. One value lives per plugin instance and sees many
/// requests, one at a time.
pub trait HeaderFilter: Sized {
    /// Builds the filter from its `options` (the route's `[filters.NAME]`
    /// options table). An error fails the config load.
    fn configure(options: &Options) -> Result<Self, Error>;

    /// What the filter needs from the host, asked once after
    /// [`HeaderFilter::configure`]. The default calls both phases with
    /// nothing declared, so every read is a host call: declare what you
    /// read, and `None` for a phase you do not implement.
    fn declare(&self) -> FilterNeeds {
        FilterNeeds {
            on_request: Some(RequestNeeds::nothing()),
            on_response: Some(ResponseNeeds::default()),
            ..FilterNeeds::default()
        }
    }

    /// Called for each request before a backend is chosen, with its
    /// declared headers (`X-Forwarded-*` already set, the static request
    /// edits applied). The default forwards it untouched.
    fn on_request(&mut self, request: &Request, headers: &mut Headers) -> Result<Verdict, Error> {
        let _ = (request, headers);
        Ok(Verdict::Forward)
    }

    /// Called for each backend response with its status, the request values
    /// declared for this phase, and the declared response headers. The
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

/// What a filter declares: which phases the host calls, with which values,
/// and which edits the host applies itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterNeeds {
    /// Call [`HeaderFilter::on_request`], passing these request values and
    /// headers; `None`: never called for requests.
    pub on_request: Option<RequestNeeds>,
    /// Call [`HeaderFilter::on_response`]; `None`: never called for
    /// responses.
    pub on_response: Option<ResponseNeeds>,
    /// Edits the host applies to every request itself, with no call. Values
    /// are templates: `{client-ip}`, `{client-port}`, `{method}`, `{host}`,
    /// `{path}`, `{query}`, `{listener}`, `{sni}` are replaced by the
    /// request's values; `{{` and `}}` are literal braces.
    pub request_edits: Vec<Edit>,
    /// Edits the host applies to every backend response itself; templates
    /// may also use `{status}`.
    pub response_edits: Vec<Edit>,
}

/// What [`HeaderFilter::on_response`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseNeeds {
    /// Request values to keep for the response phase: the host keeps these
    /// and no request head.
    pub request: RequestNeeds,
    /// Response header names to pass, every value of each.
    pub headers: Vec<String>,
}

/// One change to a message's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// What to do.
    pub action: EditAction,
    /// The header name, lowercase.
    pub name: String,
    /// The value (ignored for [`EditAction::Remove`]).
    pub value: String,
}

/// What an [`Edit`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditAction {
    /// Replace every value.
    Set,
    /// Add a value after the existing ones.
    Append,
    /// Remove every value.
    Remove,
}

/// What to do with a request after [`HeaderFilter::on_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it, with this filter's header changes.
    Forward,
    /// Forward it with this path instead (starting with `/`; the query is
    /// kept), and this filter's header changes.
    Rewrite {
        /// The new path.
        path: String,
    },
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

/// The headers of the message being filtered, as a local edit buffer: the
/// request in [`HeaderFilter::on_request`], the response in
/// [`HeaderFilter::on_response`]. Names are case-insensitive.
///
/// Reads of declared headers answer from the values the host passed;
/// reading an undeclared header asks the host (one call, the escape hatch).
/// Changes are recorded and sent back when the call returns; a change to a
/// header that frames the message (`content-length`, `transfer-encoding`,
/// `connection`, ...) fails at once, as the host would refuse it. Compiled
/// natively, [`Headers::fixture`] builds one that holds every header, for
/// unit tests.
#[derive(Debug)]
pub struct Headers {
    /// Every value of the headers this buffer knows, names lowercase.
    pairs: Vec<(String, String)>,
    /// The names `pairs` is complete for; `None`: complete for all.
    known: Option<Vec<String>>,
    edits: Vec<Edit>,
}

/// Headers that belong to the proxy: edits to them are refused.
const PROXY_OWNED: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

// === impl Edit ===

impl Edit {
    /// Replace every value of `name` with `value`.
    pub fn set(name: &str, value: impl Into<String>) -> Self {
        Edit::new(EditAction::Set, name, value.into())
    }

    /// Add `value` after the values of `name`.
    pub fn append(name: &str, value: impl Into<String>) -> Self {
        Edit::new(EditAction::Append, name, value.into())
    }

    /// Remove every value of `name`.
    pub fn remove(name: &str) -> Self {
        Edit::new(EditAction::Remove, name, String::new())
    }

    fn new(action: EditAction, name: &str, value: String) -> Self {
        Edit {
            action,
            name: name.to_ascii_lowercase(),
            value,
        }
    }
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
    /// A buffer over the declared headers `names`, holding `pairs`.
    #[doc(hidden)]
    pub fn declared(names: &[String], pairs: Vec<(String, String)>) -> Self {
        Headers {
            pairs,
            known: Some(names.to_vec()),
            edits: Vec::new(),
        }
    }

    /// Headers that answer from (and edit) `pairs`, complete (native
    /// builds only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn fixture<N: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        Headers {
            pairs: pairs
                .into_iter()
                .map(|(name, value)| (name.into().to_ascii_lowercase(), value.into()))
                .collect(),
            known: None,
            edits: Vec::new(),
        }
    }

    /// Every (name, value) pair known here, with the changes made so far,
    /// names lowercase.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The changes made so far, in order.
    pub fn edits(&self) -> &[Edit] {
        &self.edits
    }

    /// The changes, to send back to the host.
    #[doc(hidden)]
    pub fn into_edits(self) -> Vec<Edit> {
        self.edits
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<String> {
        if !self.knows(name) {
            #[cfg(target_arch = "wasm32")]
            return host::get(name);
        }
        self.values(name).next().map(str::to_owned)
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<String> {
        if !self.knows(name) {
            #[cfg(target_arch = "wasm32")]
            return host::get_all(name);
        }
        self.values(name).map(str::to_owned).collect()
    }

    /// The names present, lowercase, each once. Undeclared names are asked
    /// of the host (one call).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        #[cfg(target_arch = "wasm32")]
        if self.known.is_some() {
            names = host::names()
                .into_iter()
                .filter(|name| !self.knows(name))
                .collect();
        }
        for (name, _) in &self.pairs {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// Replaces every value of `name` with `value`.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let name = editable(name)?;
        self.pairs.retain(|(n, _)| *n != name);
        self.pairs.push((name.clone(), value.to_owned()));
        self.learn(&name);
        self.edits.push(Edit::set(&name, value));
        Ok(())
    }

    /// Adds `value` after the values `name` already has.
    pub fn append(&mut self, name: &str, value: &str) -> Result<(), Error> {
        let name = editable(name)?;
        self.fetch(&name);
        self.pairs.push((name.clone(), value.to_owned()));
        self.edits.push(Edit::append(&name, value));
        Ok(())
    }

    /// Removes every value of `name`.
    pub fn remove(&mut self, name: &str) -> Result<(), Error> {
        let name = editable(name)?;
        self.pairs.retain(|(n, _)| *n != name);
        self.learn(&name);
        self.edits.push(Edit::remove(&name));
        Ok(())
    }

    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn knows(&self, name: &str) -> bool {
        self.known
            .as_ref()
            .is_none_or(|known| known.iter().any(|k| k.eq_ignore_ascii_case(name)))
    }

    /// `pairs` is now complete for `name`.
    fn learn(&mut self, name: &str) {
        if let Some(known) = &mut self.known
            && !known.iter().any(|k| k == name)
        {
            known.push(name.to_owned());
        }
    }

    /// Makes `pairs` complete for `name` before a change that keeps its
    /// current values: an undeclared header's values are asked of the host.
    fn fetch(&mut self, name: &str) {
        if self.knows(name) {
            return;
        }
        #[cfg(target_arch = "wasm32")]
        for value in host::get_all(name) {
            self.pairs.push((name.to_owned(), value));
        }
        self.learn(name);
    }
}

/// `name` lowercase, or why the host would refuse a change to it.
fn editable(name: &str) -> Result<String, Error> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(Error::new(format!("invalid header name `{name}`")));
    }
    let name = name.to_ascii_lowercase();
    if PROXY_OWNED.contains(&name.as_str()) {
        return Err(Error::new(format!(
            "header `{name}` belongs to the proxy and cannot be changed"
        )));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_recorded_and_seen_by_later_reads() {
        let mut headers = Headers::declared(
            &["x-a".to_owned(), "via".to_owned()],
            vec![("x-a".into(), "1".into()), ("via".into(), "edge".into())],
        );
        headers.set("X-A", "2").unwrap();
        headers.append("via", "bascule").unwrap();
        headers.remove("x-gone").unwrap();
        assert_eq!(headers.get("x-a").as_deref(), Some("2"));
        assert_eq!(headers.get_all("via"), ["edge", "bascule"]);
        assert_eq!(headers.get("x-gone"), None);
        assert_eq!(
            headers.into_edits(),
            [
                Edit::set("x-a", "2"),
                Edit::append("via", "bascule"),
                Edit::remove("x-gone")
            ]
        );
    }

    #[test]
    fn proxy_headers_and_bad_names_are_refused_at_once() {
        let mut headers = Headers::fixture([("a", "b")]);
        let error = headers.set("Content-Length", "0").unwrap_err();
        assert!(error.message().contains("belongs to the proxy"), "{error}");
        assert!(headers.remove("bad name").is_err());
        assert!(headers.edits().is_empty());
    }
}
