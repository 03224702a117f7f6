//! The example server's verification API for custom UIs: a code looked up,
//! read, approved in part, or denied as JSON, with the pages' sign-in, CSRF
//! and policy rules, through a handle that is neither the user code nor a way
//! to the device code.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::app::ClientAddress;
use support::browser::Browser;
use support::{Server, ask_raw, poll_raw, sign_in};

const TV: (&str, Option<&str>) = ("tv-app", None);
const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A custom UI running in `browser`: the session's CSRF token, fetched once.
struct Ui<'a> {
    server: &'a Server,
    browser: &'a Browser,
    csrf: String,
}

impl<'a> Ui<'a> {
    async fn open(server: &'a Server, browser: &'a Browser) -> Ui<'a> {
        let session: Value = browser
            .http()
            .get(server.url("/api/verification/session"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let csrf = session["csrf"].as_str().unwrap().to_owned();
        assert!(csrf.len() >= 32, "{session}");
        Ui {
            server,
            browser,
            csrf,
        }
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .browser
            .http()
            .post(self.server.url(path))
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self
            .browser
            .http()
            .get(self.server.url(path))
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn lookup(&self, codes: &Value) -> (StatusCode, Value) {
        self.post(
            "/api/verification/lookup",
            json!({ "user_code": codes["user_code"] }),
        )
        .await
    }
}

#[tokio::test]
async fn a_custom_ui_looks_up_reads_and_approves_part_of_a_request() {
    let server = Server::start(|_| {}).await;
    let codes = ask_raw(&server, TV, "profile email").await;
    let browser = Browser::new();
    sign_in(&browser, &server, "alice", "wonderland").await;
    let ui = Ui::open(&server, &browser).await;

    let (status, found) = ui.lookup(&codes).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["client"]["id"], "tv-app");
    assert_eq!(found["client"]["name"], "Living-room TV");
    let scopes: Vec<&str> = found["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(scopes, ["email", "profile"]);
    assert_eq!(found["proximity"], "same_address");
    assert_eq!(found["decision"], "allow");
    assert_eq!(found["device"]["ip"], "127.0.0.1");

    // The handle is neither code, nor contains either.
    let handle = found["handle"].as_str().unwrap().to_owned();
    let user_code = codes["user_code"].as_str().unwrap();
    let device_code = codes["device_code"].as_str().unwrap();
    let compact: String = user_code.chars().filter(|c| *c != '-').collect();
    assert!(!handle.contains(&compact) && !handle.contains(device_code));
    let whole = found.to_string();
    assert!(
        !whole.contains(device_code) && !whole.contains(&compact),
        "{whole}"
    );

    // Read again: the crate's current view.
    let (status, again) = ui
        .get(&format!("/api/verification/requests/{handle}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["handle"], handle.as_str());

    // Widening is refused and changes nothing.
    let (status, refused) = ui
        .post(
            &format!("/api/verification/requests/{handle}/approve"),
            json!({ "scopes": ["profile", "offline_access"] }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["error"], "invalid_scope");
    assert_eq!(
        poll_raw(&server, TV, &codes).await.1["error"],
        "authorization_pending"
    );

    // Narrowing is allowed: the device gets what was granted.
    let (status, done) = ui
        .post(
            &format!("/api/verification/requests/{handle}/approve"),
            json!({ "scopes": ["profile"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "approved");
    let (status, tokens) = poll_raw(&server, TV, &codes).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["scope"], "profile");

    // The handle is spent.
    let (status, _) = ui
        .post(
            &format!("/api/verification/requests/{handle}/deny"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
}

#[tokio::test]
async fn every_post_needs_the_csrf_token_and_a_json_body() {
    let server = Server::start(|_| {}).await;
    let codes = ask_raw(&server, TV, "profile").await;
    let browser = Browser::new();
    sign_in(&browser, &server, "alice", "wonderland").await;
    let ui = Ui::open(&server, &browser).await;
    let lookup = server.url("/api/verification/lookup");
    let body = json!({ "user_code": codes["user_code"] });

    // No token, a wrong token, and the right token in a form body (what a
    // cross-site form can send): each refused.
    let none = browser
        .http()
        .post(&lookup)
        .json(&body)
        .send()
        .await
        .unwrap();
    let wrong = browser
        .http()
        .post(&lookup)
        .header("x-csrf-token", "x".repeat(43))
        .json(&body)
        .send()
        .await
        .unwrap();
    let form = browser
        .http()
        .post(&lookup)
        .header("x-csrf-token", &ui.csrf)
        .form(&[("user_code", codes["user_code"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    for response in [none, wrong, form] {
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"], "csrf");
    }
    // Another browser's token is not this one's.
    let other = Browser::new();
    let other_ui = Ui::open(&server, &other).await;
    let stolen = browser
        .http()
        .post(&lookup)
        .header("x-csrf-token", &other_ui.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(stolen.status(), StatusCode::FORBIDDEN);

    // Nothing was looked up or spent: the right call still works.
    let (status, found) = ui.lookup(&codes).await;
    assert_eq!(status, StatusCode::OK, "{found}");

    // Approval without the token: refused, and the device still waits.
    let handle = found["handle"].as_str().unwrap();
    let approve = browser
        .http()
        .post(server.url(&format!("/api/verification/requests/{handle}/approve")))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(approve.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        poll_raw(&server, TV, &codes).await.1["error"],
        "authorization_pending"
    );
}

#[tokio::test]
async fn answering_needs_sign_in_and_the_session_that_looked_the_code_up() {
    let server = Server::start(|_| {}).await;
    let codes = ask_raw(&server, TV, "profile").await;

    // Looking up works signed out, as on the code page; answering does not.
    let browser = Browser::new();
    let ui = Ui::open(&server, &browser).await;
    let (status, found) = ui.lookup(&codes).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let handle = found["handle"].as_str().unwrap().to_owned();
    let (status, refused) = ui
        .post(
            &format!("/api/verification/requests/{handle}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"], "login_required");

    // Another signed-in session cannot use the handle.
    let mallory = Browser::new();
    sign_in(&mallory, &server, "alice", "wonderland").await;
    let mallory_ui = Ui::open(&server, &mallory).await;
    let (status, _) = mallory_ui
        .post(
            &format!("/api/verification/requests/{handle}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    let (status, _) = mallory_ui
        .get(&format!("/api/verification/requests/{handle}"))
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(
        poll_raw(&server, TV, &codes).await.1["error"],
        "authorization_pending"
    );

    // Signed in, on the same session: denied, and the device hears it.
    sign_in(&browser, &server, "alice", "wonderland").await;
    let ui = Ui::open(&server, &browser).await;
    let (status, done) = ui
        .post(
            &format!("/api/verification/requests/{handle}/deny"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "denied");
    assert_eq!(
        poll_raw(&server, TV, &codes).await.1["error"],
        "access_denied"
    );
}

#[tokio::test]
async fn wrong_codes_are_answered_and_counted_as_on_the_code_page() {
    let server = Server::start(|_| {}).await;
    let browser = Browser::new();
    let ui = Ui::open(&server, &browser).await;
    let (status, malformed) = ui
        .post("/api/verification/lookup", json!({ "user_code": "12" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{malformed}");
    assert_eq!(malformed["error"], "malformed_code");
    let (status, bad_body) = ui
        .post("/api/verification/lookup", json!({ "code": "BCDF-GHJK" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad_body}");
    assert_eq!(bad_body["error"], "invalid_request");

    // Wrong codes until the network's budget is spent.
    let mut last = StatusCode::OK;
    for _ in 0..200 {
        let (status, answer) = ui
            .post(
                "/api/verification/lookup",
                json!({ "user_code": "BCDF-GHJK" }),
            )
            .await;
        last = status;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer["error"], "too_many_attempts");
            break;
        }
        assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
        assert_eq!(answer["error"], "not_found");
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_step_up_the_policy_asks_for_is_enforced() {
    let server = Server::start(|o| o.client_address = ClientAddress::ForwardedFor).await;
    // The device on one network, the person on another.
    let codes: Value = support::device_http_from("198.51.100.7")
        .post(server.url("/device_authorization"))
        .form(&[("client_id", "tv-app"), ("scope", "profile")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let browser = Browser::from_address("203.0.113.9");
    sign_in(&browser, &server, "alice", "wonderland").await;
    let ui = Ui::open(&server, &browser).await;
    let (status, found) = ui.lookup(&codes).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["proximity"], "different_network");
    assert_eq!(found["decision"], "step_up");
    let handle = found["handle"].as_str().unwrap();
    let approve = format!("/api/verification/requests/{handle}/approve");

    // Without the step-up, or with a wrong password: refused, still pending.
    for body in [
        json!({}),
        json!({ "own_device": true, "password": "not-it" }),
        json!({ "password": "wonderland" }),
    ] {
        let (status, refused) = ui.post(&approve, body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        assert_eq!(refused["error"], "step_up_required");
    }
    let pending = reqwest::Client::new()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", GRANT),
            ("client_id", "tv-app"),
            ("device_code", codes["device_code"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    let pending: Value = pending.json().await.unwrap();
    assert_eq!(pending["error"], "authorization_pending");

    // With it: approved.
    let (status, done) = ui
        .post(
            &approve,
            json!({ "own_device": true, "password": "wonderland" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "approved");
}

#[tokio::test]
async fn step_up_passwords_are_budgeted_per_account() {
    let clock = std::sync::Arc::new(device_grant::ManualClock::default());
    let server = Server::start({
        let clock = clock.clone();
        move |o| {
            o.client_address = ClientAddress::ForwardedFor;
            o.clock = clock;
            // Codes that outlive the budget's window.
            o.expires_in = time::Duration::minutes(30);
        }
    })
    .await;
    let codes: Value = support::device_http_from("198.51.100.7")
        .post(server.url("/device_authorization"))
        .form(&[("client_id", "tv-app"), ("scope", "profile")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Someone holding alice's session, on another network: the policy asks
    // for her password again, and each guess at it is one of 5 per 15 min.
    let browser = Browser::from_address("203.0.113.9");
    sign_in(&browser, &server, "alice", "wonderland").await;
    let ui = Ui::open(&server, &browser).await;
    let (_, found) = ui.lookup(&codes).await;
    assert_eq!(found["decision"], "step_up");
    let approve = format!(
        "/api/verification/requests/{}/approve",
        found["handle"].as_str().unwrap()
    );
    let guess = |password: &str| json!({ "own_device": true, "password": password });
    for attempt in 0..5 {
        let (status, refused) = ui.post(&approve, guess(&format!("guess-{attempt}"))).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
        assert_eq!(refused["error"], "step_up_required");
    }
    // Spent: not even the right password is checked until the window ends,
    // and the request stays pending.
    for password in ["guess-5", "wonderland"] {
        let response = browser
            .http()
            .post(server.url(&approve))
            .header("x-csrf-token", &ui.csrf)
            .json(&guess(password))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: i64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=900).contains(&wait), "{wait}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "too_many_attempts");
    }
    let (_, pending) = poll_raw(&server, TV, &codes).await;
    assert_eq!(pending["error"], "authorization_pending");

    // The window over, alice's own password approves.
    clock.advance(time::Duration::minutes(15));
    let (status, done) = ui.post(&approve, guess("wonderland")).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "approved");
}
