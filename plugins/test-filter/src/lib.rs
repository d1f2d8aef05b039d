//! Test-only header filter. Options `{"mode": "..."}`:
//! - `deny`: answers 403 itself, with an `x-denied-by` header;
//! - `echo`: on the response, reports what `request-context` and the
//!   request's `x-trace` header said (`x-seen`), and the response status
//!   and header names it saw (`x-seen-response`);
//! - `edit-owned`: tries to set `content-length` on the request (the host
//!   refuses; the error is returned);
//! - `trap`: executes `unreachable` on the request;
//! - `spin`: loops forever on the response (the epoch deadline stops it);
//! - `bad-status`: answers with status 42 (invalid output).

use bascule_guest_sdk::{Error, HeaderFilter, Headers, LocalResponse, Options, Request, Verdict};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: Mode,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Deny,
    Echo,
    EditOwned,
    Trap,
    Spin,
    BadStatus,
}

/// The plugin.
#[derive(Debug)]
pub struct TestFilter(Mode);

impl HeaderFilter for TestFilter {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        Ok(TestFilter(settings.mode))
    }

    fn on_request(&mut self, _request: &Request, headers: &mut Headers) -> Result<Verdict, Error> {
        match self.0 {
            Mode::Deny => Ok(Verdict::Respond(
                LocalResponse::new(403, "denied by test-filter")
                    .with_header("x-denied-by", "test-filter"),
            )),
            Mode::EditOwned => headers
                .set("content-length", "0")
                .map(|()| Verdict::Forward),
            Mode::Trap => std::process::abort(),
            Mode::BadStatus => Ok(Verdict::Respond(LocalResponse::new(42, "nonsense"))),
            Mode::Echo | Mode::Spin => Ok(Verdict::Forward),
        }
    }

    fn on_response(
        &mut self,
        status: u16,
        request: &Request,
        headers: &mut Headers,
    ) -> Result<(), Error> {
        match self.0 {
            Mode::Echo => {
                let seen = format!(
                    "{} {} {} {}",
                    request.method(),
                    request.path(),
                    request.header("x-trace").unwrap_or_default(),
                    request.client_ip(),
                );
                headers.set("x-seen", &seen)?;
                let names = headers.names().join(",");
                headers.set("x-seen-response", &format!("{status} {names}"))
            }
            Mode::Spin => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            _ => Ok(()),
        }
    }
}

bascule_guest_sdk::export_header_filter!(TestFilter);
