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
        let pool = {
            let plan = self.plan.load();
            let path = info.http.as_ref().map_or("/", |p| p.uri.path());
            plan.listener(&self.listener)
                .and_then(|listener| listener.routes.http()?.find(host.as_deref(), path))
                .cloned()
        };
        let Some(pool) = pool else {
            return response::local(StatusCode::NOT_FOUND, "no route matches this request");
        };
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
        let request = upstream_request(Request::from_parts(parts, body), client, host.as_deref());
        self.forward(&pool, &choice, request).await
    }

    async fn forward(
        &self,
        pool: &BackendPool,
        choice: &Choice,
        request: Request<Incoming>,
    ) -> Response<ProxyBody> {
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
                return response::local(
                    StatusCode::GATEWAY_TIMEOUT,
                    "backend did not answer in time",
                );
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
                    return response;
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
                    return response::local(StatusCode::BAD_GATEWAY, "backend failed");
                }
            }
        }
        response::local(StatusCode::BAD_GATEWAY, "no backend could be reached")
    }
}

/// The request as the backend should see it: origin-form URI, HTTP/1.1, a
/// `Host` header, no hop-by-hop headers, `X-Forwarded-*` set.
fn upstream_request(
    mut request: Request<Incoming>,
    client: &ClientAddress,
    host: Option<&str>,
) -> Request<Incoming> {
    let authority = request.uri().authority().cloned();
    if authority.is_some() || request.uri().scheme().is_some() {
        *request.uri_mut() = origin_form(request.uri());
    }
    *request.version_mut() = Version::HTTP_11;
    let headers = request.headers_mut();
    headers::remove_hop_by_hop(headers);
    if !headers.contains_key(http::header::HOST)
        && let Some(value) = authority.and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    {
        headers.insert(http::header::HOST, value);
    }
    headers::add_forwarded(headers, client, "http", host);
    request
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
