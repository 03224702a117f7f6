//! Hooks for real deployments: the `WWW-Authenticate` realm from the
//! configuration, and routing one token endpoint by `grant_type`.

use std::sync::Arc;

use device_grant::{
    ApprovedGrant, AuthMethod, BackendError, Client, Config, ConfigBuilder, ConfigError,
    DeviceGrant, EndpointRequest, GrantType, Limits, OAuthError, Realm, RealmError, RequestContext,
    RequestError, StaticClients, ToHttp, TokenIssuer, TokenResponse, UserCodeKey,
};

struct NoTokens;
#[async_trait::async_trait]
impl TokenIssuer for NoTokens {
    async fn issue(&self, _: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        Err(BackendError::other("unused"))
    }
}

fn config() -> ConfigBuilder {
    Config::builder(
        "https://as.example/device",
        UserCodeKey::new(&[5; 32]).unwrap(),
    )
}

fn grant(config: Config) -> DeviceGrant {
    let clients = StaticClients::new()
        .with_public(Client::for_device_grant("tv-app", vec![AuthMethod::None]))
        .with_confidential(
            Client::for_device_grant("printer", vec![AuthMethod::ClientSecretBasic]),
            "s3cret",
        );
    DeviceGrant::builder(config, Arc::new(clients), Arc::new(NoTokens)).build()
}

// `printer:wrong`
const WRONG_BASIC: &str = "Basic cHJpbnRlcjp3cm9uZw==";

fn challenge(error: &OAuthError) -> Option<String> {
    let r = error.to_http();
    assert_eq!(r.status, 401, "{error:?}");
    r.header("www-authenticate").map(str::to_owned)
}

#[tokio::test]
async fn a_401_challenge_names_the_configured_realm_on_every_endpoint() {
    let g = grant(config().realm("example.com").build().unwrap());
    assert_eq!(g.config().realm().as_str(), "example.com");
    let expected = Some(r#"Basic realm="example.com""#.to_owned());

    let token = g
        .token(
            EndpointRequest::form(
                b"grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=x",
            )
            .with_authorization(WRONG_BASIC),
        )
        .await
        .unwrap_err();
    assert_eq!(challenge(&token), expected);
    // Through `ToHttp` on the endpoint's result, as hosts render it.
    let rendered = Err::<TokenResponse, _>(token).to_http();
    assert_eq!(
        rendered.header("www-authenticate"),
        Some(r#"Basic realm="example.com""#)
    );

    let authorization = g
        .device_authorization(
            EndpointRequest::form(b"").with_authorization(WRONG_BASIC),
            RequestContext::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(challenge(&authorization), expected);

    let other = g
        .authenticate_client(
            EndpointRequest::form(b"grant_type=refresh_token").with_authorization(WRONG_BASIC),
        )
        .await
        .unwrap_err();
    assert_eq!(challenge(&other), expected);

    // A header that is not Basic at all is refused in the same realm.
    let garbled = g
        .authenticate_client(EndpointRequest::form(b"").with_authorization("Basic !!!"))
        .await
        .unwrap_err();
    assert_eq!(challenge(&garbled), expected);
}

#[tokio::test]
async fn the_default_realm_is_the_crate_name() {
    let g = grant(config().build().unwrap());
    let e = g
        .authenticate_client(EndpointRequest::form(b"").with_authorization(WRONG_BASIC))
        .await
        .unwrap_err();
    assert_eq!(
        challenge(&e),
        Some(r#"Basic realm="device-grant""#.to_owned())
    );
    assert_eq!(Realm::default().as_str(), "device-grant");
    // Without the header there is no challenge, and no 401.
    let e = g
        .authenticate_client(EndpointRequest::form(b"client_id=printer"))
        .await
        .unwrap_err();
    let r = e.to_http();
    assert_eq!(r.status, 400);
    assert_eq!(r.header("www-authenticate"), None);
}

#[test]
fn a_realm_that_would_break_the_header_is_refused() {
    for bad in [
        "say \"hi\"",
        "line\r\nSet-Cookie: x=y",
        "tab\there",
        "back\\slash",
        "del\u{7f}",
        "caf\u{e9}",
        "",
    ] {
        assert!(Realm::new(bad).is_err(), "{bad:?}");
        assert!(
            matches!(config().realm(bad).build(), Err(ConfigError::Realm(_))),
            "{bad:?}"
        );
    }
    assert_eq!(Realm::new(""), Err(RealmError::Empty));
    assert_eq!(Realm::new(&"a".repeat(257)), Err(RealmError::TooLong));
    assert_eq!(Realm::new("a\"b"), Err(RealmError::ForbiddenCharacter));
    for good in ["example.com", "My Service (prod)", "a", &"a".repeat(256)] {
        assert_eq!(Realm::new(good).unwrap().as_str(), good);
    }
}

#[test]
fn grant_type_routes_the_device_grant_and_others() {
    let limits = Limits::default();
    let device = [
        &b"grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=x"[..],
        // Percent-encoded, as many client libraries send it.
        b"device_code=x&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code",
    ];
    for body in device {
        assert_eq!(
            EndpointRequest::form(body).grant_type(&limits).unwrap(),
            GrantType::DeviceCode
        );
    }
    let other = EndpointRequest::form(b"grant_type=refresh_token&refresh_token=r")
        .grant_type(&limits)
        .unwrap();
    assert_eq!(other, GrantType::Other("refresh_token".to_owned()));
    assert_eq!(other.as_str(), "refresh_token");
    assert_eq!(
        GrantType::DeviceCode.as_str(),
        device_grant::DEVICE_CODE_GRANT_TYPE
    );
    // Matched case-sensitively, as the token endpoint does.
    assert_eq!(
        EndpointRequest::form(b"grant_type=URN:IETF:PARAMS:OAUTH:GRANT-TYPE:DEVICE_CODE")
            .grant_type(&limits)
            .unwrap()
            .as_str(),
        "URN:IETF:PARAMS:OAUTH:GRANT-TYPE:DEVICE_CODE"
    );
}

fn request_error(result: Result<GrantType, OAuthError>) -> RequestError {
    match result {
        Err(OAuthError::InvalidRequest(e)) => e,
        other => panic!("expected invalid_request, got {other:?}"),
    }
}

#[test]
fn grant_type_applies_the_endpoints_form_rules() {
    let limits = Limits::default();
    let read = |body: &'static [u8]| EndpointRequest::form(body).grant_type(&limits);
    assert_eq!(
        request_error(read(b"client_id=tv-app")),
        RequestError::MissingParameter("grant_type")
    );
    // Empty counts as absent.
    assert_eq!(
        request_error(read(b"grant_type=&client_id=tv-app")),
        RequestError::MissingParameter("grant_type")
    );
    assert_eq!(
        request_error(read(b"grant_type=refresh_token&grant_type=refresh_token")),
        RequestError::RepeatedParameter("grant_type")
    );
    assert_eq!(
        request_error(read(b"grant_type=%FF")),
        RequestError::InvalidUtf8
    );
    let json = EndpointRequest {
        content_type: Some("application/json"),
        authorization: None,
        body: b"grant_type=refresh_token",
        dpop: None,
        client_certificate: None,
    };
    assert_eq!(
        request_error(json.grant_type(&limits)),
        RequestError::WrongContentType
    );
    let small = Limits {
        max_body_bytes: 16,
        ..Limits::default()
    };
    assert_eq!(
        request_error(EndpointRequest::form(b"grant_type=refresh_token").grant_type(&small)),
        RequestError::BodyTooLarge(16)
    );
}

#[tokio::test]
async fn the_grants_helper_reads_with_the_configured_limits() {
    let limits = Limits {
        max_value_bytes: 8,
        ..Limits::default()
    };
    let g = grant(config().limits(limits).build().unwrap());
    let e = g
        .grant_type(&EndpointRequest::form(b"grant_type=refresh_token"))
        .unwrap_err();
    assert!(
        matches!(
            e,
            OAuthError::InvalidRequest(RequestError::ValueTooLong("grant_type"))
        ),
        "{e:?}"
    );
    assert_eq!(
        g.grant_type(&EndpointRequest::form(b"grant_type=password"))
            .unwrap(),
        GrantType::Other("password".to_owned())
    );
    // The endpoint itself still refuses what is not its grant.
    let e = g
        .token(EndpointRequest::form(b"grant_type=password"))
        .await
        .unwrap_err();
    assert!(matches!(e, OAuthError::UnsupportedGrantType), "{e:?}");
}

#[cfg(feature = "http")]
#[test]
fn the_http_conversion_keeps_the_realm() {
    let e = OAuthError::invalid_client(true).in_realm(&Realm::new("example.com").unwrap());
    let r: http::Response<String> = e.to_http().into();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        r#"Basic realm="example.com""#
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
}
