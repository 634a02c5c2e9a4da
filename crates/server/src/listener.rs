//! The HTTP listener: it accepts connections up to `server.max_connections` (one more gets a
//! 503 and is closed at once), gives each its headers `server.header_timeout_ms` to arrive,
//! closes a kept-alive connection that sends no request for `server.idle_timeout_ms`, and at
//! shutdown lets the requests in flight finish. Credentials, body limits and the body's own
//! timeout are per route, in the API's gate (`api::gate`), before any body is read.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The connection limits, from `[server]`. A zero timeout is off.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    /// How long the requests in flight get at shutdown.
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn from_config(c: &cardguard_app::config::ServerConfig) -> Limits {
        let ms = |v: u64| (v > 0).then(|| Duration::from_millis(v));
        Limits {
            max_connections: c.max_connections.max(1),
            header_timeout: ms(c.header_timeout_ms),
            idle_timeout: ms(c.idle_timeout_ms),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// What the idle watch of one connection needs: requests in flight, and when the last one
/// was answered (milliseconds since the connection opened).
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    last_done_ms: AtomicU64,
}

/// Accepts and serves connections until `shutdown` resolves; then stops accepting, asks
/// every connection to finish its request in flight and close, and waits for them (at most
/// `shutdown_grace`). `refused` is called for each connection refused over the cap.
pub async fn run(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    refused: impl Fn() + Send + Sync + 'static,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = JoinSet::new();
    let refused = Arc::new(refused);
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, _peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors or a connection reset before accept: wait a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Answers are small and latency-bound: no Nagle delay.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY");
        }
        match Arc::clone(&open).try_acquire_owned() {
            Ok(permit) => {
                let router = router.clone();
                let stop = stop_rx.clone();
                conns.spawn(async move {
                    serve_connection(tcp, router, limits, stop).await;
                    drop(permit);
                });
            }
            Err(_) => {
                refused();
                conns.spawn(refuse(tcp));
            }
        }
    }
    let _ = stop_tx.send(true);
    let all_done = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.shutdown_grace, all_done)
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace: closing them");
        conns.abort_all();
    }
    Ok(())
}

/// Tells a connection over the cap so (a 503 with the API's error body), and closes it.
async fn refuse(mut tcp: TcpStream) {
    let body = r#"{"error":{"code":"unavailable","message":"too many open connections: try again, or reuse a connection"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        tcp.write_all(answer.as_bytes()).await?;
        tcp.shutdown().await
    })
    .await;
}

async fn serve_connection(
    tcp: TcpStream,
    router: Router,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let opened = Instant::now();
    let activity = Arc::new(Activity::default());
    let act = Arc::clone(&activity);
    let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let mut router = router.clone();
        let act = Arc::clone(&act);
        act.in_flight.fetch_add(1, Ordering::SeqCst);
        // A benchmark asks where the time of a request goes: when the server had it and when
        // its answer was ready, on the machine's monotonic clock (shared by its processes).
        let timed = req.headers().contains_key(crate::client::TIMING_HEADER);
        let called = timed.then(crate::client::monotonic_ns);
        async move {
            let mut resp = tower_service::Service::call(&mut router, req).await;
            if let (Some(t0), Ok(r)) = (called, resp.as_mut()) {
                let t1 = crate::client::monotonic_ns();
                if let Ok(v) = axum::http::HeaderValue::from_str(&format!("{t0} {t1}")) {
                    r.headers_mut().insert(crate::client::TIMING_HEADER, v);
                }
            }
            act.last_done_ms
                .store(opened.elapsed().as_millis() as u64, Ordering::SeqCst);
            act.in_flight.fetch_sub(1, Ordering::SeqCst);
            resp
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true);
    if let Some(t) = limits.header_timeout {
        builder.header_read_timeout(t);
    }
    let conn = builder.serve_connection(TokioIo::new(tcp), svc);
    tokio::pin!(conn);
    let tick = limits.idle_timeout.map_or(Duration::from_secs(3600), |t| {
        (t / 4).max(Duration::from_millis(10))
    });
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended");
                }
                return;
            }
            _ = stop.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep(tick), if !closing && limits.idle_timeout.is_some() => {
                let idle_for = opened.elapsed().as_millis() as u64
                    - activity.last_done_ms.load(Ordering::SeqCst);
                let idle = limits.idle_timeout.is_some_and(|t| idle_for >= t.as_millis() as u64);
                if idle && activity.in_flight.load(Ordering::SeqCst) == 0 {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
