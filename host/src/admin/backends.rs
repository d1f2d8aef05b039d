//! Changing a backend by hand: `POST .../drain` (no new work; what is in
//! flight finishes), `POST .../undrain`, and `PUT .../weight` with
//! `{"weight": N}` (`null`: the configured weight again). Each change is
//! published at once, so `/status`, metrics and the next requests see it;
//! a reload ends a weight set here.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::reply::{self, Reply};
use crate::plan::Plan;
use crate::upstream::BackendPool;

/// The largest `PUT .../weight` body read.
const MAX_BODY: usize = 1024;

/// The highest weight the API sets, as the config allows.
const MAX_WEIGHT: u64 = 1_000_000;

/// What a path under `/pools/` asks of which backend.
struct Target<'a> {
    pool: &'a str,
    backend: &'a str,
    action: &'a str,
}

/// Handles `/pools/POOL/backends/BACKEND/ACTION`.
pub async fn handle(request: http::Request<hyper::body::Incoming>, plan: &Plan) -> Reply {
    let path = request.uri().path().to_owned();
    let parts: Vec<&str> = path.split('/').collect();
    let target = match parts.as_slice() {
        ["", "pools", pool, "backends", backend, action] => Target {
            pool,
            backend,
            action,
        },
        _ => return reply::not_found(),
    };
    let method = match target.action {
        "drain" | "undrain" => Method::POST,
        "weight" => Method::PUT,
        _ => return reply::not_found(),
    };
    if request.method() != method {
        return reply::use_method(&method);
    }
    let Some(pool) = plan.pools().iter().find(|p| &**p.name() == target.pool) else {
        return reply::text(StatusCode::NOT_FOUND, format!("no pool `{}`", target.pool));
    };
    if pool.backends().position(target.backend).is_none() {
        return reply::text(
            StatusCode::NOT_FOUND,
            format!("no backend `{}` in pool `{}`", target.backend, target.pool),
        );
    }
    match target.action {
        "weight" => match read_weight(request.into_body()).await {
            Ok(weight) => reweigh(pool, target.backend, weight).await,
            Err(message) => reply::text(StatusCode::BAD_REQUEST, message),
        },
        action => drain(pool, target.backend, action == "drain"),
    }
}

fn drain(pool: &BackendPool, backend: &str, drained: bool) -> Reply {
    let backends = pool.backends();
    let Some(found) = backends.by_id(backend) else {
        return reply::not_found();
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
    reply::text(StatusCode::OK, found.stats.health().label())
}

/// `{"weight": N}` (1 to [`MAX_WEIGHT`]) or `{"weight": null}`.
async fn read_weight(body: hyper::body::Incoming) -> Result<Option<u32>, String> {
    let bytes: Bytes = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|_| format!("the body must be JSON of at most {MAX_BODY} bytes"))?
        .to_bytes();
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|error| format!("the body is not JSON: {error}"))?;
    match value.get("weight") {
        Some(Value::Null) => Ok(None),
        Some(weight) => weight
            .as_u64()
            .filter(|weight| (1..=MAX_WEIGHT).contains(weight))
            .and_then(|weight| u32::try_from(weight).ok())
            .map(Some)
            .ok_or_else(|| format!("`weight` must be an integer from 1 to {MAX_WEIGHT}, or null")),
        None => Err("expected {\"weight\": N} (or null for the configured weight)".to_owned()),
    }
}

/// Publishes the new weight (off the async threads: the balancer learns
/// it, which may rebuild a table) and answers the backend's weights.
async fn reweigh(pool: &Arc<BackendPool>, backend: &str, weight: Option<u32>) -> Reply {
    let publishing = Arc::clone(pool);
    let id = backend.to_owned();
    let published = tokio::task::spawn_blocking(move || publishing.reweigh(&id, weight)).await;
    if !matches!(published, Ok(true)) {
        return reply::text(StatusCode::CONFLICT, "the backend left its pool meanwhile");
    }
    tracing::info!(pool = %pool.name(), backend, ?weight, "weight set by hand");
    let backends = pool.backends();
    let Some(found) = backends.by_id(backend) else {
        return reply::not_found();
    };
    reply::json(
        StatusCode::OK,
        &json!({
            "weight": found.weight,
            "configured-weight": found.configured_weight,
            "overridden": found.weight_overridden(),
        }),
    )
}
