//! What the request path learns of one request as it goes (route, pool,
//! backend, retries, the backend's time, a filter's verdict), for the
//! route's metrics and, when the plan has one, the access-log line.
//!
//! Without an access log only the route's series is kept: nothing is
//! copied or allocated for a line nobody writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use http::Response;
use http_body_util::Either;

use super::response::ProxyBody;
use crate::access_log::{AccessLog, Entry, Kind};
use crate::metrics::ResponseSeries;

/// One request's facts.
#[derive(Default)]
pub(super) struct Exchange {
    /// The matched route's answers and durations.
    pub route: Option<Arc<ResponseSeries>>,
    /// The line being gathered; `None` without an access log.
    pub line: Option<Line>,
}

/// An access-log line in the making.
pub(super) struct Line {
    log: AccessLog,
    entry: Entry,
    /// Request body bytes read from the client.
    bytes_in: Arc<AtomicU64>,
}

// === impl Exchange ===

impl Exchange {
    /// Starts gathering a line for `log`, when the plan has one.
    pub fn start_line(
        &mut self,
        log: Option<&AccessLog>,
        listener: &Arc<str>,
        client: std::net::SocketAddr,
        method: &http::Method,
        uri: &http::Uri,
    ) {
        self.line = log.map(|log| Line {
            log: log.clone(),
            entry: Entry {
                at: SystemTime::now(),
                kind: Kind::Http,
                listener: Arc::clone(listener),
                route: None,
                pool: None,
                backend: None,
                client,
                method: Some(method.clone()),
                path: Some(
                    uri.path_and_query()
                        .map_or_else(|| uri.path().to_owned(), ToString::to_string),
                ),
                status: None,
                close_reason: None,
                duration: Duration::ZERO,
                upstream_duration: None,
                bytes_in: 0,
                bytes_out: 0,
                request_id: None,
                retries: 0,
                verdict: None,
            },
            bytes_in: Arc::default(),
        });
    }

    /// The line's entry, to fill in; `None` without an access log.
    pub fn entry(&mut self) -> Option<&mut Entry> {
        self.line.as_mut().map(|line| &mut line.entry)
    }

    /// Where the request body's bytes are counted, when they are.
    pub fn body_counter(&self) -> Option<Arc<AtomicU64>> {
        self.line.as_ref().map(|line| Arc::clone(&line.bytes_in))
    }

    /// Counts one more attempt after the first.
    pub fn retried(&mut self) {
        if let Some(entry) = self.entry() {
            entry.retries += 1;
        }
    }

    /// Writes the line once `response` is done with: now for the proxy's
    /// own answers, after the last byte for a backend's.
    pub fn finish(self, response: &mut Response<ProxyBody>, started: tokio::time::Instant) {
        let Some(Line {
            log,
            mut entry,
            bytes_in,
        }) = self.line
        else {
            return;
        };
        entry.status = Some(response.status().as_u16());
        let end = move |bytes_out: u64| {
            entry.bytes_out = bytes_out;
            entry.bytes_in = bytes_in.load(Ordering::Relaxed);
            entry.duration = started.elapsed();
            log.log(entry);
        };
        match response.body_mut() {
            Either::Left(body) => body.on_end(Box::new(end)),
            Either::Right(body) => {
                let size = http_body::Body::size_hint(body).exact().unwrap_or(0);
                end(size);
            }
        }
    }
}
