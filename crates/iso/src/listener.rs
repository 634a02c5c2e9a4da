//! The ISO 8583 listener: TCP, each message after a 2-byte big-endian length. A connection
//! may have several requests in flight; each is answered when decided (networks match the
//! answers by STAN and RRN, which the response echoes). A frame over the size limit, or one
//! whose MTI cannot be read, closes the connection; a malformed message whose MTI can be read
//! gets DE39 30. A connection silent for the idle timeout, or stalled inside a frame for the
//! read timeout, is closed. At shutdown the listener stops reading and answers what is in
//! flight before it closes.

use crate::map;
use cardguard_app::{App, AppError, ClientId};
use cardguard_core::{Clock, SystemClock};
use cardguard_iso8583::{Message, Spec, decode, encode};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The listener's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest message accepted (its length prefix says).
    pub max_frame: usize,
    /// A connection with no message for this long is closed (networks send echo tests).
    pub idle: Duration,
    /// A frame must arrive whole within this once its length has.
    pub read: Duration,
}

impl Limits {
    pub fn from_config(c: &cardguard_app::config::Iso8583Config) -> Limits {
        Limits {
            max_frame: c.max_frame_bytes.clamp(64, usize::from(u16::MAX)),
            idle: Duration::from_secs(c.idle_timeout_secs.max(1)),
            read: Duration::from_millis(c.read_timeout_ms.max(1)),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&cardguard_app::config::Iso8583Config::default())
    }
}

/// Serves ISO 8583 on `listener` until `shutdown` resolves, then answers what is in flight.
pub async fn run(
    listener: TcpListener,
    app: Arc<App>,
    spec: Arc<Spec>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The gazetteer is read before the first message, not by it.
    let cities = tokio::task::spawn_blocking(cardguard_gazetteer::len).await;
    tracing::debug!(cities = cities.unwrap_or(0), "gazetteer read");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while conns.try_join_next().is_some() {}
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "iso8583 accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (app, spec, stop) = (Arc::clone(&app), Arc::clone(&spec), stop_rx.clone());
        conns.spawn(async move {
            if let Err(e) = connection(tcp, app, spec, limits, stop).await {
                tracing::debug!(%peer, error = %e, "iso8583 connection ended");
            }
        });
    }
    let _ = stop_tx.send(true);
    while conns.join_next().await.is_some() {}
    Ok(())
}

/// Writes one answer with its 2-byte length, in one write.
async fn send(wr: &tokio::sync::Mutex<tokio::net::tcp::OwnedWriteHalf>, frame: &[u8]) {
    let mut out = Vec::with_capacity(frame.len() + 2);
    out.extend_from_slice(&(frame.len() as u16).to_be_bytes());
    out.extend_from_slice(frame);
    if let Err(e) = wr.lock().await.write_all(&out).await {
        tracing::debug!(error = %e, "iso8583 answer not written");
    }
}

/// One connection: a reader that hands each message to a task of its own, which writes its
/// answer as soon as it is decided.
async fn connection(
    tcp: TcpStream,
    app: Arc<App>,
    spec: Arc<Spec>,
    limits: Limits,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let (rd, wr) = tcp.into_split();
    let mut rd = tokio::io::BufReader::new(rd);
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let mut in_flight = tokio::task::JoinSet::new();
    let result = loop {
        while in_flight.try_join_next().is_some() {}
        let mut len = [0u8; 2];
        let got = tokio::select! {
            _ = stop.changed() => break Ok(()),
            r = tokio::time::timeout(limits.idle, rd.read_exact(&mut len)) => r,
        };
        match got {
            Err(_) => break Ok(()), // idle
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break Ok(()),
            Ok(Err(e)) => break Err(e),
            Ok(Ok(_)) => {}
        }
        let n = usize::from(u16::from_be_bytes(len));
        if n == 0 || n > limits.max_frame {
            tracing::warn!(
                len = n,
                "iso8583 frame length out of range: closing the connection"
            );
            break Ok(());
        }
        let mut frame = vec![0u8; n];
        match tokio::time::timeout(limits.read, rd.read_exact(&mut frame)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => break Err(e),
            Err(_) => {
                tracing::warn!("iso8583 frame not read in time: closing the connection");
                break Ok(());
            }
        }
        let started = Instant::now();
        let msg = match decode(&spec, &frame) {
            Ok(m) => m,
            Err(e) => match &e.mti {
                // What can be read gets a format error; an unreadable message ends the
                // connection (there is nothing to answer it by).
                Some(mti) => {
                    tracing::info!(error = %e, "iso8583 message malformed: answered 30");
                    let mut r = Message::new(&map::response_mti(mti));
                    if let Some(stan) = &e.stan {
                        r.set(11, stan.as_bytes().to_vec());
                    }
                    r.set(39, map::FORMAT_ERROR);
                    if let Ok(b) = encode(&spec, &r) {
                        send(&wr, &b).await;
                    }
                    continue;
                }
                None => {
                    tracing::warn!(error = %e, "iso8583 message unreadable: closing the connection");
                    break Ok(());
                }
            },
        };
        let (app, spec, wr) = (Arc::clone(&app), Arc::clone(&spec), Arc::clone(&wr));
        in_flight.spawn(async move {
            let answer = handle(&app, &msg, started).await;
            match encode(&spec, &answer) {
                Ok(b) => send(&wr, &b).await,
                Err(e) => tracing::error!(error = %e, "iso8583 answer does not encode"),
            }
        });
    };
    // Answer what is in flight, then close.
    while in_flight.join_next().await.is_some() {}
    let _ = wr.lock().await.shutdown().await;
    result
}

/// The answer to one message.
pub async fn handle(app: &Arc<App>, msg: &Message, started: Instant) -> Message {
    match &msg.mti[..] {
        "0100" | "0200" => {
            let (auth, offset) = match map::authorization(msg, SystemClock.now()) {
                Ok(a) => a,
                Err(e) => {
                    tracing::info!(error = %e, mti = %msg.mti, "iso8583 request refused: 30");
                    return map::response(msg, map::FORMAT_ERROR);
                }
            };
            let client = ClientId::local("iso8583");
            match app.authorize(auth, offset, &client, started).await {
                Ok(rec) => map::decided(msg, &rec),
                Err(AppError::Invalid(e)) => {
                    tracing::info!(error = %e, "iso8583 request refused: 30");
                    map::response(msg, map::FORMAT_ERROR)
                }
                // The same terminal, STAN, time and RRN for another request.
                Err(AppError::Conflict(e)) => {
                    tracing::info!(error = %e, "iso8583 duplicate transmission: 94");
                    map::response(msg, map::DUPLICATE)
                }
                Err(e) => {
                    // 96: system malfunction; the network retries or stands in.
                    tracing::error!(error = %e, "iso8583 authorization failed: 96");
                    map::response(msg, "96")
                }
            }
        }
        "0400" | "0401" | "0420" | "0421" => {
            if map::is_partial(msg) {
                tracing::info!(mti = %msg.mti, "iso8583 partial reversal not taken: 12");
                return map::response(msg, map::INVALID_TRANSACTION);
            }
            let req = match map::reversal(msg) {
                Ok(r) => r,
                Err(e) => {
                    tracing::info!(error = %e, mti = %msg.mti, "iso8583 reversal refused: 30");
                    return map::response(msg, map::FORMAT_ERROR);
                }
            };
            match app.reverse(req, &ClientId::local("iso8583")).await {
                Ok(_) => map::response(msg, "00"),
                Err(e @ (AppError::NotFound(_) | AppError::Conflict(_))) => {
                    tracing::info!(error = %e, mti = %msg.mti, "iso8583 reversal without its original: 25");
                    map::response(msg, map::NO_ORIGINAL)
                }
                Err(AppError::Invalid(e)) => {
                    tracing::info!(error = %e, "iso8583 reversal refused: 30");
                    map::response(msg, map::FORMAT_ERROR)
                }
                Err(e) => {
                    tracing::error!(error = %e, "iso8583 reversal failed: 96");
                    map::response(msg, "96")
                }
            }
        }
        // Network management: sign-on, sign-off, echo.
        "0800" => map::response(msg, "00"),
        _ => {
            tracing::info!(mti = %msg.mti, "iso8583 message type not handled: 12");
            map::response(msg, map::INVALID_TRANSACTION)
        }
    }
}
