//! Security events of the example server as JSON log lines: a spent
//! wrong-code budget, a throttled sign-in, a replayed device code, a reused
//! refresh token and a failed step-up, each with no secret and no raw limiter
//! key in it.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::app::{ClientAddress, LogFormat};
use support::browser::Browser;
use support::{Server, enter_code, poll_raw, sign_in};

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// One thread: the server's tasks log through this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn security_events_are_json_lines_without_secrets() {
    let lines = Lines::default();
    let writer = lines.clone();
    let _guard = tracing::subscriber::set_default(support::app::log_subscriber(
        LogFormat::Json,
        move || writer.clone(),
    ));
    let server = Server::start(|o| {
        o.client_address = ClientAddress::ForwardedFor;
        o.interval = 1;
    })
    .await;
    let tv = ("tv-app", None);

    // Wrong codes past the default budget: the budget of this address trips.
    let guesser = Browser::from_address("203.0.113.5");
    for _ in 0..=device_grant::Budgets::default()
        .wrong_codes_per_key
        .attempts
    {
        let page = guesser.get(&server.url("/device")).await;
        let form = page.form("/device").fill("user_code", "BCDF-GHJK");
        guesser.submit(&page, &form, None).await;
    }
    // Eleven wrong passwords: sign-in is throttled.
    for _ in 0..11 {
        sign_in(&guesser, &server, "alice", "not-her-password").await;
    }
    // A device on another network, and alice allows without the step-up.
    let device = reqwest::Client::builder()
        .default_headers(
            [(
                "x-forwarded-for".parse().unwrap(),
                "192.0.2.50".parse().unwrap(),
            )]
            .into_iter()
            .collect(),
        )
        .build()
        .unwrap();
    let far: Value = device
        .post(server.url("/device_authorization"))
        .form(&[("client_id", "tv-app"), ("scope", "profile")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let alice = Browser::from_address("198.51.100.7");
    sign_in(&alice, &server, "alice", "wonderland").await;
    let consent = enter_code(&alice, &server, &far).await;
    let form = consent.form("/consent").fill("password", "wrong-again");
    let refused = alice
        .submit(&consent, &form, Some(("decision", "approve")))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.html);

    // A near device approved, redeemed, replayed; its refresh token reused.
    let beside = |ip: &str| {
        reqwest::Client::builder()
            .default_headers(
                [("x-forwarded-for".parse().unwrap(), ip.parse().unwrap())]
                    .into_iter()
                    .collect(),
            )
            .build()
            .unwrap()
    };
    let near: Value = beside("198.51.100.8")
        .post(server.url("/device_authorization"))
        .form(&[("client_id", "tv-app"), ("scope", "profile offline_access")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let consent = enter_code(&alice, &server, &near).await;
    let form = consent.form("/consent");
    alice
        .submit(&consent, &form, Some(("decision", "approve")))
        .await;
    let (status, tokens) = poll_raw(&server, tv, &near).await;
    assert_eq!(status, 200, "{tokens}");
    let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
    let http = reqwest::Client::new();
    for _ in 0..2 {
        http.post(server.url("/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("client_id", "tv-app"),
                ("refresh_token", &refresh_token),
            ])
            .send()
            .await
            .unwrap();
    }
    assert_eq!(poll_raw(&server, tv, &near).await.0, 400);

    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    let events: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let find = |name: &str| {
        events
            .iter()
            .find(|e| e["fields"]["event"] == name)
            .unwrap_or_else(|| panic!("no {name} event in:\n{text}"))
    };
    let tripped = find("limiter_tripped");
    assert_eq!(tripped["fields"]["key_family"], "wrong_codes_per_key");
    assert!(
        tripped["fields"]["key_hash"]
            .as_str()
            .is_some_and(|h| h.len() >= 16)
    );
    let throttled = find("sign_in_throttled");
    assert_eq!(throttled["fields"]["key_family"], "login:net");
    find("step_up_failed");
    find("device_code_replayed");
    find("refresh_token_reused");
    for secret in [
        "203.0.113.5",
        "not-her-password",
        "wrong-again",
        "wonderland",
        near["user_code"].as_str().unwrap(),
        near["device_code"].as_str().unwrap(),
        far["user_code"].as_str().unwrap(),
        &refresh_token,
        tokens["access_token"].as_str().unwrap(),
    ] {
        assert!(!text.contains(secret), "the log holds {secret:?}:\n{text}");
    }
}
