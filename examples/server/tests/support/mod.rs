//! What the end-to-end tests share: the example server's app run in-process on
//! an ephemeral port, a third-party OAuth client (the `oauth2` crate) for the
//! device, and a cookie-carrying, form-following HTTP "browser" for the person.
// Shared by several test binaries: `pub` for them, not for a public API.
#![allow(unreachable_pub)]
// Each test binary uses a different part of this module and of the app.
#![allow(dead_code)]

pub use device_grant_example_server as app;
pub mod browser;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use device_grant::RecordedEvents;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, DeviceAuthorizationUrl, EndpointNotSet, EndpointSet, TokenUrl,
};

/// The example server, serving on 127.0.0.1 at a port the OS chose.
pub struct Server {
    /// `http://127.0.0.1:PORT`, also the issuer.
    pub base: String,
    /// Every audit event the grant recorded.
    pub events: Arc<RecordedEvents>,
    /// How many token responses this instance minted for device codes.
    pub issued: Arc<AtomicUsize>,
    /// The app's handle: its live sessions.
    pub host: app::Host,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Starts the app with the defaults, changed by `configure` (a short
    /// interval, a manual clock…).
    pub async fn start(configure: impl FnOnce(&mut app::Options)) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let events = Arc::new(RecordedEvents::default());
        let mut options = app::Options::new(base.clone());
        options.events = Some(events.clone());
        let issued = options.issued.clone();
        configure(&mut options);
        let connections = options.connections;
        let (router, host) = app::build(options).unwrap();
        let task = tokio::spawn(app::serve(listener, router, connections));
        Server {
            base,
            events,
            issued,
            host,
            task,
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many token responses this instance minted for device codes.
    /// How many events of a kind this server recorded.
    pub fn count_events(&self, kind: impl Fn(&device_grant::EventKind) -> bool) -> usize {
        self.events
            .events()
            .iter()
            .filter(|e| kind(&e.kind))
            .count()
    }

    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

/// The device's OAuth client: both endpoints set.
pub type DeviceClient =
    BasicClient<EndpointNotSet, EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// A device client as a third party would configure it from the metadata.
pub fn device_client(server: &Server, id: &str, secret: Option<(&str, AuthType)>) -> DeviceClient {
    let client = BasicClient::new(ClientId::new(id.to_owned()))
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(server.url("/device_authorization")).unwrap(),
        )
        .set_token_uri(TokenUrl::new(server.url("/token")).unwrap());
    match secret {
        Some((secret, auth_type)) => client
            .set_client_secret(ClientSecret::new(secret.to_owned()))
            .set_auth_type(auth_type),
        None => client,
    }
}

/// The device's HTTP client. No redirects, as the `oauth2` crate advises; a
/// user agent that the consent page should show.
pub fn device_http() -> oauth2::reqwest::Client {
    device_http_builder().build().unwrap()
}

/// The device's HTTP client as seen through a trusted proxy (the app's
/// `ClientAddress::ForwardedFor`) from `ip`: how a test puts the device on
/// another network than the person.
pub fn device_http_from(ip: &str) -> oauth2::reqwest::Client {
    let mut headers = oauth2::reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", ip.parse().unwrap());
    device_http_builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

fn device_http_builder() -> oauth2::reqwest::ClientBuilder {
    oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .user_agent("LivingRoomTV/2.1 (e2e test)")
}

/// A device authorization by the raw protocol: `client_id` (with `secret`, by
/// `client_secret_post`) asks for `scope`; the JSON answer.
pub async fn ask_raw(
    server: &Server,
    client: (&str, Option<&str>),
    scope: &str,
) -> serde_json::Value {
    let mut form = vec![("client_id", client.0), ("scope", scope)];
    if let Some(secret) = client.1 {
        form.push(("client_secret", secret));
    }
    let response = reqwest::Client::new()
        .post(server.url("/device_authorization"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// One poll of the token endpoint for `codes`: status and JSON.
pub async fn poll_raw(
    server: &Server,
    client: (&str, Option<&str>),
    codes: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut form = vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", client.0),
        ("device_code", codes["device_code"].as_str().unwrap()),
    ];
    if let Some(secret) = client.1 {
        form.push(("client_secret", secret));
    }
    let response = reqwest::Client::new()
        .post(server.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Signs `user` in on `browser` from the sign-in page; the page it lands on.
pub async fn sign_in(
    browser: &browser::Browser,
    server: &Server,
    user: &str,
    password: &str,
) -> browser::Page {
    let page = browser.get(&server.url("/login")).await;
    let form = page
        .form("/login")
        .fill("username", user)
        .fill("password", password);
    browser.submit(&page, &form, None).await
}

/// Types `codes`' user code on `browser`'s code page; the page it lands on.
pub async fn enter_code(
    browser: &browser::Browser,
    server: &Server,
    codes: &serde_json::Value,
) -> browser::Page {
    let page = browser.get(&server.url("/device")).await;
    let form = page
        .form("/device")
        .fill("user_code", codes["user_code"].as_str().unwrap());
    browser.submit(&page, &form, None).await
}

/// Alice signs in in a fresh browser, types `codes`' user code and approves.
pub async fn alice_approves(server: &Server, codes: &serde_json::Value) {
    let browser = browser::Browser::new();
    sign_in(&browser, server, "alice", "wonderland").await;
    let consent = enter_code(&browser, server, codes).await;
    assert_eq!(consent.path(), "/consent", "{}", consent.html);
    let form = consent.form("/consent");
    let done = browser
        .submit(&consent, &form, Some(("decision", "approve")))
        .await;
    assert_eq!(done.status, 200, "{}", done.html);
}

/// The whole flow by the raw protocol: `client` asks for `scope`, alice
/// approves in a fresh browser, and the device's token response.
pub async fn approved_tokens(
    server: &Server,
    client: (&str, Option<&str>),
    scope: &str,
) -> serde_json::Value {
    let codes = ask_raw(server, client, scope).await;
    alice_approves(server, &codes).await;
    let (status, tokens) = poll_raw(server, client, &codes).await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}
