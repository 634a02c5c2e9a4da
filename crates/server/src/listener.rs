//! The HTTP listener: it accepts connections up to `server.max_connections` (one more gets a
//! 503 and is closed at once), gives a request's headers `server.header_timeout_ms` to arrive
//! once its first bytes have, closes a kept-alive connection that sends no request for
//! `server.idle_timeout_ms`, and at shutdown lets the requests in flight finish. Both
//! timeouts are kept here rather than by hyper, whose header timeout (1.6 and later) starts
//! as soon as a connection is idle and so closed a kept-alive connection after the header
//! timeout (5 s) instead of the idle one (60 s). Credentials, body limits and the body's own
//! timeout are per route, in the API's gate (`api::gate`), before any body is read.

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
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

/// What the watch of one connection needs: requests in flight, when the last one was
/// answered, and when the head of the next one started to arrive (milliseconds since the
/// connection opened, plus one; 0 while none has).
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    last_done_ms: AtomicU64,
    head_since_ms: AtomicU64,
}

/// A connection's socket, noting when bytes arrive with no request in flight: the head of
/// the next request has started, and its header timeout runs from there.
struct Watched {
    tcp: TcpStream,
    act: Arc<Activity>,
    opened: Instant,
}

impl tokio::io::AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut me.tcp).poll_read(cx, buf);
        if buf.filled().len() > before && me.act.in_flight.load(Ordering::SeqCst) == 0 {
            let now = me.opened.elapsed().as_millis() as u64 + 1;
            let _ =
                me.act
                    .head_since_ms
                    .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
        }
        r
    }
}

impl tokio::io::AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
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
        // The head is complete: its timeout is over.
        act.head_since_ms.store(0, Ordering::SeqCst);
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
    // No header timeout of hyper's: see the module's note.
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(None);
    let io = Watched {
        tcp,
        act: Arc::clone(&activity),
        opened,
    };
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    // How often the timeouts are looked at: a quarter of the shorter one (none when both
    // are off).
    let tick = [limits.idle_timeout, limits.header_timeout]
        .into_iter()
        .flatten()
        .min()
        .map(|t| (t / 4).max(Duration::from_millis(10)));
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
            () = tokio::time::sleep(tick.unwrap_or(Duration::from_secs(3600))), if !closing && tick.is_some() => {
                let now = opened.elapsed().as_millis() as u64;
                if activity.in_flight.load(Ordering::SeqCst) > 0 {
                    continue;
                }
                let head = activity.head_since_ms.load(Ordering::SeqCst);
                if head != 0 {
                    // A request's head is arriving: it has the header timeout, from its
                    // first bytes.
                    let late = limits
                        .header_timeout
                        .is_some_and(|t| (now + 1).saturating_sub(head) >= t.as_millis() as u64);
                    if late {
                        tracing::debug!("request headers too slow: connection closed");
                        return;
                    }
                    continue;
                }
                let idle_for = now.saturating_sub(activity.last_done_ms.load(Ordering::SeqCst));
                if limits.idle_timeout.is_some_and(|t| idle_for >= t.as_millis() as u64) {
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}
