//! A small HTTP/1.1 JSON client on one keep-alive connection (hyper's connection API), for
//! the demo, the load benchmark and the integration tests. A connection the server closed
//! (after an answer with `connection: close`) is opened again for the next request.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// What can go wrong talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("answer is not JSON: {0}")]
    Json(#[from] serde_json::Error),
}

type Result<T> = std::result::Result<T, ClientError>;

/// A request header asking the server when it had the request and when its answer was
/// ready; the answer carries both in it (`"T0 T1"`, nanoseconds of [`monotonic_ns`]).
pub const TIMING_HEADER: &str = "x-cardguard-timing";

/// The machine's monotonic clock (`CLOCK_MONOTONIC`) in nanoseconds: the same in every
/// process, so a client and a server on one machine can place each other's moments.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Where one request's time went, on the shared monotonic clock: sent by the client, taken
/// by the server, answered by the server, received by the client.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub sent: u64,
    pub taken: u64,
    pub answered: u64,
    pub received: u64,
}

/// The request methods, for [`Client::request`].
pub use hyper::Method;

pub struct Client {
    addr: SocketAddr,
    key: String,
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(addr: SocketAddr, key: &str) -> Result<Client> {
        Ok(Client {
            addr,
            key: key.to_owned(),
            sender: Self::handshake(addr).await?,
        })
    }

    async fn handshake(addr: SocketAddr) -> Result<http1::SendRequest<Full<Bytes>>> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect { addr, source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| ClientError::Connect { addr, source })?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// The connection, ready for a request: opened again if the server closed it.
    async fn ready(&mut self) -> Result<()> {
        if self.sender.is_closed() || self.sender.ready().await.is_err() {
            self.sender = Self::handshake(self.addr).await?;
            self.sender.ready().await?;
        }
        Ok(())
    }

    /// POSTs a JSON body; returns the status and the parsed JSON answer.
    pub async fn post(
        &mut self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<(u16, serde_json::Value)> {
        let bytes = serde_json::to_vec(body)?;
        self.post_raw(path, bytes).await
    }

    pub async fn post_raw(
        &mut self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, serde_json::Value)> {
        let (status, body) = self.post_bytes(path, body).await?;
        let v = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body)?
        };
        Ok((status, v))
    }

    /// POSTs a body and returns the status and the answer's bytes, unparsed.
    pub async fn post_bytes(&mut self, path: &str, body: Vec<u8>) -> Result<(u16, Bytes)> {
        self.post_typed(path, "application/json", body).await
    }

    /// POSTs a body of the given content type (a form, as a browser sends it).
    pub async fn post_typed(
        &mut self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes)> {
        self.request(hyper::Method::POST, path, Some((content_type, body)))
            .await
    }

    /// Sends a request with an optional body (its content type and bytes); returns the
    /// status and the answer's bytes.
    pub async fn request(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(u16, Bytes)> {
        self.request_with(method, path, &[], body).await
    }

    /// [`Client::request`] with more headers (a device token, a user agent).
    pub async fn request_with(
        &mut self,
        method: hyper::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(u16, Bytes)> {
        self.ready().await?;
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string())
            .header("authorization", format!("Bearer {}", self.key));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some((ct, _)) = &body {
            req = req.header("content-type", *ct);
        }
        let req = req.body(Full::new(Bytes::from(
            body.map(|(_, b)| b).unwrap_or_default(),
        )))?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    /// Sends a request and parses the answer as JSON (Null when it is not).
    pub async fn send_json(
        &mut self,
        method: hyper::Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<(u16, serde_json::Value)> {
        let (status, body) = self.request(method, path, body).await?;
        Ok((
            status,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        ))
    }

    /// POSTs a body asking the server for its timing (see [`TIMING_HEADER`]): the status,
    /// the answer's bytes and where the time went.
    pub async fn post_timed(
        &mut self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, Bytes, Option<Timing>)> {
        self.ready().await?;
        let req = hyper::Request::post(path)
            .header("host", self.addr.to_string())
            .header("content-type", "application/json")
            .header("authorization", format!("Bearer {}", self.key))
            .header(TIMING_HEADER, "1")
            .body(Full::new(Bytes::from(body)))?;
        let sent = monotonic_ns();
        let resp = self.sender.send_request(req).await?;
        let received = monotonic_ns();
        let status = resp.status().as_u16();
        let server = resp
            .headers()
            .get(TIMING_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
        let timing = server.map(|(taken, answered)| Timing {
            sent,
            taken,
            answered,
            received,
        });
        Ok((status, resp.into_body().collect().await?.to_bytes(), timing))
    }

    /// GETs a JSON answer (Null when the body is not JSON).
    pub async fn get(&mut self, path: &str) -> Result<(u16, serde_json::Value)> {
        self.send_json(hyper::Method::GET, path, None).await
    }

    /// GETs the raw body.
    pub async fn get_raw(&mut self, path: &str) -> Result<(u16, Bytes)> {
        self.request(hyper::Method::GET, path, None).await
    }
}
