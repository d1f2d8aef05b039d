//! What one attempt at a backend ended in, and whether to try again.
//!
//! The request path makes one [`Attempt`](crate::l7) per ranked candidate;
//! each that fails is classified into an [`AttemptFailure`] (who failed,
//! whether the request was written, on what kind of connection), and the
//! [`RetryPolicy`] alone decides what happens next. Retry budgets and
//! retry-on-status conditions replace this one type.

/// Why an attempt produced no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection: refused, unreachable, timed out, or no address.
    Connect,
    /// The connection was there but failed before the request was written
    /// (typically a reused connection the backend had just closed).
    NotSent,
    /// The request was written and no response head came in time.
    ResponseTimeout,
    /// The request was written and the connection failed before a
    /// response head arrived.
    Broken,
    /// The client's request body broke (malformed chunked encoding, a
    /// connection cut mid-body): the client's fault, answered 400.
    ClientBody,
}

/// A classified failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptFailure {
    /// What went wrong.
    pub kind: FailureKind,
    /// Whether the attempt ran on a connection reused from the pool.
    pub reused_connection: bool,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Send again to the same backend on a new connection: the reused one
    /// was dead, which says nothing about the backend. Costs no attempt.
    SameBackendNewConnection,
    /// Try the next ranked candidate, if any.
    NextCandidate,
    /// Answer the client with an error now.
    Stop,
}

/// Today's rule: retry only what the backend never received. A request
/// that was written may have had effects (a POST that charged a card), so
/// it is never sent twice. A dead reused connection is retried once on a
/// new connection to the same backend before moving on.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryPolicy;

// === impl AttemptFailure ===

impl AttemptFailure {
    /// Whether the backend may have received the request.
    pub fn was_sent(&self) -> bool {
        matches!(
            self.kind,
            FailureKind::ResponseTimeout | FailureKind::Broken | FailureKind::ClientBody
        )
    }

    /// Whether the failure counts against the backend in its stats: a
    /// connection that died before the request was written does not (a
    /// backend closing an idle keep-alive connection is normal).
    pub fn blames_backend(&self) -> bool {
        !matches!(self.kind, FailureKind::NotSent | FailureKind::ClientBody)
    }
}

// === impl RetryPolicy ===

impl RetryPolicy {
    /// Decides after `failure`; `resent` says whether this backend was
    /// already retried on a new connection for this request.
    pub fn decide(&self, failure: &AttemptFailure, resent: bool) -> RetryDecision {
        if failure.was_sent() {
            return RetryDecision::Stop;
        }
        if failure.kind == FailureKind::NotSent && failure.reused_connection && !resent {
            return RetryDecision::SameBackendNewConnection;
        }
        RetryDecision::NextCandidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(kind: FailureKind, reused_connection: bool) -> AttemptFailure {
        AttemptFailure {
            kind,
            reused_connection,
        }
    }

    #[test]
    fn only_unsent_requests_are_retried() {
        let policy = RetryPolicy;
        for kind in [FailureKind::ResponseTimeout, FailureKind::Broken] {
            for reused in [false, true] {
                assert_eq!(
                    policy.decide(&failure(kind, reused), false),
                    RetryDecision::Stop
                );
            }
        }
        assert_eq!(
            policy.decide(&failure(FailureKind::Connect, false), false),
            RetryDecision::NextCandidate
        );
        assert_eq!(
            policy.decide(&failure(FailureKind::NotSent, false), false),
            RetryDecision::NextCandidate
        );
    }

    #[test]
    fn a_dead_reused_connection_is_retried_once_on_the_same_backend() {
        let policy = RetryPolicy;
        let dead = failure(FailureKind::NotSent, true);
        assert_eq!(
            policy.decide(&dead, false),
            RetryDecision::SameBackendNewConnection
        );
        assert_eq!(policy.decide(&dead, true), RetryDecision::NextCandidate);
        assert!(!dead.blames_backend());
        assert!(failure(FailureKind::Connect, false).blames_backend());
    }
}
