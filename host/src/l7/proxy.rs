//! The HTTP request path, in named steps:
//!
//! ```text
//! target ─▶ route ─▶ prepare head ─▶ request filters ─▶ choose ─▶ attempts ─▶ response filters
//! (one       (Route   (framing,        (HeaderFilter)    (Backend   (Attempt per candidate,
//!  authority, Table:   hop-by-hop,                        Pool)      RetryPolicy decides)
//!  one path)  split,   upgrades, X-Forwarded-*)
//!             rewrite,
//!             redirect,
//!             respond)
//! ```
//!
//! Each step has one job; a new capability is a new step or a new
//! implementation of a step's trait. Balancers and filters see a read-only
//! [`RequestView`]; the head itself flows through this file only.
//!
//! Steps return `Result<_, Response>`: the error arm is the answer the
//! client gets (404, 501, 503, ...), moved out as is; boxing it would
//! allocate on every such answer.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::Either;

use super::attempt::{Attempt, AttemptCause};
use super::authority::Authority;
use super::exchange::Exchange;
use super::filter::{FilterVerdict, HeaderFilter, KeptRequest};
use super::framing;
use super::grpc;
use super::headers::{self, ClientAddress, Forwarding};
use super::limits::ConnectionLimits;
use super::path::PathPolicy;
use super::response::{self, ProxyBody};
use super::route::RouteTarget;
use super::route_action;
use super::target::{self, Answer};
use crate::header_rules::{self, HopRequest};
use crate::metrics::{ByteCounters, StatusClasses};
use crate::plan::Plan;
use crate::upstream::{
    AttemptFailure, Backend, BackendPool, Choice, ClientBody, ConnectionPool, FailureKind,
    KeptBody, Protocol, RequestBody, RequestView, RetryContext, RetryDecision, RetryPolicy,
    RetryReason, UpstreamBody, is_body_timeout, is_body_too_large,
};

/// The one upgrade the proxy answers itself rather than tunnels: a client
/// asking to switch this very connection to HTTP/2 (RFC 7540 §3.2). Like
/// any server, the proxy may ignore it and serve the request as HTTP/1.1.
const H2C: &str = "h2c";

/// A route's header filters, in request order.
type FilterChain = Arc<[Arc<dyn HeaderFilter>]>;

/// What the target and route steps decided for one request.
struct Routed {
    authority: Option<Authority>,
    forwarding: Forwarding,
    pool: Arc<BackendPool>,
    retry: Arc<RetryPolicy>,
    max_body_size: Option<u64>,
    timeout: Option<std::time::Duration>,
    upgrades: Arc<[String]>,
    filters: FilterChain,
    limits: ConnectionLimits,
}

/// What bounds the attempts of one request: its deadline, the route's
/// retry policy and the listener's limits.
struct Bounds<'a> {
    deadline: Option<tokio::time::Instant>,
    policy: &'a RetryPolicy,
    limits: ConnectionLimits,
}

/// Serves the requests of one listener against the current plan.
pub struct Proxy {
    listener: Arc<str>,
    plan: Arc<ArcSwap<Plan>>,
    connections: Arc<ConnectionPool>,
    /// `bascule_http_requests_total` for this listener, by status class.
    requests: StatusClasses,
    /// `bascule_http_bytes_total` for this listener.
    bytes: ByteCounters,
}

// === impl Proxy ===

impl Proxy {
    /// A proxy for the listener named `listener`.
    pub fn new(
        listener: Arc<str>,
        plan: Arc<ArcSwap<Plan>>,
        connections: Arc<ConnectionPool>,
    ) -> Self {
        Proxy {
            requests: StatusClasses::new(crate::metrics::HTTP_REQUESTS, &[("listener", &listener)]),
            bytes: ByteCounters::listener(&listener),
            listener,
            plan,
            connections,
        }
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.listener
    }

    /// The connection limits of this listener in the plan serving now.
    pub fn limits(&self) -> ConnectionLimits {
        self.plan
            .load()
            .listener(&self.listener)
            .and_then(|listener| listener.routes.http())
            .map(|(_, limits)| *limits)
            .unwrap_or_default()
    }

    /// The TLS termination of this listener in the plan serving now: a
    /// reload's new certificates serve new connections.
    pub fn tls(&self) -> Option<Arc<crate::tls::ServerTls>> {
        self.plan
            .load()
            .listener(&self.listener)
            .and_then(|listener| listener.tls.clone())
    }

    /// Handles one request from `client`. Never fails: every problem
    /// becomes a status code.
    pub async fn handle(
        &self,
        request: Request<ClientBody>,
        client: &ClientAddress,
    ) -> Response<ProxyBody> {
        let call = grpc::Call::of(request.headers());
        let started = tokio::time::Instant::now();
        let mut exchange = Exchange::default();
        let response = match self.proxy(request, client, call, &mut exchange).await {
            Ok(response) | Err(response) => response,
        };
        self.requests.count(response.status());
        if let Some(route) = &exchange.route {
            route.record(response.status(), started.elapsed());
        }
        let mut response = match call {
            // The proxy's own answers, as gRPC statuses.
            Some(call) if matches!(response.body(), Either::Right(_)) => call.answer(response),
            _ => response,
        };
        match response.body_mut() {
            Either::Left(body) => body.meter_client(&self.bytes.sent),
            Either::Right(body) => self
                .bytes
                .sent
                .increment(http_body::Body::size_hint(body).exact().unwrap_or(0)),
        }
        exchange.finish(&mut response, started);
        response
    }

    async fn proxy(
        &self,
        request: Request<ClientBody>,
        client: &ClientAddress,
        call: Option<grpc::Call>,
        exchange: &mut Exchange,
    ) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
        let (mut head, body) = request.into_parts();
        let Routed {
            authority,
            forwarding,
            pool,
            retry,
            max_body_size,
            timeout,
            upgrades,
            filters,
            limits,
        } = self.route(&mut head, client, exchange)?;
        prepare_head(
            &mut head,
            client,
            authority.as_ref(),
            &upgrades,
            &forwarding,
        )?;
        if let Some(entry) = exchange.entry() {
            entry.pool = Some(Arc::clone(pool.name()));
            entry.request_id = head
                .headers
                .get(headers::X_REQUEST_ID)
                .and_then(|id| id.to_str().ok())
                .map(str::to_owned);
        }
        if let Some(max) = max_body_size
            && framing::declared_length(&head.headers).is_some_and(|length| length > max)
        {
            return Err(response::local(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
        if head.headers.contains_key(http::header::UPGRADE) && pool.speaks_http2() {
            return Err(response::local(
                StatusCode::NOT_IMPLEMENTED,
                "upgrades are tunnelled to HTTP/1.1 backends only",
            ));
        }
        let mut view = RequestView {
            protocol: Protocol::Http,
            listener: Arc::clone(&self.listener),
            client: client.socket,
            sni: client
                .tls
                .as_ref()
                .and_then(|tls| tls.sni.as_deref())
                .map(Arc::from),
            tls: client.tls.clone(),
            http: Some(Arc::new(head)),
        };
        filter_request(&filters, &mut view, exchange)?;
        // Response filters keep what they declared of the request as it
        // was sent, not the head.
        let kept = keep_for_response(&filters, &view);
        let choice = pool.choose(&view).map_err(|error| {
            tracing::warn!(error = %crate::error_chain(&error), "no backend for request");
            response::local(StatusCode::SERVICE_UNAVAILABLE, "no backend available")
        })?;
        let head = into_head(view);
        let body = RequestBody::new(body, limits.request_body_timeout)
            .limited_to(max_body_size)
            .metered(&self.bytes.received)
            .counted_into(exchange.body_counter());
        // The earlier of the route's deadline and the gRPC call's.
        let route_deadline = timeout.map(|timeout| tokio::time::Instant::now() + timeout);
        let deadline = match (route_deadline, call.and_then(|call| call.deadline)) {
            (Some(route), Some(call)) => Some(route.min(call)),
            (route, call) => route.or(call),
        };
        let request = Request::from_parts(head, body);
        let mut response = self
            .attempts(
                &pool,
                &choice,
                request,
                Bounds {
                    deadline,
                    policy: &retry,
                    limits,
                },
                exchange,
            )
            .await?;
        if let (Some(at), Either::Left(body)) = (deadline, response.body_mut()) {
            // A gRPC call ends with its status; anything else is cut short.
            body.cut_off_at(at, call.map(|_| grpc::deadline_trailers()));
        }
        Ok(match kept {
            Some(kept) => filter_response(&filters, kept, response),
            None => response,
        })
    }

    /// The target and route steps: the request's one authority and path
    /// decided (and written into `head`), then the route for them: its
    /// pool (one side of its split) and filters, with the path rewritten
    /// as the route says, or the route's own answer.
    fn route(
        &self,
        head: &mut http::request::Parts,
        client: &ClientAddress,
        exchange: &mut Exchange,
    ) -> Result<Routed, Response<ProxyBody>> {
        let no_route = || response::local(StatusCode::NOT_FOUND, "no route matches this request");
        let plan = self.plan.load();
        exchange.start_line(
            plan.access_log(),
            &self.listener,
            client.socket,
            &head.method,
            &head.uri,
        );
        let listener = plan.listener(&self.listener).ok_or_else(no_route)?;
        let (table, limits) = listener.routes.http().ok_or_else(no_route)?;
        let authority = target::decide(head, table.paths()).map_err(answer)?;
        let host = authority.as_ref().map(|a| a.host.as_str());
        let route = table.find(host, head).ok_or_else(no_route)?;
        exchange.route = Some(Arc::clone(&route.metrics));
        if let Some(entry) = exchange.entry() {
            entry.route = Some(Arc::clone(&route.name));
        }
        if let Some(limit) = &route.limit
            && let Err(wait) = limit.check(head, client.socket.ip())
        {
            return Err(response::rate_limited(wait));
        }
        let pool = match &route.target {
            RouteTarget::Pools(split) => {
                split.pick(head, client.socket.ip()).ok_or_else(no_route)?
            }
            RouteTarget::Redirect { status, location } => {
                let https = client.tls.is_some();
                let location = route_action::redirect_location(
                    location,
                    head,
                    host.unwrap_or_default(),
                    https,
                );
                return Err(response::redirect(*status, &location));
            }
            RouteTarget::Respond {
                status,
                body,
                content_type,
            } => return Err(response::fixed(*status, body.clone(), content_type.clone())),
        };
        if let Some(rewrite) = &route.rewrite {
            route_action::rewrite_path(head, route, rewrite);
        }
        Ok(Routed {
            authority,
            forwarding: *table.forwarding(),
            pool: Arc::clone(pool),
            retry: Arc::clone(&route.retry),
            max_body_size: route.max_body_size,
            timeout: route.timeout,
            upgrades: Arc::clone(&route.upgrades),
            filters: Arc::clone(&route.filters),
            limits: *limits,
        })
    }

    /// The attempts step: the ranked candidates in turn (as many as the
    /// route's `max-attempts`), each attempt's failure, or a response
    /// with a retried status, judged by the route's retry policy.
    async fn attempts(
        &self,
        pool: &BackendPool,
        choice: &Choice,
        mut request: Request<RequestBody>,
        bounds: Bounds<'_>,
        exchange: &mut Exchange,
    ) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
        let Bounds {
            deadline,
            policy,
            limits,
        } = bounds;
        policy.record_request();
        let idempotent = request.method().is_idempotent();
        // What a retry of a sent request needs: the head and the body as
        // first sent, kept only where the route retries such requests.
        let kept = policy.replay_buffer(pool.speaks_http2()).map(|limit| {
            let body = request.body_mut().keep(limit);
            (
                copy_head(request.headers(), request.method(), request.uri()),
                body,
            )
        });
        let again = |kept: &Option<(Request<()>, KeptBody)>| {
            let (head, body) = kept.as_ref()?;
            let body = body.replay(limits.request_body_timeout)?;
            let (parts, ()) = copy_head(head.headers(), head.method(), head.uri()).into_parts();
            Some(Request::from_parts(parts, body))
        };
        let replayable = |kept: &Option<(Request<()>, KeptBody)>| {
            kept.as_ref().is_some_and(|(_, body)| body.is_whole())
        };
        let max_attempts = usize::try_from(policy.max_attempts(pool.settings().max_attempts))
            .unwrap_or(usize::MAX);
        let candidates: Vec<&Backend> = choice.backends().take(max_attempts).collect();
        let mut pending = Some(request);
        for (number, backend) in candidates.iter().enumerate() {
            let last = number + 1 == candidates.len();
            let mut resent = false;
            loop {
                let Some(request) = pending.take() else {
                    return Err(response::local(StatusCode::BAD_GATEWAY, "backend failed"));
                };
                let attempt = Attempt {
                    pool,
                    backend,
                    connections: &self.connections,
                    new_connection: resent,
                    deadline,
                    per_try_timeout: policy.per_try_timeout(),
                };
                let context = |replayable| RetryContext {
                    idempotent,
                    replayable,
                    resent,
                };
                let sent_at = tokio::time::Instant::now();
                if let Some(entry) = exchange.entry() {
                    entry.backend = Some(backend.id.clone());
                }
                let failed = match attempt.run(request).await {
                    Ok(response) => {
                        if let Some(entry) = exchange.entry() {
                            entry.upstream_duration = Some(sent_at.elapsed());
                        }
                        let status = response.status().as_u16();
                        if last || !policy.retries_status(status) {
                            return Ok(client_response(response, choice, backend));
                        }
                        // A body the backend did not read to its end is
                        // not whole, and not sent again.
                        match policy.decide_status(status, context(replayable(&kept))) {
                            RetryDecision::NextCandidate(reason) => {
                                count_retry(pool, reason);
                                exchange.retried();
                                tracing::debug!(pool = %pool.name(), backend = %backend.id, status, "retrying on the next candidate");
                                pending = again(&kept);
                                break;
                            }
                            RetryDecision::BudgetExhausted => {
                                count_budget_exhausted(pool);
                                return Ok(client_response(response, choice, backend));
                            }
                            _ => return Ok(client_response(response, choice, backend)),
                        }
                    }
                    Err(failed) => failed,
                };
                // The last candidate has no next one: only the free resend
                // on a new connection is left, and the budget is not asked.
                let decision = match policy.decide_resend(&failed.failure, context(false)) {
                    Some(resend) => resend,
                    None if last => RetryDecision::Stop,
                    None => policy.decide(&failed.failure, context(replayable(&kept))),
                };
                let error = crate::error_chain(&failed.cause);
                let next = match failed.unsent {
                    Some(unsent) => Some(unsent),
                    // hyper drops a refused stream's body on a task of its
                    // own: wait for what it left unread.
                    None if failed.failure.kind == FailureKind::Refused => {
                        again_released(&kept, limits.request_body_timeout).await
                    }
                    None => again(&kept),
                };
                match (decision, next) {
                    (RetryDecision::SameBackendNewConnection, Some(next)) => {
                        tracing::debug!(backend = %backend.id, %error, "reused connection was dead, sending again on a new one");
                        metrics::counter!(crate::metrics::UPSTREAM_RESENT, "pool" => pool.name().to_string())
                            .increment(1);
                        resent = true;
                        exchange.retried();
                        pending = Some(next);
                    }
                    (RetryDecision::NextCandidate(reason), Some(next)) => {
                        tracing::warn!(pool = %pool.name(), backend = %backend.id, %error, "trying next backend");
                        count_retry(pool, reason);
                        exchange.retried();
                        pending = Some(next);
                        break;
                    }
                    (decision, _) => {
                        if decision == RetryDecision::BudgetExhausted {
                            count_budget_exhausted(pool);
                        }
                        tracing::warn!(pool = %pool.name(), backend = %backend.id, %error, "backend failed");
                        return Err(failure_response(&failed.failure, &failed.cause));
                    }
                }
            }
        }
        Err(response::local(
            StatusCode::BAD_GATEWAY,
            "no backend could be reached",
        ))
    }
}

/// The request again, as [`KeptBody::replay_released`] gives its body.
async fn again_released(
    kept: &Option<(Request<()>, KeptBody)>,
    timeout: std::time::Duration,
) -> Option<Request<RequestBody>> {
    let (head, body) = kept.as_ref()?;
    let body = body.replay_released(timeout).await?;
    let (parts, ()) = copy_head(head.headers(), head.method(), head.uri()).into_parts();
    Some(Request::from_parts(parts, body))
}

/// The client's answer when the last attempt failed.
fn failure_response(failure: &AttemptFailure, cause: &AttemptCause) -> Response<ProxyBody> {
    match failure.kind {
        FailureKind::ResponseTimeout => response::local(
            StatusCode::GATEWAY_TIMEOUT,
            "backend did not answer in time",
        ),
        FailureKind::ClientBody if is_body_too_large(cause) => {
            response::local(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
        }
        FailureKind::ClientBody if is_body_timeout(cause) => response::local(
            StatusCode::REQUEST_TIMEOUT,
            "the request body stopped arriving",
        ),
        FailureKind::ClientBody => {
            response::local(StatusCode::BAD_REQUEST, "malformed request body")
        }
        FailureKind::Connect => {
            response::local(StatusCode::BAD_GATEWAY, "no backend could be reached")
        }
        _ => response::local(StatusCode::BAD_GATEWAY, "backend failed"),
    }
}

fn count_retry(pool: &BackendPool, reason: RetryReason) {
    metrics::counter!(crate::metrics::HTTP_RETRIES, "pool" => pool.name().to_string(), "reason" => reason.label())
        .increment(1);
}

fn count_budget_exhausted(pool: &BackendPool) {
    metrics::counter!(crate::metrics::HTTP_RETRY_BUDGET_EXHAUSTED, "pool" => pool.name().to_string())
        .increment(1);
}

/// A head with `method`, `uri` and `headers` (a request head's extensions
/// are not `Clone`, so it is built again rather than cloned).
fn copy_head(headers: &http::HeaderMap, method: &http::Method, uri: &http::Uri) -> Request<()> {
    let mut head = Request::new(());
    *head.method_mut() = method.clone();
    *head.uri_mut() = uri.clone();
    *head.version_mut() = Version::HTTP_11;
    *head.headers_mut() = headers.clone();
    head
}

/// The prepare-head step: the request head as the backend should see it
/// (HTTP/1.1, framing re-emitted from what was parsed, no hop-by-hop
/// headers but `TE: trailers`, `X-Forwarded-*` set). An upgrade the route
/// allows (`websocket` by default) is asked of the backend again
/// (`Connection: upgrade`, `Upgrade`); `h2c` is dropped, as any server
/// may ignore it, and the request served as HTTP/1.1; any other upgrade is
/// refused with 501 (forwarding it without `Upgrade` would silently turn a
/// WebSocket handshake into a plain GET). A transfer coding other than
/// `chunked` is refused with 501 rather than forwarded without it.
fn prepare_head(
    head: &mut http::request::Parts,
    client: &ClientAddress,
    authority: Option<&Authority>,
    upgrades: &[String],
    forwarding: &Forwarding,
) -> Result<(), Response<ProxyBody>> {
    let from_h2 = head.version == Version::HTTP_2;
    head.version = Version::HTTP_11;
    let headers = &mut head.headers;
    let chunked = framing::request_is_chunked(headers).map_err(|coding| {
        response::local(
            StatusCode::NOT_IMPLEMENTED,
            &format!("transfer coding `{coding}` is not supported"),
        )
    })?;
    if from_h2 {
        framing::downgrade_h2_fields(headers)
            .map_err(|reason| response::local(StatusCode::BAD_REQUEST, reason))?;
    }
    let hop: HopRequest = header_rules::remove_hop_by_hop(headers);
    // An HTTP/2 extended CONNECT (RFC 8441) asks for its `:protocol`.
    let extended = from_h2
        .then(|| super::extended_connect::protocol(&head.extensions))
        .flatten();
    let asked: Vec<&String> = hop
        .upgrade
        .iter()
        .chain(extended.as_ref())
        .filter(|p| !p.starts_with(H2C))
        .collect();
    if let Some(protocol) = asked.iter().find(|p| !upgrades.contains(p)) {
        tracing::debug!(%protocol, "upgrade refused");
        return Err(response::local(
            StatusCode::NOT_IMPLEMENTED,
            &format!("upgrade to `{protocol}` is not enabled on this route"),
        ));
    }
    header_rules::forward_trailers(headers, &hop);
    if !asked.is_empty() {
        let protocols = asked
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let upgrade = HeaderValue::from_str(&protocols)
            .map_err(|_| response::local(StatusCode::BAD_REQUEST, "invalid Upgrade"))?;
        headers.insert(http::header::UPGRADE, upgrade);
        let connection = if hop.accepts_trailers {
            "upgrade, te"
        } else {
            "upgrade"
        };
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static(connection),
        );
        if extended.as_deref() == Some("websocket") {
            headers.insert(
                http::header::SEC_WEBSOCKET_KEY,
                super::extended_connect::websocket_key(),
            );
        }
    }
    framing::reemit(headers, chunked);
    // The host as the client sent it, port included (NGINX's `$http_host`).
    let host = authority.map(|a| match a.port {
        Some(port) => std::borrow::Cow::Owned(format!("{}:{port}", a.host)),
        None => std::borrow::Cow::Borrowed(a.host.as_str()),
    });
    headers::add_forwarded(headers, client, host.as_deref(), from_h2, forwarding);
    Ok(())
}

/// The target and prepare-head steps alone, as the proxy runs them on a
/// request it routes: what the fuzz target (`fuzz/`) and a property test
/// drive with arbitrary heads. Returns the authority the request would be routed on, or the
/// status it would be refused with.
pub fn prepare_for_routing(
    head: &mut http::request::Parts,
    paths: &PathPolicy,
    client: &ClientAddress,
) -> Result<Option<Authority>, StatusCode> {
    let authority = target::decide(head, paths).map_err(|refused| answer(refused).status())?;
    let websocket = ["websocket".to_owned()];
    prepare_head(
        head,
        client,
        authority.as_ref(),
        &websocket,
        &Forwarding::default(),
    )
    .map_err(|refused| refused.status())?;
    Ok(authority)
}

/// The request-filter step: the route's filters in order. Stops with the
/// answer to send instead of forwarding: a filter's own, or 500 when one
/// failed.
fn filter_request(
    filters: &[Arc<dyn HeaderFilter>],
    request: &mut RequestView,
    exchange: &mut Exchange,
) -> Result<(), Response<ProxyBody>> {
    for filter in filters {
        let verdict = filter.on_request(request);
        if let (Some(entry), Ok(FilterVerdict::Respond(_)) | Err(_)) = (exchange.entry(), &verdict)
        {
            let how = if verdict.is_ok() { "respond" } else { "failed" };
            entry.verdict = Some(format!("{}:{how}", filter.name()));
        }
        match verdict {
            Ok(FilterVerdict::Forward) => {}
            Ok(FilterVerdict::Respond(answer)) => return Err(response::from_filter(answer)),
            Err(error) => {
                // Logged, at a bounded rate, where the plugin failed.
                tracing::debug!(filter = filter.name(), error = %crate::error_chain(&error), "request filter failed");
                return Err(response::local(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "request filter failed",
                ));
            }
        }
    }
    Ok(())
}

/// What each of the route's filters keeps for its response phase, in
/// filter order; `None` when no filter has one (nothing is allocated).
fn keep_for_response(
    filters: &[Arc<dyn HeaderFilter>],
    request: &RequestView,
) -> Option<Vec<Option<KeptRequest>>> {
    let mut kept: Option<Vec<Option<KeptRequest>>> = None;
    for (index, filter) in filters.iter().enumerate() {
        let Some(one) = filter.keep_for_response(request) else {
            continue;
        };
        // The list is allocated only once a filter keeps something: a route
        // whose filters edit requests only pays nothing here.
        let list = kept.get_or_insert_with(|| filters.iter().map(|_| None).collect());
        if let Some(slot) = list.get_mut(index) {
            *slot = Some(one);
        }
    }
    kept
}

/// The response-filter step: the route's filters in reverse order; a
/// failing filter turns the response into a 500 (the backend's body is
/// dropped).
fn filter_response(
    filters: &[Arc<dyn HeaderFilter>],
    kept: Vec<Option<KeptRequest>>,
    mut response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let status = response.status();
    for (filter, kept) in filters.iter().zip(kept).rev() {
        let Some(kept) = kept else { continue };
        if let Err(error) = filter.on_response(kept, status, response.headers_mut()) {
            tracing::debug!(filter = filter.name(), error = %crate::error_chain(&error), "response filter failed");
            return response::local(StatusCode::INTERNAL_SERVER_ERROR, "response filter failed");
        }
    }
    response
}

/// The head back out of the view: moved, as nothing else holds it once
/// balancing is done (a balancer sees it for one call only).
fn into_head(view: RequestView) -> http::request::Parts {
    match view.http {
        Some(head) => Arc::try_unwrap(head).unwrap_or_else(|shared| (*shared).clone()),
        // Views built here always carry a head.
        None => Request::new(()).into_parts().0,
    }
}

/// A backend's response as the client gets it: hop-by-hop headers gone,
/// the balancer's affinity cookie naming the backend that served.
fn client_response(
    response: Response<UpstreamBody>,
    choice: &Choice,
    backend: &Backend,
) -> Response<ProxyBody> {
    let mut response = response.map(Either::Left);
    framing::drop_length_of_chunked(response.headers_mut());
    let hop = header_rules::remove_hop_by_hop(response.headers_mut());
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Ok(upgrade) = HeaderValue::from_str(&hop.upgrade.join(", "))
    {
        // The switch is this hop's business too: the client must see it.
        let headers = response.headers_mut();
        headers.insert(http::header::UPGRADE, upgrade);
        headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
    }
    if let Some(cookie) = choice.affinity().and_then(|c| c.set_cookie(&backend.token)) {
        response
            .headers_mut()
            .append(http::header::SET_COOKIE, cookie);
    }
    response
}

/// The proxy's own answer for a request the target step did not let
/// through.
fn answer(answer: Answer) -> Response<ProxyBody> {
    match answer {
        Answer::Refuse(refusal) => {
            tracing::debug!(status = %refusal.status, reason = %refusal.reason, "request refused");
            let mut response = response::local(refusal.status, &refusal.reason);
            if let Some(allow) = refusal.allow {
                response
                    .headers_mut()
                    .insert(http::header::ALLOW, HeaderValue::from_static(allow));
            }
            response
        }
        Answer::ServerOptions => {
            let mut response = response::empty(StatusCode::OK);
            response.headers_mut().insert(
                http::header::ALLOW,
                HeaderValue::from_static(target::ALLOWED_METHODS),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests;
