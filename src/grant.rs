//! [`DeviceGrant`]: the configuration and the host's backends, wired together.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::config::Config;
use crate::host::clients::ClientRegistry;
use crate::host::clock::{Clock, SystemClock};
use crate::host::consent::{
    AllowAll, ConsentDecision, ConsentPolicy, PolicyCheck, PolicyMode, PolicyVerdict,
};
use crate::host::events::{Event, EventSink, NoEvents};
use crate::host::issuer::TokenIssuer;
use crate::host::limiter::AttemptLimiter;
use crate::host::store::Store;
use crate::memory::{MemoryLimiter, MemoryStore};
use crate::protocol::authorization_details::AuthorizationDetailTypes;
use crate::protocol::error::BackendError;

/// The device grant, ready to serve: cheap to clone (one `Arc`), shareable across
/// threads and handlers.
///
/// Its endpoints are methods: [`DeviceGrant::device_authorization`],
/// [`DeviceGrant::token`], and the verification API [`DeviceGrant::verify`],
/// [`DeviceGrant::approve`], [`DeviceGrant::deny`].
#[derive(Clone)]
pub struct DeviceGrant {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clients: Arc<dyn ClientRegistry>,
    pub(crate) issuer: Arc<dyn TokenIssuer>,
    pub(crate) limiter: Arc<dyn AttemptLimiter>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) consent: Arc<dyn ConsentPolicy>,
    pub(crate) policy_mode: PolicyMode,
    #[cfg(feature = "dpop")]
    pub(crate) dpop: Option<crate::endpoint::dpop::DpopConfig>,
    pub(crate) detail_types: AuthorizationDetailTypes,
}

impl std::fmt::Debug for DeviceGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceGrant")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl DeviceGrant {
    /// The `authorization_details` types (RFC 9396) the grant accepts: their
    /// names are the metadata's `authorization_details_types_supported`.
    pub fn authorization_detail_types(&self) -> &AuthorizationDetailTypes {
        &self.inner.detail_types
    }

    /// A builder. The client registry and the token issuer are the host's; the
    /// store, limiter, clock and event sink default to the embedded ones.
    pub fn builder(
        config: Config,
        clients: Arc<dyn ClientRegistry>,
        issuer: Arc<dyn TokenIssuer>,
    ) -> DeviceGrantBuilder {
        DeviceGrantBuilder {
            config,
            clients,
            issuer,
            store: None,
            limiter: None,
            clock: None,
            events: None,
            consent: None,
            policy_mode: PolicyMode::Enforce,
            #[cfg(feature = "dpop")]
            dpop: None,
            detail_types: AuthorizationDetailTypes::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Deletes records past their retention and limiter counters whose window
    /// has ended. The memory store and limiter also do this on their own;
    /// shared ones need the host to call it now and then (any one instance,
    /// every minute, say).
    pub async fn purge_expired(&self) -> Result<Purged, BackendError> {
        let now = self.now();
        Ok(Purged {
            records: self.inner.store.purge_expired(now).await?,
            counters: self.inner.limiter.purge_expired(now).await?,
        })
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    pub(crate) fn emit(&self, event: Event) {
        self.inner.events.record(&event);
    }

    /// Asks the policy about one step. The verdict's `decision` is the
    /// policy's; `enforced` says whether the step must act on it.
    pub(crate) fn policy(&self, check: &PolicyCheck<'_>) -> PolicyVerdict {
        PolicyVerdict {
            step: check.step,
            decision: self.inner.consent.decide(check),
            enforced: self.inner.policy_mode == PolicyMode::Enforce,
        }
    }
}

impl PolicyVerdict {
    /// The decision the step acts on: the policy's when enforced, else `Allow`.
    pub(crate) fn effective(&self) -> ConsentDecision {
        if self.enforced {
            self.decision
        } else {
            ConsentDecision::Allow
        }
    }
}

/// What [`DeviceGrant::purge_expired`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Device authorizations past their retention.
    pub records: u64,
    /// Limiter counters of ended windows (0 for limiters whose counters expire
    /// on their own).
    pub counters: u64,
}

/// Builds a [`DeviceGrant`].
pub struct DeviceGrantBuilder {
    config: Config,
    clients: Arc<dyn ClientRegistry>,
    issuer: Arc<dyn TokenIssuer>,
    store: Option<Arc<dyn Store>>,
    limiter: Option<Arc<dyn AttemptLimiter>>,
    clock: Option<Arc<dyn Clock>>,
    events: Option<Arc<dyn EventSink>>,
    consent: Option<Arc<dyn ConsentPolicy>>,
    policy_mode: PolicyMode,
    #[cfg(feature = "dpop")]
    dpop: Option<crate::endpoint::dpop::DpopConfig>,
    detail_types: AuthorizationDetailTypes,
}

impl std::fmt::Debug for DeviceGrantBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceGrantBuilder")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl DeviceGrantBuilder {
    /// The store. Default: a [`MemoryStore`].
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The attempt limiter. Default: a [`MemoryLimiter`].
    pub fn limiter(mut self, limiter: Arc<dyn AttemptLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The clock. Default: [`SystemClock`].
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The audit event sink. Default: [`NoEvents`].
    pub fn events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = Some(events);
        self
    }

    /// The policy asked at initiation, approval and redemption
    /// ([`ConsentPolicy`]). Default: [`AllowAll`].
    pub fn consent_policy(mut self, policy: Arc<dyn ConsentPolicy>) -> Self {
        self.consent = Some(policy);
        self
    }

    /// Whether the policy's decisions are acted upon or only reported in the
    /// audit events. Default: [`PolicyMode::Enforce`].
    pub fn policy_mode(mut self, mode: PolicyMode) -> Self {
        self.policy_mode = mode;
        self
    }

    /// DPoP (RFC 9449) at the token endpoint (feature `dpop`). Default: none,
    /// and a `DPoP` header is ignored.
    #[cfg(feature = "dpop")]
    pub fn dpop(mut self, dpop: crate::endpoint::dpop::DpopConfig) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// The `authorization_details` types (RFC 9396) the grant accepts.
    /// Default: none, and a request that carries `authorization_details` is
    /// refused with `invalid_authorization_details`.
    pub fn authorization_detail_types(mut self, types: AuthorizationDetailTypes) -> Self {
        self.detail_types = types;
        self
    }

    /// The grant.
    pub fn build(self) -> DeviceGrant {
        DeviceGrant {
            inner: Arc::new(Inner {
                config: self.config,
                store: self.store.unwrap_or_else(|| Arc::new(MemoryStore::new())),
                clients: self.clients,
                issuer: self.issuer,
                limiter: self
                    .limiter
                    .unwrap_or_else(|| Arc::new(MemoryLimiter::new())),
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                events: self.events.unwrap_or_else(|| Arc::new(NoEvents)),
                consent: self.consent.unwrap_or_else(|| Arc::new(AllowAll)),
                policy_mode: self.policy_mode,
                #[cfg(feature = "dpop")]
                dpop: self.dpop,
                detail_types: self.detail_types,
            }),
        }
    }
}
