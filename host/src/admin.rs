//! The admin listener: `/metrics` in Prometheus text format, `/status` (the
//! running plan as JSON), `/healthz`, and draining a backend by hand:
//! `POST /pools/NAME/backends/ID/drain` (no new work; what is in flight
//! finishes) and `.../undrain`, and `POST /reload`.

mod status;

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::control::{ReloadError, WeakServerHandle};
use crate::plan::Plan;

/// Serves admin requests on `listener` until `stop` fires; `control`
/// reaches the control task, for `POST /reload`, once one owns the server.
pub async fn serve(
    listener: Arc<TcpListener>,
    plan: Arc<ArcSwap<Plan>>,
    metrics: Option<PrometheusHandle>,
    control: Arc<OnceLock<WeakServerHandle>>,
    stop: watch::Receiver<()>,
) {
    let respond = move |request: Request<Incoming>| {
        let (plan, metrics, control) = (Arc::clone(&plan), metrics.clone(), Arc::clone(&control));
        async move {
            if request.uri().path() == "/reload" {
                reload(request.method(), control.get()).await
            } else {
                respond(&request, &plan.load(), metrics.as_ref())
            }
        }
    };
    crate::l7::serve_local(listener, respond, stop).await;
}

/// `POST /reload`: the config file read again and applied, as SIGHUP does.
/// Answers the new generation, or every error (file, line, field) with the
/// old config still serving.
async fn reload(
    method: &http::Method,
    control: Option<&WeakServerHandle>,
) -> Response<Full<Bytes>> {
    if method != http::Method::POST {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use POST\n".to_owned(),
        );
    }
    let Some(handle) = control.and_then(WeakServerHandle::upgrade) else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "this server takes no reloads\n".to_owned(),
        );
    };
    let (status, body) = match handle.reload().await {
        Ok(reloaded) => (
            StatusCode::OK,
            serde_json::json!({
                "reloaded": true,
                "generation": reloaded.generation,
                "added-listeners": reloaded.added.iter().map(|listener| serde_json::json!({
                    "name": &*listener.name,
                    "address": listener.address.to_string(),
                })).collect::<Vec<_>>(),
            }),
        ),
        Err(error) => {
            let status = match error {
                ReloadError::Load(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ReloadError::Apply(_) => StatusCode::INTERNAL_SERVER_ERROR,
                ReloadError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            };
            let message = crate::error_chain(&error);
            let errors: Vec<&str> = message
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty())
                .collect();
            (
                status,
                serde_json::json!({ "reloaded": false, "errors": errors }),
            )
        }
    };
    text(status, "application/json", format!("{body:#}\n"))
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
