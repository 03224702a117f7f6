//! The device example (`examples/device`) against the example server: what it
//! shows, and that it ends acting for the person who approved.

mod support;

use device_grant_example_device as flow;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::Server;
use support::browser::Browser;

/// The device's screen, readable while it runs.
#[derive(Clone, Default)]
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until the screen shows the link with the code in it.
    async fn complete_uri(&self) -> String {
        for _ in 0..200 {
            if let Some(line) = self
                .text()
                .lines()
                .find_map(|l| l.strip_prefix("Or open: "))
            {
                return line.trim().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the device never showed its link:\n{}", self.text());
    }
}

fn options(server: &Server, client: &str, secret: Option<&str>) -> flow::Options {
    flow::Options {
        server: server.base.clone(),
        client_id: client.to_owned(),
        client_secret: secret.map(str::to_owned),
        scope: Some("profile offline_access".to_owned()),
    }
}

async fn answer(link: &str, decision: &str) {
    let browser = Browser::new();
    let page = browser.get(link).await;
    let page = browser.submit(&page, &page.form("/device"), None).await;
    let form = page
        .form("/login")
        .fill("username", "alice")
        .fill("password", "wonderland");
    let consent = browser.submit(&page, &form, None).await;
    let done = browser
        .submit(
            &consent,
            &consent.form("/consent"),
            Some(("decision", decision)),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
}

#[tokio::test]
async fn the_device_shows_the_code_and_acts_for_the_person_who_approved() {
    let server = Server::start(|o| o.interval = 1).await;
    // The device sends a PKCE challenge whenever the metadata offers S256;
    // `cli` refuses to serve it otherwise.
    for (client, secret) in [
        ("tv-app", None),
        ("cli", None),
        ("printer", Some("printer-secret")),
    ] {
        let screen = Screen::default();
        let options = options(&server, client, secret);
        let device = tokio::spawn({
            let mut screen = screen.clone();
            async move { flow::run(&options, &mut screen).await }
        });
        let link = screen.complete_uri().await;
        let shown = screen.text();
        assert!(
            shown.contains(&format!("go to:\n\n    {}/device\n", server.base)),
            "{shown}"
        );
        // The code, spaced out in the frame, is the one in the link.
        let code = link.rsplit_once("user_code=").unwrap().1;
        let spaced: Vec<String> = code.chars().map(String::from).collect();
        assert!(shown.contains(&spaced.join(" ")), "{shown}");
        assert!(
            shown.contains('▀') || shown.contains('▄'),
            "a QR code: {shown}"
        );

        answer(&link, "approve").await;
        let me = device.await.unwrap().expect("the device signs in");
        assert_eq!((me.sub.as_str(), me.client_id.as_str()), ("alice", client));
        assert_eq!(me.scope, "offline_access profile");
        assert!(screen.text().contains("the code expires in"), "a countdown");
    }
}

#[tokio::test]
async fn the_device_reports_a_denial() {
    let server = Server::start(|o| o.interval = 1).await;
    let screen = Screen::default();
    let options = options(&server, "tv-app", None);
    let device = tokio::spawn({
        let mut screen = screen.clone();
        async move { flow::run(&options, &mut screen).await }
    });
    answer(&screen.complete_uri().await, "deny").await;
    let error = device.await.unwrap().expect_err("a denial");
    assert!(matches!(error, flow::FlowError::Denied), "{error}");
}

#[tokio::test]
async fn the_device_reports_a_refusal_clearly() {
    let server = Server::start(|_| {}).await;
    let mut screen = Screen::default();
    let wrong = options(&server, "printer", Some("wrong-secret"));
    let error = flow::run(&wrong, &mut screen).await.expect_err("refused");
    assert!(error.to_string().contains("invalid_client"), "{error}");
    let unknown_scope = flow::Options {
        scope: Some("admin".to_owned()),
        ..options(&server, "tv-app", None)
    };
    let error = flow::run(&unknown_scope, &mut screen)
        .await
        .expect_err("refused");
    assert!(error.to_string().contains("invalid_scope"), "{error}");
}
