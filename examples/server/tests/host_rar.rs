//! Rich Authorization Requests (RFC 9396) through the example server: a
//! third-party device client (the `oauth2` crate) asks for `media_library`
//! access, the person narrows `download` away on the consent page, and the
//! token response and `/api/me` show `list` and `play` only.

mod support;

use std::time::Duration as StdDuration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    ClientId, DeviceAuthorizationUrl, EndpointNotSet, EndpointSet, ExtraTokenFields, Scope,
    StandardDeviceAuthorizationResponse, StandardRevocableToken, StandardTokenResponse,
    TokenResponse as _, TokenUrl,
};
use serde_json::{Value, json};
use support::browser::Browser;
use support::{Server, device_http};

/// The token response's RFC 9396 member, which the `oauth2` crate leaves to
/// its caller.
#[derive(Clone, Debug, serde::Deserialize, serde::Serialize)]
struct RarFields {
    authorization_details: Option<Value>,
}

impl ExtraTokenFields for RarFields {}

type RarClient = oauth2::Client<
    BasicErrorResponse,
    StandardTokenResponse<RarFields, BasicTokenType>,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn client(server: &Server) -> RarClient {
    oauth2::Client::new(ClientId::new("tv-app".to_owned()))
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(server.url("/device_authorization")).unwrap(),
        )
        .set_token_uri(TokenUrl::new(server.url("/token")).unwrap())
}

fn fast(options: &mut support::app::Options) {
    options.interval = 1;
}

const REQUESTED: &str = r#"[{"type":"media_library","actions":["list","play","download"]}]"#;

async fn ask(client: &RarClient, details: &str) -> StandardDeviceAuthorizationResponse {
    client
        .exchange_device_code()
        .add_scope(Scope::new("profile".to_owned()))
        .add_extra_param("authorization_details", details)
        .request_async(&device_http())
        .await
        .unwrap()
}

#[tokio::test]
async fn the_person_narrows_the_actions_and_the_tokens_carry_what_was_granted() {
    let server = Server::start(fast).await;
    // The metadata lists the one registered type.
    let metadata: Value = reqwest::get(server.url("/.well-known/oauth-authorization-server"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["authorization_details_types_supported"],
        json!(["media_library"])
    );

    let tv = client(&server);
    let codes = ask(&tv, REQUESTED).await;
    let device = {
        let (tv, codes) = (tv.clone(), codes.clone());
        tokio::spawn(async move {
            tv.exchange_device_access_token(&codes)
                .add_extra_param("authorization_details", REQUESTED)
                .request_async(
                    &device_http(),
                    tokio::time::sleep,
                    Some(StdDuration::from_secs(30)),
                )
                .await
        })
    };

    let browser = Browser::new();
    support::sign_in(&browser, &server, "alice", "wonderland").await;
    let page = browser.get(&server.url("/device")).await;
    let form = page
        .form("/device")
        .fill("user_code", codes.user_code().secret());
    let consent = browser.submit(&page, &form, None).await;
    assert_eq!(consent.path(), "/consent", "{}", consent.html);
    for shown in [
        "With your media library, it asks to",
        "see the titles in your library",
        "play your media",
        "download copies of your media",
    ] {
        assert!(
            consent.contains(shown),
            "lacks {shown:?}:\n{}",
            consent.html
        );
    }
    let form = consent.form("/consent").uncheck("grant_0_download");
    let done = browser
        .submit(&consent, &form, Some(("decision", "approve")))
        .await;
    assert_eq!(done.status, 200, "{}", done.html);

    let tokens = device.await.unwrap().expect("tokens");
    let granted = json!([{"type": "media_library", "actions": ["list", "play"]}]);
    assert_eq!(
        tokens.extra_fields().authorization_details,
        Some(granted.clone())
    );
    let me: Value = reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(tokens.access_token().secret())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["authorization_details"], granted, "{me}");
}

#[tokio::test]
async fn details_the_server_does_not_accept_are_refused() {
    let server = Server::start(fast).await;
    for details in [
        r#"[{"type":"media_library","actions":["delete"]}]"#,
        r#"[{"type":"payment"}]"#,
        r#"{"type":"media_library"}"#,
    ] {
        let response = reqwest::Client::new()
            .post(server.url("/device_authorization"))
            .form(&[("client_id", "tv-app"), ("authorization_details", details)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{details}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_authorization_details", "{details}");
    }
}

#[tokio::test]
async fn the_headless_api_shows_and_narrows_the_details() {
    let server = Server::start(fast).await;
    let codes = {
        let response = reqwest::Client::new()
            .post(server.url("/device_authorization"))
            .form(&[
                ("client_id", "tv-app"),
                ("scope", "profile"),
                ("authorization_details", REQUESTED),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json::<Value>().await.unwrap()
    };
    let browser = Browser::new();
    support::sign_in(&browser, &server, "alice", "wonderland").await;
    let http = browser.http();
    let session: Value = http
        .get(server.url("/api/verification/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = session["csrf"].as_str().expect("csrf").to_owned();
    let found: Value = http
        .post(server.url("/api/verification/lookup"))
        .header("x-csrf-token", &csrf)
        .json(&json!({"user_code": codes["user_code"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = &found["authorization_details"][0];
    assert_eq!(
        shown["detail"]["actions"],
        json!(["list", "play", "download"]),
        "{found}"
    );
    assert_eq!(
        shown["description"][2], "download copies of your media",
        "{found}"
    );
    let handle = found["handle"].as_str().unwrap();
    let approve = |details: Value| {
        http.post(server.url(&format!("/api/verification/requests/{handle}/approve")))
            .header("x-csrf-token", &csrf)
            .json(&json!({"authorization_details": details}))
            .send()
    };
    // Wider than requested: refused, and the request stays.
    let wider = approve(json!([{"type": "media_library", "actions": ["list"], "identifier": "x"}]))
        .await
        .unwrap();
    assert_eq!(wider.status(), 400);
    let play = json!([{"type": "media_library", "actions": ["play"]}]);
    let ok = approve(play.clone()).await.unwrap();
    assert_eq!(ok.status(), 200, "{}", ok.text().await.unwrap());
    let (status, tokens) = support::poll_raw(&server, ("tv-app", None), &codes).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["authorization_details"], play);
}
