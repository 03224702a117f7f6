//! The verification API's safe defaults: a ticket reads its request again
//! without spending anything, an approval names its subject and scopes, the
//! consent policy is enforced by `approve` itself, and the host's data is its
//! own type. Each misuse the old API allowed is a typed error here (or a
//! `compile_fail` doctest on `Approve` and `StepUpProof`).

mod common;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use device_grant::store::{DeviceAuthorization, LimiterKey, Status};
use device_grant::{
    ApprovalData, Approve, ApprovedGrant, BackendError, CodeEntry, ConsentDecision, ConsentPolicy,
    DeviceAuthorizationResponse, DeviceGrant, EndpointRequest, ManualClock, NetworkPolicy,
    PendingRequest, Proximity, RequestContext, ScopeSet, StepUpProof, Subject, TokenIssuer,
    TokenResponse, VerificationError, VerificationTicket,
};
use time::Duration;

const DEVICE_IP: &str = "192.0.2.10";
const SAME_ADDRESS: &str = "192.0.2.10";
const OTHER_NETWORK: &str = "203.0.113.5";

/// Keeps every grant it is asked to mint tokens for.
#[derive(Default)]
struct Keeping(Mutex<Vec<ApprovedGrant>>);

#[async_trait::async_trait]
impl TokenIssuer for Keeping {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        self.0.lock().unwrap().push(grant.clone());
        Ok(TokenResponse::bearer("at"))
    }
}

struct World {
    grant: DeviceGrant,
    clock: Arc<ManualClock>,
    issued: Arc<Keeping>,
}

fn world(policy: impl ConsentPolicy + 'static) -> World {
    let clock = Arc::new(ManualClock::default());
    let issued = Arc::new(Keeping::default());
    let grant = DeviceGrant::builder(
        common::config().build().unwrap(),
        Arc::new(common::clients()),
        issued.clone(),
    )
    .clock(clock.clone())
    .consent_policy(Arc::new(policy))
    .build();
    World {
        grant,
        clock,
        issued,
    }
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

fn alice() -> Subject {
    Subject::new("alice")
}

impl World {
    /// A device at `DEVICE_IP` asks for `openid profile`; the person types the code.
    async fn start(&self) -> (DeviceAuthorizationResponse, PendingRequest) {
        let codes = self
            .grant
            .device_authorization(
                EndpointRequest::form(b"client_id=tv-app&scope=openid%20profile"),
                RequestContext {
                    ip: ip(DEVICE_IP),
                    ..RequestContext::default()
                },
            )
            .await
            .unwrap();
        let found = self
            .grant
            .verify(
                codes.user_code.display(),
                &CodeEntry::from_key(LimiterKey::new("k")),
            )
            .await
            .unwrap();
        (codes, found)
    }

    async fn poll(&self, codes: &DeviceAuthorizationResponse) -> Option<Arc<ApprovedGrant>> {
        let body = common::poll_body("tv-app", codes.device_code.secret());
        self.grant
            .token(EndpointRequest::form(body.as_bytes()))
            .await
            .ok()?;
        self.issued.0.lock().unwrap().pop().map(Arc::new)
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(Duration::seconds(secs));
    }

    /// Whether the request is still there to decide on.
    async fn still_pending(&self, ticket: &VerificationTicket) -> bool {
        self.grant.pending(ticket).await.is_ok()
    }
}

#[tokio::test]
async fn a_ticket_reads_its_request_again_until_it_is_decided() {
    let w = world(device_grant::AllowAll);
    let (_, found) = w.start().await;
    w.advance(42);
    let again = w.grant.pending(&found.ticket).await.unwrap();
    assert_eq!(again.ticket, found.ticket);
    assert_eq!(again.request, found.request);
    assert_eq!(
        again.request.scopes,
        ScopeSet::parse("openid profile").unwrap()
    );
    assert_eq!(again.client.id.as_str(), "tv-app");
    assert_eq!(again.age, Duration::seconds(42));
    // The ticket round-trips through a page.
    let decoded = VerificationTicket::decode(&found.ticket.encode()).unwrap();
    assert_eq!(
        w.grant.pending(&decoded).await.unwrap().ticket,
        found.ticket
    );
    w.grant.deny(&found.ticket).await.unwrap();
    assert!(matches!(
        w.grant.pending(&found.ticket).await,
        Err(VerificationError::NotFound)
    ));
}

#[tokio::test]
async fn reading_a_ticket_spends_no_attempt() {
    // One wrong code allowed per key: a ticket read a hundred times must not
    // count, or the person's next typed code would be refused.
    let w = world(device_grant::AllowAll);
    let (_, found) = w.start().await;
    for _ in 0..100 {
        w.grant.pending(&found.ticket).await.unwrap();
    }
    let entry = CodeEntry::from_key(LimiterKey::new("k"));
    let budget = device_grant::Budgets::default().wrong_codes_per_key;
    for _ in 0..budget.attempts {
        assert!(matches!(
            w.grant.verify("BBBB-BBBB", &entry).await,
            Err(VerificationError::NotFound)
        ));
    }
}

#[tokio::test]
async fn an_expired_request_or_another_requests_ticket_is_not_found() {
    let w = world(device_grant::AllowAll);
    let (_, a) = w.start().await;
    let (_, b) = w.start().await;
    let (ea, eb) = (a.ticket.encode(), b.ticket.encode());
    let stitched = format!(
        "{}.{}",
        ea.split('.').next().unwrap(),
        eb.split('.').nth(1).unwrap()
    );
    let stitched = VerificationTicket::decode(&stitched).unwrap();
    assert!(matches!(
        w.grant.pending(&stitched).await,
        Err(VerificationError::NotFound)
    ));
    assert!(matches!(
        w.grant
            .approve(&stitched, Approve::as_requested(alice(), ip(SAME_ADDRESS)))
            .await,
        Err(VerificationError::NotFound)
    ));
    assert!(w.still_pending(&a.ticket).await && w.still_pending(&b.ticket).await);
    w.advance(600);
    assert!(matches!(
        w.grant.pending(&a.ticket).await,
        Err(VerificationError::NotFound)
    ));
    assert!(matches!(
        w.grant
            .approve(&a.ticket, Approve::as_requested(alice(), ip(SAME_ADDRESS)))
            .await,
        Err(VerificationError::NotFound)
    ));
}

#[tokio::test]
async fn as_requested_grants_every_requested_scope_and_a_subset_only_its_own() {
    let w = world(device_grant::AllowAll);
    let (codes, found) = w.start().await;
    w.grant
        .approve(
            &found.ticket,
            Approve::as_requested(alice(), ip(SAME_ADDRESS)),
        )
        .await
        .unwrap();
    let grant = w.poll(&codes).await.unwrap();
    assert_eq!(grant.approval.subject, alice());
    assert_eq!(grant.approval.scopes, found.request.scopes);
    assert_eq!(grant.approval.data, None);

    let (codes, found) = w.start().await;
    // A scope that was not requested: a typed error, and nothing changed.
    let e = w
        .grant
        .approve(
            &found.ticket,
            Approve::scopes(
                alice(),
                ip(SAME_ADDRESS),
                ScopeSet::parse("openid email").unwrap(),
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, VerificationError::ScopeNotRequested), "{e:?}");
    assert!(w.still_pending(&found.ticket).await);
    w.grant
        .approve(
            &found.ticket,
            Approve::scopes(
                alice(),
                ip(SAME_ADDRESS),
                ScopeSet::parse("profile").unwrap(),
            ),
        )
        .await
        .unwrap();
    let grant = w.poll(&codes).await.unwrap();
    assert_eq!(grant.approval.scopes, ScopeSet::parse("profile").unwrap());
}

#[tokio::test]
async fn a_step_up_the_policy_asks_for_needs_a_proof_that_covers_it() {
    let w = world(NetworkPolicy::default());
    let (codes, found) = w.start().await;
    let asked_at = found.request.created_at;
    w.advance(30);
    let now = asked_at + Duration::seconds(30);
    let far = || Approve::as_requested(alice(), ip(OTHER_NETWORK));
    assert_eq!(
        w.grant.assess(&found, ip(OTHER_NETWORK)).decision,
        ConsentDecision::StepUp
    );
    // The page's advice ignored: no proof.
    let e = w.grant.approve(&found.ticket, far()).await.unwrap_err();
    let VerificationError::StepUpRequired { signals } = e else {
        panic!("expected StepUpRequired, got {e:?}")
    };
    assert_eq!(signals.proximity, Proximity::DifferentNetwork);
    assert_eq!(signals.approver_ip, ip(OTHER_NETWORK));
    // Proofs that do not cover it: someone else's, one from before the device
    // asked (an old sign-in), one dated in the future.
    for proof in [
        StepUpProof::reauthenticated(&Subject::new("mallory"), now),
        StepUpProof::reauthenticated(&alice(), asked_at - Duration::seconds(1)),
        StepUpProof::reauthenticated(&alice(), now + Duration::seconds(1)),
    ] {
        let e = w
            .grant
            .approve(&found.ticket, far().stepped_up(proof))
            .await
            .unwrap_err();
        assert!(
            matches!(e, VerificationError::StepUpRequired { .. }),
            "{e:?}"
        );
    }
    assert!(w.still_pending(&found.ticket).await);
    assert!(w.poll(&codes).await.is_none());
    // Alice re-authenticated after the device asked: approved.
    w.grant
        .approve(
            &found.ticket,
            far().stepped_up(StepUpProof::reauthenticated(&alice(), asked_at)),
        )
        .await
        .unwrap();
    w.advance(5);
    assert_eq!(w.poll(&codes).await.unwrap().approval.subject, alice());
}

#[tokio::test]
async fn the_policy_decides_again_at_approve_time() {
    // The page was shown while the request was fresh; the answer comes after
    // it aged past `max_age`.
    let w = world(NetworkPolicy::default());
    let (_, found) = w.start().await;
    w.advance(240);
    assert_eq!(
        w.grant.assess(&found, ip(SAME_ADDRESS)).decision,
        ConsentDecision::Allow
    );
    w.advance(120);
    let e = w
        .grant
        .approve(
            &found.ticket,
            Approve::as_requested(alice(), ip(SAME_ADDRESS)),
        )
        .await
        .unwrap_err();
    let VerificationError::StepUpRequired { signals } = e else {
        panic!("expected StepUpRequired, got {e:?}")
    };
    assert_eq!(signals.age, Duration::seconds(360));
    assert_eq!(signals.proximity, Proximity::SameAddress);
    assert!(w.still_pending(&found.ticket).await);
}

#[tokio::test]
async fn a_refusing_policy_refuses_every_approval_but_not_a_deny() {
    let w = world(NetworkPolicy {
        different_network: ConsentDecision::Refuse,
        ..NetworkPolicy::default()
    });
    let (codes, found) = w.start().await;
    let now = found.request.created_at;
    let e = w
        .grant
        .approve(
            &found.ticket,
            Approve::as_requested(alice(), ip(OTHER_NETWORK))
                .stepped_up(StepUpProof::reauthenticated(&alice(), now)),
        )
        .await
        .unwrap_err();
    let VerificationError::Refused { signals } = e else {
        panic!("expected Refused, got {e:?}")
    };
    assert_eq!(signals.proximity, Proximity::DifferentNetwork);
    assert!(w.still_pending(&found.ticket).await);
    w.grant.deny(&found.ticket).await.unwrap();
    let body = common::poll_body("tv-app", codes.device_code.secret());
    let denied = w
        .grant
        .token(EndpointRequest::form(body.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), device_grant::ErrorCode::AccessDenied);
}

#[tokio::test]
async fn an_unknown_approver_address_gets_the_policys_unknown_network_decision() {
    // Leaving the address out is no way around the policy.
    let w = world(NetworkPolicy {
        unknown_network: ConsentDecision::Refuse,
        ..NetworkPolicy::default()
    });
    let (_, found) = w.start().await;
    let e = w
        .grant
        .approve(&found.ticket, Approve::as_requested(alice(), None))
        .await
        .unwrap_err();
    let VerificationError::Refused { signals } = e else {
        panic!("expected Refused, got {e:?}")
    };
    assert_eq!(signals.proximity, Proximity::Unknown);
    assert!(w.still_pending(&found.ticket).await);
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Claims {
    auth_time: i64,
    acr: String,
}

#[tokio::test]
async fn the_issuer_reads_the_hosts_data_as_the_hosts_type() {
    let w = world(device_grant::AllowAll);
    let (codes, found) = w.start().await;
    let claims = Claims {
        auth_time: 1_700_000_000,
        acr: "mfa".to_owned(),
    };
    w.grant
        .approve(
            &found.ticket,
            Approve::as_requested(alice(), ip(SAME_ADDRESS))
                .data(ApprovalData::new(&claims).unwrap()),
        )
        .await
        .unwrap();
    let grant = w.poll(&codes).await.unwrap();
    let data = grant.approval.data.as_ref().unwrap();
    assert_eq!(data.decode::<Claims>().unwrap(), claims);
    // Another type than the one stored: a typed error, not a panic, and one
    // that does not quote the data (serde's messages would).
    let e = data.decode::<Vec<String>>().unwrap_err();
    assert_eq!(e, device_grant::ApprovalDataError::Deserialize);
    assert!(!format!("{e} {e:?}").contains("mfa"));
}

/// An approved record as 0.x wrote it, with the host's data as a JSON object.
const OLD_RECORD: &str = r#"{
    "id": "07070707070707070707070707070707",
    "device_code_hash": "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",
    "user_code_hash": "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI",
    "request": {
        "client_id": "tv-app",
        "scopes": "openid profile",
        "created_at": "2024-05-01T10:00:00Z",
        "expires_at": "2024-05-01T10:10:00Z",
        "context": { "ip": "192.0.2.10", "user_agent": null }
    },
    "status": "approved",
    "approval": {
        "subject": "alice",
        "scopes": "openid",
        "approved_at": "2024-05-01T10:01:00Z",
        "data": { "auth_time": 1714557600, "acr": "mfa" }
    },
    "interval": 5,
    "last_poll": null,
    "purge_at": "2024-05-01T10:20:00Z",
    "version": 1
}"#;

#[test]
fn records_stored_before_approval_data_was_typed_read_back_the_same() {
    let record: DeviceAuthorization = serde_json::from_str(OLD_RECORD).unwrap();
    let Status::Approved { approval } = &record.status else {
        panic!("{:?}", record.status)
    };
    assert_eq!(
        approval.data.as_ref().unwrap().decode::<Claims>().unwrap(),
        Claims {
            auth_time: 1_714_557_600,
            acr: "mfa".to_owned()
        }
    );
    // Written back, the record is what it was: old and new instances can
    // share a store (the write adds only the format version, which readers
    // of records without it ignore).
    let old: serde_json::Value = serde_json::from_str(OLD_RECORD).unwrap();
    let mut versioned = old.clone();
    versioned["v"] = serde_json::json!(1);
    assert_eq!(serde_json::to_value(&record).unwrap(), versioned);
    // A record with no data writes none.
    let mut none = old.clone();
    none["approval"].as_object_mut().unwrap().remove("data");
    let record: DeviceAuthorization = serde_json::from_value(none.clone()).unwrap();
    none["v"] = serde_json::json!(1);
    assert_eq!(serde_json::to_value(&record).unwrap(), none);
}

#[test]
fn approval_data_redacts_debug() {
    let data = ApprovalData::new(&Claims {
        auth_time: 1,
        acr: "upstream-TOKEN-secret".to_owned(),
    })
    .unwrap();
    assert!(!format!("{data:?}").contains("secret"));
    let approve = Approve::as_requested(alice(), None).data(data);
    assert!(!format!("{approve:?}").contains("secret"));
}
