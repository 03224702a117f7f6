//! Rich Authorization Requests (RFC 9396) on the device grant: the
//! `authorization_details` of a device authorization request, checked by the
//! host's registered types, kept with the request, narrowed at consent, and
//! carried by the token response; a widened approval yields no tokens.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::{clients, poll_body};
use device_grant::store::{
    DeviceAuthorization, DeviceCodeHash, Inserted, LimiterKey, Status, Store, UserCodeHash,
    encode_record,
};
use device_grant::{
    Approve, ApprovedGrant, AuthorizationDetail, AuthorizationDetailType, AuthorizationDetailTypes,
    AuthorizationDetails, AuthorizationDetailsError, BackendError, CodeEntry, Config,
    DetailRefused, DeviceAuthorizationResponse, DeviceGrant, EndpointRequest, ErrorCode,
    MemoryStore, Metadata, OAuthError, RequestContext, Subject, TokenIssuer, TokenResponse,
    VerificationError,
};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// `actions` a non-empty list of `list`, `play`, `download`.
struct Media;

impl AuthorizationDetailType for Media {
    fn validate(&self, detail: &AuthorizationDetail) -> Result<(), DetailRefused> {
        let actions = detail
            .strings("actions")
            .ok_or(DetailRefused::new("actions must be a list"))?;
        if actions.is_empty()
            || actions
                .iter()
                .any(|a| !["list", "play", "download"].contains(a))
        {
            return Err(DetailRefused::new("actions are list, play, download"));
        }
        Ok(())
    }
}

/// Records the grant it minted tokens for.
#[derive(Default)]
struct Issuer(Mutex<Vec<ApprovedGrant>>);

#[async_trait::async_trait]
impl TokenIssuer for Issuer {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        self.0.lock().unwrap().push(grant.clone());
        Ok(TokenResponse::bearer("at"))
    }
}

/// A store that, once told to, hands back approvals whose details grant
/// `download` too: a corrupted or tampered record.
struct Widening {
    inner: MemoryStore,
    widen: AtomicBool,
}

#[async_trait::async_trait]
impl Store for Widening {
    async fn insert(
        &self,
        r: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        self.inner.insert(r, now).await
    }
    async fn by_device_code(
        &self,
        h: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let mut found = self.inner.by_device_code(h).await?;
        if let Some(record) = found.as_mut().filter(|_| self.widen.load(Ordering::SeqCst)) {
            if let Status::Approved { approval } = &mut record.status {
                Arc::make_mut(approval).authorization_details = Some(details(json!([
                    {"type": "media_library", "actions": ["list", "play", "download"]}
                ])));
            }
        }
        Ok(found)
    }
    async fn by_user_code(
        &self,
        h: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        self.inner.by_user_code(h, now).await
    }
    async fn compare_and_set(
        &self,
        v: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        self.inner.compare_and_set(v, next).await
    }
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        self.inner.purge_expired(now).await
    }
}

struct Rig {
    grant: DeviceGrant,
    issuer: Arc<Issuer>,
    store: Arc<Widening>,
}

fn rig() -> Rig {
    let issuer = Arc::new(Issuer::default());
    let store = Arc::new(Widening {
        inner: MemoryStore::new(),
        widen: AtomicBool::new(false),
    });
    let config = Config::builder(
        "https://as.example/device",
        device_grant::UserCodeKey::generate(),
    )
    .build()
    .unwrap();
    let grant = DeviceGrant::builder(config, Arc::new(clients()), issuer.clone())
        .store(store.clone())
        .authorization_detail_types(
            AuthorizationDetailTypes::new().register("media_library", Media),
        )
        .build();
    Rig {
        grant,
        issuer,
        store,
    }
}

fn details(value: Value) -> AuthorizationDetails {
    serde_json::from_value(value).unwrap()
}

const REQUESTED: &str = r#"[{"type":"media_library","actions":["list","play","download"]}]"#;

fn body(details: &str) -> String {
    let mut body = "client_id=tv-app&scope=profile&authorization_details=".to_owned();
    body.extend(form_urlencoded::byte_serialize(details.as_bytes()));
    body
}

async fn ask(rig: &Rig, details: &str) -> Result<DeviceAuthorizationResponse, OAuthError> {
    rig.grant
        .device_authorization(
            EndpointRequest::form(body(details).as_bytes()),
            RequestContext::default(),
        )
        .await
}

async fn pending(rig: &Rig, codes: &DeviceAuthorizationResponse) -> device_grant::PendingRequest {
    rig.grant
        .verify(
            codes.user_code.display(),
            &CodeEntry::from_key(LimiterKey::new("rar")),
        )
        .await
        .unwrap()
}

async fn poll(rig: &Rig, codes: &DeviceAuthorizationResponse) -> Result<TokenResponse, OAuthError> {
    let body = poll_body("tv-app", codes.device_code.secret());
    rig.grant
        .token(EndpointRequest::form(body.as_bytes()))
        .await
}

fn alice() -> Approve {
    Approve::as_requested(Subject::new("alice"), None)
}

#[tokio::test]
async fn bad_details_are_invalid_authorization_details() {
    let rig = rig();
    let cases = [
        ("not json", AuthorizationDetailsError::Malformed),
        (
            r#"{"type":"media_library"}"#,
            AuthorizationDetailsError::Malformed,
        ),
        ("[]", AuthorizationDetailsError::Malformed),
        (
            r#"[{"actions":["list"]}]"#,
            AuthorizationDetailsError::Malformed,
        ),
        (r#"[{"type":7}]"#, AuthorizationDetailsError::Malformed),
        (r#"["media_library"]"#, AuthorizationDetailsError::Malformed),
        (
            r#"[{"type":"payment","amount":1}]"#,
            AuthorizationDetailsError::UnknownType,
        ),
        (
            r#"[{"type":"media_library","actions":["delete"]}]"#,
            AuthorizationDetailsError::Refused(DetailRefused::new(
                "actions are list, play, download",
            )),
        ),
        (
            &format!(
                "[{}]",
                [r#"{"type":"media_library","actions":["list"]}"#; 9].join(",")
            ),
            AuthorizationDetailsError::TooMany(8),
        ),
    ];
    for (details, want) in cases {
        let error = ask(&rig, details).await.unwrap_err();
        assert!(
            matches!(&error, OAuthError::InvalidAuthorizationDetails(e) if *e == want),
            "{details}: {error:?}"
        );
        assert_eq!(error.code(), ErrorCode::InvalidAuthorizationDetails);
        let http = error.to_http();
        assert_eq!(http.status, 400);
        let reply: Value = serde_json::from_str(&http.body).unwrap();
        assert_eq!(reply["error"], "invalid_authorization_details", "{details}");
    }
    // Deeply nested JSON is refused, never a stack overflow.
    let deep = format!("{}{}", "[".repeat(400), "]".repeat(400));
    assert!(matches!(
        ask(&rig, &deep).await,
        Err(OAuthError::InvalidAuthorizationDetails(_))
    ));
    // Without registered types, any details are refused.
    let plain = common::harness();
    let error = plain
        .grant
        .device_authorization(
            EndpointRequest::form(body(REQUESTED).as_bytes()),
            RequestContext::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::InvalidAuthorizationDetails);
}

#[tokio::test]
async fn details_are_stored_and_shown_at_consent() {
    let rig = rig();
    let codes = ask(&rig, REQUESTED).await.unwrap();
    let record = rig
        .store
        .by_device_code(&codes.device_code.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.request.authorization_details,
        Some(details(serde_json::from_str(REQUESTED).unwrap()))
    );
    let encoded: Value = serde_json::from_str(&encode_record(&record).unwrap()).unwrap();
    assert_eq!(
        encoded["request"]["authorization_details"],
        serde_json::from_str::<Value>(REQUESTED).unwrap()
    );
    let found = pending(&rig, &codes).await;
    assert_eq!(
        found.authorization_details(),
        record.request.authorization_details.as_ref()
    );
    // A request without details stores none.
    let plain = rig
        .grant
        .device_authorization(
            EndpointRequest::form(b"client_id=tv-app"),
            RequestContext::default(),
        )
        .await
        .unwrap();
    let record = rig
        .store
        .by_device_code(&plain.device_code.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.request.authorization_details, None);
}

#[tokio::test]
async fn all_as_requested_reach_the_issuer_and_the_token_response() {
    let rig = rig();
    let codes = ask(&rig, REQUESTED).await.unwrap();
    let found = pending(&rig, &codes).await;
    rig.grant.approve(&found.ticket, alice()).await.unwrap();
    let tokens = poll(&rig, &codes).await.unwrap();
    let requested = details(serde_json::from_str(REQUESTED).unwrap());
    assert_eq!(tokens.authorization_details, Some(requested.clone()));
    let issued = rig.issuer.0.lock().unwrap();
    assert_eq!(issued[0].approval.authorization_details, Some(requested));
    let json = serde_json::to_value(&tokens).unwrap();
    assert_eq!(
        json["authorization_details"],
        serde_json::from_str::<Value>(REQUESTED).unwrap()
    );
}

#[tokio::test]
async fn narrowing_is_granted_and_carried_by_the_tokens() {
    let rig = rig();
    let codes = ask(&rig, REQUESTED).await.unwrap();
    let found = pending(&rig, &codes).await;
    let narrower = details(json!([{"type": "media_library", "actions": ["list", "play"]}]));
    rig.grant
        .approve(
            &found.ticket,
            alice().authorization_details(narrower.clone()),
        )
        .await
        .unwrap();
    let tokens = poll(&rig, &codes).await.unwrap();
    assert_eq!(tokens.authorization_details, Some(narrower.clone()));
    assert_eq!(
        rig.issuer.0.lock().unwrap()[0]
            .approval
            .authorization_details,
        Some(narrower)
    );
}

#[tokio::test]
async fn widening_is_refused_at_approval_and_changes_nothing() {
    let rig = rig();
    let codes = ask(&rig, r#"[{"type":"media_library","actions":["list"]}]"#)
        .await
        .unwrap();
    let found = pending(&rig, &codes).await;
    for wider in [
        json!([{"type": "media_library", "actions": ["list", "download"]}]),
        json!([{"type": "media_library", "actions": ["list"], "identifier": "all"}]),
        json!([{"type": "media_library", "actions": ["list"]}, {"type": "media_library", "actions": ["play"]}]),
        // Within by shape, but refused by the type's validator.
        json!([{"type": "media_library", "actions": []}]),
    ] {
        let refused = rig
            .grant
            .approve(
                &found.ticket,
                alice().authorization_details(details(wider.clone())),
            )
            .await;
        assert!(
            matches!(
                refused,
                Err(VerificationError::AuthorizationDetailsNotRequested)
            ),
            "{wider}: {refused:?}"
        );
    }
    assert!(matches!(
        poll(&rig, &codes).await,
        Err(OAuthError::AuthorizationPending)
    ));
    // The request is still there to approve as asked.
    rig.grant.approve(&found.ticket, alice()).await.unwrap();
    assert!(poll(&rig, &codes).await.is_ok());
}

#[tokio::test]
async fn a_store_that_widens_the_approval_gets_no_tokens() {
    let rig = rig();
    let codes = ask(
        &rig,
        r#"[{"type":"media_library","actions":["list","play"]}]"#,
    )
    .await
    .unwrap();
    let found = pending(&rig, &codes).await;
    rig.grant.approve(&found.ticket, alice()).await.unwrap();
    rig.store.widen.store(true, Ordering::SeqCst);
    let refused = poll(&rig, &codes).await;
    assert!(
        matches!(refused, Err(OAuthError::InvalidGrant)),
        "{refused:?}"
    );
    assert!(rig.issuer.0.lock().unwrap().is_empty(), "no tokens minted");
    // The approval was not taken: read honestly, it still redeems.
    rig.store.widen.store(false, Ordering::SeqCst);
    let tokens = poll(&rig, &codes).await.unwrap();
    assert_eq!(
        tokens.authorization_details,
        Some(details(
            json!([{"type": "media_library", "actions": ["list", "play"]}])
        ))
    );
}

#[tokio::test]
async fn an_issuers_own_details_are_kept() {
    struct Own;
    #[async_trait::async_trait]
    impl TokenIssuer for Own {
        async fn issue(&self, _: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
            let mut response = TokenResponse::bearer("at");
            response.authorization_details = Some(details(
                json!([{"type": "media_library", "actions": ["list"], "enriched": true}]),
            ));
            Ok(response)
        }
    }
    let config = Config::builder(
        "https://as.example/device",
        device_grant::UserCodeKey::generate(),
    )
    .build()
    .unwrap();
    let grant = DeviceGrant::builder(config, Arc::new(clients()), Arc::new(Own))
        .authorization_detail_types(
            AuthorizationDetailTypes::new().register("media_library", Media),
        )
        .build();
    let codes = grant
        .device_authorization(
            EndpointRequest::form(body(REQUESTED).as_bytes()),
            RequestContext::default(),
        )
        .await
        .unwrap();
    let found = grant
        .verify(
            codes.user_code.display(),
            &CodeEntry::from_key(LimiterKey::new("k")),
        )
        .await
        .unwrap();
    grant.approve(&found.ticket, alice()).await.unwrap();
    let body = poll_body("tv-app", codes.device_code.secret());
    let tokens = grant
        .token(EndpointRequest::form(body.as_bytes()))
        .await
        .unwrap();
    assert_eq!(
        tokens
            .authorization_details
            .unwrap()
            .iter()
            .next()
            .unwrap()
            .get("enriched"),
        Some(&json!(true))
    );
}

#[test]
fn metadata_lists_the_registered_types_only_when_there_are_some() {
    let rig = rig();
    let mut doc = json!({"issuer": "https://as.example"});
    Metadata::new("https://as.example/device_authorization")
        .authorization_details_types(rig.grant.authorization_detail_types())
        .merge_into(doc.as_object_mut().unwrap());
    assert_eq!(
        doc["authorization_details_types_supported"],
        json!(["media_library"])
    );

    let mut doc = json!({"issuer": "https://as.example"});
    Metadata::new("https://as.example/device_authorization")
        .authorization_details_types(&AuthorizationDetailTypes::new())
        .merge_into(doc.as_object_mut().unwrap());
    assert!(
        doc.get("authorization_details_types_supported").is_none(),
        "{doc}"
    );
}
