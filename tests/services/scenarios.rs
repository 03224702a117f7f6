//! End-to-end scenarios through `DeviceGrant`, shared by the Redis and
//! PostgreSQL tests: several instances on one store, secrets never stored,
//! and engine failures answered as typed errors with nothing half-applied.
// Shared by several test binaries: `pub` for them, not for a public API.
#![allow(unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use device_grant::store::{
    AttemptLimiter, DeviceAuthorization, DeviceCodeHash, Inserted, LimiterKey, Status, Store,
    UserCodeHash,
};
use device_grant::{
    ApprovedGrant, AuthMethod, BackendError, Client, Config, DeviceAuthorizationResponse,
    DeviceGrant, EndpointRequest, ManualClock, RequestContext, ScopeSet, StaticClients, Subject,
    ToHttp, TokenIssuer, TokenResponse, VerificationError,
};
use time::{Duration, OffsetDateTime};

use super::Proxy;

struct Issuer(AtomicUsize);

#[async_trait::async_trait]
impl TokenIssuer for Issuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(TokenResponse::bearer(format!(
            "at-{}-{n}-{}",
            grant.approval.subject.as_str(),
            grant.id
        )))
    }
}

/// One instance of the server: its own grant over a store connection of its own.
pub fn instance(
    store: Arc<dyn Store>,
    limiter: Arc<dyn AttemptLimiter>,
    clock: Arc<ManualClock>,
) -> DeviceGrant {
    let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
    tv.allowed_scopes = ScopeSet::parse("profile").unwrap();
    let config = Config::builder(
        "https://as.example/device",
        device_grant::UserCodeKey::new(&[7; 32]).unwrap(),
    )
    .build()
    .unwrap();
    DeviceGrant::builder(
        config,
        Arc::new(StaticClients::new().with_public(tv)),
        Arc::new(Issuer(AtomicUsize::new(0))),
    )
    .store(store)
    .limiter(limiter)
    .clock(clock)
    .build()
}

/// A clock at the real time: shared stores expire keys on the server's clock.
pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(OffsetDateTime::now_utc()))
}

pub async fn ask(grant: &DeviceGrant) -> DeviceAuthorizationResponse {
    grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app&scope=profile"),
            RequestContext::default(),
        )
        .await
        .expect("device authorization")
}

fn poll_body(codes: &DeviceAuthorizationResponse) -> String {
    format!(
        "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv-app&device_code={}",
        codes.device_code.secret()
    )
}

/// A poll, as the HTTP response the device would get.
pub async fn poll(grant: &DeviceGrant, codes: &DeviceAuthorizationResponse) -> (u16, String) {
    let body = poll_body(codes);
    let http = grant
        .token(EndpointRequest::form(body.as_bytes()))
        .await
        .to_http();
    (http.status, http.body)
}

fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    v["error"].as_str().unwrap_or("").to_owned()
}

fn device_hash(codes: &DeviceAuthorizationResponse) -> DeviceCodeHash {
    codes.device_code.hash()
}

async fn record(direct: &dyn Store, codes: &DeviceAuthorizationResponse) -> DeviceAuthorization {
    direct
        .by_device_code(&device_hash(codes))
        .await
        .expect("the direct connection works")
        .expect("the record exists")
}

/// Two instances on one store: the device polls one, the person approves on
/// the other, polls race across both; then nothing secret is in storage.
pub async fn many_instances<D, F>(
    a: (Arc<dyn Store>, Arc<dyn AttemptLimiter>),
    b: (Arc<dyn Store>, Arc<dyn AttemptLimiter>),
    dump: D,
) where
    D: FnOnce() -> F,
    F: std::future::Future<Output = Vec<String>>,
{
    let clock = clock();
    let one = instance(a.0, a.1, clock.clone());
    let two = instance(b.0, b.1, clock.clone());
    let codes = ask(&one).await;
    let (status, body) = poll(&one, &codes).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "authorization_pending")
    );
    // A poll on the other instance right after: the pace is shared, so slow_down.
    let (_, body) = poll(&two, &codes).await;
    assert_eq!(
        error_of(&body),
        "slow_down",
        "the polling pace must be shared by instances"
    );

    let session_key = "session-of-bob-at-203.0.113.9";
    let session = device_grant::CodeEntry::from_key(LimiterKey::new(session_key));
    let found = two
        .verify(codes.user_code.display(), &session)
        .await
        .expect("instance two finds the request instance one created");
    two.approve(
        &found.ticket,
        device_grant::Approve::scopes(
            Subject::new("bob"),
            None,
            ScopeSet::parse("profile").unwrap(),
        ),
    )
    .await
    .expect("approve on instance two");

    // Eight polls race, four on each instance: exactly one gets tokens.
    let mut racers = Vec::new();
    for i in 0..8 {
        let grant = if i % 2 == 0 { one.clone() } else { two.clone() };
        let body = poll_body(&codes);
        racers.push(tokio::spawn(async move {
            let http = grant
                .token(EndpointRequest::form(body.as_bytes()))
                .await
                .to_http();
            (http.status, http.body)
        }));
    }
    let mut tokens = Vec::new();
    for r in racers {
        let (status, body) = r.await.unwrap();
        match status {
            200 => tokens.push(body),
            400 => assert!(
                ["invalid_grant", "authorization_pending"].contains(&error_of(&body).as_str()),
                "a losing racer waits while the winner's tokens are minted, or is a replay: {body}"
            ),
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert_eq!(
        tokens.len(),
        1,
        "exactly one of 8 polls racing over two instances gets tokens"
    );
    let token: serde_json::Value = serde_json::from_str(&tokens[0]).unwrap();
    let access_token = token["access_token"].as_str().unwrap().to_owned();

    // Wrong guesses count across instances too.
    let wrong_key = "guesser-198.51.100.7";
    let wrong = device_grant::CodeEntry::from_key(LimiterKey::new(wrong_key));
    let mut refused = false;
    let budget = device_grant::Budgets::default()
        .wrong_codes_per_key
        .attempts;
    for i in 0..=budget {
        let grant = if i % 2 == 0 { &one } else { &two };
        match grant.verify("BCDF-GHJK", &wrong).await {
            Err(VerificationError::NotFound) => {}
            Err(VerificationError::TooManyAttempts { .. }) => {
                assert_eq!(
                    i, budget,
                    "the default budget of wrong codes is counted across instances"
                );
                refused = true;
            }
            other => panic!("unexpected verification result {other:?}"),
        }
    }
    assert!(
        refused,
        "the wrong code past the budget, on any instance, must be refused"
    );

    let stored = dump().await.join("\n");
    assert!(!stored.is_empty(), "the dump must see what the store holds");
    for secret in [
        codes.device_code.secret(),
        codes.user_code.display(),
        codes.user_code.canonical(),
        access_token.as_str(),
        session_key,
        wrong_key,
    ] {
        assert!(
            !stored.contains(secret),
            "storage holds a secret (or a limiter key) in clear"
        );
    }
}

const OFF: u8 = 0;
const CUT_BEFORE_CAS: u8 = 1;
const DROP_REPLY_OF_CAS: u8 = 2;

/// A store that breaks its connection (through the proxy) right before its
/// next compare-and-set: a failure in the middle of a poll or an approval.
pub struct Tripwire {
    inner: Arc<dyn Store>,
    proxy: Arc<Proxy>,
    mode: AtomicU8,
}

#[async_trait::async_trait]
impl Store for Tripwire {
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
        match self.mode.swap(OFF, Ordering::SeqCst) {
            CUT_BEFORE_CAS => self.proxy.cut_and_wait().await,
            DROP_REPLY_OF_CAS => self.proxy.drop_replies(),
            _ => {}
        }
        self.inner.compare_and_set(expected_version, next).await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.inner.purge_expired(now).await
    }
}

/// Polls until the store answers again after `restore` (the adapter
/// reconnects on its own); bounded.
async fn poll_until_up(grant: &DeviceGrant, codes: &DeviceAuthorizationResponse) -> (u16, String) {
    for _ in 0..100 {
        let (status, body) = poll(grant, codes).await;
        if status < 500 {
            return (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the store did not come back within 10 s of the server's return");
}

/// The server goes away, hangs, and dies mid-transition: every endpoint
/// answers with OAuth JSON (503 `temporarily_unavailable`), nothing panics,
/// and after the server returns every record is whole — each failed write
/// applied entirely or not at all, its user-code index consistent with it.
///
/// `proxied` reaches the server through `proxy`, with short timeouts;
/// `direct` reaches it without, to inspect what the server holds.
pub async fn failures(proxied: Arc<dyn Store>, proxy: Arc<Proxy>, direct: Arc<dyn Store>) {
    let wire = Arc::new(Tripwire {
        inner: proxied,
        proxy: proxy.clone(),
        mode: AtomicU8::new(OFF),
    });
    let clock = clock();
    let limiter: Arc<dyn AttemptLimiter> = Arc::new(device_grant::MemoryLimiter::new());
    let grant = instance(wire.clone(), limiter, clock.clone());
    let codes = ask(&grant).await;
    let (status, body) = poll(&grant, &codes).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "authorization_pending")
    );
    assert_eq!(record(&*direct, &codes).await.version, 1);

    // The server is gone.
    proxy.cut();
    clock.advance(Duration::seconds(10));
    let (status, body) = poll(&grant, &codes).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (503, "temporarily_unavailable"),
        "a poll while the server is down must be a 503 temporarily_unavailable"
    );
    let http = grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app&scope=profile"),
            RequestContext::default(),
        )
        .await
        .to_http();
    assert_eq!(
        (http.status, error_of(&http.body).as_str()),
        (503, "temporarily_unavailable")
    );
    assert!(matches!(
        grant
            .verify(
                codes.user_code.display(),
                &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("s"))
            )
            .await,
        Err(VerificationError::Backend(BackendError::Unavailable(_)))
    ));
    proxy.restore();
    let (status, body) = poll_until_up(&grant, &codes).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "authorization_pending")
    );
    let before = record(&*direct, &codes).await;
    assert_eq!(before.version, 2, "only the answered polls wrote");

    // The connection breaks between a poll's read and its write: nothing applied.
    wire.mode.store(CUT_BEFORE_CAS, Ordering::SeqCst);
    clock.advance(Duration::seconds(10));
    let (status, body) = poll(&grant, &codes).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (503, "temporarily_unavailable")
    );
    proxy.restore();
    assert_eq!(
        record(&*direct, &codes).await,
        before,
        "a poll whose write never reached the server must change nothing"
    );

    // One more answered poll, so that the connection the approval will use
    // is warm (a driver that prepares statements has prepared the write):
    // below, the write itself must reach the server.
    clock.advance(Duration::seconds(10));
    let (status, body) = poll_until_up(&grant, &codes).await;
    assert_eq!(
        (status, error_of(&body).as_str()),
        (400, "authorization_pending")
    );
    let before = record(&*direct, &codes).await;

    // The approval's write reaches the server, its answer never comes back:
    // the approval is applied whole — status and user-code index together.
    let found = loop {
        match grant
            .verify(
                codes.user_code.display(),
                &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("s")),
            )
            .await
        {
            Ok(found) => break found,
            Err(VerificationError::Backend(_)) => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(other) => panic!("verify after restore: {other:?}"),
        }
    };
    wire.mode.store(DROP_REPLY_OF_CAS, Ordering::SeqCst);
    let approved = grant
        .approve(
            &found.ticket,
            device_grant::Approve::scopes(
                Subject::new("carol"),
                None,
                ScopeSet::parse("profile").unwrap(),
            ),
        )
        .await;
    assert!(
        matches!(
            approved,
            Err(VerificationError::Unsettled(BackendError::Timeout))
        ),
        "an approval whose answer never comes, and that cannot be read back, must say \
         its outcome is unknown, got {approved:?}"
    );
    proxy.restore();
    let after = record(&*direct, &codes).await;
    assert_eq!(
        after.version,
        before.version + 1,
        "the approval was applied once, whole"
    );
    assert!(
        matches!(after.status, Status::Approved { .. }),
        "the approval was applied whole"
    );
    assert_eq!(
        direct
            .by_user_code(&after.user_code_hash, clock.now_for_test())
            .await
            .unwrap(),
        None,
        "the user code left the index in the same step as the approval"
    );

    // The device gets its tokens, once.
    let (status, _) = poll_until_up(&grant, &codes).await;
    assert_eq!(status, 200, "the approval survived the failures");
    let (status, body) = poll(&grant, &codes).await;
    assert_eq!((status, error_of(&body).as_str()), (400, "invalid_grant"));
}

trait NowForTest {
    fn now_for_test(&self) -> OffsetDateTime;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> OffsetDateTime {
        device_grant::Clock::now(self)
    }
}
