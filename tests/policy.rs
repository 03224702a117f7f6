//! The host's policy at every step of the grant (initiation, approval,
//! redemption), the per-client rules of the registration (device grant off
//! unless registered, `verification_uri_complete`, the scope ceiling), the
//! report-only mode, the re-check at redemption, and the audit events a SIEM
//! reads.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use device_grant::{
    Approve, ApprovedGrant, AuthMethod, BackendError, Client, ClientId, ClientRegistry,
    ClientSecret, CodeEntry, Config, ConsentDecision, ConsentPolicy, DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationResponse, DeviceGrant, EndpointRequest, Event, ManualClock, NetworkPolicy,
    OAuthError, PolicyCheck, PolicyMode, PolicyStep, PolicyVerdict, Proximity, RecordedEvents,
    RegistrationError, RequestContext, ScopeSet, StaticClients, Subject, TokenIssuer,
    TokenResponse, UserCodeKey, VerificationError,
};

const DEVICE_IP: &str = "192.0.2.10";
const FAR_AWAY: &str = "203.0.113.5";

/// A registry whose registrations the test can change while flows run: what
/// an administrator does in a real one.
#[derive(Default)]
struct Registry(RwLock<HashMap<ClientId, Arc<Client>>>);

impl Registry {
    fn with(self, client: Client) -> Self {
        client.validate().unwrap();
        self.0
            .write()
            .unwrap()
            .insert(client.id.clone(), Arc::new(client));
        self
    }

    fn change(&self, id: &str, change: impl FnOnce(&mut Client)) {
        let mut clients = self.0.write().unwrap();
        let client = clients.get_mut(&ClientId::new(id)).unwrap();
        change(Arc::make_mut(client));
    }
}

#[async_trait::async_trait]
impl ClientRegistry for Registry {
    async fn find(&self, id: &ClientId) -> Result<Option<Arc<Client>>, BackendError> {
        Ok(self.0.read().unwrap().get(id).cloned())
    }

    async fn verify_secret(&self, _: &Client, _: &ClientSecret) -> Result<bool, BackendError> {
        Ok(false)
    }
}

/// Keeps every grant it mints tokens for.
#[derive(Default)]
struct Minted(Mutex<Vec<ApprovedGrant>>);

impl Minted {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

#[async_trait::async_trait]
impl TokenIssuer for Minted {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        self.0.lock().unwrap().push(grant.clone());
        Ok(TokenResponse::bearer("access-token-secret"))
    }
}

/// One question to the policy: the step, the client, the scopes, the
/// proximity and the approver, as text.
type Asked = (
    PolicyStep,
    String,
    String,
    Option<Proximity>,
    Option<String>,
);

/// What the policy was asked, step by step, and a fixed answer per step.
#[derive(Default)]
struct Scripted {
    asked: Mutex<Vec<Asked>>,
    answers: HashMap<&'static str, ConsentDecision>,
}

impl Scripted {
    fn refusing(step: &'static str) -> Self {
        Self {
            answers: HashMap::from([(step, ConsentDecision::Refuse)]),
            ..Self::default()
        }
    }
}

impl ConsentPolicy for Scripted {
    fn decide(&self, check: &PolicyCheck<'_>) -> ConsentDecision {
        self.asked.lock().unwrap().push((
            check.step,
            check.client.id.to_string(),
            check.scopes.to_string(),
            check.consent.map(|c| c.proximity),
            check.subject.map(|s| s.as_str().to_owned()),
        ));
        self.answers
            .get(check.step.as_str())
            .copied()
            .unwrap_or(ConsentDecision::Allow)
    }
}

fn all_scopes() -> ScopeSet {
    ScopeSet::parse("openid profile email offline_access").unwrap()
}

fn tv() -> Client {
    let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
    tv.allowed_scopes = all_scopes();
    tv.default_scopes = ScopeSet::parse("profile").unwrap();
    tv.verification_uri_complete = true;
    tv
}

/// Asks for no complete URI, and may get only `profile` through the device grant.
fn cli() -> Client {
    let mut cli = Client::for_device_grant("cli", vec![AuthMethod::None]);
    cli.allowed_scopes = all_scopes();
    cli.device_scopes = Some(ScopeSet::parse("profile").unwrap());
    cli
}

/// Registered with `Client::new`: not for the device grant.
fn web() -> Client {
    let mut web = Client::new("web", vec![AuthMethod::None]);
    web.allowed_scopes = all_scopes();
    web
}

struct World {
    grant: DeviceGrant,
    clients: Arc<Registry>,
    minted: Arc<Minted>,
    events: Arc<RecordedEvents>,
    clock: Arc<ManualClock>,
}

fn world(policy: Arc<dyn ConsentPolicy>, mode: PolicyMode) -> World {
    let clients = Arc::new(Registry::default().with(tv()).with(cli()).with(web()));
    let minted = Arc::new(Minted::default());
    let events = Arc::new(RecordedEvents::default());
    let clock = Arc::new(ManualClock::default());
    let config = Config::builder(
        "https://as.example/device",
        UserCodeKey::new(&[9; 32]).unwrap(),
    )
    .build()
    .unwrap();
    let grant = DeviceGrant::builder(config, clients.clone(), minted.clone())
        .clock(clock.clone())
        .events(events.clone())
        .consent_policy(policy)
        .policy_mode(mode)
        .build();
    World {
        grant,
        clients,
        minted,
        events,
        clock,
    }
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

fn device() -> RequestContext {
    RequestContext {
        ip: ip(DEVICE_IP),
        user_agent: Some("LivingRoomTV/2.1".to_owned()),
        ..RequestContext::default()
    }
}

impl World {
    async fn ask(
        &self,
        client: &str,
        scope: &str,
    ) -> Result<DeviceAuthorizationResponse, OAuthError> {
        let body = format!("client_id={client}&scope={}", scope.replace(' ', "%20"));
        self.grant
            .device_authorization(EndpointRequest::form(body.as_bytes()), device())
            .await
    }

    async fn approve_from(
        &self,
        codes: &DeviceAuthorizationResponse,
        approver: &str,
    ) -> Result<(), VerificationError> {
        let found = self
            .grant
            .verify(
                codes.user_code.display(),
                &CodeEntry::from_address(approver.parse().unwrap()),
            )
            .await
            .unwrap();
        self.grant
            .approve(
                &found.ticket,
                Approve::as_requested(Subject::new("alice"), ip(approver)),
            )
            .await
    }

    async fn poll(
        &self,
        client: &str,
        codes: &DeviceAuthorizationResponse,
    ) -> Result<TokenResponse, OAuthError> {
        let body = format!(
            "grant_type={DEVICE_CODE_GRANT_TYPE}&client_id={client}&device_code={}",
            codes.device_code.secret()
        );
        self.grant
            .token(EndpointRequest::form(body.as_bytes()))
            .await
    }

    fn kinds(&self) -> Vec<&'static str> {
        self.events
            .events()
            .iter()
            .map(|e| e.kind.as_str())
            .collect()
    }

    fn last(&self, kind: &str) -> Event {
        self.events
            .events()
            .into_iter()
            .rev()
            .find(|e| e.kind.as_str() == kind)
            .unwrap_or_else(|| panic!("no {kind} event in {:?}", self.kinds()))
    }
}

fn code(result: Result<impl std::fmt::Debug, OAuthError>) -> &'static str {
    result.unwrap_err().code().as_str()
}

#[tokio::test]
async fn the_device_grant_is_off_unless_registered() {
    assert!(!Client::new("web", vec![AuthMethod::None]).device_grant);
    assert!(Client::for_device_grant("tv", vec![AuthMethod::None]).device_grant);
    let w = world(Arc::new(Scripted::default()), PolicyMode::Enforce);
    let refused = w.ask("web", "profile").await;
    assert!(matches!(refused, Err(OAuthError::UnauthorizedClient)));
    assert_eq!(code(w.ask("web", "profile").await), "unauthorized_client");
    assert!(w.events.events().is_empty(), "nothing was created");
}

#[tokio::test]
async fn verification_uri_complete_only_for_the_client_that_asks() {
    let w = world(Arc::new(Scripted::default()), PolicyMode::Enforce);
    let tv = w.ask("tv-app", "profile").await.unwrap();
    let complete = tv.verification_uri_complete.as_deref().unwrap();
    assert!(complete.starts_with("https://as.example/device?user_code="));
    let body = serde_json::to_value(&tv).unwrap();
    assert!(body.get("verification_uri_complete").is_some());

    let cli = w.ask("cli", "profile").await.unwrap();
    assert_eq!(cli.verification_uri_complete, None);
    let body = serde_json::to_value(&cli).unwrap();
    assert!(body.get("verification_uri_complete").is_none(), "{body}");
    assert!(body.get("verification_uri").is_some());
}

#[tokio::test]
async fn the_scope_ceiling_is_invalid_scope_at_initiation_and_binds_approval() {
    let w = world(Arc::new(Scripted::default()), PolicyMode::Enforce);
    // Allowed to the client, above its device-grant ceiling.
    assert!(matches!(
        w.ask("cli", "openid profile").await,
        Err(OAuthError::InvalidScope)
    ));
    assert_eq!(code(w.ask("cli", "email").await), "invalid_scope");
    let codes = w.ask("cli", "profile").await.unwrap();

    // The ceiling is lowered after the device asked: the approval cannot
    // grant above it, and nothing changes.
    w.clients.change("cli", |c| {
        c.device_scopes = Some(ScopeSet::parse("openid").unwrap())
    });
    let refused = w.approve_from(&codes, DEVICE_IP).await;
    assert!(
        matches!(refused, Err(VerificationError::ScopeAboveCeiling)),
        "{refused:?}"
    );
    assert_eq!(w.last("refused").policy.unwrap().step, PolicyStep::Approval);
    assert_eq!(code(w.poll("cli", &codes).await), "authorization_pending");

    // A ceiling above the allowed scopes is not a registration.
    let mut wide = cli();
    wide.allowed_scopes = ScopeSet::parse("profile").unwrap();
    wide.device_scopes = Some(ScopeSet::parse("profile email").unwrap());
    assert!(matches!(
        StaticClients::new().try_with_public(wide),
        Err(RegistrationError::DeviceScopesNotAllowed(_))
    ));
}

#[tokio::test]
async fn the_policy_is_asked_at_each_step_with_what_it_needs() {
    let policy = Arc::new(Scripted::default());
    let w = world(policy.clone(), PolicyMode::Enforce);
    let codes = w.ask("tv-app", "openid profile").await.unwrap();
    w.approve_from(&codes, FAR_AWAY).await.unwrap();
    w.poll("tv-app", &codes).await.unwrap();
    let asked = policy.asked.lock().unwrap().clone();
    let scopes = "openid profile".to_owned();
    assert_eq!(
        asked,
        vec![
            (
                PolicyStep::Initiation,
                "tv-app".to_owned(),
                scopes.clone(),
                None,
                None
            ),
            (
                PolicyStep::Approval,
                "tv-app".to_owned(),
                scopes.clone(),
                Some(Proximity::DifferentNetwork),
                Some("alice".to_owned())
            ),
            (
                PolicyStep::Redemption,
                "tv-app".to_owned(),
                scopes,
                None,
                Some("alice".to_owned())
            ),
        ]
    );
}

#[tokio::test]
async fn a_refusal_at_initiation_is_unauthorized_client_and_stores_nothing() {
    let w = world(
        Arc::new(Scripted::refusing("initiation")),
        PolicyMode::Enforce,
    );
    let refused = w.ask("tv-app", "profile").await;
    assert!(matches!(refused, Err(OAuthError::InitiationRefused)));
    assert_eq!(refused.unwrap_err().code().as_str(), "unauthorized_client");
    assert_eq!(w.kinds(), ["refused"]);
    let event = w.last("refused");
    assert_eq!(
        event.policy,
        Some(PolicyVerdict {
            step: PolicyStep::Initiation,
            decision: ConsentDecision::Refuse,
            enforced: true,
        })
    );
    assert_eq!(event.device_ip, ip(DEVICE_IP));
    assert!(event.id.is_some());
}

#[tokio::test]
async fn network_conditions_decide_at_approval() {
    let strict = NetworkPolicy {
        different_network: ConsentDecision::Refuse,
        ..NetworkPolicy::default()
    };
    let w = world(Arc::new(strict), PolicyMode::Enforce);
    let codes = w.ask("tv-app", "profile").await.unwrap();
    let refused = w.approve_from(&codes, FAR_AWAY).await;
    assert!(matches!(refused, Err(VerificationError::Refused { .. })));
    let event = w.last("refused");
    assert_eq!(event.proximity, Some(Proximity::DifferentNetwork));
    assert_eq!(event.approver_ip, ip(FAR_AWAY));
    assert_eq!(event.subject, Some(Subject::new("alice")));
    // From the device's own network the same request is approved.
    w.approve_from(&codes, DEVICE_IP).await.unwrap();
    assert_eq!(w.last("approved").proximity, Some(Proximity::SameAddress));
    w.poll("tv-app", &codes).await.unwrap();
}

#[tokio::test]
async fn a_refusal_at_redemption_denies_the_request_for_good() {
    let w = world(
        Arc::new(Scripted::refusing("redemption")),
        PolicyMode::Enforce,
    );
    let codes = w.ask("tv-app", "profile").await.unwrap();
    w.approve_from(&codes, DEVICE_IP).await.unwrap();
    let refused = w.poll("tv-app", &codes).await;
    assert!(matches!(refused, Err(OAuthError::RedemptionRefused)));
    assert_eq!(code(w.poll("tv-app", &codes).await), "access_denied");
    assert_eq!(w.minted.count(), 0);
    let event = w.last("refused");
    assert_eq!(event.policy.unwrap().step, PolicyStep::Redemption);
    assert_eq!(event.subject, Some(Subject::new("alice")));
}

#[tokio::test]
async fn a_client_withdrawn_after_approval_gets_access_denied_and_no_tokens() {
    let w = world(Arc::new(Scripted::default()), PolicyMode::ReportOnly);
    let codes = w.ask("tv-app", "profile").await.unwrap();
    w.approve_from(&codes, DEVICE_IP).await.unwrap();
    w.clients.change("tv-app", |c| c.device_grant = false);

    // Enforced even in report-only mode: the registration is not the policy's.
    let refused = w.poll("tv-app", &codes).await;
    assert!(
        matches!(refused, Err(OAuthError::RedemptionRefused)),
        "{refused:?}"
    );
    w.clock.advance(time::Duration::seconds(10));
    assert_eq!(code(w.poll("tv-app", &codes).await), "access_denied");
    // Registered again, the request stays denied: no path to its tokens.
    w.clients.change("tv-app", |c| c.device_grant = true);
    w.clock.advance(time::Duration::seconds(10));
    assert_eq!(code(w.poll("tv-app", &codes).await), "access_denied");
    assert_eq!(w.minted.count(), 0);
    assert_eq!(
        w.last("refused").policy,
        Some(PolicyVerdict {
            step: PolicyStep::Redemption,
            decision: ConsentDecision::Refuse,
            enforced: true,
        })
    );

    // A pending request of a withdrawn client is denied at its next poll too,
    // and the client can start no new one.
    let pending = w.ask("tv-app", "profile").await.unwrap();
    w.clients.change("tv-app", |c| c.device_grant = false);
    assert_eq!(code(w.poll("tv-app", &pending).await), "access_denied");
    assert_eq!(
        code(w.ask("tv-app", "profile").await),
        "unauthorized_client"
    );
}

#[tokio::test]
async fn report_only_reports_each_decision_and_lets_the_flow_through() {
    let refuse_all = Scripted {
        answers: HashMap::from([
            ("initiation", ConsentDecision::Refuse),
            ("approval", ConsentDecision::StepUp),
            ("redemption", ConsentDecision::Refuse),
        ]),
        ..Scripted::default()
    };
    let w = world(Arc::new(refuse_all), PolicyMode::ReportOnly);
    let codes = w.ask("tv-app", "profile").await.unwrap();
    let found = w
        .grant
        .verify(
            codes.user_code.display(),
            &CodeEntry::from_address(FAR_AWAY.parse().unwrap()),
        )
        .await
        .unwrap();
    // The page is told to go on, and what the policy said.
    let assessment = w.grant.assess(&found, ip(FAR_AWAY));
    assert_eq!(assessment.decision, ConsentDecision::Allow);
    assert_eq!(assessment.verdict.decision, ConsentDecision::StepUp);
    assert!(!assessment.verdict.enforced);
    w.approve_from(&codes, FAR_AWAY).await.unwrap();
    w.poll("tv-app", &codes).await.unwrap();
    assert_eq!(w.minted.count(), 1);
    assert_eq!(w.kinds(), ["created", "approved", "redeemed"]);
    let reported = |kind| w.last(kind).policy.unwrap();
    assert_eq!(reported("created").decision, ConsentDecision::Refuse);
    assert_eq!(reported("approved").decision, ConsentDecision::StepUp);
    assert_eq!(reported("redeemed").decision, ConsentDecision::Refuse);
    for kind in ["created", "approved", "redeemed"] {
        assert!(!reported(kind).enforced, "{kind}");
    }
}

#[tokio::test]
async fn events_carry_request_client_device_approver_and_decision_and_no_secret() {
    let w = world(Arc::new(NetworkPolicy::default()), PolicyMode::Enforce);
    let codes = w.ask("tv-app", "profile").await.unwrap();
    let found = w
        .grant
        .verify(
            codes.user_code.display(),
            &CodeEntry::from_address(DEVICE_IP.parse().unwrap()),
        )
        .await
        .unwrap();
    w.grant
        .approve(
            &found.ticket,
            Approve::as_requested(Subject::new("alice"), ip(DEVICE_IP)),
        )
        .await
        .unwrap();
    let tokens = w.poll("tv-app", &codes).await.unwrap();
    assert_eq!(w.kinds(), ["created", "approved", "redeemed"]);
    for event in w.events.events() {
        assert_eq!(event.id, Some(codes.id));
        assert_eq!(event.client_id, Some(ClientId::new("tv-app")));
        assert_eq!(event.device_ip, ip(DEVICE_IP));
        assert_eq!(event.device_user_agent.as_deref(), Some("LivingRoomTV/2.1"));
        assert!(event.policy.is_some(), "{event:?}");
        let line = serde_json::to_string(&event).unwrap();
        for secret in [
            codes.device_code.secret(),
            codes.user_code.display(),
            tokens.access_token.secret(),
        ] {
            assert!(!line.contains(secret), "{line}");
            assert!(!format!("{event:?}").contains(secret));
        }
    }
    let approved = w.last("approved");
    assert_eq!(approved.subject, Some(Subject::new("alice")));
    assert_eq!(approved.proximity, Some(Proximity::SameAddress));

    // The serialized form: stable member names, every one present, RFC 3339 times.
    let json = serde_json::to_value(&approved).unwrap();
    let members: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "approver_ip",
        "at",
        "client_id",
        "device_ip",
        "device_user_agent",
        "event",
        "id",
        "policy_decision",
        "policy_enforced",
        "policy_step",
        "proximity",
        "subject",
    ];
    expected.sort_unstable();
    let mut members = members;
    members.sort_unstable();
    assert_eq!(members, expected);
    assert_eq!(json["event"], "approved");
    assert_eq!(json["id"], codes.id.to_string());
    assert_eq!(json["proximity"], "same_address");
    assert_eq!(json["policy_step"], "approval");
    assert_eq!(json["policy_decision"], "allow");
    assert_eq!(json["policy_enforced"], true);
    assert_eq!(json["subject"], "alice");
    assert_eq!(json["at"], "2026-01-01T00:00:00Z");
}
