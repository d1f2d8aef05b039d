//! The request path: route, choose a backend, forward, stream back.

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::connections::{SendError, UpstreamConnections};
use super::headers::{self, ClientAddress};
use super::response::{self, ProxyBody};
use crate::plan::Plan;
use crate::plugin::{FilterVerdict, WasmFilter};
use crate::upstream::{BackendPool, Choice, Protocol, RequestInfo};

/// Serves the requests of one listener against the current plan.
pub struct Proxy {
    listener: Arc<str>,
    plan: Arc<ArcSwap<Plan>>,
    connections: Arc<UpstreamConnections>,
    requests: RequestCounters,
}

/// `bascule_http_requests_total` for this listener, one counter per status
/// class, registered once so that counting a request allocates nothing.
struct RequestCounters([metrics::Counter; 5]);

// === impl Proxy ===

impl Proxy {
    /// A proxy for the listener named `listener`.
    pub fn new(
        listener: Arc<str>,
        plan: Arc<ArcSwap<Plan>>,
        connections: Arc<UpstreamConnections>,
    ) -> Self {
        Proxy {
            requests: RequestCounters::new(&listener),
            listener,
            plan,
            connections,
        }
    }

    /// Handles one request from `client`. Never fails: every problem
    /// becomes a status code.
    pub async fn handle(
        &self,
        request: Request<Incoming>,
        client: &ClientAddress,
    ) -> Response<ProxyBody> {
        let response = self.route_and_forward(request, client).await;
        self.requests.count(response.status());
        response
    }

    async fn route_and_forward(
        &self,
        request: Request<Incoming>,
        client: &ClientAddress,
    ) -> Response<ProxyBody> {
        let (parts, body) = request.into_parts();
        let mut info = RequestInfo {
            protocol: Protocol::Http,
            listener: Arc::clone(&self.listener),
            client: client.socket,
            sni: None,
            http: Some(parts),
        };
        let host = info.host();
        let route = {
            let plan = self.plan.load();
            let path = info.http.as_ref().map_or("/", |p| p.uri.path());
            plan.listener(&self.listener)
                .and_then(|listener| listener.routes.http()?.find(host.as_deref(), path))
                .map(|route| (Arc::clone(&route.pool), Arc::clone(&route.filters)))
        };
        let Some((pool, filters)) = route else {
            return response::local(StatusCode::NOT_FOUND, "no route matches this request");
        };
        if let Some(parts) = info.http.as_mut() {
            upstream_head(parts, client, host.as_deref());
        }
        if let Some(answer) = filter_request(&filters, &mut info) {
            return answer;
        }
        // Response filters ask about the request as it was sent.
        let sent = (!filters.is_empty()).then(|| info.clone());
        let choice = match pool.choose(&mut info) {
            Ok(choice) => choice,
            Err(error) => {
                tracing::warn!(error = %crate::error_chain(&error), "no backend for request");
                return response::local(StatusCode::SERVICE_UNAVAILABLE, "no backend available");
            }
        };
        let Some(parts) = info.http.take() else {
            return response::local(StatusCode::INTERNAL_SERVER_ERROR, "request head lost");
        };
        let response = match self
            .forward(&pool, &choice, Request::from_parts(parts, body))
            .await
        {
            Ok(response) => response,
            Err(local) => return local,
        };
        match sent {
            Some(mut sent) => filter_response(&filters, &mut sent, response),
            None => response,
        }
    }

    async fn forward(
        &self,
        pool: &BackendPool,
        choice: &Choice,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
        let candidates = choice.backends();
        let mut request = Some(request);
        for backend in candidates {
            let Some(unsent) = request.take() else { break };
            let connection = match self
                .connections
                .get(&backend.address, pool.settings().connect_timeout)
                .await
            {
                Ok(connection) => connection,
                Err(error) => {
                    backend.stats.record_failure();
                    crate::metrics::connect_failed(pool.name(), &backend.id);
                    tracing::warn!(pool = %pool.name(), error = %crate::error_chain(&error), "trying next backend");
                    request = Some(unsent);
                    continue;
                }
            };
            let started = Instant::now();
            let timeout = pool.settings().response_timeout;
            let sent =
                tokio::time::timeout(timeout, connection.send(unsent, backend.stats.start())).await;
            let Ok(sent) = sent else {
                backend.stats.record_failure();
                tracing::warn!(backend = %backend.address, ?timeout, "backend did not answer in time");
                return Err(response::local(
                    StatusCode::GATEWAY_TIMEOUT,
                    "backend did not answer in time",
                ));
            };
            match sent {
                Ok(response) => {
                    backend.stats.record_success(started.elapsed());
                    let mut response = client_response(response.map(Either::Left));
                    if let Some(cookie) =
                        choice.affinity().and_then(|c| c.set_cookie(&backend.token))
                    {
                        response
                            .headers_mut()
                            .append(http::header::SET_COOKIE, cookie);
                    }
                    return Ok(response);
                }
                Err(SendError {
                    error,
                    unsent: Some(unsent),
                }) => {
                    tracing::debug!(backend = %backend.address, %error, "request not sent, trying next backend");
                    request = Some(unsent);
                }
                Err(SendError {
                    error,
                    unsent: None,
                }) => {
                    backend.stats.record_failure();
                    tracing::warn!(backend = %backend.address, %error, "backend failed mid-request");
                    return Err(response::local(StatusCode::BAD_GATEWAY, "backend failed"));
                }
            }
        }
        Err(response::local(
            StatusCode::BAD_GATEWAY,
            "no backend could be reached",
        ))
    }
}

/// The request head as the backend should see it: origin-form URI,
/// HTTP/1.1, a `Host` header, no hop-by-hop headers, `X-Forwarded-*` set.
fn upstream_head(head: &mut http::request::Parts, client: &ClientAddress, host: Option<&str>) {
    let authority = head.uri.authority().cloned();
    if authority.is_some() || head.uri.scheme().is_some() {
        head.uri = origin_form(&head.uri);
    }
    head.version = Version::HTTP_11;
    let headers = &mut head.headers;
    headers::remove_hop_by_hop(headers);
    if !headers.contains_key(http::header::HOST)
        && let Some(value) = authority.and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    {
        headers.insert(http::header::HOST, value);
    }
    headers::add_forwarded(headers, client, "http", host);
}

/// Runs the route's filters over the request in order. Returns the answer
/// to send instead of forwarding, if any: a filter's own, or 500 when one
/// failed.
fn filter_request(
    filters: &[Arc<WasmFilter>],
    request: &mut RequestInfo,
) -> Option<Response<ProxyBody>> {
    for filter in filters {
        match filter.on_request(request) {
            Ok(FilterVerdict::Forward) => {}
            Ok(FilterVerdict::Respond(answer)) => return Some(response::from_filter(answer)),
            Err(error) => {
                tracing::warn!(filter = filter.name(), error = %crate::error_chain(&error), "request filter failed");
                return Some(response::local(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "request filter failed",
                ));
            }
        }
    }
    None
}

/// Runs the route's filters over a backend's response in reverse order; a
/// failing filter turns it into a 500 (the backend's body is dropped).
fn filter_response(
    filters: &[Arc<WasmFilter>],
    request: &mut RequestInfo,
    mut response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let status = response.status();
    for filter in filters.iter().rev() {
        if let Err(error) = filter.on_response(request, status, response.headers_mut()) {
            tracing::warn!(filter = filter.name(), error = %crate::error_chain(&error), "response filter failed");
            return response::local(StatusCode::INTERNAL_SERVER_ERROR, "response filter failed");
        }
    }
    response
}

/// `http://host/p?q` → `/p?q`, reusing the path's bytes.
fn origin_form(uri: &Uri) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

// === impl RequestCounters ===

impl RequestCounters {
    const CLASSES: [&'static str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

    fn new(listener: &str) -> Self {
        RequestCounters(Self::CLASSES.map(|class| {
            metrics::counter!(
                crate::metrics::HTTP_REQUESTS,
                "listener" => listener.to_owned(),
                "class" => class,
            )
        }))
    }

    fn count(&self, status: StatusCode) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        if let Some(counter) = self.0.get(class) {
            counter.increment(1);
        }
    }
}

fn client_response(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    headers::remove_hop_by_hop(response.headers_mut());
    response
}
