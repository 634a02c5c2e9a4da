//! `App`, the application core: opening the data directory (keys, card registry, snapshot,
//! log replay), authorizations, labels, enrollment, model and brand reloads, snapshots and
//! statistics. It knows no transport: it takes domain values and returns domain results.
//!
//! One mutex guards the engine and the log's writer together, so the order of the log is
//! the order in which the engine applied the events. Decisions take a few microseconds
//! under it; the wait for the disk happens outside it.

use crate::access::ClientId;
use crate::config::{Config, DurabilitySetting};
use crate::enroll::CardRecord;
use crate::error::{AppError, OpenError};
use crate::keys::KeyRing;
use crate::registry::{self, CardInfo, CscMethod, Cvv2ServiceCode, Registry};
use cardguard_core::{Authorization, CardToken, Clock, Timestamp};
use cardguard_engine::{
    Answer, AnswerRecord, AuthEntry, AuthRecord, CardChecks, Draft, Engine, EngineState,
    EngineStats, Event, LabelRecord, ReversalRecord, TxFacts,
};
use cardguard_store::{
    CardRepository, Durability, EventLog, EventReader, EventWriter, SqliteCards,
};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// What opening found, for the start-up log line.
#[derive(Debug, Clone, Default)]
pub struct OpenSummary {
    pub cards: usize,
    pub snapshot_offset: Option<u64>,
    pub replayed: u64,
    pub log_frames: u64,
    pub truncated_bytes: u64,
    pub created_keys: Vec<&'static str>,
    /// Time spent loading the card registry, restoring the snapshot, reading the log.
    pub cards_ms: u128,
    pub snapshot_ms: u128,
    pub replay_ms: u128,
    pub elapsed_ms: u128,
}

/// An enrolled card, as the issuer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub card_token: CardToken,
    pub last4: String,
    pub brand: &'static str,
    /// A new card (not an update of an enrolled one).
    pub created: bool,
}

/// Whether the service can do its work, and what is wrong if not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// `ok`; `degraded` (it decides, but something needs an operator); `unavailable` (it
    /// cannot take authorizations).
    pub status: &'static str,
    pub problems: Vec<String>,
}

impl Health {
    pub fn is_available(&self) -> bool {
        self.status != "unavailable"
    }
}

/// The check of the log's frames that a snapshot covers, run in the background at open.
#[derive(Debug, Clone)]
enum PrefixCheck {
    Running,
    Passed,
    Failed(String),
}

/// Room to write the log in: the free bytes of the file system that holds `dir` (for the
/// user the process runs as), and no more than the process's file size limit leaves past
/// `log_end` (`ulimit -f`, systemd's `LimitFSIZE`).
fn room(dir: &Path, log_end: u64) -> u64 {
    let mut lim = std::mem::MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: getrlimit fills `lim` on success.
    let by_limit = if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, lim.as_mut_ptr()) } == 0 {
        // SAFETY: getrlimit succeeded.
        let cur = unsafe { lim.assume_init() }.rlim_cur;
        if cur == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            cur.saturating_sub(log_end)
        }
    } else {
        u64::MAX
    };
    free_bytes(dir).unwrap_or(0).min(by_limit)
}

/// Free bytes on the file system that holds `dir`, for the user the process runs as.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid C string and `st` a buffer statvfs fills on success.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs succeeded, so `st` is initialised.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Room the disk must have before a failed writer takes appends again: a few frames and
/// the card database's next transactions.
const RECOVERY_ROOM: u64 = 8 << 20;

/// Counts of the state and the log, for operators.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub cards_enrolled: usize,
    pub engine: EngineStats,
    pub log_bytes: u64,
    pub log_durable_bytes: u64,
    pub model: String,
    pub now: String,
}

type Durable = tokio::sync::oneshot::Receiver<Result<(), cardguard_store::StoreError>>;

enum Step {
    /// The request id was answered before; its event is at this offset.
    Seen(u64),
    /// The request id was answered before for another request; its event is here.
    Conflict(u64, Box<TxFacts>),
    /// The decision needs the model's reasons: computed outside the lock, then tried again.
    NeedsReasons(Box<(cardguard_engine::Pending, TxFacts)>),
    Logged {
        durable: Durable,
        record: Box<AuthRecord>,
    },
}

/// Which authorization a reversal takes back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Original {
    /// The client's own request id of it.
    Request(String),
    /// cardguard's authorization id (`au_…`).
    Authorization(String),
}

/// A reversal as a front door received it.
#[derive(Debug, Clone)]
pub struct ReversalRequest {
    pub original: Original,
    /// The card and the amount the reversal names, when it names them: they must be the
    /// original's.
    pub pan: Option<cardguard_core::Pan>,
    pub amount: Option<cardguard_core::Money>,
    /// What sent it (`iso8583 0400`, `api`), and its own reference, for the log.
    pub source: String,
    pub reference: Option<String>,
}

/// A reversal done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reversed {
    pub authorization_id: String,
    /// False when the authorization had been reversed before: nothing changed.
    pub first: bool,
}

/// What a cardholder's answer page shows.
#[derive(Debug, Clone)]
pub struct AnswerView {
    pub record: AuthRecord,
    pub card: Option<Arc<CardInfo>>,
    /// The answer given so far.
    pub answer: Answer,
}

/// The shadow candidate's decisions beside the active ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowTally {
    pub since_ms: i64,
    /// By active decision, then shadow decision (approve, decline, hold, challenge).
    pub counts: [[u64; 4]; 4],
}

/// An authorization as `GET /v1/authorizations/{id}` shows it.
#[derive(Debug, Clone)]
pub struct AuthorizationView {
    pub record: AuthRecord,
    /// What became of it: label, reversal, the cardholder's answer.
    pub entry: cardguard_engine::AuthEntry,
    /// The decision's rules evaluated again; none when no rule was consulted.
    pub replay: Option<Replayed>,
}

/// A decision's rules evaluated again on what the decision saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub matched_rules: Vec<String>,
    /// The same rules matched as when it was decided.
    pub agrees: bool,
}

/// An answer recorded (or the one recorded before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answered {
    pub authorization_id: String,
    /// The answer in force: "it was me".
    pub yes: bool,
    /// False when the authorization had been answered before.
    pub first: bool,
}

/// What an answer waits for before it is given.
enum Wait {
    Event(Durable),
    Upto(u64),
}

struct Core {
    engine: Engine,
    log: Box<dyn EventWriter>,
    /// How the events are written (`storage.event_encoding`).
    encoding: cardguard_engine::EventEncoding,
    since_snapshot: u64,
}

pub struct App {
    pub config: Config,
    data_dir: PathBuf,
    keys: KeyRing,
    registry: Registry,
    cards_db: Arc<dyn CardRepository>,
    core: Mutex<Core>,
    reader: Arc<dyn EventReader>,
    clock: Arc<dyn Clock>,
    cvv2: Cvv2ServiceCode,
    /// The engine's reference rates, for the amount in the base currency.
    fx: cardguard_engine::FxRates,
    snapshots: Arc<crate::snapshots::SnapshotWriter>,
    pub metrics: crate::metrics::Metrics,
    /// Swapped whole when the brands file is reloaded; scans hold their own `Arc`.
    brands: RwLock<Arc<cardguard_phish::BrandRegistry>>,
    /// SPF, DKIM and DMARC for scanned mail, when configured.
    sender_verifier: Option<cardguard_mailauth::SenderVerifier>,
    /// The background check of the frames the snapshot covers.
    prefix_check: Arc<Mutex<PrefixCheck>>,
    /// Holds waiting for the cardholder, and the cases a "not me" opens (`notify.db`).
    holds: Arc<cardguard_store::SqliteHolds>,
    /// The notification outbox (`notify.db`).
    outbox: Arc<cardguard_store::SqliteOutbox>,
    /// Step-up authentications, trusted devices, authenticator apps (`stepup.db`).
    stepup: crate::stepup::StepUp,
    /// The online account's password policy.
    passwords: crate::password::PasswordPolicy,
    /// Every analyst and cardholder action, rule change and key change (`audit.log`).
    audit: cardguard_store::AuditLog,
    /// Cases and the card transactions they are about (`cases.db`).
    cases: cardguard_store::SqliteCases,
    /// The ruleset in force, its versions, and the lists (`policy.db`).
    rules: crate::rules::RuleBook,
    /// The candidate model of shadow mode (`engine.shadow_model_file`).
    shadow_model: RwLock<Option<Arc<dyn cardguard_engine::Scorer>>>,
    /// When the shadow candidate was set, and the shadow counters of the metrics then: the
    /// comparison since is the counters' growth.
    shadow_since: Mutex<ShadowTally>,
    /// The rules file's text as last read: a change of the file is put in force, not a
    /// file that merely differs from a ruleset put through the API since.
    rules_file_seen: Mutex<Option<String>>,
    /// The live traffic's drift from the model's training data (replaced with the model).
    drift: RwLock<Arc<crate::drift::DriftMonitor>>,
    /// Metrics of parts running beside the application (see [`App::add_metrics`]).
    metric_sources: RwLock<Vec<MetricSource>>,
    /// The consumers started, with where their positions are saved (for their lag).
    consumers: Mutex<Vec<(String, Arc<cardguard_store::FileCursors>)>>,
    /// The data directory's lock, held while the application is open.
    _lock: cardguard_store::DirLock,
}

/// A card's authenticator-app key and the last time step it took.
type TotpKey = (Vec<u8>, Option<i64>);

/// The text exposition of some metrics, made when `/metrics` is read.
pub type MetricSource = Arc<dyn Fn() -> String + Send + Sync>;

fn log_error(e: cardguard_store::StoreError) -> AppError {
    AppError::Unavailable(format!("event log: {e}"))
}

/// Appends one event (under the engine lock): its offset, and what says when it is durable.
fn append<T: Serialize>(core: &mut Core, kind: u8, rec: &T) -> Result<(u64, Durable), AppError> {
    let payload = cardguard_engine::encode_event(rec, core.encoding)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let offset = core
        .log
        .append(
            kind,
            &payload,
            Box::new(move |r| {
                let _ = tx.send(r);
            }),
        )
        .map_err(log_error)?;
    Ok((offset, rx))
}

/// Waits until an appended event is durable.
async fn durable(rx: Durable) -> Result<(), AppError> {
    match rx.await {
        Ok(r) => r.map_err(log_error),
        Err(_) => Err(AppError::Unavailable("event log writer stopped".into())),
    }
}

impl App {
    /// Opens the data directory: keys, cards, snapshot, then the log after the snapshot.
    pub fn open(
        config: Config,
        data_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<(App, OpenSummary), OpenError> {
        let t0 = Instant::now();
        let dir_err = |source| OpenError::DataDir {
            path: data_dir.display().to_string(),
            source,
        };
        cardguard_store::private::create_dir(data_dir).map_err(dir_err)?;
        // Before anything in the directory is read or written: one process at a time.
        let lock = cardguard_store::DirLock::acquire(data_dir)?;
        if let Some(mode) = cardguard_store::private::open_to_others(data_dir).map_err(dir_err)? {
            tracing::warn!(
                path = %data_dir.display(),
                mode = format!("{mode:o}"),
                "the data directory is open to other users (it holds card data): chmod 700 it"
            );
        }
        let engine_cfg = config.engine.to_engine()?;
        let cvv2 = config.csc.cvv2()?;
        config.mail.thresholds()?;
        let brands = cardguard_mailauth::load::brands(config.mail.brands_file.as_deref())?;
        let sender_verifier = cardguard_mailauth::load::sender_verifier(
            config.mail.verify_sender,
            config.mail.dns_zone.as_deref(),
        )?;
        let fx = engine_cfg.fx.clone();
        let mut engine = Engine::new(engine_cfg);
        let rules = crate::rules::RuleBook::open(data_dir, clock.now().0)?;
        engine.set_policy(rules.policy());
        engine.set_lists(rules.lists());
        let shadow_model: Option<Arc<dyn cardguard_engine::Scorer>> =
            match &config.engine.shadow_model_file {
                Some(path) => Some(load_model(path)?),
                None => None,
            };
        engine.set_shadow(shadow_of(rules.shadow().map(|v| v.policy), &shadow_model));
        let shadow_since = clock.now().0;
        let mut summary = None;
        if let Some(path) = &config.engine.model_file {
            let (model, s) = load_model_file(path)?;
            engine.set_scorer(model);
            summary = s;
        }
        let drift = drift_monitor(&config.engine, engine.scorer_version(), summary);
        let (keys, created_keys) = KeyRing::load(&config.keys, data_dir)?;
        let cards_db = SqliteCards::open(&data_dir.join("cards.db"))?;
        let notify_db = data_dir.join("notify.db");
        let holds = Arc::new(cardguard_store::SqliteHolds::open(&notify_db)?);
        let outbox = Arc::new(cardguard_store::SqliteOutbox::open(&notify_db)?);
        let passwords = config.passwords.policy()?;
        let audit = cardguard_store::AuditLog::open(&data_dir.join("audit.log"))?;
        config.cases.check()?;
        let cases = match &config.storage.database_url {
            Some(url) => cardguard_store::Cases::connect(url)?,
            None => cardguard_store::Cases::open(&data_dir.join("cases.db"))?,
        };
        let stepup = crate::stepup::StepUp::open(
            &data_dir.join("stepup.db"),
            config.stepup.clone(),
            &config.web.public_url,
        )?;
        let registry = Registry::default();
        let t_cards = Instant::now();
        for row in cards_db.load_all()? {
            registry.insert(CardInfo::from_row(&row)?);
        }
        let cards_ms = t_cards.elapsed().as_millis();
        let t_snap = Instant::now();
        let (snapshot_offset, chain) = restore_snapshot(&mut engine, data_dir)?;
        let durability = match config.storage.durability {
            DurabilitySetting::Sync => Durability::Sync,
            DurabilitySetting::Write => Durability::Write {
                sync_every_ms: config.storage.sync_every_ms,
            },
        };
        let snapshot_ms = t_snap.elapsed().as_millis();
        let t_log = Instant::now();
        let mut replayed = 0u64;
        let (log, report) = EventLog::open(
            &data_dir.join("events.log"),
            durability,
            snapshot_offset.unwrap_or(0),
            |f| {
                let bad = |why: String| cardguard_store::StoreError::Replay {
                    offset: f.offset,
                    why,
                };
                let event = Event::decode(f.kind, &f.payload).map_err(|e| bad(e.to_string()))?;
                engine
                    .apply(&event, f.offset)
                    .map_err(|e| bad(e.to_string()))?;
                replayed += 1;
                Ok(())
            },
        )?;
        let reader: Arc<dyn EventReader> = Arc::new(log.reader()?);
        let missing = engine.missing_authorizations();
        if missing > 0 {
            tracing::warn!(
                missing,
                "authorization numbers without their events: the log had damaged spans set aside by `cardguard log repair`"
            );
        }
        // Without a snapshot the start read every frame already.
        let prefix_check = Arc::new(Mutex::new(match snapshot_offset {
            Some(end) if end > 0 => PrefixCheck::Running,
            _ => PrefixCheck::Passed,
        }));
        if let Some(end) = snapshot_offset.filter(|&e| e > 0) {
            spawn_prefix_check(data_dir.join("events.log"), end, Arc::clone(&prefix_check))
                .map_err(|source| OpenError::DataDir {
                    path: data_dir.display().to_string(),
                    source,
                })?;
        }
        let summary = OpenSummary {
            cards: registry.len(),
            snapshot_offset,
            replayed,
            log_frames: report.frames,
            truncated_bytes: report.truncated,
            created_keys: created_keys.clone(),
            cards_ms,
            snapshot_ms,
            replay_ms: t_log.elapsed().as_millis(),
            elapsed_ms: t0.elapsed().as_millis(),
        };
        let encoding = config.storage.event_encoding;
        let app = App {
            config,
            data_dir: data_dir.to_path_buf(),
            keys,
            registry,
            cards_db: Arc::new(cards_db),
            core: Mutex::new(Core {
                engine,
                log: Box::new(log),
                encoding,
                since_snapshot: replayed,
            }),
            snapshots: crate::snapshots::SnapshotWriter::new(
                data_dir.to_path_buf(),
                Arc::clone(&reader),
                chain,
            ),
            reader,
            clock,
            cvv2,
            fx,
            metrics: crate::metrics::Metrics::default(),
            brands: RwLock::new(Arc::new(brands)),
            sender_verifier,
            prefix_check,
            holds,
            outbox,
            stepup,
            passwords,
            audit,
            cases,
            rules,
            shadow_model: RwLock::new(shadow_model),
            drift: RwLock::new(drift),
            shadow_since: Mutex::new(ShadowTally {
                since_ms: shadow_since,
                counts: [[0; 4]; 4],
            }),
            rules_file_seen: Mutex::new(None),
            metric_sources: RwLock::new(Vec::new()),
            consumers: Mutex::new(Vec::new()),
            _lock: lock,
        };
        if !created_keys.is_empty() {
            app.audit(
                "server",
                "data keys created",
                "keys.toml",
                &created_keys.join(" "),
            );
        }
        if app.config.rules.file.is_some()
            && let Err(e) = app.sync_rules_file()
        {
            return Err(OpenError::Rules(e));
        }
        Ok((app, summary))
    }

    /// The engine lock. A wait for it while another thread holds it is counted in
    /// `cardguard_engine_lock_wait_seconds`.
    fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        match self.core.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                // Held by another thread: the wait goes to /metrics (an uncontended lock
                // costs no clock reading).
                let t0 = Instant::now();
                let g = self.core.lock().unwrap_or_else(|e| e.into_inner());
                self.metrics.lock_waited(t0.elapsed());
                g
            }
        }
    }

    /// The ruleset's versions and the lists.
    pub fn rule_book(&self) -> &crate::rules::RuleBook {
        &self.rules
    }

    /// Puts a ruleset change or a list change in force for the next authorization.
    fn install(&self, i: crate::rules::Install) {
        use crate::rules::Install;
        if let Install::Shadow(_) = &i {
            *self.shadow_since.lock().unwrap_or_else(|e| e.into_inner()) = ShadowTally {
                since_ms: self.clock.now().0,
                counts: self.metrics.shadow_counts(),
            };
        }
        let scorer = self
            .shadow_model
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut core = self.core();
        match i {
            Install::Policy(p) => core.engine.set_policy(p),
            Install::Lists(l) => core.engine.set_lists(l),
            Install::Shadow(p) => core.engine.set_shadow(shadow_of(p, &scorer)),
        }
    }

    /// Runs a candidate ruleset in shadow mode: decided beside the active one for every
    /// authorization, recorded, compared, never acting.
    pub fn put_shadow_rules(
        &self,
        text: &str,
        author: &str,
    ) -> Result<crate::rules::RulesetVersion, AppError> {
        let now = self.clock.now().0;
        let v = self
            .rules
            .put_shadow(text, author, now, |i| self.install(i))?;
        tracing::info!(version = v.row.version, author, "ruleset in shadow mode");
        Ok(v)
    }

    /// The model the shadow candidate scores with.
    pub fn shadow_model_version(&self) -> String {
        match &*self.shadow_model.read().unwrap_or_else(|e| e.into_inner()) {
            Some(m) => m.version().to_owned(),
            None => self.model_version(),
        }
    }

    /// Ends shadow mode.
    pub fn clear_shadow_rules(&self) -> Result<(), AppError> {
        self.rules.clear_shadow(|i| self.install(i))
    }

    /// Puts the shadow candidate's rules in force (a new version) and ends shadow mode.
    pub fn promote_shadow_rules(
        &self,
        author: &str,
    ) -> Result<crate::rules::RulesetVersion, AppError> {
        let cand = self
            .rules
            .shadow()
            .ok_or_else(|| AppError::NotFound("no ruleset runs in shadow mode".into()))?;
        let now = self.clock.now().0;
        let note = format!("promoted from shadow {}", cand.row.version);
        let v = self
            .rules
            .put(&cand.row.text, author, &note, now, |i| self.install(i))?;
        self.clear_shadow_rules()?;
        tracing::info!(version = v.row.version, author, "shadow ruleset promoted");
        Ok(v)
    }

    /// The shadow candidate's decisions beside the active ones since it was set: the time
    /// it was set and the counts by active decision (rows) and shadow decision (columns),
    /// in the order approve, decline, hold, challenge.
    pub fn shadow_tally(&self) -> ShadowTally {
        let base = *self.shadow_since.lock().unwrap_or_else(|e| e.into_inner());
        let mut counts = self.metrics.shadow_counts();
        for (row, b) in counts.iter_mut().zip(base.counts) {
            for (c, b) in row.iter_mut().zip(b) {
                *c = c.saturating_sub(b);
            }
        }
        ShadowTally {
            since_ms: base.since_ms,
            counts,
        }
    }

    /// Compiles a ruleset and puts it in force as the next version, or refuses it whole
    /// with every error (the ruleset in force stays).
    pub fn put_rules(
        &self,
        text: &str,
        author: &str,
    ) -> Result<crate::rules::RulesetVersion, AppError> {
        let now = self.clock.now().0;
        let v = self
            .rules
            .put(text, author, "put", now, |i| self.install(i))?;
        tracing::info!(version = v.row.version, author, "ruleset in force");
        Ok(v)
    }

    /// Puts an earlier version's rules in force again (as a new version).
    pub fn rollback_rules(
        &self,
        version: u64,
        author: &str,
    ) -> Result<crate::rules::RulesetVersion, AppError> {
        let now = self.clock.now().0;
        let v = self
            .rules
            .rollback(version, author, now, |i| self.install(i))?;
        tracing::info!(
            version = v.row.version,
            rolled_back_to = version,
            author,
            "ruleset in force"
        );
        Ok(v)
    }

    /// Adds (or renews) a list item; the next authorization sees it.
    pub fn add_list_item(
        &self,
        list: &str,
        value: &str,
        expires_ms: Option<i64>,
        author: &str,
    ) -> Result<cardguard_store::ListItemRow, AppError> {
        let now = self.clock.now().0;
        self.rules
            .add_item(list, value, expires_ms, author, now, |i| self.install(i))
    }

    /// Removes a list item; the next authorization no longer sees it.
    pub fn remove_list_item(&self, list: &str, value: &str) -> Result<(), AppError> {
        self.rules.remove_item(list, value, |i| self.install(i))
    }

    /// Reads `rules.file` and, when it changed since it was last read (at start: when it
    /// differs from the ruleset in force), puts it in force: the new version, none when
    /// nothing is to be done, or why it was refused (said once per change of the file).
    pub fn sync_rules_file(&self) -> Result<Option<u64>, String> {
        let Some(path) = &self.config.rules.file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("rules file {}: {e}", path.display()))?;
        {
            let mut seen = self
                .rules_file_seen
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if seen.as_deref() == Some(text.as_str()) {
                return Ok(None);
            }
            *seen = Some(text.clone());
        }
        if self.rules.active().row.text == text {
            return Ok(None);
        }
        let now = self.clock.now().0;
        let note = format!("file {}", path.display());
        match self
            .rules
            .put(&text, "file", &note, now, |i| self.install(i))
        {
            Ok(v) => {
                tracing::info!(version = v.row.version, file = %path.display(), "ruleset in force");
                self.audit(
                    "server",
                    "rules from file",
                    &path.display().to_string(),
                    &format!("version {}", v.row.version),
                );
                Ok(Some(v.row.version))
            }
            Err(AppError::Rules(errors)) => Err(format!(
                "rules file {}: {}",
                path.display(),
                crate::rules::render(&errors)
            )),
            Err(e) => Err(format!("rules file {}: {e}", path.display())),
        }
    }

    /// Follows `rules.file`: every `rules.watch_secs` it is read again, and a change that
    /// compiles is put in force (one that does not is logged; the ruleset in force stays).
    /// Stops when the application is dropped.
    pub fn watch_rules_file(self: &Arc<Self>) -> std::io::Result<()> {
        if self.config.rules.file.is_none() {
            return Ok(());
        }
        let every = std::time::Duration::from_secs(self.config.rules.watch_secs.max(1));
        let weak = Arc::downgrade(self);
        std::thread::Builder::new()
            .name("rules-file".into())
            .spawn(move || {
                // A file that cannot be read is said once, not every poll.
                let mut last_error = String::new();
                loop {
                    std::thread::sleep(every);
                    let Some(app) = weak.upgrade() else { return };
                    match app.sync_rules_file() {
                        Ok(_) => last_error.clear(),
                        Err(e) if e != last_error => {
                            tracing::error!(error = %e, "rules file refused; the ruleset in force stays");
                            last_error = e;
                        }
                        Err(_) => {}
                    }
                }
            })
            .map(|_| ())
    }

    /// The event log's read side, for consumers.
    pub fn events(&self) -> Arc<dyn EventReader> {
        Arc::clone(&self.reader)
    }

    /// Starts a consumer of this application's event log on a thread of its own, with its
    /// cursor in `consumers/NAME.cursor` of the data directory: at-least-once, in log order,
    /// resuming after the last event it acknowledged.
    pub fn spawn_consumer(
        &self,
        name: &str,
        opts: crate::consumer::ConsumerOptions,
        handler: impl FnMut(&crate::consumer::Delivery<'_>) -> Result<(), crate::consumer::HandlerError>
        + Send
        + 'static,
    ) -> Result<crate::consumer::ConsumerHandle, OpenError> {
        let cursors = Arc::new(cardguard_store::FileCursors::open(&self.data_dir)?);
        // How far behind the log's durable end its saved position is, in /metrics.
        self.consumers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((name.to_owned(), Arc::clone(&cursors)));
        crate::consumer::spawn(name, self.events(), cursors, opts, handler).map_err(|source| {
            OpenError::DataDir {
                path: self.data_dir.display().to_string(),
                source,
            }
        })
    }

    /// An enrolled card, without its PAN.
    pub fn card(&self, token: &CardToken) -> Option<Arc<CardInfo>> {
        self.registry.get(token)
    }

    /// The engine's reference rates (amounts in the base currency, for comparisons only).
    pub fn fx(&self) -> &cardguard_engine::FxRates {
        &self.fx
    }

    /// Holds waiting for the cardholder's answer, and the cases a "not me" opens.
    pub fn holds(&self) -> &Arc<cardguard_store::SqliteHolds> {
        &self.holds
    }

    /// The notification outbox.
    pub fn outbox(&self) -> &Arc<cardguard_store::SqliteOutbox> {
        &self.outbox
    }

    /// The data directory the application keeps its files in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The brand registry of the phishing analyzer, as of now.
    pub fn brands(&self) -> Arc<cardguard_phish::BrandRegistry> {
        Arc::clone(&self.brands.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads `mail.brands_file` again and swaps the registry in; on an error the registry in
    /// use stays. Returns how many brands the new registry holds.
    pub fn reload_brands(&self) -> Result<usize, OpenError> {
        let fresh = cardguard_mailauth::load::brands(self.config.mail.brands_file.as_deref())?;
        let n = fresh.brands().len();
        *self.brands.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(fresh);
        tracing::info!(brands = n, "brand registry reloaded");
        Ok(n)
    }

    /// Reads `engine.model_file` again and swaps the model in for the next decisions; on an
    /// error the model in use stays. Returns the new model's version.
    pub fn reload_model(&self) -> Result<String, OpenError> {
        let path = self.config.engine.model_file.as_ref().ok_or_else(|| {
            OpenError::Config(crate::config::ConfigError::Invalid(
                "engine.model_file is not set".into(),
            ))
        })?;
        let (model, summary) = load_model_file(path)?;
        let monitor = drift_monitor(
            &self.config.engine,
            cardguard_engine::Scorer::version(model.as_ref()),
            summary,
        );
        if let Some(p) = &self.config.engine.shadow_model_file {
            let scorer: Option<Arc<dyn cardguard_engine::Scorer>> = Some(load_model(p)?);
            *self.shadow_model.write().unwrap_or_else(|e| e.into_inner()) = scorer.clone();
            let mut core = self.core();
            let policy = core.engine.shadow().map(|s| Arc::clone(&s.policy));
            core.engine.set_shadow(shadow_of(policy, &scorer));
        }
        let version = cardguard_engine::Scorer::version(model.as_ref()).to_owned();
        self.core().engine.set_scorer(model);
        *self.drift.write().unwrap_or_else(|e| e.into_inner()) = monitor;
        tracing::info!(model = %version, "model swapped in");
        Ok(version)
    }

    /// The drift monitor of the model deciding now.
    pub fn drift(&self) -> Arc<crate::drift::DriftMonitor> {
        Arc::clone(&self.drift.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The version of the scorer deciding now.
    pub fn model_version(&self) -> String {
        self.core().engine.scorer_version().to_owned()
    }

    /// The analyzer's options for one message: trusted Authentication-Results servers, and
    /// the sender checks verified now when a verifier is configured.
    pub async fn mail_options(&self, raw: &[u8]) -> cardguard_phish::Options {
        let verified = match &self.sender_verifier {
            Some(v) => v.verify(raw, None).await,
            None => Vec::new(),
        };
        cardguard_phish::Options {
            trusted_authserv_ids: self.config.mail.trusted_authserv_ids.clone(),
            verified,
            thresholds: self.config.mail.thresholds().unwrap_or_default(),
            ..Default::default()
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Appends an entry to the audit trail (synced to disk; blocking). A trail that cannot
    /// be written is logged as an error: the action it records has happened.
    pub fn audit(&self, actor: &str, action: &str, target: &str, outcome: &str) {
        let target = mask_numbers(target);
        if let Err(e) = self
            .audit
            .append(self.clock.now().0, actor, action, &target, outcome)
        {
            tracing::error!(error = %e, action, "the audit trail cannot be written");
        }
    }

    /// The cases and card transactions (`cases.db`); see [`crate::cases`].
    pub fn cases_store(&self) -> &cardguard_store::SqliteCases {
        &self.cases
    }

    /// The server's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Blocks a card (its status `blocked`: every authorization declined 62), stored in the
    /// card registry, and logs the change (the cardholder is told) once it is stored.
    pub async fn block_card(&self, card: &CardToken, actor: &str) -> Result<(), AppError> {
        let info = self.enrolled_card(card)?;
        self.set_status(card, cardguard_engine::CardStatus::Blocked)?;
        let rec = cardguard_engine::CardStatusRecord {
            card_token: *card,
            last4: info.last4()?,
            status: "blocked".into(),
            reason: "suspected_fraud".into(),
            actor: actor.to_owned(),
            received: self.clock.now(),
            replacement_last4: None,
            expected: None,
        };
        self.log_card_status(&rec).await
    }

    /// Logs a card status change and waits until it is durable.
    async fn log_card_status(
        &self,
        rec: &cardguard_engine::CardStatusRecord,
    ) -> Result<(), AppError> {
        self.log_notice_event(Event::KIND_CARD_STATUS, rec).await
    }

    /// Logs a decision on covering a cardholder's loss (the cardholder is told).
    pub(crate) async fn log_coverage(
        &self,
        rec: &cardguard_engine::CoverageRecord,
    ) -> Result<(), AppError> {
        self.log_notice_event(Event::KIND_COVERAGE, rec).await
    }

    /// The pending form of a coverage decision's event, kept in the decision's transaction
    /// (see [`cardguard_store::PendingEvent`]); its id is the notice's.
    pub(crate) fn pending_coverage(
        rec: &cardguard_engine::CoverageRecord,
    ) -> Result<cardguard_store::PendingEvent, AppError> {
        Ok(cardguard_store::PendingEvent {
            id: format!("cov-{}-{}-{}", rec.scheme, rec.reference, rec.received.0),
            kind: Event::KIND_COVERAGE,
            payload: serde_json::to_string(rec).map_err(|e| AppError::Internal(e.to_string()))?,
            created_ms: rec.received.0,
        })
    }

    /// Logs a coverage decision whose transaction kept it pending, then forgets it.
    pub(crate) async fn tell_coverage(
        &self,
        pending: &cardguard_store::PendingEvent,
        rec: &cardguard_engine::CoverageRecord,
    ) -> Result<(), AppError> {
        self.log_coverage(rec).await?;
        self.cases_store()
            .clear_pending(&pending.id)
            .map_err(|e| AppError::Unavailable(format!("cases: {e}")))
    }

    /// Logs the decisions whose events a stop left pending (decided and committed, the
    /// process gone before it logged them), at start; how many.
    pub async fn log_pending_events(&self) -> Result<usize, AppError> {
        let store_err =
            |e: cardguard_store::StoreError| AppError::Unavailable(format!("cases: {e}"));
        let pending = self.cases_store().pending_events().map_err(store_err)?;
        for p in &pending {
            match p.kind {
                Event::KIND_COVERAGE => {
                    let rec: cardguard_engine::CoverageRecord = serde_json::from_str(&p.payload)
                        .map_err(|e| AppError::Internal(format!("pending event {}: {e}", p.id)))?;
                    self.tell_coverage(p, &rec).await?;
                }
                other => {
                    return Err(AppError::Internal(format!(
                        "pending event {}: kind {other} is not one this version logs",
                        p.id
                    )));
                }
            }
        }
        Ok(pending.len())
    }

    /// Appends an event that changes no engine state and waits until it is durable.
    async fn log_notice_event<T: serde::Serialize>(
        &self,
        kind: u8,
        rec: &T,
    ) -> Result<(), AppError> {
        let rx = {
            let mut core = self.core();
            let (_, rx) = append(&mut core, kind, rec)?;
            core.since_snapshot += 1;
            rx
        };
        durable(rx).await
    }

    /// Sets a card's status in the registry and its database.
    fn set_status(
        &self,
        card: &CardToken,
        status: cardguard_engine::CardStatus,
    ) -> Result<(), AppError> {
        let (info, row) = self.stored_card(card)?;
        let mut next = (*info).clone();
        next.status = status;
        self.save_card(next, row)
    }

    /// An enrolled card with its stored row (which holds its PAN's ciphertext).
    fn stored_card(
        &self,
        card: &CardToken,
    ) -> Result<(Arc<CardInfo>, cardguard_store::CardRow), AppError> {
        let info = self.enrolled_card(card)?;
        let row = self
            .cards_db
            .get(&card.to_string())
            .map_err(|e| AppError::Unavailable(format!("card registry: {e}")))?
            .ok_or_else(|| AppError::NotFound(format!("no card {card}")))?;
        Ok((info, row))
    }

    /// The PAN of a card's stored row.
    fn row_pan(
        &self,
        card: &CardToken,
        row: &cardguard_store::CardRow,
    ) -> Result<cardguard_core::Pan, AppError> {
        self.keys
            .decrypt_pan(&row.pan_ciphertext, &row.pan_nonce, card)
            .map_err(|e| AppError::Internal(e.to_string()))
    }

    /// Stores a changed card with the PAN of its stored row, and puts it in the registry.
    fn save_card(&self, next: CardInfo, row: cardguard_store::CardRow) -> Result<(), AppError> {
        let row = next.to_row(row.pan_ciphertext, row.pan_nonce, self.clock.now());
        self.cards_db
            .upsert(&row)
            .map_err(|e| AppError::Unavailable(format!("card registry: {e}")))?;
        self.registry.insert(next);
        Ok(())
    }

    /// Replaces a card: a new number of the same product and brand (the old number's BIN,
    /// random digits, the Luhn digit; not enrolled yet), expiring in five years, inactive
    /// until activated, with the old card's security-code method (a stored-code card gets a
    /// new random code, kept as its hash) and no PIN yet (set it with `set_pin`); the old card
    /// blocked in full, or for card-not-present use only (its chip still works in shops)
    /// until the new card is activated. The cardholder is told (a logged status change).
    pub async fn reissue(
        &self,
        old: &CardToken,
        block: &str,
        delivery_days: u32,
        actor: &str,
    ) -> Result<crate::cases::Reissued, AppError> {
        use crate::registry::CscMethod;
        use cardguard_engine::CardStatus;
        let full = match block {
            "full" => true,
            "card_not_present" => false,
            _ => {
                return Err(AppError::invalid(
                    "block",
                    "must be full or card_not_present",
                ));
            }
        };
        let (info, row) = self.stored_card(old)?;
        if matches!(info.status, CardStatus::Closed) {
            return Err(AppError::Conflict(
                "the card is closed: a closed card is not reissued".into(),
            ));
        }
        if let Some(r) = self
            .cases
            .reissue_of(&old.to_string())
            .map_err(|e| AppError::Unavailable(e.to_string()))?
        {
            return Err(AppError::Conflict(if r.old_token == old.to_string() {
                format!(
                    "the card was reissued before: its new card ends {}",
                    r.new_last4
                )
            } else {
                "the card is itself a replacement waiting for activation".into()
            }));
        }
        let old_pan = self.row_pan(old, &row)?;
        let digits = old_pan.expose();
        let bin = &digits[..if digits.len() >= 16 { 8 } else { 6 }];
        let random = |n: usize| -> Result<String, AppError> {
            let mut out = String::with_capacity(n);
            while out.len() < n {
                for b in crate::keys::random_bytes::<16>()
                    .map_err(|e| AppError::Internal(e.to_string()))?
                {
                    // 250 = 25 × 10: a uniform digit.
                    if b < 250 && out.len() < n {
                        out.push(char::from(b'0' + b % 10));
                    }
                }
            }
            Ok(out)
        };
        let (pan, token) = loop {
            let body = format!("{bin}{}", random(digits.len() - bin.len() - 1)?);
            let check = cardguard_cardsec::luhn::check_digit(&body)
                .ok_or_else(|| AppError::Internal("check digit".into()))?;
            let pan = cardguard_core::Pan::parse(&format!("{body}{check}"))
                .map_err(|e| AppError::Internal(e.to_string()))?;
            let token = self.keys.token(&pan);
            if pan != old_pan && self.registry.get(&token).is_none() {
                break (pan, token);
            }
        };
        let now = self.clock.now();
        let today = jiff::Timestamp::from_millisecond(now.0)
            .map_err(|e| AppError::Internal(e.to_string()))?
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .date();
        let expiry = cardguard_core::Expiry {
            year: today.year() as u16 + 5,
            month: today.month() as u8,
        };
        let mut next = (*info).clone();
        next.token = token;
        next.last4 = pan.last4().to_string();
        next.expiry = expiry;
        next.status = CardStatus::Inactive;
        next.pin = None;
        if let CscMethod::Stored { .. } = next.csc {
            next.csc = CscMethod::Stored {
                hash: registry::stored_csc_hash(&self.keys, &token, &random(3)?),
            };
        }
        let (ct, nonce) = self
            .keys
            .encrypt_pan(&pan, &token)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        self.cards_db
            .upsert(&next.to_row(ct, nonce, now))
            .map_err(|e| AppError::Unavailable(format!("card registry: {e}")))?;
        let new_last4 = next.last4.clone();
        self.registry.insert(next);
        let expected = now.0 + i64::from(delivery_days) * 86_400_000;
        let r = cardguard_store::ReissueRow {
            old_token: old.to_string(),
            new_token: token.to_string(),
            new_last4: new_last4.clone(),
            new_expiry: format!("{:04}-{:02}", expiry.year, expiry.month),
            block: block.to_owned(),
            requested_ms: now.0,
            expected_ms: expected,
            activated_ms: None,
        };
        self.cases
            .put_reissue(&r)
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
        self.set_status(
            old,
            if full {
                CardStatus::Blocked
            } else {
                CardStatus::CnpBlocked
            },
        )?;
        self.log_card_status(&cardguard_engine::CardStatusRecord {
            card_token: *old,
            last4: old_pan.last4(),
            status: "reissued".into(),
            reason: block.to_owned(),
            actor: actor.to_owned(),
            received: now,
            replacement_last4: Some(new_last4),
            expected: Some(Timestamp(expected)),
        })
        .await?;
        Ok(crate::cases::Reissued { row: r, expiry })
    }

    /// Activates a reissued card: it is active, the card it replaces is closed.
    pub fn activate(&self, card: &CardToken) -> Result<cardguard_store::ReissueRow, AppError> {
        let r = self
            .cases
            .reissue_of(&card.to_string())
            .map_err(|e| AppError::Unavailable(e.to_string()))?
            .filter(|r| r.new_token == card.to_string())
            .ok_or_else(|| AppError::NotFound(format!("card {card} is not a replacement card")))?;
        if r.activated_ms.is_some() {
            return Err(AppError::Conflict("the card was activated before".into()));
        }
        let old = CardToken::parse(&r.old_token).map_err(|e| AppError::Internal(e.to_string()))?;
        self.set_status(card, cardguard_engine::CardStatus::Active)?;
        self.set_status(&old, cardguard_engine::CardStatus::Closed)?;
        let now = self.clock.now().0;
        self.cases
            .activate_reissue(&r.new_token, now)
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
        Ok(cardguard_store::ReissueRow {
            activated_ms: Some(now),
            ..r
        })
    }

    /// The online account's password policy.
    pub fn password_policy(&self) -> &crate::password::PasswordPolicy {
        &self.passwords
    }

    /// The step-up service: its settings, its store, and where codes are sent.
    pub fn stepup(&self) -> &crate::stepup::StepUp {
        &self.stepup
    }

    /// Whether the engine has answered this request before (a retry).
    fn find_request(&self, facts: &TxFacts) -> bool {
        self.core().engine.find_key(facts.request_key()).is_some()
    }

    /// Assesses an authentication request (3-D Secure): the card checked, the engine's
    /// decision on the purchase as an online one (read-only: an authentication changes no
    /// card state), the device's trust; recorded with its challenge and first code. The
    /// same request id again gets the first answer.
    pub fn authenticate(
        &self,
        req: crate::stepup::AuthenticationRequest,
        client: &ClientId,
    ) -> Result<crate::stepup::AuthenticationAnswer, AppError> {
        let now = self.clock.now();
        if let Some(first) = self.stepup.find(client, &req.id)? {
            return self.stepup.answer_again(&self.keys, first, &req);
        }
        let pan_valid = cardguard_cardsec::check_pan(&req.card.pan).is_ok();
        let token = self.keys.token(&req.card.pan);
        let card = self.registry.get(&token);
        let checks = registry::check_card(
            card.as_deref(),
            &req.card,
            pan_valid,
            now,
            cardguard_core::Channel::Ecommerce,
            &self.keys,
            &self.cvv2,
        );
        let outcome = checks.card_known().then(|| {
            let home = card.as_ref().and_then(|c| c.home.as_ref());
            let facts = TxFacts {
                id: format!("authentication:{}", req.id),
                ts: now,
                utc_offset_min: 0,
                card_token: token,
                last4: req.card.pan.last4(),
                amount_base: self.fx.to_base_minor(&req.amount),
                amount: req.amount,
                merchant: req.merchant.clone(),
                channel: cardguard_core::Channel::Ecommerce,
                tx_type: cardguard_core::TxType::Purchase,
                device_id: None,
                device_ip: req.browser.ip,
                ip_country: None,
                email_domain: None,
                home_country: home.map(|h| h.country),
                home: home.and_then(|h| h.location),
                received: Some(now),
                client: Some(client.as_str().to_owned()),
                digest: None,
                authenticated: None,
            };
            self.core().engine.decide_unexplained(&facts, &checks)
        });
        self.stepup.assess(
            &self.keys,
            crate::stepup::Assessed {
                req,
                client,
                token,
                card: card.as_deref(),
                checks,
                outcome,
                now,
            },
        )
    }

    /// The requestor's authentication `id` (its challenge, for the API's code entry).
    pub fn authentication(
        &self,
        client: &ClientId,
        id: &str,
    ) -> Result<crate::stepup::Authentication, AppError> {
        self.stepup
            .find(client, id)?
            .ok_or_else(|| AppError::NotFound(format!("no authentication {id}")))
    }

    /// The authentication whose challenge is `challenge_id` (the challenge page's).
    pub fn challenge(&self, challenge_id: &str) -> Result<crate::stepup::Authentication, AppError> {
        self.stepup
            .by_challenge(challenge_id)?
            .ok_or_else(|| AppError::NotFound("no such challenge".into()))
    }

    /// A code entered for a challenge (on its page, or passed on by the requestor); the end
    /// of the challenge is logged (a failed one alerts the cardholder).
    pub async fn enter_code(
        &self,
        challenge_id: &str,
        code: &str,
        user_agent: Option<&str>,
    ) -> Result<crate::stepup::AuthenticationAnswer, AppError> {
        use crate::stepup::Factor;
        let now = self.clock.now();
        let auth = self.challenge(challenge_id)?;
        let totp = match auth.challenge.as_ref().map(|c| c.factor) {
            Some(Factor::Totp) => self.totp_key(&auth.card_token)?,
            _ => None,
        };
        let (answer, event) = self.stepup.enter_code(
            &self.keys,
            challenge_id,
            code,
            totp.as_ref().map(|(k, l)| (k.as_slice(), *l)),
            user_agent,
            now,
        )?;
        self.log_authentication(event).await?;
        Ok(answer)
    }

    /// Logs the end of a challenge, when it ended now, and waits until it is durable.
    async fn log_authentication(
        &self,
        event: Option<cardguard_engine::AuthenticationRecord>,
    ) -> Result<(), AppError> {
        let Some(rec) = event else {
            return Ok(());
        };
        let rx = {
            let mut core = self.core();
            let (_, rx) = append(&mut core, Event::KIND_AUTHENTICATION, &rec)?;
            core.since_snapshot += 1;
            rx
        };
        durable(rx).await
    }

    /// Starts registering a passkey after a passed challenge (the page's "create a
    /// passkey"): the options for the browser.
    pub fn passkey_register_start(
        &self,
        challenge_id: &str,
    ) -> Result<serde_json::Value, AppError> {
        self.stepup.passkey_register_start(
            challenge_id,
            &self.config.notify.issuer_name,
            self.clock.now(),
        )
    }

    /// Finishes registering a passkey with the browser's answer.
    pub fn passkey_register_finish(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        user_agent: Option<&str>,
    ) -> Result<(), AppError> {
        self.stepup
            .passkey_register_finish(challenge_id, credential, user_agent, self.clock.now())
    }

    /// Starts using a passkey in an open challenge: the options for the browser.
    pub fn passkey_auth_start(&self, challenge_id: &str) -> Result<serde_json::Value, AppError> {
        self.stepup
            .passkey_auth_start(challenge_id, self.clock.now())
    }

    /// Finishes using a passkey: the challenge's answer, as for a code.
    pub async fn passkey_auth_finish(
        &self,
        challenge_id: &str,
        credential: &serde_json::Value,
        user_agent: Option<&str>,
    ) -> Result<crate::stepup::AuthenticationAnswer, AppError> {
        let (answer, event) = self.stepup.passkey_auth_finish(
            &self.keys,
            challenge_id,
            credential,
            user_agent,
            self.clock.now(),
        )?;
        self.log_authentication(event).await?;
        Ok(answer)
    }

    /// A new code for a challenge, by its factor or by `to` (the cardholder switched).
    pub fn resend_code(
        &self,
        challenge_id: &str,
        to: Option<crate::stepup::Factor>,
    ) -> Result<crate::stepup::AuthenticationAnswer, AppError> {
        let auth = self.challenge(challenge_id)?;
        let card = self
            .registry
            .get(&auth.card_token)
            .ok_or_else(|| AppError::NotFound("the card is no longer enrolled".into()))?;
        self.stepup
            .resend(&self.keys, challenge_id, to, &card, self.clock.now())
    }

    /// A card's authenticator-app key (decrypted) and the last time step it took.
    fn totp_key(&self, card: &CardToken) -> Result<Option<TotpKey>, AppError> {
        let Some(row) = self.stepup_store(|s| s.totp(&card.to_string()))? else {
            return Ok(None);
        };
        let key = self
            .keys
            .unseal(crate::stepup::TOTP_PURPOSE, card, &row.secret, &row.nonce)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(Some((key, row.last_step)))
    }

    fn stepup_store<T>(
        &self,
        f: impl FnOnce(&cardguard_store::SqliteStepUp) -> Result<T, cardguard_store::StoreError>,
    ) -> Result<T, AppError> {
        f(self.stepup.store()).map_err(|e| AppError::Unavailable(format!("step-up store: {e}")))
    }

    fn enrolled_card(&self, card: &CardToken) -> Result<Arc<CardInfo>, AppError> {
        self.registry
            .get(card)
            .ok_or_else(|| AppError::NotFound(format!("no card {card}")))
    }

    /// A card's trusted devices, the most recently used first.
    pub fn devices(&self, card: &CardToken) -> Result<Vec<cardguard_store::DeviceRow>, AppError> {
        self.enrolled_card(card)?;
        self.stepup_store(|s| s.devices(&card.to_string()))
    }

    /// Revokes a card's device: its token no longer makes an authentication frictionless.
    pub fn revoke_device(&self, card: &CardToken, device_id: &str) -> Result<(), AppError> {
        self.enrolled_card(card)?;
        if self
            .stepup_store(|s| s.revoke_device(&card.to_string(), device_id, self.clock.now().0))?
        {
            Ok(())
        } else {
            Err(AppError::NotFound(format!(
                "the card has no trusted device {device_id}"
            )))
        }
    }

    /// Starts an authenticator app for a card: a new key (sealed in the store), its base32
    /// and its `otpauth://` URI. It becomes a factor once a first code confirms it.
    pub fn enroll_totp(&self, card: &CardToken) -> Result<(String, String), AppError> {
        let info = self.enrolled_card(card)?;
        let secret =
            crate::keys::random_bytes::<20>().map_err(|e| AppError::Internal(e.to_string()))?;
        let (ct, nonce) = self
            .keys
            .seal(crate::stepup::TOTP_PURPOSE, card, &secret)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        self.stepup_store(|s| s.put_totp(&card.to_string(), &ct, &nonce, self.clock.now().0))?;
        let b32 = cardguard_cardsec::otp::base32(&secret);
        let issuer = self.config.notify.issuer_name.replace(' ', "%20");
        let uri = format!(
            "otpauth://totp/{issuer}:card-{}?secret={b32}&issuer={issuer}&algorithm=SHA1&digits=6&period=30",
            info.last4
        );
        Ok((b32, uri))
    }

    /// Confirms a card's new authenticator app with a code from it; false for a wrong code.
    pub fn confirm_totp(&self, card: &CardToken, code: &str) -> Result<bool, AppError> {
        self.enrolled_card(card)?;
        let Some((key, last)) = self.totp_key(card)? else {
            return Err(AppError::NotFound(
                "the card has no authenticator app".into(),
            ));
        };
        let now = self.clock.now().0;
        let t = cardguard_cardsec::otp::Totp::default();
        let Some(step) = t.verify(
            &key,
            code,
            (now / 1000).max(0) as u64,
            1,
            last.map(|l| l.max(0) as u64),
        ) else {
            return Ok(false);
        };
        self.stepup_store(|s| s.use_totp_step(&card.to_string(), step as i64, now))
    }

    /// Removes a card's authenticator app.
    pub fn remove_totp(&self, card: &CardToken) -> Result<bool, AppError> {
        self.enrolled_card(card)?;
        self.stepup_store(|s| s.delete_totp(&card.to_string()))
    }

    /// Ends a card's lockout after too many wrong codes (an issuer's call after checking).
    pub fn unlock_stepup(&self, card: &CardToken) -> Result<bool, AppError> {
        self.enrolled_card(card)?;
        self.stepup_store(|s| s.clear_card_failures(&card.to_string()))
    }

    /// Decides an authorization, logs it, and returns its record once the log has it. A
    /// request id the client had answered before gets its first record back, if the request
    /// is the same; another request under a used id is a conflict. `started` is when the
    /// request arrived, for the latency metric.
    pub async fn authorize(
        self: &Arc<Self>,
        auth: Authorization,
        utc_offset_min: i16,
        client: &ClientId,
        started: Instant,
    ) -> Result<AuthRecord, AppError> {
        let id = auth.id.clone();
        let value = auth.authentication.clone();
        let (mut facts, checks) = self.facts(auth, utc_offset_min, client);
        if let Some(v) = value {
            // A retry of an answered request finds its first answer before this matters.
            facts.authenticated = if self.find_request(&facts) {
                None
            } else {
                self.stepup.redeem(
                    &self.keys,
                    &v,
                    &facts.card_token,
                    &facts.amount,
                    &facts.merchant.id,
                    facts.now(),
                )?
            };
        }
        let mut reasons = None;
        let mut attempt = 0;
        let (rx, record) = loop {
            // After two tries whose state changed under the reasons, they are computed under
            // the lock (rare: another authorization of the same card in between, twice).
            let inline = attempt >= 2;
            match self.decide_and_log(facts, &checks, reasons.as_ref(), inline)? {
                Step::Seen(offset) => return self.answer_again(offset, &id).await,
                Step::Conflict(offset, facts) => {
                    let first = self.answer_again(offset, &id).await?;
                    return Err(AppError::Conflict(format!(
                        "request id {id} was used before for another request ({}); a retry must repeat the request unchanged",
                        first.tx.differences(&facts)
                    )));
                }
                Step::Logged { durable, record } => break (durable, record),
                Step::NeedsReasons(b) => {
                    let (pending, f) = *b;
                    facts = f;
                    attempt += 1;
                    reasons = Some(explain_off_lock(&pending));
                }
            }
        };
        durable(rx).await?;
        self.metrics.authorization(
            record.outcome.decision,
            record.outcome.response_code,
            started.elapsed(),
        );
        self.drift().observe(&record.outcome);
        if let Some(sh) = &record.outcome.shadow {
            self.metrics.shadow(record.outcome.decision, sh.decision);
        }
        tracing::debug!(authorization_id = %record.authorization_id, decision = record.outcome.decision.as_str(), code = record.outcome.response_code.as_str(), "decided");
        Ok(*record)
    }

    /// The card checks and the facts the engine decides on (outside the lock).
    fn facts(
        &self,
        auth: Authorization,
        utc_offset_min: i16,
        client: &ClientId,
    ) -> (TxFacts, CardChecks) {
        let received = self.clock.now();
        let digest = self.keys.request_digest(&canonical(&auth, utc_offset_min));
        let pan_valid = cardguard_cardsec::check_pan(&auth.card.pan).is_ok();
        let token = self.keys.token(&auth.card.pan);
        let card = self.registry.get(&token);
        let checks = registry::check_card(
            card.as_deref(),
            &auth.card,
            pan_valid,
            auth.timestamp,
            auth.channel,
            &self.keys,
            &self.cvv2,
        );
        let home = card.as_ref().and_then(|c| c.home.as_ref());
        let facts = TxFacts {
            last4: auth.card.pan.last4(),
            id: auth.id,
            ts: auth.timestamp,
            utc_offset_min,
            card_token: token,
            amount_base: self.fx.to_base_minor(&auth.amount),
            amount: auth.amount,
            merchant: auth.merchant,
            channel: auth.channel,
            tx_type: auth.tx_type,
            device_id: auth.device.as_ref().map(|d| d.id.clone()),
            device_ip: auth.device.as_ref().and_then(|d| d.ip),
            ip_country: auth.device.as_ref().and_then(|d| d.ip_country),
            email_domain: auth.email_domain,
            home_country: home.map(|h| h.country),
            home: home.and_then(|h| h.location),
            received: Some(received),
            client: Some(client.as_str().to_owned()),
            digest: Some(format!("{digest:032x}")),
            authenticated: None,
        };
        (facts, checks)
    }

    /// Under the lock: the idempotency check, the decision, the append and the state
    /// update. A decision that needs the model's reasons comes back for them unless `inline`.
    fn decide_and_log(
        &self,
        facts: TxFacts,
        checks: &CardChecks,
        reasons: Option<&cardguard_engine::Reasons>,
        inline: bool,
    ) -> Result<Step, AppError> {
        let mut core = self.core();
        if let Some(e) = core.engine.find_key(facts.request_key()) {
            // Events of earlier versions carry no digest: their retries are taken as equal.
            return Ok(if e.digest == 0 || e.digest == facts.digest_value() {
                Step::Seen(e.offset)
            } else {
                Step::Conflict(e.offset, Box::new(facts))
            });
        }
        // A new request (a retry of an answered one gets its answer, whenever it comes) is
        // dated near the server's clock, or refused.
        let skew = self.config.engine.max_clock_skew_secs;
        if skew > 0 && facts.ts.0.abs_diff(facts.now().0) > skew.saturating_mul(1000) {
            return Err(AppError::invalid(
                "timestamp",
                format!("must be within {skew} seconds of the server's clock"),
            ));
        }
        let outcome = match core.engine.draft(&facts, checks, reasons) {
            Draft::Final(o) => o,
            Draft::NeedsReasons(p) if !inline => {
                return Ok(Step::NeedsReasons(Box::new((*p, facts))));
            }
            Draft::NeedsReasons(_) => core.engine.decide(&facts, checks),
        };
        let record = AuthRecord {
            authorization_id: core.engine.next_authorization_id(),
            tx: facts,
            checks: *checks,
            outcome,
        };
        let (offset, rx) = append(&mut core, Event::KIND_AUTH, &record)?;
        core.engine
            .apply_auth(&record, offset)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        self.maybe_snapshot(&mut core);
        Ok(Step::Logged {
            durable: rx,
            record: Box::new(record),
        })
    }

    /// The stored answer to a request id seen before, read back from the log.
    async fn answer_again(self: &Arc<Self>, offset: u64, id: &str) -> Result<AuthRecord, AppError> {
        let rec = self.read_auth(offset).await?;
        if rec.tx.id != id {
            return Err(AppError::Internal("request id hash collision".into()));
        }
        Ok(rec)
    }

    /// The authorization event at `offset` of the log, once it is durable.
    async fn read_auth(&self, offset: u64) -> Result<AuthRecord, AppError> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            reader.wait_durable(offset + 1).map_err(log_error)?;
            let f = reader.read_at(offset).map_err(|e| {
                AppError::Internal(format!(
                    "the authorization at offset {offset} cannot be read from the event log ({e})"
                ))
            })?;
            AuthRecord::decode(&f.payload).map_err(|e| AppError::Internal(e.to_string()))
        })
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?
    }

    /// Records a label and answers, with the card's token, once the log has it.
    pub async fn label(
        &self,
        authorization_id: &str,
        fraud: bool,
        source: Option<String>,
    ) -> Result<CardToken, AppError> {
        let (rx, token) = {
            let mut core = self.core();
            let entry = core
                .engine
                .find_authorization(authorization_id)
                .copied()
                .ok_or_else(|| {
                    AppError::NotFound(format!("no authorization {authorization_id}"))
                })?;
            let rec = LabelRecord {
                authorization_id: authorization_id.to_owned(),
                fraud,
                ts: self.clock.now(),
                source,
            };
            let (_, rx) = append(&mut core, Event::KIND_LABEL, &rec)?;
            core.engine
                .apply_label(&rec)
                .map_err(|e| AppError::Internal(e.to_string()))?;
            core.since_snapshot += 1;
            (rx, entry.card)
        };
        durable(rx).await?;
        self.metrics.label(fraud);
        Ok(token)
    }

    /// Reverses an authorization (see [`Engine::apply_reversal`] for what that undoes) and
    /// answers once the log has it. A reversal names the original by the client's request
    /// id or by cardguard's authorization id; only the client that sent the original may
    /// reverse it, and a card or amount the reversal gives must be the original's. A
    /// reversal of one reversed before changes nothing and answers the same (`first` false).
    pub async fn reverse(
        self: &Arc<Self>,
        req: ReversalRequest,
        client: &ClientId,
    ) -> Result<Reversed, AppError> {
        let named = match &req.original {
            Original::Request(id) => format!("request id {id}"),
            Original::Authorization(id) => format!("authorization {id}"),
        };
        let not_found = || AppError::NotFound(format!("no {named} to reverse"));
        let find = |core: &Core| -> Option<AuthEntry> {
            match &req.original {
                Original::Request(id) => core
                    .engine
                    .find_key(cardguard_engine::scoped_request_key(
                        Some(client.as_str()),
                        id,
                    ))
                    .copied(),
                Original::Authorization(id) => core.engine.find_authorization(id).copied(),
            }
        };
        let offset = find(&self.core()).ok_or_else(not_found)?.offset;
        let original = self.read_auth(offset).await?;
        if original.tx.client.as_deref() != Some(client.as_str()) {
            return Err(not_found());
        }
        if req
            .pan
            .as_ref()
            .is_some_and(|p| self.keys.token(p) != original.tx.card_token)
            || req.amount.is_some_and(|a| a != original.tx.amount)
        {
            return Err(AppError::Conflict(format!(
                "the reversal names another card or amount than {named}"
            )));
        }
        let (wait, first) = {
            let mut core = self.core();
            let entry = find(&core)
                .filter(|e| e.offset == offset)
                .ok_or_else(not_found)?;
            if entry.reversed {
                // Reversed before: answered once that reversal is durable.
                (Wait::Upto(core.log.end_offset()), false)
            } else {
                let rec = ReversalRecord {
                    authorization_id: original.authorization_id.clone(),
                    approved: original.outcome.decision == cardguard_core::Decision::Approve,
                    original: original.tx,
                    received: self.clock.now(),
                    source: req.source,
                    client: Some(client.as_str().to_owned()),
                    reference: req.reference,
                };
                let (_, rx) = append(&mut core, Event::KIND_REVERSAL, &rec)?;
                core.engine
                    .apply_reversal(&rec)
                    .map_err(|e| AppError::Internal(e.to_string()))?;
                core.since_snapshot += 1;
                (Wait::Event(rx), true)
            }
        };
        self.wait(wait).await?;
        if first {
            self.metrics.reversal();
        }
        tracing::debug!(authorization_id = %original.authorization_id, first, "reversed");
        Ok(Reversed {
            authorization_id: original.authorization_id,
            first,
        })
    }

    /// What a cardholder's answer page shows: the authorization, its card and the answer
    /// given so far.
    pub async fn answer_view(&self, authorization_id: &str) -> Result<AnswerView, AppError> {
        let (entry, record) = self.entry_and_record(authorization_id).await?;
        let card = self.registry.get(&record.tx.card_token);
        Ok(AnswerView {
            record,
            card,
            answer: entry.answer,
        })
    }

    /// What the engine remembers of an authorization, and its event from the log.
    async fn entry_and_record(
        &self,
        authorization_id: &str,
    ) -> Result<(cardguard_engine::AuthEntry, AuthRecord), AppError> {
        let entry = self
            .core()
            .engine
            .find_authorization(authorization_id)
            .copied()
            .ok_or_else(|| AppError::NotFound(format!("no authorization {authorization_id}")))?;
        let record = self.read_auth(entry.offset).await?;
        Ok((entry, record))
    }

    /// An authorization as its decision recorded it, what became of it (label, reversal,
    /// answer), and its decision replayed: the rules of the version that decided it,
    /// evaluated again on what the decision saw.
    pub async fn authorization(
        &self,
        authorization_id: &str,
    ) -> Result<AuthorizationView, AppError> {
        let (entry, record) = self.entry_and_record(authorization_id).await?;
        let replay = match record.outcome.ruleset_version {
            0 => None,
            v => {
                let version = self.rules.version(v)?;
                version
                    .policy
                    .replay_record(&record, self.fx.base.exponent())
                    .map(|j| {
                        let matched_rules = version.policy.ids(&j.matched);
                        Replayed {
                            agrees: matched_rules == record.outcome.matched_rules,
                            matched_rules,
                        }
                    })
            }
        };
        Ok(AuthorizationView {
            record,
            entry,
            replay,
        })
    }

    /// Records the cardholder's answer to the alert about an authorization (see
    /// [`Engine::apply_answer`]): once; a second answer changes nothing and gets the first
    /// one back (`first` false). Only a hold or a decline as suspected fraud is answered.
    pub async fn answer(
        self: &Arc<Self>,
        authorization_id: &str,
        yes: bool,
        via: &str,
    ) -> Result<Answered, AppError> {
        let view = self.answer_view(authorization_id).await?;
        let o = &view.record.outcome;
        let alerted = o.decision == cardguard_core::Decision::Hold
            || (o.decision == cardguard_core::Decision::Decline
                && o.response_code == cardguard_core::ResponseCode::SuspectedFraud);
        if !alerted {
            return Err(AppError::Conflict(format!(
                "authorization {authorization_id} was not held or declined as suspected fraud: there is nothing to answer"
            )));
        }
        let expiry = i64::from(self.config.notify.hold_expiry_minutes) * 60_000;
        if o.decision == cardguard_core::Decision::Hold
            && view.answer == Answer::None
            && self.clock.now().0 > view.record.tx.now().0 + expiry
        {
            return Err(AppError::Conflict(format!(
                "the hold of authorization {authorization_id} expired {} minutes after it was made",
                self.config.notify.hold_expiry_minutes
            )));
        }
        let (wait, answered) = {
            let mut core = self.core();
            let entry = core
                .engine
                .find_authorization(authorization_id)
                .copied()
                .ok_or_else(|| {
                    AppError::NotFound(format!("no authorization {authorization_id}"))
                })?;
            match entry.answer {
                Answer::Yes | Answer::No => (
                    Wait::Upto(core.log.end_offset()),
                    Answered {
                        authorization_id: authorization_id.to_owned(),
                        yes: entry.answer == Answer::Yes,
                        first: false,
                    },
                ),
                Answer::None => {
                    let rec = AnswerRecord {
                        authorization_id: authorization_id.to_owned(),
                        yes,
                        original: view.record.tx.clone(),
                        received: self.clock.now(),
                        via: via.to_owned(),
                    };
                    let (_, rx) = append(&mut core, Event::KIND_ANSWER, &rec)?;
                    core.engine
                        .apply_answer(&rec)
                        .map_err(|e| AppError::Internal(e.to_string()))?;
                    core.since_snapshot += 1;
                    (
                        Wait::Event(rx),
                        Answered {
                            authorization_id: authorization_id.to_owned(),
                            yes,
                            first: true,
                        },
                    )
                }
            }
        };
        self.wait(wait).await?;
        if answered.first {
            self.metrics.label(!yes);
            tracing::info!(authorization_id, yes, via, "cardholder answered");
        }
        Ok(answered)
    }

    /// Waits until an event, or everything up to an offset, is durable.
    async fn wait(&self, wait: Wait) -> Result<(), AppError> {
        match wait {
            Wait::Event(rx) => durable(rx).await,
            Wait::Upto(end) => {
                let reader = Arc::clone(&self.reader);
                tokio::task::spawn_blocking(move || reader.wait_durable(end))
                    .await
                    .map_err(|e| AppError::Internal(e.to_string()))?
                    .map_err(log_error)
            }
        }
    }

    /// The card, keyed and ready to store: the PAN encrypted, a stored code hashed.
    fn keyed(&self, record: &CardRecord) -> Result<(CardInfo, cardguard_store::CardRow), AppError> {
        let e = record.validate(&self.keys)?;
        let token = self.keys.token(&e.pan);
        let csc = match e.csc {
            Ok(m) => m,
            Err(code) => CscMethod::Stored {
                hash: registry::stored_csc_hash(&self.keys, &token, &code),
            },
        };
        let info = CardInfo {
            token,
            last4: e.pan.last4().to_string(),
            expiry: e.expiry,
            cardholder_id: e.cardholder_id,
            product: e.product,
            status: e.status,
            service_code: e.service_code,
            brand: e.brand,
            csc,
            pin: e.pin,
            contact: e.contact,
            notifications: e.notifications,
            home: e.home,
        };
        let (ct, nonce) = self
            .keys
            .encrypt_pan(&e.pan, &token)
            .map_err(|e| AppError::Internal(e.to_string()))?;
        let row = info.to_row(ct, nonce, self.clock.now());
        Ok((info, row))
    }

    fn enrolled(info: &CardInfo, created: bool) -> Enrolled {
        Enrolled {
            card_token: info.token,
            last4: info.last4.clone(),
            brand: info.brand.name(),
            created,
        }
    }

    /// Enrolls or updates a card: checked, PAN encrypted, codes hashed, row written, registry
    /// updated. Blocking (the card database): call it off an async worker.
    /// Sets or changes a card's PIN from a PIN block: a PIN easy to guess (repeated,
    /// sequential, common, from the birth date or the phone number) is refused with the
    /// reason; otherwise the card's PIN verification value (Visa PVV or IBM 3624 offset) is
    /// computed under its PVK and stored. The clear PIN lives only in this call.
    /// Blocking: call it off an async worker.
    pub fn set_pin(
        &self,
        card: &CardToken,
        block: &[u8],
        birth_date: Option<cardguard_cardsec::pin_policy::BirthDate>,
    ) -> Result<(), AppError> {
        use crate::registry::PinMethod;
        let (info, row) = self.stored_card(card)?;
        let method = info.pin.clone().ok_or_else(|| {
            AppError::invalid(
                "pin_block",
                "the card has no PIN method (enroll it with pin.method and its key)",
            )
        })?;
        let pan = self.row_pan(card, &row)?;
        let pan = pan.expose();
        let pin = match registry::decode_pin_block(block, pan, &self.keys) {
            Some(Ok(p)) => p,
            Some(Err(_)) => {
                return Err(AppError::invalid(
                    "pin_block",
                    "does not decode to a PIN for this card with the PIN key",
                ));
            }
            None => {
                return Err(AppError::invalid(
                    "pin_block",
                    "no PIN key is configured for this block's format",
                ));
            }
        };
        let phones: Vec<&str> = info.contact.phone.as_deref().into_iter().collect();
        if let Some(weak) = cardguard_cardsec::pin_policy::weakness(&pin, birth_date, &phones) {
            return Err(AppError::invalid("pin_block", weak.to_string()));
        }
        let unknown_key = |id: &str| {
            AppError::invalid(
                "pin_block",
                format!("the card's PIN verification key {id} is not configured"),
            )
        };
        let bad =
            |e: cardguard_cardsec::CardDataError| AppError::invalid("pin_block", e.to_string());
        let method = match method {
            PinMethod::VisaPvv { key_id, pvki, .. } => {
                let k = self
                    .keys
                    .pvk
                    .get(&key_id)
                    .ok_or_else(|| unknown_key(&key_id))?;
                if pin.len() != 4 {
                    return Err(AppError::invalid(
                        "pin_block",
                        "a Visa PVV card takes a 4-digit PIN",
                    ));
                }
                let pvv = cardguard_cardsec::pin::visa_pvv(k, pvki, &pin, pan).map_err(bad)?;
                PinMethod::VisaPvv { key_id, pvki, pvv }
            }
            PinMethod::Ibm3624 {
                key_id,
                decimalization_table,
                validation_offset,
                validation_length,
                pad,
                ..
            } => {
                let k = self
                    .keys
                    .pvk
                    .get(&key_id)
                    .ok_or_else(|| unknown_key(&key_id))?;
                let p = cardguard_cardsec::pin::Ibm3624 {
                    decimalization_table: decimalization_table.clone(),
                    pan_offset: validation_offset,
                    pan_length: validation_length,
                    pad,
                };
                let offset = p.offset(k, &pin, pan).map_err(bad)?;
                PinMethod::Ibm3624 {
                    key_id,
                    offset,
                    decimalization_table,
                    validation_offset,
                    validation_length,
                    pad,
                }
            }
        };
        let mut next = (*info).clone();
        next.pin = Some(method);
        self.save_card(next, row)
    }

    pub fn enroll(&self, record: &CardRecord) -> Result<Enrolled, AppError> {
        let (info, row) = self.keyed(record)?;
        let created = self
            .cards_db
            .upsert(&row)
            .map_err(|e| AppError::Unavailable(format!("card registry: {e}")))?;
        let out = Self::enrolled(&info, created);
        self.registry.insert(info);
        Ok(out)
    }

    /// Enrolls many cards in one transaction of the card database. A card that fails its
    /// checks gets its error and the others go in; a store failure fails them all.
    /// Blocking: call it off an async worker.
    pub fn enroll_batch(
        &self,
        records: &[CardRecord],
    ) -> Result<Vec<Result<Enrolled, AppError>>, AppError> {
        let mut rows = Vec::with_capacity(records.len());
        let keyed: Vec<Result<CardInfo, AppError>> = records
            .iter()
            .map(|r| {
                self.keyed(r).map(|(info, row)| {
                    rows.push(row);
                    info
                })
            })
            .collect();
        let mut created = self
            .cards_db
            .upsert_many(&rows)
            .map_err(|e| AppError::Unavailable(format!("card registry: {e}")))?
            .into_iter();
        Ok(keyed
            .into_iter()
            .map(|k| {
                k.map(|info| {
                    let out = Self::enrolled(&info, created.next().unwrap_or(false));
                    self.registry.insert(info);
                    out
                })
            })
            .collect())
    }

    /// Freezes the state under the lock when enough events have passed and hands it to the
    /// snapshot writer, still under the lock so that the writer gets the states in the order
    /// they were frozen: the shards are shared, not copied, and encoded later on the
    /// writer's thread.
    fn maybe_snapshot(&self, core: &mut Core) {
        core.since_snapshot += 1;
        if core.since_snapshot < self.config.storage.snapshot_every.max(1) {
            return;
        }
        core.since_snapshot = 0;
        let offset = core.log.end_offset();
        self.snapshots.submit(offset, core.engine.freeze());
    }

    /// A snapshot now (at shutdown), if anything happened since the last one; returns once
    /// it is written (or failed).
    pub fn snapshot_now(&self) {
        let written = {
            let mut core = self.core();
            let end = core.log.end_offset();
            if end <= self.snapshots.last_offset() {
                None
            } else {
                core.since_snapshot = 0;
                Some(self.snapshots.submit_and_notify(end, core.engine.freeze()))
            }
        };
        if let Some(rx) = written {
            let _ = rx.recv();
        }
    }

    /// The Prometheus exposition: counters, the latency histogram and cheap state gauges.
    pub fn metrics_text(&self) -> String {
        let (counts, log_bytes) = {
            let core = self.core();
            (core.engine.counts(), core.log.end_offset())
        };
        let mut gauges: Vec<(&str, u64)> = counts.to_vec();
        gauges.push(("cards_enrolled", self.registry.len() as u64));
        gauges.push(("log_bytes", log_bytes));
        gauges.push(("log_durable_bytes", self.reader.durable().unwrap_or(0)));
        let mut text = self.metrics.render(&gauges);
        text.push_str(&self.drift().metrics());
        text.push_str(&self.consumer_lag());
        for source in self
            .metric_sources
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            text.push_str(&source());
        }
        text
    }

    /// Each consumer's lag: how far its saved position is behind the log's durable end.
    fn consumer_lag(&self) -> String {
        use cardguard_store::CursorStore;
        let consumers = self.consumers.lock().unwrap_or_else(|e| e.into_inner());
        if consumers.is_empty() {
            return String::new();
        }
        let end = self.reader.durable().unwrap_or(0);
        let mut text = String::from(
            "# HELP cardguard_consumer_lag_bytes How far a consumer's saved position is behind the log's durable end.\n\
             # TYPE cardguard_consumer_lag_bytes gauge\n",
        );
        for (name, cursors) in consumers.iter() {
            let at = cursors.load(name).ok().flatten().unwrap_or(0);
            text.push_str(&format!(
                "cardguard_consumer_lag_bytes{{consumer=\"{name}\"}} {}\n",
                end.saturating_sub(at)
            ));
        }
        text
    }

    /// Adds metrics that a part running beside the application keeps (notifications):
    /// `source` gives their text exposition, appended to the application's own.
    pub fn add_metrics(&self, source: MetricSource) {
        self.metric_sources
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(source);
    }

    /// Whether authorizations can be taken, and what needs an operator. A writer stopped
    /// by a failed write (a full disk) takes appends again here once the disk has room; one
    /// stopped by a failed sync needs a restart, and says so.
    pub fn health(&self) -> Health {
        let mut problems = Vec::new();
        let mut status = "ok";
        {
            let mut core = self.core();
            if let Some(f) = core.log.failure() {
                let room = room(&self.data_dir, core.log.end_offset());
                let recovered =
                    !f.restart_needed && room >= RECOVERY_ROOM && core.log.recover().is_ok();
                if !recovered {
                    status = "unavailable";
                    problems.push(if f.restart_needed {
                        format!("the event log writer failed: {}; restart cardguard (a sync failed, so the log must be checked)", f.why)
                    } else {
                        format!("the event log writer failed: {}; it takes authorizations again once the disk has room ({room} bytes free)", f.why)
                    });
                }
            }
            let missing = core.engine.missing_authorizations();
            if missing > 0 {
                problems.push(format!(
                    "{missing} authorizations were set aside with damaged parts of the event log"
                ));
            }
        }
        if let PrefixCheck::Failed(why) =
            &*self.prefix_check.lock().unwrap_or_else(|e| e.into_inner())
        {
            problems.push(format!(
                "the event log is damaged before the snapshot: {why}"
            ));
        }
        if status == "ok" && !problems.is_empty() {
            status = "degraded";
        }
        Health { status, problems }
    }

    /// Counts of the state and the log.
    pub fn stats(&self) -> Stats {
        let (engine, log_bytes, model) = {
            let core = self.core();
            (
                core.engine.stats(),
                core.log.end_offset(),
                core.engine.scorer_version().to_owned(),
            )
        };
        Stats {
            cards_enrolled: self.registry.len(),
            engine,
            log_bytes,
            log_durable_bytes: self.reader.durable().unwrap_or(0),
            model,
            now: Timestamp::to_rfc3339(self.clock.now()),
        }
    }
}

/// Text with every run of 12 or more digits (a card number sent where it does not belong)
/// replaced, for the audit trail.
pub fn mask_numbers(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 12 {
            out.push_str("[number]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in s.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The request in one canonical form, for its digest: every field the caller sent, the
/// secrets included (the digest is keyed), in a fixed order and notation, so that the same
/// request written another way (other field order, `100` or `100.0`) digests the same.
fn canonical(auth: &Authorization, utc_offset_min: i16) -> Vec<u8> {
    let card = &auth.card;
    let mut out = serde_json::to_vec(&(
        &auth.id,
        auth.timestamp,
        utc_offset_min,
        card.pan.expose(),
        (card.expiry.year, card.expiry.month),
        &card.csc,
        &card.pin_block,
        &auth.amount,
        &auth.merchant,
        auth.channel,
        auth.tx_type,
        &auth.device,
    ))
    .unwrap_or_default();
    // Appended only when present, so that requests without one digest as they always did.
    if let Some(v) = &auth.authentication {
        out.push(0);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Restores the engine from the snapshot, if there is one this version reads: the chain of
/// segments, or else the single file of earlier versions. Returns the log offset it covers
/// and where the snapshot writer goes on. A snapshot this version cannot read (another
/// layout of the state) is passed over: the log holds every event, so the state is replayed
/// from its start instead. A damaged one (checksum) is an error, as a damaged log is.
fn restore_snapshot(
    engine: &mut Engine,
    data_dir: &Path,
) -> Result<(Option<u64>, crate::snapshots::ChainStart), OpenError> {
    let heads = cardguard_store::list_segments(data_dir)?;
    let mut start = crate::snapshots::ChainStart {
        links: Vec::new(),
        next_seq: heads.last().map_or(0, |h| h.seq + 1),
        offset: 0,
    };
    let chain = cardguard_store::segment_chain(&heads);
    let ranges: Vec<_> = chain.iter().map(|h| h.slices.clone()).collect();
    let (read, links) = match cardguard_engine::segment::window(&ranges) {
        Some(from) => (read_chain(&chain[from..]), &chain[from..]),
        None => match cardguard_store::read_snapshot(data_dir)? {
            Some((offset, body)) => (read_single(&body).map(|st| (st, offset)), &[][..]),
            None => return Ok((None, start)),
        },
    };
    match read {
        Ok((st, offset)) => {
            engine.restore(st);
            start.links = links.iter().map(crate::snapshots::Link::from).collect();
            start.offset = offset;
            Ok((Some(offset), start))
        }
        Err(Unreadable::Damaged(e)) => Err(e.into()),
        Err(Unreadable::Layout(e)) => {
            tracing::warn!(error = %e, "snapshot not readable by this version; replaying the whole log");
            Ok((None, start))
        }
    }
}

/// Why a snapshot gave no state.
enum Unreadable {
    /// Its checksum or length is wrong, or it could not be read: an error at open.
    Damaged(cardguard_store::StoreError),
    /// Another layout of the state: passed over for a replay.
    Layout(String),
}

impl From<cardguard_store::StoreError> for Unreadable {
    fn from(e: cardguard_store::StoreError) -> Self {
        Unreadable::Damaged(e)
    }
}

/// The single-file snapshot of earlier versions.
fn read_single(body: &[u8]) -> Result<EngineState, Unreadable> {
    let b = body
        .strip_prefix(cardguard_engine::STATE_FORMAT.as_slice())
        .ok_or_else(|| Unreadable::Layout("another layout of the state".into()))?;
    postcard::from_bytes(b).map_err(|e| Unreadable::Layout(e.to_string()))
}

/// The state the segments of `chain` give back (read oldest first, the newest's preamble
/// first of all), and the offset it covers.
fn read_chain(chain: &[cardguard_store::SegmentHead]) -> Result<(EngineState, u64), Unreadable> {
    use cardguard_engine::segment::{Restorer, SEGMENT_FORMAT};
    let layout =
        |seq: u64, e: &dyn std::fmt::Display| Unreadable::Layout(format!("segment {seq}: {e}"));
    let (newest, older) = chain
        .split_last()
        .ok_or_else(|| Unreadable::Layout("no segments".into()))?;
    let body = |h: &cardguard_store::SegmentHead| -> Result<Vec<u8>, Unreadable> {
        let b = cardguard_store::read_segment(h)?;
        if !b.starts_with(SEGMENT_FORMAT) {
            return Err(layout(h.seq, &"another layout of the state"));
        }
        Ok(b)
    };
    let tag = SEGMENT_FORMAT.len();
    let last = body(newest)?;
    let (pre, _) = postcard::take_from_bytes(&last[tag..]).map_err(|e| layout(newest.seq, &e))?;
    let mut r = Restorer::new(pre);
    for h in older {
        r.apply(&mut postcard::Deserializer::from_bytes(&body(h)?[tag..]))
            .map_err(|e| layout(h.seq, &e))?;
    }
    r.apply(&mut postcard::Deserializer::from_bytes(&last[tag..]))
        .map_err(|e| layout(newest.seq, &e))?;
    let st = r.finish().map_err(|e| Unreadable::Layout(e.to_string()))?;
    Ok((st, newest.offset))
}

/// Checks the frames of the log before `end` (those the snapshot covers, which the start
/// did not read) on a thread of its own at the lowest priority; a damaged one is logged and
/// shows in the health.
fn spawn_prefix_check(
    path: PathBuf,
    end: u64,
    result: Arc<Mutex<PrefixCheck>>,
) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("log-verify".into())
        .spawn(move || {
            cardguard_store::idle_priority();
            let t0 = Instant::now();
            let outcome = match cardguard_store::log::verify(&path, 0, Some(end), |_| Ok(())) {
                Ok(r) => {
                    tracing::info!(
                        frames = r.frames,
                        bytes = end,
                        ms = t0.elapsed().as_millis() as u64,
                        "the log before the snapshot checks out"
                    );
                    PrefixCheck::Passed
                }
                Err(e) => {
                    tracing::error!(error = %e, "the event log is damaged before the snapshot");
                    PrefixCheck::Failed(e.to_string())
                }
            };
            *result.lock().unwrap_or_else(|e| e.into_inner()) = outcome;
        })
        .map(|_| ())
}

/// The reasons of a pending decision, computed with no lock held. On a multi-threaded
/// runtime the worker says it blocks (its other tasks move to another worker) and computes
/// them in place, without the hop to a blocking thread and back; elsewhere, in place.
fn explain_off_lock(pending: &cardguard_engine::Pending) -> cardguard_engine::Reasons {
    let multi = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi {
        tokio::task::block_in_place(|| pending.explain())
    } else {
        pending.explain()
    }
}

/// The engine's shadow candidate: `policy` scoring with `scorer` (the model in force when
/// none), or none.
fn shadow_of(
    policy: Option<Arc<cardguard_engine::Policy>>,
    scorer: &Option<Arc<dyn cardguard_engine::Scorer>>,
) -> Option<Arc<cardguard_engine::Shadow>> {
    policy.map(|policy| {
        Arc::new(cardguard_engine::Shadow {
            policy,
            scorer: scorer.clone(),
        })
    })
}

/// The drift monitor of a model, with the thresholds of the configuration.
fn drift_monitor(
    cfg: &crate::config::EngineSection,
    model: &str,
    summary: Option<cardguard_engine::drift::TrainingSummary>,
) -> Arc<crate::drift::DriftMonitor> {
    Arc::new(crate::drift::DriftMonitor::new(
        model,
        summary,
        cfg.drift_psi_threshold,
        cfg.drift_min_observations,
    ))
}

/// A model file, checked and compiled for the engine.
fn load_model(path: &Path) -> Result<Arc<cardguard_engine::TreeModel>, OpenError> {
    load_model_file(path).map(|(m, _)| m)
}

/// A model file's compiled trees and the training data's distributions it records.
fn load_model_file(
    path: &Path,
) -> Result<
    (
        Arc<cardguard_engine::TreeModel>,
        Option<cardguard_engine::drift::TrainingSummary>,
    ),
    OpenError,
> {
    let bad = |why: String| OpenError::Model {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let file = cardguard_engine::Model::from_json(&text).map_err(|e| bad(e.to_string()))?;
    let model = file.compile().map_err(|e| bad(e.to_string()))?;
    Ok((Arc::new(model), file.training))
}
