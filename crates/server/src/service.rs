//! The application core, transport-free: opening the data directory (keys, card registry,
//! snapshot, log replay), authorizations, labels, enrollment and snapshots.
//!
//! One mutex guards the engine and the log's appender together, so the order of the log is
//! the order in which the engine applied the events. Decisions take a few microseconds
//! under it; the wait for the disk happens outside it.

use crate::api::dto::{AuthorizationResp, EnrollResp};
use crate::api::error::ApiError;
use crate::config::{Config, DurabilitySetting};
use crate::keys::KeyRing;
use crate::registry::{self, CardInfo, CscMethod, Cvv2ServiceCode, Registry};
use cardguard_core::{Authorization, Clock, Timestamp};
use cardguard_engine::{AuthRecord, Engine, LabelRecord, TxFacts};
use cardguard_store::{CardRegistry, Durability, DurableWatch, EventLog, LogReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

/// Frame kinds in the event log.
pub const KIND_AUTH: u8 = 1;
pub const KIND_LABEL: u8 = 2;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyRingError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] cardguard_store::StoreError),
    #[error("card registry row {token}: {why}")]
    CardRow { token: String, why: String },
    #[error("auth: {0}")]
    ApiKeys(String),
}

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

enum Step {
    /// The request id was answered before; its event is at this offset.
    Seen(u64),
    Logged {
        durable: tokio::sync::oneshot::Receiver<Result<(), cardguard_store::StoreError>>,
        resp: Box<AuthorizationResp>,
        snapshot: Option<(u64, Vec<u8>)>,
        decided: (cardguard_core::Decision, cardguard_core::ResponseCode),
    },
}

struct Core {
    engine: Engine,
    log: EventLog,
    since_snapshot: u64,
}

pub struct App {
    pub config: Config,
    data_dir: PathBuf,
    keys: KeyRing,
    registry: Registry,
    cards_db: CardRegistry,
    core: Mutex<Core>,
    reader: LogReader,
    watch: DurableWatch,
    clock: Arc<dyn Clock>,
    cvv2: Cvv2ServiceCode,
    snapshot_lock: Mutex<()>,
    last_snapshot: AtomicU64,
    pub metrics: crate::metrics::Metrics,
    /// Swapped whole when the brands file is reloaded; scans hold their own `Arc`.
    brands: RwLock<Arc<cardguard_phish::BrandRegistry>>,
    /// SPF, DKIM and DMARC for scanned mail, when configured.
    sender_verifier: Option<cardguard_mailauth::SenderVerifier>,
}

fn decode_record(payload: &[u8]) -> Result<AuthRecord, String> {
    serde_json::from_slice(payload).map_err(|e| e.to_string())
}

impl App {
    /// Opens the data directory: keys, cards, snapshot, then the log after the snapshot.
    pub fn open(
        config: Config,
        data_dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<(App, OpenSummary), OpenError> {
        let t0 = Instant::now();
        std::fs::create_dir_all(data_dir).map_err(|source| OpenError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let engine_cfg = config.engine.to_engine()?;
        let (keys, created_keys) = KeyRing::load(&config.keys, data_dir)?;
        let cards_db = CardRegistry::open(&data_dir.join("cards.db"))?;
        let registry = Registry::default();
        let t_cards = Instant::now();
        for row in cards_db.load_all()? {
            let info = CardInfo::from_row(&row).map_err(|why| OpenError::CardRow {
                token: row.token.clone(),
                why,
            })?;
            registry.insert(info);
        }
        let cards_ms = t_cards.elapsed().as_millis();
        let t_snap = Instant::now();
        let mut engine = Engine::new(engine_cfg);
        if let Some(path) = &config.engine.model_file {
            engine.set_scorer(load_model(path)?);
        }
        let snap = cardguard_store::read_snapshot(data_dir)?;
        // A snapshot this version cannot read (an older layout of the state) is passed over:
        // the log holds every event, so the state is replayed from its start instead.
        let snapshot_offset = match snap {
            Some((offset, body)) => match postcard::from_bytes(&body) {
                Ok(st) => {
                    engine.restore(st);
                    Some(offset)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "snapshot not readable by this version; replaying the whole log");
                    None
                }
            },
            None => None,
        };
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
                match f.kind {
                    KIND_AUTH => {
                        let rec = decode_record(&f.payload).map_err(bad)?;
                        engine
                            .apply_auth(&rec, f.offset)
                            .map_err(|e| bad(e.to_string()))?;
                    }
                    KIND_LABEL => {
                        let l: LabelRecord =
                            serde_json::from_slice(&f.payload).map_err(|e| bad(e.to_string()))?;
                        engine.apply_label(&l).map_err(|e| bad(e.to_string()))?;
                    }
                    _ => return Err(bad(format!("unknown event kind {}", f.kind))),
                }
                replayed += 1;
                Ok(())
            },
        )?;
        let reader = log.reader()?;
        let watch = log.watch();
        let cvv2 = match config.csc.cvv2_service_code.as_str() {
            "card" => Cvv2ServiceCode::Card,
            s if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) => {
                Cvv2ServiceCode::Fixed(s.to_owned())
            }
            _ => {
                return Err(OpenError::Config(crate::config::ConfigError::Invalid(
                    "csc.cvv2_service_code must be \"card\" or 3 digits".into(),
                )));
            }
        };
        let brands = load_brands(&config.mail)?;
        let sender_verifier = match (&config.mail.dns_zone, config.mail.verify_sender) {
            (Some(path), _) => {
                let text = std::fs::read_to_string(path).map_err(|source| OpenError::DataDir {
                    path: path.display().to_string(),
                    source,
                })?;
                let zone = cardguard_mailauth::Zone::parse(&text).map_err(|e| {
                    OpenError::Config(crate::config::ConfigError::Invalid(format!(
                        "mail.dns_zone: {e}"
                    )))
                })?;
                Some(cardguard_mailauth::SenderVerifier::offline(zone))
            }
            (None, true) => Some(cardguard_mailauth::SenderVerifier::system()),
            (None, false) => None,
        }
        .transpose()
        .map_err(|e| {
            OpenError::Config(crate::config::ConfigError::Invalid(format!(
                "mail.verify_sender: {e}"
            )))
        })?;
        let summary = OpenSummary {
            cards: registry.len(),
            snapshot_offset,
            replayed,
            log_frames: report.frames,
            truncated_bytes: report.truncated,
            created_keys,
            cards_ms,
            snapshot_ms,
            replay_ms: t_log.elapsed().as_millis(),
            elapsed_ms: t0.elapsed().as_millis(),
        };
        let app = App {
            config,
            data_dir: data_dir.to_path_buf(),
            keys,
            registry,
            cards_db,
            core: Mutex::new(Core {
                engine,
                log,
                since_snapshot: replayed,
            }),
            reader,
            watch,
            clock,
            cvv2,
            snapshot_lock: Mutex::new(()),
            last_snapshot: AtomicU64::new(snapshot_offset.unwrap_or(0)),
            metrics: crate::metrics::Metrics::default(),
            brands: RwLock::new(Arc::new(brands)),
            sender_verifier,
        };
        Ok((app, summary))
    }

    fn core(&self) -> std::sync::MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The brand registry of the phishing analyzer, as of now.
    pub fn brands(&self) -> Arc<cardguard_phish::BrandRegistry> {
        Arc::clone(&self.brands.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Reads `mail.brands_file` again and swaps the registry in; on an error the registry in
    /// use stays. Returns how many brands the new registry holds.
    pub fn reload_brands(&self) -> Result<usize, OpenError> {
        let fresh = load_brands(&self.config.mail)?;
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
        let model = load_model(path)?;
        let version = cardguard_engine::Scorer::version(model.as_ref()).to_owned();
        self.core().engine.set_scorer(model);
        tracing::info!(model = %version, "model swapped in");
        Ok(version)
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
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Decides an authorization, logs it, and answers once the log has it.
    /// `started` is when the request arrived, for the latency metric.
    pub async fn authorize(
        self: &Arc<Self>,
        auth: Authorization,
        utc_offset_min: i16,
        started: Instant,
    ) -> Result<AuthorizationResp, ApiError> {
        let id = auth.id.clone();
        let (rx, resp, snapshot, decided) = match self.decide_and_log(auth, utc_offset_min)? {
            Step::Seen(offset) => return self.answer_again(offset, &id).await,
            Step::Logged {
                durable,
                resp,
                snapshot,
                decided,
            } => (durable, resp, snapshot, decided),
        };
        if let Some((offset, bytes)) = snapshot {
            let app = Arc::clone(self);
            tokio::task::spawn_blocking(move || app.write_snapshot(offset, &bytes));
        }
        match rx.await {
            Ok(Ok(())) => {
                self.metrics
                    .authorization(decided.0, decided.1, started.elapsed());
                tracing::debug!(authorization_id = %resp.authorization_id, decision = %resp.decision, code = %resp.response_code, "decided");
                Ok(*resp)
            }
            Ok(Err(e)) => Err(ApiError::unavailable(format!("event log: {e}"))),
            Err(_) => Err(ApiError::unavailable("event log writer stopped")),
        }
    }

    /// The synchronous part of an authorization: card checks outside the lock, then under
    /// it the idempotency check, the decision, the append and the state update.
    fn decide_and_log(&self, auth: Authorization, utc_offset_min: i16) -> Result<Step, ApiError> {
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
        let mut facts = TxFacts {
            last4: auth.card.pan.last4(),
            id: auth.id,
            ts: auth.timestamp,
            utc_offset_min,
            card_token: token,
            amount: auth.amount,
            amount_base: 0,
            merchant: auth.merchant,
            channel: auth.channel,
            tx_type: auth.tx_type,
            device_id: auth.device.as_ref().map(|d| d.id.clone()),
            device_ip: auth.device.as_ref().and_then(|d| d.ip),
            home_country: home.map(|h| h.country),
            home: home.and_then(|h| h.location),
        };
        let mut core = self.core();
        if let Some(e) = core.engine.find_request(&facts.id) {
            return Ok(Step::Seen(e.offset));
        }
        let fx = &core.engine.config().fx;
        let base = fx.to_base_major(&facts.amount) * 10f64.powi(i32::from(fx.base.exponent()));
        facts.amount_base = base.round().clamp(0.0, 1e18) as u64;
        let outcome = core.engine.decide(&facts, &checks);
        let rec = AuthRecord {
            authorization_id: core.engine.next_authorization_id(),
            tx: facts,
            checks,
            outcome,
        };
        let payload = serde_json::to_vec(&rec).map_err(|e| ApiError::internal(e.to_string()))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let offset = core
            .log
            .appender()
            .append(KIND_AUTH, &payload, move |r| {
                let _ = tx.send(r);
            })
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        core.engine
            .apply_auth(&rec, offset)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let snapshot = self.maybe_snapshot(&mut core);
        Ok(Step::Logged {
            durable: rx,
            resp: Box::new(AuthorizationResp::from_record(&rec)),
            snapshot,
            decided: (rec.outcome.decision, rec.outcome.response_code),
        })
    }

    /// The stored answer to a request id seen before, read back from the log.
    async fn answer_again(
        self: &Arc<Self>,
        offset: u64,
        id: &str,
    ) -> Result<AuthorizationResp, ApiError> {
        let app = Arc::clone(self);
        let id = id.to_owned();
        tokio::task::spawn_blocking(move || {
            app.watch
                .wait(offset + 1)
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            let f = app
                .reader
                .read_at(offset)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            let rec = decode_record(&f.payload).map_err(ApiError::internal)?;
            if rec.tx.id != id {
                return Err(ApiError::internal("request id hash collision"));
            }
            Ok(AuthorizationResp::from_record(&rec))
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    }

    /// Records a label and answers once the log has it.
    pub async fn label(
        &self,
        authorization_id: &str,
        fraud: bool,
        source: Option<String>,
    ) -> Result<String, ApiError> {
        let (rx, token) = {
            let mut core = self.core();
            let entry = core
                .engine
                .find_authorization(authorization_id)
                .copied()
                .ok_or_else(|| {
                    ApiError::not_found(format!("no authorization {authorization_id}"))
                })?;
            let rec = LabelRecord {
                authorization_id: authorization_id.to_owned(),
                fraud,
                ts: self.clock.now(),
                source,
            };
            let payload =
                serde_json::to_vec(&rec).map_err(|e| ApiError::internal(e.to_string()))?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            core.log
                .appender()
                .append(KIND_LABEL, &payload, move |r| {
                    let _ = tx.send(r);
                })
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            core.engine
                .apply_label(&rec)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            core.since_snapshot += 1;
            (rx, entry.card)
        };
        match rx.await {
            Ok(Ok(())) => {
                self.metrics.label(fraud);
                Ok(token.to_string())
            }
            Ok(Err(e)) => Err(ApiError::unavailable(format!("event log: {e}"))),
            Err(_) => Err(ApiError::unavailable("event log writer stopped")),
        }
    }

    /// Enrolls or updates a card: PAN encrypted, codes hashed, row written, registry updated.
    pub async fn enroll(
        self: &Arc<Self>,
        e: crate::api::dto::Enrollment,
    ) -> Result<EnrollResp, ApiError> {
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
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let row = info.to_row(ct, nonce, self.clock.now());
        let app = Arc::clone(self);
        let created = tokio::task::spawn_blocking(move || app.cards_db.upsert(&row))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::unavailable(format!("card registry: {e}")))?;
        let resp = EnrollResp {
            card_token: token.to_string(),
            last4: info.last4.clone(),
            brand: info.brand.name().to_owned(),
            created,
        };
        self.registry.insert(info);
        Ok(resp)
    }

    /// Takes a snapshot's bytes under the lock when enough events have passed.
    fn maybe_snapshot(&self, core: &mut Core) -> Option<(u64, Vec<u8>)> {
        core.since_snapshot += 1;
        if core.since_snapshot < self.config.storage.snapshot_every.max(1) {
            return None;
        }
        core.since_snapshot = 0;
        match postcard::to_allocvec(core.engine.state()) {
            Ok(b) => Some((core.log.end_offset(), b)),
            Err(e) => {
                tracing::error!(error = %e, "snapshot encoding failed");
                None
            }
        }
    }

    /// Writes a snapshot once the log is durable up to its offset; older ones never replace
    /// newer ones.
    fn write_snapshot(&self, offset: u64, bytes: &[u8]) {
        let _g = self.snapshot_lock.lock().unwrap_or_else(|e| e.into_inner());
        if offset <= self.last_snapshot.load(Ordering::SeqCst) {
            return;
        }
        let t0 = Instant::now();
        let r = self
            .watch
            .wait(offset)
            .and_then(|()| cardguard_store::write_snapshot(&self.data_dir, offset, bytes));
        match r {
            Ok(()) => {
                self.last_snapshot.store(offset, Ordering::SeqCst);
                tracing::info!(
                    offset,
                    bytes = bytes.len(),
                    ms = t0.elapsed().as_millis() as u64,
                    "snapshot written"
                );
            }
            Err(e) => tracing::error!(error = %e, "snapshot failed"),
        }
    }

    /// A snapshot now (at shutdown), if anything happened since the last one.
    pub fn snapshot_now(&self) {
        let taken = {
            let mut core = self.core();
            let end = core.log.end_offset();
            if end <= self.last_snapshot.load(Ordering::SeqCst) {
                None
            } else {
                core.since_snapshot = 0;
                postcard::to_allocvec(core.engine.state())
                    .ok()
                    .map(|b| (end, b))
            }
        };
        if let Some((offset, bytes)) = taken {
            self.write_snapshot(offset, &bytes);
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
        gauges.push(("log_durable_bytes", self.watch.durable()));
        self.metrics.render(&gauges)
    }

    pub fn stats(&self) -> serde_json::Value {
        let core = self.core();
        let s = core.engine.stats();
        serde_json::json!({
            "cards_enrolled": self.registry.len(),
            "engine": s,
            "log_bytes": core.log.end_offset(),
            "log_durable_bytes": self.watch.durable(),
            "model": core.engine.scorer_version(),
            "now": Timestamp::to_rfc3339(self.clock.now()),
        })
    }
}

/// A model file, checked and compiled for the engine.
fn load_model(path: &Path) -> Result<Arc<cardguard_engine::TreeModel>, OpenError> {
    let text = std::fs::read_to_string(path).map_err(|source| OpenError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    let model = cardguard_ml::Model::from_json(&text)
        .and_then(|m| m.compile())
        .map_err(|e| {
            OpenError::Config(crate::config::ConfigError::Invalid(format!(
                "engine.model_file {}: {e}",
                path.display()
            )))
        })?;
    Ok(Arc::new(model))
}

/// The built-in brand registry with `mail.brands_file` merged in.
fn load_brands(
    mail: &crate::config::MailConfig,
) -> Result<cardguard_phish::BrandRegistry, OpenError> {
    let mut brands = cardguard_phish::BrandRegistry::builtin();
    if let Some(path) = &mail.brands_file {
        let text = std::fs::read_to_string(path).map_err(|source| OpenError::DataDir {
            path: path.display().to_string(),
            source,
        })?;
        brands.merge_toml(&text).map_err(|e| {
            OpenError::Config(crate::config::ConfigError::Invalid(format!(
                "mail.brands_file: {e}"
            )))
        })?;
    }
    Ok(brands)
}
