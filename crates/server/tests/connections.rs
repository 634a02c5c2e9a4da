//! Connections cannot exhaust the server: credentials are checked before a body is read
//! (an unauthenticated 10 MiB upload is refused from its headers), slow headers, slow
//! bodies and idle connections are closed on their timeouts, connections over the cap get a
//! clear 503, and each route reads no more body than it takes.

mod common;

use common::{ACQUIRER, ADMIN, RECORDED_TIMES, Server};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMITS: [(&str, &str); 5] = [
    RECORDED_TIMES,
    ("CARDGUARD__SERVER__MAX_CONNECTIONS", "8"),
    ("CARDGUARD__SERVER__HEADER_TIMEOUT_MS", "400"),
    ("CARDGUARD__SERVER__BODY_TIMEOUT_MS", "400"),
    ("CARDGUARD__SERVER__IDLE_TIMEOUT_MS", "400"),
];

/// Reads what the server sends until it closes the connection or `within` passes; whether
/// it closed, and what it sent.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> (bool, String) {
    let mut got = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, tcp.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (true, String::from_utf8_lossy(&got).into()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (false, String::from_utf8_lossy(&got).into()),
        }
    }
}

async fn connect(srv: &Server) -> TcpStream {
    TcpStream::connect(srv.addr).await.unwrap()
}

#[tokio::test]
async fn an_unauthenticated_upload_is_refused_from_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(dir.path(), "", &LIMITS).await;
    for path in ["/v1/mail/scan", "/v1/cards:batch", "/v1/authorizations"] {
        let mut tcp = connect(&srv).await;
        // Headers announcing 10 MiB, and not a byte of the body.
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            10 << 20
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let t0 = Instant::now();
        let (closed, answer) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 401"), "{path}: {answer}");
        assert!(closed && t0.elapsed() < Duration::from_secs(1), "{path}");
    }
    // With a key but over the route's limit: 413 from the declared length, body unread.
    let mut tcp = connect(&srv).await;
    let head = format!(
        "POST /v1/authorizations HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ACQUIRER}\r\ncontent-length: {}\r\n\r\n",
        10 << 20
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let (closed, answer) = read_until_closed(&mut tcp, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 413") && closed, "{answer}");
    assert!(answer.contains("16384 bytes"), "{answer}");
    srv.stop().await;
}

#[tokio::test]
async fn per_route_limits_slow_headers_slow_bodies_and_idle_connections() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(dir.path(), "", &LIMITS).await;
    // A label is small: 5 KiB of it is refused, though the general limit is 16 KiB.
    let mut admin = srv.client(ADMIN).await;
    let big_label = serde_json::json!({"authorization_id": "au_000000000000", "fraud": true,
        "source": "x".repeat(5000)});
    let (s, v) = admin.post("/v1/labels", &big_label).await.unwrap();
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );

    // Headers at one byte now and then: closed on the header timeout.
    let mut tcp = connect(&srv).await;
    let t0 = Instant::now();
    for b in b"POST /v1/auth" {
        if tcp.write_all(&[*b]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (closed, _) = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(closed, "slow headers kept the connection open");
    assert!(t0.elapsed() < Duration::from_secs(4));

    // A body that stalls: 408, and the connection closed.
    let mut tcp = connect(&srv).await;
    let head = format!(
        "POST /v1/authorizations HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {ACQUIRER}\r\ncontent-length: 1000\r\n\r\n{{\"id\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let (closed, answer) = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 408") && closed, "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // A kept-alive connection with nothing more to ask: closed after the idle timeout.
    let mut tcp = connect(&srv).await;
    tcp.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let t0 = Instant::now();
    let (closed, answer) = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "the idle connection stayed open");
    assert!(
        t0.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t0.elapsed()
    );
    // A silent connection (never a byte) is closed too.
    let mut tcp = connect(&srv).await;
    let (closed, _) = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(closed, "a silent connection stayed open");
    srv.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_get_a_clear_503() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        RECORDED_TIMES,
        ("CARDGUARD__SERVER__MAX_CONNECTIONS", "4"),
        ("CARDGUARD__SERVER__IDLE_TIMEOUT_MS", "60000"),
        ("CARDGUARD__SERVER__HEADER_TIMEOUT_MS", "60000"),
    ];
    let srv = Server::start_with(dir.path(), "", &env).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(connect(&srv).await);
    }
    // Let the server take all four.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut over = connect(&srv).await;
    let (closed, answer) = read_until_closed(&mut over, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503") && closed, "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");
    // One of the four goes away: a new connection is served.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut admin = srv.client(ADMIN).await;
    let (s, _) = admin.get("/v1/stats").await.unwrap();
    assert_eq!(s, 200);
    let (s, text) = admin.get_raw("/metrics").await.unwrap();
    assert_eq!(s, 200);
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.lines()
            .any(|l| l == "cardguard_refused_connections_total 1"),
        "the refusal is counted: {text}"
    );
    drop(held);
    srv.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_stays_open_for_the_idle_timeout_not_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let srv = Server::start_with(
        dir.path(),
        "",
        &[
            RECORDED_TIMES,
            ("CARDGUARD__SERVER__HEADER_TIMEOUT_MS", "300"),
            ("CARDGUARD__SERVER__IDLE_TIMEOUT_MS", "5000"),
        ],
    )
    .await;
    let mut tcp = connect(&srv).await;
    let ask = b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n";
    tcp.write_all(ask).await.unwrap();
    let (closed, answer) = read_until_closed(&mut tcp, Duration::from_millis(1500)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Quiet for longer than the header timeout, well within the idle timeout.
    assert!(!closed, "the kept-alive connection was closed after 1.5 s");
    tcp.write_all(ask).await.unwrap();
    let (_, answer) = read_until_closed(&mut tcp, Duration::from_millis(500)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Headers that start and stall are still cut at the header timeout.
    let t0 = Instant::now();
    tcp.write_all(b"GET /v1/hea").await.unwrap();
    let (closed, _) = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(closed, "stalled headers kept the connection open");
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    srv.stop().await;
}
