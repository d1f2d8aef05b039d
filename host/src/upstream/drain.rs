//! How long work on a leaving backend may go on: TCP connections and HTTP
//! response bodies in progress end `drain-timeout` after their backend
//! left (removed by a reload, ejected, failing its checks, drained by
//! hand), unless it comes back first.

use std::time::Duration;

use tokio::sync::watch;

/// Completes once the backend `leaving` watches has been leaving for
/// `grace` without coming back; never when its stats are gone.
pub async fn drained(mut leaving: watch::Receiver<bool>, grace: Duration) {
    loop {
        let left = leaving.wait_for(|leaving| *leaving).await.is_ok();
        if !left {
            // The stats are gone, so is any reason to drain.
            return std::future::pending().await;
        }
        tokio::select! {
            () = tokio::time::sleep(grace) => return,
            back = async { leaving.wait_for(|leaving| !*leaving).await.is_ok() } => {
                if !back {
                    return std::future::pending().await;
                }
            }
        }
    }
}
