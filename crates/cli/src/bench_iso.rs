//! `cardguard bench iso8583`: open-loop ISO 8583 load against a server started here. Cards are
//! enrolled over HTTP; then a pacer releases each 0100 at its due time, and a sender thread
//! per connection writes it at once (several in flight per connection, as networks send),
//! while a reader thread per connection matches the answers by STAN. Latency runs from the
//! due time to the answer.

use crate::bench::{
    BenchCard, CITIES, Paced, enroll, print_best, rate_steps, report, start_server,
};
use crate::rng::Rng;
use anyhow::{Context, Result};
use cardguard_core::{Clock, Currency, SystemClock, Timestamp};
use cardguard_iso8583::{Message, Spec, decode, encode};
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
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
    hist: Histogram<u64>,
    codes: BTreeMap<String, u64>,
    lost: u64,
    secs: f64,
}

/// `rate` requests a second for `secs` over `conns` connections.
fn load(
    iso: SocketAddr,
    cards: &Arc<Vec<BenchCard>>,
    rate: u64,
    secs: u64,
    conns: u64,
    run: u64,
) -> Result<IsoResult> {
    let total = rate * secs;
    let spec = Arc::new(Spec::default_ascii());
    let paced = Paced::new(rate, total);
    let start = paced.start;
    let mut senders = Vec::new();
    let mut readers = Vec::new();
    for c in 0..conns {
        let tcp = TcpStream::connect(iso).context("connecting to the ISO 8583 listener")?;
        tcp.set_nodelay(true)?;
        let mut rd = tcp.try_clone()?;
        let mut wr = tcp;
        // STAN → when the request was due.
        let due_by_stan: Arc<Mutex<HashMap<u32, Instant>>> = Arc::default();
        let (queue, cards, send_spec, pending) = (
            paced.queue(),
            Arc::clone(cards),
            Arc::clone(&spec),
            Arc::clone(&due_by_stan),
        );
        senders.push(std::thread::spawn(move || -> Result<u64> {
            let mut rng = Rng::new(&[run, c]);
            let mut sent = 0u64;
            loop {
                let Some(i) = queue.next() else {
                    return Ok(sent);
                };
                let due = start + Duration::from_nanos(i * 1_000_000_000 / rate);
                let card = &cards[rng.below(cards.len() as u64) as usize];
                // Numbered by run and request: unique across connections and runs.
                let n = run * 10_000_000 + i;
                let body = encode(&send_spec, &request(&mut rng, card, n, SystemClock.now()))?;
                pending
                    .lock()
                    .map_err(|_| anyhow::anyhow!("pending"))?
                    .insert((n % 1_000_000) as u32, due);
                let mut frame = (body.len() as u16).to_be_bytes().to_vec();
                frame.extend_from_slice(&body);
                wr.write_all(&frame)?;
                sent += 1;
            }
        }));
        let (read_spec, pending) = (Arc::clone(&spec), due_by_stan);
        readers.push(std::thread::spawn(move || -> Result<_> {
            let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
            let mut codes = BTreeMap::<String, u64>::new();
            let mut len = [0u8; 2];
            rd.set_read_timeout(Some(Duration::from_secs(5)))?;
            while rd.read_exact(&mut len).is_ok() {
                let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
                rd.read_exact(&mut body)?;
                let answered = Instant::now();
                let m = decode(&read_spec, &body)?;
                let stan: u32 = m.text(11).and_then(|s| s.parse().ok()).unwrap_or(0);
                let due = pending
                    .lock()
                    .map_err(|_| anyhow::anyhow!("pending"))?
                    .remove(&stan);
                if let Some(due) = due {
                    h.record((answered.saturating_duration_since(due).as_nanos() as u64).max(1))?;
                }
                *codes
                    .entry(m.text(39).unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            Ok((h, codes))
        }));
    }
    paced.finish();
    let mut sent = 0;
    for s in senders {
        sent += s
            .join()
            .map_err(|_| anyhow::anyhow!("a sender panicked"))??;
    }
    let secs = start.elapsed().as_secs_f64();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut codes = BTreeMap::new();
    // The readers end when their connection has been quiet for 5 s.
    for r in readers {
        let (h, c) = r
            .join()
            .map_err(|_| anyhow::anyhow!("a reader panicked"))??;
        hist.add(h)?;
        for (k, v) in c {
            *codes.entry(k).or_default() += v;
        }
    }
    Ok(IsoResult {
        lost: sent - hist.len(),
        hist,
        codes,
        secs,
    })
}

pub fn run(a: IsoArgs) -> Result<()> {
    let key = "bench-key-0123456789abcdef";
    let (server, http, iso) = start_server(key, None, None, true)?;
    let iso = iso.context("the server did not open its ISO 8583 listener")?;
    println!(
        "server: http://{http}, iso8583 {iso} (pid {}, started for this run)",
        server.child.id()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let t0 = Instant::now();
    let cards = rt.block_on(enroll(http, key, a.cards))?;
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
        let r = load(iso, &cards, rate, secs, a.connections, run as u64)?;
        let errors: u64 = r
            .codes
            .iter()
            .filter(|(k, _)| ["30", "96", "12", "?"].contains(&k.as_str()))
            .map(|(_, v)| v)
            .sum::<u64>()
            + r.lost;
        let codes: Vec<String> = r.codes.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "rate {rate}/s for {secs} s over {} connections: achieved {:.0}/s, errors {errors} (unanswered {}); latency {}; DE39: {}",
            a.connections,
            r.hist.len() as f64 / r.secs,
            r.lost,
            report(&r.hist),
            codes.join(", ")
        );
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
