//! What every accept loop of the hub (clients, workers, admin) does when accepting fails.

use std::time::Duration;

/// Pause after a failed accept (out of descriptors, say) before trying again, so the loop
/// does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Logs a failed accept on the `what` listener and waits a moment before the next.
pub(crate) async fn pause_after(e: std::io::Error, what: &str) {
    tracing::warn!(error = %e, listener = what, "accept failed");
    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
}
