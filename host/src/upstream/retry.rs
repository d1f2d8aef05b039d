//! What one attempt at a backend ended in, and whether to try again.
//!
//! The request path makes one [`Attempt`](crate::l7) per ranked candidate;
//! each that fails is classified into an [`AttemptFailure`] (who failed,
//! whether the request was written, on what kind of connection), and the
//! [`RetryPolicy`] of the request's route alone decides what happens
//! next: a dead reused connection is sent again on a new one (free); a
//! connect failure goes to the next candidate; a request the backend may
//! have received is tried again only when the route says so (`reset`,
//! `timeout`, a status), its method is idempotent and its body was kept
//! whole; and every retry but the free one is paid from the route's
//! [`RetryBudget`].

use super::retry_budget::RetryBudget;
use crate::config::RetryConfig;

/// Why an attempt produced no response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No connection: refused, unreachable, timed out, or no address.
    Connect,
    /// The connection was there but failed before the request was written
    /// (typically a reused connection the backend had just closed).
    NotSent,
    /// An HTTP/2 backend turned the stream away unprocessed: reset with
    /// `REFUSED_STREAM`, or failed by a graceful `GOAWAY` that came before
    /// the backend took it (RFC 9113 §8.7: safe to send anywhere, whatever
    /// the method, like a connect failure).
    Refused,
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
    /// Try the next ranked candidate, if any, for `reason`.
    NextCandidate(RetryReason),
    /// Answer the client with an error now.
    Stop,
    /// The route would retry, but its budget is spent.
    BudgetExhausted,
}

/// Why a request is tried again: the `reason` label of
/// `bascule_http_retries_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryReason {
    /// No connection, or it failed before the request was written.
    ConnectFailure,
    /// Reset after the request was sent.
    Reset,
    /// No response head within the per-try timeout.
    Timeout,
    /// A status the route retries.
    Status(u16),
}

/// What a request carries into the decision.
#[derive(Debug, Clone, Copy)]
pub struct RetryContext {
    /// The method may be sent twice (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// The body was kept whole (or there is none): it can be sent again.
    pub replayable: bool,
    /// The backend of this attempt was already retried on a new
    /// connection for this request.
    pub resent: bool,
}

/// A route's retry rules and budget.
#[derive(Debug)]
pub struct RetryPolicy {
    config: RetryConfig,
    budget: RetryBudget,
}

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
        !matches!(
            self.kind,
            FailureKind::NotSent | FailureKind::Refused | FailureKind::ClientBody
        )
    }
}

// === impl RetryPolicy ===

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::new(RetryConfig::default())
    }
}

impl RetryPolicy {
    /// The policy `config` describes, with a fresh budget.
    pub fn new(config: RetryConfig) -> Self {
        let budget = RetryBudget::new(config.budget_permille, config.budget_min_per_second);
        RetryPolicy { config, budget }
    }

    /// Counts a request into the budget.
    pub fn record_request(&self) {
        self.budget.deposit();
    }

    /// Attempts per request; `pool_default` when the route does not say.
    pub fn max_attempts(&self, pool_default: u32) -> u32 {
        self.config.max_attempts.unwrap_or(pool_default)
    }

    /// The wait for one attempt's response head, if the route bounds it.
    pub fn per_try_timeout(&self) -> Option<std::time::Duration> {
        self.config.per_try_timeout
    }

    /// Body bytes kept to send again, when anything sent may be retried
    /// (over HTTP/2, a refused stream is, as a connect failure is);
    /// `None`: nothing sent is ever retried, so nothing is kept.
    pub fn replay_buffer(&self, http2: bool) -> Option<usize> {
        let on = &self.config.on;
        (on.reset || on.timeout || !on.statuses.is_empty() || (http2 && on.connect_failure))
            .then_some(self.config.buffer)
    }

    /// Whether `status` is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        self.config.on.statuses.contains(&status)
    }

    /// The free retry, if `failure` calls for it: a reused connection that
    /// died before the request was written, sent again once on a new
    /// connection to the same backend (it says nothing about the backend).
    pub fn decide_resend(
        &self,
        failure: &AttemptFailure,
        request: RetryContext,
    ) -> Option<RetryDecision> {
        (failure.kind == FailureKind::NotSent && failure.reused_connection && !request.resent)
            .then_some(RetryDecision::SameBackendNewConnection)
    }

    /// Decides after `failure`.
    pub fn decide(&self, failure: &AttemptFailure, request: RetryContext) -> RetryDecision {
        let on = &self.config.on;
        if let Some(resend) = self.decide_resend(failure, request) {
            return resend;
        }
        let reason = match failure.kind {
            FailureKind::Connect | FailureKind::NotSent | FailureKind::Refused
                if on.connect_failure =>
            {
                RetryReason::ConnectFailure
            }
            FailureKind::Broken if on.reset => RetryReason::Reset,
            FailureKind::ResponseTimeout if on.timeout => RetryReason::Timeout,
            _ => return RetryDecision::Stop,
        };
        if failure.was_sent() && !(request.idempotent && request.replayable) {
            return RetryDecision::Stop;
        }
        self.pay(reason)
    }

    /// Decides after a response with a retried `status`.
    pub fn decide_status(&self, status: u16, request: RetryContext) -> RetryDecision {
        if !(self.retries_status(status) && request.idempotent && request.replayable) {
            return RetryDecision::Stop;
        }
        self.pay(RetryReason::Status(status))
    }

    fn pay(&self, reason: RetryReason) -> RetryDecision {
        if self.budget.withdraw() {
            RetryDecision::NextCandidate(reason)
        } else {
            RetryDecision::BudgetExhausted
        }
    }
}

// === impl RetryReason ===

impl RetryReason {
    /// The metric label.
    pub fn label(self) -> std::borrow::Cow<'static, str> {
        match self {
            RetryReason::ConnectFailure => "connect-failure".into(),
            RetryReason::Reset => "reset".into(),
            RetryReason::Timeout => "timeout".into(),
            RetryReason::Status(status) => status.to_string().into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RetryOn;

    fn failure(kind: FailureKind, reused_connection: bool) -> AttemptFailure {
        AttemptFailure {
            kind,
            reused_connection,
        }
    }

    const GET: RetryContext = RetryContext {
        idempotent: true,
        replayable: true,
        resent: false,
    };
    const POST: RetryContext = RetryContext {
        idempotent: false,
        replayable: true,
        resent: false,
    };

    fn everything() -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            on: RetryOn {
                connect_failure: true,
                reset: true,
                timeout: true,
                statuses: vec![503],
            },
            ..RetryConfig::default()
        })
    }

    #[test]
    fn by_default_only_what_was_never_sent_is_retried() {
        let policy = RetryPolicy::default();
        for kind in [
            FailureKind::ResponseTimeout,
            FailureKind::Broken,
            FailureKind::ClientBody,
        ] {
            assert_eq!(
                policy.decide(&failure(kind, false), GET),
                RetryDecision::Stop
            );
        }
        assert_eq!(
            policy.decide(&failure(FailureKind::Connect, false), POST),
            RetryDecision::NextCandidate(RetryReason::ConnectFailure)
        );
        assert_eq!(policy.decide_status(503, GET), RetryDecision::Stop);
        assert_eq!(
            policy.replay_buffer(false),
            None,
            "nothing kept when nothing sent is retried"
        );
    }

    #[test]
    fn a_refused_http2_stream_moves_on_whatever_the_method() {
        let policy = RetryPolicy::default();
        let refused = failure(FailureKind::Refused, true);
        assert!(!refused.was_sent() && !refused.blames_backend());
        assert_eq!(
            policy.decide(&refused, POST),
            RetryDecision::NextCandidate(RetryReason::ConnectFailure)
        );
        assert_eq!(
            policy.replay_buffer(true),
            Some(64 * 1024),
            "over HTTP/2 the body is kept for it"
        );
    }

    #[test]
    fn a_dead_reused_connection_is_retried_once_on_the_same_backend() {
        let policy = RetryPolicy::default();
        let dead = failure(FailureKind::NotSent, true);
        assert_eq!(
            policy.decide(&dead, GET),
            RetryDecision::SameBackendNewConnection
        );
        let resent = RetryContext {
            resent: true,
            ..GET
        };
        assert_eq!(
            policy.decide(&dead, resent),
            RetryDecision::NextCandidate(RetryReason::ConnectFailure)
        );
        assert!(!dead.blames_backend());
        assert!(failure(FailureKind::Connect, false).blames_backend());
    }

    #[test]
    fn what_was_sent_is_retried_only_when_idempotent_and_kept() {
        let policy = everything();
        assert_eq!(
            policy.decide(&failure(FailureKind::Broken, false), GET),
            RetryDecision::NextCandidate(RetryReason::Reset)
        );
        assert_eq!(
            policy.decide(&failure(FailureKind::Broken, false), POST),
            RetryDecision::Stop
        );
        let unkept = RetryContext {
            replayable: false,
            ..GET
        };
        assert_eq!(policy.decide_status(503, unkept), RetryDecision::Stop);
        assert_eq!(
            policy.decide_status(503, GET),
            RetryDecision::NextCandidate(RetryReason::Status(503))
        );
        assert_eq!(policy.decide_status(502, GET), RetryDecision::Stop);
        assert_eq!(policy.replay_buffer(false), Some(64 * 1024));
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_runs_out() {
        let policy = RetryPolicy::new(RetryConfig {
            budget_permille: 0,
            budget_min_per_second: 1,
            ..RetryConfig::default()
        });
        let connect = failure(FailureKind::Connect, false);
        let granted = (0..20)
            .filter(|_| {
                matches!(
                    policy.decide(&connect, GET),
                    RetryDecision::NextCandidate(_)
                )
            })
            .count();
        assert_eq!(granted, 10, "1 per second over the 10 s window");
        assert_eq!(policy.decide(&connect, GET), RetryDecision::BudgetExhausted);
    }
}
