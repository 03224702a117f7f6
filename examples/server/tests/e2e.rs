//! The example server end to end: a real third-party client (the `oauth2`
//! crate) on the device side, the pages walked over HTTP as a browser would.

mod support;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use device_grant::{EventKind, ManualClock};
use oauth2::basic::BasicErrorResponseType;
use oauth2::{
    AuthType, DeviceCodeErrorResponseType, PkceCodeChallenge, RefreshToken, RequestTokenError,
    Scope, StandardDeviceAuthorizationResponse, TokenResponse as _,
};
use serde_json::Value;
use support::browser::{Browser, Page};
use support::{DeviceClient, Server, device_client, device_http};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn ask_codes(client: &DeviceClient, scope: &str) -> StandardDeviceAuthorizationResponse {
    let mut request = client.exchange_device_code();
    for s in scope.split(' ') {
        request = request.add_scope(Scope::new(s.to_owned()));
    }
    request.request_async(&device_http()).await.unwrap()
}

type PollResult = Result<
    oauth2::basic::BasicTokenResponse,
    RequestTokenError<
        oauth2::HttpClientError<oauth2::reqwest::Error>,
        oauth2::DeviceCodeErrorResponse,
    >,
>;

/// The device polls until it has an answer, in the background, at the interval
/// the server gave (the crate under test honours `slow_down` itself).
fn poll(
    client: &DeviceClient,
    codes: &StandardDeviceAuthorizationResponse,
) -> tokio::task::JoinHandle<PollResult> {
    let (client, codes) = (client.clone(), codes.clone());
    tokio::spawn(async move {
        client
            .exchange_device_access_token(&codes)
            .request_async(
                &device_http(),
                tokio::time::sleep,
                Some(StdDuration::from_secs(30)),
            )
            .await
    })
}

/// The person opens `verification_uri_complete`, confirms the code, signs in,
/// and arrives at the consent page.
async fn reach_consent(
    browser: &Browser,
    codes: &StandardDeviceAuthorizationResponse,
    user: &str,
    password: &str,
) -> Page {
    let complete = codes
        .verification_uri_complete()
        .expect("verification_uri_complete");
    let page = browser.get(complete.secret()).await;
    assert_eq!(page.status, 200, "{}", page.html);
    let form = page.form("/device");
    assert_eq!(
        form.value("user_code"),
        Some(codes.user_code().secret().as_str())
    );
    assert!(page.contains("Check that this code is the one on your device"));
    assert!(
        page.contains("<svg"),
        "a QR code of the link: {}",
        page.html
    );
    let page = browser.submit(&page, &form, None).await;

    assert_eq!(page.path(), "/login", "{}", page.html);
    let form = page
        .form("/login")
        .fill("username", user)
        .fill("password", password);
    let page = browser.submit(&page, &form, None).await;
    assert_eq!(
        (page.status, page.path()),
        (200, "/consent".to_owned()),
        "{}",
        page.html
    );
    page
}

async fn decide(browser: &Browser, consent: &Page, decision: &str) -> Page {
    let form = consent.form("/consent");
    browser
        .submit(consent, &form, Some(("decision", decision)))
        .await
}

async fn api_me(server: &Server, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn fast(options: &mut support::app::Options) {
    options.interval = 1;
}

fn server_error(result: PollResult) -> DeviceCodeErrorResponseType {
    match result {
        Err(RequestTokenError::ServerResponse(e)) => e.error().clone(),
        Err(other) => panic!("expected an OAuth error, got {other:?}"),
        Ok(_) => panic!("expected an OAuth error, got tokens"),
    }
}

#[tokio::test]
async fn metadata_describes_the_server() {
    let server = Server::start(|_| {}).await;
    let doc: Value = reqwest::get(server.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], server.base);
    assert_eq!(doc["token_endpoint"], server.url("/token"));
    assert_eq!(
        doc["device_authorization_endpoint"],
        server.url("/device_authorization")
    );
    assert_eq!(doc["jwks_uri"], server.url("/jwks.json"));
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&GRANT.into()) && grants.contains(&"refresh_token".into()));
    for method in ["none", "client_secret_basic", "client_secret_post"] {
        assert!(
            doc["token_endpoint_auth_methods_supported"]
                .as_array()
                .unwrap()
                .contains(&method.into())
        );
    }
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!(["openid", "profile", "email", "offline_access"])
    );
    assert!(doc["response_types_supported"].is_array());
    // PKCE on the device grant: S256 only.
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
}

/// The `cli` client must use PKCE: without a challenge it gets no codes; with
/// one, its token request needs the verifier, and a request without it is
/// refused without costing the device its approval.
#[tokio::test]
async fn pkce_client_needs_its_verifier() {
    let server = Server::start(fast).await;
    let cli = device_client(&server, "cli", None);

    let refused: Result<StandardDeviceAuthorizationResponse, _> = cli
        .exchange_device_code()
        .add_scope(Scope::new("profile".to_owned()))
        .request_async(&device_http())
        .await;
    match refused {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidRequest);
            assert!(
                e.error_description()
                    .is_some_and(|d| d.contains("code_challenge")),
                "{e:?}"
            );
        }
        other => panic!("expected invalid_request, got {other:?}"),
    }

    // The `oauth2` crate's own PKCE pair: a random verifier and its S256 challenge.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    assert_eq!(challenge.method().as_str(), "S256");
    let codes: StandardDeviceAuthorizationResponse = cli
        .exchange_device_code()
        .add_scope(Scope::new("profile".to_owned()))
        .add_extra_param("code_challenge", challenge.as_str())
        .add_extra_param("code_challenge_method", challenge.method().as_str())
        .request_async(&device_http())
        .await
        .unwrap();

    let browser = Browser::new();
    let consent = reach_consent(&browser, &codes, "alice", "wonderland").await;
    assert!(consent.contains("Command-line tool"), "{}", consent.html);
    let done = decide(&browser, &consent, "approve").await;
    assert_eq!(done.status, 200);

    // Approved, yet a token request without the verifier (a stolen device
    // code) is refused…
    let stolen = cli
        .exchange_device_access_token(&codes)
        .request_async(
            &device_http(),
            tokio::time::sleep,
            Some(StdDuration::from_secs(30)),
        )
        .await;
    assert_eq!(
        server_error(stolen),
        DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::InvalidGrant)
    );
    let wrong = PkceCodeChallenge::new_random_sha256().1;
    let guessed = cli
        .exchange_device_access_token(&codes)
        .add_extra_param("code_verifier", wrong.secret().as_str())
        .request_async(
            &device_http(),
            tokio::time::sleep,
            Some(StdDuration::from_secs(30)),
        )
        .await;
    assert_eq!(
        server_error(guessed),
        DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::InvalidGrant)
    );
    assert_eq!(server.issued(), 0);
    let refusals = server
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::VerifierRefused { .. }))
        .count();
    assert_eq!(refusals, 2);

    // …and the device, which kept the verifier, gets the tokens.
    let tokens = cli
        .exchange_device_access_token(&codes)
        .add_extra_param("code_verifier", verifier.secret().as_str())
        .request_async(
            &device_http(),
            tokio::time::sleep,
            Some(StdDuration::from_secs(30)),
        )
        .await
        .expect("tokens");
    let me: Value = api_me(&server, tokens.access_token().secret())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        me,
        serde_json::json!({"sub": "alice", "client_id": "cli", "scope": "profile"})
    );
    assert_eq!(server.issued(), 1);
}

#[tokio::test]
async fn public_client_approved_gets_tokens_that_work_and_refresh() {
    let server = Server::start(fast).await;
    let tv = device_client(&server, "tv-app", None);
    let codes = ask_codes(&tv, "profile offline_access").await;
    assert_eq!(codes.verification_uri().as_str(), server.url("/device"));
    let device = poll(&tv, &codes);

    let browser = Browser::new();
    let consent = reach_consent(&browser, &codes, "alice", "wonderland").await;
    // The consent page names the client, the scopes and the device's context.
    for shown in [
        "Living-room TV",
        "tv-app",
        "See your name",
        "Stay connected",
        "127.0.0.1",
        "LivingRoomTV/2.1 (e2e test)",
        "ago, at",
        // Device and person both on 127.0.0.1: no warning, no step-up.
        "Your device is on the same network as you.",
    ] {
        assert!(
            consent.contains(shown),
            "consent page lacks {shown:?}:\n{}",
            consent.html
        );
    }
    let done = decide(&browser, &consent, "approve").await;
    assert_eq!(done.status, 200);
    assert!(done.contains("Return to your device"), "{}", done.html);

    let tokens = device.await.unwrap().expect("tokens");
    let me = api_me(&server, tokens.access_token().secret()).await;
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(
        me,
        serde_json::json!({"sub": "alice", "client_id": "tv-app", "scope": "offline_access profile"})
    );

    // offline_access brought a refresh token; it works once, then it is spent.
    let refresh = tokens.refresh_token().expect("refresh_token").clone();
    let refreshed = tv
        .exchange_refresh_token(&refresh)
        .request_async(&device_http())
        .await
        .unwrap();
    assert_eq!(
        api_me(&server, refreshed.access_token().secret())
            .await
            .status(),
        200
    );
    let again = tv
        .exchange_refresh_token(&RefreshToken::new(refresh.secret().clone()))
        .request_async(&device_http())
        .await;
    match again {
        Err(RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant)
        }
        other => panic!("a spent refresh token must fail: {other:?}"),
    }
}

#[tokio::test]
async fn confidential_client_works_with_basic_and_post_authentication() {
    let server = Server::start(fast).await;
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let printer = device_client(&server, "printer", Some(("printer-secret", auth.clone())));
        let codes = ask_codes(&printer, "profile").await;
        let device = poll(&printer, &codes);
        let browser = Browser::new();
        let consent = reach_consent(&browser, &codes, "bob", "builder").await;
        assert!(consent.contains("Office printer"));
        decide(&browser, &consent, "approve").await;
        let tokens = device.await.unwrap().expect("tokens");
        assert!(
            tokens.refresh_token().is_none(),
            "no offline_access, no refresh token"
        );
        let me: Value = api_me(&server, tokens.access_token().secret())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            (me["sub"].as_str(), me["client_id"].as_str()),
            (Some("bob"), Some("printer"))
        );

        // The wrong secret is refused, the same way.
        let wrong = device_client(&server, "printer", Some(("not-the-secret", auth)));
        let refused: Result<StandardDeviceAuthorizationResponse, _> = wrong
            .exchange_device_code()
            .request_async(&device_http())
            .await;
        assert!(refused.is_err(), "a wrong secret must be refused");
    }
}

#[tokio::test]
async fn denial_gives_access_denied() {
    let server = Server::start(fast).await;
    let tv = device_client(&server, "tv-app", None);
    let codes = ask_codes(&tv, "profile").await;
    let device = poll(&tv, &codes);
    let browser = Browser::new();
    let consent = reach_consent(&browser, &codes, "alice", "wonderland").await;
    // Deny is a button as prominent as Allow, and first: Enter denies.
    let form = consent.form("/consent");
    assert_eq!(
        form.buttons,
        vec![
            ("decision".into(), "deny".into()),
            ("decision".into(), "approve".into())
        ]
    );
    let done = decide(&browser, &consent, "deny").await;
    assert!(done.contains("Access denied"), "{}", done.html);
    assert_eq!(
        server_error(device.await.unwrap()),
        DeviceCodeErrorResponseType::AccessDenied
    );

    // Submitting the decision again finds nothing to decide.
    let again = decide(&browser, &consent, "approve").await;
    assert_eq!(again.status, 400);
}

/// Raw token polls, to see each answer the `oauth2` crate would hide.
async fn raw_poll(server: &Server, device_code: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", GRANT),
            ("client_id", "tv-app"),
            ("device_code", device_code),
        ])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn polling_too_fast_gets_slow_down_and_a_longer_interval() {
    let clock = Arc::new(ManualClock::default());
    let server = Server::start(|o| o.clock = clock.clone()).await;
    let codes = ask_codes(&device_client(&server, "tv-app", None), "profile").await;
    let code = codes.device_code().secret();
    assert_eq!(codes.interval(), StdDuration::from_secs(5));

    assert_eq!(
        raw_poll(&server, code).await.1["error"],
        "authorization_pending"
    );
    // The answer says the interval to keep from now on.
    assert_eq!(raw_poll(&server, code).await, (400, slow_down(10)));
    // The interval is now 10 s: 6 s later is still too early (it was not at 5 s)…
    clock.advance(time::Duration::seconds(6));
    assert_eq!(raw_poll(&server, code).await, (400, slow_down(15)));
    // …and after the grown interval the device is answered normally again.
    clock.advance(time::Duration::seconds(15));
    assert_eq!(
        raw_poll(&server, code).await.1["error"],
        "authorization_pending"
    );
    assert!(
        server
            .events
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::SlowDown { .. }))
    );
}

fn slow_down(interval: u32) -> Value {
    serde_json::json!({
        "error": "slow_down",
        "error_description": format!("slow down: poll at most every {interval} s"),
        "interval": interval,
    })
}

#[tokio::test]
async fn an_expired_code_gets_expired_token_and_is_unknown_to_the_page() {
    let clock = Arc::new(ManualClock::default());
    let server = Server::start(|o| o.clock = clock.clone()).await;
    let tv = device_client(&server, "tv-app", None);
    let codes = ask_codes(&tv, "profile").await;
    assert_eq!(codes.expires_in(), StdDuration::from_secs(600));
    clock.advance(time::Duration::seconds(601));

    let browser = Browser::new();
    let page = browser.get(&server.url("/device")).await;
    let form = page
        .form("/device")
        .fill("user_code", codes.user_code().secret());
    let page = browser.submit(&page, &form, None).await;
    assert_eq!(page.status, 400);
    assert!(
        page.contains("No device is waiting for this code"),
        "{}",
        page.html
    );

    assert_eq!(
        server_error(poll(&tv, &codes).await.unwrap()),
        DeviceCodeErrorResponseType::ExpiredToken
    );
}

#[tokio::test]
async fn a_second_redemption_gets_invalid_grant_and_revokes_the_tokens() {
    let server = Server::start(fast).await;
    let tv = device_client(&server, "tv-app", None);
    let codes = ask_codes(&tv, "profile").await;
    let device = poll(&tv, &codes);
    let browser = Browser::new();
    let consent = reach_consent(&browser, &codes, "alice", "wonderland").await;
    decide(&browser, &consent, "approve").await;
    let tokens = device.await.unwrap().expect("tokens");
    assert_eq!(
        api_me(&server, tokens.access_token().secret())
            .await
            .status(),
        200
    );

    let replay = poll(&tv, &codes).await.unwrap();
    assert_eq!(
        server_error(replay),
        DeviceCodeErrorResponseType::Basic(BasicErrorResponseType::InvalidGrant)
    );
    // A replayed code may have been stolen: the server revoked what it issued.
    assert!(
        server
            .events
            .events()
            .iter()
            .any(|e| matches!(e.kind, EventKind::Replay))
    );
    let me = api_me(&server, tokens.access_token().secret()).await;
    assert_eq!(me.status(), 401);
}

#[tokio::test]
async fn openid_brings_an_id_token_signed_with_the_published_key() {
    let server = Server::start(fast).await;
    let http = reqwest::Client::new();
    // The raw protocol this time, with client_secret_post, to read `id_token`.
    let secret = [
        ("client_id", "printer"),
        ("client_secret", "printer-secret"),
    ];
    let codes: Value = http
        .post(server.url("/device_authorization"))
        .form(&[secret[0], secret[1], ("scope", "openid email")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let browser = Browser::new();
    let page = browser
        .get(codes["verification_uri_complete"].as_str().unwrap())
        .await;
    let page = browser.submit(&page, &page.form("/device"), None).await;
    let form = page
        .form("/login")
        .fill("username", "alice")
        .fill("password", "wonderland");
    let consent = browser.submit(&page, &form, None).await;
    decide(&browser, &consent, "approve").await;

    let tokens: Value = http
        .post(server.url("/token"))
        .form(&[
            secret[0],
            secret[1],
            ("grant_type", GRANT),
            ("device_code", codes["device_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let jwks: Value = http
        .get(server.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );

    let parts: Vec<&str> = id_token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(
        (header["alg"].as_str(), &header["kid"]),
        (Some("EdDSA"), &key["kid"])
    );
    let x: [u8; 32] = URL_SAFE_NO_PAD
        .decode(key["x"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let signature: [u8; 64] = URL_SAFE_NO_PAD
        .decode(parts[2])
        .unwrap()
        .try_into()
        .unwrap();
    ed25519_dalek::VerifyingKey::from_bytes(&x)
        .unwrap()
        .verify_strict(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &ed25519_dalek::Signature::from_bytes(&signature),
        )
        .expect("the ID token verifies with the published key");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], server.base);
    assert_eq!(
        (claims["sub"].as_str(), claims["aud"].as_str()),
        (Some("alice"), Some("printer"))
    );
    assert_eq!(claims["email"], "alice@example.com");
    assert!(
        claims.get("name").is_none(),
        "no profile scope, no name: {claims}"
    );
    assert!(claims["exp"].as_i64() > claims["iat"].as_i64());
}

#[tokio::test]
async fn pages_set_a_safe_session_cookie_and_refuse_framing() {
    let server = Server::start(|_| {}).await;
    let page = Browser::new().get(&server.url("/device")).await;
    // A page view stores no session: its CSRF token rides in a cookie of its own.
    let cookies: Vec<_> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        !cookies.iter().any(|c| c.starts_with("sid=")),
        "{cookies:?}"
    );
    let cookie = cookies
        .iter()
        .find(|c| c.starts_with("csrf="))
        .expect("a CSRF cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.contains(r#"name="viewport""#));
    // Every form carries the CSRF token.
    let forms = page.forms();
    assert!(!forms.is_empty());
    for form in forms {
        assert!(
            form.value("csrf").is_some_and(|t| t.len() >= 32),
            "{form:?}"
        );
    }
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let server = Server::start(|_| {}).await;
    let (mine, theirs) = (Browser::new(), Browser::new());
    let page = mine.get(&server.url("/device")).await;
    let their_page = theirs.get(&server.url("/device")).await;
    // A token from another session is no better than none.
    let stolen = their_page.form("/device").value("csrf").unwrap().to_owned();
    let form = page
        .form("/device")
        .fill("csrf", &stolen)
        .fill("user_code", "BCDF-GHJK");
    let refused = mine.submit(&page, &form, None).await;
    assert_eq!(refused.status, 403);
    assert!(refused.contains("This form has expired"));
}

#[tokio::test]
async fn wrong_codes_get_a_clear_message_then_the_limiter_stops_them() {
    // A stopped clock: on the real one the six attempts could straddle the
    // limiter's window boundary and the sixth would be admitted.
    let clock = Arc::new(ManualClock::default());
    let server = Server::start(|o| o.clock = clock.clone()).await;
    let codes = ask_codes(&device_client(&server, "tv-app", None), "profile").await;
    let right = codes.user_code().secret().clone();
    let wrong = if right == "BCDF-GHJK" {
        "BCDF-GHJL"
    } else {
        "BCDF-GHJK"
    };
    let browser = Browser::new();
    let page = browser.get(&server.url("/device")).await;

    // Not a code at all: told so, and it costs nothing.
    let form = page.form("/device").fill("user_code", "hello!");
    let answer = browser.submit(&page, &form, None).await;
    assert_eq!(answer.status, 400);
    assert!(
        answer.contains("That is not a code from a device"),
        "{}",
        answer.html
    );

    // A link whose code is malformed: the same message, nothing pre-filled.
    let link = browser
        .get(&server.url("/device?user_code=%3Cscript%3E"))
        .await;
    assert_eq!(link.status, 400);
    assert!(link.contains("That is not a code from a device"));
    assert_eq!(link.form("/device").value("user_code"), Some(""));

    // Wrong codes up to the default budget are each told so…
    for _ in 0..device_grant::Budgets::default()
        .wrong_codes_per_key
        .attempts
    {
        let form = page.form("/device").fill("user_code", wrong);
        let answer = browser.submit(&page, &form, None).await;
        assert_eq!(answer.status, 400);
        assert!(
            answer.contains("No device is waiting for this code"),
            "{}",
            answer.html
        );
    }
    // …then even the right one is refused until the window ends.
    let form = page.form("/device").fill("user_code", &right);
    let answer = browser.submit(&page, &form, None).await;
    assert_eq!(answer.status, 429);
    assert!(
        answer.contains("Too many wrong codes. Try again in"),
        "{}",
        answer.html
    );
    assert!(answer.header("retry-after").is_some());
}

#[tokio::test]
async fn wrong_passwords_are_refused() {
    let server = Server::start(|_| {}).await;
    let browser = Browser::new();
    let page = browser.get(&server.url("/login")).await;
    let form = page
        .form("/login")
        .fill("username", "alice")
        .fill("password", "looking-glass");
    let answer = browser.submit(&page, &form, None).await;
    assert_eq!(answer.status, 401);
    assert!(answer.contains("Wrong username or password."));
    assert!(
        !answer.contains("looking-glass"),
        "the password is never echoed"
    );
}

#[tokio::test]
async fn the_api_refuses_missing_and_unknown_tokens() {
    let server = Server::start(|_| {}).await;
    let none = reqwest::get(server.url("/api/me")).await.unwrap();
    assert_eq!(none.status(), 401);
    assert!(
        none.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let bad = api_me(&server, "not-a-token").await;
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[tokio::test]
async fn access_tokens_expire() {
    let clock = Arc::new(ManualClock::default());
    let server = Server::start(|o| o.clock = clock.clone()).await;
    let http = reqwest::Client::new();
    let codes: Value = http
        .post(server.url("/device_authorization"))
        .form(&[("client_id", "tv-app")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let browser = Browser::new();
    let page = browser
        .get(codes["verification_uri_complete"].as_str().unwrap())
        .await;
    let page = browser.submit(&page, &page.form("/device"), None).await;
    let form = page
        .form("/login")
        .fill("username", "bob")
        .fill("password", "builder");
    let consent = browser.submit(&page, &form, None).await;
    decide(&browser, &consent, "approve").await;
    let (status, tokens) = raw_poll(&server, codes["device_code"].as_str().unwrap()).await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(api_me(&server, access).await.status(), 200);
    clock.advance(time::Duration::seconds(3601));
    assert_eq!(api_me(&server, access).await.status(), 401);
}

#[tokio::test]
async fn the_token_endpoint_dispatches_on_grant_type() {
    let server = Server::start(|_| {}).await;
    let post = |form: &'static [(&'static str, &'static str)]| {
        let url = server.url("/token");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .form(form)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<Value>().await.unwrap()["error"].clone(),
            )
        }
    };
    assert_eq!(
        post(&[("grant_type", "password"), ("client_id", "tv-app")]).await,
        (400, "unsupported_grant_type".into())
    );
    assert_eq!(
        post(&[("client_id", "tv-app")]).await,
        (400, "invalid_request".into())
    );
    assert_eq!(
        post(&[
            ("grant_type", "refresh_token"),
            ("client_id", "tv-app"),
            ("refresh_token", "nope")
        ])
        .await,
        (400, "invalid_grant".into())
    );
    assert_eq!(
        post(&[
            ("grant_type", "refresh_token"),
            ("client_id", "printer"),
            ("client_secret", "wrong"),
            ("refresh_token", "x")
        ])
        .await
        .1,
        "invalid_client"
    );
}

#[tokio::test]
async fn the_store_is_chosen_by_name_and_errors_show_no_password() {
    let memory = support::app::open_store("memory").await.unwrap();
    assert!(!memory.shared);
    for spec in ["memroy", "mysql://app:hunter2@db/grants"] {
        let err = support::app::open_store(spec)
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("unknown store"), "{err}");
        assert!(!err.contains("hunter2"), "the password leaked: {err}");
    }
}
