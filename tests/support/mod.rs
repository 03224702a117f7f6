//! What the end-to-end tests share: the example server's app run in-process on
//! an ephemeral port, a third-party OAuth client (the `oauth2` crate) for the
//! device, and a cookie-carrying, form-following HTTP "browser" for the person.

// Each test binary uses a different part of this module and of the app.
#![allow(dead_code)]

#[path = "../../examples/server/app/mod.rs"]
pub mod app;
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
        let router = app::router(options).unwrap();
        let task = tokio::spawn(app::serve(listener, router));
        Server {
            base,
            events,
            issued,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// How many token responses this instance minted for device codes.
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
