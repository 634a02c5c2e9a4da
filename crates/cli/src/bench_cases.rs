//! `cardguard bench cases`: the case queue and a case's timeline at scale, on the embedded
//! store (`cases.db` in a temporary directory): `--authorizations` transactions over
//! `--cards` cards, `--cases` cases with their steps (a fifth still being worked), then the
//! open-case queue (the newest 100 investigating) and case timelines (the case, its steps,
//! its chargebacks and the card's transactions of 30 days before it) read again and again.

use crate::bench::report;
use anyhow::Result;
use cardguard_store::{Cases, ChargebackRow, Transition, TxRow};
use hdrhistogram::Histogram;
use std::time::Instant;

#[derive(clap::Args, Clone)]
pub struct CasesArgs {
    #[arg(long, default_value_t = 1_000_000)]
    authorizations: u64,
    #[arg(long, default_value_t = 100_000)]
    cards: u64,
    #[arg(long, default_value_t = 100_000)]
    cases: u64,
    /// Reads of each kind measured.
    #[arg(long, default_value_t = 5_000)]
    reads: u64,
    /// Disputes of `--dispute-charges` charges each, through HTTP against a server started
    /// here (0: none).
    #[arg(long, default_value_t = 200)]
    disputes: u64,
    #[arg(long, default_value_t = 10)]
    dispute_charges: u64,
    /// Measures on PostgreSQL instead of SQLite: a scratch database made on this server
    /// (`postgres://…/postgres`) and dropped afterwards.
    #[arg(long)]
    database_url: Option<String>,
}

fn token(card: u64) -> String {
    format!("{card:032x}")
}

/// A scratch PostgreSQL database, dropped with this: at the end, on an error and on an
/// interrupt.
struct Scratch {
    admin: String,
    name: String,
    url: String,
}

impl Scratch {
    /// `cardguard_bench_{what}{pid}` on the server of `admin` (`postgres://…/postgres`), when
    /// one is given.
    fn create(admin: Option<&str>, what: &str) -> Result<Option<Scratch>> {
        let Some(admin) = admin else {
            return Ok(None);
        };
        let name = format!("cardguard_bench_{what}{}", std::process::id());
        let url = cardguard_store::sql::create_database(admin, &name)?;
        Ok(Some(Scratch {
            admin: admin.to_owned(),
            name,
            url,
        }))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // With FORCE: a load still running on another thread is disconnected.
        if let Err(e) = cardguard_store::sql::drop_database(&self.admin, &self.name) {
            eprintln!("dropping the scratch database {}: {e}", self.name);
        }
    }
}

/// Runs the benchmark until it ends or is interrupted (Ctrl-C, SIGTERM); either way its
/// temporary directory, scratch databases and server are removed. The loads run on a
/// blocking thread, which an interrupt does not wait for (its store is gone under it).
pub fn run(a: CasesArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let r = rt.block_on(crate::bench::interruptible(measure(a)));
    rt.shutdown_background();
    r
}

async fn measure(a: CasesArgs) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let scratch = Scratch::create(a.database_url.as_deref(), "")?;
    let url = scratch.as_ref().map(|s| s.url.clone());
    let path = dir.path().join("cases.db");
    let args = a.clone();
    tokio::task::spawn_blocking(move || index(&args, url.as_deref(), &path)).await??;
    drop(scratch);
    if a.disputes > 0 {
        disputes(a.disputes, a.dispute_charges, a.database_url.as_deref()).await?;
    }
    Ok(())
}

/// The transactions and cases loaded, then the queue and the timelines read.
fn index(a: &CasesArgs, url: Option<&str>, path: &std::path::Path) -> Result<()> {
    let s = match url {
        Some(url) => Cases::connect(url)?,
        None => Cases::open(path)?,
    };
    println!("store: {}", s.backend());
    let day = 86_400_000i64;
    let now = 1_796_000_000_000i64;
    let t0 = Instant::now();
    let doc = r#"{"last4":"2349","amount":{"value":12800,"currency":"JPY"},"merchant":"BIC CAMERA","merchant_id":"m-1","city":"Tokyo","country":"JP","mcc":5732,"channel":"card_present","type":"purchase","decision":"approve","response_code":"00","risk_score":12,"reasons":[]}"#;
    let mut batch = Vec::with_capacity(10_000);
    let mut charges = Vec::with_capacity(10_000);
    let amount = cardguard_core::Money {
        value: 12_800,
        currency: cardguard_core::Currency::JPY,
    };
    for i in 0..a.authorizations {
        batch.push(TxRow {
            authorization_id: format!("au_{i:012}"),
            card_token: token(i % a.cards),
            // Spread over the last 90 days.
            at_ms: now - ((i * 7_919) % 90) as i64 * day - (i % 86_400) as i64 * 1000,
            billing: "billable".into(),
            doc: doc.into(),
        });
        charges.push(cardguard_app::coverage::charge(
            batch.last().expect("pushed"),
            &amount,
        ));
        if batch.len() == 10_000 {
            s.put_transactions(&batch, &charges)?;
            batch.clear();
            charges.clear();
        }
    }
    s.put_transactions(&batch, &charges)?;
    let loaded_tx = t0.elapsed();
    let t1 = Instant::now();
    for c in 0..a.cases {
        let card = c % a.cards;
        let auth = format!("au_{c:012}");
        let (row, _) = s.open_case(
            &token(card),
            Some(&auth),
            "hold",
            "awaiting_cardholder",
            None,
            "system",
            "held",
            now - day,
        )?;
        let step = |to: &'static str, from: &'static [&'static str]| Transition {
            from,
            to,
            actor: "key:bench",
            action: "bench",
            note: "",
            due_ms: None,
            at_ms: now - day / 2,
        };
        // Four in five resolved and closed, one in five still investigated.
        let _ = s.transition(row.id, &step("investigating", &["awaiting_cardholder"]))?;
        if c % 5 != 0 {
            let _ = s.transition(row.id, &step("resolved_fraud", &["investigating"]))?;
            let _ = s.transition(row.id, &step("closed", &["resolved_fraud"]))?;
        }
        if c % 50 == 0 {
            let _ = s.dispute(
                &token(card),
                &[ChargebackRow {
                    authorization_id: format!("au_{:012}", c + a.cards),
                    case_id: 0,
                    card_token: token(card),
                    reason: "fraud_card_absent".into(),
                    amount: 12_800,
                    currency: "JPY".into(),
                    transaction_ms: now - day,
                    disputed_ms: now,
                    status: "pending".into(),
                }],
                &|c: &ChargebackRow, case_id| {
                    cardguard_app::coverage::withhold_chargeback(c, case_id, now)
                },
                "key:bench",
                "bench",
                now,
            )?;
        }
    }
    println!(
        "{} transactions over {} cards in {:.1} s, {} cases with their steps in {:.1} s",
        a.authorizations,
        a.cards,
        loaded_tx.as_secs_f64(),
        a.cases,
        t1.elapsed().as_secs_f64()
    );
    let mut queue = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for _ in 0..a.reads {
        let t = Instant::now();
        let rows = s.list(Some("investigating"), None, 100)?;
        queue.record(t.elapsed().as_nanos().max(1) as u64)?;
        std::hint::black_box(rows);
    }
    println!(
        "open-case queue (the newest 100 investigating): {}",
        report(&queue)
    );
    let mut timeline = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let mut x = 12_345u64;
    for _ in 0..a.reads {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let id = (x >> 33) as i64 % a.cases as i64 + 1;
        let t = Instant::now();
        if let Some(c) = s.case(id)? {
            let steps = s.steps(id)?;
            let cbs = s.chargebacks(id)?;
            let txs = s.transactions(&c.card_token, c.opened_ms - 30 * day, 200)?;
            std::hint::black_box((steps, cbs, txs));
        }
        timeline.record(t.elapsed().as_nanos().max(1) as u64)?;
    }
    println!(
        "a case's timeline (case, steps, chargebacks, 30 days of the card): {}",
        report(&timeline)
    );
    Ok(())
}

/// Disputes through HTTP: `n` cards with `charges` approved charges each (a day apart, in
/// the last weeks), then each card's charges disputed at once; from the request to the
/// answer, by which they are withheld with their chargebacks, the case opened and the fraud
/// labels durable in the log.
async fn disputes(n: u64, charges: u64, database_url: Option<&str>) -> Result<()> {
    use anyhow::{Context, bail};
    use cardguard_server::client::Client;
    use serde_json::json;
    let key = "bench-disputes-key-0123456789abcdef";
    let scratch = Scratch::create(database_url, "disputes_")?;
    let env = match &scratch {
        Some(s) => vec![("CARDGUARD__STORAGE__DATABASE_URL", format!("{:?}", s.url))],
        None => Vec::new(),
    };
    let (server, http, _) = crate::bench::start_server_with(key, None, None, false, &env)?;
    println!("server: http://{http} (pid {})", server.child.id());
    let cards = crate::bench::enroll(http, key, n).await?;
    let mut c = Client::connect(http, key).await?;
    let now = cardguard_core::Clock::now(&cardguard_core::SystemClock).0;
    let mut per_card: Vec<(String, Vec<String>)> = Vec::new();
    for (i, card) in cards.iter().enumerate() {
        let city = crate::bench::CITIES[card.city];
        let (mut token, mut ids) = (String::new(), Vec::new());
        for k in 0..charges {
            let at = cardguard_core::Timestamp(now - (k as i64 + 1) * 86_400_000 - 3_600_000);
            let body = json!({
                "id": format!("dispute-{i}-{k}"), "timestamp": at.to_rfc3339(),
                "card": {"number": card.pan, "expiry": "2029-12", "csc": card.csc},
                "amount": {"value": 1000 + k * 100, "currency": city.4},
                "merchant": {"id": format!("m-{k}"), "terminal_id": "t-1", "name": "BENCH SHOP",
                             "mcc": "5411", "country": city.0, "city": city.1, "lat": city.2, "lon": city.3},
                "channel": "card_present", "type": "purchase",
            });
            let (s, v) = c.post("/v1/authorizations", &body).await?;
            if s != 200 || v["decision"] != "approve" {
                bail!("authorizing a charge to dispute: {s} {v}");
            }
            token = v["card_token"].as_str().context("card_token")?.to_owned();
            ids.push(v["authorization_id"].as_str().context("id")?.to_owned());
        }
        per_card.push((token, ids));
    }
    // The cases consumer indexes them.
    let (last_token, _) = per_card.last().context("no cards")?;
    for _ in 0..2000 {
        let (_, v) = c
            .get(&format!("/v1/cards/{last_token}/transactions?days=60"))
            .await?;
        if v.as_array().map_or(0, Vec::len) as u64 == charges {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    for (token, ids) in &per_card {
        let t = Instant::now();
        let (s, v) = c
            .post(
                &format!("/v1/cards/{token}/disputes"),
                &json!({"authorization_ids": ids, "reason": "not_me"}),
            )
            .await?;
        h.record(t.elapsed().as_nanos().max(1) as u64)?;
        if s != 201 {
            bail!("dispute: {s} {v}");
        }
    }
    println!(
        "a dispute of {charges} charges through HTTP (withheld, chargebacks, case, fraud labels durable), {n} disputes: {}",
        report(&h)
    );
    // The server before its database.
    drop(server);
    drop(scratch);
    Ok(())
}
