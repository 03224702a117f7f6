//! A [`Store`] and an [`AttemptLimiter`] on Redis, for several instances of one
//! authorization server built on [`device_grant`]: on one Redis server
//! (`redis://…`) or on a Redis Cluster (`redis+cluster://…`), with one key
//! layout and one set of guarantees for both.
//!
//! # Keys
//!
//! Every key starts with the prefix the host chooses (`P` below); hashes are
//! lower-case hex. Nothing secret is in a key or a value: device codes appear
//! only as SHA-256, user codes only as HMAC-SHA-256, limiter keys only as SHA-256.
//!
//! | key | type | holds | expires (TTL) |
//! | --- | --- | --- | --- |
//! | `P:dc:<device-code hash>` | hash | `v`: the version, `r`: the record's JSON, `p`: `purge_at` (µs); while pending, the pace fields `c` (client id), `k` (PKCE challenge), `x` (`expires_at`, µs), `i` (interval, s), `l` (last poll, µs), `j` (bound DPoP key) | at `purge_at` |
//! | `P:uc:<user-code hash>` | string | `<device-code hash>:<expires_at, µs>`: the user-code index entry | at `expires_at` |
//! | `P:attempts:<key hash>:<window start>` | string | attempts spent in the window | a window after the window ends |
//!
//! # Atomicity and cost
//!
//! Each step below is one command or one Lua script on **one key**, declared
//! in `KEYS`, so it runs atomically on a single server and on a cluster
//! alike (a record and its user-code entry hash to different slots). The
//! record is authoritative; the user-code entry only points at it, and every
//! reader checks the record.
//!
//! - **Insert**: (1) one script writes the record if its device-code hash is
//!   new (else nothing, and the insert fails); (2) one script claims the
//!   user-code entry unless a live entry holds it. If one does, the holder's
//!   record is read: when it is no longer pending, expired or gone, the entry
//!   is stale and is taken over by a compare-and-swap on the entry (so of
//!   racing inserts exactly one wins); when it is live, the new record is
//!   deleted again and the insert answers [`Inserted::UserCodeTaken`]. A new
//!   record is invisible between (1) and (2): nobody knows its device code
//!   until the insert returns.
//! - **Compare-and-set**: one script compares the version and writes the
//!   record. When the record leaves `Pending`, a second command deletes its
//!   user-code entry; readers ignore the entry meanwhile (the record is no
//!   longer pending), and an insert takes it over, so a crash between the two
//!   leaves nothing wrong.
//! - **Reads**: by device code one command; by user code two (the entry,
//!   then the record, checked to be the entry's, pending and unexpired).
//! - **Poll** ([`Store::poll`]): one script reads the pace fields, judges the
//!   poll by the rules of [`PollingRules`](device_grant::PollingRules) and
//!   writes `l` or `i` with the next `v`, without rewriting the JSON: while
//!   `v` is ahead of the JSON's version, `v`, `i` and `l` have the last word,
//!   and every read applies them. A record out of `Pending`, or of another
//!   client or challenge, is returned as read, and the crate goes on with a
//!   compare-and-set. The conformance suite checks the script against the
//!   crate's state machine on random sequences.
//! - A pending poll is one round trip, a redeem two (the poll script, then
//!   the compare-and-set that takes the approval), an insert
//!   two; when the user code is held, one more read (the holder) and one
//!   more script (a takeover, or the undo). With [`DurableWrites`], a
//!   compare-and-set out of `Pending` and a read of a record out of
//!   `Pending` also wait for replicas.
//!
//! If the process dies between an insert's steps, what is left is harmless: a
//! record nobody knows the device code of (deleted at its `purge_at`), or an
//! entry pointing at a record that does not exist (taken over by the next
//! insert of that user code, or expired at `expires_at`). On a single server
//! the same steps run, so both deployments behave the same.
//!
//! # Expiry and purge
//!
//! Every key expires on its own (TTLs above), so memory follows live
//! requests and the host need not purge. [`Store::purge_expired`] deletes
//! the records whose `purge_at` has come by the caller's clock (before their
//! TTL, if Redis's clock is behind) and returns how many: there is no index
//! to keep, so it walks the record keys with `SCAN` (on every primary of a
//! cluster), 1,000 keys a step, and costs a pass over the whole key space of
//! the database, other applications' keys included. Schedule it rarely, or
//! not at all. TTLs follow Redis's clock, the rest the crate's: keep the two
//! in sync (NTP) as for any expiry.
//!
//! # Redis Cluster
//!
//! [`connect`] with a `redis+cluster://host:port[,host:port…]` URL uses
//! redis-rs's cluster client: it learns the slot map from the nodes named,
//! follows `MOVED`/`ASK` redirections and reconnects by itself. Redis 6.2 or
//! later (`SET … PXAT`); the tests run on 7.0. Valkey speaks the same
//! commands.
//!
//! # Durability
//!
//! Redis replication is asynchronous: after a failover, the promoted replica
//! may lack the last acknowledged writes, so a redeemed code can read as
//! approved again and a denial as pending. With
//! [`RedisStore::with_durable_writes`] (see [`DurableWrites`]) the writes that
//! take a record out of `Pending` wait with `WAIT` for replicas, and a write
//! they did not acknowledge in time is reported as a failure: a failover to
//! a replica that acknowledged keeps what the crate reported done. Without
//! it, exactly-once redemption and a denial that stays denied hold as far as
//! Redis keeps acknowledged writes (AOF with `appendfsync always`, no
//! failover). The guide `docs/instances.md` has the table for every store.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::time::Duration as StdDuration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{AsyncCommands as _, Cmd, Pipeline, RedisFuture, Script, Value};
use time::OffsetDateTime;

use device_grant::store::{
    Admission, AttemptLimiter, DeviceAuthorization, DeviceCodeHash, Inserted, LimiterKey,
    PollAttempt, Polled, Store, UserCodeHash, decode_record as decode, encode_record as encode,
    redacted_url, with_pace,
};
use device_grant::{BackendError, Budget, CodeChallenge, Interval, JwkThumbprint};

/// Keys one `SCAN` step of a purge asks a server for.
const SCAN_COUNT: u32 = 1000;
/// Takeovers of stale user-code entries one insert tries before it gives the
/// user code up (the caller then draws another).
const CLAIM_ROUNDS: usize = 4;

// KEYS: record. ARGV: record JSON, purge ms, purge µs, then the pace
// fields (client, challenge, expires µs, interval, last poll µs, DPoP key).
// Returns 1 (stored) or 0 (device code already stored; nothing changed).
const INSERT_RECORD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', '0', 'r', ARGV[1], 'p', ARGV[3],
  'c', ARGV[4], 'k', ARGV[5], 'x', ARGV[6], 'i', ARGV[7], 'l', ARGV[8], 'j', ARGV[9])
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
return 1
";

// KEYS: user-code entry.
// ARGV: new value, expires ms, now µs, the stale value this claim may replace ('' for none).
// Returns nil when claimed, else the value of the live entry that holds it.
const CLAIM_USER_CODE: &str = r"
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[4] then
  local sep = string.find(held, ':', 1, true)
  if sep and tonumber(string.sub(held, sep + 1)) > tonumber(ARGV[3]) then return held end
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
return false
";

// KEYS: user-code entry. ARGV: device hex. Deletes the entry if it points at that record.
const RELEASE_USER_CODE: &str = r"
local held = redis.call('GET', KEYS[1])
if held and string.sub(held, 1, string.len(ARGV[1])) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

// KEYS: record. ARGV: expected version, next version, next JSON, then the
// pace fields when the next record is pending (none when it is not).
const COMPARE_AND_SET: &str = r"
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'r', ARGV[3])
if #ARGV > 3 then
  redis.call('HSET', KEYS[1], 'c', ARGV[4], 'k', ARGV[5], 'x', ARGV[6], 'i', ARGV[7], 'l', ARGV[8],
    'j', ARGV[9])
else
  redis.call('HDEL', KEYS[1], 'c', 'k', 'x', 'i', 'l', 'j')
end
return 1
";

// KEYS: record. ARGV: client id, challenge ('' for none), now µs, leeway µs,
// max interval s, the proof's DPoP key ('' for none; an unbound record, whose
// `j` is '', takes any). The pace rules of `PollingRules::pace`, on the pace fields
// (present only while the record is pending; fields that do not parse leave
// the poll to the crate, which reads the record and reports it corrupt):
// returns 1 (on time: last poll written), {2, r, v, i, l} (too early: the
// interval grown, unless at the cap) or {0, r, v, i, l} (not judged).
const POLL: &str = r"
local f = redis.call('HMGET', KEYS[1], 'x', 'c', 'k', 'i', 'l', 'v', 'j')
local now = tonumber(ARGV[3])
local interval = tonumber(f[4])
if interval and tonumber(f[6]) and f[5] and (f[5] == '' or tonumber(f[5]))
  and f[2] == ARGV[1] and f[3] == ARGV[2] and (f[7] == '' or f[7] == ARGV[6])
  and now < (tonumber(f[1]) or 0) then
  local version = string.format('%d', tonumber(f[6]) + 1)
  local leeway = math.min(tonumber(ARGV[4]), interval * 500000)
  if f[5] ~= '' and now - tonumber(f[5]) < interval * 1000000 - leeway then
    local slowed = math.min(interval + 5, math.max(tonumber(ARGV[5]), interval))
    if slowed ~= interval then
      redis.call('HSET', KEYS[1], 'i', string.format('%d', slowed), 'v', version)
    end
    local r = redis.call('HMGET', KEYS[1], 'r', 'v', 'i', 'l')
    return {2, r[1], r[2], r[3], r[4]}
  end
  redis.call('HSET', KEYS[1], 'l', ARGV[3], 'v', version)
  return 1
end
local r = redis.call('HMGET', KEYS[1], 'r', 'v', 'i', 'l')
return {0, r[1], r[2], r[3], r[4]}
";

// KEYS: record. ARGV: now µs. Deletes the record if its purge_at has come.
const PURGE_RECORD: &str = r"
local due = redis.call('HGET', KEYS[1], 'p')
if due and tonumber(due) <= tonumber(ARGV[1]) then return redis.call('DEL', KEYS[1]) end
return 0
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

/// How [`connect`], [`RedisStore::connect_with`] and
/// [`RedisLimiter::connect_with`] connect.
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

/// Writes that must survive a failover: every compare-and-set that takes a
/// record out of `Pending` (approve, deny, the redeem's lease, redeemed) is
/// followed by `WAIT replicas timeout` on the same connection, in one
/// pipeline, and reads of records out of `Pending` by device code wait the
/// same way for the connection's earlier writes.
///
/// - **Acknowledged**: the write, and every earlier write to that primary,
///   is on `replicas` replicas (in their memory, not necessarily on their
///   disks). A failover to one of them keeps it: a redeemed code stays
///   redeemed, a denial stays denied.
/// - **Not acknowledged in time**: the compare-and-set has happened on the
///   primary but fails with [`BackendError::Unavailable`]. The crate then
///   reads the record back to settle what happened; those reads wait too and
///   fail the same way while the replicas lag, so the operation is reported
///   as failed (`503`; for a redeem, no tokens are handed out). A retry finds
///   the record as the primary holds it, out of `Pending`: a retried redeem
///   finds the lease taken and waits for it, an approval or a denial does
///   not happen twice. If the primary fails over before the replicas caught
///   up, the write is lost, as if never made.
/// - **Limits**: `WAIT` is not consensus. With more replicas than
///   `replicas`, a failover may promote one that did not acknowledge: set
///   `replicas` to their number to rule that out (and fail while any is
///   down). A read-back waits for what this connection wrote: if the
///   connection was re-established between the write and the read-back, it
///   cannot tell, and the crate may take the write as done. The crate hands
///   out tokens whatever the final `Redeemed` write answers: if a failover
///   loses that one, the promoted replica holds the lease, and once the
///   lease ends the approval can be redeemed again, which the token issuer's
///   contract (same grant id, same tokens or the earlier ones revoked)
///   covers.
/// - **Cost**: `WAIT` holds the connection, which every task of the
///   instance shares: while replicas lag, other requests queue behind it, up
///   to `timeout`. Keep `timeout` below
///   [`response_timeout`](RedisOptions::response_timeout). Inserts and
///   pending polls do not wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurableWrites {
    /// How many replicas must acknowledge a write (at least 1).
    pub replicas: u32,
    /// How long to wait for them.
    pub timeout: StdDuration,
}

/// A connection to one Redis server or to a Redis Cluster, shared by every
/// clone (and every task): see [`connect`].
#[derive(Clone)]
pub struct RedisConnection(Conn);

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Conn::Single(_) => "RedisConnection::Single",
            Conn::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(conn: ConnectionManager) -> Self {
        Self(Conn::Single(conn))
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(conn: ClusterConnection) -> Self {
        Self(Conn::Cluster(conn))
    }
}

impl RedisConnection {
    /// The nodes whose keys make up the data set: `None` for the one server,
    /// or the primaries of a cluster (from `CLUSTER SLOTS`).
    async fn primaries(&self) -> Result<Vec<Option<(String, u16)>>, BackendError> {
        let Conn::Cluster(conn) = &self.0 else {
            return Ok(vec![None]);
        };
        let ranges: Vec<Vec<Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut conn.clone())
            .await
            .map_err(backend_error)?;
        let mut primaries = Vec::new();
        for range in ranges {
            // [start, end, [host, port, id, …] of the primary, replicas…]
            let Some(Value::Array(primary)) = range.get(2) else {
                return Err(BackendError::other(
                    "CLUSTER SLOTS: a range without a primary",
                ));
            };
            let (Some(host), Some(Value::Int(port))) = (primary.first(), primary.get(1)) else {
                return Err(BackendError::other(
                    "CLUSTER SLOTS: a primary without an address",
                ));
            };
            let host: String = redis::FromRedisValue::from_redis_value(host.clone())
                .map_err(|e| BackendError::other(e.to_string()))?;
            let port = u16::try_from(*port)
                .map_err(|_| BackendError::other("CLUSTER SLOTS: a port out of range"))?;
            if !primaries.contains(&Some((host.clone(), port))) {
                primaries.push(Some((host, port)));
            }
        }
        Ok(primaries)
    }

    /// One `SCAN` step on `node` (see [`Self::primaries`]): the next cursor and
    /// the record keys matching `pattern`.
    async fn scan(
        &self,
        node: Option<&(String, u16)>,
        cursor: u64,
        pattern: &str,
    ) -> Result<(u64, Vec<String>), BackendError> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .arg("TYPE")
            .arg("hash");
        match (&self.0, node) {
            (Conn::Cluster(conn), Some((host, port))) => {
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                let value = conn
                    .clone()
                    .route_command(cmd, routing)
                    .await
                    .map_err(backend_error)?;
                redis::FromRedisValue::from_redis_value(value)
                    .map_err(|e| BackendError::other(e.to_string()))
            }
            _ => cmd
                .query_async(&mut self.clone())
                .await
                .map_err(backend_error),
        }
    }
}

impl redis::aio::ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// The scheme of a Redis Cluster URL; `rediss+cluster` takes TLS.
const CLUSTER_SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis://"),
    ("rediss+cluster://", "rediss://"),
];

/// Connects to Redis.
///
/// - `redis://[user:password@]host[:port][/db]` (or `rediss://` when the
///   `redis` crate is built with TLS): one server, over one multiplexed
///   connection that reconnects by itself when it breaks (every request of
///   every task shares it, pipelined, which serves Redis better than a pool).
/// - `redis+cluster://[user:password@]host:port[,host:port…][/]` (or
///   `rediss+cluster://`): a Redis Cluster, found from any of the nodes named,
///   with one multiplexed connection per node.
///
/// Errors never show the password.
pub async fn connect(url: &str, options: RedisOptions) -> Result<RedisConnection, BackendError> {
    if let Some((rest, scheme)) = CLUSTER_SCHEMES
        .iter()
        .find_map(|(cluster, node)| url.strip_prefix(cluster).map(|rest| (rest, *node)))
    {
        return connect_cluster(url, rest, scheme, options).await;
    }
    let client = redis::Client::open(url).map_err(|e| bad_url(url, &e))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(options.connection_timeout))
        .set_response_timeout(Some(options.response_timeout))
        // Fail fast: the endpoints answer 503 and the client retries; the
        // manager goes on reconnecting in the background.
        .set_number_of_retries(1)
        .set_max_delay(StdDuration::from_millis(500));
    let conn = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| unreachable_at(url, e))?;
    Ok(conn.into())
}

/// `rest` is the URL after its scheme: `[userinfo@]host:port[,host:port…][/]`.
async fn connect_cluster(
    url: &str,
    rest: &str,
    node_scheme: &str,
    options: RedisOptions,
) -> Result<RedisConnection, BackendError> {
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, rest),
    };
    let hosts = match hosts.split_once('/') {
        Some((hosts, "")) => hosts,
        Some(_) => {
            return Err(BackendError::Unavailable(format!(
                "bad redis cluster URL {}: a cluster has only database 0, name no database",
                redact_cluster(url)
            )));
        }
        None => hosts,
    };
    let nodes: Vec<String> = hosts
        .split(',')
        .map(|host| match userinfo {
            Some(userinfo) => format!("{node_scheme}{userinfo}@{host}"),
            None => format!("{node_scheme}{host}"),
        })
        .collect();
    let client = ClusterClient::builder(nodes.iter().map(String::as_str))
        .connection_timeout(options.connection_timeout)
        .response_timeout(options.response_timeout)
        // As for one server: fail fast, reconnect in the background.
        .retries(1)
        .max_retry_wait(500)
        .build()
        .map_err(|e| bad_url(&redact_cluster(url), &e))?;
    let conn = client
        .get_async_connection()
        .await
        .map_err(|e| unreachable_at(&redact_cluster(url), e))?;
    Ok(conn.into())
}

/// A cluster URL without its password (the `url` crate does not parse a
/// list of hosts).
fn redact_cluster(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, hosts)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                let redacted = if userinfo.contains(':') {
                    format!("{user}:***")
                } else {
                    user.to_owned()
                };
                format!("{scheme}://{redacted}@{hosts}")
            }
            None => url.to_owned(),
        },
        None => "<unparsable url>".to_owned(),
    }
}

fn bad_url(url: &str, e: &redis::RedisError) -> BackendError {
    let shown = if url.contains("+cluster://") {
        url.to_owned()
    } else {
        redacted_url(url)
    };
    BackendError::Unavailable(format!("bad redis URL {shown}: {:?}", e.kind()))
}

fn unreachable_at(url: &str, e: redis::RedisError) -> BackendError {
    let shown = if url.contains("+cluster://") {
        url.to_owned()
    } else {
        redacted_url(url)
    };
    match backend_error(e) {
        BackendError::Unavailable(why) => {
            BackendError::Unavailable(format!("redis at {shown}: {why}"))
        }
        other => other,
    }
}

fn backend_error(e: redis::RedisError) -> BackendError {
    if e.is_timeout() {
        BackendError::Timeout
    } else if e.is_io_error()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || e.is_cluster_error()
    {
        BackendError::Unavailable(e.to_string())
    } else {
        BackendError::other(e)
    }
}

/// The scripts, hashed once.
struct Scripts {
    insert_record: Script,
    claim_user_code: Script,
    release_user_code: Script,
    compare_and_set: Script,
    poll: Script,
    purge_record: Script,
}

/// A [`Store`] on Redis, shared by every instance that uses the same server
/// (or cluster) and prefix. See the [module documentation](self) for keys,
/// TTLs, atomicity and costs.
///
/// Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConnection,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
    durable: Option<DurableWrites>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("conn", &self.conn)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects with default [`RedisOptions`] to the server or cluster of
    /// `url` (see [`connect`]); keys start with `prefix` (e.g.
    /// `"device-grant"`). Fails if it cannot be reached now.
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

    /// The same store, its decisive writes waiting for replicas: see
    /// [`DurableWrites`].
    pub fn with_durable_writes(mut self, durable: DurableWrites) -> Self {
        self.durable = Some(durable);
        self
    }

    /// A store on a connection the host made (its own options, TLS…): a
    /// [`RedisConnection`], a [`ConnectionManager`] or a [`ClusterConnection`].
    pub fn new(conn: impl Into<RedisConnection>, prefix: impl Into<String>) -> Self {
        Self {
            conn: conn.into(),
            prefix: prefix.into(),
            scripts: std::sync::Arc::new(Scripts {
                insert_record: Script::new(INSERT_RECORD),
                claim_user_code: Script::new(CLAIM_USER_CODE),
                release_user_code: Script::new(RELEASE_USER_CODE),
                compare_and_set: Script::new(COMPARE_AND_SET),
                poll: Script::new(POLL),
                purge_record: Script::new(PURGE_RECORD),
            }),
            durable: None,
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

    fn record_key_hex(&self, device_hex: &str) -> String {
        format!("{}:dc:{device_hex}", self.prefix)
    }

    fn record_key(&self, hash: &DeviceCodeHash) -> String {
        self.record_key_hex(&hex(hash.as_bytes()))
    }

    fn user_code_key(&self, hash: &UserCodeHash) -> String {
        format!("{}:uc:{}", self.prefix, hex(hash.as_bytes()))
    }

    /// Waits for the replicas to acknowledge this connection's writes so far,
    /// on the primary that holds `key`.
    async fn wait_for_replicas(
        &self,
        key: &str,
        durable: DurableWrites,
    ) -> Result<(), BackendError> {
        // PTTL only routes the pipeline to `key`'s primary on a cluster.
        let (_, acked): (i64, i64) = redis::pipe()
            .cmd("PTTL")
            .arg(key)
            .cmd("WAIT")
            .arg(durable.replicas)
            .arg(wait_millis(durable))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend_error)?;
        replicas_acknowledged(acked, durable)
    }

    /// The fields of the record at `key` that [`record_of`] reads.
    async fn fields(&self, key: &str) -> Result<Fields, BackendError> {
        redis::cmd("HMGET")
            .arg(key)
            .arg(&["r", "v", "i", "l"])
            .query_async(&mut self.conn.clone())
            .await
            .map_err(backend_error)
    }

    /// A record read by device code, once the replicas hold it when it is out
    /// of `Pending` and writes are durable (see [`DurableWrites`]).
    async fn settled(
        &self,
        key: &str,
        record: Option<DeviceAuthorization>,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        if let (Some(durable), Some(found)) = (self.durable, &record) {
            if !found.status.is_pending() {
                self.wait_for_replicas(key, durable).await?;
            }
        }
        Ok(record)
    }

    async fn record_by_hex(
        &self,
        device_hex: &str,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        record_of(self.fields(&self.record_key_hex(device_hex)).await?)
    }

    /// Deletes a record this insert wrote and the entry it may have claimed,
    /// best effort: what a failure leaves behind is harmless (see the module
    /// documentation).
    async fn undo_insert(&self, device_hex: &str, user_code_key: &str) {
        let mut conn = self.conn.clone();
        let _: Result<i64, _> = self
            .scripts
            .release_user_code
            .key(user_code_key)
            .arg(device_hex)
            .invoke_async(&mut conn)
            .await;
        let _: Result<i64, _> = conn.del(self.record_key_hex(device_hex)).await;
    }

    /// Claims the user-code entry for a record already written: `Ok(true)`
    /// when this record holds it, `Ok(false)` when a live record does.
    async fn claim_user_code(
        &self,
        record: &DeviceAuthorization,
        device_hex: &str,
        user_code_key: &str,
        now: OffsetDateTime,
    ) -> Result<bool, BackendError> {
        let value = format!("{device_hex}:{}", micros(record.request.expires_at));
        let mut stale = String::new();
        for _ in 0..CLAIM_ROUNDS {
            let held: Option<String> = self
                .scripts
                .claim_user_code
                .key(user_code_key)
                .arg(&value)
                .arg(millis_ceil(record.request.expires_at))
                .arg(micros(now))
                .arg(&stale)
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(backend_error)?;
            let Some(held) = held else {
                return Ok(true);
            };
            let holder_hex = held.split(':').next().unwrap_or_default();
            let holder = self.record_by_hex(holder_hex).await?;
            // A holder that is gone, no longer pending or expired is a stale
            // entry (its compare-and-set's cleanup has not run, or never will):
            // take it over, unless it changed meanwhile.
            let live = holder.is_some_and(|h| {
                h.user_code_hash == record.user_code_hash
                    && h.status.is_pending()
                    && now < h.request.expires_at
            });
            if live {
                return Ok(false);
            }
            stale = held;
        }
        Ok(false)
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
            .insert_record
            .key(self.record_key_hex(&device))
            .arg(encode(record)?)
            .arg(millis_ceil(record.purge_at))
            .arg(micros(record.purge_at))
            .arg(pace_fields(record))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend_error)?;
        if stored != 1 {
            return Err(BackendError::other(DUPLICATE_DEVICE_CODE));
        }
        let user_code_key = self.user_code_key(&record.user_code_hash);
        match self
            .claim_user_code(record, &device, &user_code_key, now)
            .await
        {
            Ok(true) => Ok(Inserted::Stored),
            Ok(false) => {
                self.undo_insert(&device, &user_code_key).await;
                Ok(Inserted::UserCodeTaken)
            }
            Err(e) => {
                self.undo_insert(&device, &user_code_key).await;
                Err(e)
            }
        }
    }

    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let key = self.record_key(hash);
        let fields = self.fields(&key).await?;
        self.settled(&key, record_of(fields)?).await
    }

    async fn poll(
        &self,
        hash: &DeviceCodeHash,
        attempt: &PollAttempt<'_>,
    ) -> Result<Polled, BackendError> {
        let key = self.record_key(hash);
        let answer: Value = self
            .scripts
            .poll
            .key(&key)
            .arg(attempt.client_id.as_str())
            .arg(
                attempt
                    .challenge
                    .map(CodeChallenge::to_base64url)
                    .unwrap_or_default(),
            )
            .arg(micros(attempt.now))
            .arg(micros_of(attempt.rules.leeway))
            .arg(attempt.rules.max_interval.secs())
            .arg(
                attempt
                    .dpop_jkt
                    .map(JwkThumbprint::to_base64url)
                    .unwrap_or_default(),
            )
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(backend_error)?;
        let (judged, fields): (i64, Fields) = match answer {
            Value::Int(1) => return Ok(Polled::Pending),
            Value::Array(mut items) if items.len() == 5 => {
                let judged = redis::from_redis_value(items.remove(0));
                let fields = redis::from_redis_value(Value::Array(items));
                match (judged, fields) {
                    (Ok(judged), Ok(fields)) => (judged, fields),
                    _ => return Err(BackendError::other("poll script: unexpected answer")),
                }
            }
            _ => return Err(BackendError::other("poll script: unexpected answer")),
        };
        let record = record_of(fields)?;
        match (judged, record) {
            (2, Some(record)) => Ok(Polled::SlowDown(record.interval, Box::new(record))),
            (_, record) => Ok(Polled::Undecided(self.settled(&key, record).await?)),
        }
    }

    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let held: Option<String> = self
            .conn
            .clone()
            .get(self.user_code_key(hash))
            .await
            .map_err(backend_error)?;
        let Some((device_hex, expires)) = held.as_deref().and_then(|h| h.split_once(':')) else {
            return Ok(None);
        };
        if expires.parse::<i64>().map_or(true, |e| e <= micros(now)) {
            return Ok(None);
        }
        let Some(record) = self.record_by_hex(device_hex).await? else {
            return Ok(None);
        };
        // The entry only points: the record has the last word.
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
        let key = self.record_key(&next.device_code_hash);
        let json = encode(next)?;
        let durable = self.durable.filter(|_| !next.status.is_pending());
        let (done, acked): (i64, Option<i64>) = match durable {
            None => {
                let done = self
                    .scripts
                    .compare_and_set
                    .key(&key)
                    .arg(expected_version)
                    .arg(next.version)
                    .arg(&json)
                    .arg(pace_fields(next))
                    .invoke_async(&mut self.conn.clone())
                    .await
                    .map_err(backend_error)?;
                (done, None)
            }
            Some(durable) => {
                // One pipeline: WAIT must follow the write on the connection
                // that made it (a reconnection between would wait for nothing).
                let (done, acked): (i64, i64) = redis::pipe()
                    .cmd("EVAL")
                    .arg(COMPARE_AND_SET)
                    .arg(1)
                    .arg(&key)
                    .arg(expected_version)
                    .arg(next.version)
                    .arg(&json)
                    .arg(pace_fields(next))
                    .cmd("WAIT")
                    .arg(durable.replicas)
                    .arg(wait_millis(durable))
                    .query_async(&mut self.conn.clone())
                    .await
                    .map_err(backend_error)?;
                (done, Some(acked))
            }
        };
        if done != 1 {
            return Ok(false);
        }
        if !next.status.is_pending() {
            // The write has happened: a failure here must not turn it into an
            // error. A stale entry is ignored by readers and taken over by
            // inserts.
            let _: Result<i64, _> = self
                .scripts
                .release_user_code
                .key(self.user_code_key(&next.user_code_hash))
                .arg(hex(next.device_code_hash.as_bytes()))
                .invoke_async(&mut self.conn.clone())
                .await;
        }
        match (durable, acked) {
            (Some(durable), Some(acked)) => replicas_acknowledged(acked, durable).map(|()| true),
            _ => Ok(true),
        }
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        let pattern = format!("{}:dc:*", escape_glob(&self.prefix));
        let mut deleted = 0u64;
        for node in self.conn.primaries().await? {
            let mut cursor = 0u64;
            loop {
                // Steps of SCAN, so that a large purge never blocks Redis for long.
                let (next, keys) = self.conn.scan(node.as_ref(), cursor, &pattern).await?;
                for key in keys {
                    let n: u64 = self
                        .scripts
                        .purge_record
                        .key(&key)
                        .arg(micros(now))
                        .invoke_async(&mut self.conn.clone())
                        .await
                        .map_err(backend_error)?;
                    deleted += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(deleted)
    }
}

/// An [`AttemptLimiter`] on Redis: one counter per key and window, checked and
/// spent by one script on that one key, so concurrent guesses on any number
/// of instances cannot overspend, on one server or a cluster. Counters expire
/// a window after their window ends.
#[derive(Clone)]
pub struct RedisLimiter {
    conn: RedisConnection,
    prefix: String,
    acquire: std::sync::Arc<(Script, Script)>,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter")
            .field("prefix", &self.prefix)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl RedisLimiter {
    /// Connects with default [`RedisOptions`] to the server or cluster of
    /// `url` (see [`connect`]); keys start with `prefix`.
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

    /// A limiter on a connection the host made.
    pub fn new(conn: impl Into<RedisConnection>, prefix: impl Into<String>) -> Self {
        Self {
            conn: conn.into(),
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

/// `text` with `SCAN MATCH`'s special characters escaped.
fn escape_glob(text: &str) -> String {
    text.chars().fold(String::new(), |mut out, c| {
        if matches!(c, '*' | '?' | '[' | ']' | '\\' | '^' | '-') {
            out.push('\\');
        }
        out.push(c);
        out
    })
}

/// `WAIT`'s timeout in milliseconds; 0 would wait forever.
fn wait_millis(durable: DurableWrites) -> u64 {
    u64::try_from(durable.timeout.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn replicas_acknowledged(acked: i64, durable: DurableWrites) -> Result<(), BackendError> {
    if acked >= i64::from(durable.replicas) {
        Ok(())
    } else {
        Err(BackendError::Unavailable(format!(
            "a write reached {acked} of the {} replicas required within {} ms",
            durable.replicas,
            wait_millis(durable)
        )))
    }
}

/// What an insert of a device-code hash that is already stored fails with.
const DUPLICATE_DEVICE_CODE: &str = "a record with this device-code hash is already stored";

/// Microseconds since the epoch: exact in a Lua number (a double).
/// The fields `r`, `v`, `i` and `l` of a record's hash.
type Fields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// A record from its hash's fields: the JSON, with the pace fields a poll
/// judged by the poll script wrote (see [`with_pace`]).
fn record_of(
    (json, version, interval, last_poll): Fields,
) -> Result<Option<DeviceAuthorization>, BackendError> {
    let Some(json) = json else {
        return Ok(None);
    };
    let corrupt = |what: &str| BackendError::Corrupt(format!("stored record: bad {what} field"));
    let version = version
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| corrupt("version"))?;
    let record = decode(&json)?;
    if version == record.version {
        return Ok(Some(record));
    }
    let interval = interval
        .and_then(|i| i.parse().ok())
        .and_then(Interval::from_secs);
    let last_poll = match last_poll.as_deref() {
        None | Some("") => None,
        Some(l) => Some(
            l.parse::<i64>()
                .ok()
                .and_then(|us| {
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).ok()
                })
                .ok_or_else(|| corrupt("last poll"))?,
        ),
    };
    with_pace(record, version, interval, last_poll).map(Some)
}

/// The pace fields of a pending record, in the order the scripts take them
/// (client, challenge, expires µs, interval s, last poll µs, DPoP key); none for a
/// record out of `Pending`, whose polls the poll script leaves to the crate.
fn pace_fields(record: &DeviceAuthorization) -> Vec<String> {
    if !record.status.is_pending() {
        return Vec::new();
    }
    vec![
        record.request.client_id.as_str().to_owned(),
        record
            .request
            .code_challenge
            .as_ref()
            .map(CodeChallenge::to_base64url)
            .unwrap_or_default(),
        micros(record.request.expires_at).to_string(),
        record.interval.secs().to_string(),
        record
            .last_poll
            .map(|l| micros(l).to_string())
            .unwrap_or_default(),
        record
            .request
            .dpop_jkt
            .map(|j| j.to_base64url())
            .unwrap_or_default(),
    ]
}

/// A duration in whole microseconds (negative ones as zero).
fn micros_of(d: time::Duration) -> i64 {
    i64::try_from(d.whole_microseconds())
        .unwrap_or(i64::MAX)
        .max(0)
}

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

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn cluster_urls_lose_their_passwords() {
        assert_eq!(
            redact_cluster("redis+cluster://app:hunter2@a:7001,b:7002/"),
            "redis+cluster://app:***@a:7001,b:7002/"
        );
        assert_eq!(
            redact_cluster("redis+cluster://a:7001,b:7002"),
            "redis+cluster://a:7001,b:7002"
        );
    }

    #[tokio::test]
    async fn a_cluster_url_naming_a_database_is_refused_without_its_password() {
        let refused = connect(
            "redis+cluster://app:hunter2@127.0.0.1:1/3",
            RedisOptions::default(),
        )
        .await
        .expect_err("a cluster has database 0 only");
        let shown = refused.to_string();
        assert!(shown.contains("database 0"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
