//! The OAuth 2.0 Device Authorization Grant ([RFC 8628]) for Rust authorization
//! servers: the state machine, polling-rate enforcement, user codes, both
//! endpoints' parsing and RFC-exact responses, behind small traits the host
//! implements. No web framework, no runtime, no I/O of its own.
//!
//! ```
//! use std::sync::Arc;
//! use device_grant::{
//!     Approve, ApprovedGrant, AuthMethod, BackendError, Client, CodeEntry, Config, DeviceGrant,
//!     EndpointRequest, RequestContext, ScopeSet, StaticClients, Subject, TokenIssuer, TokenResponse,
//!     ToHttp, UserCodeKey,
//! };
//!
//! struct Issuer;
//! #[async_trait::async_trait]
//! impl TokenIssuer for Issuer {
//!     async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
//!         Ok(TokenResponse::bearer(format!("token-for-{}", grant.approval.subject.as_str())))
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
//! tv.allowed_scopes = ScopeSet::parse("profile").unwrap();
//! let config = Config::builder("https://as.example/device", UserCodeKey::new(&[7; 32]).unwrap())
//!     .build()
//!     .unwrap();
//! let grant = DeviceGrant::builder(
//!     config,
//!     Arc::new(StaticClients::new().with_public(tv)),
//!     Arc::new(Issuer),
//! )
//! .build();
//!
//! // The device asks for codes…
//! let codes = grant
//!     .device_authorization(EndpointRequest::form(b"client_id=tv-app&scope=profile"), RequestContext::default())
//!     .await
//!     .unwrap();
//! let poll = format!(
//!     "grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv-app&device_code={}",
//!     codes.device_code.secret()
//! );
//! // …polls at once, and is told to wait…
//! let pending = grant.token(EndpointRequest::form(poll.as_bytes())).await;
//! assert_eq!(pending.to_http().status, 400); // {"error":"authorization_pending",…}
//!
//! // …while the person types the code on their phone and approves…
//! let person = CodeEntry::from_address("198.51.100.7".parse().unwrap());
//! let found = grant.verify(codes.user_code.display(), &person).await.unwrap();
//! // (the consent page: `grant.assess(&found, ip)` for its signals, and
//! // `grant.pending(&ticket)` to read the request again when the answer comes)
//! let approver_ip = Some("198.51.100.7".parse().unwrap());
//! grant.approve(&found.ticket, Approve::as_requested(Subject::new("alice"), approver_ip)).await.unwrap();
//!
//! // …and the next poll gets the tokens, exactly once.
//! let tokens = grant.token(EndpointRequest::form(poll.as_bytes())).await.unwrap();
//! assert_eq!(tokens.access_token.secret(), "token-for-alice");
//! assert_eq!(tokens.to_http().header("cache-control"), Some("no-store"));
//! # });
//! ```
//!
//! # Where things are
//!
//! A host needs only the names at the root: [`DeviceGrant`] and its
//! [`Config`], the traits it implements ([`TokenIssuer`], [`ClientRegistry`],
//! [`ConsentPolicy`], [`EventSink`], [`Clock`]), the requests and responses of
//! the endpoints, their errors and the audit [`Event`]s. The embedded
//! [`MemoryStore`] and [`MemoryLimiter`] serve one process; for several
//! instances, a shared store comes from its own crate (`device-grant-redis`,
//! `device-grant-postgres`) or the host's own.
//!
//! A store author needs one module, [`store`]: the [`Store`](store::Store) and
//! [`AttemptLimiter`](store::AttemptLimiter) traits, the records they keep, and
//! the conformance suite (feature `test-util`).
//!
//! Guides: integrating with a web framework (`docs/frameworks.md`), writing a
//! store (`docs/stores.md`), running several instances (`docs/instances.md`),
//! and the security model (`SECURITY.md`).
//!
//! # Guarantees
//!
//! - Device codes are stored only as SHA-256, user codes only as HMAC-SHA-256
//!   keyed with the host's secret; every secret-bearing type redacts `Debug`.
//! - Every state change is a compare-and-set: a code is redeemed at most once,
//!   however many polls race, and approve racing deny has one winner.
//! - Every response of both endpoints carries `Cache-Control: no-store`.
//! - No input makes the crate panic.
//!
//! [RFC 8628]: https://www.rfc-editor.org/rfc/rfc8628
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The layout: `protocol` is the pure core (no `async`, no I/O); `host` holds
// the traits a host implements; `endpoint` orchestrates both; `memory` is the
// embedded backend; `store` is the one public module, for store authors.
mod config;
mod endpoint;
mod grant;
mod host;
mod integration;
mod memory;
mod metadata;
mod protocol;
pub mod store;

#[doc(hidden)]
pub mod fuzzing;

// The README's example compiles and runs as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

// The axum and hyper examples of docs/frameworks.md compile as doctests; they
// use the `http` feature's conversion.
#[doc = include_str!("../docs/frameworks.md")]
#[cfg(all(doctest, feature = "http"))]
pub struct FrameworksDoctests;

pub use config::{Config, ConfigBuilder, ConfigError};
pub use endpoint::device_authorization::DeviceAuthorizationResponse;
#[cfg(feature = "dpop")]
pub use endpoint::dpop::{DpopConfig, DpopConfigError};
pub use endpoint::token::DEVICE_CODE_GRANT_TYPE;
pub use endpoint::verification::{
    Approve, Assessment, CodeEntry, PendingRequest, VerificationError, VerificationTicket,
};
pub use endpoint::{EndpointRequest, GrantType, ToHttp};
pub use grant::{DeviceGrant, DeviceGrantBuilder, Purged};
pub use host::clients::{ClientRegistry, StaticClients};
pub use host::clock::{Clock, ManualClock, SystemClock};
pub use host::consent::{
    AllowAll, ConsentDecision, ConsentPolicy, ConsentSignals, NetworkPolicy, PerClient,
    PolicyCheck, PolicyMode, PolicyStep, PolicyVerdict, StepUpProof,
};
#[cfg(feature = "dpop")]
pub use host::dpop_replay::{MemoryProofReplay, ProofReplay};
#[cfg(feature = "tracing")]
pub use host::events::TracingEvents;
pub use host::events::{Event, EventKind, EventSink, NoEvents, RecordedEvents};
pub use host::issuer::{
    ApprovalData, ApprovalDataError, ApprovedGrant, Token, TokenIssuer, TokenResponse,
};
pub use host::limiter::{Budget, BudgetKind, Budgets, KeyDigest};
pub use memory::{MemoryLimiter, MemoryStore};
pub use metadata::Metadata;
pub use protocol::authorization::{
    Approval, AuthorizationId, RequestContext, RequestDetails, Subject,
};
pub use protocol::authorization_details::{
    AuthorizationDetail, AuthorizationDetailType, AuthorizationDetailTypes, AuthorizationDetails,
    AuthorizationDetailsError, DetailRefused, default_is_within,
};
pub use protocol::client::{AuthMethod, Client, ClientId, ClientSecret, RegistrationError};
pub use protocol::device_code::DeviceCode;
pub use protocol::dpop::{DPOP_TOKEN_TYPE, DpopError, JwkThumbprint};
#[cfg(feature = "dpop")]
pub use protocol::dpop::{DpopAlgorithm, DpopVerifier, ProofId, VerifiedProof};
pub use protocol::dpop_nonce::{DpopNonce, DpopNonces};
pub use protocol::error::{BackendError, ErrorCode, OAuthError, Realm, RealmError, RequestError};
pub use protocol::form::{Form, Limits};
pub use protocol::mtls::CertificateThumbprint;
pub use protocol::pkce::{CodeChallenge, CodeChallengeMethod, CodeVerifierError};
pub use protocol::polling::{Interval, PollingRules};
pub use protocol::proximity::Proximity;
pub use protocol::response::HttpResponse;
pub use protocol::scope::{MalformedScope, Scope, ScopeSet};
pub use protocol::user_code::{
    KeyTooShort, PolicyError, UserCode, UserCodeError, UserCodeKey, UserCodePolicy,
};
