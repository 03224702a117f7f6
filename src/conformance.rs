//! The storage conformance suite: checks that a [`Store`] or an
//! [`AttemptLimiter`] keeps the contract the crate relies on.
//!
//! An adapter's tests call it with one line, on a multi-threaded Tokio runtime
//! (the races run on several threads):
//!
//! ```
//! # tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use device_grant::{MemoryLimiter, MemoryStore, Store, AttemptLimiter};
//!
//! device_grant::conformance::run(|| async { Arc::new(MemoryStore::new()) as Arc<dyn Store> }).await;
//! device_grant::conformance::run_limiter(|| async {
//!     Arc::new(MemoryLimiter::new()) as Arc<dyn AttemptLimiter>
//! })
//! .await;
//! # });
//! ```
//!
//! The factory is called once per check and must return a fresh, empty,
//! isolated store (a new key prefix, a new schema…). Each check panics with a
//! message naming the broken rule.
//!
//! Times are taken near the real clock (records expire ten minutes from now),
//! so that stores whose keys expire on the server's own clock (Redis TTLs)
//! keep every record the checks still look at.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use time::{Duration, OffsetDateTime};

use crate::host::limiter::{Admission, AttemptLimiter, Budget, LimiterKey};
use crate::host::store::{Inserted, Store};
use crate::protocol::authorization::{
    Approval, AuthorizationId, DeviceAuthorization, PollOutcome, RequestContext, RequestDetails,
    Status, Subject,
};
use crate::protocol::client::ClientId;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::polling::{Interval, PollingRules};
use crate::protocol::scope::ScopeSet;
use crate::protocol::user_code::UserCodeHash;

/// Seconds from the base time to `expires_at` of the records the checks make.
pub const EXPIRES_IN: i64 = 600;
/// Seconds from the base time to `purge_at` of the records the checks make.
pub const PURGE_IN: i64 = 900;

/// How many tasks each race runs.
const RACERS: usize = 16;

/// Runs every store check, each on a fresh store from `factory`.
pub async fn run<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    insert_and_look_up(factory().await).await;
    records_round_trip_exactly(factory().await).await;
    user_codes_are_unique_among_live_records(factory().await).await;
    transitions_are_compare_and_set(factory().await).await;
    user_code_index_dies_with_pending(factory().await).await;
    expiry_and_retention(factory().await).await;
    purge_deletes_only_what_is_due(factory().await).await;
    poll_updates_never_undo_a_status(factory().await).await;
    racing_redeems_have_one_winner(factory().await).await;
    approve_racing_deny_has_one_winner(factory().await).await;
    polls_racing_approval_lose_nothing(factory().await).await;
    racing_inserts_of_one_user_code_have_one_winner(factory().await).await;
}

/// Runs every limiter check, each on a fresh limiter from `factory`.
pub async fn run_limiter<F, Fut>(factory: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn AttemptLimiter>>,
{
    limiter_spends_and_refunds(factory().await).await;
    limiter_windows_and_keys_are_separate(factory().await).await;
    limiter_budgets_are_counted_apart(factory().await).await;
    limiter_purge_keeps_live_counters(factory().await).await;
    racing_attempts_never_overspend(factory().await).await;
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
    }
}

async fn insert(store: &dyn Store, record: &DeviceAuthorization, now: OffsetDateTime) {
    let inserted = store
        .insert(record, now)
        .await
        .unwrap_or_else(|e| panic!("insert failed: {e}"));
    assert_eq!(
        inserted,
        Inserted::Stored,
        "insert of a record with a fresh user code must store it"
    );
}

async fn get(store: &dyn Store, hash: &DeviceCodeHash) -> Option<DeviceAuthorization> {
    store
        .by_device_code(hash)
        .await
        .unwrap_or_else(|e| panic!("by_device_code failed: {e}"))
}

async fn get_by_user_code(
    store: &dyn Store,
    hash: &UserCodeHash,
    now: OffsetDateTime,
) -> Option<DeviceAuthorization> {
    store
        .by_user_code(hash, now)
        .await
        .unwrap_or_else(|e| panic!("by_user_code failed: {e}"))
}

async fn cas(store: &dyn Store, expected: u64, next: &DeviceAuthorization) -> bool {
    store
        .compare_and_set(expected, next)
        .await
        .unwrap_or_else(|e| panic!("compare_and_set failed: {e}"))
}

/// Inserts, then finds the record by both hashes; unknown hashes find nothing.
pub async fn insert_and_look_up(store: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    assert_eq!(
        get(&*store, &record.device_code_hash).await,
        None,
        "a fresh store must not hold a record it was never given"
    );
    insert(&*store, &record, base).await;
    assert_eq!(
        get(&*store, &record.device_code_hash).await.as_ref(),
        Some(&record),
        "by_device_code must return the inserted record, unchanged"
    );
    assert_eq!(
        get_by_user_code(&*store, &record.user_code_hash, base)
            .await
            .as_ref(),
        Some(&record),
        "by_user_code must return the pending, unexpired record of its user code"
    );
    assert_eq!(
        get(&*store, &DeviceCodeHash(random_bytes())).await,
        None,
        "by_device_code of an unknown hash must return None"
    );
    assert_eq!(
        get_by_user_code(&*store, &UserCodeHash(random_bytes()), base).await,
        None,
        "by_user_code of an unknown hash must return None"
    );
    let stranger = pending_record(base);
    assert!(
        !cas(
            &*store,
            0,
            &stranger.approve(approval(base, "x"), base).unwrap()
        )
        .await,
        "compare_and_set of a record that was never inserted must return false"
    );
    assert_eq!(
        get(&*store, &stranger.device_code_hash).await,
        None,
        "compare_and_set must never create a record"
    );
}

/// Every field survives storage exactly: context, approval data, times with
/// sub-second precision, interval and last poll.
pub async fn records_round_trip_exactly(store: Arc<dyn Store>) {
    let base = base_time();
    let mut record = pending_record(base);
    let mut extra = std::collections::BTreeMap::new();
    extra.insert("device".to_owned(), "Living-room TV ✓".to_owned());
    Arc::make_mut(&mut record.request).context = RequestContext {
        ip: Some("2001:db8::7".parse().unwrap()),
        user_agent: Some("TV/1.0 \"quoted\" \\ back".to_owned()),
        extra,
    };
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
            },
            base,
        )
        .unwrap();
    next.last_poll = Some(base + Duration::milliseconds(1500));
    next.interval = Interval::from_secs(15).unwrap();
    assert!(
        cas(&*store, 0, &next).await,
        "compare_and_set from the stored version must succeed"
    );
    assert_eq!(
        get(&*store, &record.device_code_hash).await.as_ref(),
        Some(&next),
        "the stored record must read back exactly as written (context, approval data, times, interval)"
    );
}

/// A user-code hash held by a live record cannot be inserted again; it can
/// once that record has expired or left `Pending`.
pub async fn user_codes_are_unique_among_live_records(store: Arc<dyn Store>) {
    let base = base_time();
    let first = pending_record(base);
    insert(&*store, &first, base).await;

    let clash = pending_with_user_code(base, first.user_code_hash);
    let taken = store
        .insert(&clash, base + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        taken,
        Inserted::UserCodeTaken,
        "insert must refuse a user code held by a pending, unexpired record"
    );
    assert_eq!(
        get(&*store, &clash.device_code_hash).await,
        None,
        "a refused insert must store nothing"
    );
    assert_eq!(
        get_by_user_code(&*store, &first.user_code_hash, base)
            .await
            .map(|r| r.id),
        Some(first.id),
        "a refused insert must leave the user code with its holder"
    );
    let late = base + Duration::seconds(EXPIRES_IN - 1);
    assert_eq!(
        store.insert(&clash, late).await.unwrap(),
        Inserted::UserCodeTaken,
        "a user code is held until the very end of its holder's lifetime"
    );

    // Once the holder has expired, its user code is free again.
    let expiry = first.request.expires_at;
    let mut reuse = pending_with_user_code(expiry, first.user_code_hash);
    Arc::make_mut(&mut reuse.request).created_at = expiry;
    assert_eq!(
        store.insert(&reuse, expiry).await.unwrap(),
        Inserted::Stored,
        "a user code must be free again once its holder has expired (now == expires_at)"
    );
    assert_eq!(
        get_by_user_code(&*store, &first.user_code_hash, expiry)
            .await
            .map(|r| r.id),
        Some(reuse.id),
        "by_user_code must find the new holder of a reused user code"
    );
    assert!(
        get(&*store, &first.device_code_hash).await.is_some(),
        "an expired record must be kept (until purge_at) when its user code is reused"
    );

    // Once the holder has left Pending, its user code is free again.
    let approved = pending_record(base);
    insert(&*store, &approved, base).await;
    assert!(
        cas(
            &*store,
            0,
            &approved.approve(approval(base, "a"), base).unwrap()
        )
        .await
    );
    let after = pending_with_user_code(base, approved.user_code_hash);
    assert_eq!(
        store.insert(&after, base).await.unwrap(),
        Inserted::Stored,
        "a user code must be free again once its holder has left Pending"
    );
}

/// Every transition writes only from the version it was computed from.
pub async fn transitions_are_compare_and_set(store: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    insert(&*store, &record, base).await;

    let approved = record.approve(approval(base, "alice"), base).unwrap();
    let denied = record.deny(base).unwrap();
    assert!(
        cas(&*store, 0, &approved).await,
        "pending→approved from version 0 must succeed"
    );
    assert!(
        !cas(&*store, 0, &denied).await,
        "pending→denied computed from a stale version must fail"
    );
    assert!(
        !cas(&*store, 0, &approved).await,
        "the same transition applied twice must fail the second time"
    );
    assert_eq!(
        get(&*store, &record.device_code_hash).await.as_ref(),
        Some(&approved),
        "a failed compare_and_set must change nothing"
    );

    let mut skipping = approved.clone();
    skipping.version = 5;
    assert!(
        !cas(&*store, 1, &skipping).await,
        "compare_and_set must refuse a next record whose version is not expected + 1"
    );

    let rules = PollingRules::default();
    let redeem = approved.poll(base, &rules);
    assert!(matches!(redeem.outcome, PollOutcome::Redeem(_)));
    let redeemed = redeem.next.unwrap();
    assert!(
        cas(&*store, 1, &redeemed).await,
        "approved→redeemed from version 1 must succeed"
    );
    assert!(
        !cas(&*store, 1, &redeemed).await,
        "approved→redeemed must succeed once only"
    );
    let stored = get(&*store, &record.device_code_hash).await.unwrap();
    assert_eq!(
        stored.version, 2,
        "each transition must bump the version by one"
    );
    assert!(
        matches!(stored.status, Status::Redeemed { .. }),
        "the record must be redeemed"
    );

    let other = pending_record(base);
    insert(&*store, &other, base).await;
    assert!(
        cas(&*store, 0, &other.deny(base).unwrap()).await,
        "pending→denied must succeed"
    );
    assert!(
        !cas(
            &*store,
            0,
            &other.approve(approval(base, "b"), base).unwrap()
        )
        .await,
        "pending→approved after a deny must fail"
    );
    assert!(matches!(
        get(&*store, &other.device_code_hash).await.unwrap().status,
        Status::Denied { .. }
    ));
}

/// `by_user_code` returns a record only while it is pending; pending updates
/// (polls, slow downs) keep the index alive.
pub async fn user_code_index_dies_with_pending(store: Arc<dyn Store>) {
    let base = base_time();
    let rules = PollingRules::default();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let polled = record.poll(base, &rules).next.unwrap();
    assert!(cas(&*store, 0, &polled).await);
    let slowed = polled
        .poll(base + Duration::seconds(1), &rules)
        .next
        .unwrap();
    assert!(cas(&*store, 1, &slowed).await);
    assert_eq!(
        get_by_user_code(&*store, &record.user_code_hash, base)
            .await
            .as_ref(),
        Some(&slowed),
        "a pending record updated by polls must stay reachable by user code, as updated"
    );
    assert!(
        cas(
            &*store,
            2,
            &slowed.approve(approval(base, "a"), base).unwrap()
        )
        .await
    );
    assert_eq!(
        get_by_user_code(&*store, &record.user_code_hash, base).await,
        None,
        "by_user_code must not return an approved record"
    );

    let denied = pending_record(base);
    insert(&*store, &denied, base).await;
    assert!(cas(&*store, 0, &denied.deny(base).unwrap()).await);
    assert_eq!(
        get_by_user_code(&*store, &denied.user_code_hash, base).await,
        None,
        "by_user_code must not return a denied record"
    );
}

/// An expired record leaves the user-code index but stays readable by device
/// code until `purge_at`.
pub async fn expiry_and_retention(store: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let last = base + Duration::seconds(EXPIRES_IN) - Duration::milliseconds(1);
    assert!(
        get_by_user_code(&*store, &record.user_code_hash, last)
            .await
            .is_some(),
        "by_user_code must return the record until its very last instant"
    );
    assert_eq!(
        get_by_user_code(&*store, &record.user_code_hash, record.request.expires_at).await,
        None,
        "by_user_code must not return a record at or after expires_at"
    );
    assert!(
        get(&*store, &record.device_code_hash).await.is_some(),
        "an expired record must still be returned by device code until purge_at \
         (late polls get expired_token, replays are recognized)"
    );
}

/// `purge_expired` deletes exactly the records whose `purge_at` has come.
pub async fn purge_deletes_only_what_is_due(store: Arc<dyn Store>) {
    let base = base_time();
    let early = pending_record(base);
    let redeemed = pending_record(base);
    let mut late = pending_record(base);
    late.purge_at = base + Duration::seconds(PURGE_IN + 60);
    for r in [&early, &redeemed, &late] {
        insert(&*store, r, base).await;
    }
    let a = redeemed.approve(approval(base, "a"), base).unwrap();
    assert!(cas(&*store, 0, &a).await);

    let before = early.purge_at - Duration::seconds(1);
    assert_eq!(
        store.purge_expired(before).await.unwrap(),
        0,
        "purge_expired must delete nothing before purge_at"
    );
    assert!(get(&*store, &early.device_code_hash).await.is_some());
    let n = store.purge_expired(early.purge_at).await.unwrap();
    assert_eq!(
        n, 2,
        "purge_expired(purge_at) must delete exactly the two due records and count them"
    );
    assert_eq!(
        get(&*store, &early.device_code_hash).await,
        None,
        "a purged record must be gone"
    );
    assert_eq!(
        get(&*store, &redeemed.device_code_hash).await,
        None,
        "a purged record must be gone"
    );
    assert!(
        get(&*store, &late.device_code_hash).await.is_some(),
        "purge_expired must keep a record whose purge_at has not come"
    );
    assert_eq!(
        store.purge_expired(early.purge_at).await.unwrap(),
        0,
        "a second purge at the same time must find nothing"
    );
}

/// A poll computed before an approval (or a deny) cannot overwrite it.
pub async fn poll_updates_never_undo_a_status(store: Arc<dyn Store>) {
    let base = base_time();
    let rules = PollingRules::default();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let on_time = record.poll(base, &rules).next.unwrap();
    let approved = record.approve(approval(base, "alice"), base).unwrap();
    assert!(cas(&*store, 0, &approved).await);
    assert!(
        !cas(&*store, 0, &on_time).await,
        "a poll's last_poll update computed before the approval must fail"
    );
    let mut slowed = record.clone();
    slowed.version = 1;
    slowed.interval = Interval::from_secs(10).unwrap();
    assert!(
        !cas(&*store, 0, &slowed).await,
        "a slow_down interval update computed before the approval must fail"
    );
    assert_eq!(
        get(&*store, &record.device_code_hash).await.as_ref(),
        Some(&approved),
        "the approval must survive stale poll updates"
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
        let record = get(store, hash).await.expect("the record must exist");
        let poll = record.poll(now, rules);
        match &poll.next {
            Some(next) if !cas(store, record.version, next).await => continue,
            _ => return poll.outcome,
        }
    }
    panic!("a poll lost 10 000 compare-and-set rounds in a row: the store is not making progress");
}

/// Many tasks redeem one approved record: exactly one gets the approval.
pub async fn racing_redeems_have_one_winner(store: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    assert!(
        cas(
            &*store,
            0,
            &record.approve(approval(base, "alice"), base).unwrap()
        )
        .await
    );
    let winners = Arc::new(AtomicUsize::new(0));
    let replays = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (store, winners, replays) = (store.clone(), winners.clone(), replays.clone());
        let hash = record.device_code_hash;
        tasks.push(tokio::spawn(async move {
            match poll_until_settled(&*store, &hash, base, &PollingRules::default()).await {
                PollOutcome::Redeem(_) => winners.fetch_add(1, Ordering::SeqCst),
                PollOutcome::Replay => replays.fetch_add(1, Ordering::SeqCst),
                other => {
                    panic!("a poll of an approved record must redeem or replay, got {other:?}")
                }
            };
        }));
    }
    for t in tasks {
        t.await.expect("a racing task panicked");
    }
    assert_eq!(
        winners.load(Ordering::SeqCst),
        1,
        "exactly one of {RACERS} racing polls must redeem an approved code"
    );
    assert_eq!(replays.load(Ordering::SeqCst), RACERS - 1);
}

/// Approvals race denials on one pending record: exactly one wins, and the
/// record shows the winner.
pub async fn approve_racing_deny_has_one_winner(store: Arc<dyn Store>) {
    let base = base_time();
    let record = pending_record(base);
    insert(&*store, &record, base).await;
    let approvals = Arc::new(AtomicUsize::new(0));
    let denials = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..RACERS {
        let (store, approvals, denials) = (store.clone(), approvals.clone(), denials.clone());
        let hash = record.device_code_hash;
        tasks.push(tokio::spawn(async move {
            for _ in 0..10_000 {
                let current = get(&*store, &hash).await.expect("the record must exist");
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
            panic!("an approve/deny lost 10 000 rounds in a row");
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
        "exactly one of racing approve/deny must win (approvals {a}, denials {d})"
    );
    let stored = get(&*store, &record.device_code_hash).await.unwrap();
    match stored.status {
        Status::Approved { .. } => assert_eq!(a, 1, "the record is approved but no approval won"),
        Status::Denied { .. } => assert_eq!(d, 1, "the record is denied but no denial won"),
        other => panic!("after the race the record must be approved or denied, is {other:?}"),
    }
    assert_eq!(stored.version, 1, "one transition must make version 1");
}

/// Pollers hammer a pending record while the person approves: the approval is
/// never lost, and it is redeemed exactly once.
pub async fn polls_racing_approval_lose_nothing(store: Arc<dyn Store>) {
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
    let redeemed = Arc::new(AtomicUsize::new(0));
    let mut pollers = Vec::new();
    for p in 0..RACERS - 1 {
        let (store, redeemed, rules) = (store.clone(), redeemed.clone(), rules);
        pollers.push(tokio::spawn(async move {
            for step in 0..40i64 {
                let now = base + Duration::milliseconds(step * 700 + p as i64);
                match poll_until_settled(&*store, &hash, now, &rules).await {
                    PollOutcome::Redeem(a) => {
                        assert_eq!(
                            a.subject.as_str(),
                            "alice",
                            "the redeemed approval must be the person's"
                        );
                        redeemed.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    PollOutcome::Replay => return,
                    PollOutcome::Pending | PollOutcome::SlowDown(_) => {
                        tokio::task::yield_now().await
                    }
                    other => panic!("unexpected poll outcome {other:?}"),
                }
            }
        }));
    }
    let approver = {
        let store = store.clone();
        tokio::spawn(async move {
            for _ in 0..10_000 {
                let current = get(&*store, &hash).await.expect("the record must exist");
                let next = current
                    .approve(approval(base, "alice"), base + Duration::seconds(1))
                    .expect("nothing but the approver changes the status");
                if cas(&*store, current.version, &next).await {
                    return;
                }
                tokio::task::yield_now().await;
            }
            panic!("the approval lost 10 000 rounds to polls in a row");
        })
    };
    approver.await.expect("the approver panicked");
    for t in pollers {
        t.await.expect("a poller panicked");
    }
    let stored = get(&*store, &hash).await.unwrap();
    match &stored.status {
        Status::Approved { approval } | Status::Redeemed { approval, .. } => {
            assert_eq!(
                approval.subject.as_str(),
                "alice",
                "the approval must survive the polls"
            )
        }
        other => panic!("an approval racing polls was lost: the record is {other:?}"),
    }
    let n = redeemed.load(Ordering::SeqCst);
    assert!(n <= 1, "an approval was redeemed {n} times");
    if n == 0 {
        let outcome =
            poll_until_settled(&*store, &hash, base + Duration::seconds(60), &rules).await;
        assert!(
            matches!(outcome, PollOutcome::Redeem(_)),
            "the surviving approval must be redeemable, got {outcome:?}"
        );
    }
}

/// Many inserts race for one user code: exactly one is stored.
pub async fn racing_inserts_of_one_user_code_have_one_winner(store: Arc<dyn Store>) {
    let base = base_time();
    let code = UserCodeHash(random_bytes());
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let record = pending_with_user_code(base, code);
            let inserted = store.insert(&record, base).await.expect("insert failed");
            (inserted, record)
        }));
    }
    let mut stored = Vec::new();
    for t in tasks {
        let (inserted, record) = t.await.expect("an inserting task panicked");
        let found = get(&*store, &record.device_code_hash).await;
        match inserted {
            Inserted::Stored => stored.push(record),
            Inserted::UserCodeTaken => {
                assert_eq!(found, None, "a refused insert must store nothing")
            }
        }
    }
    assert_eq!(
        stored.len(),
        1,
        "exactly one of racing inserts of one user code must be stored"
    );
    assert_eq!(
        get_by_user_code(&*store, &code, base).await.map(|r| r.id),
        Some(stored[0].id),
        "the user code must point at the one stored record"
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

async fn acquire(limiter: &dyn AttemptLimiter, key: &LimiterKey, now: OffsetDateTime) -> Admission {
    limiter
        .acquire(key, &budget(), now)
        .await
        .unwrap_or_else(|e| panic!("acquire failed: {e}"))
}

/// A budget of three: three admitted, the fourth refused with the window's
/// remaining time; a refund gives one back.
pub async fn limiter_spends_and_refunds(limiter: Arc<dyn AttemptLimiter>) {
    let now = budget().window_start(base_time()) + Duration::seconds(10);
    let key = limiter_key();
    for i in 0..3 {
        assert_eq!(
            acquire(&*limiter, &key, now).await,
            Admission::Admitted,
            "attempt {} of a budget of 3 must be admitted",
            i + 1
        );
    }
    assert_eq!(
        acquire(&*limiter, &key, now).await,
        Admission::Exhausted {
            retry_after: budget().retry_after(now)
        },
        "the 4th attempt of a budget of 3 must be refused, retry after the window"
    );
    assert_eq!(
        acquire(&*limiter, &key, now).await,
        Admission::Exhausted {
            retry_after: budget().retry_after(now)
        },
        "a refused attempt must spend nothing and stay refused"
    );
    limiter.refund(&key, &budget(), now).await.unwrap();
    assert_eq!(
        acquire(&*limiter, &key, now).await,
        Admission::Admitted,
        "a refund must give one attempt back"
    );
    assert!(matches!(
        acquire(&*limiter, &key, now).await,
        Admission::Exhausted { .. }
    ));
}

/// Keys are counted apart, and each window starts from a full budget.
pub async fn limiter_windows_and_keys_are_separate(limiter: Arc<dyn AttemptLimiter>) {
    let now = budget().window_start(base_time()) + Duration::seconds(10);
    let (a, b) = (limiter_key(), limiter_key());
    for _ in 0..3 {
        assert_eq!(acquire(&*limiter, &a, now).await, Admission::Admitted);
    }
    assert!(matches!(
        acquire(&*limiter, &a, now).await,
        Admission::Exhausted { .. }
    ));
    assert_eq!(
        acquire(&*limiter, &b, now).await,
        Admission::Admitted,
        "another key's spending must not count against this one"
    );
    let next_window = budget().window_start(now) + budget().window;
    assert_eq!(
        acquire(&*limiter, &a, next_window).await,
        Admission::Admitted,
        "a new window must start with a full budget"
    );
    // A refund in another window must not give back this window's attempts.
    for _ in 0..2 {
        assert_eq!(
            acquire(&*limiter, &a, next_window).await,
            Admission::Admitted
        );
    }
    limiter.refund(&a, &budget(), now).await.unwrap();
    assert!(
        matches!(
            acquire(&*limiter, &a, next_window).await,
            Admission::Exhausted { .. }
        ),
        "a refund for a past window must not refill the current one"
    );
}

/// Many concurrent attempts on one key: exactly the budget is admitted.
pub async fn racing_attempts_never_overspend(limiter: Arc<dyn AttemptLimiter>) {
    let now = budget().window_start(base_time()) + Duration::seconds(10);
    let key = limiter_key();
    let admitted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..RACERS {
        let (limiter, key, admitted) = (limiter.clone(), key.clone(), admitted.clone());
        tasks.push(tokio::spawn(async move {
            if acquire(&*limiter, &key, now).await == Admission::Admitted {
                admitted.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.expect("an attempting task panicked");
    }
    assert_eq!(
        admitted.load(Ordering::SeqCst),
        budget().attempts as usize,
        "{RACERS} racing attempts on a budget of {} must admit exactly that many",
        budget().attempts
    );
}

/// Budgets of different windows, interleaved on shared and separate keys over
/// more than 10,000 operations with windows rolling over and refunds landing in
/// past windows, each answer checked against an exact model: a counter is one
/// key and one window length, whatever the other budgets do (a host may count
/// one key under several budgets, such as 5 a minute and 50 an hour).
pub async fn limiter_budgets_are_counted_apart(limiter: Arc<dyn AttemptLimiter>) {
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
    for step in 0..OPS {
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
            limiter
                .refund(&keys[k], &budgets[b], then)
                .await
                .unwrap_or_else(|e| panic!("refund failed: {e}"));
            let count = model
                .entry((k, b, budgets[b].window_start(then)))
                .or_default();
            *count = count.saturating_sub(1);
            continue;
        }
        let got = limiter
            .acquire(&keys[k], budget, now)
            .await
            .unwrap_or_else(|e| panic!("acquire failed: {e}"));
        let count = model.entry((k, b, budget.window_start(now))).or_default();
        let want = Admission::spent(*count < budget.attempts, budget, now);
        if want == Admission::Admitted {
            *count += 1;
            history.push((k, b, now));
            if history.len() > 64 {
                history.remove(0);
            }
        }
        assert_eq!(
            got,
            want,
            "operation {step}: key {k} under a budget of {} per {} s had {} spent in its \
             window; the limiter answered {got:?}, the contract says {want:?}",
            budget.attempts,
            budget.window.whole_seconds(),
            if want == Admission::Admitted {
                *count - 1
            } else {
                *count
            },
        );
    }
}

/// A purge deletes only counters whose own window has ended: a long budget's
/// live counter survives a purge run after a short budget's window ended.
pub async fn limiter_purge_keeps_live_counters(limiter: Arc<dyn AttemptLimiter>) {
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
    for _ in 0..3 {
        for (key, budget) in [(&a, &short), (&b, &long)] {
            assert_eq!(
                limiter.acquire(key, budget, now).await.unwrap(),
                Admission::Admitted
            );
        }
    }
    let later = short.window_start(now) + short.window + Duration::seconds(1);
    limiter
        .purge_expired(later)
        .await
        .unwrap_or_else(|e| panic!("purge_expired failed: {e}"));
    assert!(
        matches!(
            limiter.acquire(&b, &long, later).await.unwrap(),
            Admission::Exhausted { .. }
        ),
        "a purge after a 60 s window ended must keep a live 3600 s window's spent counter"
    );
    assert_eq!(
        limiter.acquire(&a, &short, later).await.unwrap(),
        Admission::Admitted,
        "a new 60 s window starts from a full budget"
    );
}
