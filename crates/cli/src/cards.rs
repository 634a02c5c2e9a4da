//! `cardguard cards import FILE`: an issuer's portfolio in one go, from CSV (columns named
//! by the enrollment record's field paths, `csc.method`, `home.lat`, …) or JSON Lines (one
//! `POST /v1/cards` body a line). Into a data directory directly (the server stopped), or
//! through `POST /v1/cards:batch` of a running server. A bad row is reported with its line
//! and field; the other rows go in.

use crate::progress::Progress;
use anyhow::{Context, Result, bail};
use cardguard_app::{App, AppError, CardRecord, Config, FieldError};
use cardguard_core::SystemClock;
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Subcommand)]
pub enum CardsCmd {
    /// Enroll every card of a CSV or JSON Lines file.
    Import(ImportArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

#[derive(clap::Args)]
pub struct ImportArgs {
    /// The file: `.csv`, or `.jsonl` / `.ndjson` (one enrollment body a line).
    file: PathBuf,
    /// The format, when the file's extension does not say.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Data directory to enroll into (with no server running on it).
    #[arg(long, default_value = "cardguard-data")]
    data_dir: PathBuf,
    /// TOML config file (the keys the cards name); CARDGUARD__SECTION__KEY overrides it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Enroll through a running server at this address instead (POST /v1/cards:batch).
    #[arg(long)]
    server: Option<SocketAddr>,
    /// API key with the admin scope, for --server.
    #[arg(long, env = "CARDGUARD_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Cards per batch (one store transaction each).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
}

pub fn run(cmd: CardsCmd) -> Result<()> {
    match cmd {
        CardsCmd::Import(a) => import(a),
    }
}

/// Where the cards go.
enum Sink {
    Local(Box<App>),
    Remote {
        rt: tokio::runtime::Runtime,
        client: cardguard_server::client::Client,
    },
}

impl Sink {
    /// Enrolls a batch; for each card, whether it is new, or why it was refused.
    fn enroll(&mut self, cards: &[CardRecord]) -> Result<Vec<Result<bool, FieldError>>> {
        match self {
            Sink::Local(app) => Ok(app
                .enroll_batch(cards)?
                .into_iter()
                .map(|r| r.map(|e| e.created).map_err(field_of))
                .collect()),
            Sink::Remote { rt, client } => {
                let body = serde_json::json!({ "cards": cards });
                let (status, v) = rt.block_on(client.post("/v1/cards:batch", &body))?;
                if status != 200 {
                    bail!("the server refused the batch: {status} {v}");
                }
                let results = v["results"]
                    .as_array()
                    .context("no results in the answer")?;
                Ok(results
                    .iter()
                    .map(|r| match r.get("error") {
                        Some(e) => Err(FieldError::new(
                            e["field"].as_str().unwrap_or(""),
                            e["message"].as_str().unwrap_or("refused"),
                        )),
                        None => Ok(r["created"].as_bool().unwrap_or(false)),
                    })
                    .collect())
            }
        }
    }
}

/// What the import did so far; refused rows are listed (the first 50) as they come.
#[derive(Default)]
struct Tally {
    created: u64,
    updated: u64,
    refused: u64,
}

impl Tally {
    fn refuse(&mut self, line: u64, e: &FieldError) {
        self.refused += 1;
        if self.refused <= 50 {
            let field = if e.field.is_empty() {
                String::new()
            } else {
                format!("{} ", e.field)
            };
            eprintln!("line {line}: {field}{}", e.message);
        } else if self.refused == 51 {
            eprintln!("(more refused rows are counted, not listed)");
        }
    }

    /// Enrolls the rows in `batch` (line, record) and empties it.
    fn flush(&mut self, sink: &mut Sink, batch: &mut Vec<(u64, CardRecord)>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let (lines, records): (Vec<u64>, Vec<CardRecord>) = batch.drain(..).unzip();
        for (r, line) in sink.enroll(&records)?.into_iter().zip(lines) {
            match r {
                Ok(true) => self.created += 1,
                Ok(false) => self.updated += 1,
                Err(e) => self.refuse(line, &e),
            }
        }
        Ok(())
    }
}

fn field_of(e: AppError) -> FieldError {
    match e {
        AppError::Invalid(f) => f,
        other => FieldError::new("", other.to_string()),
    }
}

/// One row read: its line and the record or why it is not one.
type Row = (u64, Result<CardRecord, FieldError>);

/// Reads rows and reports how far into the file it is (bytes).
trait Rows {
    fn next_row(&mut self) -> Result<Option<Row>>;
    fn position(&self) -> u64;
}

struct CsvRows {
    reader: csv::Reader<std::fs::File>,
    headers: Vec<String>,
    record: csv::StringRecord,
}

impl Rows for CsvRows {
    fn next_row(&mut self) -> Result<Option<Row>> {
        if !self.reader.read_record(&mut self.record)? {
            return Ok(None);
        }
        let line = self.record.position().map_or(0, csv::Position::line);
        let cells = self
            .headers
            .iter()
            .map(String::as_str)
            .zip(self.record.iter());
        Ok(Some((line, CardRecord::from_columns(cells))))
    }
    fn position(&self) -> u64 {
        self.reader.position().byte()
    }
}

struct JsonRows {
    reader: std::io::BufReader<std::fs::File>,
    line: u64,
    bytes: u64,
    buf: String,
}

impl Rows for JsonRows {
    fn next_row(&mut self) -> Result<Option<Row>> {
        loop {
            self.buf.clear();
            let n = self.reader.read_line(&mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            self.bytes += n as u64;
            let text = self.buf.trim();
            if text.is_empty() {
                continue;
            }
            let rec = cardguard_app::validate::decode_json::<CardRecord>(text.as_bytes())
                .map_err(FieldError::from);
            return Ok(Some((self.line, rec)));
        }
    }
    fn position(&self) -> u64 {
        self.bytes
    }
}

fn open_rows(path: &Path, format: Format) -> Result<Box<dyn Rows>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(match format {
        Format::Csv => {
            let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(file);
            let headers: Vec<String> = reader
                .headers()
                .with_context(|| format!("reading the header of {}", path.display()))?
                .iter()
                .map(|h| h.trim().to_owned())
                .collect();
            if let Some(h) = headers
                .iter()
                .find(|h| !CardRecord::CSV_COLUMNS.contains(&h.as_str()))
            {
                bail!(
                    "{}: column {h:?} is not a field of a card (known: {})",
                    path.display(),
                    CardRecord::CSV_COLUMNS.join(", ")
                );
            }
            Box::new(CsvRows {
                reader,
                headers,
                record: csv::StringRecord::new(),
            })
        }
        Format::Jsonl => Box::new(JsonRows {
            reader: std::io::BufReader::with_capacity(1 << 20, file),
            line: 0,
            bytes: 0,
            buf: String::new(),
        }),
    })
}

fn import(a: ImportArgs) -> Result<()> {
    let format = match (a.format, a.file.extension().and_then(|e| e.to_str())) {
        (Some(f), _) => f,
        (None, Some("csv")) => Format::Csv,
        (None, Some("jsonl" | "ndjson" | "json")) => Format::Jsonl,
        _ => bail!("say --format csv or --format jsonl: the file's extension does not tell"),
    };
    if a.batch == 0 || a.batch > 10_000 {
        bail!("--batch must be 1 to 10000");
    }
    let size = std::fs::metadata(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?
        .len();
    let mut rows = open_rows(&a.file, format)?;
    let mut sink = match a.server {
        Some(addr) => {
            let key = a
                .key
                .clone()
                .context("--server needs --key (or CARDGUARD_API_KEY)")?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let client = rt.block_on(cardguard_server::client::Client::connect(addr, &key))?;
            Sink::Remote { rt, client }
        }
        None => {
            let config = Config::load(a.config.as_deref(), std::env::vars())
                .context("loading the configuration")?;
            let (app, _) = App::open(config, &a.data_dir, Arc::new(SystemClock))
                .with_context(|| format!("opening data directory {}", a.data_dir.display()))?;
            Sink::Local(Box::new(app))
        }
    };
    let mut progress = Progress::new("importing cards", size);
    let mut tally = Tally::default();
    let mut batch: Vec<(u64, CardRecord)> = Vec::with_capacity(a.batch);
    while let Some((line, row)) = rows.next_row()? {
        match row {
            Ok(rec) => batch.push((line, rec)),
            Err(e) => tally.refuse(line, &e),
        }
        if batch.len() == a.batch {
            tally.flush(&mut sink, &mut batch)?;
            progress.set(
                rows.position(),
                &format!("{} cards", tally.created + tally.updated),
            );
        }
    }
    tally.flush(&mut sink, &mut batch)?;
    let Tally {
        created,
        updated,
        refused,
    } = tally;
    let secs = progress.elapsed().as_secs_f64();
    progress.finish(&format!(
        "{} cards enrolled ({created} new, {updated} updated, {:.0}/s), {refused} rows refused",
        created + updated,
        (created + updated) as f64 / secs.max(1e-9)
    ));
    if refused > 0 {
        bail!("{refused} rows were refused (listed above); the others are enrolled");
    }
    Ok(())
}
