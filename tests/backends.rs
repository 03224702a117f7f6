//! Failing and crowded backends: typed errors, JSON replies, no panic, no
//! half-applied state; and the memory store purging on its own.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use device_grant::store::{DeviceAuthorization, DeviceCodeHash, Inserted, Store, UserCodeHash};
use device_grant::{
    ApprovedGrant, BackendError, DeviceGrant, EndpointRequest, ErrorCode, ManualClock, MemoryStore,
    OAuthError, RequestContext, TokenIssuer, TokenResponse,
};
use time::OffsetDateTime;

/// Wraps a store: can be switched off (every call fails), and can claim that the
/// first `taken` user codes are taken.
struct Flaky {
    inner: MemoryStore,
    down: AtomicBool,
    taken: AtomicUsize,
}

impl Flaky {
    fn check(&self) -> Result<(), BackendError> {
        if self.down.load(Ordering::SeqCst) {
            Err(BackendError::Unavailable("connection refused".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl Store for Flaky {
    async fn insert(
        &self,
        r: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        self.check()?;
        if self.taken.load(Ordering::SeqCst) > 0 {
            self.taken.fetch_sub(1, Ordering::SeqCst);
            return Ok(Inserted::UserCodeTaken);
        }
        self.inner.insert(r, now).await
    }
    async fn by_device_code(
        &self,
        h: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.check()?;
        self.inner.by_device_code(h).await
    }
    async fn by_user_code(
        &self,
        h: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.check()?;
        self.inner.by_user_code(h, now).await
    }
    async fn compare_and_set(
        &self,
        v: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        self.check()?;
        self.inner.compare_and_set(v, next).await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.check()?;
        self.inner.purge_expired(now).await
    }
}

struct FailingIssuer;

#[async_trait::async_trait]
impl TokenIssuer for FailingIssuer {
    async fn issue(&self, _: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        Err(BackendError::other(
            "signing key unavailable at db.internal:5432",
        ))
    }
}

fn grant_with(store: Arc<dyn Store>, issuer: Arc<dyn TokenIssuer>) -> DeviceGrant {
    DeviceGrant::builder(
        common::config().build().unwrap(),
        Arc::new(common::clients()),
        issuer,
    )
    .store(store)
    .clock(Arc::new(ManualClock::default()))
    .build()
}

fn flaky() -> Arc<Flaky> {
    Arc::new(Flaky {
        inner: MemoryStore::new(),
        down: AtomicBool::new(false),
        taken: AtomicUsize::new(0),
    })
}

#[tokio::test]
async fn a_store_that_is_down_gives_503_json_and_loses_nothing() {
    let store = flaky();
    let h = common::harness();
    let grant = grant_with(store.clone(), h.issuer.clone());
    let c = grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            RequestContext::default(),
        )
        .await
        .unwrap();
    let poll = common::poll_body("tv-app", c.device_code.secret());
    store.down.store(true, Ordering::SeqCst);
    let e = grant
        .token(EndpointRequest::form(poll.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::TemporarilyUnavailable);
    let http = e.to_http();
    assert_eq!(http.status, 503);
    assert_eq!(http.header("cache-control"), Some("no-store"));
    assert!(
        !http.body.contains("connection refused"),
        "backend detail leaked: {}",
        http.body
    );
    let e = grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            RequestContext::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status(), 503);
    let v = grant
        .verify(
            c.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await;
    assert!(matches!(
        v,
        Err(device_grant::VerificationError::Backend(_))
    ));
    // Back up: the request is intact and completes.
    store.down.store(false, Ordering::SeqCst);
    let found = grant
        .verify(
            c.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    grant
        .approve(
            &found.ticket,
            device_grant::Approve::scopes(
                device_grant::Subject::new("alice"),
                None,
                found.request.scopes.clone(),
            ),
        )
        .await
        .unwrap();
    assert!(
        grant
            .token(EndpointRequest::form(poll.as_bytes()))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn user_code_collisions_are_retried_then_refused_clearly() {
    let store = flaky();
    let h = common::harness();
    let grant = grant_with(store.clone(), h.issuer.clone());
    // Seven collisions: the eighth try succeeds.
    store.taken.store(7, Ordering::SeqCst);
    assert!(
        grant
            .device_authorization(
                EndpointRequest::form(b"client_id=tv-app"),
                RequestContext::default()
            )
            .await
            .is_ok()
    );
    // More than the bounded retries: a clear 503, nothing stored.
    store.taken.store(100, Ordering::SeqCst);
    let e = grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            RequestContext::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::UserCodesExhausted));
    assert_eq!(e.to_http().status, 503);
    assert_eq!(store.inner.len(), 1);
}

#[tokio::test]
async fn an_issuer_failure_is_500_and_keeps_the_approval() {
    let store = flaky();
    let grant = grant_with(store.clone(), Arc::new(FailingIssuer));
    let c = grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            RequestContext::default(),
        )
        .await
        .unwrap();
    let found = grant
        .verify(
            c.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    grant
        .approve(
            &found.ticket,
            device_grant::Approve::scopes(
                device_grant::Subject::new("alice"),
                None,
                found.request.scopes.clone(),
            ),
        )
        .await
        .unwrap();
    let poll = common::poll_body("tv-app", c.device_code.secret());
    let e = grant
        .token(EndpointRequest::form(poll.as_bytes()))
        .await
        .unwrap_err();
    let http = e.to_http();
    assert_eq!((e.code(), http.status), (ErrorCode::ServerError, 500));
    assert!(!http.body.contains("db.internal"));
    // The approval was not spent on tokens that never came: the next poll
    // asks the issuer again (and fails again here), never `invalid_grant`.
    let again = grant
        .token(EndpointRequest::form(poll.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(again.code(), ErrorCode::ServerError);
}

#[tokio::test]
async fn the_memory_store_forgets_abandoned_requests_on_its_own() {
    let h = common::harness();
    let store = Arc::new(MemoryStore::new());
    let grant = DeviceGrant::builder(
        common::config()
            .budgets(device_grant::Budgets {
                authorizations_per_client: None,
                pending_per_client: None,
                ..device_grant::Budgets::default()
            })
            .build()
            .unwrap(),
        Arc::new(common::clients()),
        h.issuer.clone(),
    )
    .store(store.clone())
    .clock(h.clock.clone())
    .build();
    for _ in 0..2000 {
        grant
            .device_authorization(
                EndpointRequest::form(b"client_id=tv-app"),
                RequestContext::default(),
            )
            .await
            .unwrap();
    }
    assert_eq!(store.len(), 2000);
    // Past expiry and retention (600 + 600 s), new requests sweep the old away.
    // A shard is swept when a request lands in it: 20,000 requests reach each
    // of the 256 shards (2,000 may miss one, one run in ten).
    h.advance(1201);
    for _ in 0..20_000 {
        grant
            .device_authorization(
                EndpointRequest::form(b"client_id=tv-app"),
                RequestContext::default(),
            )
            .await
            .unwrap();
    }
    assert_eq!(store.len(), 20_000, "abandoned requests were not swept");
}
