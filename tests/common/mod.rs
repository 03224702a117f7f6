//! A grant wired for tests: manual clock, demo clients, an issuer that counts.
#![allow(dead_code)]
// Shared by several test binaries: `pub` for them, not for a public API.
#![allow(unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use device_grant::{
    ApprovedGrant, AuthMethod, BackendError, Client, Config, ConfigBuilder, DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationResponse, DeviceGrant, EndpointRequest, ManualClock, MemoryStore,
    OAuthError, RecordedEvents, RequestContext, ScopeSet, StaticClients, Subject, TokenIssuer,
    TokenResponse, UserCodeKey,
};

pub struct CountingIssuer(pub AtomicUsize);

#[async_trait::async_trait]
impl TokenIssuer for CountingIssuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        let n = self.0.fetch_add(1, Ordering::SeqCst);
        Ok(TokenResponse::bearer(format!(
            "at-{}-{}-{n}",
            grant.approval.subject.as_str(),
            grant.id
        )))
    }
}

pub struct Harness {
    pub grant: DeviceGrant,
    pub clock: Arc<ManualClock>,
    pub events: Arc<RecordedEvents>,
    pub issuer: Arc<CountingIssuer>,
    /// The grant's store, to look at records directly.
    pub store: Arc<MemoryStore>,
}

pub const PRINTER_SECRET: &str = "printer-secret";

pub fn clients() -> StaticClients {
    let scopes = ScopeSet::parse("openid profile email offline_access").unwrap();
    let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
    tv.allowed_scopes = scopes.clone();
    // Shows a QR code: it asks for the complete link.
    tv.verification_uri_complete = true;
    tv.default_scopes = ScopeSet::parse("profile").unwrap();
    let mut printer = Client::for_device_grant(
        "printer",
        vec![AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost],
    );
    printer.allowed_scopes = scopes;
    let mut web = Client::for_device_grant("web-only", vec![AuthMethod::None]);
    web.device_grant = false;
    // A command-line tool registered as requiring PKCE.
    let mut cli = Client::for_device_grant("cli", vec![AuthMethod::None]);
    cli.allowed_scopes = tv.allowed_scopes.clone();
    cli.require_pkce = true;
    StaticClients::new()
        .with_public(tv)
        .with_public(cli)
        .with_public(web)
        .with_confidential(printer, PRINTER_SECRET)
}

pub fn config() -> ConfigBuilder {
    Config::builder(
        "https://as.example/device",
        UserCodeKey::new(&[42; 32]).unwrap(),
    )
}

pub fn harness() -> Harness {
    harness_with(config())
}

pub fn harness_with(config: ConfigBuilder) -> Harness {
    let clock = Arc::new(ManualClock::default());
    let events = Arc::new(RecordedEvents::default());
    let issuer = Arc::new(CountingIssuer(AtomicUsize::new(0)));
    let store = Arc::new(MemoryStore::new());
    let grant = DeviceGrant::builder(config.build().unwrap(), Arc::new(clients()), issuer.clone())
        .store(store.clone())
        .clock(clock.clone())
        .events(events.clone())
        .build();
    Harness {
        grant,
        clock,
        events,
        issuer,
        store,
    }
}

pub fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

pub fn poll_body(client: &str, device_code: &str) -> String {
    format!("grant_type={DEVICE_CODE_GRANT_TYPE}&client_id={client}&device_code={device_code}")
}

/// A device authorization request with this form body, which must succeed.
pub async fn start_on(grant: &DeviceGrant, body: &str) -> DeviceAuthorizationResponse {
    grant
        .device_authorization(
            EndpointRequest::form(body.as_bytes()),
            RequestContext::default(),
        )
        .await
        .unwrap()
}

/// `sub` looks the user code of `codes` up and approves every scope asked for.
pub async fn approve_on(grant: &DeviceGrant, codes: &DeviceAuthorizationResponse, sub: &str) {
    let found = grant
        .verify(
            codes.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("test")),
        )
        .await
        .unwrap();
    let scopes = found.request.scopes.clone();
    grant
        .approve(
            &found.ticket,
            device_grant::Approve::scopes(Subject::new(sub), None, scopes),
        )
        .await
        .unwrap();
}

impl Harness {
    pub async fn start(&self, body: &str) -> DeviceAuthorizationResponse {
        start_on(&self.grant, body).await
    }

    pub async fn poll(&self, client: &str, device_code: &str) -> Result<TokenResponse, OAuthError> {
        let body = poll_body(client, device_code);
        self.grant
            .token(EndpointRequest::form(body.as_bytes()))
            .await
    }

    pub async fn approve(&self, codes: &DeviceAuthorizationResponse, sub: &str) {
        approve_on(&self.grant, codes, sub).await;
    }

    pub fn advance(&self, secs: i64) {
        self.clock.advance(time::Duration::seconds(secs));
    }
}
