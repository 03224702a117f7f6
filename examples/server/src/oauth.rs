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
    EndpointRequest, GrantType, HttpResponse, Metadata, OAuthError, RequestContext, ToHttp,
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
        // methods (`code_challenge_methods_supported`: S256).
        // The registered authorization details types (RFC 9396 §10).
        Metadata::new(format!("{issuer}/device_authorization"))
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
    // The crate reads `grant_type` with its form rules and the configured
    // limits: a missing or repeated one is invalid_request (RFC 6749 §3.2).
    match state.grant.grant_type(&request) {
        Ok(GrantType::Other(other)) if other == "refresh_token" => refresh(&state, request).await,
        // The device code grant, and anything else: the crate answers an
        // unknown grant type with unsupported_grant_type.
        Ok(_) => oauth_response(state.grant.token(request).await.to_http()),
        Err(error) => oauth_response(Err::<device_grant::TokenResponse, _>(error).to_http()),
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
    match state
        .tokens
        .refresh(&client.id, &refresh_token, scope.as_deref())
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

/// `GET /api/me`: the protected resource. RFC 6750 bearer tokens only.
pub(crate) async fn me(state: State, headers: HeaderMap) -> Response {
    let presented = header(&headers, AUTHORIZATION).and_then(|value| {
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let Some(token) = presented else {
        // RFC 6750 §3.1: no credentials, no error code, just the challenge.
        return unauthorized(r#"Bearer realm="api""#);
    };
    match state.tokens.introspect(token) {
        Some(grant) => {
            let mut me = serde_json::json!({
                "sub": grant.subject,
                "client_id": grant.client_id.as_str(),
                "scope": grant.scopes.to_string(),
            });
            // RFC 9396: what the person granted beyond scopes, when they did.
            if let Some(details) = &grant.authorization_details {
                me["authorization_details"] = serde_json::json!(details);
            }
            (
                // Personal data behind a credential: no cache may keep it.
                [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                Json(me),
            )
                .into_response()
        }
        None => unauthorized(r#"Bearer realm="api", error="invalid_token""#),
    }
}

fn unauthorized(challenge: &'static str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (WWW_AUTHENTICATE, HeaderValue::from_static(challenge)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(serde_json::json!({ "error": "invalid_token" })),
    )
        .into_response()
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
