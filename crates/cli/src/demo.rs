//! `serve --demo`: enrolls sample cards through the API, replays a simulated hour of traffic
//! with fraud in it (a cloned card far away, card testing, wrong PINs, an account takeover,
//! bad card data, a retried request), prints each decision and why, says which staged frauds
//! it caught and which it missed (and why), then labels the frauds.

use crate::rng::{Rng, luhn_pan};
use anyhow::Result;
use cardguard_cardsec::TdesKey;
use cardguard_core::{Currency, Expiry, Money, Timestamp};
use cardguard_server::client::Client;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Where the demo keeps its data unless told otherwise.
pub const DEFAULT_DIR: &str = "cardguard-demo";
/// The file that marks a data directory as the demo's own (so it may be emptied).
const MARKER: &str = ".cardguard-demo";

/// The demo stages its story on an empty data directory: a new one, or the demo's own from
/// an earlier run, emptied (it says so). A directory holding other data is refused.
pub fn fresh_directory(dir: &std::path::Path) -> Result<()> {
    let holds_data = std::fs::read_dir(dir).is_ok_and(|mut e| e.next().is_some());
    if holds_data {
        anyhow::ensure!(
            dir.join(MARKER).exists(),
            "--demo stages its story on a fresh data directory, and {} holds other data: give a new --data-dir",
            dir.display()
        );
        // Not under a running server: its lock would refuse this.
        let lock = cardguard_store::DirLock::acquire(dir)?;
        std::fs::remove_dir_all(dir)?;
        drop(lock);
        println!(
            "demo: starting afresh in {} (the previous demo's data removed)",
            dir.display()
        );
    }
    cardguard_store::private::create_dir(dir)?;
    use std::io::Write;
    cardguard_store::private::create(&dir.join(MARKER))?.write_all(
        b"cardguard serve --demo owns this directory and empties it at its next start\n",
    )?;
    Ok(())
}

/// Keys the demo may use to compute card codes, by id (from the server's config).
pub struct DemoKeys {
    pub cvk: Option<(String, TdesKey)>,
    pub pvk: Option<(String, TdesKey)>,
}

impl DemoKeys {
    pub fn from_config(cvk: &BTreeMap<String, String>, pvk: &BTreeMap<String, String>) -> DemoKeys {
        let first = |m: &BTreeMap<String, String>| {
            m.iter()
                .find_map(|(id, h)| TdesKey::from_hex(h).ok().map(|k| (id.clone(), k)))
        };
        DemoKeys {
            cvk: first(cvk),
            pvk: first(pvk),
        }
    }
}

#[derive(Clone)]
struct Place {
    country: &'static str,
    city: &'static str,
    lat: f64,
    lon: f64,
    currency: &'static str,
    /// UTC offset of local time, minutes.
    offset: i16,
    /// Typical purchase in minor units.
    typical: u64,
}

const TOKYO: Place = Place {
    country: "JP",
    city: "Tokyo",
    lat: 35.68,
    lon: 139.76,
    currency: "JPY",
    offset: 540,
    typical: 3000,
};
const OSAKA: Place = Place {
    country: "JP",
    city: "Osaka",
    lat: 34.69,
    lon: 135.50,
    currency: "JPY",
    offset: 540,
    typical: 2500,
};
const NEW_YORK: Place = Place {
    country: "US",
    city: "New York",
    lat: 40.71,
    lon: -74.01,
    currency: "USD",
    offset: -300,
    typical: 4500,
};
const LONDON: Place = Place {
    country: "GB",
    city: "London",
    lat: 51.51,
    lon: -0.13,
    currency: "GBP",
    offset: 0,
    typical: 3000,
};
const LOS_ANGELES: Place = Place {
    country: "US",
    city: "Los Angeles",
    lat: 34.05,
    lon: -118.24,
    currency: "USD",
    offset: -480,
    typical: 5000,
};

const SHOPS: &[(&str, &str)] = &[
    ("5411", "SUPERMARKET"),
    ("5812", "RESTAURANT"),
    ("5814", "CAFE"),
    ("5732", "ELECTRONICS"),
    ("5912", "PHARMACY"),
    ("4111", "TRANSIT"),
    ("5311", "DEPARTMENT STORE"),
];

struct DemoCard {
    name: String,
    pan: String,
    expiry: Expiry,
    service_code: &'static str,
    home: Place,
    csc: String,
    pin: Option<String>,
}

fn fmt_money(value: u64, currency: &str) -> String {
    match Currency::parse(currency).and_then(|c| Money::new(value, c)) {
        Ok(m) => m.to_string(),
        Err(_) => format!("{value} {currency}"),
    }
}

struct Demo {
    client: Client,
    keys: DemoKeys,
    prefix: String,
    n: u32,
    /// Decisions by kind, each authorization counted once (a retry's answer is not new).
    counts: BTreeMap<String, u32>,
    seen: std::collections::HashSet<String>,
    frauds: Vec<String>,
    /// The staged frauds: what each was, whether it was caught, and how (or why not).
    staged: Vec<(&'static str, bool, String)>,
}

/// The first reason's code of an answer.
fn first_reason(v: &Value) -> &str {
    v["reasons"][0]["code"].as_str().unwrap_or("no reason")
}

impl Demo {
    fn csc_for(&self, pan: &str, expiry: Expiry, service_code: &str, rng: &mut Rng) -> String {
        match &self.keys.cvk {
            Some((_, k)) => {
                cardguard_cardsec::cvv::generate(k, pan, &expiry.yymm(), service_code, 3)
                    .unwrap_or_default()
            }
            None => format!("{:03}", rng.below(1000)),
        }
    }

    async fn enroll(&mut self, c: &DemoCard) -> Result<()> {
        let amex = c.pan.starts_with("34") || c.pan.starts_with("37");
        let csc = match (&self.keys.cvk, amex) {
            (Some((id, _)), false) => json!({"method": "cvv-3des", "key_id": id}),
            _ => json!({"method": "stored", "value": c.csc}),
        };
        let mut body = json!({
            "number": c.pan, "expiry": c.expiry.to_string(), "cardholder_id": format!("ch-{}", c.name),
            "product": "gold", "status": "active", "service_code": c.service_code, "csc": csc,
            "contact": {"email": format!("{}@example.jp", c.name), "language": if c.home.country == "JP" { "ja" } else { "en" }},
            "home": {"country": c.home.country, "city": c.home.city, "lat": c.home.lat, "lon": c.home.lon},
        });
        if let (Some(pin), Some((id, k))) = (&c.pin, &self.keys.pvk) {
            let pvv = cardguard_cardsec::pin::visa_pvv(k, 1, pin, &c.pan)?;
            body["pin"] = json!({"method": "visa-pvv", "key_id": id, "pvki": 1, "pvv": pvv});
        }
        let (status, v) = self.client.post("/v1/cards", &body).await?;
        if status >= 300 {
            anyhow::bail!("enrolling {}: {status} {v}", c.name);
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    /// Sends one authorization (with a fresh id unless `id` repeats one) and prints the
    /// answer when it is not a plain approval or `note` says why it matters.
    async fn send(
        &mut self,
        id: Option<String>,
        at: Timestamp,
        card: &DemoCard,
        place: &Place,
        shop: (&str, &str),
        amount: u64,
        channel: &str,
        csc: Option<String>,
        pin: Option<&str>,
        device: Option<&str>,
        note: &str,
    ) -> Result<Value> {
        let id = id.unwrap_or_else(|| {
            self.n += 1;
            format!("{}-{:05}", self.prefix, self.n)
        });
        let mut card_json = json!({"number": card.pan, "expiry": card.expiry.to_string()});
        if let Some(c) = csc {
            card_json["csc"] = json!(c);
        }
        if let Some(p) = pin {
            let block = cardguard_cardsec::pinblock::encode_iso0(p, &card.pan)?;
            card_json["pin_block"] =
                json!(block.iter().map(|b| format!("{b:02X}")).collect::<String>());
        }
        let mid = format!(
            "m-{}-{}",
            place.city.to_lowercase().replace(' ', "-"),
            shop.0
        );
        let mut body = json!({
            "id": id, "timestamp": at.to_rfc3339_at_offset(place.offset), "card": card_json,
            "amount": {"value": amount, "currency": place.currency},
            "merchant": {"id": mid, "terminal_id": "t-1", "name": format!("{} {}", shop.1, place.city.to_uppercase()),
                         "mcc": shop.0, "country": place.country, "city": place.city, "lat": place.lat, "lon": place.lon},
            "channel": channel, "type": if channel == "atm" { "cash_advance" } else { "purchase" },
        });
        if let Some(d) = device {
            body["device"] = json!({"id": d, "ip": "203.0.113.7", "user_agent": "Mozilla/5.0"});
        }
        let (status, v) = self.client.post("/v1/authorizations", &body).await?;
        // The merchant's local time, and UTC beside it (places differ by hours).
        let local = at.to_rfc3339_at_offset(place.offset);
        let utc = at.to_rfc3339();
        let hhmm = format!("{} ({} UTC)", &local[11..16], &utc[11..16]);
        let last4 = &card.pan[card.pan.len() - 4..];
        if status != 200 {
            println!("  {hhmm}  ****{last4}  HTTP {status}: {v}");
            return Ok(v);
        }
        let decision = v["decision"].as_str().unwrap_or("?").to_owned();
        if let Some(a) = v["authorization_id"].as_str()
            && self.seen.insert(a.to_owned())
        {
            *self.counts.entry(decision.clone()).or_default() += 1;
        }
        let interesting = decision != "approve" || !note.is_empty();
        if interesting {
            println!(
                "  {hhmm}  ****{last4}  {:<28} {:>14}  {:<9} {}  risk {:>3}  {}",
                format!("{} ({})", shop.1, place.city),
                fmt_money(amount, place.currency),
                decision,
                v["response_code"].as_str().unwrap_or("?"),
                v["risk_score"],
                note
            );
            for r in v["reasons"].as_array().into_iter().flatten() {
                println!(
                    "          {:<22} {}",
                    r["code"].as_str().unwrap_or(""),
                    r["detail"].as_str().unwrap_or("")
                );
            }
        }
        Ok(v)
    }
}

pub async fn run(addr: SocketAddr, key: &str, keys: DemoKeys) -> Result<()> {
    let client = Client::connect(addr, key).await?;
    let now = cardguard_core::SystemClock;
    let now = cardguard_core::Clock::now(&now);
    let prefix = format!("demo{}", now.0 / 1000);
    let mut d = Demo {
        client,
        keys,
        prefix,
        n: 0,
        counts: BTreeMap::new(),
        seen: std::collections::HashSet::new(),
        frauds: Vec::new(),
        staged: Vec::new(),
    };
    let mut rng = Rng::new(&[now.0 as u64]);
    let expiry = Expiry {
        year: 2029,
        month: 12,
    };
    let named = [
        ("hanako", "4123456789012349", TOKYO, Some("4524")),
        (
            "taro",
            luhn_pan(&mut rng, "3530", 16).leak() as &str,
            OSAKA,
            None,
        ),
        ("john", "5555555555554444", NEW_YORK, Some("1234")),
        ("amelia", "378282246310005", LONDON, None),
    ];
    let mut cards = Vec::new();
    for (name, pan, home, pin) in named {
        let csc = if pan.starts_with("37") {
            "1234".to_owned()
        } else {
            d.csc_for(pan, expiry, "101", &mut rng)
        };
        cards.push(DemoCard {
            name: name.into(),
            pan: pan.into(),
            expiry,
            service_code: "101",
            home,
            csc,
            pin: pin.map(str::to_owned),
        });
    }
    let homes = [TOKYO, OSAKA, NEW_YORK, LONDON];
    for i in 0..20 {
        let prefix = *rng.pick(&["4", "51", "3528", "4"]);
        let pan = luhn_pan(&mut rng, prefix, 16);
        let csc = d.csc_for(&pan, expiry, "101", &mut rng);
        cards.push(DemoCard {
            name: format!("holder{i:02}"),
            pan,
            expiry,
            service_code: "101",
            home: rng.pick(&homes).clone(),
            csc,
            pin: None,
        });
    }
    println!("demo: enrolling {} cards", cards.len());
    for c in &cards {
        d.enroll(c).await?;
    }
    let t0 = Timestamp((now.0 - 60 * 60_000) / 60_000 * 60_000);
    let at = |min: f64| Timestamp(t0.0 + (min * 60_000.0) as i64);
    println!(
        "demo: replaying an hour of traffic from {} (only what is not a plain approval is shown)",
        t0.to_rfc3339()
    );

    // Genuine traffic: each card shops at home a few times.
    let mut plan: Vec<(f64, usize, u64, usize)> = Vec::new();
    for (i, c) in cards.iter().enumerate() {
        for _ in 0..(4 + rng.below(5)) {
            let amount = (c.home.typical as f64 * (0.3 + rng.unit() * 1.4)) as u64;
            plan.push((
                rng.unit() * 58.0,
                i,
                amount.max(1),
                rng.below(SHOPS.len() as u64) as usize,
            ));
        }
    }
    plan.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut scripted = false;
    for (minute, i, amount, shop) in plan {
        if !scripted && minute > 20.0 {
            scripted = true;
            scenarios(&mut d, &cards, &at).await?;
            rest_of_the_hour();
        }
        let c = &cards[i];
        let csc = Some(c.csc.clone());
        d.send(
            None,
            at(minute),
            c,
            &c.home,
            SHOPS[shop],
            amount,
            "card_present",
            csc,
            None,
            None,
            "",
        )
        .await?;
    }
    if !scripted {
        scenarios(&mut d, &cards, &at).await?;
    }
    println!();
    let caught = d.staged.iter().filter(|s| s.1).count();
    println!(
        "demo: caught {caught} of the {} staged frauds:",
        d.staged.len()
    );
    for (what, ok, how) in &d.staged {
        println!("  {} {what}: {how}", if *ok { "caught" } else { "MISSED" });
    }
    for id in std::mem::take(&mut d.frauds) {
        let (s, v) = d
            .client
            .post(
                "/v1/labels",
                &json!({"authorization_id": id, "fraud": true, "source": "demo"}),
            )
            .await?;
        if s != 200 {
            println!("  label {id}: HTTP {s} {v}");
        }
    }
    let summary: Vec<String> = d.counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
    println!(
        "demo: done: {} authorizations: {} (the frauds are labelled; the server keeps serving)",
        d.seen.len(),
        summary.join(", ")
    );
    Ok(())
}

fn rest_of_the_hour() {
    println!(
        "  -- the rest of the hour's genuine traffic (only what is not a plain approval). The demo\n     \
         replays the hour in seconds, and the card-testing block lasts 10 minutes by the server's\n     \
         clock: Taro's genuine purchases stay declined for card testing until then."
    );
}

/// The reason codes of an answer, comma-separated.
fn reason_codes(v: &Value) -> String {
    let codes: Vec<&str> = v["reasons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["code"].as_str())
        .collect();
    if codes.is_empty() {
        "none".into()
    } else {
        codes.join(", ")
    }
}

/// Whether a staged fraud's answer stopped it, and how.
fn outcome(what: &'static str, v: &Value) -> (&'static str, bool, String) {
    let decision = v["decision"].as_str().unwrap_or("?");
    let how = format!(
        "{decision} {} at risk {} ({})",
        v["response_code"].as_str().unwrap_or("?"),
        v["risk_score"],
        reason_codes(v)
    );
    (what, decision != "approve", how)
}

async fn scenarios(d: &mut Demo, cards: &[DemoCard], at: &impl Fn(f64) -> Timestamp) -> Result<()> {
    let hanako = &cards[0];
    let taro = &cards[1];
    let john = &cards[2];
    let amelia = &cards[3];
    let csc = |c: &DemoCard| Some(c.csc.clone());

    println!(
        "\n  -- a cloned card: Hanako shops in Tokyo, her card is read in Los Angeles minutes later"
    );
    d.send(
        None,
        at(21.0),
        hanako,
        &TOKYO,
        SHOPS[3],
        12_800,
        "card_present",
        csc(hanako),
        None,
        None,
        "Tokyo",
    )
    .await?;
    let v = d
        .send(
            None,
            at(26.0),
            hanako,
            &LOS_ANGELES,
            SHOPS[3],
            189_900,
            "card_present",
            csc(hanako),
            None,
            None,
            "cloned card",
        )
        .await?;
    d.frauds
        .extend(v["authorization_id"].as_str().map(str::to_owned));
    d.staged
        .push(outcome("cloned card read in Los Angeles", &v));

    println!(
        "\n  -- card testing: wrong security codes on Taro's card in a burst at an online shop"
    );
    let mut testing_from = None;
    for k in 0..4 {
        let wrong = format!(
            "{:03}",
            (taro.csc.parse::<u32>().unwrap_or(0) + 1 + k) % 1000
        );
        let v = d
            .send(
                None,
                at(22.0 + f64::from(k) * 0.3),
                taro,
                &TOKYO,
                ("5816", "GAME CREDITS"),
                100,
                "ecommerce",
                Some(wrong),
                None,
                Some("dev-bot"),
                "wrong CSC",
            )
            .await?;
        if testing_from.is_none() && first_reason(&v) == "CARD_TESTING" {
            testing_from = Some(k + 1);
        }
        d.frauds
            .extend(v["authorization_id"].as_str().map(str::to_owned));
    }
    d.staged.push(match testing_from {
        Some(k) => (
            "card testing",
            true,
            format!("declined 59 (suspected fraud) from wrong code {k} of 4 on; the ones before it N7 (a wrong code)"),
        ),
        None => (
            "card testing",
            false,
            "four wrong codes each declined N7, never as card testing".into(),
        ),
    });

    if d.keys.pvk.is_some() {
        println!("\n  -- wrong PINs at an ATM on John's card");
        let mut last = Value::Null;
        for (k, pin) in ["1111", "2222", "3333", "1234"].iter().enumerate() {
            let note = if *pin == "1234" {
                "right PIN, but locked"
            } else {
                "wrong PIN"
            };
            last = d
                .send(
                    None,
                    at(23.0 + k as f64 * 0.5),
                    john,
                    &NEW_YORK,
                    ("6011", "ATM"),
                    20_000,
                    "atm",
                    None,
                    Some(pin),
                    None,
                    note,
                )
                .await?;
        }
        let locked = last["response_code"] == "75";
        d.staged.push((
            "PIN guessing at an ATM",
            locked,
            if locked {
                "the PIN locked at the 3rd wrong PIN (75); the right PIN after it refused too"
                    .into()
            } else {
                format!(
                    "the right PIN after three wrong ones answered {}",
                    last["response_code"]
                )
            },
        ));
    } else {
        println!("\n  -- (no [keys.pvk] in the config: the wrong-PIN scenario is skipped)");
    }

    println!(
        "\n  -- an account takeover: Amelia's card online from a new device, far above her usual spend"
    );
    // Five purchases of her own first: the amount check compares with a profile of five or
    // more approved purchases.
    for k in 0..5u32 {
        d.send(
            None,
            at(24.0 + f64::from(k) * 1.2),
            amelia,
            &LONDON,
            SHOPS[k as usize % SHOPS.len()],
            2500,
            "ecommerce",
            csc(amelia),
            None,
            Some("dev-amelia"),
            "her own device",
        )
        .await?;
    }
    let v = d
        .send(
            None,
            at(31.0),
            amelia,
            &NEW_YORK,
            ("5944", "JEWELLERY"),
            980_000,
            "ecommerce",
            csc(amelia),
            None,
            Some("dev-unknown"),
            "takeover",
        )
        .await?;
    d.frauds
        .extend(v["authorization_id"].as_str().map(str::to_owned));
    let mut o = outcome("account takeover (new device, far above her spend)", &v);
    if !o.1 {
        o.2 = format!(
            "{}: risk {}, and no rule of the active ruleset matched (an approval's answer carries no reasons)",
            o.2, v["risk_score"],
        );
    }
    d.staged.push(o);

    println!("\n  -- bad card data");
    let mut unknown = DemoCard {
        name: "nobody".into(),
        pan: "4000056655665556".into(),
        expiry: hanako.expiry,
        service_code: "101",
        home: TOKYO,
        csc: "123".into(),
        pin: None,
    };
    d.send(
        None,
        at(32.0),
        &unknown,
        &TOKYO,
        SHOPS[0],
        500,
        "card_present",
        Some("123".into()),
        None,
        None,
        "not our card",
    )
    .await?;
    unknown.pan = hanako.pan.clone();
    unknown.expiry = Expiry {
        year: 2028,
        month: 1,
    };
    d.send(
        None,
        at(33.0),
        &unknown,
        &TOKYO,
        SHOPS[0],
        500,
        "card_present",
        csc(hanako),
        None,
        None,
        "wrong expiry",
    )
    .await?;

    println!("\n  -- the acquirer retries a request: the same answer, no second effect");
    let id = format!("{}-retry", d.prefix);
    let mut answers = Vec::new();
    for note in ["first try", "retry"] {
        let v = d
            .send(
                Some(id.clone()),
                at(34.0),
                taro,
                &OSAKA,
                SHOPS[1],
                1_500,
                "card_present",
                csc(taro),
                None,
                None,
                note,
            )
            .await?;
        answers.push(v);
    }
    let (a, b) = (&answers[0], &answers[1]);
    println!(
        "          same authorization_id: {}",
        a["authorization_id"] == b["authorization_id"] && a["authorization_id"].is_string()
    );
    println!();
    Ok(())
}
