//! Durable writes (`DurableWrites`) on a Redis primary with one replica
//! (`DEVICE_GRANT_REDIS_PAIR`, "primary URL,replica URL", started by
//! `scripts/setup/10-services.sh`):
//!
//! - a redeem, an approval and a denial acknowledged by the replica survive
//!   the replica's promotion (`REPLICAOF NO ONE`, a failover without the
//!   primary's help);
//! - with no replica to acknowledge, a decisive write fails with
//!   `BackendError::Unavailable`, the read that would settle it fails too
//!   (so the crate reports the operation as failed), and a retry of the same
//!   transition does not happen twice;
//! - through the grant: a redeem whose lease the replica never acknowledged
//!   (it is promoted just before) hands out no tokens, and the promoted
//!   replica, which still holds the approval, redeems it once.
//!
//! The stories run in one test: they take turns with the replica's role.

use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use device_grant::store::conformance::{base_time, pending_record};
use device_grant::store::{
    DeviceAuthorization, DeviceCodeHash, Inserted, LimiterKey, Status, Store, UserCodeHash,
};
use device_grant::{
    Approval, ApprovedGrant, AuthMethod, BackendError, Client, CodeEntry, Config,
    DEVICE_CODE_GRANT_TYPE, DeviceGrant, EndpointRequest, MemoryLimiter, RequestContext, ScopeSet,
    StaticClients, Subject, TokenIssuer, TokenResponse, UserCodeKey,
};
use device_grant_redis::{DurableWrites, RedisOptions, RedisStore};
use time::OffsetDateTime;

// Long enough for a replica's acknowledgement on a loaded machine, and below
// the connection's response timeout (`OPTIONS`), as the docs ask.
const DURABLE: DurableWrites = DurableWrites {
    replicas: 1,
    timeout: Duration::from_secs(2),
};

const OPTIONS: RedisOptions = RedisOptions {
    connection_timeout: Duration::from_secs(2),
    response_timeout: Duration::from_secs(5),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_writes_survive_a_failover_and_unacknowledged_ones_fail() {
    let Some(pair) = service_url("DEVICE_GRANT_REDIS_PAIR") else {
        return;
    };
    let (primary, replica) = pair
        .split_once(',')
        .expect("DEVICE_GRANT_REDIS_PAIR is `primary URL,replica URL`");
    let mut to_replica = admin(replica).await;
    follow(&mut to_replica, primary).await;

    let prefix = unique("dgdurable");
    let store = RedisStore::connect_with(primary, prefix.clone(), OPTIONS)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the primary: {e}"))
        .with_durable_writes(DURABLE);
    let base = base_time();

    // Acknowledged: a full redeem, and a denial.
    let redeemed = pending_record(base);
    store.insert(&redeemed, base).await.expect("insert");
    let approved = successor(&redeemed, approved_status(base));
    assert_eq!(shown(store.compare_and_set(0, &approved).await), Ok(true));
    let lease = successor(
        &approved,
        Status::Redeeming {
            approval: Arc::new(approval(base)),
            lease_until: base + time::Duration::seconds(30),
        },
    );
    assert_eq!(shown(store.compare_and_set(1, &lease).await), Ok(true));
    let done = successor(
        &lease,
        Status::Redeemed {
            approval: Arc::new(approval(base)),
            at: base,
        },
    );
    assert_eq!(shown(store.compare_and_set(2, &done).await), Ok(true));
    let denied_first = pending_record(base);
    store.insert(&denied_first, base).await.expect("insert");
    let denied = successor(&denied_first, Status::Denied { at: base });
    assert_eq!(shown(store.compare_and_set(0, &denied).await), Ok(true));

    // The replica takes over without the primary's help.
    promote(&mut to_replica).await;
    let promoted = RedisStore::connect(replica, prefix.clone())
        .await
        .unwrap_or_else(|e| panic!("cannot reach the promoted replica: {e}"));
    assert_eq!(
        shown(promoted.by_device_code(&redeemed.device_code_hash).await),
        Ok(Some(done.clone())),
        "an acknowledged durable redeem must still read as redeemed on the promoted replica"
    );
    assert_eq!(
        shown(promoted.by_device_code(&denied.device_code_hash).await),
        Ok(Some(denied.clone())),
        "an acknowledged durable denial must still read as denied on the promoted replica"
    );

    // The old primary has no replica now: nothing is acknowledged.
    let lonely = pending_record(base);
    store
        .insert(&lonely, base)
        .await
        .expect("inserts do not wait");
    let lonely_approved = successor(&lonely, approved_status(base));
    let refused = store.compare_and_set(0, &lonely_approved).await;
    assert!(
        matches!(refused, Err(BackendError::Unavailable(_))),
        "an approval no replica acknowledged must fail with Unavailable, got {refused:?}"
    );
    let settle = store.by_device_code(&lonely.device_code_hash).await;
    assert!(
        matches!(settle, Err(BackendError::Unavailable(_))),
        "reading back an unacknowledged approval must fail too, so that the crate cannot \
         take it as done; got {settle:?}"
    );
    assert_eq!(
        shown(store.compare_and_set(0, &lonely_approved).await),
        Ok(false),
        "a retried approval must not happen twice: the primary holds the first"
    );
    assert_eq!(
        shown(promoted.by_device_code(&lonely.device_code_hash).await),
        Ok(None),
        "the promoted replica never saw the unacknowledged write"
    );
    assert_eq!(
        shown(store.by_user_code(&lonely.user_code_hash, base).await),
        Ok(None),
        "an approved record is out of the user-code index, acknowledged or not"
    );

    // Back to a primary and its replica: the primary's writes are acknowledged
    // again, and what it holds reads without error.
    follow(&mut to_replica, primary).await;
    assert_eq!(
        shown(store.by_device_code(&lonely.device_code_hash).await),
        Ok(Some(lonely_approved)),
        "once the replica has caught up, the approval reads back"
    );

    an_unacknowledged_redeem_hands_out_no_tokens(primary, replica).await;
    follow(&mut to_replica, primary).await;
}

/// The device polls an approved request; just before the poll's lease is
/// written, the replica is promoted, so the lease is never acknowledged.
async fn an_unacknowledged_redeem_hands_out_no_tokens(primary: &str, replica: &str) {
    let prefix = unique("dgdurable");
    let store = Arc::new(PromoteBeforeLease {
        inner: RedisStore::connect_with(primary, prefix.clone(), OPTIONS)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the primary: {e}"))
            .with_durable_writes(DURABLE),
        replica: replica.to_owned(),
        armed: AtomicBool::new(false),
    });
    let issuer = Arc::new(Issuer::default());
    let grant = grant_on(store.clone(), issuer.clone());
    let codes = grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            RequestContext::default(),
        )
        .await
        .expect("device authorization");
    let found = grant
        .verify(
            codes.user_code.display(),
            &CodeEntry::from_key(LimiterKey::new("person")),
        )
        .await
        .expect("the user code is found");
    grant
        .approve(
            &found.ticket,
            device_grant::Approve::scopes(
                Subject::new("alice"),
                None,
                found.request.scopes.clone(),
            ),
        )
        .await
        .expect("an approval the replica acknowledged");

    store.armed.store(true, Ordering::SeqCst);
    let poll = format!(
        "grant_type={DEVICE_CODE_GRANT_TYPE}&client_id=tv-app&device_code={}",
        codes.device_code.secret()
    );
    let refused = grant.token(EndpointRequest::form(poll.as_bytes())).await;
    assert!(
        refused.is_err(),
        "a redeem whose lease no replica acknowledged must not hand out tokens"
    );
    assert_eq!(
        issuer.minted.load(Ordering::SeqCst),
        0,
        "no tokens may be minted for an unacknowledged lease"
    );

    // The promoted replica never saw the lease: the approval is there, and
    // redeems once.
    let promoted = RedisStore::connect(replica, prefix)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the promoted replica: {e}"));
    let after = grant_on(Arc::new(promoted), issuer.clone());
    after
        .token(EndpointRequest::form(poll.as_bytes()))
        .await
        .expect("the promoted replica's approval redeems");
    assert_eq!(issuer.minted.load(Ordering::SeqCst), 1);
}

fn grant_on(store: Arc<dyn Store>, issuer: Arc<Issuer>) -> DeviceGrant {
    let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
    tv.allowed_scopes = ScopeSet::parse("openid profile").expect("valid scopes");
    tv.default_scopes = ScopeSet::parse("profile").expect("valid scopes");
    let config = Config::builder(
        "https://as.example/device",
        UserCodeKey::new(&[42; 32]).expect("a key"),
    )
    .build()
    .expect("a config");
    DeviceGrant::builder(
        config,
        Arc::new(StaticClients::new().with_public(tv)),
        issuer,
    )
    .store(store)
    .limiter(Arc::new(MemoryLimiter::new()))
    .build()
}

#[derive(Default)]
struct Issuer {
    minted: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenIssuer for Issuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        self.minted.fetch_add(1, Ordering::SeqCst);
        Ok(TokenResponse::bearer(format!("at-{}", grant.id)))
    }
}

/// The Redis store, promoting the replica just before the next lease is
/// written once armed: the failover arrives between the poll's read and its
/// write.
struct PromoteBeforeLease {
    inner: RedisStore,
    replica: String,
    armed: AtomicBool,
}

#[async_trait::async_trait]
impl Store for PromoteBeforeLease {
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        self.inner.insert(record, now).await
    }

    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.inner.by_device_code(hash).await
    }

    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.inner.by_user_code(hash, now).await
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        if matches!(next.status, Status::Redeeming { .. })
            && self.armed.swap(false, Ordering::SeqCst)
        {
            promote(&mut admin(&self.replica).await).await;
        }
        self.inner.compare_and_set(expected_version, next).await
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.inner.purge_expired(now).await
    }
}

/// A result that compares, the error as its message.
fn shown<T>(result: Result<T, BackendError>) -> Result<T, String> {
    result.map_err(|e| e.to_string())
}

fn approval(base: time::OffsetDateTime) -> Approval {
    Approval {
        subject: Subject::new("alice"),
        scopes: ScopeSet::parse("openid").expect("valid scopes"),
        approved_at: base,
        data: None,
        authorization_details: None,
    }
}

fn approved_status(base: time::OffsetDateTime) -> Status {
    Status::Approved {
        approval: Arc::new(approval(base)),
    }
}

/// The record with `status`, one version on, as the crate's transitions make it.
fn successor(record: &DeviceAuthorization, status: Status) -> DeviceAuthorization {
    let mut next = record.clone();
    next.version += 1;
    next.status = status;
    next
}

async fn admin(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("a redis URL")
        .get_multiplexed_async_connection()
        .await
        .unwrap_or_else(|e| panic!("cannot reach {url}: {e}"))
}

/// Makes the replica follow `primary` again and waits until it has caught up.
async fn follow(replica: &mut redis::aio::MultiplexedConnection, primary: &str) {
    let (host, port) = primary
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .rsplit_once(':')
        .expect("the primary's URL has a port");
    let _: () = redis::cmd("REPLICAOF")
        .arg(host)
        .arg(port)
        .query_async(replica)
        .await
        .expect("REPLICAOF");
    let mut to_primary = admin(primary).await;
    // A write of this connection's own, so that its WAIT below counts a
    // replica only once it has everything the primary held before it (the
    // store's writes included); a connection that never wrote would count any
    // replica that is merely connected.
    let _: () = redis::cmd("SET")
        .arg("dgtest:durable:follow")
        .arg(1)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut to_primary)
        .await
        .expect("SET");
    for _ in 0..200 {
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(replica)
            .await
            .expect("INFO");
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(100)
            .query_async(&mut to_primary)
            .await
            .expect("WAIT");
        if info.contains("master_link_status:up") && acked >= 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the replica did not catch up with {primary} within 10 s");
}

async fn promote(replica: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query_async(replica)
        .await
        .expect("REPLICAOF NO ONE");
}

/// The server's URL from `var`, or `None` when the developer asked to skip
/// tests that need servers (`DEVICE_GRANT_SKIP_SERVICES=1`). A missing
/// variable otherwise fails the test: CI must never skip these silently.
fn service_url(var: &str) -> Option<String> {
    if std::env::var("DEVICE_GRANT_SKIP_SERVICES").as_deref() == Ok("1") {
        eprintln!("DEVICE_GRANT_SKIP_SERVICES=1: skipping a test that needs {var}");
        return None;
    }
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => panic!(
            "{var} is not set: run the tests through `bash scripts/test` (which starts the \
             servers), or set DEVICE_GRANT_SKIP_SERVICES=1 to skip tests that need them"
        ),
    }
}

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}_{}_{:x}", std::process::id(), nanos)
}
