//! A [`Store`] and an [`AttemptLimiter`] on Redis, for several instances of one
//! authorization server built on [`device_grant`].
//!
//! # Keys
//!
//! Every key starts with the prefix the host chooses (`P` below); hashes are
//! lower-case hex. Nothing secret is in a key or a value: device codes appear
//! only as SHA-256, user codes only as HMAC-SHA-256, limiter keys only as SHA-256.
//!
//! | key | type | holds | expires (TTL) |
//! | --- | --- | --- | --- |
//! | `P:dc:<device-code hash>` | hash | `v`: the version, `r`: the record's JSON | at `purge_at` |
//! | `P:uc:<user-code hash>` | string | `<device-code hash>:<expires_at, µs>` while the record is pending | at `expires_at` |
//! | `P:purge` | sorted set | device-code hashes scored by `purge_at` (µs) | never (emptied by purges) |
//! | `P:attempts:<key hash>:<window start>` | string | attempts spent in the window | a window after the window ends |
//!
//! # Atomicity and cost
//!
//! Every write is one Lua script, which Redis runs atomically: an insert checks
//! that the device code is new and claims the user code together; a compare-and-set checks the version,
//! writes, and drops the user-code key when the record leaves `Pending`. Reads
//! are one command (by device code) or one script (by user code). A pending
//! poll is two round trips: the read and the compare-and-set.
//!
//! # Expiry and purge
//!
//! Keys expire on their own (TTLs above), so memory follows live requests
//! even if the host never purges. [`Store::purge_expired`] deletes records
//! whose `purge_at` has come (by the caller's clock) through the `P:purge`
//! index and returns how many it deleted; each insert also purges up to 16 due
//! records, which keeps that index bounded. TTLs follow Redis's clock, the
//! rest the crate's: keep the two in sync (NTP) as for any expiry.
//!
//! # One primary
//!
//! The store speaks to one Redis primary over one connection. Redis Cluster is
//! not supported: the scripts derive keys from the prefix instead of receiving
//! them all in `KEYS`, which a cluster refuses (`CROSSSLOT`) or routes
//! elsewhere (`MOVED`).
//!
//! # Durability
//!
//! Redis replication is asynchronous: after a failover, the promoted replica
//! may lack the last acknowledged writes, so a redeemed code can read as
//! approved again and a denial as pending. Exactly-once redemption and a
//! denial that stays denied hold as far as Redis keeps acknowledged writes
//! (AOF with `appendfsync always`, no failover). The guide `docs/instances.md`
//! has the table for every store.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::time::Duration as StdDuration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands as _, Script};
use time::OffsetDateTime;

use device_grant::store::{
    Admission, AttemptLimiter, DeviceAuthorization, DeviceCodeHash, Inserted, LimiterKey, Store,
    UserCodeHash, decode_record as decode, encode_record as encode, redacted_url,
};
use device_grant::{BackendError, Budget};

/// Records due for purge that one insert deletes on its way.
const PURGE_ON_INSERT: u32 = 16;
/// Records one purge script deletes before yielding the server to others.
const PURGE_BATCH: u32 = 500;

// KEYS: user-code key, record key, purge index.
// Returns 1 (stored), 0 (user code taken) or -1 (device code already stored).
// ARGV: record JSON, device hex, expires µs, expires ms, purge ms, now µs,
//       record key prefix, purge µs, purge-on-insert count.
const INSERT: &str = r"
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
local held = redis.call('GET', KEYS[1])
if held then
  local sep = string.find(held, ':', 1, true)
  if sep and tonumber(string.sub(held, sep + 1)) > tonumber(ARGV[6]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2] .. ':' .. ARGV[3], 'PXAT', ARGV[4])
redis.call('HSET', KEYS[2], 'v', '0', 'r', ARGV[1])
redis.call('PEXPIREAT', KEYS[2], ARGV[5])
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[6], 'LIMIT', 0, tonumber(ARGV[9]))
for _, d in ipairs(due) do
  redis.call('DEL', ARGV[7] .. d)
  redis.call('ZREM', KEYS[3], d)
end
return 1
";

// KEYS: record key, user-code key.
// ARGV: expected version, next version, next JSON, '1' if next is not pending, device hex.
const COMPARE_AND_SET: &str = r"
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'r', ARGV[3])
if ARGV[4] == '1' then
  local held = redis.call('GET', KEYS[2])
  if held and string.sub(held, 1, 64) == ARGV[5] then redis.call('DEL', KEYS[2]) end
end
return 1
";

// KEYS: user-code key. ARGV: now µs, record key prefix.
const BY_USER_CODE: &str = r"
local held = redis.call('GET', KEYS[1])
if not held then return false end
local sep = string.find(held, ':', 1, true)
if not sep or tonumber(string.sub(held, sep + 1)) <= tonumber(ARGV[1]) then return false end
return redis.call('HGET', ARGV[2] .. string.sub(held, 1, sep - 1), 'r')
";

// KEYS: purge index. ARGV: now µs, record key prefix, batch size.
const PURGE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
local deleted = 0
for _, d in ipairs(due) do
  deleted = deleted + redis.call('DEL', ARGV[2] .. d)
  redis.call('ZREM', KEYS[1], d)
end
return {deleted, #due}
";

// KEYS: counter. ARGV: budget, expire-at ms.
const ACQUIRE: &str = r"
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
if spent == 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[2]) end
return 1
";

// KEYS: counter.
const REFUND: &str = r"
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent > 0 then redis.call('DECR', KEYS[1]) end
return 0
";

/// How [`RedisStore::connect`] and [`RedisLimiter::connect`] connect.
#[derive(Debug, Clone, Copy)]
pub struct RedisOptions {
    /// How long to wait for a connection. Default 2 s.
    pub connection_timeout: StdDuration,
    /// How long to wait for an answer: past it, the operation fails with
    /// [`BackendError::Timeout`] (a write may or may not have happened, whole).
    /// Default 2 s.
    pub response_timeout: StdDuration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            connection_timeout: StdDuration::from_secs(2),
            response_timeout: StdDuration::from_secs(2),
        }
    }
}

/// Connects to Redis: one multiplexed connection that reconnects by itself
/// when it breaks (every request of every task shares it, pipelined, which
/// serves Redis better than a pool of connections).
///
/// The URL is `redis://[user:password@]host[:port][/db]` (or `rediss://` when
/// the `redis` crate is built with TLS); errors never show the password.
pub async fn connect(url: &str, options: RedisOptions) -> Result<ConnectionManager, BackendError> {
    let client = redis::Client::open(url).map_err(|e| {
        BackendError::Unavailable(format!(
            "bad redis URL {}: {:?}",
            redacted_url(url),
            e.kind()
        ))
    })?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connection_timeout))
        .set_response_timeout(Some(options.response_timeout))
        // Fail fast: the endpoints answer 503 and the client retries; the
        // manager goes on reconnecting in the background.
        .set_number_of_retries(1)
        .set_max_delay(StdDuration::from_millis(500));
    ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| match backend_error(e) {
            BackendError::Unavailable(why) => {
                BackendError::Unavailable(format!("redis at {}: {why}", redacted_url(url)))
            }
            other => other,
        })
}

fn backend_error(e: redis::RedisError) -> BackendError {
    if e.is_timeout() {
        BackendError::Timeout
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        BackendError::Unavailable(e.to_string())
    } else {
        BackendError::other(e)
    }
}

/// The scripts, hashed once.
struct Scripts {
    insert: Script,
    compare_and_set: Script,
    by_user_code: Script,
    purge: Script,
}

/// A [`Store`] on Redis, shared by every instance that uses the same server
/// and prefix. See the [module documentation](self) for keys, TTLs and costs.
///
/// Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects with default [`RedisOptions`]; keys start with `prefix`
    /// (e.g. `"device-grant"`). Fails if the server cannot be reached now.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, BackendError> {
        Self::connect_with(url, prefix, RedisOptions::default()).await
    }

    /// Connects with `options`; keys start with `prefix`.
    pub async fn connect_with(
        url: &str,
        prefix: impl Into<String>,
        options: RedisOptions,
    ) -> Result<Self, BackendError> {
        Ok(Self::new(connect(url, options).await?, prefix))
    }

    /// A store on a connection the host made (its own options, TLS…).
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            scripts: std::sync::Arc::new(Scripts {
                insert: Script::new(INSERT),
                compare_and_set: Script::new(COMPARE_AND_SET),
                by_user_code: Script::new(BY_USER_CODE),
                purge: Script::new(PURGE),
            }),
        }
    }

    /// An attempt limiter on the same connection and prefix.
    pub fn limiter(&self) -> RedisLimiter {
        RedisLimiter::new(self.conn.clone(), self.prefix.clone())
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn record_prefix(&self) -> String {
        format!("{}:dc:", self.prefix)
    }

    fn record_key(&self, hash: &DeviceCodeHash) -> String {
        format!("{}:dc:{}", self.prefix, hex(hash.as_bytes()))
    }

    fn user_code_key(&self, hash: &UserCodeHash) -> String {
        format!("{}:uc:{}", self.prefix, hex(hash.as_bytes()))
    }

    fn purge_key(&self) -> String {
        format!("{}:purge", self.prefix)
    }
}

#[async_trait::async_trait]
impl Store for RedisStore {
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        let device = hex(record.device_code_hash.as_bytes());
        let stored: i64 = self
            .scripts
            .insert
            .key(self.user_code_key(&record.user_code_hash))
            .key(self.record_key(&record.device_code_hash))
            .key(self.purge_key())
            .arg(encode(record)?)
            .arg(&device)
            .arg(micros(record.request.expires_at))
            .arg(millis_ceil(record.request.expires_at))
            .arg(millis_ceil(record.purge_at))
            .arg(micros(now))
            .arg(self.record_prefix())
            .arg(micros(record.purge_at))
            .arg(PURGE_ON_INSERT)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend_error)?;
        match stored {
            1 => Ok(Inserted::Stored),
            0 => Ok(Inserted::UserCodeTaken),
            _ => Err(BackendError::other(DUPLICATE_DEVICE_CODE)),
        }
    }

    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let json: Option<String> = self
            .conn
            .clone()
            .hget(self.record_key(hash), "r")
            .await
            .map_err(backend_error)?;
        json.as_deref().map(decode).transpose()
    }

    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let json: Option<String> = self
            .scripts
            .by_user_code
            .key(self.user_code_key(hash))
            .arg(micros(now))
            .arg(self.record_prefix())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend_error)?;
        let Some(record) = json.as_deref().map(decode).transpose()? else {
            return Ok(None);
        };
        // The script trusts the index entry; the record itself has the last word.
        Ok((record.user_code_hash == *hash && record.is_live(now)).then_some(record))
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        if Some(next.version) != expected_version.checked_add(1) {
            return Ok(false);
        }
        let done: i64 = self
            .scripts
            .compare_and_set
            .key(self.record_key(&next.device_code_hash))
            .key(self.user_code_key(&next.user_code_hash))
            .arg(expected_version)
            .arg(next.version)
            .arg(encode(next)?)
            .arg(if next.status.is_pending() { "0" } else { "1" })
            .arg(hex(next.device_code_hash.as_bytes()))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend_error)?;
        Ok(done == 1)
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        let mut deleted = 0u64;
        loop {
            // Batches, so that a large purge never blocks Redis for long.
            let (n, seen): (u64, u32) = self
                .scripts
                .purge
                .key(self.purge_key())
                .arg(micros(now))
                .arg(self.record_prefix())
                .arg(PURGE_BATCH)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(backend_error)?;
            deleted += n;
            if seen < PURGE_BATCH {
                return Ok(deleted);
            }
        }
    }
}

/// An [`AttemptLimiter`] on Redis: one counter per key and window, checked and
/// spent by one script, so concurrent guesses on any number of instances
/// cannot overspend. Counters expire a window after their window ends.
#[derive(Clone)]
pub struct RedisLimiter {
    conn: ConnectionManager,
    prefix: String,
    acquire: std::sync::Arc<(Script, Script)>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Connects with default [`RedisOptions`]; keys start with `prefix`.
    pub async fn connect(url: &str, prefix: impl Into<String>) -> Result<Self, BackendError> {
        Ok(Self::new(
            connect(url, RedisOptions::default()).await?,
            prefix,
        ))
    }

    /// A limiter on a connection the host made.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            acquire: std::sync::Arc::new((Script::new(ACQUIRE), Script::new(REFUND))),
        }
    }

    fn counter_key(&self, key: &LimiterKey, budget: &Budget, now: OffsetDateTime) -> String {
        format!(
            "{}:attempts:{}:{}",
            self.prefix,
            hex(&key.counter_id(budget)),
            budget.window_start(now).unix_timestamp()
        )
    }
}

#[async_trait::async_trait]
impl AttemptLimiter for RedisLimiter {
    async fn acquire(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<Admission, BackendError> {
        // Kept one window past its end, so that a refund arriving late still
        // finds it, and clocks a little apart agree on it.
        let expire_at = budget.window_start(now) + budget.window + budget.window;
        let admitted: i64 = self
            .acquire
            .0
            .key(self.counter_key(key, budget, now))
            .arg(budget.attempts)
            .arg(millis_ceil(expire_at))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend_error)?;
        Ok(Admission::spent(admitted == 1, budget, now))
    }

    async fn refund(
        &self,
        key: &LimiterKey,
        budget: &Budget,
        now: OffsetDateTime,
    ) -> Result<(), BackendError> {
        let _: i64 = self
            .acquire
            .1
            .key(self.counter_key(key, budget, now))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend_error)?;
        Ok(())
    }

    /// Counters carry a TTL (their window's end plus one window): Redis
    /// deletes them itself, so there is nothing to purge.
    async fn purge_expired(&self, _now: OffsetDateTime) -> Result<u64, BackendError> {
        Ok(0)
    }
}

/// What an insert of a device-code hash that is already stored fails with.
const DUPLICATE_DEVICE_CODE: &str = "a record with this device-code hash is already stored";

/// Microseconds since the epoch: exact in a Lua number (a double).
fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

/// Milliseconds since the epoch, rounded up, for TTLs: a key never expires
/// before the instant it stands for.
fn millis_ceil(t: OffsetDateTime) -> i64 {
    let nanos = t.unix_timestamp_nanos();
    (nanos.div_euclid(1_000_000) + i128::from(nanos.rem_euclid(1_000_000) != 0)) as i64
}

/// Lower-case hex, for key names.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn ttl_millis_round_up() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_500_000_001).unwrap();
        assert_eq!(millis_ceil(t), 1501);
        let exact = OffsetDateTime::from_unix_timestamp(2).unwrap();
        assert_eq!(millis_ceil(exact), 2000);
    }
}
