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
//! # Atomicity and cost
//!
//! Every operation is one statement, so every write is atomic and a failure
//! applies nothing. A transition is
//! `UPDATE … SET version = $next … WHERE device_code_hash = $1 AND version = $expected RETURNING version`,
//! which also clears the row's `user_code_hash` (the user-code index) when the
//! record leaves `Pending`. An insert is one `INSERT … ON CONFLICT DO NOTHING`;
//! only on a conflict does it look further: a device code already stored is
//! an error; a held user code is released by an `UPDATE` if its holder has
//! expired, and the insert tried once more. A pending poll is
//! two round trips (the read and the compare-and-set), on prepared statements.
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
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use device_grant::store::{
    Admission, AttemptLimiter, DeviceAuthorization, DeviceCodeHash, Inserted, LimiterKey, Store,
    UserCodeHash, decode_record as decode, encode_record as encode,
};
use device_grant::{BackendError, Budget};

/// The migrations, in order: (version, SQL).
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_device_grant.sql")),
    (2, include_str!("../migrations/0002_limiter_windows.sql")),
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
    pub timeout: StdDuration,
    /// Whether [`PostgresStore::connect_with`] applies the migrations. Default true.
    pub migrate: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "public".to_owned(),
            pool_size: 16,
            timeout: StdDuration::from_secs(5),
            migrate: true,
        }
    }
}

/// Builds a pool for `url` (`postgres://user:password@host:port/db`, or the
/// key-value form), without TLS: for TLS, build a `deadpool_postgres::Pool`
/// with a TLS connector and use [`PostgresStore::new`]. Errors never show the
/// password.
pub fn pool(url: &str, options: &PostgresOptions) -> Result<Pool, BackendError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|_| BackendError::Unavailable(format!("bad postgres URL {}", redact_url(url))))?;
    config.connect_timeout(options.timeout);
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.pool_size)
        .wait_timeout(Some(options.timeout))
        .create_timeout(Some(options.timeout))
        .recycle_timeout(Some(options.timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(BackendError::other)
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
        BackendError::Unavailable(e.to_string())
    }
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
    let tx = client.transaction().await.map_err(backend_error)?;
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
    purge: String,
}

impl Sql {
    fn new(s: &str) -> Self {
        let t = format!("{s}.device_grant_authorizations");
        Self {
            insert: format!(
                "INSERT INTO {t} (device_code_hash, user_code_hash, expires_at, purge_at, version, record)
                 VALUES ($1, $2, $3, $4, 0, $5) ON CONFLICT DO NOTHING RETURNING version"
            ),
            release_expired: format!(
                "UPDATE {t} SET user_code_hash = NULL WHERE user_code_hash = $1 AND expires_at <= $2"
            ),
            by_device_code: format!("SELECT record FROM {t} WHERE device_code_hash = $1"),
            device_code_exists: format!("SELECT 1 FROM {t} WHERE device_code_hash = $1"),
            by_user_code: format!(
                "SELECT record FROM {t} WHERE user_code_hash = $1 AND expires_at > $2"
            ),
            compare_and_set: format!(
                "UPDATE {t} SET version = $3, record = $4, purge_at = $5,
                     user_code_hash = CASE WHEN $6 THEN user_code_hash ELSE NULL END
                 WHERE device_code_hash = $1 AND version = $2 RETURNING version"
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
        if options.migrate {
            migrate(&pool, &options.schema).await?;
        } else {
            // Still prove the database answers, as the doc promises.
            drop(pool.get().await.map_err(pool_error)?);
        }
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

    /// Runs one statement on a pooled connection, within the timeout.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, BackendError> {
        timed(self.timeout, async {
            let client = self.pool.get().await.map_err(pool_error)?;
            let statement = client.prepare_cached(sql).await.map_err(backend_error)?;
            client
                .query(&statement, params)
                .await
                .map_err(backend_error)
        })
        .await
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, BackendError> {
        timed(self.timeout, async {
            let client = self.pool.get().await.map_err(pool_error)?;
            let statement = client.prepare_cached(sql).await.map_err(backend_error)?;
            client
                .execute(&statement, params)
                .await
                .map_err(backend_error)
        })
        .await
    }

    async fn read_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        match self.query(sql, params).await?.first() {
            Some(row) => {
                let json: &str = row
                    .try_get(0)
                    .map_err(|_| BackendError::Corrupt("record column is not text".into()))?;
                decode(json).map(Some)
            }
            None => Ok(None),
        }
    }
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
        let params: [&(dyn ToSql + Sync); 5] = [
            &device,
            &user,
            &record.request.expires_at,
            &record.purge_at,
            &json,
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
                ],
            )
            .await?;
        Ok(!rows.is_empty())
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
        timed(self.timeout, async {
            let client = self.pool.get().await.map_err(pool_error)?;
            let statement = client.prepare_cached(sql).await.map_err(backend_error)?;
            client
                .execute(&statement, params)
                .await
                .map_err(backend_error)
        })
        .await
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

/// A connection URL with its password replaced, for `Debug` and errors.
fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            // Query parameters can carry passwords too (`?password=`).
            if parsed.query().is_some() {
                parsed.set_query(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "<unparsable url>".to_owned(),
    }
}

/// What an insert of a device-code hash that is already stored fails with.
const DUPLICATE_DEVICE_CODE: &str = "a record with this device-code hash is already stored";

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn urls_lose_their_passwords() {
        assert_eq!(
            redact_url("redis://user:hunter2@cache:6379/0"),
            "redis://user:***@cache:6379/0"
        );
        let pg = redact_url("postgres://app:s3cret@db/grant?password=other&sslmode=require");
        assert!(!pg.contains("s3cret") && !pg.contains("other"), "{pg}");
        assert_eq!(redact_url("not a url s3cret"), "<unparsable url>");
    }
}
