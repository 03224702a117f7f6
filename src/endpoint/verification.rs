//! The verification API behind the host's pages (RFC 8628 §3.3): find a pending
//! request from what a person typed, then approve or deny it.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::{Duration, OffsetDateTime};

use crate::endpoint::budgets::Layer;
use crate::endpoint::commit::Commit;
use crate::grant::DeviceGrant;
use crate::host::consent::{
    ConsentDecision, ConsentSignals, PolicyCheck, PolicyStep, PolicyVerdict, StepUpProof,
};
use crate::host::events::{Event, EventKind};
use crate::host::issuer::ApprovalData;
use crate::host::limiter::{BudgetKind, LimiterKey};
use crate::protocol::authorization::{
    Approval, AuthorizationId, DeviceAuthorization, RequestDetails, Status, Subject,
    TransitionError,
};
use crate::protocol::authorization_details::AuthorizationDetails;
use crate::protocol::client::Client;
use crate::protocol::error::BackendError;
use crate::protocol::proximity::{proximity, source_network};
use crate::protocol::scope::ScopeSet;
use crate::protocol::user_code::{UserCode, UserCodeError, UserCodeHash};

const CAS_ROUNDS: usize = 16;

/// Why the verification API refused.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum VerificationError {
    /// The input cannot be a user code (wrong length or character). Costs no attempt.
    #[error(transparent)]
    Malformed(#[from] UserCodeError),
    /// No pending request has this code: wrong, expired, or already acted upon.
    #[error("no pending request has this code")]
    NotFound,
    /// The person's key (or account) has no attempts left. Nothing was looked up.
    #[error("too many wrong codes; try again in {} s", retry_after.whole_seconds())]
    TooManyAttempts {
        /// When the next window starts.
        retry_after: Duration,
    },
    /// Code entry is in its signed-in mode: the deployment-wide budget of wrong
    /// codes typed without signing in
    /// ([`Budgets::wrong_codes_anonymous`](crate::Budgets::wrong_codes_anonymous))
    /// is spent, so until the window ends only a signed-in person
    /// ([`CodeEntry::signed_in`]) may enter a code. Ask the person to sign in
    /// and submit the code again. Nothing was looked up or spent.
    #[error("sign in to enter a code (for the next {} s)", retry_after.whole_seconds())]
    SignInRequired {
        /// When the anonymous budget's window ends.
        retry_after: Duration,
    },
    /// The approval grants a scope the device did not request.
    #[error("the approval grants a scope that was not requested")]
    ScopeNotRequested,
    /// The approval's `authorization_details` (RFC 9396) are not within those
    /// the device requested, or a registered type refuses them. Nothing was
    /// changed.
    #[error("the approval grants authorization details that were not requested")]
    AuthorizationDetailsNotRequested,
    /// The consent policy asks for a step-up for this request, from this
    /// address, now, and the approval came without a [`StepUpProof`] that
    /// covers it (none, another subject's, or one older than the request).
    /// Nothing was changed: ask the person to re-authenticate and approve again.
    #[error("the consent policy asks for a step-up before this approval")]
    StepUpRequired {
        /// What the policy decided on, for the page.
        signals: ConsentSignals,
    },
    /// The consent policy refuses approvals of this request from this address,
    /// now, step-up or not, or the client is no longer registered for the
    /// device grant. Nothing was changed; the person can still deny.
    #[error("the consent policy refuses this approval")]
    Refused {
        /// What the policy decided on, for the page.
        signals: ConsentSignals,
    },
    /// The approval grants a scope above the client's device-grant ceiling
    /// ([`Client::device_scope_ceiling`](crate::Client::device_scope_ceiling)),
    /// which was lowered after the device asked. Nothing was changed; approve
    /// fewer scopes, or deny.
    #[error("the approval grants a scope above the client's device-grant ceiling")]
    ScopeAboveCeiling,
    /// The request changed under every compare-and-set round; nothing was
    /// changed. Try again.
    #[error("the request is contended; try again")]
    Contended,
    /// A host backend failed before the operation's commit point: nothing was
    /// changed, and no attempt was charged.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The store failed while saving the decision and could not be read back:
    /// the decision may or may not have been saved. Tell the person so; the
    /// device's next poll shows which (tokens or `access_denied` if it was,
    /// `authorization_pending` if not).
    #[error("the decision may not have been saved: {0}")]
    Unsettled(#[source] BackendError),
}

/// A handle on one pending request for the approve/deny step: the request's id
/// and its user-code hash. Carry it from the consent page to the decision in the
/// host's session or a hidden field (with CSRF protection); it names exactly the
/// request the person was shown, never a later one with a recycled code.
/// `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct VerificationTicket {
    id: AuthorizationId,
    user_code_hash: UserCodeHash,
}

impl VerificationTicket {
    /// The text form, `id.hash`.
    pub fn encode(&self) -> String {
        format!(
            "{}.{}",
            self.id,
            URL_SAFE_NO_PAD.encode(self.user_code_hash.0)
        )
    }

    /// Parses the text form.
    pub fn decode(text: &str) -> Option<Self> {
        let (id, hash) = text.split_once('.')?;
        let bytes = URL_SAFE_NO_PAD.decode(hash).ok()?;
        Some(Self {
            id: AuthorizationId::parse(id)?,
            user_code_hash: UserCodeHash(bytes.try_into().ok()?),
        })
    }

    /// The request's id.
    pub fn id(&self) -> AuthorizationId {
        self.id
    }
}

impl std::fmt::Debug for VerificationTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VerificationTicket({}, [redacted])", self.id)
    }
}

/// The consent-time signals and the policy's decision on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// Proximity, age, approver address.
    pub signals: ConsentSignals,
    /// What the consent page should do: the policy's decision, or `Allow` in
    /// [`PolicyMode::ReportOnly`](crate::PolicyMode::ReportOnly).
    pub decision: ConsentDecision,
    /// What the policy decided, and whether it is enforced.
    pub verdict: PolicyVerdict,
}

/// Who is typing a user code: what their wrong codes are counted against
/// ([`Budgets`](crate::Budgets)). `Debug` redacts the keys.
///
/// Build it from the person's address ([`CodeEntry::from_address`]: the IPv4
/// address or IPv6 /64, so that one subscriber's addresses share a budget) or a
/// key of the host's ([`CodeEntry::from_key`]), and say who is signed in
/// ([`CodeEntry::signed_in`]): a signed-in person's wrong codes count against
/// their account too, and only they may enter codes while the deployment-wide
/// anonymous budget is spent.
#[derive(Clone)]
pub struct CodeEntry {
    key: LimiterKey,
    account: Option<LimiterKey>,
}

impl CodeEntry {
    /// Counted under the person's source network: an IPv4 address, or an IPv6
    /// /64 (never the full IPv6 address, of which a subscriber has 2⁶⁴).
    pub fn from_address(ip: IpAddr) -> Self {
        Self::from_key(LimiterKey::new(format!(
            "device-grant:entry:{}",
            source_network(ip)
        )))
    }

    /// Counted under a key of the host's choosing (a session, a device
    /// fingerprint). Choose one an attacker cannot mint at will.
    pub fn from_key(key: LimiterKey) -> Self {
        Self { key, account: None }
    }

    /// The person is signed in as `subject`.
    pub fn signed_in(mut self, subject: &Subject) -> Self {
        self.account = Some(LimiterKey::new(format!(
            "device-grant:account:{}",
            subject.as_str()
        )));
        self
    }

    /// Whether a signed-in account was given.
    pub fn is_signed_in(&self) -> bool {
        self.account.is_some()
    }
}

impl std::fmt::Debug for CodeEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeEntry")
            .field("signed_in", &self.is_signed_in())
            .finish_non_exhaustive()
    }
}

/// An approval, for [`DeviceGrant::approve`]: who approves, from which
/// address, which scopes, the step-up proof if the consent policy asks for
/// one, and the host's data for its token issuer.
///
/// ```
/// # use device_grant::{Approve, ApprovalData, ScopeSet, StepUpProof, Subject};
/// # let (ip, now) = (Some("198.51.100.7".parse().unwrap()), time::OffsetDateTime::UNIX_EPOCH);
/// let alice = Subject::new("alice");
/// // Everything the device asked for:
/// let all = Approve::as_requested(alice.clone(), ip);
/// // Fewer scopes, after a re-authentication, with data for the token issuer:
/// let some = Approve::scopes(alice.clone(), ip, ScopeSet::parse("profile").unwrap())
///     .stepped_up(StepUpProof::reauthenticated(&alice, now))
///     .data(ApprovalData::new(&[("acr", "mfa")]).unwrap());
/// ```
///
/// There is no approval without a subject, and the approver's address is
/// always stated (`None` when the host does not know it, which the policy
/// sees as [`Proximity::Unknown`](crate::Proximity::Unknown)):
///
/// ```compile_fail
/// # use device_grant::Approve;
/// let nobody = Approve::as_requested(); // does not compile
/// ```
///
/// ```compile_fail
/// # use device_grant::{Approve, Subject};
/// let anywhere = Approve::as_requested(Subject::new("alice")); // does not compile
/// ```
///
/// Host data is the host's typed value, never a loose JSON value:
///
/// ```compile_fail
/// # use device_grant::{Approve, Subject};
/// let loose = Approve::as_requested(Subject::new("alice"), None)
///     .data(serde_json::json!({ "acr": "mfa" })); // does not compile
/// ```
#[derive(Debug)]
#[must_use = "an Approve does nothing until passed to DeviceGrant::approve"]
pub struct Approve {
    subject: Subject,
    approver_ip: Option<IpAddr>,
    /// `None`: all those requested, read from the record at commit time.
    scopes: Option<ScopeSet>,
    step_up: Option<StepUpProof>,
    data: Option<ApprovalData>,
    /// `None`: all those requested, read from the record at commit time.
    authorization_details: Option<AuthorizationDetails>,
}

impl Approve {
    /// `subject`, at `approver_ip`, approves every scope the device requested.
    pub fn as_requested(subject: Subject, approver_ip: Option<IpAddr>) -> Self {
        Self {
            subject,
            approver_ip,
            scopes: None,
            step_up: None,
            data: None,
            authorization_details: None,
        }
    }

    /// `subject`, at `approver_ip`, approves only `scopes`, which must be among
    /// those requested ([`VerificationError::ScopeNotRequested`] otherwise).
    pub fn scopes(subject: Subject, approver_ip: Option<IpAddr>, scopes: ScopeSet) -> Self {
        Self {
            scopes: Some(scopes),
            ..Self::as_requested(subject, approver_ip)
        }
    }

    /// The person re-authenticated: required when the consent policy decides
    /// [`ConsentDecision::StepUp`], ignored when it allows.
    pub fn stepped_up(mut self, proof: StepUpProof) -> Self {
        self.step_up = Some(proof);
        self
    }

    /// Data for the token issuer ([`Approval::data`]).
    pub fn data(mut self, data: ApprovalData) -> Self {
        self.data = Some(data);
        self
    }

    /// Grants only `granted` of the `authorization_details` the device
    /// requested (RFC 9396), instead of all of them: each must be within a
    /// requested detail of its type by that type's rule
    /// ([`AuthorizationDetailType::is_within`](crate::AuthorizationDetailType::is_within))
    /// and pass its validator, or the approval is refused with
    /// [`VerificationError::AuthorizationDetailsNotRequested`].
    pub fn authorization_details(mut self, granted: AuthorizationDetails) -> Self {
        self.authorization_details = Some(granted);
        self
    }

    /// The approving subject.
    pub fn subject(&self) -> &Subject {
        &self.subject
    }
}

/// A pending request as the consent page shows it.
#[derive(Debug, Clone)]
pub struct PendingRequest {
    /// The handle for [`DeviceGrant::approve`] and [`DeviceGrant::deny`].
    pub ticket: VerificationTicket,
    /// The requesting client's registration (its name, for the page).
    pub client: Arc<Client>,
    /// The request: scopes, creation and expiry time, the device's context.
    pub request: Arc<RequestDetails>,
    /// How long ago the device asked, at the time of the look-up.
    pub age: Duration,
}

impl PendingRequest {
    /// The `authorization_details` the device requested (RFC 9396), to show
    /// the person and to narrow with [`Approve::authorization_details`].
    pub fn authorization_details(&self) -> Option<&AuthorizationDetails> {
        self.request.authorization_details.as_ref()
    }
}

impl DeviceGrant {
    /// Finds the live pending request for what a person typed.
    ///
    /// Input that cannot be a code is refused at once and costs nothing. A
    /// well-formed code spends one attempt of the entry's key, of its account
    /// when signed in, and, when not signed in, of the deployment-wide
    /// anonymous budget, before the look-up. A right code gives them back, and
    /// so does a backend failure: only wrong codes count.
    ///
    /// - A spent key or account budget: [`VerificationError::TooManyAttempts`].
    /// - A spent anonymous budget, for someone not signed in:
    ///   [`VerificationError::SignInRequired`]. Signed-in people go on.
    pub async fn verify(
        &self,
        typed: &str,
        entry: &CodeEntry,
    ) -> Result<PendingRequest, VerificationError> {
        let config = &self.inner.config;
        let code = config.user_code_policy.normalize(typed)?;
        let now = self.now();
        let budgets = &config.budgets;
        let mut layers = Vec::with_capacity(2);
        layers.push(Layer::new(
            BudgetKind::WrongCodesPerKey,
            entry.key.clone(),
            budgets.wrong_codes_per_key,
        ));
        match &entry.account {
            Some(account) => layers.push(Layer::new(
                BudgetKind::WrongCodesPerAccount,
                account.clone(),
                budgets.wrong_codes_per_account,
            )),
            None => layers.extend(
                budgets
                    .wrong_codes_anonymous
                    .map(Layer::anonymous_wrong_codes),
            ),
        }
        if let Err(refused) = self.spend(&layers, now).await? {
            let retry_after = refused.retry_after;
            return Err(match refused.kind {
                BudgetKind::WrongCodesAnonymous => {
                    VerificationError::SignInRequired { retry_after }
                }
                _ => VerificationError::TooManyAttempts { retry_after },
            });
        }
        let found = match self.find(&code, now).await {
            Ok(found) => found,
            Err(e) => {
                // The look-up failed: nothing says the code was wrong.
                self.refund(&layers, now).await;
                return Err(e.into());
            }
        };
        let Some((record, client)) = found else {
            return Err(VerificationError::NotFound);
        };
        // A right code costs nothing: only wrong codes count.
        self.refund(&layers, now).await;
        Ok(PendingRequest {
            ticket: VerificationTicket {
                id: record.id,
                user_code_hash: record.user_code_hash,
            },
            client,
            age: now - record.request.created_at,
            request: record.request,
        })
    }

    /// The live pending record of a user code and its client's registration.
    async fn find(
        &self,
        code: &UserCode,
        now: OffsetDateTime,
    ) -> Result<Option<(DeviceAuthorization, Arc<Client>)>, BackendError> {
        let Some(record) = self.live_by_typed_code(code, now).await? else {
            return Ok(None);
        };
        let client = self.inner.clients.find(&record.request.client_id).await?;
        Ok(client.map(|client| (record, client)))
    }

    /// The pending request a ticket names, again: for the consent page after
    /// a redirect, or for the decision, without carrying the request's details
    /// in the page. Costs no attempt: a ticket is not a guess (it holds the
    /// keyed hash of the code, which only [`DeviceGrant::verify`] hands out).
    ///
    /// [`VerificationError::NotFound`] if the request expired, was decided, or
    /// the ticket names no request.
    pub async fn pending(
        &self,
        ticket: &VerificationTicket,
    ) -> Result<PendingRequest, VerificationError> {
        let now = self.now();
        let record = self
            .live_by_user_code(&ticket.user_code_hash, now)
            .await?
            .filter(|record| record.id == ticket.id)
            .ok_or(VerificationError::NotFound)?;
        let client = self
            .inner
            .clients
            .find(&record.request.client_id)
            .await?
            .ok_or(VerificationError::NotFound)?;
        Ok(PendingRequest {
            ticket: ticket.clone(),
            client,
            age: now - record.request.created_at,
            request: record.request,
        })
    }

    /// The consent-time signals for a pending request: how near the approver
    /// (at `approver_ip`) is to the device, how old the request is, and what
    /// the configured [`ConsentPolicy`](crate::ConsentPolicy) decides at
    /// [`PolicyStep::Approval`]. Show the signals on the consent page, and ask
    /// for a step-up when it decides so; [`DeviceGrant::approve`] enforces the
    /// decision again when the person answers. A client no longer registered
    /// for the device grant is [`ConsentDecision::Refuse`].
    pub fn assess(&self, pending: &PendingRequest, approver_ip: Option<IpAddr>) -> Assessment {
        let signals = self.signals(&pending.request, approver_ip, self.now());
        let verdict = self.approval_verdict(
            &pending.client,
            &pending.request,
            &pending.request.scopes,
            signals,
            None,
        );
        Assessment {
            decision: verdict.effective(),
            signals,
            verdict,
        }
    }

    fn signals(
        &self,
        request: &RequestDetails,
        approver_ip: Option<IpAddr>,
        now: OffsetDateTime,
    ) -> ConsentSignals {
        ConsentSignals {
            proximity: proximity(request.context.ip, approver_ip),
            age: now - request.created_at,
            approver_ip,
        }
    }

    /// The verdict at approval: the client's registration first (enforced
    /// in every mode), then the host's policy.
    fn approval_verdict(
        &self,
        client: &Client,
        request: &RequestDetails,
        scopes: &ScopeSet,
        signals: ConsentSignals,
        subject: Option<&Subject>,
    ) -> PolicyVerdict {
        if !client.device_grant {
            return PolicyVerdict {
                step: PolicyStep::Approval,
                decision: ConsentDecision::Refuse,
                enforced: true,
            };
        }
        self.policy(&PolicyCheck {
            step: PolicyStep::Approval,
            client,
            scopes,
            device: &request.context,
            consent: Some(signals),
            subject,
        })
    }

    /// Approves the request the ticket names, as `approval` says.
    ///
    /// The client's registration and the policy are checked again, on the
    /// stored request, the client's registration as it is now, the
    /// approver's address and the time of the commit: a client no longer
    /// registered for the device grant, or a policy that refuses, gives
    /// [`VerificationError::Refused`]; scopes above the client's device-grant
    /// ceiling give [`VerificationError::ScopeAboveCeiling`]; a policy that
    /// asks for a step-up gives [`VerificationError::StepUpRequired`] unless
    /// the approval carries a [`StepUpProof`] by its subject made after the
    /// device asked. What the consent page showed earlier does not count: a
    /// request can age into a step-up between page and answer. Each refusal
    /// raises an [`EventKind::Refused`] event; an approval raises
    /// [`EventKind::Approved`], with the proximity and the policy's verdict.
    ///
    /// The compare-and-set that marks the request approved is the commit
    /// point. `Ok` means it is approved; [`VerificationError::Unsettled`] means
    /// the store could not say; every other error means nothing changed.
    pub async fn approve(
        &self,
        ticket: &VerificationTicket,
        approval: Approve,
    ) -> Result<(), VerificationError> {
        let Approve {
            subject,
            approver_ip,
            scopes,
            step_up,
            data,
            authorization_details: granted_details,
        } = approval;
        let approved_at = self.now();
        // The client's registration as it is now, not as it was when the
        // device asked: a client can be withdrawn from the grant meanwhile.
        let client = {
            let record = self
                .live_by_user_code(&ticket.user_code_hash, approved_at)
                .await?
                .filter(|r| r.id == ticket.id)
                .ok_or(VerificationError::NotFound)?;
            self.inner
                .clients
                .find(&record.request.client_id)
                .await?
                .ok_or(VerificationError::NotFound)?
        };
        let mut decided: Option<(PolicyVerdict, ConsentSignals, Arc<RequestDetails>)> = None;
        let outcome = self
            .transition(
                ticket,
                |record, now| {
                    let request = &record.request;
                    let signals = self.signals(request, approver_ip, now);
                    let granted = scopes.as_ref().unwrap_or(&request.scopes);
                    let verdict =
                        self.approval_verdict(&client, request, granted, signals, Some(&subject));
                    decided = Some((verdict, signals, request.clone()));
                    // A scope the device never asked for is that, whatever
                    // the ceiling says of it.
                    if !granted.is_subset(&request.scopes) {
                        return Err(VerificationError::ScopeNotRequested);
                    }
                    if !granted.is_subset(client.device_scope_ceiling()) {
                        return Err(VerificationError::ScopeAboveCeiling);
                    }
                    match verdict.effective() {
                        ConsentDecision::Allow => {}
                        ConsentDecision::StepUp
                            if step_up.as_ref().is_some_and(|proof| {
                                proof.covers(&subject, request.created_at, now)
                            }) => {}
                        ConsentDecision::StepUp => {
                            return Err(VerificationError::StepUpRequired { signals });
                        }
                        ConsentDecision::Refuse => {
                            return Err(VerificationError::Refused { signals });
                        }
                    }
                    let authorization_details = match &granted_details {
                        None => request.authorization_details.clone(),
                        Some(g) => {
                            let types = &self.inner.detail_types;
                            // Empty: the person granted none of them.
                            if (!g.is_empty() && types.check(g).is_err())
                                || !types.is_within(Some(g), request.authorization_details.as_ref())
                            {
                                return Err(VerificationError::AuthorizationDetailsNotRequested);
                            }
                            Some(g.clone())
                        }
                    };
                    let approval = Approval {
                        subject: subject.clone(),
                        scopes: granted.clone(),
                        approved_at,
                        data: data.clone(),
                        authorization_details,
                    };
                    record.approve(approval, now).map_err(transition_error)
                },
                // Every round writes the same approval (the requested scopes
                // cannot change), so its fields say whether it landed.
                |stored| {
                    stored.status.approval().is_some_and(|a| {
                        a.subject == subject
                            && a.approved_at == approved_at
                            && a.data == data
                            && scopes.as_ref().is_none_or(|s| *s == a.scopes)
                            && granted_details
                                .as_ref()
                                .is_none_or(|g| a.authorization_details.as_ref() == Some(g))
                    })
                },
            )
            .await;
        let event = |kind| {
            decided.as_ref().map(|(verdict, signals, request)| {
                Event::about(approved_at, kind, ticket.id, request)
                    .with_subject(Some(&subject))
                    .with_approver(signals)
                    .with_policy(Some(*verdict))
            })
        };
        match outcome {
            Ok(record) => {
                self.release_pending(&record).await;
                if let Some(event) = event(EventKind::Approved) {
                    self.emit(event);
                }
                Ok(())
            }
            Err(
                e @ (VerificationError::Refused { .. }
                | VerificationError::StepUpRequired { .. }
                | VerificationError::ScopeAboveCeiling),
            ) => {
                if let Some(event) = event(EventKind::Refused) {
                    self.emit(event);
                }
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Denies the request. The commit point and the errors are those of
    /// [`DeviceGrant::approve`].
    pub async fn deny(&self, ticket: &VerificationTicket) -> Result<(), VerificationError> {
        let at = self.now();
        let record = self
            .transition(
                ticket,
                |record, _| record.deny(at).map_err(transition_error),
                |stored| stored.status == Status::Denied { at },
            )
            .await?;
        self.release_pending(&record).await;
        self.emit(Event::about(
            at,
            EventKind::Denied,
            record.id,
            &record.request,
        ));
        Ok(())
    }

    /// Gives back the pending-budget units of a request that left Pending, in
    /// the window it spent them in. After the commit point: best effort.
    async fn release_pending(&self, record: &DeviceAuthorization) {
        let config = &self.inner.config;
        let budgets = &config.budgets;
        let mut layers = Vec::with_capacity(2);
        layers.extend(
            budgets
                .pending_per_client
                .map(|n| Layer::pending(&record.request.client_id, n, config.lifetime)),
        );
        layers.extend(
            budgets
                .pending_total
                .map(|n| Layer::pending_total(n, config.lifetime)),
        );
        self.refund(&layers, record.request.created_at).await;
    }

    async fn live_by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let found = self.inner.store.by_user_code(hash, now).await?;
        Ok(found.filter(|r| r.is_live(now) && r.user_code_hash == *hash))
    }

    async fn transition(
        &self,
        ticket: &VerificationTicket,
        mut step: impl FnMut(
            &DeviceAuthorization,
            OffsetDateTime,
        ) -> Result<DeviceAuthorization, VerificationError>,
        landed: impl Fn(&DeviceAuthorization) -> bool,
    ) -> Result<DeviceAuthorization, VerificationError> {
        for _ in 0..CAS_ROUNDS {
            let now = self.now();
            let record = self
                .live_by_user_code(&ticket.user_code_hash, now)
                .await?
                .filter(|r| r.id == ticket.id)
                .ok_or(VerificationError::NotFound)?;
            let next = step(&record, now)?;
            match self.commit(record.version, &next, &landed).await {
                Commit::Done => return Ok(next),
                Commit::Lost => continue,
                Commit::Unknown(e) => return Err(VerificationError::Unsettled(e)),
            }
        }
        Err(VerificationError::Contended)
    }
}

fn transition_error(e: TransitionError) -> VerificationError {
    match e {
        TransitionError::ScopeNotRequested => VerificationError::ScopeNotRequested,
        _ => VerificationError::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_round_trips_and_redacts() {
        let t = VerificationTicket {
            id: AuthorizationId([3; 16]),
            user_code_hash: UserCodeHash([4; 32]),
        };
        assert_eq!(VerificationTicket::decode(&t.encode()), Some(t.clone()));
        assert!(!format!("{t:?}").contains(&URL_SAFE_NO_PAD.encode([4u8; 32])));
        assert_eq!(VerificationTicket::decode("nodot"), None);
        assert_eq!(VerificationTicket::decode("zz.AAAA"), None);
    }
}
