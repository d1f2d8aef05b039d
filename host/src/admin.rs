//! The admin listener: the status page at `/`, `/metrics` in Prometheus
//! text format, the JSON API (`/status`, `/config`, `POST /reload`,
//! `POST /pools/POOL/backends/ID/drain` and `/undrain`,
//! `PUT /pools/POOL/backends/ID/weight`) and `/healthz`.
//!
//! With `[admin] token` set, every request but the status page's own HTML
//! (which holds no data and asks for the token) must carry it as a bearer
//! token. A non-loopback admin address without a token is refused at
//! load; should the listener find itself on one without a token anyway
//! (a reload dropped it), it answers nothing but 401.

mod auth;
mod backends;
mod config_view;
mod page;
mod recent;
mod reload;
mod reply;
mod status;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::control::WeakServerHandle;
use crate::plan::Plan;
use recent::RecentTraffic;
use reply::Reply;

/// What every admin request may use.
struct Admin {
    plan: Arc<ArcSwap<Plan>>,
    metrics: Option<PrometheusHandle>,
    control: Arc<OnceLock<WeakServerHandle>>,
    recent: RecentTraffic,
    /// Where the listener is bound: off loopback a token is a must.
    address: Option<SocketAddr>,
}

/// Serves admin requests on `listener` until `stop` fires; `control`
/// reaches the control task, for `POST /reload`, once one owns the server.
pub async fn serve(
    listener: Arc<TcpListener>,
    plan: Arc<ArcSwap<Plan>>,
    metrics: Option<PrometheusHandle>,
    control: Arc<OnceLock<WeakServerHandle>>,
    stop: watch::Receiver<()>,
) {
    let admin = Arc::new(Admin {
        address: listener.local_addr().ok(),
        plan,
        metrics,
        control,
        recent: RecentTraffic::new(),
    });
    let respond = {
        let admin = Arc::clone(&admin);
        move |request: Request<Incoming>| {
            let admin = Arc::clone(&admin);
            async move { admin.respond(request).await }
        }
    };
    // The sampler lives exactly as long as the listener.
    tokio::select! {
        () = crate::l7::serve_local(listener, respond, stop) => {}
        () = admin.recent.sample_forever(&admin.plan) => {}
    }
}

// === impl Admin ===

impl Admin {
    async fn respond(&self, request: Request<Incoming>) -> Reply {
        let plan = self.plan.load_full();
        let path = request.uri().path();
        if path != "/" && !self.authorized(&request, &plan) {
            let mut reply = reply::text(StatusCode::UNAUTHORIZED, "a bearer token is required");
            reply.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"bascule admin\""),
            );
            return reply;
        }
        let get = |render: &dyn Fn() -> Reply| {
            if request.method() == Method::GET || request.method() == Method::HEAD {
                render()
            } else {
                reply::use_method(&Method::GET)
            }
        };
        match path {
            "/" => get(&page::render),
            "/metrics" => get(&|| self.metrics_text(&plan)),
            "/status" => get(&|| {
                reply::json(
                    StatusCode::OK,
                    &status::render(&plan, &self.recent.windows(&plan)),
                )
            }),
            "/config" => get(&|| reply::json(StatusCode::OK, &config_view::render(&plan))),
            "/healthz" => get(&|| reply::text(StatusCode::OK, "ok")),
            "/reload" if request.method() == Method::POST => {
                reload::reload(self.control.get()).await
            }
            "/reload" => reply::use_method(&Method::POST),
            path if path.starts_with("/pools/") => backends::handle(request, &plan).await,
            _ => reply::not_found(),
        }
    }

    /// Whether `request` may be served: it carries the token when one is
    /// set; without one, only on a loopback address.
    fn authorized(&self, request: &Request<Incoming>, plan: &Plan) -> bool {
        match plan.admin_token() {
            Some(token) => auth::carries(request.headers(), token),
            None => self
                .address
                .is_some_and(|address| address.ip().is_loopback()),
        }
    }

    fn metrics_text(&self, plan: &Plan) -> Reply {
        let Some(handle) = &self.metrics else {
            return reply::text(
                StatusCode::SERVICE_UNAVAILABLE,
                "metrics recorder unavailable",
            );
        };
        crate::metrics::collect_process();
        // Read now rather than kept current per request: the requests in
        // flight are an atomic each backend already counts.
        for pool in plan.pools() {
            for backend in &pool.backends().backends {
                metrics::gauge!(
                    crate::metrics::UPSTREAM_ACTIVE,
                    "pool" => pool.name().to_string(),
                    "backend" => backend.id.clone(),
                )
                .set(f64::from(backend.stats.active()));
            }
        }
        handle.run_upkeep();
        let mut body = handle.render();
        body.push_str(&crate::metrics::render_histograms());
        reply::with(StatusCode::OK, "text/plain; version=0.0.4", body)
    }
}
