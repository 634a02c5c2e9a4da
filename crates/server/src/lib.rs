//! The HTTP adapter over the application (`cardguard-app`): routes, request bodies and
//! their validation, credentials from the `Authorization` header, the OpenAPI document, and
//! the mapping of domain results and errors to JSON and status codes; [`pages`] holds the
//! cardholder's answer page.
//!
//! [`serve`] runs the API on a listener the caller bound (tests bind port 0) until the
//! shutdown future resolves, then writes a snapshot; [`listener`] holds the connection
//! limits and timeouts.

pub mod api;
pub mod challenge;
pub mod client;
pub mod listener;
pub mod pages;

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
        max_document: usize::try_from(app.config.cases.claim_document_max_bytes)
            .unwrap_or(usize::MAX),
        body_timeout: std::time::Duration::from_millis(app.config.server.body_timeout_ms),
        app: Arc::clone(&app),
        keys: Arc::new(keys),
    };
    let limits = listener::Limits::from_config(&app.config.server);
    let metrics_app = Arc::clone(&app);
    listener::run(
        listener,
        api::router(ctx),
        limits,
        move || metrics_app.metrics.connection_refused(),
        shutdown,
    )
    .await?;
    let a = Arc::clone(&app);
    tokio::task::spawn_blocking(move || a.snapshot_now())
        .await
        .map_err(std::io::Error::other)?;
    Ok(())
}
