//! The verification API for custom UIs (a single-page app, a mobile app): the
//! same steps as the pages, as JSON.
//!
//! | call | does |
//! | --- | --- |
//! | `GET /api/verification/session` | who is signed in, and the CSRF token for the calls below |
//! | `POST /api/verification/lookup` `{"user_code"}` | finds the pending request, gives its handle and what the consent page shows |
//! | `GET /api/verification/requests/{handle}` | the request again, as the crate sees it now |
//! | `POST /api/verification/requests/{handle}/approve` `{"scopes"?, "authorization_details"?, "password"?, "own_device"?}` | approves all or some of the requested scopes and authorization details |
//! | `POST /api/verification/requests/{handle}/deny` | denies |
//!
//! The rules are the pages' rules:
//! - **CSRF.** Every `POST` carries the session's token in `X-CSRF-Token` and
//!   a JSON body (`Content-Type: application/json`, which a cross-site form
//!   cannot send). A missing or wrong token is `403 {"error": "csrf"}`.
//! - **Sign-in.** Looking a code up works signed in or not, as on the code
//!   page; approving and denying need a signed-in session (`401 {"error":
//!   "login_required"}`). Sign-in itself is the host's: here, the `/login` page
//!   on the same session.
//! - **Budgets.** Wrong codes are counted against the caller's network and,
//!   when signed in, their account, exactly as on the code page.
//! - **The handle** is the request's id. It is not the user code, and nothing
//!   turns it into a device code: the crate's ticket stays in the session that
//!   looked the code up, and a handle from another session finds nothing.
//! - **Policy.** The consent policy's decision comes with the request
//!   (`allow`, `step_up`, `refuse`). A step-up is the password again with
//!   `own_device: true`, checked here; the crate enforces the decision at
//!   approval whatever the UI shows.

use axum::Json;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use device_grant::store::LimiterKey;
use device_grant::{
    ApprovalData, Approve, Assessment, AuthorizationDetails, CodeEntry, ConsentDecision,
    PendingRequest, Proximity, ScopeSet, StepUpProof, Subject, VerificationError,
};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use tower_sessions::Session;

use super::address::ClientIp;
use super::pages::{self, Pending};
use super::security::StepUp;
use super::session::Cookies;
use super::{State, accounts, media};

/// The header that carries the CSRF token.
const CSRF_HEADER: &str = "x-csrf-token";

#[derive(serde::Deserialize)]
pub(crate) struct Lookup {
    user_code: String,
}

#[derive(serde::Deserialize, Default)]
pub(crate) struct Approval {
    /// The scopes granted; absent: all those requested.
    scopes: Option<Vec<String>>,
    /// The authorization details granted (RFC 9396); absent: all those
    /// requested.
    authorization_details: Option<AuthorizationDetails>,
    /// The step-up: the password again…
    #[serde(default)]
    password: String,
    /// …and "I started this myself, on a device in front of me".
    #[serde(default)]
    own_device: bool,
}

fn error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": code, "error_description": description })),
    )
        .into_response()
}

fn unavailable() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "Something went wrong on our side; try again in a moment.",
    )
}

/// The CSRF rule for a `POST`: a JSON body and the session's token in the
/// header.
fn checked(cookies: &Cookies, headers: &HeaderMap) -> bool {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    let token = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    json && cookies.csrf_ok(token)
}

fn csrf_refused() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "csrf",
        "Send the session's CSRF token in X-CSRF-Token, with a JSON body.",
    )
}

/// `GET /api/verification/session`.
pub(crate) async fn session(cookies: Cookies, session: Session) -> Response {
    let user = pages::signed_in(&session).await;
    let body = json!({
        "signed_in": user.is_some(),
        "user": user.map(|u| u.username),
        "csrf": cookies.csrf(),
    });
    cookies.apply(Json(body).into_response())
}

/// `POST /api/verification/lookup`.
pub(crate) async fn lookup(
    state: State,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    session: Session,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !checked(&cookies, &headers) {
        return csrf_refused();
    }
    let Ok(Lookup { user_code }) = serde_json::from_slice(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Expected {\"user_code\": \"…\"}.",
        );
    };
    let user = pages::signed_in(&session).await;
    let mut entry = match ip {
        Some(ip) => CodeEntry::from_address(ip),
        None => CodeEntry::from_key(LimiterKey::new("code:net:unknown")),
    };
    if let Some(user) = &user {
        entry = entry.signed_in(&Subject::new(user.username.clone()));
    }
    match state.grant.verify(&user_code, &entry).await {
        Ok(found) => {
            let view = view(&found, &state.grant.assess(&found, ip));
            if let Err(page) = pages::keep_pending(&session, Pending::from(found)).await {
                return page;
            }
            cookies.apply(Json(view).into_response())
        }
        Err(VerificationError::Malformed(_)) => error(
            StatusCode::BAD_REQUEST,
            "malformed_code",
            "That is not a code from a device.",
        ),
        Err(VerificationError::NotFound) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            "No device is waiting for this code.",
        ),
        Err(VerificationError::TooManyAttempts { retry_after }) => {
            let secs = retry_after.whole_seconds().max(1);
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "Too many wrong codes; try again later.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, secs.into());
            response
        }
        Err(VerificationError::SignInRequired { retry_after }) => {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "login_required",
                "Codes can be entered only after signing in, for a while.",
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                retry_after.whole_seconds().max(1).into(),
            );
            response
        }
        Err(failure) => {
            tracing::error!(error = %failure, "verification failed");
            unavailable()
        }
    }
}

/// `GET /api/verification/requests/{handle}`.
pub(crate) async fn request(
    state: State,
    ClientIp(ip): ClientIp,
    session: Session,
    Path(handle): Path<String>,
) -> Response {
    let Some(ticket) = pages::pending_by_id(&session, &handle)
        .await
        .and_then(|p| p.ticket())
    else {
        return gone();
    };
    match state.grant.pending(&ticket).await {
        Ok(found) => Json(view(&found, &state.grant.assess(&found, ip))).into_response(),
        Err(VerificationError::NotFound) => gone(),
        Err(failure) => {
            tracing::error!(error = %failure, "reading the request failed");
            unavailable()
        }
    }
}

/// `POST /api/verification/requests/{handle}/approve`.
pub(crate) async fn approve(
    state: State,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    session: Session,
    headers: HeaderMap,
    Path(handle): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if !checked(&cookies, &headers) {
        return csrf_refused();
    }
    let Ok(form) = serde_json::from_slice::<Approval>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Expected {\"scopes\"?: [..], \"password\"?: \"…\", \"own_device\"?: true}.",
        );
    };
    decide(&state, ip, &session, &handle, Some(form)).await
}

/// `POST /api/verification/requests/{handle}/deny`.
pub(crate) async fn deny(
    state: State,
    ClientIp(ip): ClientIp,
    cookies: Cookies,
    session: Session,
    headers: HeaderMap,
    Path(handle): Path<String>,
) -> Response {
    if !checked(&cookies, &headers) {
        return csrf_refused();
    }
    decide(&state, ip, &session, &handle, None).await
}

/// Approves (`Some`) or denies (`None`) the request `handle` names.
async fn decide(
    state: &super::App,
    ip: Option<std::net::IpAddr>,
    session: &Session,
    handle: &str,
    approval: Option<Approval>,
) -> Response {
    let Some(user) = pages::signed_in(session).await else {
        return error(
            StatusCode::UNAUTHORIZED,
            "login_required",
            "Sign in to answer a request.",
        );
    };
    let Some(pending) = pages::pending_by_id(session, handle).await else {
        return gone();
    };
    let Some(ticket) = pending.ticket() else {
        return gone();
    };
    let approving = approval.is_some();
    let mut step_up = StepUp::None;
    let result = match approval {
        Some(form) => {
            let now = state.clock.now();
            let subject = Subject::new(user.username.clone());
            step_up =
                match StepUp::check(state, &user.username, form.own_device, &form.password, now)
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
            let profile = state.users.get(&user.username);
            let Ok(data) = ApprovalData::new(&json!({
                "auth_time": auth_time.unix_timestamp(),
                "name": profile.map(|u| u.name.clone()),
                "email": profile.map(|u| u.email.clone()),
            })) else {
                return unavailable();
            };
            let mut approve = match form.scopes {
                None => Approve::as_requested(subject.clone(), ip),
                Some(scopes) => match ScopeSet::parse(&scopes.join(" ")) {
                    Ok(scopes) => Approve::scopes(subject.clone(), ip, scopes),
                    Err(_) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            "invalid_scope",
                            "A scope is not well formed.",
                        );
                    }
                },
            }
            .data(data);
            if let Some(granted) = form.authorization_details {
                approve = approve.authorization_details(granted);
            }
            if stepped_up {
                approve = approve.stepped_up(StepUpProof::reauthenticated(&subject, now));
            }
            state.grant.approve(&ticket, approve).await
        }
        None => state.grant.deny(&ticket).await,
    };
    // Refusals that leave the request pending keep the handle usable.
    match result {
        Err(VerificationError::StepUpRequired { .. }) => {
            if let StepUp::Throttled(retry_after) = step_up {
                let mut response = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    "Too many wrong passwords; try again later.",
                );
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    retry_after.whole_seconds().max(1).into(),
                );
                return response;
            }
            return error(
                StatusCode::FORBIDDEN,
                "step_up_required",
                "Confirm you started this yourself and enter your password again.",
            );
        }
        Err(VerificationError::Refused { .. }) => {
            return error(
                StatusCode::FORBIDDEN,
                "refused",
                "This request cannot be approved from here; it can be denied.",
            );
        }
        Err(VerificationError::ScopeNotRequested) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                "Only scopes the device asked for can be granted.",
            );
        }
        Err(VerificationError::AuthorizationDetailsNotRequested) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_authorization_details",
                "Only authorization details within those the device asked for can be granted.",
            );
        }
        _ => {}
    }
    if let Err(page) = pages::forget_pending(session, &pending.id).await {
        return page;
    }
    match result {
        Ok(()) => Json(json!({
            "status": if approving { "approved" } else { "denied" },
        }))
        .into_response(),
        Err(VerificationError::NotFound) => gone(),
        Err(failure) => {
            tracing::error!(error = %failure, "decision failed");
            unavailable()
        }
    }
}

fn gone() -> Response {
    error(
        StatusCode::GONE,
        "gone",
        "The request expired, was answered, or was not looked up in this session.",
    )
}

/// What a consent screen shows of a request.
fn view(found: &PendingRequest, assessment: &Assessment) -> Value {
    let request = &found.request;
    let signals = &assessment.signals;
    let scopes: Vec<Value> = request
        .scopes
        .iter()
        .map(|scope| {
            let known = accounts::SCOPES.iter().find(|(s, _)| *s == scope.as_str());
            json!({
                "name": scope.as_str(),
                "description": known.map_or(scope.as_str(), |(_, d)| *d),
            })
        })
        .collect();
    json!({
        "handle": found.ticket.id().to_string(),
        "client": { "id": request.client_id.as_str(), "name": found.client.name },
        "scopes": scopes,
        // RFC 9396: as requested, and in words for the screen.
        "authorization_details": found.authorization_details().map(|details| {
            details
                .iter()
                .map(|d| json!({ "detail": d, "description": media::describe(d) }))
                .collect::<Vec<_>>()
        }),
        "device": {
            "ip": request.context.ip.map(|ip| ip.to_string()),
            "user_agent": request.context.user_agent.as_deref(),
        },
        "asked_at": request.created_at.format(&Rfc3339).ok(),
        "expires_at": request.expires_at.format(&Rfc3339).ok(),
        "age_seconds": signals.age.whole_seconds(),
        "approver_ip": signals.approver_ip.map(|ip| ip.to_string()),
        "proximity": match signals.proximity {
            Proximity::SameAddress => "same_address",
            Proximity::SameNetwork => "same_network",
            Proximity::DifferentNetwork => "different_network",
            _ => "unknown",
        },
        "decision": match assessment.decision {
            ConsentDecision::Allow => "allow",
            ConsentDecision::StepUp => "step_up",
            _ => "refuse",
        },
    })
}
