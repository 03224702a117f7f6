//! A [`Store`] and an [`AttemptLimiter`] on PostgreSQL, for several instances of
//! one authorization server built on [`device_grant`].
//!
//! # Schema
//!
//! [`migrate`] applies the SQL migrations under `migrations/` (shipped inside
//! the crate) to a schema of the host's choice, once, under an advisory lock,
//! so that every instance may call it at start-up. Version 1:
//!
//! ```sql
#![doc = include_str!("../migrations/0001_device_grant.sql")]
//! ```
//!
//! Version 3 adds the pace columns of the poll statement:
//!
//! ```sql
#![doc = include_str!("../migrations/0003_poll_state.sql")]
//! ```
//!
//! # Atomicity and cost
//!
//! Every operation is one statement, so every write is atomic and a failure
//! applies nothing. A transition is
//! `UPDATE … SET version = $next … WHERE device_code_hash = $1 AND version = $expected RETURNING version`,
//! which also clears the row's `user_code_hash` (the user-code index) when the
//! record leaves `Pending`. An insert is one `INSERT … ON CONFLICT DO NOTHING`;
//! only on a conflict does it look further: a device code already stored is
//! an error; a held user code is released by an `UPDATE` if its holder has
//! expired, and the insert tried once more. A poll ([`Store::poll`]) is one
//! statement: it locks the row if the record is pending, unexpired and of the
//! polling client and PKCE challenge, judges the poll by the pace rules of
//! [`PollingRules`](device_grant::PollingRules) and writes `version`,
//! `poll_interval` or `last_poll` (not the JSON: while `version` is ahead of
//! the JSON's, those columns have the last word, and every read applies
//! them); any other row it returns as read, for the crate to judge and
//! compare-and-set. Every statement is prepared.
//!
//! # Isolation
//!
//! The store works whatever the server's, database's, role's or session's
//! `default_transaction_isolation` (READ COMMITTED, REPEATABLE READ or
//! SERIALIZABLE): every statement runs in a transaction of its own, begun
//! with `BEGIN ISOLATION LEVEL READ COMMITTED` and committed at once. The
//! three are pipelined (sent together, one round trip), so this costs no
//! extra round trip.
//!
//! READ COMMITTED is the level whose semantics the statements rely on, and the
//! correct one for each, rather than mapping serialization failures back to
//! outcomes:
//!
//! - **compare-and-set** (`UPDATE … WHERE version = $expected`): a concurrent
//!   writer's row is waited for and the `WHERE` evaluated again on the
//!   committed version, so a lost race is `Ok(false)` and a win `Ok(true)`.
//!   At REPEATABLE READ the same race raises SQLSTATE 40001 instead, and it
//!   cannot simply be read as `Ok(false)`: the concurrent writer may have been
//!   an insert releasing an expired user code (which leaves the version
//!   alone, so the compare-and-set should have won) or a purge.
//! - **insert** (`INSERT … ON CONFLICT DO NOTHING`) and the **limiter**
//!   (`INSERT … ON CONFLICT DO UPDATE … WHERE`): each either inserts or finds
//!   the committed conflicting row (and, for the limiter, locks and updates it),
//!   never a 40001 for a row committed after the statement began.
//! - **reads** see the last committed record, as at every level for one
//!   statement.
//! - **[`migrate`]**: its transaction is READ COMMITTED too, so that an
//!   instance that waited on the advisory lock sees the migrations the
//!   instance before it committed (a REPEATABLE READ snapshot, taken before
//!   the lock was granted, would not, and would apply them again).
//!
//! The statements that race lock one row each, so they cannot deadlock; the
//! store's purge takes only rows no one else holds (`SKIP LOCKED`); two
//! limiter purges running at once could deadlock, in principle. Should the
//! server cancel a statement (SQLSTATE 40P01, or 40001), its transaction has
//! rolled back whole and changed nothing: the operation runs again, at most three
//! times in all, within [`PostgresOptions::timeout`], then fails with
//! [`BackendError::Other`].
//!
//! # TLS
//!
//! With the crate feature `tls`, connections can use TLS, through rustls (with
//! the *ring* provider) and `tokio-postgres-rustls`. TLS is used when
//! [`PostgresOptions::require_tls`] is set, or when the URL says
//! `sslmode=require`, `sslmode=verify-ca` or `sslmode=verify-full`; it is then
//! required (no fallback to plain text), and the server's certificate is
//! always verified, chain and host name, whichever of the three modes: unlike
//! libpq's `require`, there is no mode that encrypts without checking whom it
//! talks to. The certificate must chain to
//!
//! - the PEM certificates of [`PostgresOptions::tls_ca_pem`], if set (a private
//!   CA, or a self-signed server certificate);
//! - else those of the file named by the URL's `sslrootcert=<path>`;
//! - else one of Mozilla's root certificates (`webpki-roots`).
//!
//! The host name checked is the URL's host: a server reached as `127.0.0.1`
//! needs a certificate naming that address. A connection refused for its
//! certificate fails with [`BackendError::Unavailable`] saying why (for
//! example `invalid peer certificate: UnknownIssuer`), and never shows the
//! password. Without TLS asked for, connections are plain, as without the
//! feature (`sslmode=prefer`, tokio-postgres's default, does not try TLS).
//! Asking for TLS from a build without the feature is an error, never a silent
//! plain-text connection. Client certificates are not supported.
//!
//! # Purge
//!
//! Rows are not deleted by themselves: the host schedules
//! [`DeviceGrant::purge_expired`](device_grant::DeviceGrant::purge_expired) (any
//! instance, e.g. every minute), which deletes rows whose `purge_at` has come,
//! in batches of 1000 (indexed by `purge_at`), and the limiter's counters whose
//! window has ended (indexed by `window_end`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::time::Duration as StdDuration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use time::OffsetDateTime;
use tokio_postgres::IsolationLevel;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use device_grant::store::{
    Admission, AttemptLimiter, DeviceAuthorization, DeviceCodeHash, Inserted, LimiterKey,
    PollAttempt, Polled, Store, UserCodeHash, decode_record as decode, encode_record as encode,
    with_pace,
};
use device_grant::{BackendError, Budget, CodeChallenge, Interval, JwkThumbprint};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_device_grant.sql")),
    (2, include_str!("../migrations/0002_limiter_windows.sql")),
    (3, include_str!("../migrations/0003_poll_state.sql")),
];

/// Rows one purge statement deletes.
const PURGE_BATCH: i64 = 1000;

/// How [`PostgresStore::connect_with`] connects.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The schema holding the tables (created by [`migrate`] if missing).
    /// Default `public`.
    pub schema: String,
    /// Connections in the pool. Default 16.
    pub pool_size: usize,
    /// How long an operation may take, waiting for a connection included: past
    /// it, it fails with [`BackendError::Timeout`] (a write may or may not have
    /// happened, whole). Default 5 s.
    ///
    /// It is the client's limit: the server does not stop a statement the
    /// client gave up on, which can then land after the crate read the record
    /// back to settle the timeout. Give the store's role a `lock_timeout` and a
    /// `statement_timeout` well below this (`ALTER ROLE … SET lock_timeout =
    /// '1s'`), so that the server ends a slow write itself first.
    pub timeout: StdDuration,
    /// Whether [`PostgresStore::connect_with`] applies the migrations. Default true.
    pub migrate: bool,
    /// Requires TLS (crate feature `tls`), whatever the URL's `sslmode`: see
    /// [TLS](crate#tls). Default false: TLS only if the URL asks for it
    /// (`sslmode=require`, `verify-ca` or `verify-full`). Without the feature,
    /// setting it makes [`pool`] fail.
    pub require_tls: bool,
    /// The CA certificate(s), PEM, that the server's certificate must chain to
    /// when TLS is used, instead of the URL's `sslrootcert` file or Mozilla's
    /// roots: for a private CA or a self-signed deployment. Default none.
    pub tls_ca_pem: Option<String>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "public".to_owned(),
            pool_size: 16,
            timeout: StdDuration::from_secs(5),
            migrate: true,
            require_tls: false,
            tls_ca_pem: None,
        }
    }
}

/// Builds a pool for `url` (`postgres://user:password@host:port/db`, or the
/// key-value form), with TLS if the URL or `options` ask for it (see
/// [TLS](crate#tls)). Errors never show the password.
pub fn pool(url: &str, options: &PostgresOptions) -> Result<Pool, BackendError> {
    let (url_text, ca_file) = take_tls_params(url)?;
    let mut config: tokio_postgres::Config = url_text.parse().map_err(|_| {
        BackendError::Unavailable(format!(
            "bad postgres URL {}",
            device_grant::store::redacted_url(url)
        ))
    })?;
    config.connect_timeout(options.timeout);
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = if options.require_tls || config.get_ssl_mode() == SslMode::Require {
        config.ssl_mode(SslMode::Require);
        tls_manager(config, options, ca_file, manager_config)?
    } else {
        Manager::from_config(config, NoTls, manager_config)
    };
    Pool::builder(manager)
        .max_size(options.pool_size)
        .wait_timeout(Some(options.timeout))
        .create_timeout(Some(options.timeout))
        .recycle_timeout(Some(options.timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(BackendError::other)
}

/// `url` without the parameters that tokio-postgres does not know, and the
/// `sslrootcert` file if one was given: `sslmode=verify-ca` and
/// `sslmode=verify-full` become `sslmode=require` (which verifies as fully
/// here), and `sslrootcert=<path>` is taken out. Only the URL form carries
/// them; the key-value form is left as it is.
fn take_tls_params(url: &str) -> Result<(String, Option<String>), BackendError> {
    let Some((head, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None));
    };
    if !(head.starts_with("postgres://") || head.starts_with("postgresql://")) {
        return Ok((url.to_owned(), None));
    }
    let mut ca_file = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslmode" if value == "verify-ca" || value == "verify-full" => {
                kept.push("sslmode=require");
            }
            "sslrootcert" => {
                let path = percent_encoding::percent_decode_str(value)
                    .decode_utf8()
                    .map_err(|_| BackendError::other("sslrootcert is not UTF-8"))?;
                ca_file = Some(path.into_owned());
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        head.to_owned()
    } else {
        format!("{head}?{}", kept.join("&"))
    };
    Ok((url, ca_file))
}

#[cfg(feature = "tls")]
fn tls_manager(
    config: tokio_postgres::Config,
    options: &PostgresOptions,
    ca_file: Option<String>,
    manager_config: ManagerConfig,
) -> Result<Manager, BackendError> {
    let connector = match (&options.tls_ca_pem, ca_file) {
        (Some(pem), _) => tls::connector(Some((pem.as_bytes(), "PostgresOptions::tls_ca_pem")))?,
        (None, Some(path)) => {
            let pem = std::fs::read(&path).map_err(|e| {
                BackendError::other(format!("cannot read the sslrootcert file {path:?}: {e}"))
            })?;
            tls::connector(Some((&pem, &format!("the sslrootcert file {path:?}"))))?
        }
        (None, None) => tls::connector(None)?,
    };
    Ok(Manager::from_config(config, connector, manager_config))
}

#[cfg(not(feature = "tls"))]
fn tls_manager(
    _: tokio_postgres::Config,
    _: &PostgresOptions,
    _: Option<String>,
    _: ManagerConfig,
) -> Result<Manager, BackendError> {
    Err(BackendError::other(
        "TLS was asked for (sslmode=require/verify-ca/verify-full, or \
         PostgresOptions::require_tls), but device-grant-postgres was built without its \
         feature `tls`",
    ))
}

#[cfg(feature = "tls")]
mod tls {
    use std::sync::Arc;

    use device_grant::BackendError;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use tokio_postgres_rustls::MakeRustlsConnect;

    /// A connector that verifies the server's certificate (chain and host
    /// name) against the PEM certificates of `ca` (and what they come from,
    /// for errors), or else Mozilla's roots.
    pub(crate) fn connector(ca: Option<(&[u8], &str)>) -> Result<MakeRustlsConnect, BackendError> {
        let mut roots = rustls::RootCertStore::empty();
        match ca {
            Some((pem, source)) => {
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| {
                        BackendError::other(format!("bad CA certificate in {source}: {e}"))
                    })?;
                    roots.add(cert).map_err(|e| {
                        BackendError::other(format!("bad CA certificate in {source}: {e}"))
                    })?;
                }
                if roots.is_empty() {
                    return Err(BackendError::other(format!(
                        "no PEM certificate in {source}"
                    )));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        // The provider named, not the process default: another crate in the
        // host may enable a second one.
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(BackendError::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

fn check_schema(schema: &str) -> Result<(), BackendError> {
    // Interpolated into SQL as an identifier: only plain lower-case names.
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(BackendError::other(format!(
            "schema name {schema:?} must match [a-z_][a-z0-9_]{{0,62}}"
        )))
    }
}

fn backend_error(e: tokio_postgres::Error) -> BackendError {
    if e.as_db_error().is_some() {
        BackendError::other(e)
    } else {
        // Not an answer from the server: the connection broke or never was.
        BackendError::Unavailable(with_causes(&e))
    }
}

/// `e` and its causes, `: `-separated: tokio-postgres shows only "error
/// performing TLS handshake", and its cause says which certificate check
/// failed.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut shown = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !shown.ends_with(&text) {
            shown.push_str(": ");
            shown.push_str(&text);
        }
        cause = c.source();
    }
    shown
}

fn pool_error(e: PoolError) -> BackendError {
    match e {
        PoolError::Timeout(_) => BackendError::Timeout,
        PoolError::Backend(e) => backend_error(e),
        other => BackendError::Unavailable(other.to_string()),
    }
}

/// Applies the migrations not yet applied to `schema`, creating it if
/// needed. Safe to call from every instance at once: an advisory lock runs
/// them one at a time, and each migration commits with its version record.
pub async fn migrate(pool: &Pool, schema: &str) -> Result<(), BackendError> {
    check_schema(schema)?;
    let mut client = pool.get().await.map_err(pool_error)?;
    // READ COMMITTED whatever the default: each statement after the lock must
    // see what the instance that held it before committed.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(backend_error)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('device_grant_migrate:' || $1))",
        &[&schema],
    )
    .await
    .map_err(backend_error)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.device_grant_migrations (
             version INTEGER PRIMARY KEY,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         );
         SET LOCAL search_path TO {schema};"
    ))
    .await
    .map_err(backend_error)?;
    let applied: Vec<i32> = tx
        .query("SELECT version FROM device_grant_migrations", &[])
        .await
        .map_err(backend_error)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for (version, sql) in MIGRATIONS {
        if !applied.contains(version) {
            tx.batch_execute(sql).await.map_err(backend_error)?;
            tx.execute(
                "INSERT INTO device_grant_migrations (version) VALUES ($1)",
                &[version],
            )
            .await
            .map_err(backend_error)?;
        }
    }
    tx.commit().await.map_err(backend_error)
}

/// The statements, with the schema filled in.
#[derive(Debug)]
struct Sql {
    insert: String,
    release_expired: String,
    by_device_code: String,
    device_code_exists: String,
    by_user_code: String,
    compare_and_set: String,
    poll: String,
    purge: String,
}

impl Sql {
    fn new(s: &str) -> Self {
        let t = format!("{s}.device_grant_authorizations");
        Self {
            insert: format!(
                "INSERT INTO {t} (device_code_hash, user_code_hash, expires_at, purge_at, version, record,
                     client_id, code_challenge, poll_interval, last_poll, dpop_jkt)
                 VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT DO NOTHING RETURNING version"
            ),
            release_expired: format!(
                "UPDATE {t} SET user_code_hash = NULL WHERE user_code_hash = $1 AND expires_at <= $2"
            ),
            by_device_code: format!(
                "SELECT record, version, poll_interval, last_poll FROM {t} WHERE device_code_hash = $1"
            ),
            device_code_exists: format!("SELECT 1 FROM {t} WHERE device_code_hash = $1"),
            by_user_code: format!(
                "SELECT record, version, poll_interval, last_poll FROM {t}
                 WHERE user_code_hash = $1 AND expires_at > $2"
            ),
            compare_and_set: format!(
                "UPDATE {t} SET version = $3, record = $4, purge_at = $5,
                     user_code_hash = CASE WHEN $6 THEN user_code_hash ELSE NULL END,
                     client_id = $7, code_challenge = $8, poll_interval = $9, last_poll = $10,
                     dpop_jkt = $11
                 WHERE device_code_hash = $1 AND version = $2 RETURNING version"
            ),
            // The pace rules of `PollingRules::pace`, in microseconds: $3 now,
            // $4 the leeway (µs), $5 the interval's cap (s); $6 the challenge
            // and $7 the proof's DPoP key ('' for none; an unbound row takes
            // any). `cur` locks the
            // row if this poll is the store's to judge; `judged` writes it
            // unless the poll is too early with the interval at its cap. A
            // poll that is not the store's to judge reads the row as is.
            poll: format!(
                "WITH cur AS (
                     SELECT device_code_hash, version, poll_interval, last_poll, record,
                         last_poll IS NOT NULL
                             AND EXTRACT(EPOCH FROM ($3::timestamptz - last_poll)) * 1000000
                                 < poll_interval * 1000000::bigint
                                     - LEAST($4::bigint, poll_interval * 500000::bigint)
                             AS early,
                         LEAST(poll_interval + 5, GREATEST($5::integer, poll_interval)) AS slowed
                     FROM {t}
                     WHERE device_code_hash = $1 AND poll_interval IS NOT NULL
                         AND client_id = $2::text AND code_challenge = $6::text
                         AND (dpop_jkt = '' OR dpop_jkt = $7::text)
                         AND $3::timestamptz < expires_at
                     FOR UPDATE
                 ), judged AS (
                     UPDATE {t} AS d SET version = cur.version + 1,
                         poll_interval = CASE WHEN cur.early THEN cur.slowed ELSE cur.poll_interval END,
                         last_poll = CASE WHEN cur.early THEN cur.last_poll ELSE $3::timestamptz END
                     FROM cur
                     WHERE d.device_code_hash = cur.device_code_hash
                         AND NOT (cur.early AND cur.slowed = cur.poll_interval)
                     RETURNING d.version, d.poll_interval, d.last_poll
                 )
                 SELECT CASE WHEN cur.early THEN cur.record END,
                     COALESCE(judged.version, cur.version),
                     COALESCE(judged.poll_interval, cur.poll_interval),
                     COALESCE(judged.last_poll, cur.last_poll),
                     CASE WHEN cur.early THEN 2 ELSE 1 END
                 FROM cur LEFT JOIN judged ON true
                 UNION ALL
                 SELECT record, version, poll_interval, last_poll, 0 FROM {t}
                 WHERE device_code_hash = $1 AND NOT EXISTS (SELECT 1 FROM cur)"
            ),
            purge: format!(
                "DELETE FROM {t} WHERE device_code_hash IN (
                     SELECT device_code_hash FROM {t} WHERE purge_at <= $1 LIMIT $2
                     FOR UPDATE SKIP LOCKED)"
            ),
        }
    }
}

/// A [`Store`] on PostgreSQL, shared by every instance that uses the same
/// database and schema. See the [module documentation](self) for the schema
/// and the statements.
///
/// Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    schema: String,
    timeout: StdDuration,
    sql: std::sync::Arc<Sql>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

fn version_of(v: u64) -> Result<i64, BackendError> {
    i64::try_from(v).map_err(|_| BackendError::other("version beyond i64"))
}

impl PostgresStore {
    /// Connects with default [`PostgresOptions`] (schema `public`) and applies
    /// the migrations. Fails if the database cannot be reached now.
    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Connects with `options`, applying the migrations unless told not to.
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, BackendError> {
        let pool = pool(url, &options)?;
        let reached = if options.migrate {
            migrate(&pool, &options.schema).await
        } else {
            // Still prove the database answers, as the doc promises.
            pool.get().await.map(drop).map_err(pool_error)
        };
        reached.map_err(|e| match e {
            BackendError::Unavailable(why) => BackendError::Unavailable(format!(
                "cannot connect to {}: {why}",
                device_grant::store::redacted_url(url)
            )),
            other => other,
        })?;
        let mut store = Self::new(pool, &options.schema)?;
        store.timeout = options.timeout;
        Ok(store)
    }

    /// A store on a pool the host built, its tables in `schema` (already
    /// migrated with [`migrate`]).
    pub fn new(pool: Pool, schema: &str) -> Result<Self, BackendError> {
        check_schema(schema)?;
        Ok(Self {
            sql: std::sync::Arc::new(Sql::new(schema)),
            schema: schema.to_owned(),
            timeout: PostgresOptions::default().timeout,
            pool,
        })
    }

    /// An attempt limiter on the same pool and schema.
    pub fn limiter(&self) -> PostgresLimiter {
        PostgresLimiter {
            pool: self.pool.clone(),
            schema: self.schema.clone(),
            timeout: self.timeout,
            sql: std::sync::Arc::new(LimiterSql::new(&self.schema)),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Runs one statement on a pooled connection, in a READ COMMITTED
    /// transaction of its own, within the timeout.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, BackendError> {
        query_rows(&self.pool, self.timeout, sql, params).await
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, BackendError> {
        execute_count(&self.pool, self.timeout, sql, params).await
    }

    async fn read_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.query(sql, params)
            .await?
            .first()
            .map(record_of)
            .transpose()
    }
}

/// A record from a row of `record, version, poll_interval, last_poll`: the
/// JSON, with the pace columns a poll judged by the poll statement wrote
/// (see [`with_pace`]).
fn record_of(row: &tokio_postgres::Row) -> Result<DeviceAuthorization, BackendError> {
    let corrupt = |what: &str| BackendError::Corrupt(format!("stored record: bad {what} column"));
    let json: &str = row.try_get(0).map_err(|_| corrupt("record"))?;
    let version: i64 = row.try_get(1).map_err(|_| corrupt("version"))?;
    let interval: Option<i32> = row.try_get(2).map_err(|_| corrupt("poll_interval"))?;
    let last_poll: Option<OffsetDateTime> = row.try_get(3).map_err(|_| corrupt("last_poll"))?;
    let record = decode(json)?;
    let version = u64::try_from(version).map_err(|_| corrupt("version"))?;
    let interval = interval
        .and_then(|i| u32::try_from(i).ok())
        .and_then(Interval::from_secs);
    with_pace(record, version, interval, last_poll)
}

/// The pace columns of a record: set while it is pending, NULL after.
fn pace_columns(record: &DeviceAuthorization) -> PaceColumns<'_> {
    if !record.status.is_pending() {
        return (None, None, None, None, None);
    }
    (
        Some(record.request.client_id.as_str()),
        Some(
            record
                .request
                .code_challenge
                .as_ref()
                .map(CodeChallenge::to_base64url)
                .unwrap_or_default(),
        ),
        i32::try_from(record.interval.secs()).ok(),
        record.last_poll,
        Some(
            record
                .request
                .dpop_jkt
                .map(|j| j.to_base64url())
                .unwrap_or_default(),
        ),
    )
}

/// `client_id`, `code_challenge`, `poll_interval`, `last_poll`, `dpop_jkt`.
type PaceColumns<'a> = (
    Option<&'a str>,
    Option<String>,
    Option<i32>,
    Option<OffsetDateTime>,
    Option<String>,
);

/// How many times an operation runs when the server cancels its transaction
/// (SQLSTATE 40001 or 40P01): see [Isolation](crate#isolation).
const ATTEMPTS: usize = 3;

/// Runs the prepared statement `$sql` through `$client.$method(&statement,
/// $params)` in a transaction of its own at READ COMMITTED, whatever the
/// session's default level; again if the server cancelled it (rolled back
/// whole), up to [`ATTEMPTS`] in all; within `$limit`. A macro rather than a
/// function: the query's future borrows the pooled client.
macro_rules! read_committed {
    ($pool:expr, $limit:expr, $sql:expr, $method:ident, $params:expr) => {
        timed($limit, async {
            let client = $pool.get().await.map_err(pool_error)?;
            let statement = client.prepare_cached($sql).await.map_err(backend_error)?;
            let mut attempt = 1;
            loop {
                match in_read_committed(&client, client.$method(&statement, $params)).await {
                    Err(e) if attempt < ATTEMPTS && is_cancelled_transaction(&e) => attempt += 1,
                    result => return result.map_err(backend_error),
                }
            }
        })
    };
}

/// The rows of one statement, run as [`read_committed!`] says.
async fn query_rows(
    pool: &Pool,
    limit: StdDuration,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, BackendError> {
    read_committed!(pool, limit, sql, query, params).await
}

/// How many rows one statement changed, run as [`read_committed!`] says.
async fn execute_count(
    pool: &Pool,
    limit: StdDuration,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, BackendError> {
    read_committed!(pool, limit, sql, execute, params).await
}

/// `BEGIN ISOLATION LEVEL READ COMMITTED`, the statement of `op`, `COMMIT`:
/// pipelined, the three sent at once and run in order. `op` must send its
/// request when first polled (a query on a prepared [`tokio_postgres::Statement`] does; one
/// on SQL text would prepare first, after `COMMIT` was sent). When the
/// statement fails, the server ends the transaction at `COMMIT` (answering
/// `ROLLBACK`), and its error is returned.
async fn in_read_committed<T>(
    client: &tokio_postgres::Client,
    op: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, tokio_postgres::Error> {
    let (begun, result, committed) = futures_util::future::join3(
        client.batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED"),
        op,
        client.batch_execute("COMMIT"),
    )
    .await;
    begun?;
    let value = result?;
    committed?;
    Ok(value)
}

/// Whether the server cancelled the statement's transaction for a
/// serialization failure or a deadlock: rolled back, nothing changed.
fn is_cancelled_transaction(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
    )
}

async fn timed<T>(
    limit: StdDuration,
    op: impl std::future::Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    tokio::time::timeout(limit, op)
        .await
        .unwrap_or(Err(BackendError::Timeout))
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        let json = encode(record)?;
        let (device, user) = (
            &record.device_code_hash.as_bytes()[..],
            &record.user_code_hash.as_bytes()[..],
        );
        let (client, challenge, interval, last_poll, jkt) = pace_columns(record);
        let params: [&(dyn ToSql + Sync); 10] = [
            &device,
            &user,
            &record.request.expires_at,
            &record.purge_at,
            &json,
            &client,
            &challenge,
            &interval,
            &last_poll,
            &jkt,
        ];
        if !self.query(&self.sql.insert, &params).await?.is_empty() {
            return Ok(Inserted::Stored);
        }
        // A conflict: on the device code (refused, whoever holds the user
        // code), or on the user code.
        if !self
            .query(&self.sql.device_code_exists, &[&device])
            .await?
            .is_empty()
        {
            return Err(BackendError::other(DUPLICATE_DEVICE_CODE));
        }
        // The code is held. If its holder has expired, release it and try once
        // more; releasing is harmless on its own (an expired record's user code
        // is dead anyway), so the two statements need no transaction.
        let released = self
            .execute(&self.sql.release_expired, &[&user, &now])
            .await?;
        if released > 0 && !self.query(&self.sql.insert, &params).await?.is_empty() {
            return Ok(Inserted::Stored);
        }
        Ok(Inserted::UserCodeTaken)
    }

    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.read_one(&self.sql.by_device_code, &[&&hash.as_bytes()[..]])
            .await
    }

    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let found = self
            .read_one(&self.sql.by_user_code, &[&&hash.as_bytes()[..], &now])
            .await?;
        // The row's columns found it; the record itself has the last word.
        Ok(found.filter(|r| r.user_code_hash == *hash && r.is_live(now)))
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        if Some(next.version) != expected_version.checked_add(1) {
            return Ok(false);
        }
        let json = encode(next)?;
        let (client, challenge, interval, last_poll, jkt) = pace_columns(next);
        let rows = self
            .query(
                &self.sql.compare_and_set,
                &[
                    &&next.device_code_hash.as_bytes()[..],
                    &version_of(expected_version)?,
                    &version_of(next.version)?,
                    &json,
                    &next.purge_at,
                    &next.status.is_pending(),
                    &client,
                    &challenge,
                    &interval,
                    &last_poll,
                    &jkt,
                ],
            )
            .await?;
        Ok(!rows.is_empty())
    }

    async fn poll(
        &self,
        hash: &DeviceCodeHash,
        attempt: &PollAttempt<'_>,
    ) -> Result<Polled, BackendError> {
        let challenge = attempt
            .challenge
            .map(CodeChallenge::to_base64url)
            .unwrap_or_default();
        let leeway = i64::try_from(attempt.rules.leeway.whole_microseconds())
            .unwrap_or(i64::MAX)
            .max(0);
        let cap = i32::try_from(attempt.rules.max_interval.secs()).unwrap_or(i32::MAX);
        let rows = self
            .query(
                &self.sql.poll,
                &[
                    &&hash.as_bytes()[..],
                    &attempt.client_id.as_str(),
                    &attempt.now,
                    &leeway,
                    &cap,
                    &challenge,
                    &attempt
                        .dpop_jkt
                        .map(JwkThumbprint::to_base64url)
                        .unwrap_or_default(),
                ],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(Polled::Undecided(None));
        };
        let judged: i32 = row
            .try_get(4)
            .map_err(|e| BackendError::other(format!("poll statement: {e}")))?;
        match judged {
            1 => Ok(Polled::Pending),
            2 => {
                let after = record_of(row)?;
                Ok(Polled::SlowDown(after.interval, Box::new(after)))
            }
            _ => record_of(row).map(|r| Polled::Undecided(Some(r))),
        }
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        let mut deleted = 0;
        loop {
            // Batches: short transactions, no long lock on a busy table.
            let n = self.execute(&self.sql.purge, &[&now, &PURGE_BATCH]).await?;
            deleted += n;
            if n < PURGE_BATCH as u64 {
                return Ok(deleted);
            }
        }
    }
}

#[derive(Debug)]
struct LimiterSql {
    acquire: String,
    refund: String,
    purge: String,
}

impl LimiterSql {
    fn new(s: &str) -> Self {
        let t = format!("{s}.device_grant_attempts");
        Self {
            // One statement: a later window starts at 1, the current one grows
            // only while under budget; no row returned means refused. An
            // instance whose clock lags a window behind is refused rather than
            // allowed to reset the newer window's count.
            acquire: format!(
                "INSERT INTO {t} AS a (key_hash, window_start, window_end, spent)
                 VALUES ($1, $2, $4, 1)
                 ON CONFLICT (key_hash) DO UPDATE SET
                     window_start = EXCLUDED.window_start,
                     window_end = EXCLUDED.window_end,
                     spent = CASE WHEN a.window_start = EXCLUDED.window_start
                                  THEN a.spent + 1 ELSE 1 END
                 WHERE a.window_start < EXCLUDED.window_start
                    OR (a.window_start = EXCLUDED.window_start AND a.spent < $3)
                 RETURNING spent"
            ),
            refund: format!(
                "UPDATE {t} SET spent = spent - 1
                 WHERE key_hash = $1 AND window_start = $2 AND spent > 0"
            ),
            purge: format!("DELETE FROM {t} WHERE window_end <= $1"),
        }
    }
}

/// An [`AttemptLimiter`] on PostgreSQL: one row per key (its SHA-256), checked
/// and spent by one `INSERT … ON CONFLICT DO UPDATE … WHERE`, so concurrent
/// guesses on any number of instances cannot overspend.
#[derive(Clone)]
pub struct PostgresLimiter {
    pool: Pool,
    schema: String,
    timeout: StdDuration,
    sql: std::sync::Arc<LimiterSql>,
}

impl std::fmt::Debug for PostgresLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLimiter")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl PostgresLimiter {
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, BackendError> {
        execute_count(&self.pool, self.timeout, sql, params).await
    }
}

#[async_trait::async_trait]
impl AttemptLimiter for PostgresLimiter {
    async fn acquire(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<Admission, BackendError> {
        if budget.attempts == 0 {
            return Ok(Admission::spent(false, budget, now));
        }
        let hash = key.counter_id(budget);
        let attempts = i32::try_from(budget.attempts).unwrap_or(i32::MAX);
        let start = budget.window_start(now);
        let spent = self
            .execute(
                &self.sql.acquire,
                &[&&hash[..], &start, &attempts, &(start + budget.window)],
            )
            .await?;
        Ok(Admission::spent(spent == 1, budget, now))
    }

    async fn refund(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<(), BackendError> {
        let hash = key.counter_id(budget);
        self.execute(&self.sql.refund, &[&&hash[..], &budget.window_start(now)])
            .await
            .map(drop)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.execute(&self.sql.purge, &[&now]).await
    }
}

/// What an insert of a device-code hash that is already stored fails with.
const DUPLICATE_DEVICE_CODE: &str = "a record with this device-code hash is already stored";

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_urls() {
        let take = |url: &str| take_tls_params(url).unwrap();
        assert_eq!(
            take("postgres://u@h/db"),
            ("postgres://u@h/db".into(), None)
        );
        assert_eq!(
            take(
                "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca%20x.pem&application_name=a"
            ),
            (
                "postgres://u@h/db?sslmode=require&application_name=a".into(),
                Some("/etc/ca x.pem".into())
            )
        );
        assert_eq!(
            take("postgresql://h/db?sslrootcert=ca.pem"),
            ("postgresql://h/db".into(), Some("ca.pem".into()))
        );
        assert_eq!(
            take("postgres://h/db?sslmode=verify-ca"),
            ("postgres://h/db?sslmode=require".into(), None)
        );
        // The key-value form is tokio-postgres's to parse.
        assert_eq!(
            take("host=h sslmode=require"),
            ("host=h sslmode=require".into(), None)
        );
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_without_the_feature_is_an_error() {
        let asked = PostgresOptions {
            require_tls: true,
            ..PostgresOptions::default()
        };
        let e = pool("postgres://u@h/db", &asked).unwrap_err();
        assert!(e.to_string().contains("feature `tls`"), "{e}");
        let e = pool(
            "postgres://u@h/db?sslmode=require",
            &PostgresOptions::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("feature `tls`"), "{e}");
    }
}
