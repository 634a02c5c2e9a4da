//! One SQL repository over two databases: the embedded SQLite default and PostgreSQL for
//! production. The repositories write their SQL once, in the dialect both understand, with
//! `?N` parameters; [`Db`] runs it on either. The few differences are translated here, in
//! one place: `$N` parameters, `INSERT OR IGNORE` as `ON CONFLICT DO NOTHING`, the implicit
//! `rowid` as an explicit `seq` column, `BEGIN IMMEDIATE` as a serializable transaction that
//! is retried when PostgreSQL reports a conflict. Values are 64-bit integers, text or NULL;
//! rows come back owned.
//!
//! PostgreSQL's schema comes from numbered migrations (`cardguard migrate` applies them; a
//! server refuses a database that is behind); SQLite applies its schema when it opens.

use crate::StoreError;
use std::sync::Mutex;

/// A parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Val<'a> {
    I(i64),
    T(&'a str),
    N,
}

impl From<i64> for Val<'_> {
    fn from(v: i64) -> Self {
        Val::I(v)
    }
}

impl<'a> From<&'a str> for Val<'a> {
    fn from(v: &'a str) -> Self {
        Val::T(v)
    }
}

impl<'a> From<&'a String> for Val<'a> {
    fn from(v: &'a String) -> Self {
        Val::T(v)
    }
}

impl<'a, T: Into<Val<'a>>> From<Option<T>> for Val<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Val::N, Into::into)
    }
}

/// `[a.into(), b.into(), …]`.
#[macro_export]
macro_rules! vals {
    ($($v:expr),* $(,)?) => { [$($crate::sql::Val::from($v)),*] };
}

/// A value of a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    I(i64),
    T(String),
    N,
}

/// A row, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub Vec<Cell>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Cell, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Invalid(format!("no column {i}")))
    }

    pub fn i(&self, i: usize) -> Result<i64, StoreError> {
        match self.cell(i)? {
            Cell::I(v) => Ok(*v),
            c => Err(StoreError::Invalid(format!(
                "column {i} is {c:?}, not an integer"
            ))),
        }
    }

    pub fn s(&self, i: usize) -> Result<String, StoreError> {
        match self.cell(i)? {
            Cell::T(v) => Ok(v.clone()),
            c => Err(StoreError::Invalid(format!(
                "column {i} is {c:?}, not text"
            ))),
        }
    }

    pub fn oi(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(i)? {
            Cell::N => Ok(None),
            _ => self.i(i).map(Some),
        }
    }

    pub fn os(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.cell(i)? {
            Cell::N => Ok(None),
            _ => self.s(i).map(Some),
        }
    }
}

/// Statements inside one transaction (or, for reads, one connection).
pub trait Tx {
    /// Runs a statement: the rows it changed.
    fn exec(&mut self, sql: &str, params: &[Val<'_>]) -> Result<usize, StoreError>;
    /// Runs a query: its rows.
    fn rows(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>, StoreError>;

    /// The first row, if any.
    fn row(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Option<Row>, StoreError> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }
}

/// What a transaction's body decides: keep its writes or drop them.
pub enum End<T> {
    Commit(T),
    Rollback(T),
}

/// A database: SQLite (one connection, the embedded default) or PostgreSQL (one connection).
pub enum Db {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres(Box<Mutex<Pg>>),
}

/// A PostgreSQL connection and the statements prepared on it (by their text).
pub struct Pg {
    /// Always there but while the connection is dropped.
    client: Option<postgres::Client>,
    prepared: std::collections::HashMap<String, postgres::Statement>,
}

impl Pg {
    /// The connection and its prepared statements, apart (a transaction borrows the first).
    fn parts(&mut self) -> Result<(&mut postgres::Client, &mut Prepared), StoreError> {
        let client = self
            .client
            .as_mut()
            .ok_or_else(|| StoreError::Database("PostgreSQL: the connection is closed".into()))?;
        Ok((client, &mut self.prepared))
    }
}

impl Drop for Pg {
    /// The client's drop blocks on its runtime too: off tokio's threads.
    fn drop(&mut self) {
        self.prepared.clear();
        if let Some(c) = self.client.take() {
            off_runtime(move || drop(c));
        }
    }
}

impl Db {
    /// Connects to PostgreSQL (`postgres://…`) and checks that its schema is this
    /// version's: a database behind it is refused with the way to bring it up.
    pub fn postgres(url: &str) -> Result<Db, StoreError> {
        let client = off_runtime(|| postgres::Client::connect(url, postgres::NoTls))
            .map_err(|e| StoreError::Database(format!("connecting to PostgreSQL: {e}")))?;
        let db = Db::Postgres(Box::new(Mutex::new(Pg {
            client: Some(client),
            prepared: Default::default(),
        })));
        let (have, want) = (db.schema_version()?, MIGRATIONS.len() as i64);
        if have < want {
            return Err(StoreError::Database(format!(
                "the PostgreSQL database is at schema version {have}, this cardguard needs {want}: run `cardguard migrate`"
            )));
        }
        if have > want {
            return Err(StoreError::Database(format!(
                "the PostgreSQL database is at schema version {have}, newer than this cardguard's {want}: use a newer cardguard"
            )));
        }
        Ok(db)
    }

    /// Brings a PostgreSQL database's schema up to this version: the migrations it has not
    /// had, each in its own transaction. Returns the versions applied.
    pub fn migrate_postgres(url: &str) -> Result<Vec<i64>, StoreError> {
        off_runtime(|| -> Result<Vec<i64>, StoreError> {
            let mut client = postgres::Client::connect(url, postgres::NoTls)
                .map_err(|e| StoreError::Database(format!("connecting to PostgreSQL: {e}")))?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (
                        version BIGINT PRIMARY KEY,
                        applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
                )
                .map_err(pg_err)?;
            let mut applied = Vec::new();
            for (i, m) in MIGRATIONS.iter().enumerate() {
                let v = i as i64 + 1;
                let mut tx = client.transaction().map_err(pg_err)?;
                // One migrator at a time.
                tx.batch_execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")
                    .map_err(pg_err)?;
                let done = tx
                    .query_opt(
                        "SELECT version FROM schema_migrations WHERE version = $1",
                        &[&v],
                    )
                    .map_err(pg_err)?
                    .is_some();
                if !done {
                    tx.batch_execute(m).map_err(pg_err)?;
                    tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&v])
                        .map_err(pg_err)?;
                    applied.push(v);
                }
                tx.commit().map_err(pg_err)?;
            }
            Ok(applied)
        })
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        self.read(|t| {
            let exists = t
                .row("SELECT to_regclass('schema_migrations')::TEXT", &[])?
                .and_then(|r| r.os(0).ok().flatten())
                .is_some();
            if !exists {
                return Ok(0);
            }
            t.row(
                "SELECT CAST(COALESCE(MAX(version), 0) AS BIGINT) FROM schema_migrations",
                &[],
            )?
            .map_or(Ok(0), |r| r.i(0))
        })
    }

    /// Whether this is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    /// Reads (and single-statement writes) outside an explicit transaction.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError>
    where
        T: Send,
    {
        match self {
            Db::Sqlite(c) => {
                let c = c.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut LiteTx(&c))
            }
            Db::Postgres(c) => {
                let mut guard = c.lock().unwrap_or_else(|e| e.into_inner());
                let (client, prepared) = guard.parts()?;
                off_runtime(|| f(&mut PgConn(client, prepared)))
            }
        }
    }

    /// A transaction that writes after it reads: SQLite's `BEGIN IMMEDIATE` (one writer),
    /// PostgreSQL's serializable isolation, its body run again when PostgreSQL reports a
    /// conflict with another transaction (so the body must not act outside the database).
    pub fn write<T>(
        &self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<End<T>, StoreError> + Send,
    ) -> Result<T, StoreError>
    where
        T: Send,
    {
        match self {
            Db::Sqlite(c) => {
                let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                match f(&mut LiteTx(&tx))? {
                    End::Commit(v) => {
                        tx.commit()?;
                        Ok(v)
                    }
                    End::Rollback(v) => Ok(v),
                }
            }
            Db::Postgres(c) => {
                let mut guard = c.lock().unwrap_or_else(|e| e.into_inner());
                let (client, prepared) = guard.parts()?;
                off_runtime(|| {
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        let mut tx = client
                            .build_transaction()
                            .isolation_level(postgres::IsolationLevel::Serializable)
                            .start()
                            .map_err(pg_err)?;
                        // A conflict (in a statement or at the commit) rolls back and tries
                        // again; any other outcome is the answer.
                        let out = match f(&mut PgTx(&mut tx, prepared)) {
                            Ok(End::Commit(v)) => tx.commit().map(|()| v).map_err(pg_err),
                            Ok(End::Rollback(v)) => Ok(v),
                            Err(e) => Err(e),
                        };
                        match out {
                            Err(StoreError::Conflict) if tries < 20 => continue,
                            Err(StoreError::Conflict) => {
                                return Err(StoreError::Database(
                                    "PostgreSQL: too many conflicting transactions".into(),
                                ));
                            }
                            other => return other,
                        }
                    }
                })
            }
        }
    }
}

/// PostgreSQL's synchronous client runs futures on a runtime of its own, which a thread that
/// drives a tokio runtime must not start: there, `f` runs on a scoped thread of its own.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        })
    } else {
        f()
    }
}

fn is_conflict(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == postgres::error::SqlState::T_R_SERIALIZATION_FAILURE
            || *c == postgres::error::SqlState::T_R_DEADLOCK_DETECTED
    })
}

fn pg_err(e: postgres::Error) -> StoreError {
    if is_conflict(&e) {
        return StoreError::Conflict;
    }
    StoreError::Database(format!("PostgreSQL: {e}"))
}

/// The statement in PostgreSQL's dialect.
fn pg_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 32);
    let mut ignore = false;
    let mut rest = sql;
    if let Some(r) = rest.strip_prefix("INSERT OR IGNORE INTO") {
        out.push_str("INSERT INTO");
        rest = r;
        ignore = true;
    }
    let mut chars = rest.chars().peekable();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word == "rowid" {
            out.push_str("seq");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            flush(&mut word, &mut out);
            out.push('$');
        } else if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    if ignore {
        // Before the rows it returns, if it returns any.
        let at = out.find(" RETURNING ").unwrap_or(out.len());
        out.insert_str(at, " ON CONFLICT DO NOTHING");
    }
    out
}

/// `WHERE a = ?N AND b = ?M` for the columns given a value, their parameters numbered after
/// `params` (which the statement uses first), with those values appended: one statement
/// per combination, so that each uses its index.
pub(crate) fn filter<'a>(
    mut params: Vec<Val<'a>>,
    by: &[(&str, Option<&'a str>)],
) -> (String, Vec<Val<'a>>) {
    let mut sql = String::new();
    for (column, value) in by {
        if let Some(v) = value {
            sql.push_str(if sql.is_empty() { "WHERE " } else { " AND " });
            params.push(Val::T(v));
            sql.push_str(&format!("{column} = ?{}", params.len()));
        }
    }
    (sql, params)
}

/// `(?1, ?2), (?3, ?4)` for `rows` rows of `cols` values.
pub(crate) fn placeholders(rows: usize, cols: usize) -> String {
    let mut out = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        out.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('?');
            out.push_str(&(r * cols + c + 1).to_string());
        }
        out.push(')');
    }
    out
}

struct LiteTx<'a>(&'a rusqlite::Connection);

fn lite_params<'a>(p: &'a [Val<'a>]) -> Vec<rusqlite::types::ToSqlOutput<'a>> {
    use rusqlite::types::{ToSqlOutput, Value, ValueRef};
    p.iter()
        .map(|v| match v {
            Val::I(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            Val::T(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Val::N => ToSqlOutput::Owned(Value::Null),
        })
        .collect()
}

impl Tx for LiteTx<'_> {
    fn exec(&mut self, sql: &str, params: &[Val<'_>]) -> Result<usize, StoreError> {
        let p = lite_params(params);
        let mut st = self.0.prepare_cached(sql)?;
        Ok(st.execute(rusqlite::params_from_iter(p.iter()))?)
    }

    fn rows(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>, StoreError> {
        use rusqlite::types::ValueRef;
        let p = lite_params(params);
        let mut st = self.0.prepare_cached(sql)?;
        let n = st.column_count();
        let rows = st
            .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                let mut cells = Vec::with_capacity(n);
                for i in 0..n {
                    cells.push(match r.get_ref(i)? {
                        ValueRef::Null => Cell::N,
                        ValueRef::Integer(v) => Cell::I(v),
                        ValueRef::Real(v) => Cell::I(v as i64),
                        ValueRef::Text(t) | ValueRef::Blob(t) => {
                            Cell::T(String::from_utf8_lossy(t).into_owned())
                        }
                    });
                }
                Ok(Row(cells))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}

/// SQL NULL of whatever type the statement wants.
#[derive(Debug)]
struct Null;

impl postgres::types::ToSql for Null {
    fn to_sql(
        &self,
        _: &postgres::types::Type,
        _: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(postgres::types::IsNull::Yes)
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn pg_params<'a>(p: &'a [Val<'a>]) -> Vec<Box<dyn postgres::types::ToSql + Sync + 'a>> {
    p.iter()
        .map(|v| -> Box<dyn postgres::types::ToSql + Sync + 'a> {
            match v {
                Val::I(i) => Box::new(*i),
                Val::T(s) => Box::new(*s),
                Val::N => Box::new(Null),
            }
        })
        .collect()
}

fn pg_rows(rows: Vec<postgres::Row>) -> Result<Vec<Row>, StoreError> {
    use postgres::types::Type;
    rows.iter()
        .map(|r| {
            let mut cells = Vec::with_capacity(r.len());
            for (i, col) in r.columns().iter().enumerate() {
                let t = col.type_();
                let cell = if *t == Type::INT8 {
                    r.try_get::<_, Option<i64>>(i)
                        .map(|v| v.map_or(Cell::N, Cell::I))
                } else if *t == Type::INT4 {
                    r.try_get::<_, Option<i32>>(i)
                        .map(|v| v.map_or(Cell::N, |v| Cell::I(i64::from(v))))
                } else if *t == Type::INT2 {
                    r.try_get::<_, Option<i16>>(i)
                        .map(|v| v.map_or(Cell::N, |v| Cell::I(i64::from(v))))
                } else {
                    r.try_get::<_, Option<String>>(i)
                        .map(|v| v.map_or(Cell::N, Cell::T))
                };
                cells.push(cell.map_err(pg_err)?);
            }
            Ok(Row(cells))
        })
        .collect()
}

/// Runs a statement on a PostgreSQL connection or transaction, prepared once per
/// connection.
macro_rules! pg_impl {
    ($t:ty) => {
        impl $t {
            fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
                if let Some(st) = self.1.get(sql) {
                    return Ok(st.clone());
                }
                let st = self.0.prepare(&pg_sql(sql)).map_err(pg_err)?;
                // Bounded: batches of every length each have their statement.
                if self.1.len() >= 512 {
                    self.1.clear();
                }
                self.1.insert(sql.to_owned(), st.clone());
                Ok(st)
            }
        }

        impl Tx for $t {
            fn exec(&mut self, sql: &str, params: &[Val<'_>]) -> Result<usize, StoreError> {
                let st = self.statement(sql)?;
                let p = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                Ok(self.0.execute(&st, &refs).map_err(pg_err)? as usize)
            }

            fn rows(&mut self, sql: &str, params: &[Val<'_>]) -> Result<Vec<Row>, StoreError> {
                let st = self.statement(sql)?;
                let p = pg_params(params);
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> =
                    p.iter().map(|b| b.as_ref()).collect();
                pg_rows(self.0.query(&st, &refs).map_err(pg_err)?)
            }
        }
    };
}

type Prepared = std::collections::HashMap<String, postgres::Statement>;
struct PgConn<'a>(&'a mut postgres::Client, &'a mut Prepared);
struct PgTx<'a, 'b>(&'a mut postgres::Transaction<'b>, &'a mut Prepared);
pg_impl!(PgConn<'_>);
pg_impl!(PgTx<'_, '_>);

/// PostgreSQL's schema, one migration per version (never edit one that shipped: add one).
pub const MIGRATIONS: &[&str] = &[
    // 1: cases, card transactions, steps, chargebacks, reissues, the ledger, claims.
    "
CREATE TABLE transactions (
    authorization_id TEXT PRIMARY KEY,
    card_token TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    billing TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX transactions_card ON transactions (card_token, at_ms);
CREATE TABLE cases (
    id BIGSERIAL PRIMARY KEY,
    card_token TEXT NOT NULL,
    authorization_id TEXT,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    due_ms BIGINT
);
CREATE UNIQUE INDEX cases_origin ON cases (source, authorization_id)
    WHERE authorization_id IS NOT NULL;
CREATE INDEX cases_queue ON cases (status, id);
CREATE INDEX cases_card ON cases (card_token);
CREATE INDEX cases_authorization ON cases (authorization_id);
CREATE INDEX cases_due ON cases (due_ms) WHERE due_ms IS NOT NULL;
CREATE TABLE case_steps (
    seq BIGSERIAL PRIMARY KEY,
    case_id BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    note TEXT NOT NULL
);
CREATE INDEX case_steps_case ON case_steps (case_id, at_ms);
CREATE TABLE chargebacks (
    authorization_id TEXT PRIMARY KEY,
    case_id BIGINT NOT NULL,
    card_token TEXT NOT NULL,
    reason TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    transaction_ms BIGINT NOT NULL,
    disputed_ms BIGINT NOT NULL,
    status TEXT NOT NULL
);
CREATE INDEX chargebacks_case ON chargebacks (case_id);
CREATE TABLE reissues (
    old_token TEXT PRIMARY KEY,
    new_token TEXT NOT NULL UNIQUE,
    new_last4 TEXT NOT NULL,
    new_expiry TEXT NOT NULL,
    block TEXT NOT NULL,
    requested_ms BIGINT NOT NULL,
    expected_ms BIGINT NOT NULL,
    activated_ms BIGINT
);
CREATE INDEX reissues_activated ON reissues (activated_ms);
CREATE TABLE postings (
    seq BIGSERIAL,
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    card_token TEXT NOT NULL,
    authorization_id TEXT,
    case_id BIGINT,
    claim_id BIGINT,
    at_ms BIGINT NOT NULL
);
CREATE INDEX postings_card ON postings (card_token, at_ms);
CREATE INDEX postings_case ON postings (case_id) WHERE case_id IS NOT NULL;
CREATE INDEX postings_claim ON postings (claim_id) WHERE claim_id IS NOT NULL;
CREATE TABLE claims (
    id BIGSERIAL PRIMARY KEY,
    card_token TEXT NOT NULL,
    authorization_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    amount BIGINT NOT NULL,
    currency TEXT NOT NULL,
    amount_base BIGINT NOT NULL,
    occurred_ms BIGINT NOT NULL,
    purchased_ms BIGINT NOT NULL,
    filed_ms BIGINT NOT NULL,
    policy_year TEXT NOT NULL,
    covered BIGINT NOT NULL,
    status TEXT NOT NULL,
    payout BIGINT NOT NULL DEFAULT 0,
    description TEXT NOT NULL,
    reasons TEXT NOT NULL,
    decided_ms BIGINT,
    decided_by TEXT
);
CREATE INDEX claims_card ON claims (card_token, policy_year);
CREATE UNIQUE INDEX claims_live ON claims (authorization_id) WHERE status != 'declined';
CREATE TABLE claim_documents (
    claim_id BIGINT NOT NULL,
    n BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    file TEXT NOT NULL,
    added_ms BIGINT NOT NULL,
    PRIMARY KEY (claim_id, n)
);
",
    // 2: events decided in a transaction, kept until they are logged.
    "
CREATE TABLE pending_events (
    id TEXT PRIMARY KEY,
    kind BIGINT NOT NULL,
    payload TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
",
    // 3: charges found by card through their transactions, not an index entry each.
    "
DROP INDEX postings_card;
CREATE INDEX postings_card_not_charge ON postings (card_token, at_ms) WHERE kind <> 'charge';
",
];

/// Creates a new database `name` on the server of `url` with this version's schema, and
/// returns its URL (for tests and benchmarks: a scratch database each).
pub fn create_database(url: &str, name: &str) -> Result<String, StoreError> {
    let url = create_empty_database(url, name)?;
    Db::migrate_postgres(&url)?;
    Ok(url)
}

/// [`create_database`] without the schema (what `cardguard migrate` starts from).
pub fn create_empty_database(url: &str, name: &str) -> Result<String, StoreError> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 63 {
        return Err(StoreError::Invalid(format!("database name {name:?}")));
    }
    let (base, _) = url
        .rsplit_once('/')
        .ok_or_else(|| StoreError::Invalid("a database URL ends in /DATABASE".into()))?;
    off_runtime(|| -> Result<(), StoreError> {
        let mut admin = postgres::Client::connect(url, postgres::NoTls).map_err(pg_err)?;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .map_err(pg_err)
    })?;
    Ok(format!("{base}/{name}"))
}

/// Drops a database that [`create_database`] made (`admin_url` names another database of
/// the same server).
pub fn drop_database(admin_url: &str, name: &str) -> Result<(), StoreError> {
    off_runtime(|| -> Result<(), StoreError> {
        let mut admin = postgres::Client::connect(admin_url, postgres::NoTls).map_err(pg_err)?;
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .map_err(pg_err)
    })
}

/// A fresh PostgreSQL database for a test, migrated, from `CARDGUARD_TEST_DATABASE_URL`
/// (scripts/postgres.sh starts a server for it): `None`, said on stderr, when the variable
/// is not set, unless `CARDGUARD_REQUIRE_POSTGRES` is (then the test fails).
#[doc(hidden)]
pub fn test_database(name: &str) -> Option<String> {
    let Ok(url) = std::env::var("CARDGUARD_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("CARDGUARD_REQUIRE_POSTGRES").is_none(),
            "CARDGUARD_TEST_DATABASE_URL is not set: PostgreSQL is required"
        );
        eprintln!(
            "CARDGUARD_TEST_DATABASE_URL is not set (scripts/postgres.sh starts a server): PostgreSQL not tested"
        );
        return None;
    };
    let mut db = format!(
        "cg_{}_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos()),
        name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    );
    db.truncate(63);
    Some(create_database(&url, &db).expect("a test database"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_read_in_postgres_dialect() {
        assert_eq!(
            pg_sql("INSERT OR IGNORE INTO t (a, b) VALUES (?1, ?2)"),
            "INSERT INTO t (a, b) VALUES ($1, $2) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            pg_sql("INSERT OR IGNORE INTO t (a) VALUES (?1) RETURNING id"),
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING RETURNING id"
        );
        assert_eq!(
            pg_sql("SELECT x FROM s WHERE c = ?10 ORDER BY at_ms, rowid"),
            "SELECT x FROM s WHERE c = $10 ORDER BY at_ms, seq"
        );
        assert_eq!(pg_sql("SELECT rowid_x, '?'"), "SELECT rowid_x, '?'");
        assert_eq!(placeholders(2, 2), "(?1, ?2), (?3, ?4)");
        let (sql, params) = filter(vec![Val::I(5)], &[("a", None), ("b", Some("x"))]);
        assert_eq!((sql.as_str(), params.len()), ("WHERE b = ?2", 2));
    }
}
