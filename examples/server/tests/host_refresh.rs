//! The example server's `refresh_token` grant: rotation with reuse detection
//! (RFC 9700 §4.14.2), the client checked before anything is spent, the
//! original scope kept on the new refresh token (RFC 6749 §6), repeated
//! parameters refused, and errors that name the refresh token.

mod support;

use serde_json::Value;
use support::{Server, approved_tokens};

const TV: (&str, Option<&str>) = ("tv-app", None);

async fn refresh(server: &Server, form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url("/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn refresh_tv(server: &Server, token: &str, scope: Option<&str>) -> (u16, Value) {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", "tv-app"),
        ("refresh_token", token),
    ];
    if let Some(scope) = scope {
        form.push(("scope", scope));
    }
    refresh(server, &form).await
}

async fn me(server: &Server, access_token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

fn token<'a>(response: &'a Value, name: &str) -> &'a str {
    response[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}

#[tokio::test]
async fn a_spent_refresh_token_presented_again_revokes_the_whole_family() {
    let server = Server::start(|_| {}).await;
    let first = approved_tokens(&server, TV, "profile offline_access").await;
    let (status, second) = refresh_tv(&server, token(&first, "refresh_token"), None).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(
        me(&server, token(&second, "access_token")).await.status(),
        200
    );

    // The first refresh token again: someone holds a copy.
    let (status, reuse) = refresh_tv(&server, token(&first, "refresh_token"), None).await;
    assert_eq!(
        (status, reuse["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Every token of the family is dead: the live refresh token and the access
    // tokens of both rounds.
    let (status, _) = refresh_tv(&server, token(&second, "refresh_token"), None).await;
    assert_eq!(status, 400);
    assert_eq!(
        me(&server, token(&second, "access_token")).await.status(),
        401
    );
    assert_eq!(
        me(&server, token(&first, "access_token")).await.status(),
        401
    );
}

#[tokio::test]
async fn another_client_cannot_spend_a_refresh_token_it_does_not_own() {
    let server = Server::start(|_| {}).await;
    let tokens = approved_tokens(&server, TV, "profile offline_access").await;
    let (status, answer) = refresh(
        &server,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "printer"),
            ("client_secret", "printer-secret"),
            ("refresh_token", token(&tokens, "refresh_token")),
        ],
    )
    .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The owner's token still works, and its family was not revoked.
    assert_eq!(
        me(&server, token(&tokens, "access_token")).await.status(),
        200
    );
    let (status, answer) = refresh_tv(&server, token(&tokens, "refresh_token"), None).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_narrowed_refresh_keeps_the_original_scope_on_the_new_refresh_token() {
    let server = Server::start(|_| {}).await;
    let tokens = approved_tokens(&server, TV, "profile offline_access").await;
    let (status, narrow) =
        refresh_tv(&server, token(&tokens, "refresh_token"), Some("profile")).await;
    assert_eq!(status, 200, "{narrow}");
    assert_eq!(narrow["scope"], "profile");
    let access: Value = me(&server, token(&narrow, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(access["scope"], "profile");
    // The new refresh token still carries everything that was approved.
    let (status, wide) = refresh_tv(&server, token(&narrow, "refresh_token"), None).await;
    assert_eq!(status, 200, "{wide}");
    let access: Value = me(&server, token(&wide, "access_token"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(access["scope"], "offline_access profile");
}

#[tokio::test]
async fn repeated_parameters_are_invalid_request() {
    let server = Server::start(|_| {}).await;
    let tokens = approved_tokens(&server, TV, "profile offline_access").await;
    let live = token(&tokens, "refresh_token");
    for form in [
        vec![
            ("grant_type", "refresh_token"),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", "tv-app"),
            ("refresh_token", live),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("grant_type", "refresh_token"),
            ("client_id", "tv-app"),
            ("refresh_token", live),
        ],
        vec![
            ("grant_type", "refresh_token"),
            ("client_id", "tv-app"),
            ("refresh_token", live),
            ("refresh_token", live),
        ],
    ] {
        let (status, answer) = refresh(&server, &form).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("invalid_request")),
            "{form:?}"
        );
    }
    // Nothing was spent by the refused requests.
    assert_eq!(refresh_tv(&server, live, None).await.0, 200);
}

#[tokio::test]
async fn refresh_errors_name_the_refresh_token() {
    let server = Server::start(|_| {}).await;
    let (status, answer) = refresh_tv(&server, "no-such-token", None).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let description = answer["error_description"].as_str().unwrap_or_default();
    assert!(description.contains("refresh token"), "{answer}");
    assert!(!description.contains("device code"), "{answer}");
}
