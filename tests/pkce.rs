//! PKCE (RFC 7636) on the device grant: `S256` only at the device
//! authorization endpoint, the challenge kept with the request, the verifier
//! required at the token endpoint, and a refused verifier that changes nothing.

mod common;

use common::{Harness, harness, harness_with, poll_body};
use device_grant::store::{DeviceAuthorization, Store, encode_record};
use device_grant::{
    CodeChallenge, CodeVerifierError, DeviceAuthorizationResponse, EndpointRequest, ErrorCode,
    Event, EventKind, OAuthError, PollingRules, RequestContext, RequestError, TokenResponse,
};

// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// Well formed, and not the verifier of `CHALLENGE`.
const OTHER_VERIFIER: &str = "another-verifier-of-43-characters-or-more-xyz";

fn with_challenge(client: &str) -> String {
    format!(
        "client_id={client}&scope=profile&code_challenge={CHALLENGE}&code_challenge_method=S256"
    )
}

async fn ask(h: &Harness, body: &str) -> Result<DeviceAuthorizationResponse, OAuthError> {
    h.grant
        .device_authorization(
            EndpointRequest::form(body.as_bytes()),
            RequestContext::default(),
        )
        .await
}

async fn poll_with(
    h: &Harness,
    client: &str,
    codes: &DeviceAuthorizationResponse,
    verifier: Option<&str>,
) -> Result<TokenResponse, OAuthError> {
    let mut body = poll_body(client, codes.device_code.secret());
    if let Some(verifier) = verifier {
        body.push_str("&code_verifier=");
        body.extend(form_urlencoded::byte_serialize(verifier.as_bytes()));
    }
    h.grant.token(EndpointRequest::form(body.as_bytes())).await
}

async fn record(h: &Harness, codes: &DeviceAuthorizationResponse) -> DeviceAuthorization {
    h.store
        .by_device_code(&codes.device_code.hash())
        .await
        .unwrap()
        .expect("the record is stored")
}

fn count(h: &Harness, what: impl Fn(&Event) -> bool) -> usize {
    h.events.events().iter().filter(|e| what(e)).count()
}

fn verifier_error(result: Result<TokenResponse, OAuthError>) -> CodeVerifierError {
    match result {
        Err(OAuthError::CodeVerifier(reason)) => reason,
        other => panic!("expected a refused code verifier, got {other:?}"),
    }
}

#[tokio::test]
async fn an_s256_challenge_is_kept_with_the_request() {
    let h = harness();
    let codes = ask(&h, &with_challenge("tv-app")).await.unwrap();
    let stored = record(&h, &codes).await;
    assert_eq!(
        stored.request.code_challenge,
        Some(CodeChallenge::s256(CHALLENGE).unwrap())
    );
    assert_eq!(
        stored.request.code_challenge,
        CodeChallenge::from_verifier(VERIFIER)
    );
    // The consent page's view of the request has it too.
    let found = h
        .grant
        .verify(
            codes.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    assert!(found.request.code_challenge.is_some());
    // Stored as the method and the challenge, which is no secret.
    let json: serde_json::Value = serde_json::from_str(&encode_record(&stored).unwrap()).unwrap();
    assert_eq!(
        json["request"]["code_challenge"],
        serde_json::json!({"method": "S256", "value": CHALLENGE})
    );
    assert_eq!(json["v"], 1);
    assert!(!json.to_string().contains(VERIFIER));

    // Without a challenge, the record has no such field at all.
    let plain = ask(&h, "client_id=tv-app").await.unwrap();
    let stored = record(&h, &plain).await;
    assert_eq!(stored.request.code_challenge, None);
    let json: serde_json::Value = serde_json::from_str(&encode_record(&stored).unwrap()).unwrap();
    assert!(json["request"].get("code_challenge").is_none(), "{json}");
}

#[tokio::test]
async fn only_well_formed_s256_challenges_are_accepted() {
    let h = harness();
    let base = "client_id=tv-app&scope=profile";
    let cases: Vec<(String, RequestError)> = vec![
        // `plain` is refused: its challenge is the verifier itself.
        (
            format!("{base}&code_challenge={VERIFIER}&code_challenge_method=plain"),
            RequestError::UnsupportedCodeChallengeMethod,
        ),
        // No method means `plain` (RFC 7636 §4.3), refused as `plain` is.
        (
            format!("{base}&code_challenge={CHALLENGE}"),
            RequestError::UnsupportedCodeChallengeMethod,
        ),
        (
            format!("{base}&code_challenge={CHALLENGE}&code_challenge_method=s256"),
            RequestError::UnsupportedCodeChallengeMethod,
        ),
        (
            format!("{base}&code_challenge={CHALLENGE}&code_challenge_method=S512"),
            RequestError::UnsupportedCodeChallengeMethod,
        ),
        // A method without a challenge.
        (
            format!("{base}&code_challenge_method=S256"),
            RequestError::MissingParameter("code_challenge"),
        ),
        (
            format!("{base}&code_challenge_method=plain"),
            RequestError::MissingParameter("code_challenge"),
        ),
        (
            format!("{base}&code_challenge=&code_challenge_method=S256"),
            RequestError::MissingParameter("code_challenge"),
        ),
        // Malformed challenges.
        (
            format!(
                "{base}&code_challenge={}&code_challenge_method=S256",
                &CHALLENGE[..42]
            ),
            RequestError::MalformedCodeChallenge,
        ),
        (
            format!("{base}&code_challenge={CHALLENGE}A&code_challenge_method=S256"),
            RequestError::MalformedCodeChallenge,
        ),
        (
            format!(
                "{base}&code_challenge={}%3D&code_challenge_method=S256",
                &CHALLENGE[..42]
            ),
            RequestError::MalformedCodeChallenge,
        ),
        (
            format!(
                "{base}&code_challenge={}&code_challenge_method=S256",
                CHALLENGE.replace('-', "%2B")
            ),
            RequestError::MalformedCodeChallenge,
        ),
        (
            format!(
                "{base}&code_challenge={}&code_challenge_method=S256",
                "a".repeat(128)
            ),
            RequestError::MalformedCodeChallenge,
        ),
        // RFC 6749 §3.1: sent twice.
        (
            format!("{}&code_challenge={CHALLENGE}", with_challenge("tv-app")),
            RequestError::RepeatedParameter("code_challenge"),
        ),
    ];
    for (body, want) in cases {
        let error = ask(&h, &body).await.expect_err(&body);
        assert!(
            matches!(&error, OAuthError::InvalidRequest(got) if *got == want),
            "{body}: {error:?}, want {want:?}"
        );
        assert_eq!(error.code(), ErrorCode::InvalidRequest);
        let http = error.to_http();
        assert_eq!(http.status, 400);
        assert_eq!(http.header("cache-control"), Some("no-store"));
        // The description names parameters, never the values sent.
        assert!(!http.body.contains(&CHALLENGE[..20]), "{}", http.body);
    }
    assert_eq!(count(&h, |e| matches!(e.kind, EventKind::Created)), 0);
}

#[tokio::test]
async fn a_client_that_requires_pkce_must_send_a_challenge() {
    let h = harness();
    let error = ask(&h, "client_id=cli&scope=profile").await.unwrap_err();
    assert!(matches!(
        error,
        OAuthError::InvalidRequest(RequestError::CodeChallengeRequired)
    ));
    assert_eq!(error.to_http().status, 400);
    assert!(error.to_http().body.contains("\"invalid_request\""));
    // With a challenge it is served; the same challenge rules apply.
    ask(&h, &with_challenge("cli")).await.unwrap();
    let error = ask(
        &h,
        &format!("client_id=cli&code_challenge={VERIFIER}&code_challenge_method=plain"),
    )
    .await
    .unwrap_err();
    assert!(matches!(
        error,
        OAuthError::InvalidRequest(RequestError::UnsupportedCodeChallengeMethod)
    ));
    // A client that does not require PKCE may still go without.
    ask(&h, "client_id=tv-app").await.unwrap();
    assert_eq!(count(&h, |e| matches!(e.kind, EventKind::Created)), 2);
}

#[tokio::test]
async fn a_missing_or_wrong_verifier_consumes_nothing_and_the_right_one_redeems_once() {
    let h = harness();
    let codes = ask(&h, &with_challenge("cli")).await.unwrap();
    h.approve(&codes, "alice").await;
    let approved = record(&h, &codes).await;

    for (verifier, want) in [
        (None, CodeVerifierError::Missing),
        (Some(OTHER_VERIFIER), CodeVerifierError::Mismatch),
        // `plain`-style: the challenge itself as the verifier.
        (Some(CHALLENGE), CodeVerifierError::Mismatch),
        (Some(&VERIFIER[..42]), CodeVerifierError::Mismatch),
        (
            Some("not a verifier at all: spaces, +/="),
            CodeVerifierError::Mismatch,
        ),
    ] {
        let result = poll_with(&h, "cli", &codes, verifier).await;
        let http = result.as_ref().unwrap_err().to_http();
        assert_eq!(http.status, 400);
        let body: serde_json::Value = serde_json::from_str(&http.body).unwrap();
        assert_eq!(body["error"], "invalid_grant", "{verifier:?}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("code_verifier")
        );
        assert_eq!(verifier_error(result), want, "{verifier:?}");
        // Nothing changed: not the status, the version, the pace.
        assert_eq!(record(&h, &codes).await, approved, "{verifier:?}");
    }
    assert_eq!(h.issuer.0.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(
        count(&h, |e| matches!(e.kind, EventKind::VerifierRefused { .. })
            && e.id == Some(codes.id)),
        5
    );

    // The device, which kept the verifier, redeems the code exactly once.
    let tokens = poll_with(&h, "cli", &codes, Some(VERIFIER)).await.unwrap();
    assert!(tokens.access_token.secret().starts_with("at-alice-"));
    assert_eq!(
        poll_with(&h, "cli", &codes, Some(VERIFIER))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidGrant
    );
    assert_eq!(count(&h, |e| matches!(e.kind, EventKind::Replay)), 1);
    // After redemption, a poll without the verifier is refused before the
    // replay check: someone without the verifier cannot have the tokens, so
    // their poll raises no replay (whose answer is to revoke the tokens).
    assert_eq!(
        verifier_error(poll_with(&h, "cli", &codes, None).await),
        CodeVerifierError::Missing
    );
    assert_eq!(count(&h, |e| matches!(e.kind, EventKind::Replay)), 1);
    assert_eq!(h.issuer.0.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn refused_verifiers_neither_slow_down_nor_delay_the_device() {
    let h = harness_with(common::config().polling(PollingRules {
        leeway: time::Duration::ZERO,
        ..PollingRules::default()
    }));
    let codes = ask(&h, &with_challenge("tv-app")).await.unwrap();
    // t=0: the device polls, on time.
    assert_eq!(
        poll_with(&h, "tv-app", &codes, Some(VERIFIER))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::AuthorizationPending
    );
    let polled = record(&h, &codes).await;
    // t=1: a thief holding the device code polls fast, without the verifier.
    h.advance(1);
    for _ in 0..10 {
        assert_eq!(
            poll_with(&h, "tv-app", &codes, Some(OTHER_VERIFIER))
                .await
                .unwrap_err()
                .code(),
            ErrorCode::InvalidGrant
        );
        poll_with(&h, "tv-app", &codes, None).await.unwrap_err();
    }
    assert_eq!(record(&h, &codes).await, polled);
    // t=5: the device's next poll is on time: its interval did not grow.
    h.advance(4);
    assert_eq!(
        poll_with(&h, "tv-app", &codes, Some(VERIFIER))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::AuthorizationPending
    );
    assert_eq!(
        count(&h, |e| matches!(e.kind, EventKind::SlowDown { .. })),
        0
    );
    // A refused verifier tells nothing of the request's state either: once
    // denied, the thief still hears invalid_grant, the device access_denied.
    let found = h
        .grant
        .verify(
            codes.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    h.grant.deny(&found.ticket).await.unwrap();
    assert_eq!(
        poll_with(&h, "tv-app", &codes, None)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::InvalidGrant
    );
    h.advance(5);
    assert_eq!(
        poll_with(&h, "tv-app", &codes, Some(VERIFIER))
            .await
            .unwrap_err()
            .code(),
        ErrorCode::AccessDenied
    );
}

#[tokio::test]
async fn a_verifier_for_a_request_without_a_challenge_is_refused() {
    let h = harness();
    let codes = ask(&h, "client_id=tv-app&scope=profile").await.unwrap();
    h.approve(&codes, "bob").await;
    let approved = record(&h, &codes).await;
    // The device thinks PKCE protects its code; the challenge never arrived.
    // Refused, not ignored, so the downgrade shows.
    assert_eq!(
        verifier_error(poll_with(&h, "tv-app", &codes, Some(VERIFIER)).await),
        CodeVerifierError::Unexpected
    );
    assert_eq!(record(&h, &codes).await, approved);
    // Without a verifier, as the request was made, the code redeems.
    poll_with(&h, "tv-app", &codes, None).await.unwrap();
}

#[tokio::test]
async fn a_repeated_verifier_is_invalid_request() {
    let h = harness();
    let codes = ask(&h, &with_challenge("cli")).await.unwrap();
    h.approve(&codes, "alice").await;
    let body = format!(
        "{}&code_verifier={VERIFIER}&code_verifier={VERIFIER}",
        poll_body("cli", codes.device_code.secret())
    );
    let error = h
        .grant
        .token(EndpointRequest::form(body.as_bytes()))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        OAuthError::InvalidRequest(RequestError::RepeatedParameter("code_verifier"))
    ));
    poll_with(&h, "cli", &codes, Some(VERIFIER)).await.unwrap();
}
