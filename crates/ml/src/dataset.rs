//! Labelled transactions for training and evaluation, read from CSV (plain or gzip): the
//! engine's own schema (what `cardguard simulate` writes) and the fraud detection handbook's
//! (`CUSTOMER_ID` is a card, `TERMINAL_ID` a terminal). The first line tells them apart.
//!
//! The engine schema, one transaction per line:
//!
//! `TRANSACTION_ID,TX_DATETIME,CARD_ID,MERCHANT_ID,TERMINAL_ID,MCC,COUNTRY,LAT,LON,CHANNEL,
//! TX_TYPE,AMOUNT,CURRENCY,DEVICE_ID,HOME_COUNTRY,HOME_LAT,HOME_LON,CSC,PIN,TX_FRAUD,
//! TX_FRAUD_SCENARIO`
//!
//! with `TX_DATETIME` in RFC 3339 with the local offset, `AMOUNT` in minor units, `CHANNEL` one
//! of `card_present`, `ecommerce`, `moto`, `atm`, `TX_TYPE` one of `purchase`,
//! `cash_advance`, `refund`, `CSC` and `PIN` one of `none`, `match`/`correct`,
//! `mismatch`/`wrong`, and empty cells for what is unknown (no location, no device).

use crate::MlError;
use cardguard_core::{Channel, Country, Currency, Mcc, Timestamp, TxType};
use cardguard_engine::{CscCheck, PinCheck};
use std::io::{BufRead, BufReader, Read, Write};

/// One labelled transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub id: u64,
    pub ts_ms: i64,
    /// The offset of the local time the transaction happened in, minutes east of UTC.
    pub utc_offset_min: i16,
    pub card: u64,
    pub merchant: u64,
    pub terminal: u64,
    pub mcc: Mcc,
    pub country: Country,
    /// Latitude and longitude of the terminal, when it has a place.
    pub location: Option<(f32, f32)>,
    pub channel: Channel,
    pub tx_type: TxType,
    /// Amount in minor units of `currency`.
    pub amount_minor: u64,
    pub currency: Currency,
    pub device: Option<u64>,
    /// The cardholder's home country and place, when known.
    pub home: Option<(Country, f32, f32)>,
    pub csc: CscCheck,
    pub pin: PinCheck,
    pub fraud: bool,
    /// How the simulator made the fraud (0 for genuine). Never a model input.
    pub scenario: u8,
}

/// The column names of the engine schema, in order.
pub const ENGINE_COLUMNS: &[&str] = &[
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CARD_ID",
    "MERCHANT_ID",
    "TERMINAL_ID",
    "MCC",
    "COUNTRY",
    "LAT",
    "LON",
    "CHANNEL",
    "TX_TYPE",
    "AMOUNT",
    "CURRENCY",
    "DEVICE_ID",
    "HOME_COUNTRY",
    "HOME_LAT",
    "HOME_LON",
    "CSC",
    "PIN",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
];

const HANDBOOK_COLUMNS: &[&str] = &[
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_TIME_SECONDS",
    "TX_TIME_DAYS",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
];

/// Which schema a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Engine,
    Handbook,
}

/// A dataset: its transactions in time order, and what it was read as.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub schema: Schema,
    /// The base currency amount features are in: the file's only currency, or JPY (the
    /// engine's reference rates) when it has several.
    pub currency: Currency,
    pub transactions: Vec<Transaction>,
}

impl Dataset {
    /// Reads CSV from `r`, gzip-compressed or not (told apart by the magic bytes).
    pub fn read(r: impl Read) -> Result<Dataset, MlError> {
        let mut br = BufReader::with_capacity(1 << 20, r);
        let gz = br
            .fill_buf()
            .map_err(MlError::Io)?
            .starts_with(&[0x1f, 0x8b]);
        if gz {
            Self::read_csv(BufReader::with_capacity(
                1 << 20,
                flate2::bufread::MultiGzDecoder::new(br),
            ))
        } else {
            Self::read_csv(br)
        }
    }

    fn read_csv(r: impl Read) -> Result<Dataset, MlError> {
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(r);
        let headers = rdr.headers().map_err(csv_err(1))?.clone();
        let names: Vec<&str> = headers.iter().map(str::trim).collect();
        let schema = if names == HANDBOOK_COLUMNS {
            Schema::Handbook
        } else if names == ENGINE_COLUMNS {
            Schema::Engine
        } else {
            return Err(MlError::Format {
                line: 1,
                why: format!(
                    "unknown columns; expected the engine schema ({}) or the handbook's ({})",
                    ENGINE_COLUMNS.join(","),
                    HANDBOOK_COLUMNS.join(",")
                ),
            });
        };
        let mut txs = Vec::new();
        let mut rec = csv::StringRecord::new();
        let mut line = 1u64;
        let mut currency: Option<Currency> = None;
        let mut mixed = false;
        while rdr.read_record(&mut rec).map_err(csv_err(line + 1))? {
            line += 1;
            let t = match schema {
                Schema::Handbook => handbook_row(&rec),
                Schema::Engine => engine_row(&rec),
            }
            .map_err(|why| MlError::Format { line, why })?;
            match currency {
                None => currency = Some(t.currency),
                Some(c) if c != t.currency => mixed = true,
                Some(_) => {}
            }
            txs.push(t);
        }
        // Time order (stable: equal times keep the file's order, then by id).
        if !txs.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms) {
            txs.sort_by_key(|t| (t.ts_ms, t.id));
        }
        Ok(Dataset {
            schema,
            // One currency: that one; several: JPY, which the reference rates are in.
            currency: if mixed {
                Currency::JPY
            } else {
                currency.unwrap_or(Currency::EUR)
            },
            transactions: txs,
        })
    }

    /// Writes the transactions in the engine schema.
    pub fn write_engine_csv(txs: &[Transaction], w: impl Write) -> Result<(), MlError> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, w);
        writeln!(out, "{}", ENGINE_COLUMNS.join(",")).map_err(MlError::Io)?;
        let mut line = String::with_capacity(256);
        for t in txs {
            line.clear();
            engine_line(t, &mut line);
            out.write_all(line.as_bytes()).map_err(MlError::Io)?;
        }
        out.flush().map_err(MlError::Io)
    }
}

fn csv_err(line: u64) -> impl Fn(csv::Error) -> MlError {
    move |e| MlError::Format {
        line,
        why: e.to_string(),
    }
}

fn field<'a>(rec: &'a csv::StringRecord, i: usize, name: &str) -> Result<&'a str, String> {
    rec.get(i)
        .map(str::trim)
        .ok_or_else(|| format!("missing {name}"))
}

fn num<T: std::str::FromStr>(rec: &csv::StringRecord, i: usize, name: &str) -> Result<T, String> {
    field(rec, i, name)?
        .parse()
        .map_err(|_| format!("{name} is not a number"))
}

fn opt_num<T: std::str::FromStr>(
    rec: &csv::StringRecord,
    i: usize,
    name: &str,
) -> Result<Option<T>, String> {
    let s = field(rec, i, name)?;
    if s.is_empty() {
        Ok(None)
    } else {
        s.parse()
            .map(Some)
            .map_err(|_| format!("{name} is not a number"))
    }
}

fn label(rec: &csv::StringRecord, i: usize) -> Result<bool, String> {
    match field(rec, i, "TX_FRAUD")? {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err("TX_FRAUD must be 0 or 1".into()),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM:SS` (the handbook's, UTC) to ms since the epoch.
fn handbook_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, se) = (n(11..13)?, n(14..16)?, n(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60_000 + se * 1000)
}

const HANDBOOK_MCC: u16 = 5999;

fn handbook_row(rec: &csv::StringRecord) -> Result<Transaction, String> {
    let ts_ms = handbook_time(field(rec, 1, "TX_DATETIME")?)
        .ok_or("TX_DATETIME is not YYYY-MM-DD HH:MM:SS")?;
    let amount: f64 = num(rec, 4, "TX_AMOUNT")?;
    if !(0.0..1e12).contains(&amount) {
        return Err("TX_AMOUNT out of range".into());
    }
    let terminal: u64 = num(rec, 3, "TERMINAL_ID")?;
    Ok(Transaction {
        id: num(rec, 0, "TRANSACTION_ID")?,
        ts_ms,
        utc_offset_min: 0,
        card: num(rec, 2, "CUSTOMER_ID")?,
        merchant: terminal,
        terminal,
        mcc: Mcc::parse(&HANDBOOK_MCC.to_string()).map_err(|e| e.to_string())?,
        country: Country::parse("US").map_err(|e| e.to_string())?,
        location: None,
        channel: Channel::CardPresent,
        tx_type: TxType::Purchase,
        amount_minor: (amount * 100.0).round() as u64,
        currency: Currency::EUR,
        device: None,
        home: None,
        csc: CscCheck::NotPresented,
        pin: PinCheck::NotPresented,
        fraud: label(rec, 7)?,
        scenario: num(rec, 8, "TX_FRAUD_SCENARIO")?,
    })
}

fn channel(s: &str) -> Result<Channel, String> {
    Channel::parse(s).map_err(|e| format!("CHANNEL {e}"))
}

fn tx_type(s: &str) -> Result<TxType, String> {
    TxType::parse(s).map_err(|e| format!("TX_TYPE {e}"))
}

fn csc_of(s: &str) -> Result<CscCheck, String> {
    Ok(match s {
        "" | "none" => CscCheck::NotPresented,
        "match" => CscCheck::Match,
        "mismatch" => CscCheck::Mismatch,
        "unverifiable" => CscCheck::Unverifiable,
        _ => return Err("CSC must be none, match, mismatch or unverifiable".into()),
    })
}

fn csc_str(c: CscCheck) -> &'static str {
    match c {
        CscCheck::NotPresented => "none",
        CscCheck::Match => "match",
        CscCheck::Mismatch => "mismatch",
        CscCheck::Unverifiable => "unverifiable",
    }
}

fn pin_of(s: &str) -> Result<PinCheck, String> {
    Ok(match s {
        "" | "none" => PinCheck::NotPresented,
        "correct" => PinCheck::Correct,
        "wrong" => PinCheck::Wrong,
        "unverifiable" => PinCheck::Unverifiable,
        _ => return Err("PIN must be none, correct, wrong or unverifiable".into()),
    })
}

fn pin_str(p: PinCheck) -> &'static str {
    match p {
        PinCheck::NotPresented => "none",
        PinCheck::Correct => "correct",
        PinCheck::Wrong => "wrong",
        PinCheck::Unverifiable => "unverifiable",
    }
}

fn place(lat: Option<f32>, lon: Option<f32>, what: &str) -> Result<Option<(f32, f32)>, String> {
    match (lat, lon) {
        (Some(a), Some(o)) if (-90.0..=90.0).contains(&a) && (-180.0..=180.0).contains(&o) => {
            Ok(Some((a, o)))
        }
        (None, None) => Ok(None),
        _ => Err(format!(
            "{what} needs both a latitude and a longitude in range"
        )),
    }
}

fn engine_row(rec: &csv::StringRecord) -> Result<Transaction, String> {
    let (ts, off) = Timestamp::parse_rfc3339_with_offset(field(rec, 1, "TX_DATETIME")?)
        .map_err(|e| format!("TX_DATETIME {e}"))?;
    let home = match field(rec, 14, "HOME_COUNTRY")? {
        "" => None,
        c => {
            let c = Country::parse(c).map_err(|e| format!("HOME_COUNTRY {e}"))?;
            let at = place(
                opt_num(rec, 15, "HOME_LAT")?,
                opt_num(rec, 16, "HOME_LON")?,
                "the home",
            )?
            .ok_or("HOME_COUNTRY needs HOME_LAT and HOME_LON")?;
            Some((c, at.0, at.1))
        }
    };
    Ok(Transaction {
        id: num(rec, 0, "TRANSACTION_ID")?,
        ts_ms: ts.0,
        utc_offset_min: off,
        card: num(rec, 2, "CARD_ID")?,
        merchant: num(rec, 3, "MERCHANT_ID")?,
        terminal: num(rec, 4, "TERMINAL_ID")?,
        mcc: Mcc::parse(field(rec, 5, "MCC")?).map_err(|e| format!("MCC {e}"))?,
        country: Country::parse(field(rec, 6, "COUNTRY")?).map_err(|e| format!("COUNTRY {e}"))?,
        location: place(
            opt_num(rec, 7, "LAT")?,
            opt_num(rec, 8, "LON")?,
            "the terminal",
        )?,
        channel: channel(field(rec, 9, "CHANNEL")?)?,
        tx_type: tx_type(field(rec, 10, "TX_TYPE")?)?,
        amount_minor: num(rec, 11, "AMOUNT")?,
        currency: Currency::parse(field(rec, 12, "CURRENCY")?)
            .map_err(|e| format!("CURRENCY {e}"))?,
        device: opt_num(rec, 13, "DEVICE_ID")?,
        home,
        csc: csc_of(field(rec, 17, "CSC")?)?,
        pin: pin_of(field(rec, 18, "PIN")?)?,
        fraud: label(rec, 19)?,
        scenario: num(rec, 20, "TX_FRAUD_SCENARIO")?,
    })
}

/// One transaction as a line of the engine schema (with its newline).
pub(crate) fn engine_line(t: &Transaction, out: &mut String) {
    use std::fmt::Write as _;
    let ts = Timestamp(t.ts_ms).to_rfc3339_at_offset(t.utc_offset_min);
    let (lat, lon) = match t.location {
        Some((a, o)) => (format!("{a:.5}"), format!("{o:.5}")),
        None => (String::new(), String::new()),
    };
    let (hc, hlat, hlon) = match t.home {
        Some((c, a, o)) => (c.to_string(), format!("{a:.5}"), format!("{o:.5}")),
        None => (String::new(), String::new(), String::new()),
    };
    let _ = writeln!(
        out,
        "{},{ts},{},{},{},{},{},{lat},{lon},{},{},{},{},{},{hc},{hlat},{hlon},{},{},{},{}",
        t.id,
        t.card,
        t.merchant,
        t.terminal,
        t.mcc,
        t.country,
        t.channel.as_str(),
        t.tx_type.as_str(),
        t.amount_minor,
        t.currency.code(),
        t.device.map(|d| d.to_string()).unwrap_or_default(),
        csc_str(t.csc),
        pin_str(t.pin),
        u8::from(t.fraud),
        t.scenario,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDBOOK: &str = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO\n\
        0,2018-04-01 00:00:31,596,3156,57.16,31,0,0,0\n\
        1,2018-04-01 00:02:10,4961,3412,81.51,130,0,1,1\n";

    #[test]
    fn reads_the_handbook_plain_and_gzip() {
        let d = Dataset::read(HANDBOOK.as_bytes()).unwrap();
        assert_eq!(d.schema, Schema::Handbook);
        assert_eq!(d.transactions.len(), 2);
        let t = &d.transactions[1];
        assert_eq!(
            (t.id, t.card, t.terminal, t.amount_minor),
            (1, 4961, 3412, 8151)
        );
        assert!(t.fraud);
        // 2018-04-01T00:02:10Z
        assert_eq!(t.ts_ms, 1_522_540_930_000);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(HANDBOOK.as_bytes()).unwrap();
        let z = gz.finish().unwrap();
        assert_eq!(
            Dataset::read(z.as_slice()).unwrap().transactions,
            d.transactions
        );
    }

    #[test]
    fn the_engine_schema_round_trips() {
        let t = Transaction {
            id: 7,
            ts_ms: 1_700_000_000_000,
            utc_offset_min: 540,
            card: 12,
            merchant: 3,
            terminal: 31,
            mcc: Mcc::parse("5411").unwrap(),
            country: Country::parse("JP").unwrap(),
            location: Some((35.68, 139.76)),
            channel: Channel::CardPresent,
            tx_type: TxType::Purchase,
            amount_minor: 5400,
            currency: Currency::JPY,
            device: None,
            home: Some((Country::parse("JP").unwrap(), 35.6, 139.7)),
            csc: CscCheck::Mismatch,
            pin: PinCheck::Correct,
            fraud: true,
            scenario: 5,
        };
        let mut buf = Vec::new();
        Dataset::write_engine_csv(std::slice::from_ref(&t), &mut buf).unwrap();
        let d = Dataset::read(buf.as_slice()).unwrap();
        assert_eq!(d.schema, Schema::Engine);
        assert_eq!(d.currency, Currency::JPY);
        assert_eq!(d.transactions, vec![t]);
    }

    #[test]
    fn bad_rows_name_the_line_and_the_column() {
        let bad = HANDBOOK.replace("81.51", "eighty");
        match Dataset::read(bad.as_bytes()) {
            Err(MlError::Format { line, why }) => {
                assert_eq!(line, 3);
                assert!(why.contains("TX_AMOUNT"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let bad = HANDBOOK.replace("2018-04-01 00:00:31", "2018-13-01 00:00:31");
        assert!(matches!(
            Dataset::read(bad.as_bytes()),
            Err(MlError::Format { line: 2, .. })
        ));
        assert!(matches!(
            Dataset::read("A,B\n1,2\n".as_bytes()),
            Err(MlError::Format { line: 1, .. })
        ));
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2018, 4, 1), 17_622);
    }
}
