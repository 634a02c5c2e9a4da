//! `cardguard bench iso8583`: open-loop ISO 8583 load against a server started here. Cards are
//! enrolled over HTTP; the 0100s are encoded before the clock starts; then a pacer thread
//! releases each at its due time and one runtime thread writes it on the next connection
//! (several in flight per connection, as networks send) and reads the answers, matched by
//! STAN. Latency runs from the write to the answer; how late the generator wrote after the
//! due time is reported beside it.

use crate::bench::{
    BenchCard, CITIES, enroll, print_best, print_inside, rate_steps, report, server_buckets,
    spawn_pacer, start_server,
};
use crate::rng::Rng;
use anyhow::{Context, Result};
use cardguard_core::{Clock, Currency, SystemClock, Timestamp};
use cardguard_iso8583::{Message, Spec, decode, encode};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct IsoArgs {
    /// Authorizations per second.
    #[arg(long, default_value_t = 5000)]
    rate: u64,
    /// Seconds of load.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Cards to enroll and spread the load over.
    #[arg(long, default_value_t = 10_000)]
    cards: u64,
    /// TCP connections.
    #[arg(long, default_value_t = 8)]
    connections: u64,
    /// Step the rate up (10 s a step) until p99 exceeds 2 ms; report the highest rate below.
    #[arg(long)]
    find_max: bool,
}

/// A card-present 0100 at the card's home city; `n` numbers it in the run (its STAN and
/// RRN, unique as a network's are).
fn request(rng: &mut Rng, card: &BenchCard, n: u64, at: Timestamp) -> Message {
    let stan = n % 1_000_000;
    let city = CITIES[card.city];
    let offset = match city.0 {
        "JP" => 540,
        "US" => -300,
        _ => 0,
    };
    let currency = Currency::parse(city.4).map_or(392, |c| c.numeric());
    let merchant = rng.below(2000);
    let mut m = Message::new("0100");
    m.set(2, card.pan.as_str())
        .set(3, "000000")
        .set(4, format!("{:012}", 300 + rng.below(15_000)))
        .set(7, cardguard_iso::map::mmddhhmmss(at, 0))
        .set(11, format!("{stan:06}"))
        .set(
            12,
            cardguard_iso::map::mmddhhmmss(at, offset)[4..].to_owned(),
        )
        .set(
            13,
            cardguard_iso::map::mmddhhmmss(at, offset)[..4].to_owned(),
        )
        .set(14, "2912")
        .set(
            18,
            ["5411", "5812", "5732", "5999"][(merchant % 4) as usize],
        )
        .set(22, "051")
        .set(37, format!("{n:012}"))
        .set(41, format!("T{:07}", merchant % 5))
        .set(42, format!("M{merchant:014}"))
        .set(
            43,
            format!(
                "{:<25}{:<13}{}",
                "BENCH SHOP",
                city.1.to_uppercase(),
                city.0
            ),
        )
        .set(49, format!("{currency:03}"));
    m
}

struct IsoResult {
    /// From the moment a request was written to the moment its answer was read.
    hist: Histogram<u64>,
    /// How late the generator wrote each request after its due time (its own slack).
    lag: Histogram<u64>,
    codes: BTreeMap<String, u64>,
    lost: u64,
    secs: f64,
}

/// What a connection's reader needs of a request written: when.
type Pending = Arc<Mutex<HashMap<u32, Instant>>>;

/// `rate` requests a second for `secs` over `conns` connections. The frames are made before
/// the clock starts; one runtime thread writes each at its due time (released by the pacer
/// thread, with the OS sleep's precision) on the connections in turn, several in flight on
/// each, and reads the answers, matched by STAN. Two threads in all, so that on a small
/// machine the generator takes as little as it can of what the server needs.
async fn load(
    iso: SocketAddr,
    cards: &Arc<Vec<BenchCard>>,
    rate: u64,
    secs: u64,
    conns: u64,
    run: u64,
) -> Result<IsoResult> {
    let total = rate * secs;
    let spec = Arc::new(Spec::default_ascii());
    let mut rng = Rng::new(&[run]);
    let now = SystemClock.now();
    // Numbered by run and request: unique across runs; each dated when it is due.
    let frames: Vec<(u32, Vec<u8>)> = (0..total)
        .map(|i| {
            let card = &cards[rng.below(cards.len() as u64) as usize];
            let n = run * 10_000_000 + i;
            let at = Timestamp(now.0 + (i * 1000 / rate) as i64);
            let body = encode(&spec, &request(&mut rng, card, n, at))?;
            let mut frame = (body.len() as u16).to_be_bytes().to_vec();
            frame.extend_from_slice(&body);
            Ok(((n % 1_000_000) as u32, frame))
        })
        .collect::<Result<_>>()?;
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut writers = Vec::new();
        let mut pendings = Vec::new();
        let mut readers = Vec::new();
        for _ in 0..conns {
            let tcp = tokio::net::TcpStream::connect(iso)
                .await
                .context("connecting to the ISO 8583 listener")?;
            tcp.set_nodelay(true)?;
            let (mut rd, wr) = tcp.into_split();
            let pending: Pending = Arc::default();
            let (p, spec) = (Arc::clone(&pending), Arc::clone(&spec));
            readers.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
                let mut codes = BTreeMap::<String, u64>::new();
                let mut len = [0u8; 2];
                // A reader ends when its connection has been quiet for 5 s.
                while let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(5), rd.read_exact(&mut len)).await
                {
                    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    rd.read_exact(&mut body).await?;
                    let answered = Instant::now();
                    let m = decode(&spec, &body)?;
                    let stan: u32 = m.text(11).and_then(|s| s.parse().ok()).unwrap_or(0);
                    let sent = p
                        .lock()
                        .map_err(|_| anyhow::anyhow!("pending"))?
                        .remove(&stan);
                    if let Some(sent) = sent {
                        h.record(
                            (answered.saturating_duration_since(sent).as_nanos() as u64).max(1),
                        )?;
                    }
                    *codes
                        .entry(m.text(39).unwrap_or("?").to_owned())
                        .or_default() += 1;
                }
                anyhow::Ok((h, codes))
            }));
            writers.push(wr);
            pendings.push(pending);
        }
        let start = Instant::now() + Duration::from_millis(50);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let pacer = spawn_pacer(start, rate, total, move |i| tx.send(i).is_ok());
        let mut lag = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
        let mut sent = 0u64;
        while let Some(i) = rx.recv().await {
            let c = (i % conns) as usize;
            let (stan, frame) = &frames[i as usize];
            let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
            let at = Instant::now();
            lag.record((at.saturating_duration_since(due).as_nanos() as u64).max(1))?;
            pendings[c]
                .lock()
                .map_err(|_| anyhow::anyhow!("pending"))?
                .insert(*stan, at);
            writers[c].write_all(frame).await?;
            sent += 1;
        }
        let _ = pacer.join();
        let secs = start.elapsed().as_secs_f64();
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
        let mut codes = BTreeMap::new();
        for r in readers {
            let (h, c) = r.await??;
            hist.add(h)?;
            for (k, v) in c {
                *codes.entry(k).or_default() += v;
            }
        }
        Ok(IsoResult {
            lost: sent - hist.len(),
            hist,
            lag,
            codes,
            secs,
        })
    }
}

pub async fn run(a: IsoArgs) -> Result<()> {
    let key = "bench-key-0123456789abcdef";
    let (server, http, iso) = start_server(key, None, None, true)?;
    let iso = iso.context("the server did not open its ISO 8583 listener")?;
    println!(
        "server: http://{http}, iso8583 {iso} (pid {}, started for this run)",
        server.child.id()
    );
    let t0 = Instant::now();
    let cards = enroll(http, key, a.cards).await?;
    println!(
        "enrolled {} cards in {:.1} s",
        a.cards,
        t0.elapsed().as_secs_f64()
    );
    let mut best = None;
    for (run, (rate, secs)) in rate_steps(a.rate, a.duration, a.find_max)
        .into_iter()
        .enumerate()
    {
        let before = server_buckets(http, key).await?;
        let r = load(iso, &cards, rate, secs, a.connections, run as u64).await?;
        let after = server_buckets(http, key).await?;
        let errors: u64 = r
            .codes
            .iter()
            .filter(|(k, _)| ["30", "96", "12", "?"].contains(&k.as_str()))
            .map(|(_, v)| v)
            .sum::<u64>()
            + r.lost;
        let codes: Vec<String> = r.codes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "rate {rate}/s for {secs} s over {} connections: achieved {:.0}/s, errors {errors} (unanswered {}); latency from the write to the answer {}; DE39: {}; the generator wrote late by p50 {:.1} µs, p99 {:.1} µs",
            a.connections,
            r.hist.len() as f64 / r.secs,
            r.lost,
            report(&r.hist),
            codes.join(", "),
            r.lag.value_at_quantile(0.5) as f64 / 1000.0,
            r.lag.value_at_quantile(0.99) as f64 / 1000.0,
        );
        print_inside(&before, &after);
        if r.hist.value_at_quantile(0.99) <= 2_000_000 && errors == 0 {
            best = Some(rate);
        } else if a.find_max {
            break;
        }
    }
    if a.find_max {
        print_best(best);
    }
    drop(server);
    Ok(())
}
