//! `POST /reload`: the config file read again and applied, as SIGHUP does.

use http::StatusCode;
use serde_json::json;

use super::reply::{self, Reply};
use crate::control::{ReloadError, WeakServerHandle};

/// Answers the new generation, or every error (file, line, field) with the
/// old config still serving.
pub async fn reload(control: Option<&WeakServerHandle>) -> Reply {
    let Some(handle) = control.and_then(WeakServerHandle::upgrade) else {
        return reply::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "this server takes no reloads",
        );
    };
    match handle.reload().await {
        Ok(reloaded) => reply::json(
            StatusCode::OK,
            &json!({
                "reloaded": true,
                "generation": reloaded.generation,
                "added-listeners": reloaded.added.iter().map(|listener| json!({
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
            reply::json(
                status,
                &json!({ "reloaded": false, "errors": error.messages() }),
            )
        }
    }
}
