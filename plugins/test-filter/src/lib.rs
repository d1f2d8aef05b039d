//! Test-only header filter. Options `{"mode": "..."}`:
//! - `deny`: answers 403 itself, with an `x-denied-by` header;
//! - `echo`: on the response, reports the request values it declared for
//!   that phase (method, path, `x-trace`, client) in `x-seen`, and the
//!   status and response header names it saw in `x-seen-response`;
//! - `edit-owned`: tries to set `content-length` on the request (refused;
//!   the error is returned);
//! - `bad-edit`: sets `x-first`, then `x-bad` to a value with a line
//!   break: the host refuses the answer, none of it applied;
//! - `trap`: executes `unreachable` on the request;
//! - `spin`: loops forever on the response (the deadline stops it);
//! - `bad-status`: answers with status 42 (invalid output);
//! - `response-only`: declares only the response phase and the response
//!   header `x-backend`; reports in `x-filter-calls` how many times each
//!   phase was called on this instance;
//! - `stamp`: sets `x-real-ip` to the client address in the guest (the
//!   guest-rendered twin of a static `{client-ip}` edit, for benchmarks);
//! - `rewrite`: forwards to `/rewritten` followed by the original path;
//! - `rate-limit`: takes a token from the limit named by the `limit`
//!   option for the tenant of `Authorization: Bearer TENANT.SECRET` (a key
//!   only a plugin can compute); an empty bucket is answered 429 with
//!   `Retry-After` and `x-limited-tenant`, an unknown limit is an error;
//! - `count`: defines metrics: the counter `test_filter_paths{path}`
//!   (requests by path, a series per path asked for once and kept), the
//!   gauge `test_filter_requests_seen` (this instance's requests) and the
//!   histogram `test_filter_path_length` (buckets 1, 4, 16).

use std::collections::HashMap;

use bascule_guest_sdk::metrics::{
    Counter, CounterSeries, Gauge, GaugeSeries, Histogram, HistogramSeries,
};
use bascule_guest_sdk::rate_limit::{self, Taken};
use bascule_guest_sdk::{
    Error, Field, FilterNeeds, HeaderFilter, Headers, LocalResponse, Options, Request,
    RequestNeeds, ResponseNeeds, Verdict,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    mode: Mode,
    limit: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Deny,
    Echo,
    EditOwned,
    BadEdit,
    Trap,
    Spin,
    BadStatus,
    ResponseOnly,
    Stamp,
    Rewrite,
    RateLimit,
    Count,
}

/// The plugin, with the calls this instance has served per phase.
#[derive(Debug)]
pub struct TestFilter {
    mode: Mode,
    limit: String,
    requests: u64,
    responses: u64,
    counted: Option<Counted>,
}

/// The `count` mode's metrics, and the path series asked for so far.
#[derive(Debug)]
struct Counted {
    paths: Counter,
    by_path: HashMap<String, CounterSeries>,
    seen: GaugeSeries,
    lengths: HistogramSeries,
}

impl Counted {
    fn declare() -> Result<Self, Error> {
        Ok(Counted {
            paths: Counter::declare("test_filter_paths", "requests by path", &["path"])?,
            by_path: HashMap::new(),
            seen: Gauge::declare("test_filter_requests_seen", "requests an instance saw", &[])?
                .series(&[])?,
            lengths: Histogram::declare(
                "test_filter_path_length",
                "path lengths",
                &[],
                &[1.0, 4.0, 16.0],
            )?
            .series(&[])?,
        })
    }

    fn count(&mut self, path: &str, requests: u64) -> Result<(), Error> {
        let series = match self.by_path.get(path) {
            Some(series) => *series,
            None => {
                let series = self.paths.series(&[path])?;
                self.by_path.insert(path.to_owned(), series);
                series
            }
        };
        series.inc();
        #[allow(clippy::cast_precision_loss)]
        self.seen.set(requests as f64);
        #[allow(clippy::cast_precision_loss)]
        self.lengths.observe(path.len() as f64);
        Ok(())
    }
}

impl HeaderFilter for TestFilter {
    fn configure(options: &Options) -> Result<Self, Error> {
        let settings: Settings = options.parse()?;
        let limit = match (settings.mode, settings.limit) {
            (Mode::RateLimit, None) => return Err(Error::new("`rate-limit` needs `limit`")),
            (_, limit) => limit.unwrap_or_default(),
        };
        let counted = match settings.mode {
            Mode::Count => Some(Counted::declare()?),
            _ => None,
        };
        Ok(TestFilter {
            mode: settings.mode,
            limit,
            requests: 0,
            responses: 0,
            counted,
        })
    }

    fn declare(&self) -> FilterNeeds {
        let request = Some(RequestNeeds::nothing());
        match self.mode {
            Mode::Deny | Mode::EditOwned | Mode::BadEdit | Mode::Trap | Mode::BadStatus => {
                FilterNeeds {
                    on_request: request,
                    ..FilterNeeds::default()
                }
            }
            Mode::Stamp => FilterNeeds {
                on_request: request,
                ..FilterNeeds::default()
            },
            Mode::RateLimit => FilterNeeds {
                on_request: Some(RequestNeeds::nothing().header("authorization")),
                ..FilterNeeds::default()
            },
            Mode::Rewrite | Mode::Count => FilterNeeds {
                on_request: Some(RequestNeeds::nothing().field(Field::Path)),
                ..FilterNeeds::default()
            },
            Mode::Echo => FilterNeeds {
                on_response: Some(ResponseNeeds {
                    request: RequestNeeds::nothing()
                        .field(Field::Method)
                        .field(Field::Path)
                        .header("x-trace"),
                    headers: Vec::new(),
                }),
                ..FilterNeeds::default()
            },
            Mode::Spin => FilterNeeds {
                on_response: Some(ResponseNeeds::default()),
                ..FilterNeeds::default()
            },
            Mode::ResponseOnly => FilterNeeds {
                on_response: Some(ResponseNeeds {
                    request: RequestNeeds::nothing(),
                    headers: vec!["x-backend".to_owned()],
                }),
                ..FilterNeeds::default()
            },
        }
    }

    fn on_request(&mut self, request: &Request, headers: &mut Headers) -> Result<Verdict, Error> {
        self.requests += 1;
        match self.mode {
            Mode::Deny => Ok(Verdict::Respond(
                LocalResponse::new(403, "denied by test-filter")
                    .with_header("x-denied-by", "test-filter"),
            )),
            Mode::EditOwned => headers
                .set("content-length", "0")
                .map(|()| Verdict::Forward),
            Mode::BadEdit => {
                headers.set("x-first", "1")?;
                headers.set("x-bad", "line\nbreak")?;
                Ok(Verdict::Forward)
            }
            Mode::Trap => std::process::abort(),
            Mode::BadStatus => Ok(Verdict::Respond(LocalResponse::new(42, "nonsense"))),
            Mode::Stamp => {
                headers.set("x-real-ip", &request.client_ip())?;
                Ok(Verdict::Forward)
            }
            Mode::Rewrite => Ok(Verdict::Rewrite {
                path: format!("/rewritten{}", request.path()),
            }),
            Mode::RateLimit => {
                let tenant = headers
                    .get("authorization")
                    .as_deref()
                    .and_then(|value| value.strip_prefix("Bearer "))
                    .and_then(|token| token.split_once('.'))
                    .map(|(tenant, _)| tenant.to_owned())
                    .unwrap_or_default();
                match rate_limit::take(&self.limit, &tenant) {
                    Taken::Allowed => Ok(Verdict::Forward),
                    Taken::Limited { retry_after_ms } => Ok(Verdict::Respond(
                        LocalResponse::new(429, "tenant over its rate")
                            .with_header("retry-after", retry_after_ms.div_ceil(1000).to_string())
                            .with_header("x-limited-tenant", tenant),
                    )),
                    Taken::UnknownLimit => Err(Error::new(format!(
                        "no [limits.{}] in the config",
                        self.limit
                    ))),
                }
            }
            Mode::Count => {
                let requests = self.requests;
                if let Some(counted) = &mut self.counted {
                    counted.count(&request.path(), requests)?;
                }
                Ok(Verdict::Forward)
            }
            Mode::Echo | Mode::Spin | Mode::ResponseOnly => Ok(Verdict::Forward),
        }
    }

    fn on_response(
        &mut self,
        status: u16,
        request: &Request,
        headers: &mut Headers,
    ) -> Result<(), Error> {
        self.responses += 1;
        match self.mode {
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
            Mode::ResponseOnly => {
                let backend = headers.get("x-backend").unwrap_or_default();
                headers.set(
                    "x-filter-calls",
                    &format!(
                        "requests={} responses={} backend={backend}",
                        self.requests, self.responses
                    ),
                )
            }
            _ => Ok(()),
        }
    }
}

bascule_guest_sdk::export_header_filter!(TestFilter);
