//! `cardguard bench stepup`: step-up authentication against a server started here, with a
//! real SMTP server (aiosmtpd). First, challenges: authentication requests from new
//! devices at a steady rate, each sending a code by email; latency runs from the request
//! to the SMTP server's acceptance of its code. Then each challenge is answered with its
//! code, which trusts the device. Last, frictionless answers: requests from the trusted
//! devices at a steady rate; latency runs from when each request was due to its answer.

use crate::bench::{BenchCard, enroll, report, spawn_pacer, start_server_with};
use crate::bench_notify::{smtp_env, start_sink};
use anyhow::{Context, Result, bail};
use cardguard_server::client::{Client, Method, monotonic_ns};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct StepUpArgs {
    /// Challenges (codes by email) to make, at `--code-rate` a second.
    #[arg(long, default_value_t = 1000)]
    challenges: u64,
    #[arg(long, default_value_t = 100)]
    code_rate: u64,
    /// Frictionless requests a second from the trusted devices, for `--duration` seconds.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Cards enrolled (the challenges take the first ones).
    #[arg(long, default_value_t = 10_000)]
    cards: u64,
}

fn request(id: &str, card: &BenchCard, yen: u64) -> Vec<u8> {
    serde_json::to_vec(&json!({"id": id, "card": {"number": card.pan, "expiry": "2029-12"},
        "amount": {"value": yen, "currency": "JPY"},
        "merchant": {"id": "m-bench", "name": "BENCH SHOP", "mcc": "5411", "country": "JP",
                     "url": "https://shop.example"},
        "channel": "browser",
        "browser": {"user_agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0", "ip": "203.0.113.9",
                    "accept_language": "en"}}))
    .unwrap_or_default()
}

async fn post(
    c: &mut Client,
    path: &str,
    body: Vec<u8>,
    device: Option<&str>,
) -> Result<(u16, Value)> {
    let headers: Vec<(&str, &str)> = device.map(|d| ("x-device-token", d)).into_iter().collect();
    let (s, b) = c
        .request_with(
            Method::POST,
            path,
            &headers,
            Some(("application/json", body)),
        )
        .await?;
    Ok((s, serde_json::from_slice(&b).unwrap_or(Value::Null)))
}

/// Runs `total` jobs at `rate` a second over `conns` connections; each job gets its index
/// and when it was due (monotonic ns).
async fn paced<F, Fut>(
    http: std::net::SocketAddr,
    key: &str,
    rate: u64,
    total: u64,
    conns: usize,
    job: F,
) -> Result<()>
where
    F: Fn(Client, u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Client>> + Send,
{
    // The connections are open before the clock starts (see `bench::load`).
    let mut clients = Vec::new();
    for _ in 0..conns {
        clients.push(Client::connect(http, key).await?);
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let start = Instant::now() + Duration::from_millis(50);
    let start_ns = monotonic_ns() + 50_000_000;
    let pacer = spawn_pacer(start, rate, total, move |i| tx.send(i).is_ok());
    let job = Arc::new(job);
    let mut tasks = Vec::new();
    for mut c in clients {
        let (rx, job) = (Arc::clone(&rx), Arc::clone(&job));
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(i) = rx.lock().await.recv().await else {
                    return anyhow::Ok(());
                };
                c = job(c, i, start_ns + i * 1_000_000_000 / rate).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let _ = pacer.join();
    Ok(())
}

pub async fn run(a: StepUpArgs) -> Result<()> {
    if a.challenges > a.cards {
        bail!("--challenges must not exceed --cards");
    }
    let sink = start_sink()?;
    let key = "bench-key-0123456789abcdef";
    let (server, http, _) = start_server_with(key, None, None, false, &smtp_env(&sink))?;
    println!("server: http://{http} (pid {})", server.child.id());
    let cards = enroll(http, key, a.cards).await?;

    // Challenges: each request's send time by challenge id.
    let sent: Arc<Mutex<HashMap<String, (u64, u64)>>> = Arc::default();
    let (s2, c2) = (Arc::clone(&sent), Arc::clone(&cards));
    paced(
        http,
        key,
        a.code_rate,
        a.challenges,
        8,
        move |mut c, i, _| {
            let (sent, cards) = (Arc::clone(&s2), Arc::clone(&c2));
            async move {
                let t0 = monotonic_ns();
                let (s, v) = post(
                    &mut c,
                    "/v1/authentications",
                    request(&format!("c-{i}"), &cards[i as usize], 12_800),
                    None,
                )
                .await?;
                let url = v["challenge_url"].as_str().unwrap_or("");
                let Some(ch) = url.split("t=").nth(1).and_then(|t| t.split('.').next()) else {
                    bail!("challenge {i}: {s} {v}");
                };
                sent.lock()
                    .map_err(|_| anyhow::anyhow!("sent"))?
                    .insert(ch.to_owned(), (t0, i));
                Ok(c)
            }
        },
    )
    .await?;
    let expected = sent.lock().map_err(|_| anyhow::anyhow!("sent"))?.len();
    let mut delivery = Histogram::<u64>::new_with_bounds(1, 600_000_000_000, 3)?;
    let mut codes: Vec<(u64, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while codes.len() < expected && Instant::now() < deadline {
        let Ok(m) = sink.lines.recv_timeout(Duration::from_secs(5)) else {
            continue;
        };
        let ch = m["message_id"]
            .as_str()
            .and_then(|s| s.trim_start_matches('<').split('.').next())
            .unwrap_or("");
        let Some(&(t0, i)) = sent.lock().map_err(|_| anyhow::anyhow!("sent"))?.get(ch) else {
            continue;
        };
        delivery.record(m["at_ns"].as_u64().unwrap_or(0).saturating_sub(t0).max(1))?;
        let code = m["body"]
            .as_str()
            .and_then(|b| {
                b.split_whitespace()
                    .find(|w| w.len() == 6 && w.bytes().all(|c| c.is_ascii_digit()))
            })
            .context("a code in the message")?;
        codes.push((i, code.to_owned()));
    }
    println!(
        "{} challenges at {}/s: {} codes arrived; from the request to the SMTP server's acceptance of its code {}",
        a.challenges,
        a.code_rate,
        codes.len(),
        report(&delivery)
    );

    // Each challenge answered: a trusted device per card.
    let mut c = Client::connect(http, key).await?;
    let mut devices: Vec<(u64, String)> = Vec::new();
    for (i, code) in &codes {
        let (s, v) = post(
            &mut c,
            &format!("/v1/authentications/c-{i}/challenge"),
            serde_json::to_vec(&json!({"code": code}))?,
            None,
        )
        .await?;
        match v["device_token"].as_str() {
            Some(d) if s == 200 => devices.push((*i, d.to_owned())),
            _ => bail!("challenge c-{i} answered {s} {v}"),
        }
    }
    let devices = Arc::new(devices);

    // Frictionless answers from the trusted devices.
    let total = a.rate * a.duration;
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1,
        600_000_000_000,
        3,
    )?));
    let statuses: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
    let (l2, st2, d2, c2) = (
        Arc::clone(&latency),
        Arc::clone(&statuses),
        Arc::clone(&devices),
        Arc::clone(&cards),
    );
    paced(http, key, a.rate, total, 8, move |mut c, i, due| {
        let (latency, statuses, devices, cards) = (
            Arc::clone(&l2),
            Arc::clone(&st2),
            Arc::clone(&d2),
            Arc::clone(&c2),
        );
        async move {
            let (card, device) = &devices[(i % devices.len() as u64) as usize];
            let body = request(&format!("f-{i}"), &cards[*card as usize], 300 + i % 5000);
            let (_, v) = post(&mut c, "/v1/authentications", body, Some(device)).await?;
            let t = monotonic_ns();
            latency
                .lock()
                .map_err(|_| anyhow::anyhow!("latency"))?
                .record(t.saturating_sub(due).max(1))?;
            *statuses
                .lock()
                .map_err(|_| anyhow::anyhow!("statuses"))?
                .entry(v["trans_status"].as_str().unwrap_or("error").to_owned())
                .or_default() += 1;
            Ok(c)
        }
    })
    .await?;
    let h = latency.lock().map_err(|_| anyhow::anyhow!("latency"))?;
    let st = statuses.lock().map_err(|_| anyhow::anyhow!("statuses"))?;
    println!(
        "{total} requests from {} trusted devices at {}/s for {} s ({st:?}): from due to answered {}",
        devices.len(),
        a.rate,
        a.duration,
        report(&h)
    );
    drop(server);
    Ok(())
}
