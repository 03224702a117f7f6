//! The verification pages (RFC 8628 §3.3): enter the code, sign in, consent,
//! done. Each handler checks the form's CSRF token, reads what the session
//! holds, calls the crate's verification API, and renders a template.
//!
//! A browser may have several codes in flight (two tabs, two devices): the
//! session holds each request found, and every consent page and form names
//! the one it answers, so that Allow approves exactly what the page showed.

use std::net::IpAddr;

use axum::extract::{Form, Query};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use device_grant::store::LimiterKey;
use device_grant::{
    ApprovalData, Approve, Assessment, CodeEntry, ConsentDecision, PendingRequest, PolicyStep,
    PolicyVerdict, Proximity, RequestDetails, StepUpProof, Subject, VerificationError,
    VerificationTicket,
};
use minijinja::context;
use time::{Duration, OffsetDateTime};
use tower_sessions::Session;

use super::address::ClientIp;
use super::security::{self, MAX_USERNAME, SIGN_IN_PER_ACCOUNT, SIGN_IN_PER_NETWORK, StepUp};
use super::session::Cookies;
use super::views::qr_svg;
use super::{App, State, accounts, media};

/// Session keys.
const USER: &str = "user";
const PENDING: &str = "pending";

/// Requests one browser may hold at once; the oldest is forgotten first.
const MAX_PENDING: usize = 5;

/// How much of what a person typed is shown back to them.
const ECHO_CODE: usize = 32;

/// How much of what the device says of itself is shown, as its own claim.
const DEVICE_CLAIM: usize = 80;

/// A request a person entered a code for, as the consent page shows it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Pending {
    /// The crate's handle on exactly this request, encoded.
    ticket: String,
    /// Its id: what the consent page and form name.
    pub(crate) id: String,
    client_name: String,
    request: RequestDetails,
}

impl From<PendingRequest> for Pending {
    fn from(found: PendingRequest) -> Self {
        Self {
            ticket: found.ticket.encode(),
            id: found.ticket.id().to_string(),
            client_name: found.client.name.clone(),
            request: (*found.request).clone(),
        }
    }
}

impl Pending {
    pub(crate) fn ticket(&self) -> Option<VerificationTicket> {
        VerificationTicket::decode(&self.ticket)
    }

    fn expired(&self, now: OffsetDateTime) -> bool {
        now >= self.request.expires_at
    }
}

/// Who signed in to this session, and when.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SignedIn {
    pub username: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// What the session holds. A failing session store is a server error.
pub(crate) async fn signed_in(session: &Session) -> Option<SignedIn> {
    session.get(USER).await.ok().flatten()
}

async fn pending_list(session: &Session) -> Vec<Pending> {
    session
        .get(PENDING)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

pub(crate) async fn pending_by_id(session: &Session, id: &str) -> Option<Pending> {
    pending_list(session).await.into_iter().find(|p| p.id == id)
}

/// Keeps `pending` (once, newest last), forgetting the oldest beyond the bound.
pub(crate) async fn keep_pending(session: &Session, pending: Pending) -> Result<(), Response> {
    let mut list = pending_list(session).await;
    list.retain(|p| p.id != pending.id);
    list.push(pending);
    let excess = list.len().saturating_sub(MAX_PENDING);
    list.drain(..excess);
    session
        .insert(PENDING, list)
        .await
        .map_err(|_| unavailable())
}

pub(crate) async fn forget_pending(session: &Session, id: &str) -> Result<(), Response> {
    let mut list = pending_list(session).await;
    list.retain(|p| p.id != id);
    session
        .insert(PENDING, list)
        .await
        .map_err(|_| unavailable())
}

#[derive(serde::Deserialize)]
pub(crate) struct CodeQuery {
    user_code: Option<String>,
}

#[derive(serde::Deserialize)]
pub(crate) struct RequestQuery {
    #[serde(default)]
    request: String,
}

// Missing fields are empty rather than a framework error page: an empty CSRF
// token fails the check, an empty code gets the page's own message.
#[derive(serde::Deserialize)]
pub(crate) struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_code: String,
}

#[derive(serde::Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// The request the person is signing in to answer, if any.
    #[serde(default)]
    request: String,
}

#[derive(serde::Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    /// The request this form answers: the one its page showed.
    #[serde(default)]
    request: String,
    #[serde(default)]
    decision: String,
    /// The step-up: the person's password again…
    #[serde(default)]
    password: String,
    /// …and the ticked "I started this myself, on a device in front of me".
    #[serde(default)]
    own_device: String,
    /// The authorization details' action boxes left ticked: `grant_{detail}_{action}`.
    #[serde(flatten)]
    grants: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `GET /`: the verification page is the front page.
pub(crate) async fn home() -> Redirect {
    Redirect::to("/device")
}

/// `GET /device[?user_code=…]`: the code form. Opened from
/// `verification_uri_complete` it is pre-filled, and asks the person to check
/// that the code matches their device's screen (RFC 8628 §3.3.1): a phisher can
/// send a link with their own code in it.
pub(crate) async fn enter_code(
    state: State,
    cookies: Cookies,
    session: Session,
    Query(query): Query<CodeQuery>,
) -> Response {
    let mut code = String::new();
    let mut confirm = false;
    let mut qr = None;
    let mut error = None;
    if let Some(typed) = query.user_code {
        match state.grant.config().user_code_policy().normalize(&typed) {
            Ok(normalized) => {
                code = normalized.display().to_owned();
                confirm = true;
                qr = complete_uri(&state, &code).as_deref().and_then(qr_svg);
            }
            Err(_) => error = Some(MALFORMED),
        }
    }
    let page = state.views.page(
        if error.is_some() {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::OK
        },
        "device.html",
        context! {
            csrf => cookies.csrf(),
            user => user_name(&state, &session).await,
            user_code => code,
            confirm,
            qr,
            error,
        },
    );
    cookies.apply(page)
}

const MALFORMED: &str =
    "That is not a code from a device. Type the code exactly as your device shows it.";

/// `POST /device`: looks the code up. Wrong codes are counted against the
/// person's network and, when signed in, their account: a guesser can drop
/// cookies, not networks, and one account guessing from many networks is still
/// one budget.
pub(crate) async fn submit_code(
    state: State,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    session: Session,
    Form(form): Form<CodeForm>,
) -> Response {
    if !cookies.csrf_ok(&form.csrf) {
        return cookies.apply(expired_form(&state));
    }
    let user = signed_in(&session).await;
    // Wrong codes count against the person's network (an IPv4 address or an
    // IPv6 /64: a guesser can drop cookies, not networks) and, when signed in,
    // against the account.
    let mut entry = match ip {
        Some(ip) => CodeEntry::from_address(ip),
        None => CodeEntry::from_key(LimiterKey::new("code:net:unknown")),
    };
    if let Some(user) = &user {
        entry = entry.signed_in(&Subject::new(user.username.clone()));
    }
    let result = state.grant.verify(&form.user_code, &entry).await;
    let (status, error) = match result {
        Ok(found) => {
            let pending = Pending::from(found);
            let next = if user.is_some() {
                format!("/consent?request={}", pending.id)
            } else {
                format!("/login?request={}", pending.id)
            };
            if let Err(page) = keep_pending(&session, pending).await {
                return page;
            }
            return cookies.apply(Redirect::to(&next).into_response());
        }
        Err(VerificationError::Malformed(_)) => (StatusCode::BAD_REQUEST, MALFORMED.to_owned()),
        Err(VerificationError::NotFound) => (
            StatusCode::BAD_REQUEST,
            "No device is waiting for this code. Check that it matches your device’s \
             screen: codes work once, for a few minutes."
                .to_owned(),
        ),
        Err(VerificationError::TooManyAttempts { retry_after }) => {
            return too_many_codes(&state, &session, cookies, &form.user_code, retry_after).await;
        }
        // Too many wrong codes across the whole service: for a while, only
        // people who have signed in may enter codes. Nobody is refused.
        Err(VerificationError::SignInRequired { retry_after }) => {
            tracing::warn!(
                event = "code_entry_signed_in_mode",
                retry_after = retry_after.whole_seconds(),
                "code entry asks people to sign in first"
            );
            (
                StatusCode::UNAUTHORIZED,
                format!(
                    "Please sign in first (Sign in, at /login), then enter your code again. \
                     For the next {} minutes, codes can only be entered after signing in.",
                    retry_after.whole_minutes().max(1)
                ),
            )
        }
        Err(error) => {
            tracing::error!(%error, "verification failed");
            (StatusCode::SERVICE_UNAVAILABLE, TRY_AGAIN.to_owned())
        }
    };
    let page =
        render_device_error(&state, &session, &cookies, &form.user_code, status, error).await;
    cookies.apply(page)
}

async fn too_many_codes(
    state: &App,
    session: &Session,
    cookies: Cookies,
    typed: &str,
    retry_after: Duration,
) -> Response {
    let secs = retry_after.whole_seconds().max(1);
    let message = format!("Too many wrong codes. Try again in {secs} seconds.");
    let page = render_device_error(
        state,
        session,
        &cookies,
        typed,
        StatusCode::TOO_MANY_REQUESTS,
        message,
    )
    .await;
    let mut page = cookies.apply(page);
    page.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    page
}

const TRY_AGAIN: &str = "Something went wrong on our side. Please try again in a moment.";

async fn render_device_error(
    state: &App,
    session: &Session,
    cookies: &Cookies,
    typed: &str,
    status: StatusCode,
    error: String,
) -> Response {
    state.views.page(
        status,
        "device.html",
        context! {
            csrf => cookies.csrf(),
            user => user_name(state, session).await,
            user_code => cut(typed, ECHO_CODE),
            error,
        },
    )
}

/// `GET /login[?request=…]`.
pub(crate) async fn sign_in_form(
    state: State,
    cookies: Cookies,
    session: Session,
    Query(query): Query<RequestQuery>,
) -> Response {
    let pending = pending_by_id(&session, &query.request).await;
    if signed_in(&session).await.is_some() {
        if let Some(pending) = pending {
            return Redirect::to(&format!("/consent?request={}", pending.id)).into_response();
        }
    }
    let page = render_sign_in(&state, &cookies, pending.as_ref(), StatusCode::OK, "", None);
    cookies.apply(page)
}

fn render_sign_in(
    state: &App,
    cookies: &Cookies,
    pending: Option<&Pending>,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Response {
    state.views.page(
        status,
        "login.html",
        context! {
            csrf => cookies.csrf(),
            username => cut(username, MAX_USERNAME),
            error,
            request => pending.map(|p| p.id.clone()),
            client_name => pending.map(|p| p.client_name.clone()),
        },
    )
}

/// `POST /login`: throttled per source network and per account (see
/// `security`), so that guessing is slow and aimed only where it came from.
pub(crate) async fn sign_in(
    state: State,
    ClientIp(ip): ClientIp,
    mut cookies: Cookies,
    session: Session,
    Form(form): Form<SignInForm>,
) -> Response {
    if !cookies.csrf_ok(&form.csrf) {
        return cookies.apply(expired_form(&state));
    }
    let now = state.clock.now();
    let pending = pending_by_id(&session, &form.request).await;
    let mut layers = vec![(
        LimiterKey::new(format!("login:net:{}", security::network(ip))),
        SIGN_IN_PER_NETWORK,
    )];
    let plausible = form.username.len() <= MAX_USERNAME;
    // A browser the account signed in on before is spared the account's budget:
    // strangers guessing at alice's password cannot lock alice out.
    if plausible && !cookies.known_for(&form.username) {
        layers.push((
            LimiterKey::new(format!("login:account:{}", form.username)),
            SIGN_IN_PER_ACCOUNT,
        ));
    }
    match security::spend(&state.limiter, &layers, now).await {
        Ok(Ok(())) => {}
        Ok(Err((key, retry_after))) => {
            let (key_family, key_hash) = state.key_hasher.describe(&key);
            tracing::warn!(
                event = "sign_in_throttled",
                key_family,
                key_hash,
                "sign-in budget spent"
            );
            let minutes = (retry_after.whole_seconds() + 59) / 60;
            let message = format!(
                "Too many failed sign-ins. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            );
            let page = render_sign_in(
                &state,
                &cookies,
                pending.as_ref(),
                StatusCode::TOO_MANY_REQUESTS,
                &form.username,
                Some(&message),
            );
            let mut page = cookies.apply(page);
            page.headers_mut().insert(
                RETRY_AFTER,
                HeaderValue::from(retry_after.whole_seconds().max(1)),
            );
            return page;
        }
        Err(error) => {
            tracing::error!(%error, "the limiter failed");
            return unavailable();
        }
    }
    let user = if plausible {
        state.users.check(&form.username, &form.password)
    } else {
        None
    };
    let Some(user) = user else {
        let page = render_sign_in(
            &state,
            &cookies,
            pending.as_ref(),
            StatusCode::UNAUTHORIZED,
            &form.username,
            Some("Wrong username or password."),
        );
        return cookies.apply(page);
    };
    // A right password costs nothing.
    if let Err(error) = security::refund(&state.limiter, &layers, now).await {
        tracing::error!(%error, "the limiter failed");
    }
    // A new session id and CSRF token: an id or token planted before sign-in
    // is worth nothing after it.
    let signed = SignedIn {
        username: user.username.clone(),
        at: now,
    };
    if session.cycle_id().await.is_err() || session.insert(USER, signed).await.is_err() {
        return unavailable();
    }
    cookies.new_csrf();
    cookies.remember(&user.username);
    let next = match pending {
        Some(pending) => format!("/consent?request={}", pending.id),
        None => "/device".to_owned(),
    };
    cookies.apply(Redirect::to(&next).into_response())
}

/// `POST /logout`: the whole session goes, with any code entered in it, so
/// that the next person on this browser starts afresh.
pub(crate) async fn sign_out(
    state: State,
    mut cookies: Cookies,
    session: Session,
    Form(form): Form<CsrfForm>,
) -> Response {
    if !cookies.csrf_ok(&form.csrf) {
        return cookies.apply(expired_form(&state));
    }
    if session.flush().await.is_err() {
        return unavailable();
    }
    cookies.new_csrf();
    cookies.apply(Redirect::to("/device").into_response())
}

/// `GET /consent?request=…`: who asks, for what, from where and when, and
/// whether the device is on the person's network (RFC 8628 §5.4: the context
/// lets a person tell their own device from a phisher's). The crate's consent
/// policy decides whether Allow needs a step-up or is refused.
pub(crate) async fn consent(
    state: State,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    session: Session,
    Query(query): Query<RequestQuery>,
) -> Response {
    let now = state.clock.now();
    let Some(user) = signed_in(&session).await else {
        return Redirect::to(&format!("/login?request={}", url_safe(&query.request)))
            .into_response();
    };
    let Some(pending) = pending_by_id(&session, &query.request).await else {
        return Redirect::to("/device").into_response();
    };
    if pending.expired(now) {
        return cookies.apply(ended(&state));
    }
    let Some(ticket) = pending.ticket() else {
        return Redirect::to("/device").into_response();
    };
    // The crate's own view of the request, not the session's copy: it may
    // have been answered in another tab since.
    let found = match state.grant.pending(&ticket).await {
        Ok(found) => found,
        Err(VerificationError::NotFound) => return cookies.apply(ended(&state)),
        Err(error) => {
            tracing::error!(%error, "reading the request failed");
            return message(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                TRY_AGAIN,
            );
        }
    };
    let assessment = state.grant.assess(&found, ip);
    let page = render_consent(
        &state,
        &cookies,
        &user,
        &pending,
        &assessment,
        StatusCode::OK,
        None,
    );
    cookies.apply(page)
}

/// Ids are hex; anything else is not echoed into a redirect.
fn url_safe(id: &str) -> &str {
    if id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        id
    } else {
        ""
    }
}

/// Requests older than this are called out on the consent page (the age
/// `NetworkPolicy` asks for a step-up after, by default).
const STALE: Duration = Duration::minutes(5);

fn render_consent(
    state: &App,
    cookies: &Cookies,
    user: &SignedIn,
    pending: &Pending,
    assessment: &Assessment,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let now = state.clock.now();
    let request = &pending.request;
    let scopes: Vec<_> = request
        .scopes
        .iter()
        .map(|scope| {
            let known = accounts::SCOPES.iter().find(|(s, _)| *s == scope.as_str());
            context! {
                name => scope.as_str(),
                description => known.map_or(scope.as_str(), |(_, d)| *d),
            }
        })
        .collect();
    // RFC 9396: what each requested detail asks for, with a box per action.
    let details: Vec<_> = request
        .authorization_details
        .iter()
        .flatten()
        .enumerate()
        .map(|(index, detail)| {
            let actions: Vec<_> = media::actions_of(detail)
                .into_iter()
                .map(|(name, words)| context! { name, words })
                .collect();
            context! { index, lines => media::describe(detail), actions }
        })
        .collect();
    let signals = &assessment.signals;
    let proximity = match signals.proximity {
        Proximity::SameAddress | Proximity::SameNetwork => "same",
        Proximity::DifferentNetwork => "different",
        _ => "unknown",
    };
    state.views.page(
        status,
        "consent.html",
        context! {
            csrf => cookies.csrf(),
            request => pending.id,
            user => state.users.get(&user.username).map(|u| u.name.clone()),
            client_name => pending.client_name,
            client_id => request.client_id.as_str(),
            scopes,
            details,
            device_ip => request.context.ip.map(|ip: IpAddr| ip.to_string()),
            approver_ip => signals.approver_ip.map(|ip: IpAddr| ip.to_string()),
            device_user_agent => request.context.user_agent.as_deref().map(|ua| cut(ua, DEVICE_CLAIM)),
            proximity,
            stale => signals.age > STALE,
            decision => decision_name(assessment.decision),
            error,
            asked_at => clock_time(request.created_at),
            asked_ago => how_long(signals.age),
            expires_in => how_long(request.expires_at - now),
        },
    )
}

/// The policy's decision as the template names it; one this server does not
/// know is a refusal.
fn decision_name(decision: ConsentDecision) -> &'static str {
    match decision {
        ConsentDecision::Allow => "allow",
        ConsentDecision::StepUp => "step_up",
        _ => "refuse",
    }
}

const STEP_UP_NEEDED: &str = "To allow this request, tick the box to confirm you started it \
     yourself, and enter your password again.";

/// `POST /consent`: approve or deny the request the form names, once. The
/// crate checks Allow against the consent policy again, with the address the
/// answer came from: a step-up must come with it (the password again and the
/// box ticked, checked here), and a refused request cannot be approved.
pub(crate) async fn decide(
    state: State,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    session: Session,
    Form(form): Form<DecisionForm>,
) -> Response {
    if !cookies.csrf_ok(&form.csrf) {
        return cookies.apply(expired_form(&state));
    }
    let now = state.clock.now();
    let Some(user) = signed_in(&session).await else {
        return Redirect::to("/login").into_response();
    };
    let Some(pending) = pending_by_id(&session, &form.request).await else {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            "Nothing to answer",
            NOTHING_PENDING,
        );
    };
    let Some(ticket) = pending.ticket() else {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            "Nothing to answer",
            NOTHING_PENDING,
        );
    };
    if pending.expired(now) {
        if let Err(page) = forget_pending(&session, &pending.id).await {
            return page;
        }
        return ended(&state);
    }
    let result = match form.decision.as_str() {
        "approve" => {
            let subject = Subject::new(user.username.clone());
            // Only a password checked here makes a proof; the crate decides
            // whether the policy needs one.
            let step_up = match StepUp::check(
                &state,
                &user.username,
                form.own_device == "yes",
                &form.password,
                now,
            )
            .await
            {
                Ok(step_up) => step_up,
                Err(error) => {
                    tracing::error!(%error, "the limiter failed");
                    return unavailable();
                }
            };
            let stepped_up = matches!(step_up, StepUp::Confirmed);
            let auth_time = if stepped_up { now } else { user.at };
            // What the token issuer puts in ID tokens, fixed at consent.
            let profile = state.users.get(&user.username);
            let Ok(data) = ApprovalData::new(&serde_json::json!({
                "auth_time": auth_time.unix_timestamp(),
                "name": profile.map(|u| u.name.clone()),
                "email": profile.map(|u| u.email.clone()),
            })) else {
                return unavailable();
            };
            let mut approval = Approve::as_requested(subject.clone(), ip).data(data);
            if let Some(requested) = &pending.request.authorization_details {
                let ticked = |i: usize, action: &str| {
                    form.grants
                        .get(&format!("grant_{i}_{action}"))
                        .map(String::as_str)
                        == Some("yes")
                };
                approval = approval.authorization_details(media::narrowed(requested, ticked));
            }
            if stepped_up {
                approval = approval.stepped_up(StepUpProof::reauthenticated(&subject, now));
            }
            match state.grant.approve(&ticket, approval).await {
                Err(VerificationError::StepUpRequired { signals }) => {
                    tracing::warn!(
                        event = "step_up_failed",
                        subject = %user.username,
                        client_id = %pending.request.client_id.as_str(),
                        "allow without a confirmed step-up"
                    );
                    // Not approved: the request stays, to answer properly.
                    let assessment = Assessment {
                        signals,
                        decision: ConsentDecision::StepUp,
                        verdict: PolicyVerdict {
                            step: PolicyStep::Approval,
                            decision: ConsentDecision::StepUp,
                            enforced: true,
                        },
                    };
                    if let StepUp::Throttled(retry_after) = step_up {
                        let minutes = (retry_after.whole_seconds() + 59) / 60;
                        let message = format!(
                            "Too many wrong passwords. Try again in {minutes} minute{}.",
                            if minutes == 1 { "" } else { "s" }
                        );
                        let mut page = render_consent(
                            &state,
                            &cookies,
                            &user,
                            &pending,
                            &assessment,
                            StatusCode::TOO_MANY_REQUESTS,
                            Some(&message),
                        );
                        page.headers_mut().insert(
                            RETRY_AFTER,
                            HeaderValue::from(retry_after.whole_seconds().max(1)),
                        );
                        return page;
                    }
                    return render_consent(
                        &state,
                        &cookies,
                        &user,
                        &pending,
                        &assessment,
                        StatusCode::FORBIDDEN,
                        Some(STEP_UP_NEEDED),
                    );
                }
                Err(VerificationError::Refused { .. } | VerificationError::ScopeAboveCeiling) => {
                    // Refused by the policy or the client's registration:
                    // only Deny is left.
                    return message(
                        &state,
                        StatusCode::FORBIDDEN,
                        "This request can’t be approved here",
                        REFUSED,
                    );
                }
                result => result,
            }
        }
        "deny" => state.grant.deny(&ticket).await,
        _ => {
            // Neither button: keep the request and ask again.
            return message(
                &state,
                StatusCode::BAD_REQUEST,
                "Choose an answer",
                "Go back and choose Allow or Deny.",
            );
        }
    };
    // The decision is spent whatever happened: a second submission finds nothing.
    if let Err(page) = forget_pending(&session, &pending.id).await {
        return page;
    }
    match result {
        Ok(()) => state.views.page(
            StatusCode::OK,
            "done.html",
            context! {
                approved => form.decision == "approve",
                client_name => pending.client_name,
            },
        ),
        Err(VerificationError::NotFound) => ended(&state),
        Err(error) => {
            tracing::error!(%error, "decision failed");
            message(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "Please try again",
                TRY_AGAIN,
            )
        }
    }
}

const REFUSED: &str = "For your safety, this request can’t be approved from here: the device \
     that asked is not on your network, or it asked too long ago. If you started it yourself, go \
     back and choose Deny, then start again on your device while you are near it.";

const NOTHING_PENDING: &str =
    "No device request is waiting for your answer. Enter the code from your device first.";

/// An expired or already answered request: nothing to allow.
fn ended(state: &App) -> Response {
    message(
        state,
        StatusCode::GONE,
        "This request has expired",
        "It expired or was already answered. Start again on your device to get a new code.",
    )
}

fn message(state: &App, status: StatusCode, title: &str, text: &str) -> Response {
    state
        .views
        .page(status, "message.html", context! { title, text })
}

fn unavailable() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, TRY_AGAIN).into_response()
}

fn expired_form(state: &App) -> Response {
    message(
        state,
        StatusCode::FORBIDDEN,
        "This form has expired",
        "For your safety, forms work only in the window that showed them. Please start again.",
    )
}

async fn user_name(state: &App, session: &Session) -> Option<String> {
    let user = signed_in(session).await?;
    state.users.get(&user.username).map(|u| u.name.clone())
}

fn complete_uri(state: &App, code: &str) -> Option<String> {
    let mut uri = url::Url::parse(state.grant.config().verification_uri()).ok()?;
    uri.query_pairs_mut().append_pair("user_code", code);
    Some(uri.into())
}

/// At most `max` characters of `text`, with an ellipsis when cut.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

fn clock_time(at: OffsetDateTime) -> String {
    format!("{:02}:{:02}:{:02} UTC", at.hour(), at.minute(), at.second())
}

fn how_long(d: Duration) -> String {
    let secs = d.whole_seconds().max(0);
    match secs {
        0..=1 => "a moment".to_owned(),
        2..=119 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs / 60),
    }
}
