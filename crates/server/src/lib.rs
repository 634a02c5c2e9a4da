//! The HTTP adapter over the application (`cardguard-app`): routes, request bodies and
//! their validation, credentials from the `Authorization` header, the OpenAPI document, and
//! the mapping of domain results and errors to JSON and status codes.
//!
//! [`serve`] runs the API on a listener the caller bound (tests bind port 0) until the
//! shutdown future resolves, then writes a snapshot.

pub mod api;
pub mod client;

pub use cardguard_app::{ApiKeys, App, Config, OpenSummary, Scope};

use std::future::Future;
use std::sync::Arc;

/// Serves the API on `listener` until `shutdown` resolves, then snapshots the state.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    keys: ApiKeys,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let ctx = api::Ctx {
        max_body: app.config.server.max_body_bytes,
        app: Arc::clone(&app),
        keys: Arc::new(keys),
    };
    use axum::serve::ListenerExt;
    // Answers are small and latency-bound: no Nagle delay on the sockets.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "TCP_NODELAY");
        }
    });
    axum::serve(listener, api::router(ctx))
        .with_graceful_shutdown(shutdown)
        .await?;
    let a = Arc::clone(&app);
    tokio::task::spawn_blocking(move || a.snapshot_now())
        .await
        .map_err(std::io::Error::other)?;
    Ok(())
}
