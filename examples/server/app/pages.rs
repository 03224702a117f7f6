//! The verification pages (RFC 8628 §3.3): enter the code, sign in, consent,
//! done. Each handler loads the session, checks the form's CSRF token, calls the
//! crate's verification API, and renders a template.

use std::net::IpAddr;

use axum::extract::{Form, Query};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use device_grant::{
    Assessment, ConsentDecision, LimiterKey, PendingRequest, Proximity, ScopeSet, Subject,
    VerificationError, VerificationTicket,
};
use minijinja::context;
use time::{Duration, OffsetDateTime};

use super::address::ClientIp;
use super::session::{self, Session};
use super::views::qr_svg;
use super::{App, State, accounts};

/// The request a person entered a code for, as the consent page shows it. Kept
/// in the server-side session between the code and the decision.
#[derive(Clone)]
pub struct Pending {
    /// The crate's handle on exactly this request, encoded.
    ticket: String,
    client_name: String,
    client_id: String,
    scopes: ScopeSet,
    device_ip: Option<String>,
    device_user_agent: Option<String>,
    asked_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    /// The crate's view of the request, which `DeviceGrant::assess` compares
    /// with the approver at consent.
    found: PendingRequest,
}

impl From<PendingRequest> for Pending {
    fn from(found: PendingRequest) -> Self {
        let request = &found.request;
        Self {
            found: found.clone(),
            ticket: found.ticket.encode(),
            client_name: found.client.name.clone(),
            client_id: found.client.id.as_str().to_owned(),
            scopes: request.scopes.clone(),
            device_ip: request.context.ip.map(|ip| ip.to_string()),
            device_user_agent: request.context.user_agent.clone(),
            asked_at: request.created_at,
            expires_at: request.expires_at,
        }
    }
}

/// Who signed in to this session, and when.
#[derive(Clone)]
pub struct SignedIn {
    pub username: String,
    pub at: OffsetDateTime,
}

#[derive(serde::Deserialize)]
pub struct CodeQuery {
    user_code: Option<String>,
}

// Missing fields are empty rather than a framework error page: an empty CSRF
// token fails the check, an empty code gets the page's own message.
#[derive(serde::Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    user_code: String,
}

#[derive(serde::Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

#[derive(serde::Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    decision: String,
    /// The step-up: the person's password again…
    #[serde(default)]
    password: String,
    /// …and the ticked "I started this myself, on a device in front of me".
    #[serde(default)]
    own_device: String,
}

#[derive(serde::Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// `GET /`: the verification page is the front page.
pub async fn home() -> Redirect {
    Redirect::to("/device")
}

/// `GET /device[?user_code=…]`: the code form. Opened from
/// `verification_uri_complete` it is pre-filled, and asks the person to check
/// that the code matches their device's screen (RFC 8628 §3.3.1): a phisher can
/// send a link with their own code in it.
pub async fn enter_code(
    state: State,
    headers: HeaderMap,
    Query(query): Query<CodeQuery>,
) -> Response {
    let (sid, session) = state.sessions.load(&headers, state.clock.now());
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
            csrf => session.csrf,
            user => user_name(&state, &session),
            user_code => code,
            confirm,
            qr,
            error,
        },
    );
    with_cookie(page, &sid, &state)
}

const MALFORMED: &str =
    "That is not a code from a device. Type the code exactly as your device shows it.";

/// `POST /device`: looks the code up, counting wrong ones against the
/// person's address.
pub async fn submit_code(
    state: State,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let (sid, mut session) = state.sessions.load(&headers, state.clock.now());
    if !session.csrf_ok(&form.csrf) {
        return with_cookie(expired_form(&state), &sid, &state);
    }
    // The address, not the session: a guesser can drop cookies, not addresses.
    let key = LimiterKey::new(match ip {
        Some(ip) => format!("ip:{ip}"),
        None => "ip:unknown".to_owned(),
    });
    let entry = device_grant::CodeEntry::from_key(key);
    let (status, error) = match state.grant.verify(&form.user_code, &entry).await {
        Ok(found) => {
            session.pending = Some(found.into());
            let next = if session.user.is_some() {
                "/consent"
            } else {
                "/login"
            };
            state.sessions.save(&sid, session);
            return with_cookie(Redirect::to(next).into_response(), &sid, &state);
        }
        Err(VerificationError::Malformed(_)) => (StatusCode::BAD_REQUEST, MALFORMED.to_owned()),
        Err(VerificationError::NotFound) => (
            StatusCode::BAD_REQUEST,
            "No device is waiting for this code. Check that it matches your device’s \
             screen: codes work once, for a few minutes."
                .to_owned(),
        ),
        Err(VerificationError::TooManyAttempts { retry_after }) => {
            let secs = retry_after.whole_seconds().max(1);
            let message = format!("Too many wrong codes. Try again in {secs} seconds.");
            let page = render_device_error(
                &state,
                &session,
                &form.user_code,
                StatusCode::TOO_MANY_REQUESTS,
                message,
            );
            let mut page = with_cookie(page, &sid, &state);
            page.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
            return page;
        }
        Err(error) => {
            eprintln!("verification failed: {error}");
            (StatusCode::SERVICE_UNAVAILABLE, TRY_AGAIN.to_owned())
        }
    };
    let page = render_device_error(&state, &session, &form.user_code, status, error);
    with_cookie(page, &sid, &state)
}

const TRY_AGAIN: &str = "Something went wrong on our side. Please try again in a moment.";

fn render_device_error(
    state: &App,
    session: &Session,
    typed: &str,
    status: StatusCode,
    error: String,
) -> Response {
    state.views.page(
        status,
        "device.html",
        context! {
            csrf => session.csrf,
            user => user_name(state, session),
            user_code => typed,
            error,
        },
    )
}

/// `GET /login`.
pub async fn sign_in_form(state: State, headers: HeaderMap) -> Response {
    let (sid, session) = state.sessions.load(&headers, state.clock.now());
    if session.user.is_some() && session.pending.is_some() {
        return Redirect::to("/consent").into_response();
    }
    let page = render_sign_in(&state, &session, StatusCode::OK, "", None);
    with_cookie(page, &sid, &state)
}

fn render_sign_in(
    state: &App,
    session: &Session,
    status: StatusCode,
    username: &str,
    error: Option<&str>,
) -> Response {
    state.views.page(
        status,
        "login.html",
        context! {
            csrf => session.csrf,
            username,
            error,
            client_name => session.pending.as_ref().map(|p| p.client_name.clone()),
        },
    )
}

/// `POST /login`.
pub async fn sign_in(state: State, headers: HeaderMap, Form(form): Form<SignInForm>) -> Response {
    let now = state.clock.now();
    let (sid, mut session) = state.sessions.load(&headers, now);
    if !session.csrf_ok(&form.csrf) {
        return with_cookie(expired_form(&state), &sid, &state);
    }
    let Some(user) = state.users.check(&form.username, &form.password) else {
        let page = render_sign_in(
            &state,
            &session,
            StatusCode::UNAUTHORIZED,
            &form.username,
            Some("Wrong username or password."),
        );
        return with_cookie(page, &sid, &state);
    };
    session.user = Some(SignedIn {
        username: user.username.clone(),
        at: now,
    });
    let next = if session.pending.is_some() {
        "/consent"
    } else {
        "/device"
    };
    let sid = state.sessions.rotate(&sid, session);
    with_cookie(Redirect::to(next).into_response(), &sid, &state)
}

/// `POST /logout`.
pub async fn sign_out(state: State, headers: HeaderMap, Form(form): Form<CsrfForm>) -> Response {
    let (sid, mut session) = state.sessions.load(&headers, state.clock.now());
    if !session.csrf_ok(&form.csrf) {
        return with_cookie(expired_form(&state), &sid, &state);
    }
    session.user = None;
    let sid = state.sessions.rotate(&sid, session);
    with_cookie(Redirect::to("/device").into_response(), &sid, &state)
}

/// `GET /consent`: who asks, for what, from where and when, and whether the
/// device is on the person's network (RFC 8628 §5.4: the context lets a person
/// tell their own device from a phisher's). The crate's consent policy decides
/// whether Allow needs a step-up or is refused.
pub async fn consent(state: State, ClientIp(ip): ClientIp, headers: HeaderMap) -> Response {
    let now = state.clock.now();
    let (sid, session) = state.sessions.load(&headers, now);
    let Some(user) = session.user.as_ref() else {
        return Redirect::to("/login").into_response();
    };
    let Some(pending) = session.pending.as_ref() else {
        return Redirect::to("/device").into_response();
    };
    let assessment = state.grant.assess(&pending.found, ip);
    let page = render_consent(
        &state,
        &session,
        user,
        pending,
        &assessment,
        StatusCode::OK,
        None,
    );
    with_cookie(page, &sid, &state)
}

/// Requests older than this are called out on the consent page (the age
/// `NetworkPolicy` asks for a step-up after, by default).
const STALE: Duration = Duration::minutes(5);

fn render_consent(
    state: &App,
    session: &Session,
    user: &SignedIn,
    pending: &Pending,
    assessment: &Assessment,
    status: StatusCode,
    error: Option<&str>,
) -> Response {
    let now = state.clock.now();
    let scopes: Vec<_> = pending
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
            csrf => session.csrf,
            user => state.users.get(&user.username).map(|u| u.name.clone()),
            client_name => pending.client_name,
            client_id => pending.client_id,
            scopes,
            device_ip => pending.device_ip,
            approver_ip => signals.approver_ip.map(|ip: IpAddr| ip.to_string()),
            device_user_agent => pending.device_user_agent,
            proximity,
            stale => signals.age > STALE,
            decision => decision_name(assessment.decision),
            error,
            asked_at => clock_time(pending.asked_at),
            asked_ago => how_long(signals.age),
            expires_in => how_long(pending.expires_at - now),
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

/// `POST /consent`: approve or deny, once. Allow is checked against the
/// consent policy again, with the address the answer came from: a step-up must
/// come with it, and a refused request cannot be approved.
pub async fn decide(
    state: State,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    let now = state.clock.now();
    let (sid, mut session) = state.sessions.load(&headers, now);
    if !session.csrf_ok(&form.csrf) {
        return with_cookie(expired_form(&state), &sid, &state);
    }
    let Some(user) = session.user.clone() else {
        return Redirect::to("/login").into_response();
    };
    let Some(pending) = session.pending.take() else {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            "Nothing to answer",
            NOTHING_PENDING,
        );
    };
    let Some(ticket) = VerificationTicket::decode(&pending.ticket) else {
        return message(
            &state,
            StatusCode::BAD_REQUEST,
            "Nothing to answer",
            NOTHING_PENDING,
        );
    };
    let result = match form.decision.as_str() {
        "approve" => {
            let assessment = state.grant.assess(&pending.found, ip);
            let mut auth_time = user.at;
            match assessment.decision {
                ConsentDecision::Allow => {}
                ConsentDecision::StepUp => {
                    let confirmed = form.own_device == "yes"
                        && state.users.check(&user.username, &form.password).is_some();
                    if !confirmed {
                        // Not approved: the request stays, to answer properly.
                        let page = render_consent(
                            &state,
                            &session,
                            &user,
                            &pending,
                            &assessment,
                            StatusCode::FORBIDDEN,
                            Some(STEP_UP_NEEDED),
                        );
                        session.pending = Some(pending);
                        state.sessions.save(&sid, session);
                        return page;
                    }
                    // The person just proved who they are.
                    auth_time = now;
                }
                _ => {
                    // Refused by the policy: only Deny is left.
                    session.pending = Some(pending);
                    state.sessions.save(&sid, session);
                    return message(
                        &state,
                        StatusCode::FORBIDDEN,
                        "This request can’t be approved here",
                        REFUSED,
                    );
                }
            }
            // What the token issuer puts in ID tokens, fixed at consent.
            let profile = state.users.get(&user.username);
            let data = serde_json::json!({
                "auth_time": auth_time.unix_timestamp(),
                "name": profile.map(|u| u.name.clone()),
                "email": profile.map(|u| u.email.clone()),
            });
            let subject = Subject::new(user.username.clone());
            state
                .grant
                .approve(&ticket, subject, pending.scopes.clone(), Some(data))
                .await
        }
        "deny" => state.grant.deny(&ticket).await,
        _ => {
            // Neither button: keep the request and ask again.
            session.pending = Some(pending);
            state.sessions.save(&sid, session);
            return message(
                &state,
                StatusCode::BAD_REQUEST,
                "Choose an answer",
                "Go back and choose Allow or Deny.",
            );
        }
    };
    // The decision is spent whatever happened: a second submission finds nothing.
    state.sessions.save(&sid, session);
    match result {
        Ok(()) => state.views.page(
            StatusCode::OK,
            "done.html",
            context! {
                approved => form.decision == "approve",
                client_name => pending.client_name,
            },
        ),
        Err(VerificationError::NotFound) => message(
            &state,
            StatusCode::GONE,
            "This request has ended",
            "It expired or was already answered. Start again on your device to get a new code.",
        ),
        Err(error) => {
            eprintln!("decision failed: {error}");
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

fn message(state: &App, status: StatusCode, title: &str, text: &str) -> Response {
    state
        .views
        .page(status, "message.html", context! { title, text })
}

fn expired_form(state: &App) -> Response {
    message(
        state,
        StatusCode::FORBIDDEN,
        "This form has expired",
        "For your safety, forms work only in the window that showed them. Please start again.",
    )
}

fn user_name(state: &App, session: &Session) -> Option<String> {
    let user = session.user.as_ref()?;
    state.users.get(&user.username).map(|u| u.name.clone())
}

fn complete_uri(state: &App, code: &str) -> Option<String> {
    let mut uri = url::Url::parse(state.grant.config().verification_uri()).ok()?;
    uri.query_pairs_mut().append_pair("user_code", code);
    Some(uri.into())
}

fn with_cookie(mut response: Response, sid: &str, state: &App) -> Response {
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(sid, state.secure_cookies)) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    response
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
