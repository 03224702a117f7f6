//! The storage conformance suite: checks that a [`Store`] or an
//! [`AttemptLimiter`] keeps the contract the crate relies on (see the
//! traits' documentation).
//!
//! An adapter's tests call it on a multi-threaded Tokio runtime (the races run
//! on several threads), once with one handle and once with two handles on one
//! backing store:
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use device_grant::store::{conformance, AttemptLimiter, Store};
//! use device_grant::{MemoryLimiter, MemoryStore};
//!
//! conformance::run(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
//! conformance::run_limiter(|| async {
//!     Arc::new(MemoryLimiter::new()) as Arc<dyn AttemptLimiter>
//! })
//! .await;
//!
//! // Two handles on one store: as two instances of a server see it.
//! conformance::run_shared(|| async {
//!     let store = Arc::new(MemoryStore::new());
//!     (store.clone() as Arc<dyn Store>, store as Arc<dyn Store>)
//! })
//! .await;
//! conformance::run_limiter_shared(|| async {
//!     let limiter = Arc::new(MemoryLimiter::new());
//!     (limiter.clone() as Arc<dyn AttemptLimiter>, limiter as Arc<dyn AttemptLimiter>)
//! })
//! .await;
//! # });
//! ```
//!
//! The factory is called once per check and must return a fresh, empty,
//! isolated store (a new key prefix, a new schema…). For the shared mode it
//! returns two handles on that one store, made the way two instances of a
//! server would make them (two connections, two pools): every check then
//! writes through one handle and reads through the other, and the races run
//! across both, so a handle that caches, or an atomic step that holds only
//! within one connection, fails.
//!
//! Each check panics with a message naming the broken rule, what the store
//! returned and what the contract wants.
//!
//! Times are taken near the real clock (records expire ten minutes from now),
//! so that stores whose keys expire on the server's own clock (Redis TTLs)
//! keep every record the checks still look at.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use time::{Duration, OffsetDateTime};

use crate::host::limiter::{Admission, AttemptLimiter, Budget, LimiterKey};
use crate::host::store::{Inserted, PollAttempt, Polled, Store};
use crate::protocol::authorization::{
    Approval, AuthorizationId, DeviceAuthorization, PollOutcome, RequestContext, RequestDetails,
    Status, Subject,
};
use crate::protocol::client::ClientId;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::dpop::JwkThumbprint;
use crate::protocol::error::BackendError;
use crate::protocol::pkce::CodeChallenge;
use crate::protocol::polling::{Interval, PollingRules};
use crate::protocol::scope::ScopeSet;
use crate::protocol::user_code::UserCodeHash;

/// Seconds from the base time to `expires_at` of the records the checks make.
pub const EXPIRES_IN: i64 = 600;
/// Seconds from the base time to `purge_at` of the records the checks make.
pub const PURGE_IN: i64 = 900;

/// How many tasks each race runs.
const RACERS: usize = 16;

/// Two handles on one backing store, or one handle twice.
type Pair<T> = (Arc<T>, Arc<T>);

/// Runs every store check, each on a fresh store from `factory`.
pub async fn run<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let factory = &factory;
    run_shared(move || async move {
        let store = factory().await;
        (store.clone(), store)
    })
    .await;
}

/// Runs every store check, each on a fresh store from `factory`, which
/// returns two handles on it (two connections, two pools): writes go through
/// one and reads through the other, and the races run across both.
pub async fn run_shared<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Pair<dyn Store>>,
{
    macro_rules! check {
        ($check:ident) => {{
            let (store, peer) = factory().await;
            $check(store, peer).await;
        }};
    }
    check!(insert_and_look_up);
    check!(records_round_trip_exactly);
    check!(user_codes_are_unique_among_live_records);
    check!(duplicate_device_codes_are_refused);
    check!(transitions_are_compare_and_set);
    check!(user_code_index_dies_with_pending);
    check!(expiry_and_retention);
    check!(purge_deletes_only_what_is_due);
    check!(poll_updates_never_undo_a_status);
    check!(racing_redeems_have_one_winner);
    check!(approve_racing_deny_has_one_winner);
    check!(polls_racing_approval_lose_nothing);
    check!(racing_inserts_of_one_user_code_have_one_winner);
    check!(polls_match_the_state_machine);
    check!(racing_polls_never_undo_an_approval);
}

/// Runs every limiter check, each on a fresh limiter from `factory`.
pub async fn run_limiter<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn AttemptLimiter>>,
{
    let factory = &factory;
    run_limiter_shared(move || async move {
        let limiter = factory().await;
        (limiter.clone(), limiter)
    })
    .await;
}

/// Runs every limiter check, each on a fresh limiter from `factory`, which
/// returns two handles on it: attempts and refunds alternate between them, and
/// the races run across both.
pub async fn run_limiter_shared<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Pair<dyn AttemptLimiter>>,
{
    macro_rules! check {
        ($check:ident) => {{
            let (limiter, peer) = factory().await;
            $check(limiter, peer).await;
        }};
    }
    check!(limiter_spends_and_refunds);
    check!(limiter_windows_and_keys_are_separate);
    check!(limiter_budgets_are_counted_apart);
    check!(limiter_purge_keeps_live_counters);
    check!(racing_attempts_never_overspend);
}

/// The base time of the checks: now, whole seconds, so that every backend's
/// time precision (PostgreSQL keeps microseconds) holds it exactly.
pub fn base_time() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    OffsetDateTime::from_unix_timestamp(now.unix_timestamp()).unwrap_or(now)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes
}

/// A fresh pending record with random codes, created at `base`, expiring at
/// `base + EXPIRES_IN`, purgeable from `base + PURGE_IN`.
pub fn pending_record(base: OffsetDateTime) -> DeviceAuthorization {
    pending_with_user_code(base, UserCodeHash(random_bytes()))
}

fn pending_with_user_code(base: OffsetDateTime, user_code: UserCodeHash) -> DeviceAuthorization {
    DeviceAuthorization::new(
        AuthorizationId::generate(),
        DeviceCodeHash(random_bytes()),
        user_code,
        RequestDetails {
            client_id: ClientId::new("conformance-client"),
            scopes: ScopeSet::parse("openid profile").expect("valid scopes"),
            created_at: base,
            expires_at: base + Duration::seconds(EXPIRES_IN),
            context: RequestContext::default(),
            code_challenge: None,
            authorization_details: None,
            dpop_jkt: None,
        },
        Interval::DEFAULT,
        Duration::seconds(PURGE_IN - EXPIRES_IN),
    )
}

fn approval(base: OffsetDateTime, who: &str) -> Approval {
    Approval {
        subject: Subject::new(who),
        scopes: ScopeSet::parse("openid").expect("valid scopes"),
        approved_at: base,
        data: None,
        authorization_details: None,
    }
}

/// The other handle every other time: racers spread over both.
fn either<T: ?Sized>(i: usize, pair: &Pair<T>) -> Arc<T> {
    if i % 2 == 0 {
        pair.0.clone()
    } else {
        pair.1.clone()
    }
}

/// Fails the check unless the store's answer is the contract's.
#[track_caller]
fn expect_eq<T: PartialEq + Debug>(got: T, want: T, rule: impl std::fmt::Display) {
    if got != want {
        panic!("{rule}\n  the store returned: {got:?}\n  the contract wants: {want:?}");
    }
}

/// The answer of an operation that must not fail.
#[track_caller]
fn ok<T>(what: &str, result: Result<T, BackendError>) -> T {
    result.unwrap_or_else(|e| panic!("{what} returned Err({e:?}), the contract wants Ok"))
}

async fn try_insert(
    store: &dyn Store,
    record: &DeviceAuthorization,
    now: OffsetDateTime,
) -> Inserted {
    ok("insert", store.insert(record, now).await)
}

async fn insert(store: &dyn Store, record: &DeviceAuthorization, now: OffsetDateTime) {
    expect_eq(
        store.insert(record, now).await.map_err(|e| e.to_string()),
        Ok(Inserted::Stored),
        "insert of a record with a new device code and a free user code must store it",
    );
}

async fn get(store: &dyn Store, hash: &DeviceCodeHash) -> Option<DeviceAuthorization> {
    ok("by_device_code", store.by_device_code(hash).await)
}

/// The record of a device code, which the check stored and must find.
async fn stored(store: &dyn Store, hash: &DeviceCodeHash) -> DeviceAuthorization {
    get(store, hash)
        .await
        .unwrap_or_else(|| panic!("by_device_code of a stored, unpurged record returned None"))
}

async fn get_by_user_code(
    store: &dyn Store,
    hash: &UserCodeHash,
    now: OffsetDateTime,
) -> Option<DeviceAuthorization> {
    ok("by_user_code", store.by_user_code(hash, now).await)
}

async fn cas(store: &dyn Store, expected: u64, next: &DeviceAuthorization) -> bool {
    ok(
        "compare_and_set",
        store.compare_and_set(expected, next).await,
    )
}

/// A compare-and-set that the contract says must succeed, or fail.
async fn expect_cas(
    store: &dyn Store,
    expected: u64,
    next: &DeviceAuthorization,
    want: bool,
    rule: &str,
) {
    expect_eq(
        cas(store, expected, next).await,
        want,
        format_args!(
            "compare_and_set({expected}, version {}): {rule}",
            next.version
        ),
    );
}

/// The status's name, for messages about races.
fn status_name(status: &Status) -> &'static str {
    match status {
        Status::Pending => "pending",
        Status::Approved { .. } => "approved",
        Status::Denied { .. } => "denied",
        Status::Redeeming { .. } => "redeeming",
        Status::Redeemed { .. } => "redeemed",
    }
}

/// Inserts, then finds the record by both hashes; unknown hashes find nothing.
pub async fn insert_and_look_up(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    expect_eq(
        get(&*peer, &record.device_code_hash).await,
        None,
        "by_device_code on a fresh store must find nothing",
    );
    insert(&*store, &record, base).await;
    expect_eq(
        get(&*peer, &record.device_code_hash).await.as_ref(),
        Some(&record),
        "by_device_code must return the inserted record, unchanged",
    );
    expect_eq(
        get_by_user_code(&*peer, &record.user_code_hash, base)
            .await
            .as_ref(),
        Some(&record),
        "by_user_code must return the pending, unexpired record of its user code",
    );
    expect_eq(
        get(&*peer, &DeviceCodeHash(random_bytes())).await,
        None,
        "by_device_code of an unknown hash must return None",
    );
    expect_eq(
        get_by_user_code(&*peer, &UserCodeHash(random_bytes()), base).await,
        None,
        "by_user_code of an unknown hash must return None",
    );
    let stranger = pending_record(base);
    let approved = stranger.approve(approval(base, "x"), base).unwrap();
    expect_cas(
        &*store,
        0,
        &approved,
        false,
        "a record that was never inserted cannot be replaced",
    )
    .await;
    expect_eq(
        get(&*peer, &stranger.device_code_hash).await,
        None,
        "compare_and_set must never create a record",
    );
}

/// Every field survives storage exactly: context, PKCE code challenge,
/// authorization details (requested and granted), approval data, times with sub-second precision, interval and last poll.
pub async fn records_round_trip_exactly(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let mut record = pending_record(base);
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("device".to_owned(), "Living-room TV ✓".to_owned());
    Arc::make_mut(&mut record.request).context = RequestContext {
        ip: Some("2001:db8::7".parse().unwrap()),
        user_agent: Some("TV/1.0 \"quoted\" \\ back".to_owned()),
        extra,
    };
    Arc::make_mut(&mut record.request).code_challenge =
        CodeChallenge::from_verifier("conformance-verifier-0123456789-abcdefghijklmnopqrstuvwxyz");
    Arc::make_mut(&mut record.request).authorization_details = Some(
        serde_json::from_value(serde_json::json!([
            {"type": "media_library", "actions": ["list", "play"], "locations": ["https://media.example/ü"]},
            {"type": "payment", "amount": {"value": "1.50", "currency": "EUR"}},
        ]))
        .expect("valid details"),
    );
    insert(&*store, &record, base).await;
    let mut next = record
        .approve(
            Approval {
                subject: Subject::new("ålice@example"),
                scopes: ScopeSet::parse("openid").unwrap(),
                approved_at: base + Duration::milliseconds(250),
                data: Some(
                    crate::ApprovalData::new(&serde_json::json!({"acr": "mfa", "auth_time": 1_700_000_000, "nested": [1, {"x": null}]})).expect("JSON serializes"),
                ),
                authorization_details: Some(
                    serde_json::from_value(serde_json::json!([
                        {"type": "media_library", "actions": ["play"], "locations": ["https://media.example/ü"]},
                    ]))
                    .expect("valid details"),
                ),
            },
            base,
        )
        .unwrap();
    next.last_poll = Some(base + Duration::milliseconds(1500));
    next.interval = Interval::from_secs(15).unwrap();
    expect_cas(&*store, 0, &next, true, "the stored version is 0").await;
    expect_eq(
        get(&*peer, &record.device_code_hash).await.as_ref(),
        Some(&next),
        "the stored record must read back exactly as written (context, code challenge, approval data, times, interval)",
    );
}

/// A user-code hash held by a live record cannot be inserted again; it can
/// once that record has expired or left `Pending`.
pub async fn user_codes_are_unique_among_live_records(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let first = pending_record(base);
    insert(&*store, &first, base).await;

    let clash = pending_with_user_code(base, first.user_code_hash);
    expect_eq(
        try_insert(&*peer, &clash, base + Duration::seconds(1)).await,
        Inserted::UserCodeTaken,
        "insert must refuse a user code held by a pending, unexpired record",
    );
    expect_eq(
        get(&*store, &clash.device_code_hash).await,
        None,
        "an insert answered UserCodeTaken must store nothing",
    );
    expect_eq(
        get_by_user_code(&*store, &first.user_code_hash, base)
            .await
            .map(|r| r.id),
        Some(first.id),
        "an insert answered UserCodeTaken must leave the user code with its holder",
    );
    let late = base + Duration::seconds(EXPIRES_IN - 1);
    expect_eq(
        try_insert(&*peer, &clash, late).await,
        Inserted::UserCodeTaken,
        "a user code is held until the very end of its holder's lifetime",
    );

    // Once the holder has expired, its user code is free again.
    let expiry = first.request.expires_at;
    let mut reuse = pending_with_user_code(expiry, first.user_code_hash);
    Arc::make_mut(&mut reuse.request).created_at = expiry;
    expect_eq(
        try_insert(&*peer, &reuse, expiry).await,
        Inserted::Stored,
        "a user code must be free again once its holder has expired (now == expires_at)",
    );
    expect_eq(
        get_by_user_code(&*store, &first.user_code_hash, expiry)
            .await
            .map(|r| r.id),
        Some(reuse.id),
        "by_user_code must find the new holder of a reused user code",
    );
    expect_eq(
        get(&*store, &first.device_code_hash).await.as_ref(),
        Some(&first),
        "an expired record must be kept (until purge_at) when its user code is reused",
    );

    // Once the holder has left Pending, its user code is free again.
    let approved = pending_record(base);
    insert(&*store, &approved, base).await;
    let next = approved.approve(approval(base, "a"), base).unwrap();
    expect_cas(&*store, 0, &next, true, "the stored version is 0").await;
    let after = pending_with_user_code(base, approved.user_code_hash);
    expect_eq(
        try_insert(&*peer, &after, base).await,
        Inserted::Stored,
        "a user code must be free again once its holder has left Pending",
    );
}

/// An insert never replaces a stored record: a device-code hash that is
/// already stored is refused with `Err(BackendError::Other(_))`, whatever its
/// status and whoever holds the user code, and the refused insert claims no
/// user code.
pub async fn duplicate_device_codes_are_refused(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let original = pending_record(base);
    insert(&*store, &original, base).await;

    // The very record again, as a host retrying an insert would send it.
    let again = peer.insert(&original, base).await;
    assert!(
        matches!(again, Err(BackendError::Other(_))),
        "insert of a device-code hash that is already stored must fail\n  the store returned: \
         {again:?}\n  the contract wants: Err(BackendError::Other(_))"
    );

    // Another request with the same device-code hash and a free user code,
    // after the stored record was approved: replacing it would undo the
    // approval and reset its version.
    let approved = original.approve(approval(base, "alice"), base).unwrap();
    expect_cas(&*store, 0, &approved, true, "the stored version is 0").await;
    let mut impostor = pending_record(base);
    impostor.device_code_hash = original.device_code_hash;
    let refused = peer.insert(&impostor, base).await;
    assert!(
        matches!(refused, Err(BackendError::Other(_))),
        "insert of a device-code hash that is already stored must fail, even with a free user \
         code\n  the store returned: {refused:?}\n  the contract wants: Err(BackendError::Other(_))"
    );
    expect_eq(
        get(&*store, &original.device_code_hash).await.as_ref(),
        Some(&approved),
        "a refused insert must leave the stored record as it was",
    );
    expect_eq(
        get_by_user_code(&*store, &impostor.user_code_hash, base).await,
        None,
        "a refused insert must not claim its user code",
    );
    let next_holder = pending_with_user_code(base, impostor.user_code_hash);
    expect_eq(
        try_insert(&*store, &next_holder, base).await,
        Inserted::Stored,
        "the user code of a refused insert must stay free",
    );
}

/// Every transition writes only from the version it was computed from.
pub async fn transitions_are_compare_and_set(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    insert(&*store, &record, base).await;

    let approved = record.approve(approval(base, "alice"), base).unwrap();
    let denied = record.deny(base).unwrap();
    expect_cas(
        &*store,
        0,
        &approved,
        true,
        "pending→approved from version 0",
    )
    .await;
    expect_cas(
        &*peer,
        0,
        &denied,
        false,
        "pending→denied computed from a stale version",
    )
    .await;
    expect_cas(
        &*peer,
        0,
        &approved,
        false,
        "the same transition applied twice succeeds once",
    )
    .await;
    expect_eq(
        get(&*store, &record.device_code_hash).await.as_ref(),
        Some(&approved),
        "a refused compare_and_set must change nothing",
    );

    let mut skipping = approved.clone();
    skipping.version = 5;
    expect_cas(
        &*store,
        1,
        &skipping,
        false,
        "a store may refuse a next record whose version is not expected + 1, and must not \
         write it",
    )
    .await;
    expect_eq(
        get(&*peer, &record.device_code_hash).await.as_ref(),
        Some(&approved),
        "compare_and_set with next.version != expected + 1 must change nothing",
    );

    let rules = PollingRules::default();
    let redeem = approved.poll(base, &rules);
    assert!(
        matches!(redeem.outcome, PollOutcome::Redeem(_)),
        "the crate's poll of an approved record redeems it (got {:?})",
        redeem.outcome
    );
    let redeeming = redeem.next.unwrap();
    expect_cas(
        &*peer,
        1,
        &redeeming,
        true,
        "approved→redeeming from version 1",
    )
    .await;
    expect_cas(
        &*store,
        1,
        &redeeming,
        false,
        "approved→redeeming succeeds once only",
    )
    .await;
    let redeemed = redeeming.redeemed(base).unwrap();
    expect_cas(
        &*store,
        2,
        &redeemed,
        true,
        "redeeming→redeemed from version 2",
    )
    .await;
    expect_eq(
        get(&*peer, &record.device_code_hash).await.as_ref(),
        Some(&redeemed),
        "after three transitions the record must be redeemed, at version 3",
    );

    let other = pending_record(base);
    insert(&*store, &other, base).await;
    let other_denied = other.deny(base).unwrap();
    expect_cas(
        &*store,
        0,
        &other_denied,
        true,
        "pending→denied from version 0",
    )
    .await;
    expect_cas(
        &*peer,
        0,
        &other.approve(approval(base, "b"), base).unwrap(),
        false,
        "pending→approved after a deny",
    )
    .await;
    expect_eq(
        get(&*peer, &other.device_code_hash).await.as_ref(),
        Some(&other_denied),
        "a deny must stick",
    );
}

/// `by_user_code` returns a record only while it is pending; pending updates
/// (polls, slow downs) keep the index alive.
pub async fn user_code_index_dies_with_pending(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let rules = PollingRules::default();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let polled = record.poll(base, &rules).next.unwrap();
    expect_cas(&*store, 0, &polled, true, "a pending poll from version 0").await;
    let slowed = polled
        .poll(base + Duration::seconds(1), &rules)
        .next
        .unwrap();
    expect_cas(&*store, 1, &slowed, true, "a slow_down from version 1").await;
    expect_eq(
        get_by_user_code(&*peer, &record.user_code_hash, base)
            .await
            .as_ref(),
        Some(&slowed),
        "a pending record updated by polls must stay reachable by user code, as updated",
    );
    let approved = slowed.approve(approval(base, "a"), base).unwrap();
    expect_cas(
        &*store,
        2,
        &approved,
        true,
        "pending→approved from version 2",
    )
    .await;
    expect_eq(
        get_by_user_code(&*peer, &record.user_code_hash, base).await,
        None,
        "by_user_code must not return an approved record",
    );

    let denied = pending_record(base);
    insert(&*store, &denied, base).await;
    let next = denied.deny(base).unwrap();
    expect_cas(&*store, 0, &next, true, "pending→denied from version 0").await;
    expect_eq(
        get_by_user_code(&*peer, &denied.user_code_hash, base).await,
        None,
        "by_user_code must not return a denied record",
    );
}

/// An expired record leaves the user-code index but stays readable by device
/// code until `purge_at`.
pub async fn expiry_and_retention(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let last = base + Duration::seconds(EXPIRES_IN) - Duration::milliseconds(1);
    expect_eq(
        get_by_user_code(&*peer, &record.user_code_hash, last)
            .await
            .as_ref(),
        Some(&record),
        "by_user_code must return the record until its very last instant (expires_at - 1 ms)",
    );
    expect_eq(
        get_by_user_code(&*peer, &record.user_code_hash, record.request.expires_at).await,
        None,
        "by_user_code must not return a record at or after expires_at",
    );
    expect_eq(
        get(&*peer, &record.device_code_hash).await.as_ref(),
        Some(&record),
        "an expired record must still be returned by device code until purge_at \
         (late polls get expired_token, replays are recognized)",
    );
}

/// `purge_expired` deletes exactly the records whose `purge_at` has come.
pub async fn purge_deletes_only_what_is_due(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let early = pending_record(base);
    let redeemed = pending_record(base);
    let mut late = pending_record(base);
    late.purge_at = base + Duration::seconds(PURGE_IN + 60);
    for r in [&early, &redeemed, &late] {
        insert(&*store, r, base).await;
    }
    let a = redeemed.approve(approval(base, "a"), base).unwrap();
    expect_cas(&*store, 0, &a, true, "pending→approved from version 0").await;

    let before = early.purge_at - Duration::seconds(1);
    expect_eq(
        ok("purge_expired", peer.purge_expired(before).await),
        0,
        "purge_expired must delete nothing before purge_at",
    );
    expect_eq(
        get(&*store, &early.device_code_hash).await.as_ref(),
        Some(&early),
        "a record must be kept until its purge_at",
    );
    expect_eq(
        ok("purge_expired", peer.purge_expired(early.purge_at).await),
        2,
        "purge_expired(purge_at) must delete exactly the two due records and count them",
    );
    for gone in [&early.device_code_hash, &redeemed.device_code_hash] {
        expect_eq(
            get(&*store, gone).await,
            None,
            "a purged record must be gone",
        );
    }
    expect_eq(
        get(&*store, &late.device_code_hash).await.as_ref(),
        Some(&late),
        "purge_expired must keep a record whose purge_at has not come",
    );
    expect_eq(
        ok("purge_expired", store.purge_expired(early.purge_at).await),
        0,
        "a second purge at the same time must find nothing",
    );
}

/// A poll computed before an approval (or a deny) cannot overwrite it.
pub async fn poll_updates_never_undo_a_status(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let rules = PollingRules::default();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let on_time = record.poll(base, &rules).next.unwrap();
    let approved = record.approve(approval(base, "alice"), base).unwrap();
    expect_cas(
        &*store,
        0,
        &approved,
        true,
        "pending→approved from version 0",
    )
    .await;
    expect_cas(
        &*peer,
        0,
        &on_time,
        false,
        "a poll's last_poll update computed before the approval",
    )
    .await;
    let mut slowed = record.clone();
    slowed.version = 1;
    slowed.interval = Interval::from_secs(10).unwrap();
    expect_cas(
        &*peer,
        0,
        &slowed,
        false,
        "a slow_down interval update computed before the approval",
    )
    .await;
    expect_eq(
        get(&*store, &record.device_code_hash).await.as_ref(),
        Some(&approved),
        "the approval must survive stale poll updates",
    );
}

/// The token endpoint's loop, reduced: read, poll, compare-and-set, retry.
async fn poll_until_settled(
    store: &dyn Store,
    hash: &DeviceCodeHash,
    now: OffsetDateTime,
    rules: &PollingRules,
) -> PollOutcome {
    for _ in 0..10_000 {
        let record = stored(store, hash).await;
        let poll = record.poll(now, rules);
        match &poll.next {
            Some(next) if !cas(store, record.version, next).await => continue,
            _ => return poll.outcome,
        }
    }
    panic!(
        "a poll's compare_and_set returned false 10 000 times in a row, each from the version \
         by_device_code had just returned: the store is not making progress"
    );
}

/// Many tasks on both handles redeem one approved record: exactly one gets
/// the approval.
pub async fn racing_redeems_have_one_winner(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let approved = record.approve(approval(base, "alice"), base).unwrap();
    expect_cas(
        &*store,
        0,
        &approved,
        true,
        "pending→approved from version 0",
    )
    .await;
    let pair = (store, peer);
    let winners = Arc::new(AtomicUsize::new(0));
    let waiting = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (store, winners, waiting) = (either(i, &pair), winners.clone(), waiting.clone());
        let hash = record.device_code_hash;
        tasks.push(tokio::spawn(async move {
            // Once the winner holds the redemption's lease, a poll waits
            // (authorization_pending) without writing.
            match poll_until_settled(&*store, &hash, base, &PollingRules::default()).await {
                PollOutcome::Redeem(_) => winners.fetch_add(1, Ordering::SeqCst),
                PollOutcome::Pending => waiting.fetch_add(1, Ordering::SeqCst),
                other => panic!(
                    "a poll of an approved record must redeem it, or wait for the redemption \
                     in progress; it came to {other:?}"
                ),
            };
        }));
    }
    for t in tasks {
        t.await.expect("a racing task panicked");
    }
    let (w, p) = (
        winners.load(Ordering::SeqCst),
        waiting.load(Ordering::SeqCst),
    );
    assert_eq!(
        (w, p),
        (1, RACERS - 1),
        "{RACERS} racing polls of an approved record on two handles: {w} redeemed it and {p} \
         waited; the contract wants exactly 1 redeemer (compare_and_set from the approved \
         version must succeed once)"
    );
    let after = stored(&*pair.1, &record.device_code_hash).await;
    expect_eq(
        (status_name(&after.status), after.version),
        ("redeeming", 2),
        "after racing redeems the record must be leased to the one winner, at version 2",
    );
}

/// Approvals race denials on one pending record, across both handles:
/// exactly one wins, and the record shows the winner.
pub async fn approve_racing_deny_has_one_winner(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let pair = (store, peer);
    let approvals = Arc::new(AtomicUsize::new(0));
    let denials = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        // Approvers and deniers each on both handles.
        let store = either(i / 2, &pair);
        let (approvals, denials) = (approvals.clone(), denials.clone());
        let hash = record.device_code_hash;
        tasks.push(tokio::spawn(async move {
            for _ in 0..10_000 {
                let current = stored(&*store, &hash).await;
                let next = if i % 2 == 0 {
                    current.approve(approval(base, &format!("user-{i}")), base)
                } else {
                    current.deny(base)
                };
                let Ok(next) = next else { return };
                if cas(&*store, current.version, &next).await {
                    if i % 2 == 0 { &approvals } else { &denials }.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            panic!(
                "an approve/deny's compare_and_set returned false 10 000 times in a row while \
                 by_device_code still returned a pending record: the store is not making progress"
            );
        }));
    }
    for t in tasks {
        t.await.expect("a racing task panicked");
    }
    let (a, d) = (
        approvals.load(Ordering::SeqCst),
        denials.load(Ordering::SeqCst),
    );
    assert_eq!(
        a + d,
        1,
        "racing approve/deny on two handles: compare_and_set from version 0 succeeded {a} times \
         for approvals and {d} times for denials; the contract wants exactly once"
    );
    let after = stored(&*pair.1, &record.device_code_hash).await;
    let want = if a == 1 { "approved" } else { "denied" };
    expect_eq(
        (status_name(&after.status), after.version),
        (want, 1),
        "after the race the record must show the one transition that won",
    );
}

/// Pollers on both handles hammer a pending record while the person
/// approves: the approval is never lost, and it is redeemed exactly once.
pub async fn polls_racing_approval_lose_nothing(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    // No leeway and a 1 s interval: the pollers alternate on-time polls and
    // slow_downs, so every poll writes.
    let rules = PollingRules {
        leeway: Duration::ZERO,
        max_interval: Interval::from_secs(2).unwrap(),
        ..PollingRules::default()
    };
    let mut record = pending_record(base);
    record.interval = Interval::from_secs(1).unwrap();
    insert(&*store, &record, base).await;
    let hash = record.device_code_hash;
    let pair = (store, peer);
    let redeemed = Arc::new(AtomicUsize::new(0));
    let mut pollers = Vec::new();
    for p in 0..RACERS - 1 {
        let (store, redeemed, rules) = (either(p, &pair), redeemed.clone(), rules);
        pollers.push(tokio::spawn(async move {
            for step in 0..40i64 {
                let now = base + Duration::milliseconds(step * 700 + p as i64);
                match poll_until_settled(&*store, &hash, now, &rules).await {
                    PollOutcome::Redeem(a) => {
                        assert_eq!(
                            a.subject.as_str(),
                            "alice",
                            "the approval a poll redeemed must be the one written"
                        );
                        redeemed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    PollOutcome::Replay => return,
                    PollOutcome::Pending | PollOutcome::SlowDown(_) => {
                        tokio::task::yield_now().await
                    }
                    other => panic!(
                        "a poll of a pending or approved record came to {other:?}; the \
                         contract wants pending, slow_down, redeem or replay"
                    ),
                }
            }
        }));
    }
    let approver = {
        let store = pair.1.clone();
        tokio::spawn(async move {
            for _ in 0..10_000 {
                let current = stored(&*store, &hash).await;
                let next = current
                    .approve(approval(base, "alice"), base + Duration::seconds(1))
                    .unwrap_or_else(|e| {
                        panic!(
                            "by_device_code returned a {} record at version {} before the \
                             approval was written: {e}",
                            status_name(&current.status),
                            current.version
                        )
                    });
                if cas(&*store, current.version, &next).await {
                    return;
                }
                tokio::task::yield_now().await;
            }
            panic!(
                "the approval's compare_and_set returned false 10 000 times in a row, each from \
                 the version by_device_code had just returned"
            );
        })
    };
    approver.await.expect("the approver panicked");
    for t in pollers {
        t.await.expect("a poller panicked");
    }
    let after = stored(&*pair.0, &hash).await;
    match after.status.approval() {
        Some(approval) => expect_eq(
            approval.subject.as_str(),
            "alice",
            "the approval must survive the polls",
        ),
        None => panic!(
            "an approval racing polls was lost: the store returned a {} record at version {}, \
             the contract wants the approval kept",
            status_name(&after.status),
            after.version
        ),
    }
    let n = redeemed.load(Ordering::SeqCst);
    assert!(
        n <= 1,
        "an approval was redeemed {n} times: compare_and_set from one approved version must \
         succeed once"
    );
    if n == 0 {
        let outcome =
            poll_until_settled(&*pair.0, &hash, base + Duration::seconds(60), &rules).await;
        assert!(
            matches!(outcome, PollOutcome::Redeem(_)),
            "the surviving approval must be redeemable; a poll came to {outcome:?}"
        );
    }
}

/// Many inserts on both handles race for one user code: exactly one is
/// stored.
pub async fn racing_inserts_of_one_user_code_have_one_winner(
    store: Arc<dyn Store>,
    peer: Arc<dyn Store>,
) {
    let base = base_time();
    let code = UserCodeHash(random_bytes());
    let pair = (store, peer);
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let store = either(i, &pair);
        tasks.push(tokio::spawn(async move {
            let record = pending_with_user_code(base, code);
            let inserted = try_insert(&*store, &record, base).await;
            (inserted, record)
        }));
    }
    let mut winners = Vec::new();
    for (i, t) in tasks.into_iter().enumerate() {
        let (inserted, record) = t.await.expect("an inserting task panicked");
        let found = get(&*either(i + 1, &pair), &record.device_code_hash).await;
        match inserted {
            Inserted::Stored => {
                expect_eq(
                    found.as_ref(),
                    Some(&record),
                    "an insert answered Stored must have stored the record",
                );
                winners.push(record)
            }
            Inserted::UserCodeTaken => expect_eq(
                found,
                None,
                "an insert answered UserCodeTaken must store nothing",
            ),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "{RACERS} racing inserts of one user code on two handles: {} were answered Stored; the \
         contract wants exactly 1",
        winners.len()
    );
    expect_eq(
        get_by_user_code(&*pair.0, &code, base).await.map(|r| r.id),
        Some(winners[0].id),
        "the user code must point at the one stored record",
    );
}

fn budget() -> Budget {
    Budget {
        attempts: 3,
        window: Duration::minutes(5),
    }
}

fn limiter_key() -> LimiterKey {
    LimiterKey::new(format!(
        "conformance-{}",
        crate::protocol::hex(&random_bytes::<8>())
    ))
}

async fn acquire_under(
    limiter: &dyn AttemptLimiter,
    key: &LimiterKey,
    budget: &Budget,
    now: OffsetDateTime,
) -> Admission {
    ok("acquire", limiter.acquire(key, budget, now).await)
}

async fn acquire(limiter: &dyn AttemptLimiter, key: &LimiterKey, now: OffsetDateTime) -> Admission {
    acquire_under(limiter, key, &budget(), now).await
}

async fn refund(limiter: &dyn AttemptLimiter, key: &LimiterKey, now: OffsetDateTime) {
    ok("refund", limiter.refund(key, &budget(), now).await)
}

/// A budget of three: three admitted, the fourth refused with the window's
/// remaining time; a refund gives one back. Attempts alternate handles.
pub async fn limiter_spends_and_refunds(
    limiter: Arc<dyn AttemptLimiter>,
    peer: Arc<dyn AttemptLimiter>,
) {
    let now = budget().window_start(base_time()) + Duration::seconds(10);
    let key = limiter_key();
    let pair = (limiter, peer);
    let refused = Admission::Exhausted {
        retry_after: budget().retry_after(now),
    };
    for i in 0..3 {
        expect_eq(
            acquire(&*either(i, &pair), &key, now).await,
            Admission::Admitted,
            format_args!("attempt {} of a budget of 3", i + 1),
        );
    }
    expect_eq(
        acquire(&*pair.1, &key, now).await,
        refused,
        "the 4th attempt of a budget of 3 must be refused, retry after the window",
    );
    expect_eq(
        acquire(&*pair.0, &key, now).await,
        refused,
        "a refused attempt must spend nothing and stay refused",
    );
    refund(&*pair.1, &key, now).await;
    expect_eq(
        acquire(&*pair.0, &key, now).await,
        Admission::Admitted,
        "a refund must give one attempt back",
    );
    expect_eq(
        acquire(&*pair.1, &key, now).await,
        refused,
        "a refund must give back one attempt only",
    );
}

/// Keys are counted apart, and each window starts from a full budget.
pub async fn limiter_windows_and_keys_are_separate(
    limiter: Arc<dyn AttemptLimiter>,
    peer: Arc<dyn AttemptLimiter>,
) {
    let now = budget().window_start(base_time()) + Duration::seconds(10);
    let (a, b) = (limiter_key(), limiter_key());
    for i in 0..3 {
        expect_eq(
            acquire(&*limiter, &a, now).await,
            Admission::Admitted,
            format_args!("attempt {} of a budget of 3", i + 1),
        );
    }
    expect_eq(
        acquire(&*peer, &a, now).await,
        Admission::Exhausted {
            retry_after: budget().retry_after(now),
        },
        "the 4th attempt of a budget of 3 must be refused",
    );
    expect_eq(
        acquire(&*peer, &b, now).await,
        Admission::Admitted,
        "another key's spending must not count against this one",
    );
    let next_window = budget().window_start(now) + budget().window;
    expect_eq(
        acquire(&*peer, &a, next_window).await,
        Admission::Admitted,
        "a new window must start with a full budget",
    );
    // A refund in another window must not give back this window's attempts.
    for i in 1..3 {
        expect_eq(
            acquire(&*limiter, &a, next_window).await,
            Admission::Admitted,
            format_args!("attempt {} of a budget of 3 in a new window", i + 1),
        );
    }
    refund(&*peer, &a, now).await;
    expect_eq(
        acquire(&*limiter, &a, next_window).await,
        Admission::Exhausted {
            retry_after: budget().retry_after(next_window),
        },
        "a refund for a past window must not refill the current one",
    );
}

/// Many concurrent attempts on one key, across both handles: exactly the
/// budget is admitted.
pub async fn racing_attempts_never_overspend(
    limiter: Arc<dyn AttemptLimiter>,
    peer: Arc<dyn AttemptLimiter>,
) {
    let now = budget().window_start(base_time()) + Duration::seconds(10);
    let key = limiter_key();
    let pair = (limiter, peer);
    let admitted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (limiter, key, admitted) = (either(i, &pair), key.clone(), admitted.clone());
        tasks.push(tokio::spawn(async move {
            if acquire(&*limiter, &key, now).await == Admission::Admitted {
                admitted.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.expect("an attempting task panicked");
    }
    let n = admitted.load(Ordering::SeqCst);
    assert_eq!(
        n,
        budget().attempts as usize,
        "{RACERS} racing attempts on two handles on a budget of {}: the limiter admitted {n}; \
         the contract wants exactly {}",
        budget().attempts,
        budget().attempts
    );
}

/// Budgets of different windows, interleaved on shared and separate keys over
/// more than 10,000 operations with windows rolling over and refunds landing in
/// past windows, each answer checked against an exact model: a counter is one
/// key and one window length, whatever the other budgets do (a host may count
/// one key under several budgets, such as 5 a minute and 50 an hour).
/// Operations alternate handles.
pub async fn limiter_budgets_are_counted_apart(
    limiter: Arc<dyn AttemptLimiter>,
    peer: Arc<dyn AttemptLimiter>,
) {
    const OPS: u64 = 12_000;
    let budgets = [
        Budget {
            attempts: 7,
            window: Duration::seconds(60),
        },
        Budget {
            attempts: 20,
            window: Duration::seconds(300),
        },
        Budget {
            attempts: 40,
            window: Duration::seconds(600),
        },
    ];
    // Keys 0 to 2 each count under one budget only; keys 3 to 5 under all three.
    let keys: Vec<LimiterKey> = (0..6).map(|_| limiter_key()).collect();
    // Start just after a 600 s boundary (which is also a 60 s and 300 s one), so
    // that the run crosses every window's roll-over at least once.
    let start = budgets[2].window_start(base_time()) + budgets[2].window + Duration::seconds(1);
    let mut model: std::collections::HashMap<(usize, usize, OffsetDateTime), u32> =
        std::collections::HashMap::new();
    let mut history: Vec<(usize, usize, OffsetDateTime)> = Vec::new();
    // A fixed xorshift sequence: the same run every time, on every backend.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let pair = (limiter, peer);
    for step in 0..OPS {
        let limiter = either(step as usize, &pair);
        // 12,000 operations over about 1,300 s: every window rolls over.
        let now = start + Duration::milliseconds((step * 109) as i64);
        let k = (next() % 6) as usize;
        let b = if k < 3 { k } else { (next() % 3) as usize };
        let budget = &budgets[b];
        let roll = next() % 10;
        if roll < 2 && !history.is_empty() {
            // A refund for an earlier attempt, possibly from a window that has
            // since rolled over: it may only ever credit that window.
            let (k, b, then) = history[(next() % history.len() as u64) as usize];
            ok("refund", limiter.refund(&keys[k], &budgets[b], then).await);
            let count = model
                .entry((k, b, budgets[b].window_start(then)))
                .or_default();
            *count = count.saturating_sub(1);
            continue;
        }
        let got = acquire_under(&*limiter, &keys[k], budget, now).await;
        let count = model.entry((k, b, budget.window_start(now))).or_default();
        let want = Admission::spent(*count < budget.attempts, budget, now);
        if want == Admission::Admitted {
            *count += 1;
            history.push((k, b, now));
            if history.len() > 64 {
                history.remove(0);
            }
        }
        let spent = if want == Admission::Admitted {
            *count - 1
        } else {
            *count
        };
        expect_eq(
            got,
            want,
            format_args!(
                "operation {step}: key {k} under a budget of {} per {} s had {spent} spent in \
                 its window",
                budget.attempts,
                budget.window.whole_seconds(),
            ),
        );
    }
}

/// A purge deletes only counters whose own window has ended: a long budget's
/// live counter survives a purge run after a short budget's window ended.
pub async fn limiter_purge_keeps_live_counters(
    limiter: Arc<dyn AttemptLimiter>,
    peer: Arc<dyn AttemptLimiter>,
) {
    let short = Budget {
        attempts: 3,
        window: Duration::seconds(60),
    };
    let long = Budget {
        attempts: 3,
        window: Duration::seconds(3600),
    };
    let now = long.window_start(base_time()) + long.window + Duration::seconds(1);
    let (a, b) = (limiter_key(), limiter_key());
    for i in 0..3 {
        for (key, budget) in [(&a, &short), (&b, &long)] {
            expect_eq(
                acquire_under(&*limiter, key, budget, now).await,
                Admission::Admitted,
                format_args!(
                    "attempt {} of a budget of 3 per {} s",
                    i + 1,
                    budget.window.whole_seconds()
                ),
            );
        }
    }
    let later = short.window_start(now) + short.window + Duration::seconds(1);
    ok("purge_expired", peer.purge_expired(later).await);
    expect_eq(
        acquire_under(&*limiter, &b, &long, later).await,
        Admission::Exhausted {
            retry_after: long.retry_after(later),
        },
        "a purge after a 60 s window ended must keep a live 3600 s window's spent counter",
    );
    expect_eq(
        acquire_under(&*peer, &a, &short, later).await,
        Admission::Admitted,
        "a new 60 s window starts from a full budget",
    );
}

/// The pace rules the differential check plays under, one per sequence in
/// turn: the defaults, no leeway with a low cap, a wide leeway.
fn differential_rules() -> [PollingRules; 3] {
    [
        PollingRules::default(),
        PollingRules {
            leeway: Duration::ZERO,
            max_interval: Interval::from_secs(12).expect("not zero"),
            ..PollingRules::default()
        },
        PollingRules {
            leeway: Duration::milliseconds(2_500),
            max_interval: Interval::from_secs(20).expect("not zero"),
            ..PollingRules::default()
        },
    ]
}

/// Sequences the differential check plays, and steps in each.
const SEQUENCES: usize = 24;
const STEPS: usize = 48;

/// A differential test of [`Store::poll`] against the state machine: random
/// sequences of polls (by the right client or another, with the right
/// verifier, none or another, with a proof of the bound DPoP key, none or
/// another), approvals, denials, redemptions, clock steps
/// and expiry, played through the store (alternating handles) and through
/// [`PollAttempt::judge`] on a model record. After every step the answer
/// must be the model's and the stored record must equal the model, field for
/// field. A store that answers `Undecided` for a poll it could decide passes
/// only if it wrote nothing. The seed is in every failure message.
pub async fn polls_match_the_state_machine(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    use rand::{Rng as _, SeedableRng as _};
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let handles = (store, peer);
    let other_client = ClientId::new("another-client");
    let other_challenge = CodeChallenge::from_verifier(&"o".repeat(43)).expect("well formed");
    let other_key = JwkThumbprint::from_base64url(&"o".repeat(43)).expect("well formed");
    for sequence in 0..SEQUENCES {
        let rules = differential_rules()[sequence % 3];
        let base = base_time();
        let mut model = pending_record(base);
        model.interval =
            Interval::from_secs([1, 2, 5, 7][rng.random_range(0..4)]).expect("not zero");
        let challenge = rng
            .random_bool(0.5)
            .then(|| CodeChallenge::from_verifier(&"v".repeat(43)).expect("well formed"));
        Arc::make_mut(&mut model.request).code_challenge = challenge.clone();
        let key = JwkThumbprint::from_base64url(&"k".repeat(43)).expect("well formed");
        Arc::make_mut(&mut model.request).dpop_jkt = rng.random_bool(0.4).then_some(key);
        insert(&*handles.0, &model, base).await;
        let hash = model.device_code_hash;
        let mut now = base;
        for step in 0..STEPS {
            let elapsed = (now - base).whole_milliseconds();
            let at = |what: &str| {
                format!("seed {seed}, sequence {sequence}, step {step} ({what} at +{elapsed} ms)")
            };
            let handle = either(step, &handles);
            match rng.random_range(0..16) {
                0..=8 => {
                    let client = if rng.random_bool(0.85) {
                        &model.request.client_id
                    } else {
                        &other_client
                    };
                    let sent = match rng.random_range(0..8) {
                        0 => None,
                        1 => Some(&other_challenge),
                        _ => challenge.as_ref(),
                    };
                    let proof = match rng.random_range(0..6) {
                        0 => None,
                        1 => Some(&other_key),
                        _ => Some(&key),
                    };
                    let attempt = PollAttempt::new(client, sent, proof, now, &rules);
                    let got = ok("poll", handle.poll(&hash, &attempt).await);
                    match attempt.judge(&model) {
                        Some(_) if got == Polled::Undecided(Some(model.clone())) => {}
                        Some((want, next)) => {
                            expect_eq(&got, &want, at("a poll the store judged"));
                            if let Some(next) = next {
                                model = next;
                            }
                        }
                        None => expect_eq(
                            &got,
                            &Polled::Undecided(Some(model.clone())),
                            at("a poll the store must leave to the crate"),
                        ),
                    }
                }
                9..=10 => {
                    let millis = [0, 1, 250, 1_000, 2_500, 3_999, 4_000, 5_000, 6_500, 11_000];
                    now += Duration::milliseconds(millis[rng.random_range(0..millis.len())]);
                }
                11 => {
                    // To a pace boundary of the last poll, or a microsecond
                    // before it: where a rule that drifted shows first.
                    if let Some(last) = model.last_poll {
                        let interval = model.interval.duration();
                        let edge = match rng.random_range(0..3) {
                            0 => interval - rules.leeway,
                            1 => interval / 2,
                            _ => interval,
                        };
                        let micro = Duration::microseconds(rng.random_range(0..2));
                        now = now.max(last + edge - micro);
                    }
                }
                12 => {
                    // To expiry, a microsecond before it, or past it, now and
                    // then; never past purge_at.
                    if rng.random_bool(0.3) {
                        let offsets = [-1, 0, 0, 1_000_000, 30_000_000];
                        let offset = offsets[rng.random_range(0..offsets.len())];
                        now = now.max(model.request.expires_at + Duration::microseconds(offset));
                    }
                }
                13 => {
                    let next = if rng.random_bool(0.7) {
                        model.approve(approval(now, "alice"), now)
                    } else {
                        model.deny(now)
                    };
                    if let Ok(next) = next {
                        expect_cas(&*handle, model.version, &next, true, &at("approve or deny"))
                            .await;
                        model = next;
                    }
                }
                _ => {
                    // The crate's redemption: take the approval, then mark it
                    // redeemed (or free it, as after a failing issuer).
                    let poll = model.poll(now, &rules);
                    if let (PollOutcome::Redeem(_), Some(taken)) = (&poll.outcome, poll.next) {
                        expect_cas(
                            &*handle,
                            model.version,
                            &taken,
                            true,
                            &at("take the approval"),
                        )
                        .await;
                        let done = if rng.random_bool(0.8) {
                            taken.redeemed(now)
                        } else {
                            taken.release_redemption()
                        }
                        .expect("a redeeming record");
                        expect_cas(
                            &*handle,
                            taken.version,
                            &done,
                            true,
                            &at("redeem or release"),
                        )
                        .await;
                        model = done;
                    }
                }
            }
            let other = either(step + 1, &handles);
            expect_eq(
                stored(&*other, &hash).await,
                model.clone(),
                at("the stored record after the step must be the state machine's"),
            );
        }
    }
}

/// Many tasks on both handles poll one pending record through
/// [`Store::poll`] at one instant while another approves it: the approval is
/// never undone, and at most one poll is answered on time.
pub async fn racing_polls_never_undo_an_approval(store: Arc<dyn Store>, peer: Arc<dyn Store>) {
    let base = base_time();
    let rules = PollingRules::default();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let pair = (store, peer);
    let hash = record.device_code_hash;
    let client = record.request.client_id.clone();
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let handle = either(i, &pair);
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let attempt = PollAttempt::new(&client, None, None, base, &rules);
            ok("poll", handle.poll(&hash, &attempt).await)
        }));
    }
    // The approval, as the verification endpoint writes it: read, then
    // compare-and-set, again while polls move the version.
    let approver = pair.1.clone();
    let approved = loop {
        let current = stored(&*approver, &hash).await;
        let next = current
            .approve(approval(base, "alice"), base)
            .expect("a live pending record");
        if cas(&*approver, current.version, &next).await {
            break next;
        }
    };
    let mut on_time = 0;
    for task in tasks {
        if task.await.expect("a poll task") == Polled::Pending {
            on_time += 1;
        }
    }
    if on_time > 1 {
        panic!("{on_time} polls at one instant were answered on time; the contract allows one");
    }
    let last = stored(&*pair.0, &hash).await;
    expect_eq(
        status_name(&last.status),
        "approved",
        "polls racing an approval must never undo it",
    );
    expect_eq(
        last.status.approval(),
        approved.status.approval(),
        "the stored approval must be the one written",
    );
}

/// For a store that overrides [`Store::poll`] to judge pending polls itself
/// (not part of [`run`], since the default leaves every poll to the crate):
/// checks that it does. An on-time poll is `Pending` with the last poll and
/// the next version stored; one a second later is `SlowDown` with the
/// interval grown by 5 s; one after the new interval is on time again; a poll
/// of an approved record is `Undecided` with the record as stored.
pub async fn judges_pending_polls(store: Arc<dyn Store>) {
    let base = base_time();
    let rules = PollingRules::default();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let client = &record.request.client_id;
    let hash = &record.device_code_hash;
    let at = |secs| PollAttempt::new(client, None, None, base + Duration::seconds(secs), &rules);
    expect_eq(
        ok("poll", store.poll(hash, &at(0)).await),
        Polled::Pending,
        "the first poll of a pending record, judged by the store",
    );
    let on_time = stored(&*store, hash).await;
    expect_eq(
        (on_time.version, on_time.last_poll),
        (1, Some(base)),
        "an on-time poll stores its time as the last poll, at the next version",
    );
    let slowed = Interval::from_secs(10).expect("not zero");
    let mut after = on_time.clone();
    after.interval = slowed;
    after.version = 2;
    expect_eq(
        ok("poll", store.poll(hash, &at(1)).await),
        Polled::SlowDown(slowed, Box::new(after.clone())),
        "a poll a second after an on-time one, judged by the store",
    );
    expect_eq(
        stored(&*store, hash).await,
        after.clone(),
        "a slow_down stores the grown interval, at the next version",
    );
    expect_eq(
        ok("poll", store.poll(hash, &at(11)).await),
        Polled::Pending,
        "a poll after the grown interval",
    );
    let pending = stored(&*store, hash).await;
    let approved = pending
        .approve(approval(base, "alice"), base + Duration::seconds(11))
        .expect("live");
    expect_cas(&*store, pending.version, &approved, true, "approve").await;
    expect_eq(
        ok("poll", store.poll(hash, &at(12)).await),
        Polled::Undecided(Some(approved)),
        "a poll of an approved record is the crate's to judge",
    );
}
