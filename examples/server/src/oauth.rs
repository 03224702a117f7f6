//! The JSON endpoints: metadata, keys, device authorization, token, and the
//! protected API the device calls with its access token.

use axum::Json;
use axum::body::Bytes;
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, PRAGMA, USER_AGENT, WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use device_grant::{
    DpopError, EndpointRequest, GrantType, HttpResponse, JwkThumbprint, Metadata, OAuthError,
    ProofReplay as _, RequestContext, ToHttp,
};

use super::State;
use super::accounts::SCOPES;
use super::address::ClientIp;
use super::tokens::RefreshError;

/// RFC 8414 authorization server metadata.
pub(crate) async fn metadata(state: State) -> Json<serde_json::Value> {
    let issuer = &state.issuer;
    let mut document = serde_json::json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "grant_types_supported": ["refresh_token"],
        "scopes_supported": SCOPES.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        // Required by RFC 8414, and empty: this server has no authorization
        // endpoint, so no `response_type` is supported.
        "response_types_supported": [],
        "id_token_signing_alg_values_supported": ["EdDSA"],
    });
    if let Some(map) = document.as_object_mut() {
        // Adds device_authorization_endpoint, the device code grant type, the
        // client authentication methods the crate accepts and its PKCE
        // methods (`code_challenge_methods_supported`: S256), the DPoP proof
        // algorithms its token endpoint verifies, and the registered
        // authorization details types (RFC 9396 §10).
        Metadata::new(format!("{issuer}/device_authorization"))
            .dpop(state.dpop.supported_algorithms())
            .authorization_details_types(state.grant.authorization_detail_types())
            .merge_into(map);
    }
    Json(document)
}

/// The public keys ID tokens are signed with.
pub(crate) async fn jwks(state: State) -> Json<serde_json::Value> {
    Json(state.signer.jwks())
}

/// `POST /device_authorization` (RFC 8628 §3.1): all in the crate; the server
/// only says what it knows of the device, for the consent page.
pub(crate) async fn device_authorization(
    state: State,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let context = RequestContext {
        ip,
        user_agent: header(&headers, USER_AGENT).map(|ua| ua.chars().take(200).collect()),
        ..RequestContext::default()
    };
    let result = state
        .grant
        .device_authorization(endpoint_request(&headers, &body), context)
        .await;
    oauth_response(result.to_http())
}

/// `POST /token`: the device code grant goes to the crate (which also answers
/// a missing or unknown `grant_type`); `refresh_token` is this server's own.
pub(crate) async fn token(state: State, headers: HeaderMap, body: Bytes) -> Response {
    let request = endpoint_request(&headers, &body);
    // The crate serves the device code grant and refuses any other grant type
    // with unsupported_grant_type before it does anything else, so the polls
    // (nearly every request here) read the body once; only then is the grant
    // type read again, for this server's own refresh grant.
    match state.grant.token(request).await {
        Err(OAuthError::UnsupportedGrantType) => match state.grant.grant_type(&request) {
            Ok(GrantType::Other(other)) if other == "refresh_token" => {
                refresh(&state, request).await
            }
            _ => oauth_response(
                Err::<device_grant::TokenResponse, _>(OAuthError::UnsupportedGrantType).to_http(),
            ),
        },
        result => oauth_response(result.to_http()),
    }
}

async fn refresh(state: &super::App, request: EndpointRequest<'_>) -> Response {
    // The same client authentication as the device code grant, from the crate.
    let client = match state.grant.authenticate_client(request).await {
        Ok(client) => client,
        Err(error) => {
            return oauth_response(Err::<device_grant::TokenResponse, _>(error).to_http());
        }
    };
    let fields = state.grant.form(&request).and_then(|form| {
        Ok((
            form.require("refresh_token")?.to_owned(),
            form.get("scope")?.map(str::to_owned),
        ))
    });
    let (refresh_token, scope) = match fields {
        Ok(fields) => fields,
        Err(error) => {
            return oauth_response(Err::<device_grant::TokenResponse, _>(error).to_http());
        }
    };
    // The DPoP proof, checked as the device code grant checks it.
    let proof = match state.grant.dpop_proof(&request).await {
        Ok(proof) => proof,
        Err(error) => {
            return oauth_response(Err::<device_grant::TokenResponse, _>(error).to_http());
        }
    };
    match state
        .tokens
        .refresh(&client.id, &refresh_token, scope.as_deref(), proof)
    {
        Ok(tokens) => oauth_response(Ok::<_, OAuthError>(tokens).to_http()),
        // The crate's descriptions of these errors speak of device codes.
        Err(RefreshError::InvalidGrant) => refresh_error(
            "invalid_grant",
            "the refresh token is invalid, expired, revoked, or was issued to another client",
        ),
        Err(RefreshError::InvalidScope) => refresh_error(
            "invalid_scope",
            "the requested scope exceeds the scope the refresh token was granted",
        ),
        Err(RefreshError::DpopKey) => oauth_response(
            Err::<device_grant::TokenResponse, _>(OAuthError::from(DpopError::WrongKey)).to_http(),
        ),
    }
}

/// An RFC 6749 §5.2 error of the refresh grant.
fn refresh_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(serde_json::json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// `GET /api/me`: the protected resource. RFC 6750 bearer tokens, and
/// DPoP-bound tokens (RFC 9449 §7) presented as `Authorization: DPoP <token>`
/// with a proof of their key for this request (`htm` GET, `htu` this URL,
/// `ath` the token's hash). A DPoP-bound token presented as `Bearer` is
/// refused: whoever stole it has no proof to send.
pub(crate) async fn me(state: State, headers: HeaderMap) -> Response {
    let presented = header(&headers, AUTHORIZATION).and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        let dpop = if scheme.eq_ignore_ascii_case("dpop") {
            true
        } else if scheme.eq_ignore_ascii_case("bearer") {
            false
        } else {
            return None;
        };
        Some((dpop, token.trim()))
    });
    let Some((dpop, token)) = presented else {
        // RFC 6750 §3.1: no credentials, no error code, just the challenge.
        return unauthorized(&state, Challenge::None, "invalid_token");
    };
    let Some(grant) = state.tokens.introspect(token) else {
        return unauthorized(&state, Challenge::for_scheme(dpop), "invalid_token");
    };
    match (dpop, grant.jkt) {
        (false, None) => {}
        // RFC 9449 §7.2: a bound token is never accepted as a bearer token.
        (false, Some(_)) | (true, None) => {
            return unauthorized(&state, Challenge::for_scheme(dpop), "invalid_token");
        }
        (true, Some(bound)) => {
            if let Err(error) = check_proof(&state, &headers, token, bound).await {
                tracing::info!(event = "dpop_proof_refused", reason = %error);
                return unauthorized(&state, Challenge::Dpop, "invalid_dpop_proof");
            }
        }
    }
    let mut body = serde_json::json!({
        "sub": grant.subject,
        "client_id": grant.client_id.as_str(),
        "scope": grant.scopes.to_string(),
    });
    // RFC 9396: what the person granted beyond scopes, when they did.
    if let Some(details) = &grant.authorization_details {
        body["authorization_details"] = serde_json::json!(details);
    }
    if let Some(jkt) = grant.jkt {
        // RFC 9449 §6.2: what introspection says of a bound token.
        body["cnf"] = serde_json::json!({ "jkt": jkt.to_base64url() });
    }
    (
        // Personal data behind a credential: no cache may keep it.
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}

/// The DPoP proof of an `/api/me` request for a token bound to `bound`.
async fn check_proof(
    state: &super::App,
    headers: &HeaderMap,
    token: &str,
    bound: JwkThumbprint,
) -> Result<(), DpopError> {
    let proof = single_dpop(headers).ok_or(DpopError::Missing)?;
    let now = state.clock.now();
    let url = format!("{}/api/me", state.issuer);
    let proof = state.dpop.verify(proof, "GET", &url, Some(token), now)?;
    if proof.jkt != bound {
        return Err(DpopError::WrongKey);
    }
    match state
        .api_proofs
        .first_use(&proof.id, proof.valid_until, now)
        .await
    {
        Ok(true) => Ok(()),
        // A full replay store refuses too: forgetting a proof would let it
        // be replayed.
        Ok(false) | Err(_) => Err(DpopError::Replayed),
    }
}

/// The `DPoP` header: `None` when absent; several fields are passed as a
/// comma, which the crate refuses as more than one proof.
fn single_dpop(headers: &HeaderMap) -> Option<&str> {
    let mut all = headers.get_all(DPOP).iter();
    let first = all.next()?;
    if all.next().is_some() {
        return Some(",");
    }
    first.to_str().ok()
}

const DPOP: HeaderName = HeaderName::from_static("dpop");

/// Which `WWW-Authenticate` challenge a refusal carries (RFC 6750 §3, RFC
/// 9449 §7.1).
#[derive(Clone, Copy)]
enum Challenge {
    /// No credentials were sent: both schemes, no error.
    None,
    Bearer,
    Dpop,
}

impl Challenge {
    fn for_scheme(dpop: bool) -> Self {
        if dpop { Self::Dpop } else { Self::Bearer }
    }
}

fn unauthorized(state: &super::App, challenge: Challenge, error: &'static str) -> Response {
    // RFC 9449 §7.1: the algorithms this resource accepts.
    let algs: Vec<&str> = state
        .dpop
        .supported_algorithms()
        .iter()
        .map(|a| a.as_str())
        .collect();
    let algs = format!(r#"algs="{}""#, algs.join(" "));
    let value = match challenge {
        Challenge::None => format!(r#"Bearer realm="api", DPoP realm="api", {algs}"#),
        Challenge::Bearer => format!(r#"Bearer realm="api", error="{error}""#),
        Challenge::Dpop => format!(r#"DPoP realm="api", error="{error}", {algs}"#),
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(serde_json::json!({ "error": error })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::try_from(value) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

fn header(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The parts of the HTTP request the crate's endpoints read.
fn endpoint_request<'a>(headers: &'a HeaderMap, body: &'a [u8]) -> EndpointRequest<'a> {
    EndpointRequest {
        content_type: header(headers, CONTENT_TYPE),
        authorization: header(headers, AUTHORIZATION),
        body,
        dpop: single_dpop(headers),
        // Served over plain HTTP (TLS ends at a proxy): no client certificate.
        client_certificate: None,
    }
}

/// Copies the crate's framework-agnostic response into axum's. (With the
/// crate's `http` feature, `http::Response::from(response)` does the same.)
pub(crate) fn oauth_response(response: HttpResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut out = (status, response.body).into_response();
    for (name, value) in response.headers {
        // The crate's header names are lower-case constants; the values are
        // moved, not copied.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_lowercase(name.as_bytes()),
            HeaderValue::try_from(value),
        ) {
            out.headers_mut().insert(name, value);
        }
    }
    out
}
