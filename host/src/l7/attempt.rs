//! One attempt at one backend: take a connection (before the request is
//! committed to it), send, and wait for the response head within the
//! pool's response timeout. A failure comes back classified, with the
//! request when it was never written, for the [`RetryPolicy`] to judge.
//!
//! [`RetryPolicy`]: crate::upstream::RetryPolicy

use http::{Request, Response};
use tokio::time::Instant;

use crate::upstream::{
    AttemptFailure, Backend, BackendPool, ConnectError, ConnectionPool, ExchangeError, FailureKind,
    RequestBody, TrafficEvent, UpstreamBody,
};

/// One try of one candidate.
pub struct Attempt<'a> {
    /// The pool the candidate belongs to (timeouts, name).
    pub pool: &'a BackendPool,
    /// The candidate.
    pub backend: &'a Backend,
    /// Where connections come from.
    pub connections: &'a ConnectionPool,
    /// Open a new connection even if an idle one is there.
    pub new_connection: bool,
    /// When the client stops waiting (a gRPC call's `grpc-timeout`): the
    /// response head is awaited until then at most.
    pub deadline: Option<Instant>,
    /// The route's bound on one attempt's wait for a response head.
    pub per_try_timeout: Option<std::time::Duration>,
}

/// An attempt that produced no response.
#[derive(Debug)]
pub struct FailedAttempt {
    /// What happened, classified.
    pub failure: AttemptFailure,
    /// The request, when it was never written.
    pub unsent: Option<Request<RequestBody>>,
    /// The underlying error, for logs.
    pub cause: AttemptCause,
}

/// The error behind a failed attempt.
#[derive(Debug, thiserror::Error)]
pub enum AttemptCause {
    /// No connection.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The exchange failed.
    #[error("backend connection failed")]
    Http(#[source] ExchangeError),
    /// No response head in time.
    #[error("backend did not answer within {0:?}")]
    Timeout(std::time::Duration),
}

// === impl Attempt ===

impl Attempt<'_> {
    /// Sends `request` to the backend.
    pub async fn run(
        self,
        mut request: Request<RequestBody>,
    ) -> Result<Response<UpstreamBody>, FailedAttempt> {
        let settings = self.pool.settings();
        let backend = self.backend;
        request
            .body_mut()
            .meter_backend(backend.stats.bytes().map(|bytes| &bytes.sent));
        let connection = match backend.endpoints.pick() {
            None => Err(ConnectError::Unresolved {
                backend: backend.address.clone(),
            }),
            Some(endpoint) => {
                self.connections
                    .get(
                        backend,
                        endpoint,
                        self.new_connection,
                        settings.connect_timeout,
                    )
                    .await
            }
        };
        let connection = match connection {
            Ok(connection) => connection,
            Err(error) => {
                crate::metrics::connect_failed(self.pool.name(), &backend.id, error.is_timeout());
                crate::health::observe(self.pool, backend, TrafficEvent::ConnectFailure);
                return Err(self.failed(FailureKind::Connect, false, Some(request), error.into()));
            }
        };
        let reused = connection.is_reused();
        let started = Instant::now();
        let mut timeout = settings.response_timeout;
        if let Some(per_try) = self.per_try_timeout {
            timeout = timeout.min(per_try);
        }
        if let Some(at) = self.deadline {
            timeout = timeout.min(at.saturating_duration_since(started));
        }
        let sent = tokio::time::timeout(
            timeout,
            connection.send(
                request,
                &backend.address,
                backend.stats.start(),
                settings.drain_timeout,
            ),
        )
        .await;
        match sent {
            Err(_) => {
                crate::metrics::timed_out("response");
                crate::health::observe(self.pool, backend, TrafficEvent::Timeout);
                Err(self.failed(
                    FailureKind::ResponseTimeout,
                    reused,
                    None,
                    AttemptCause::Timeout(timeout),
                ))
            }
            Ok(Ok(response)) => {
                backend
                    .stats
                    .record_response(response.status(), started.elapsed());
                crate::health::observe(
                    self.pool,
                    backend,
                    TrafficEvent::Response(response.status().as_u16()),
                );
                Ok(response)
            }
            Ok(Err(error)) => {
                let kind = if error.error.is_client_body() {
                    FailureKind::ClientBody
                } else if error.unsent.is_some() {
                    FailureKind::NotSent
                } else if error.error.is_refused() {
                    FailureKind::Refused
                } else {
                    FailureKind::Broken
                };
                Err(self.failed(kind, reused, error.unsent, AttemptCause::Http(error.error)))
            }
        }
    }

    fn failed(
        &self,
        kind: FailureKind,
        reused_connection: bool,
        unsent: Option<Request<RequestBody>>,
        cause: AttemptCause,
    ) -> FailedAttempt {
        let failure = AttemptFailure {
            kind,
            reused_connection,
        };
        if failure.blames_backend() {
            self.backend.stats.record_failure();
        }
        FailedAttempt {
            failure,
            unsent,
            cause,
        }
    }
}
