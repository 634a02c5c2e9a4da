//! The transport crate: the only one that knows HTTP. It owns the configuration, the key
//! ring, the card registry, the application core ([`service::App`]) and the routes.
//!
//! [`serve`] runs the API on a listener the caller bound (tests bind port 0) until the
//! shutdown future resolves, then writes a snapshot.

pub mod api;
pub mod client;
pub mod config;
pub mod keys;
pub mod metrics;
pub mod registry;
pub mod service;

pub use api::auth::{ApiKeys, Scope};
pub use config::Config;
pub use service::{App, OpenSummary};

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
