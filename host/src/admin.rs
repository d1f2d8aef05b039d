//! The admin listener: `/metrics` in Prometheus text format, `/status` (the
//! running plan as JSON), `/healthz`, and draining a backend by hand:
//! `POST /pools/NAME/backends/ID/drain` (no new work; what is in flight
//! finishes) and `.../undrain`.

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
            crate::metrics::collect_process();
            handle.run_upkeep();
            let mut body = handle.render();
            body.push_str(&crate::metrics::render_histograms());
            text(StatusCode::OK, "text/plain; version=0.0.4", body)
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
        (path, _) if path.starts_with("/pools/") => drain(request, plan),
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_owned(),
        ),
    }
}

/// `POST /pools/NAME/backends/ID/drain` or `/undrain`.
fn drain(request: &Request<Incoming>, plan: &Plan) -> Response<Full<Bytes>> {
    let parts: Vec<&str> = request.uri().path().split('/').collect();
    let (pool, backend, drained) = match parts.as_slice() {
        ["", "pools", pool, "backends", backend, "drain"] => (*pool, *backend, true),
        ["", "pools", pool, "backends", backend, "undrain"] => (*pool, *backend, false),
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "text/plain",
                "not found\n".to_owned(),
            );
        }
    };
    if request.method() != http::Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use POST\n".to_owned(),
        );
    }
    let Some(pool) = plan.pools().iter().find(|p| &**p.name() == pool) else {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no pool `{pool}`\n"),
        );
    };
    let backends = pool.backends();
    let Some(found) = backends.backends.iter().find(|b| b.id == backend) else {
        return text(
            StatusCode::NOT_FOUND,
            "text/plain",
            format!("no backend `{backend}` in pool `{}`\n", pool.name()),
        );
    };
    if let Some(transition) = found.stats.set_drained(drained) {
        let reason = if drained {
            "drained by hand"
        } else {
            "undrained by hand"
        };
        crate::health::report(pool, &found.id, transition.from, transition.to, reason);
        pool.health_changed();
    }
    text(
        StatusCode::OK,
        "text/plain",
        format!("{}\n", found.stats.health().label()),
    )
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
