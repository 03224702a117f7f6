//! Every outcome of RFC 8628 §3.5 at the token endpoint, driven by a manual clock.

mod common;

use common::{PRINTER_SECRET, basic, harness, harness_with, poll_body};
use device_grant::{
    EndpointRequest, ErrorCode, EventKind, Interval, OAuthError, PollingRules, ToHttp,
};

fn code(r: &Result<device_grant::TokenResponse, OAuthError>) -> ErrorCode {
    r.as_ref().expect_err("an error").code()
}

#[tokio::test]
async fn first_poll_is_pending_never_slow_down() {
    let h = harness();
    let c = h.start("client_id=tv-app").await;
    assert_eq!(
        code(&h.poll("tv-app", c.device_code.secret()).await),
        ErrorCode::AuthorizationPending
    );
}

#[tokio::test]
async fn slow_down_escalates_by_five_seconds_and_persists() {
    let h = harness_with(common::config().polling(PollingRules {
        leeway: time::Duration::ZERO,
        ..PollingRules::default()
    }));
    let c = h.start("client_id=tv-app").await;
    let dc = c.device_code.secret();
    assert_eq!(c.interval, Interval::DEFAULT);
    assert_eq!(
        code(&h.poll("tv-app", dc).await),
        ErrorCode::AuthorizationPending
    ); // t=0
    h.advance(2);
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::SlowDown); // t=2: interval 10
    h.advance(5);
    // t=7: after the old interval (5) but before old+5 (10): still slow_down, now 15.
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::SlowDown);
    h.advance(7);
    // t=14: 14 < 15 since the last normal answer (t=0).
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::SlowDown);
    h.advance(6);
    // t=20: 20 >= 20 (interval grew to 20 at t=14): normal again.
    assert_eq!(
        code(&h.poll("tv-app", dc).await),
        ErrorCode::AuthorizationPending
    );
    h.advance(19);
    // The grown interval persists after a normal answer.
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::SlowDown);
    let slowed: Vec<_> = h
        .events
        .events()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::SlowDown { interval, .. } => Some(interval.secs()),
            _ => None,
        })
        .collect();
    assert_eq!(slowed, [10, 15, 20, 25]);
}

/// A `slow_down` answer carries the interval the device must now keep, beside
/// the error (RFC 8628 leaves room for it; GitHub's cli/oauth reads it there),
/// so that a client need not count the 5-second steps itself.
#[tokio::test]
async fn slow_down_says_the_interval_to_keep() {
    let h = harness_with(common::config().polling(PollingRules {
        leeway: time::Duration::ZERO,
        ..PollingRules::default()
    }));
    let c = h.start("client_id=tv-app").await;
    let dc = c.device_code.secret();
    let pending = h.poll("tv-app", dc).await.to_http();
    let body: serde_json::Value = serde_json::from_str(&pending.body).unwrap();
    assert_eq!(body["error"], "authorization_pending");
    assert!(body.get("interval").is_none(), "{body}");
    for expected in [10, 15] {
        h.advance(1);
        let slow = h.poll("tv-app", dc).await;
        assert!(
            matches!(slow, Err(OAuthError::SlowDown { interval }) if interval.secs() == expected),
            "{slow:?}"
        );
        let response = slow.to_http();
        assert_eq!(response.status, 400);
        let body: serde_json::Value = serde_json::from_str(&response.body).unwrap();
        assert_eq!(body["error"], "slow_down");
        assert_eq!(body["interval"], expected, "{body}");
    }
}

#[tokio::test]
async fn approved_is_redeemed_whatever_the_pace_then_invalid_grant() {
    let h = harness();
    let c = h.start("client_id=tv-app&scope=openid%20profile").await;
    let dc = c.device_code.secret();
    h.poll("tv-app", dc).await.unwrap_err();
    h.approve(&c, "alice").await;
    // Immediately after the last poll: too early by pace, yet redeemed.
    let tokens = h.poll("tv-app", dc).await.unwrap();
    assert!(tokens.access_token.secret().starts_with("at-alice-"));
    let http = tokens.to_http();
    assert_eq!(http.status, 200);
    assert_eq!(http.header("cache-control"), Some("no-store"));
    assert_eq!(http.header("pragma"), Some("no-cache"));
    let body: serde_json::Value = serde_json::from_str(&http.body).unwrap();
    assert_eq!(body["token_type"], "Bearer");
    // The same scopes as requested: `scope` may be omitted.
    assert!(body.get("scope").is_none());
    // Re-redemption: invalid_grant, and a replay event naming the grant.
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::InvalidGrant);
    h.advance(10_000);
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::InvalidGrant);
    assert_eq!(h.issuer.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    let replays = h
        .events
        .events()
        .into_iter()
        .filter(|e| e.kind == EventKind::Replay && e.id == Some(c.id))
        .count();
    assert_eq!(replays, 2);
}

#[tokio::test]
async fn narrowed_scopes_are_returned() {
    let h = harness();
    let c = h
        .start("client_id=tv-app&scope=openid%20profile%20email")
        .await;
    let found = h
        .grant
        .verify(
            c.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    h.grant
        .approve(
            &found.ticket,
            device_grant::Approve::scopes(
                device_grant::Subject::new("bob"),
                None,
                device_grant::ScopeSet::parse("openid").unwrap(),
            ),
        )
        .await
        .unwrap();
    let tokens = h.poll("tv-app", c.device_code.secret()).await.unwrap();
    assert_eq!(tokens.scope.unwrap().to_string(), "openid");
}

#[tokio::test]
async fn denied_is_sticky_until_expiry_then_expired() {
    let h = harness();
    let c = h.start("client_id=tv-app").await;
    let found = h
        .grant
        .verify(
            c.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    h.grant.deny(&found.ticket).await.unwrap();
    let dc = c.device_code.secret();
    for _ in 0..3 {
        assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::AccessDenied);
        h.advance(100);
    }
    h.advance(299); // t = 599
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::AccessDenied);
    h.advance(1); // t = 600: the exact boundary
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::ExpiredToken);
}

#[tokio::test]
async fn expiry_at_the_exact_boundary() {
    let h = harness();
    let c = h.start("client_id=tv-app").await;
    assert_eq!(c.expires_in, 600);
    let dc = c.device_code.secret();
    h.advance(599);
    assert_eq!(
        code(&h.poll("tv-app", dc).await),
        ErrorCode::AuthorizationPending
    );
    h.advance(1);
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::ExpiredToken);
    // An expired request can no longer be approved: the user code is dead.
    let err = h
        .grant
        .verify(
            c.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, device_grant::VerificationError::NotFound));
    // After the retention the record is gone: invalid_grant.
    h.advance(600);
    h.grant.purge_expired().await.unwrap();
    assert_eq!(code(&h.poll("tv-app", dc).await), ErrorCode::InvalidGrant);
}

#[tokio::test]
async fn approved_but_expired_is_expired_token() {
    let h = harness();
    let c = h.start("client_id=tv-app").await;
    h.approve(&c, "alice").await;
    h.advance(600);
    assert_eq!(
        code(&h.poll("tv-app", c.device_code.secret()).await),
        ErrorCode::ExpiredToken
    );
    assert_eq!(h.issuer.0.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn wrong_client_and_unknown_codes_are_invalid_grant() {
    let h = harness();
    let c = h.start("client_id=tv-app").await;
    h.approve(&c, "alice").await;
    // The printer authenticates fine but the code is the TV's.
    let body = poll_body("printer", c.device_code.secret());
    let r = h
        .grant
        .token(
            EndpointRequest::form(body.as_bytes())
                .with_authorization(&basic("printer", PRINTER_SECRET)),
        )
        .await;
    assert_eq!(code(&r), ErrorCode::InvalidGrant);
    // The TV's code is still redeemable by the TV: the wrong client changed nothing.
    assert!(h.poll("tv-app", c.device_code.secret()).await.is_ok());
    for unknown in ["x".repeat(43), "short".into(), "%00".into()] {
        assert_eq!(
            code(&h.poll("tv-app", &unknown).await),
            ErrorCode::InvalidGrant,
            "{unknown}"
        );
    }
}

#[tokio::test]
async fn confidential_client_with_basic_and_post() {
    let h = harness();
    let header = basic("printer", PRINTER_SECRET);
    let c = h
        .grant
        .device_authorization(
            EndpointRequest::form(b"scope=openid").with_authorization(&header),
            Default::default(),
        )
        .await
        .unwrap();
    h.approve(&c, "bob").await;
    // Poll with client_secret_post this time: both methods name the same client.
    let body = format!(
        "{}&client_secret={PRINTER_SECRET}",
        poll_body("printer", c.device_code.secret())
    );
    let tokens = h
        .grant
        .token(EndpointRequest::form(body.as_bytes()))
        .await
        .unwrap();
    assert!(tokens.access_token.secret().starts_with("at-bob-"));
}

#[tokio::test]
async fn client_authentication_failures() {
    let h = harness();
    let dc = h.start("client_id=tv-app").await.device_code;
    let poll = poll_body("printer", dc.secret());
    let cases: Vec<(EndpointRequest<'_>, u16, bool)> = vec![
        // Wrong secret through Basic: 401 with a challenge.
        (
            EndpointRequest::form(
                b"grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=x",
            )
            .with_authorization("Basic cHJpbnRlcjp3cm9uZw=="),
            401,
            true,
        ),
        // Confidential client presenting no secret.
        (EndpointRequest::form(poll.as_bytes()), 400, false),
    ];
    for (req, status, challenge) in cases {
        let r = h.grant.token(req).await;
        assert_eq!(code(&r), ErrorCode::InvalidClient);
        let http = r.to_http();
        assert_eq!(http.status, status);
        assert_eq!(http.header("www-authenticate").is_some(), challenge);
    }
    let r = h.poll("nobody", dc.secret()).await;
    assert_eq!(code(&r), ErrorCode::InvalidClient);
    let r = h.poll("web-only", dc.secret()).await;
    assert_eq!(code(&r), ErrorCode::UnauthorizedClient);
}

#[tokio::test]
async fn grant_type_and_parameters() {
    let h = harness();
    let cases: [(&[u8], ErrorCode); 5] = [
        (b"client_id=tv-app&device_code=x", ErrorCode::InvalidRequest),
        (b"grant_type=authorization_code&client_id=tv-app&code=x", ErrorCode::UnsupportedGrantType),
        (b"grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv-app", ErrorCode::InvalidRequest),
        (b"grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv-app&device_code=", ErrorCode::InvalidRequest),
        (b"grant_type=urn:ietf:params:oauth:grant-type:device_code&grant_type=urn:ietf:params:oauth:grant-type:device_code&client_id=tv-app&device_code=x", ErrorCode::InvalidRequest),
    ];
    for (body, expected) in cases {
        let r = h.grant.token(EndpointRequest::form(body)).await;
        assert_eq!(code(&r), expected, "{}", String::from_utf8_lossy(body));
        assert_eq!(r.to_http().status, 400);
    }
}
