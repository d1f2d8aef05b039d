//! The admin listener: `/metrics` in Prometheus text format, `/status` (the
//! running plan as JSON) and `/healthz`.

mod status;

use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::plan::Plan;

/// Serves admin requests on `listener` until `stop` fires.
pub async fn serve(
    listener: Arc<TcpListener>,
    plan: Arc<ArcSwap<Plan>>,
    metrics: Option<PrometheusHandle>,
    stop: watch::Receiver<()>,
) {
    let respond =
        move |request: Request<Incoming>| respond(&request, &plan.load(), metrics.as_ref());
    crate::l7::serve_local(listener, respond, stop).await;
}

fn respond(
    request: &Request<Incoming>,
    plan: &Plan,
    metrics: Option<&PrometheusHandle>,
) -> Response<Full<Bytes>> {
    match (request.uri().path(), metrics) {
        ("/metrics", Some(handle)) => {
            handle.run_upkeep();
            text(StatusCode::OK, "text/plain; version=0.0.4", handle.render())
        }
        ("/metrics", None) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "metrics recorder unavailable\n".to_owned(),
        ),
        ("/status", _) => text(
            StatusCode::OK,
            "application/json",
            format!("{:#}\n", status::render(plan)),
        ),
        ("/healthz", _) => text(StatusCode::OK, "text/plain", "ok\n".to_owned()),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    }
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
