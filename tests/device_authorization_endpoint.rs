//! The device authorization endpoint: RFC 8628 §3.1/§3.2 and RFC 6749 §2.3.

mod common;

use common::{PRINTER_SECRET, basic, harness};
use device_grant::{EndpointRequest, ErrorCode, EventKind, RequestContext, ToHttp};

async fn start(
    req: EndpointRequest<'_>,
) -> Result<device_grant::DeviceAuthorizationResponse, device_grant::OAuthError> {
    harness()
        .grant
        .device_authorization(req, RequestContext::default())
        .await
}

#[tokio::test]
async fn response_is_exactly_rfc_8628_section_3_2() {
    let h = harness();
    let r = h.start("client_id=tv-app&scope=openid").await;
    let http = r.to_http();
    assert_eq!(http.status, 200);
    assert_eq!(http.header("content-type"), Some("application/json"));
    assert_eq!(http.header("cache-control"), Some("no-store"));
    assert_eq!(http.header("pragma"), Some("no-cache"));
    let body: serde_json::Value = serde_json::from_str(&http.body).unwrap();
    let keys: Vec<_> = body.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys.iter()
            .map(String::as_str)
            .collect::<std::collections::BTreeSet<_>>(),
        [
            "device_code",
            "expires_in",
            "interval",
            "user_code",
            "verification_uri",
            "verification_uri_complete"
        ]
        .into()
    );
    assert_eq!(body["device_code"], r.device_code.secret());
    assert_eq!(body["device_code"].as_str().unwrap().len(), 43);
    let user_code = body["user_code"].as_str().unwrap();
    assert_eq!(user_code.len(), 9);
    assert_eq!(body["verification_uri"], "https://as.example/device");
    assert_eq!(
        body["verification_uri_complete"],
        format!("https://as.example/device?user_code={user_code}")
    );
    assert_eq!(body["expires_in"], 600);
    assert_eq!(body["interval"], 5);
    // Neither code appears in Debug output.
    let debug = format!("{r:?}");
    assert!(!debug.contains(r.device_code.secret()));
    assert!(!debug.contains(user_code));
    assert!(matches!(h.events.events()[0].kind, EventKind::Created));
}

#[tokio::test]
async fn scopes_default_allowed_and_refused() {
    let h = harness();
    let r = h.start("client_id=tv-app").await;
    let found = h
        .grant
        .verify(
            r.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    assert_eq!(found.request.scopes.to_string(), "profile");
    for (body, expected) in [
        (
            &b"client_id=tv-app&scope=admin"[..],
            ErrorCode::InvalidScope,
        ),
        (
            b"client_id=tv-app&scope=openid%20admin",
            ErrorCode::InvalidScope,
        ),
        (
            b"client_id=tv-app&scope=%22quoted%22",
            ErrorCode::InvalidScope,
        ),
        (
            b"client_id=tv-app&scope=openid&scope=profile",
            ErrorCode::InvalidRequest,
        ),
    ] {
        let e = start(EndpointRequest::form(body)).await.unwrap_err();
        assert_eq!(e.code(), expected, "{}", String::from_utf8_lossy(body));
    }
    // Empty scope counts as absent: the client's default.
    assert!(
        start(EndpointRequest::form(b"client_id=tv-app&scope="))
            .await
            .is_ok()
    );
    // Unknown parameters are ignored.
    assert!(
        start(EndpointRequest::form(b"client_id=tv-app&foo=bar&x"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn client_authentication_rules() {
    let ok = basic("printer", PRINTER_SECRET);
    let wrong = basic("printer", "nope");
    // Basic, Basic + same client_id in body, post: accepted.
    assert!(
        start(EndpointRequest::form(b"scope=openid").with_authorization(&ok))
            .await
            .is_ok()
    );
    assert!(
        start(EndpointRequest::form(b"client_id=printer").with_authorization(&ok))
            .await
            .is_ok()
    );
    let post = format!("client_id=printer&client_secret={PRINTER_SECRET}");
    assert!(start(EndpointRequest::form(post.as_bytes())).await.is_ok());
    // Two methods at once; a different client_id: invalid_request.
    let both = format!("client_secret={PRINTER_SECRET}");
    let e = start(EndpointRequest::form(both.as_bytes()).with_authorization(&ok))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequest);
    let e = start(EndpointRequest::form(b"client_id=tv-app").with_authorization(&ok))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidRequest);
    // Wrong secret via the header: 401 + challenge. Via the body: 400.
    let e = start(EndpointRequest::form(b"").with_authorization(&wrong))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.status()), (ErrorCode::InvalidClient, 401));
    assert!(e.to_http().header("www-authenticate").is_some());
    let e = start(EndpointRequest::form(
        b"client_id=printer&client_secret=nope",
    ))
    .await
    .unwrap_err();
    assert_eq!((e.code(), e.status()), (ErrorCode::InvalidClient, 400));
    // A confidential client may not act as public; a public client has no secret.
    let e = start(EndpointRequest::form(b"client_id=printer"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
    let e = start(EndpointRequest::form(b"client_id=tv-app&client_secret=x"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
    // No client at all; an unknown client; a client without the grant.
    let e = start(EndpointRequest::form(b"scope=openid"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
    let e = start(EndpointRequest::form(b"client_id=ghost"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidClient);
    let e = start(EndpointRequest::form(b"client_id=web-only"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnauthorizedClient);
}

#[tokio::test]
async fn malformed_requests_are_invalid_request() {
    let long_scope = format!("client_id=tv-app&scope={}", "openid%20".repeat(40));
    let long_value = format!("client_id={}", "a".repeat(2000));
    let many = format!("client_id=tv-app{}", "&x=1".repeat(40));
    let huge = vec![b'a'; 100_000];
    let bodies: Vec<&[u8]> = vec![
        b"client_id=%FF%FE",
        b"client_id=tv\xff",
        long_scope.as_bytes(),
        long_value.as_bytes(),
        many.as_bytes(),
        &huge,
        b"client_id=tv-app&client_id=tv-app",
    ];
    for body in bodies {
        let e = start(EndpointRequest::form(body)).await.unwrap_err();
        assert_eq!(
            e.code(),
            ErrorCode::InvalidRequest,
            "{}",
            String::from_utf8_lossy(&body[..body.len().min(60)])
        );
        let http = e.to_http();
        assert_eq!(http.status, 400);
        let v: serde_json::Value = serde_json::from_str(&http.body).unwrap();
        assert_eq!(v["error"], "invalid_request");
    }
    for content_type in [None, Some("application/json"), Some("text/plain")] {
        let req = EndpointRequest {
            content_type,
            authorization: None,
            body: b"client_id=tv-app",
            dpop: None,
            client_certificate: None,
        };
        assert_eq!(
            start(req).await.unwrap_err().code(),
            ErrorCode::InvalidRequest
        );
    }
    let req = EndpointRequest {
        content_type: Some("application/x-www-form-urlencoded; charset=UTF-8"),
        authorization: None,
        body: b"client_id=tv-app",
        dpop: None,
        client_certificate: None,
    };
    assert!(start(req).await.is_ok());
}

#[tokio::test]
async fn every_code_is_fresh_and_context_is_kept() {
    let h = harness();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let r = h.start("client_id=tv-app").await;
        assert!(seen.insert(r.user_code.canonical().to_owned()));
    }
    let ctx = RequestContext {
        ip: Some("192.0.2.7".parse().unwrap()),
        user_agent: Some("SmartTV/1.0".into()),
        extra: [("model".to_owned(), "X100".to_owned())].into(),
    };
    let r = h
        .grant
        .device_authorization(EndpointRequest::form(b"client_id=tv-app"), ctx.clone())
        .await
        .unwrap();
    let found = h
        .grant
        .verify(
            r.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    assert_eq!(found.request.context, ctx);
    assert_eq!(found.client.name, "tv-app");
}
