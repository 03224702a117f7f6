//! Shared stores for several instances of one authorization server: Redis
//! (feature `redis`) and PostgreSQL (feature `postgres`).
//!
//! Both keep the [`Store`](crate::Store) contract exactly as the memory store
//! does (each passes [`conformance`](crate::conformance) against a real server),
//! and both ship an [`AttemptLimiter`](crate::AttemptLimiter) that counts
//! user-code guesses across instances. Engine failures (server down, timeout,
//! a connection broken mid-request) come back as
//! [`BackendError`]s, which the endpoints answer with
//! `503 temporarily_unavailable` or `500 server_error`; every write is one
//! atomic server-side step, so a failure never leaves half a transition.

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "redis")]
pub mod redis;

use std::sync::Arc;

use sha2::Digest as _;
#[cfg(feature = "redis")]
use time::OffsetDateTime;

use crate::protocol::authorization::DeviceAuthorization;
use crate::protocol::error::BackendError;

/// The key prefix (Redis) [`connect`] uses.
pub const DEFAULT_PREFIX: &str = "device-grant";

/// A store and its limiter from one setting, for a `--store` flag:
/// `memory`, `redis://…` / `rediss://…` (keys prefixed [`DEFAULT_PREFIX`]) or
/// `postgres://…` / `postgresql://…` (schema `public`, migrated). A scheme whose
/// feature is off, or an unknown one, is an error naming it (never the URL's
/// password).
pub async fn connect(
    url: &str,
) -> Result<(Arc<dyn crate::Store>, Arc<dyn crate::AttemptLimiter>), BackendError> {
    let scheme = url.split_once("://").map_or(url, |(s, _)| s);
    match scheme {
        "memory" => Ok((
            Arc::new(crate::MemoryStore::new()),
            Arc::new(crate::MemoryLimiter::new()),
        )),
        #[cfg(feature = "redis")]
        "redis" | "rediss" => {
            let store = redis::RedisStore::connect(url, DEFAULT_PREFIX).await?;
            let limiter = store.limiter();
            Ok((Arc::new(store), Arc::new(limiter)))
        }
        #[cfg(feature = "postgres")]
        "postgres" | "postgresql" => {
            let store = postgres::PostgresStore::connect(url).await?;
            let limiter = store.limiter();
            Ok((Arc::new(store), Arc::new(limiter)))
        }
        other => Err(BackendError::other(format!(
            "no store for {other:?}: expected memory, redis:// (feature redis) or \
             postgres:// (feature postgres)"
        ))),
    }
}

/// What an insert of a device-code hash that is already stored fails with.
#[cfg(any(feature = "redis", feature = "postgres"))]
pub(crate) const DUPLICATE_DEVICE_CODE: &str =
    "a record with this device-code hash is already stored";

/// A record as stored: its JSON, which holds only hashes of the codes.
pub(crate) fn encode(record: &DeviceAuthorization) -> Result<String, BackendError> {
    serde_json::to_string(record).map_err(BackendError::other)
}

pub(crate) fn decode(json: &str) -> Result<DeviceAuthorization, BackendError> {
    // The error says where the JSON broke, never what it held.
    serde_json::from_str(json).map_err(|e| {
        BackendError::Corrupt(format!(
            "stored record is not a device authorization (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Limiter keys may be personal data (an IP address, an account): backends
/// see only their SHA-256.
pub(crate) fn limiter_key_hash(key: &crate::LimiterKey, budget: &crate::Budget) -> [u8; 32] {
    // A counter is one key under one window length: the same key counted under
    // a 1-minute and a 1-hour budget are two counters.
    let mut h = sha2::Sha256::new();
    h.update(budget.window.whole_seconds().to_be_bytes());
    h.update(key.as_str().as_bytes());
    h.finalize().into()
}

/// Microseconds since the epoch: exact in a Lua number (a double) and in a
/// PostgreSQL `timestamptz`.
#[cfg(feature = "redis")]
pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

#[cfg(feature = "redis")]
/// Milliseconds since the epoch, rounded up, for TTLs: a key never expires
/// before the instant it stands for.
pub(crate) fn millis_ceil(t: OffsetDateTime) -> i64 {
    let nanos = t.unix_timestamp_nanos();
    (nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0)) as i64
}

/// A connection URL with its password replaced, for `Debug` and errors.
pub(crate) fn redact_url(url: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connect_picks_the_store_by_scheme() {
        let (store, _) = connect("memory").await.unwrap();
        let hash = crate::DeviceCodeHash([9; 32]);
        assert_eq!(store.by_device_code(&hash).await.unwrap(), None);
        let err = match connect("mongodb://u:hunter2@db/x").await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("an unknown scheme must be refused"),
        };
        assert!(
            err.contains("\"mongodb\"") && !err.contains("hunter2"),
            "{err}"
        );
    }

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

    #[test]
    fn corrupt_records_do_not_echo_their_content() {
        let err = decode("{\"device_code_hash\": \"secret-looking\"").unwrap_err();
        assert!(matches!(err, BackendError::Corrupt(_)));
        assert!(!err.to_string().contains("secret-looking"), "{err}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn ttl_millis_round_up() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_500_000_001).unwrap();
        assert_eq!(millis_ceil(t), 1501);
        let exact = OffsetDateTime::from_unix_timestamp(2).unwrap();
        assert_eq!(millis_ceil(exact), 2000);
    }
}
