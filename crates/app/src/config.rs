//! The configuration: one TOML file plus `CARDGUARD__SECTION__KEY` environment overrides,
//! read here and nowhere else. Libraries get the typed values.

use cardguard_engine::EngineConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Toml { path: String, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config file {path}: {message}")]
    Value { path: String, message: String },
    #[error("config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
    pub keys: KeysConfig,
    pub csc: CscConfig,
    pub engine: EngineSection,
    pub mail: MailConfig,
    pub iso8583: Iso8583Config,
    pub notify: NotifyConfig,
    pub web: WebConfig,
    pub rules: RulesConfig,
    pub stepup: StepUpConfig,
    pub passwords: PasswordsConfig,
    pub cases: CasesConfig,
}

/// Cases (`cases.db`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CasesConfig {
    /// Days a resolved case stays resolved (for a late word from the cardholder or the
    /// acquirer) before it closes by itself.
    pub close_after_days: u32,
    /// Days until a reissued card is expected at the cardholder's.
    pub reissue_delivery_days: u32,
    /// The month (1-12) a shopping-protection policy year starts in.
    pub policy_year_starts: u8,
    /// Most documents a claim takes, and the largest one in bytes.
    pub claim_documents: u32,
    pub claim_document_max_bytes: u64,
    /// Fraud compensation and shopping protection per card product (`[cases.products.gold]`);
    /// a product not named here has the defaults, and a section's missing fields too.
    pub products: BTreeMap<String, ProductPolicy>,
}

impl Default for CasesConfig {
    fn default() -> Self {
        CasesConfig {
            close_after_days: 30,
            reissue_delivery_days: 7,
            policy_year_starts: 1,
            claim_documents: 10,
            claim_document_max_bytes: 10 * 1024 * 1024,
            products: BTreeMap::new(),
        }
    }
}

/// What a cardholder of a card product is covered for. Amounts are minor units of the base
/// currency.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProductPolicy {
    /// Fraudulent charges this many days before the report (the case's opening) are covered.
    pub compensation_window_days: u32,
    /// What the cardholder bears of a compensated case, from its base-currency charges.
    pub compensation_deductible: u64,
    /// Most a case compensates (0: no cap).
    pub compensation_cap: u64,
    /// An investigation's findings that void compensation (gross negligence), of
    /// [`NEGLIGENCE_FINDINGS`].
    pub gross_negligence: Vec<String>,
    /// Damage or theft within this many days of the purchase is covered.
    pub protection_window_days: u32,
    /// Most shopping protection pays per card and policy year.
    pub protection_annual_cap: u64,
    /// What the cardholder bears of each claim.
    pub protection_deductible: u64,
}

/// The findings an investigation may record that a product can count as gross negligence.
pub const NEGLIGENCE_FINDINGS: [&str; 5] = [
    "pin_written_on_card",
    "pin_shared",
    "card_lent",
    "card_details_shared",
    "late_report",
];

impl Default for ProductPolicy {
    fn default() -> Self {
        ProductPolicy {
            compensation_window_days: 60,
            compensation_deductible: 0,
            compensation_cap: 0,
            gross_negligence: ["pin_written_on_card", "pin_shared", "card_lent"]
                .map(String::from)
                .to_vec(),
            protection_window_days: 90,
            protection_annual_cap: 5_000_000,
            protection_deductible: 3_000,
        }
    }
}

impl CasesConfig {
    /// The policy of a card product.
    pub fn product(&self, product: &str) -> ProductPolicy {
        self.products.get(product).cloned().unwrap_or_default()
    }

    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("cases.{m}")));
        if !(1..=12).contains(&self.policy_year_starts) {
            return bad("policy_year_starts must be a month, 1 to 12".into());
        }
        for (name, p) in &self.products {
            for f in &p.gross_negligence {
                if !NEGLIGENCE_FINDINGS.contains(&f.as_str()) {
                    return bad(format!(
                        "products.{name}.gross_negligence: {f:?} is not one of {}",
                        NEGLIGENCE_FINDINGS.join(", ")
                    ));
                }
            }
            if p.compensation_window_days == 0 || p.protection_window_days == 0 {
                return bad(format!(
                    "products.{name}: a window must be at least one day"
                ));
            }
        }
        Ok(())
    }
}

/// The online account's password policy (`POST /v1/passwords/check`), NIST SP 800-63B.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordsConfig {
    /// 15 for a password that is the only factor; 8 (the least allowed) when it is one of
    /// several.
    pub min_chars: usize,
    /// At least 64.
    pub max_chars: usize,
    /// A Pwned Passwords file (SHA-1, `HASH:COUNT` lines sorted by hash), held offline.
    pub breached_file: Option<std::path::PathBuf>,
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        let d = crate::password::PasswordPolicy::default();
        PasswordsConfig {
            min_chars: d.min_chars,
            max_chars: d.max_chars,
            breached_file: None,
        }
    }
}

impl PasswordsConfig {
    /// The policy, or why the settings fall short of NIST SP 800-63B.
    pub fn policy(&self) -> Result<crate::password::PasswordPolicy, ConfigError> {
        if self.min_chars < 8 {
            return Err(ConfigError::Invalid(
                "passwords.min_chars must be at least 8 (NIST SP 800-63B)".into(),
            ));
        }
        if self.max_chars < 64 || self.max_chars < self.min_chars {
            return Err(ConfigError::Invalid(
                "passwords.max_chars must be at least 64 and at least min_chars".into(),
            ));
        }
        if let Some(f) = &self.breached_file
            && !f.is_file()
        {
            return Err(ConfigError::Invalid(format!(
                "passwords.breached_file {} is not a file",
                f.display()
            )));
        }
        Ok(crate::password::PasswordPolicy {
            min_chars: self.min_chars,
            max_chars: self.max_chars,
            breached_file: self.breached_file.clone(),
        })
    }
}

/// Step-up authentication (`POST /v1/authentications`): which factors, in which order,
/// and the limits of a challenge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StepUpConfig {
    /// The factors a challenge may use, the preferred first, among `passkey`, `totp`,
    /// `sms` and `email`; a card gets the first one it has. Email codes are the lowest
    /// assurance (NIST SP 800-63B): last by default, or left out.
    pub factors: Vec<String>,
    /// Minutes a one-time code is valid.
    pub code_valid_minutes: u32,
    /// Wrong codes a challenge takes before it ends with `N`.
    pub max_wrong_codes: u32,
    /// Codes sent again on request, per challenge, and the least time between two sends.
    pub max_resends: u32,
    pub resend_interval_secs: u64,
    /// Consecutive failed codes of a card (across challenges) before its challenges are
    /// refused (`R`) until a success or an issuer's unlock; at most 100 (NIST SP 800-63B).
    pub max_card_failures: u32,
    /// A trusted device passes without a challenge while the risk score is below this.
    pub frictionless_below: u8,
    /// Days a device stays trusted after it was last used.
    pub device_trust_days: u32,
    /// Minutes an authentication value may wait for its authorization.
    pub value_valid_minutes: u32,
    /// Minutes a challenge stays open.
    pub challenge_valid_minutes: u32,
    /// The WebAuthn relying party of passkeys: its id (a domain: the host of
    /// `web.public_url` when none is given; passkeys are bound to it for good) and the
    /// origin the challenge page is served from (`web.public_url`'s when none is given).
    pub passkey_rp_id: Option<String>,
    pub passkey_origin: Option<String>,
    /// Any port of the origin's host (`http://localhost` in development and tests).
    pub passkey_any_port: bool,
}

impl Default for StepUpConfig {
    fn default() -> Self {
        StepUpConfig {
            factors: ["passkey", "totp", "sms", "email"]
                .map(String::from)
                .to_vec(),
            code_valid_minutes: 10,
            max_wrong_codes: 5,
            max_resends: 3,
            resend_interval_secs: 30,
            max_card_failures: 20,
            frictionless_below: 50,
            device_trust_days: 90,
            value_valid_minutes: 30,
            challenge_valid_minutes: 15,
            passkey_rp_id: None,
            passkey_origin: None,
            passkey_any_port: false,
        }
    }
}

impl StepUpConfig {
    /// Refuses what cannot work: an unknown or repeated factor, limits out of range.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(format!("stepup.{m}")));
        for (i, f) in self.factors.iter().enumerate() {
            if !["passkey", "totp", "sms", "email"].contains(&f.as_str()) {
                return bad(format!(
                    "factors: {f:?} is not one of passkey, totp, sms, email"
                ));
            }
            if self.factors[..i].contains(f) {
                return bad(format!("factors: {f:?} is named twice"));
            }
        }
        if !(1..=100).contains(&self.max_card_failures) {
            return bad("max_card_failures must be 1 to 100 (NIST SP 800-63B)".into());
        }
        if !(1..=60).contains(&self.code_valid_minutes) {
            return bad("code_valid_minutes must be 1 to 60".into());
        }
        if !(1..=10).contains(&self.max_wrong_codes) {
            return bad("max_wrong_codes must be 1 to 10".into());
        }
        if self.challenge_valid_minutes == 0 || self.value_valid_minutes == 0 {
            return bad(
                "challenge_valid_minutes and value_valid_minutes must be at least 1".into(),
            );
        }
        if self.frictionless_below > 100 {
            return bad("frictionless_below must be 0 to 100".into());
        }
        Ok(())
    }
}

/// Where the ruleset comes from besides `PUT /v1/rules`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// A ruleset file (TOML, as `PUT /v1/rules` takes it): read at start and whenever it
    /// changes; each change that compiles becomes a new version, one that does not is
    /// logged and the active ruleset stays.
    pub file: Option<std::path::PathBuf>,
    /// How often the file is looked at, seconds.
    pub watch_secs: u64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            file: None,
            watch_secs: 2,
        }
    }
}

/// Cardholder notifications: fraud alerts and usage notices, sent from a durable outbox.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Deliveries of one notification before it is set aside as dead (visible through the
    /// API and the metrics).
    pub max_tries: u32,
    /// The first retry waits this long; each next one twice as long (with jitter), at most
    /// `retry_max_ms`.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// Notifications in delivery at once.
    pub concurrency: usize,
    /// A directory of templates (`NAME.LANG.txt`) that replace the built-in ones.
    pub templates_dir: Option<std::path::PathBuf>,
    /// Minutes a hold waits for the cardholder's answer; the alert says until when.
    pub hold_expiry_minutes: u32,
    /// The issuer's name as notices sign with it.
    pub issuer_name: String,
    /// Email over SMTP; none: no email is sent.
    pub smtp: Option<SmtpConfig>,
    /// SMS through a provider's HTTP API; none: no SMS is sent.
    pub sms: Option<SmsConfig>,
    /// Push through a signed webhook to the issuer's app backend; none: no push.
    pub push: Option<PushConfig>,
}

/// How a request to an HTTP API carries its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpAuth {
    None,
    /// `Authorization: Basic` with `username` and `password` (account SID and token).
    Basic,
    /// `Authorization: Bearer` with `token`.
    Bearer,
}

/// The body of an SMS provider's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`.
    Form,
    Json,
}

/// An SMS provider's HTTP API, as the common ones take a message: one POST with the
/// recipient, the sender and the text in fields whose names the provider chooses.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    /// The endpoint (`https://…`; `http://` only for a provider on the same host).
    pub url: String,
    #[serde(default = "default_form")]
    pub format: BodyFormat,
    /// The sender as the provider knows it (a number or a registered name).
    pub from: String,
    #[serde(default = "default_from_field")]
    pub from_field: String,
    #[serde(default = "default_to_field")]
    pub to_field: String,
    #[serde(default = "default_text_field")]
    pub text_field: String,
    #[serde(default = "default_auth_none")]
    pub auth: HttpAuth,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_ms: u64,
    /// The secret the provider's inbound webhook (replies YES/NO) carries as `?secret=`;
    /// none: replies are not taken.
    #[serde(default)]
    pub inbound_secret: Option<String>,
    /// The fields of an inbound message (Twilio's names by default).
    #[serde(default = "default_inbound_from")]
    pub inbound_from_field: String,
    #[serde(default = "default_inbound_text")]
    pub inbound_text_field: String,
}

fn default_form() -> BodyFormat {
    BodyFormat::Form
}
fn default_from_field() -> String {
    "from".into()
}
fn default_to_field() -> String {
    "to".into()
}
fn default_text_field() -> String {
    "text".into()
}
fn default_auth_none() -> HttpAuth {
    HttpAuth::None
}
fn default_inbound_from() -> String {
    "From".into()
}
fn default_inbound_text() -> String {
    "Body".into()
}

/// The issuer's app backend, which takes each notification as signed JSON and pushes it to
/// the cardholder's devices.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    pub url: String,
    /// The HMAC-SHA256 key of the `X-Cardguard-Signature` header.
    pub secret: String,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_ms: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            max_tries: 8,
            retry_initial_ms: 2_000,
            retry_max_ms: 600_000,
            concurrency: 16,
            templates_dir: None,
            hold_expiry_minutes: 30,
            issuer_name: "cardguard".into(),
            smtp: None,
            sms: None,
            push: None,
        }
    }
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text (a relay on the same host or network).
    None,
    /// Plain, then STARTTLS, which must succeed.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// The SMTP server email goes through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// The sender, `Name <address>` or an address.
    pub from: String,
    #[serde(default = "default_smtp_tls")]
    pub tls: SmtpTls,
    /// Authentication, when the server asks for it.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_ms: u64,
}

fn default_smtp_port() -> u16 {
    25
}
fn default_smtp_tls() -> SmtpTls {
    SmtpTls::Starttls
}
fn default_smtp_timeout() -> u64 {
    10_000
}

/// The pages cardholders open (the answer to an alert).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    /// The base of every link in a message, as cardholders reach this server.
    pub public_url: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            public_url: "http://127.0.0.1:8080".into(),
        }
    }
}

/// The ISO 8583 listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Iso8583Config {
    /// Address to take ISO 8583 on; none: no listener (`serve --iso8583` names one too).
    pub listen: Option<String>,
    /// The largest message accepted, in bytes (its 2-byte length says).
    pub max_frame_bytes: usize,
    /// A connection with no message for this long is closed (networks send echo tests).
    pub idle_timeout_secs: u64,
    /// A message must arrive whole within this once its length has.
    pub read_timeout_ms: u64,
}

impl Default for Iso8583Config {
    fn default() -> Self {
        Iso8583Config {
            listen: None,
            max_frame_bytes: 8192,
            idle_timeout_secs: 600,
            read_timeout_ms: 10_000,
        }
    }
}

/// The phishing analyzer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    /// A TOML file of brands added to the built-in registry.
    pub brands_file: Option<std::path::PathBuf>,
    /// Receiving servers whose Authentication-Results headers (SPF, DKIM, DMARC) are trusted.
    pub trusted_authserv_ids: Vec<String>,
    /// Verify SPF, DKIM and DMARC of scanned mail against DNS (the system's resolvers).
    pub verify_sender: bool,
    /// Verify against this fixed zone file instead of DNS (implies `verify_sender`).
    pub dns_zone: Option<std::path::PathBuf>,
    /// Scores at and above which a message is suspicious, and phishing (tune them with
    /// `cardguard mail evaluate` on the issuer's own mail).
    pub suspicious_at: u32,
    pub phishing_at: u32,
}

impl Default for MailConfig {
    fn default() -> Self {
        let t = cardguard_phish::Thresholds::default();
        MailConfig {
            brands_file: None,
            trusted_authserv_ids: Vec::new(),
            verify_sender: false,
            dns_zone: None,
            suspicious_at: t.suspicious,
            phishing_at: t.phishing,
        }
    }
}

impl MailConfig {
    /// The verdict thresholds, checked.
    pub fn thresholds(&self) -> Result<cardguard_phish::Thresholds, ConfigError> {
        cardguard_phish::Thresholds::new(self.suspicious_at, self.phishing_at)
            .map_err(|e| ConfigError::Invalid(format!("mail: {e}")))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on when the command line gives none.
    pub http: String,
    /// Largest request body accepted, in bytes (larger bodies get 413).
    pub max_body_bytes: usize,
    /// Threads that serve requests; 0 means one per core.
    pub worker_threads: usize,
    /// Open connections at most; one more gets a 503 and is closed.
    pub max_connections: usize,
    /// A request's headers must arrive within this (a slow or silent client is closed).
    pub header_timeout_ms: u64,
    /// A request's body must arrive within this after its headers (408 otherwise).
    pub body_timeout_ms: u64,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            http: "127.0.0.1:8080".into(),
            max_body_bytes: 64 * 1024,
            worker_threads: 0,
            max_connections: 1024,
            header_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilitySetting {
    /// Answer after a group fdatasync: survives a power cut.
    Sync,
    /// Answer once written to the kernel: survives any crash of the process; a background
    /// fdatasync every `sync_every_ms` bounds what a power cut can take.
    Write,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub durability: DurabilitySetting,
    /// Under `write`: milliseconds between background fdatasyncs.
    pub sync_every_ms: u64,
    /// Events between snapshots of the engine state.
    pub snapshot_every: u64,
    /// How events are written to the log: `msgpack` (MessagePack with named fields, half
    /// the time of JSON to write and to read), or `json` (as versions before wrote, for a
    /// log that an older version must still read). Both are read whichever is set.
    pub event_encoding: cardguard_engine::EventEncoding,
    /// `postgres://USER[:PASSWORD]@HOST:PORT/DATABASE`: the cases, the ledger and the claims
    /// in PostgreSQL (its schema made by `cardguard migrate`) instead of the data
    /// directory's `cases.db`.
    pub database_url: Option<String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            durability: DurabilitySetting::Write,
            sync_every_ms: 10,
            snapshot_every: 250_000,
            event_encoding: cardguard_engine::EventEncoding::MessagePack,
            database_url: None,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub api_keys: Vec<ApiKeyConfig>,
}

/// One API key: the key itself, or (better) its SHA-256 in hex, and its scopes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_sha256: Option<String>,
    pub scopes: Vec<String>,
}

/// Keys, as hex. `token`, `pan` and `csc` are created in the data directory when absent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// HMAC key of card tokens (32 bytes).
    pub token: Option<String>,
    /// AES-256-GCM key of the PAN at rest (32 bytes).
    pub pan: Option<String>,
    /// HMAC key of stored security codes (32 bytes).
    pub csc: Option<String>,
    /// Card verification key pairs by id (32 hex digits each).
    pub cvk: BTreeMap<String, String>,
    /// PIN verification keys by id (32 hex digits each).
    pub pvk: BTreeMap<String, String>,
    /// PIN encryption keys of incoming PIN blocks: Triple DES for formats 0 and 3 (absent:
    /// those blocks arrive in the clear), AES for format 4.
    pub pin_tdes: Option<String>,
    pub pin_aes: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CscConfig {
    /// Service code for the card-not-present code (CVV2): `card` uses the card's enrolled
    /// service code, as the code printed on the card was computed with it; `000` is the
    /// scheme convention for issuers that personalise CVV2 that way.
    pub cvv2_service_code: String,
}

impl CscConfig {
    /// The checked setting.
    pub fn cvv2(&self) -> Result<crate::registry::Cvv2ServiceCode, ConfigError> {
        match self.cvv2_service_code.as_str() {
            "card" => Ok(crate::registry::Cvv2ServiceCode::Card),
            s if s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(crate::registry::Cvv2ServiceCode::Fixed(s.to_owned()))
            }
            _ => Err(ConfigError::Invalid(
                "csc.cvv2_service_code must be \"card\" or 3 digits".into(),
            )),
        }
    }
}

impl Default for CscConfig {
    fn default() -> Self {
        CscConfig {
            cvv2_service_code: "card".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    pub max_speed_kmh: f64,
    pub travel_allowance_km: f64,
    pub pin_try_limit: u8,
    pub pin_lock_hours: u32,
    /// The window of the wrong-security-code count (`:wrong_csc_10m:`) rules read.
    pub card_testing_window_minutes: u32,
    /// Moved into the rules (the default ruleset's `card_testing`): refused with a pointer.
    pub card_testing_wrong_csc: Option<toml::Value>,
    /// Days the terminal fraud-rate windows end before today (label delay, at most 14).
    pub terminal_risk_delay_days: u32,
    /// Minutes after a cardholder's "it was me" during which the same purchase is approved.
    pub release_minutes: u32,
    /// Days an authorization is kept for retries and labels (0: forever).
    pub auth_retention_days: u32,
    /// A request's timestamp may differ from the server's clock by at most this many
    /// seconds (400 otherwise): the caller's clock must not steer retention, counters and
    /// windows. 0 turns the check off, for replays, demos and tests that send recorded times.
    pub max_clock_skew_secs: u64,
    /// A model file from `cardguard ml train`: its probability becomes the risk score. Read
    /// again on `POST /v1/model/reload` or SIGHUP. Without one, the built-in scorecard.
    pub model_file: Option<std::path::PathBuf>,
    /// A candidate model for shadow mode: a ruleset in shadow (PUT /v1/rules/shadow) scores
    /// with it instead of the model in force. Read again with the model.
    pub shadow_model_file: Option<std::path::PathBuf>,
    /// A population stability index of the live score or a feature against the model's
    /// training data over this is logged and counted as drift ...
    pub drift_psi_threshold: f64,
    /// ... once the model has decided at least this many authorizations.
    pub drift_min_observations: u64,
    /// Moved into the rules (the default ruleset's `risk_*` rules): refused with a pointer.
    pub thresholds: Option<toml::Value>,
    /// Base currency of amount features and reference rates into it.
    pub base_currency: String,
    pub fx: BTreeMap<String, f64>,
}

impl Default for EngineSection {
    fn default() -> Self {
        let d = EngineConfig::default();
        EngineSection {
            max_speed_kmh: d.max_speed_kmh,
            travel_allowance_km: d.travel_allowance_km,
            pin_try_limit: d.pin_try_limit,
            pin_lock_hours: d.pin_lock_hours,
            card_testing_wrong_csc: None,
            card_testing_window_minutes: d.card_testing_window_minutes,
            terminal_risk_delay_days: d.terminal_risk_delay_days,
            release_minutes: d.release_minutes,
            auth_retention_days: d.auth_retention_days,
            max_clock_skew_secs: 300,
            model_file: None,
            shadow_model_file: None,
            drift_psi_threshold: 0.2,
            drift_min_observations: 1000,
            thresholds: None,
            base_currency: d.fx.base.code().to_owned(),
            fx: BTreeMap::new(),
        }
    }
}

impl EngineSection {
    /// The engine's typed configuration, checked.
    pub fn to_engine(&self) -> Result<EngineConfig, ConfigError> {
        let bad = |m: String| ConfigError::Invalid(m);
        if self.thresholds.is_some() || self.card_testing_wrong_csc.is_some() {
            return Err(bad(
                "engine.thresholds and engine.card_testing_wrong_csc are rules now: change the risk_* and card_testing rules of the ruleset (GET /v1/rules, PUT /v1/rules or rules.file) and remove them from the configuration".into(),
            ));
        }
        if self.max_speed_kmh.is_nan()
            || self.max_speed_kmh <= 0.0
            || self.travel_allowance_km.is_nan()
            || self.travel_allowance_km < 0.0
        {
            return Err(bad(
                "engine.max_speed_kmh must be > 0 and travel_allowance_km >= 0".into(),
            ));
        }
        if self.terminal_risk_delay_days > cardguard_engine::MAX_RISK_DELAY_DAYS {
            return Err(bad(format!(
                "engine.terminal_risk_delay_days must be at most {}",
                cardguard_engine::MAX_RISK_DELAY_DAYS
            )));
        }
        if self.pin_try_limit == 0 {
            return Err(bad("engine.pin_try_limit must be at least 1".into()));
        }
        let mut cfg = EngineConfig {
            max_speed_kmh: self.max_speed_kmh,
            travel_allowance_km: self.travel_allowance_km,
            pin_try_limit: self.pin_try_limit,
            pin_lock_hours: self.pin_lock_hours,
            card_testing_window_minutes: self.card_testing_window_minutes,
            terminal_risk_delay_days: self.terminal_risk_delay_days,
            release_minutes: self.release_minutes,
            auth_retention_days: self.auth_retention_days,
            ..EngineConfig::default()
        };
        cfg.fx.base = cardguard_core::Currency::parse(&self.base_currency)
            .map_err(|e| bad(format!("engine.base_currency {e}")))?;
        for (code, rate) in &self.fx {
            let c = cardguard_core::Currency::parse(code)
                .map_err(|e| bad(format!("engine.fx.{code} {e}")))?;
            if rate.is_nan() || *rate <= 0.0 {
                return Err(bad(format!("engine.fx.{code} must be > 0")));
            }
            cfg.fx.rates.retain(|(x, _)| *x != c);
            cfg.fx.rates.push((c, *rate));
        }
        Ok(cfg)
    }
}

const ENV_PREFIX: &str = "CARDGUARD__";

impl Config {
    /// Reads the file (if any), then applies `CARDGUARD__SECTION__KEY` variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut root = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })?;
                text.parse::<toml::Table>().map_err(|e| ConfigError::Toml {
                    path: p.display().to_string(),
                    message: e.to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        // Which variable set which key, to name it when its value is refused.
        let mut from_env: Vec<(String, String)> = Vec::new();
        for (var, value) in env {
            let Some(rest) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let parts: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            from_env.push((parts.join("."), var.clone()));
            if parts.iter().any(String::is_empty) {
                return Err(ConfigError::Env {
                    var,
                    message: "empty section or key".into(),
                });
            }
            set_path(&mut root, &parts, parse_env_value(&value)).map_err(|message| {
                ConfigError::Env {
                    var: var.clone(),
                    message,
                }
            })?;
        }
        let cfg: Config = toml::Value::Table(root)
            .try_into()
            .map_err(|e: toml::de::Error| {
                let message = e.to_string().trim().replace('\n', " ");
                match from_env
                    .iter()
                    .rev()
                    .find(|(key, _)| message.contains(&format!("`{key}`")))
                {
                    Some((_, var)) => ConfigError::Env {
                        var: var.clone(),
                        message,
                    },
                    None => ConfigError::Value {
                        path: path
                            .map_or("(none: the defaults)".into(), |p| p.display().to_string()),
                        message,
                    },
                }
            })?;
        Ok(cfg)
    }
}

/// A value from the environment: TOML if it parses as a TOML value (numbers, booleans,
/// arrays, inline tables), otherwise the plain string.
fn parse_env_value(v: &str) -> toml::Value {
    let doc = format!("v = {v}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(v.to_owned())),
        Err(_) => toml::Value::String(v.to_owned()),
    }
}

fn set_path(root: &mut toml::Table, parts: &[String], value: toml::Value) -> Result<(), String> {
    let (last, dirs) = parts.split_last().ok_or("no key")?;
    let mut t = root;
    for d in dirs {
        let entry = t
            .entry(d.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("{d} is not a section"))?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            r#"
[server]
http = "0.0.0.0:9000"
[[auth.api_keys]]
key = "secret"
scopes = ["admin"]
[keys.cvk]
cvk-1 = "0123456789ABCDEFFEDCBA9876543210"
[engine]
pin_try_limit = 4
[rules]
file = "rules.toml"
"#,
        )
        .unwrap();
        let env = [
            (
                "CARDGUARD__SERVER__MAX_BODY_BYTES".to_string(),
                "1024".to_string(),
            ),
            (
                "CARDGUARD__ENGINE__MAX_SPEED_KMH".to_string(),
                "900.5".to_string(),
            ),
            ("CARDGUARD__KEYS__TOKEN".to_string(), "00ff".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let c = Config::load(Some(&p), env).unwrap();
        assert_eq!(c.server.http, "0.0.0.0:9000");
        assert_eq!(c.server.max_body_bytes, 1024);
        assert_eq!(c.engine.max_speed_kmh, 900.5);
        assert_eq!(c.engine.pin_try_limit, 4);
        assert_eq!(
            c.rules.file.as_deref(),
            Some(std::path::Path::new("rules.toml"))
        );
        assert_eq!(c.keys.token.as_deref(), Some("00ff"));
        assert_eq!(c.keys.cvk["cvk-1"], "0123456789ABCDEFFEDCBA9876543210");
        assert_eq!(c.auth.api_keys[0].scopes, ["admin"]);
        assert!(c.engine.to_engine().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let env = [("CARDGUARD__SERVER__NO_SUCH".to_string(), "1".to_string())];
        assert!(Config::load(None, env).is_err());
        let env = [(
            "CARDGUARD__ENGINE__THRESHOLDS__HOLD".to_string(),
            "10".to_string(),
        )];
        let c = Config::load(None, env).unwrap();
        let e = c.engine.to_engine().unwrap_err().to_string();
        assert!(e.contains("are rules now"), "{e}");
        assert_eq!(c.mail.thresholds().unwrap(), Default::default());
        let env = [(
            "CARDGUARD__MAIL__SUSPICIOUS_AT".to_string(),
            "60".to_string(),
        )];
        let c = Config::load(None, env).unwrap();
        let e = c.mail.thresholds().unwrap_err().to_string();
        assert!(e.contains("suspicious <= phishing"), "{e}");
    }
}
