//! The example authorization server, as a module of its own: [`router`] builds
//! the whole axum app from [`Options`], so that `main.rs` serves it on a port and
//! the end-to-end tests run the very same app in-process.
//!
//! Every piece the crate leaves to its host is wired here, in plain sight:
//! - `accounts`: the registered clients and the people who can sign in;
//! - `tokens`: the `TokenIssuer` (access, refresh and ID tokens) and the
//!   `refresh_token` grant;
//! - `jwt`: the key ID tokens are signed with, published at `/jwks.json`;
//! - `oauth`: the JSON endpoints (metadata, device authorization, token, API);
//! - `pages`, `session`, `views`: the verification pages a person walks through.

mod accounts;
mod jwt;
mod oauth;
mod pages;
mod session;
mod tokens;
mod views;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use device_grant::{
    Clock, Config, ConfigError, DeviceGrant, Event, EventSink, Interval, MemoryStore, PollingRules,
    Store, SystemClock, UserCodeKey,
};
use time::Duration;

/// How to build the server.
pub struct Options {
    /// The issuer URL, without a trailing slash: every endpoint hangs off it.
    pub issuer: String,
    /// How long device and user codes live (`expires_in`).
    pub expires_in: Duration,
    /// The polling interval sent to devices, in seconds.
    pub interval: u32,
    /// Where device authorizations live; see [`open_store`].
    pub store: Arc<dyn Store>,
    /// The time every expiry is measured with (tests pass a `ManualClock`).
    pub clock: Arc<dyn Clock>,
    /// How long access tokens live.
    pub access_token_lifetime: Duration,
    /// Another sink that sees every audit event (tests use `RecordedEvents`).
    pub events: Option<Arc<dyn EventSink>>,
}

impl Options {
    /// The defaults: 10-minute codes, a 5 s interval, the memory store, the system
    /// clock and one-hour access tokens.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            expires_in: Duration::minutes(10),
            interval: 5,
            store: Arc::new(MemoryStore::new()),
            clock: Arc::new(SystemClock),
            access_token_lifetime: Duration::hours(1),
            events: None,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The grant's configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--interval 0`.
    #[error("the interval must be at least 1 second")]
    Interval,
    /// The store specification names no store this build knows.
    #[error("unknown store `{0}`: this server knows `memory`")]
    UnknownStore(String),
}

/// Opens the store named by `spec`. One place, so that adding a shared store
/// (`redis://…`, `postgres://…`) is one more arm here.
pub fn open_store(spec: &str) -> Result<Arc<dyn Store>, SetupError> {
    match spec {
        "memory" => Ok(Arc::new(MemoryStore::new())),
        other => Err(SetupError::UnknownStore(other.to_owned())),
    }
}

/// Everything the handlers share.
pub(crate) struct App {
    issuer: String,
    grant: DeviceGrant,
    tokens: Arc<tokens::Tokens>,
    signer: Arc<jwt::Signer>,
    users: accounts::Users,
    sessions: session::Sessions,
    views: views::Views,
    clock: Arc<dyn Clock>,
    secure_cookies: bool,
}

type State = axum::extract::State<Arc<App>>;

/// Builds the server's router.
pub fn router(options: Options) -> Result<Router, SetupError> {
    let interval = Interval::from_secs(options.interval).ok_or(SetupError::Interval)?;
    // The crate lets a poll come up to `leeway` early; it must stay below the
    // interval, so a 1 s interval (handy in demos and tests) gets none.
    let leeway = if interval.secs() > 1 {
        Duration::seconds(1)
    } else {
        Duration::ZERO
    };
    let config = Config::builder(
        format!("{}/device", options.issuer),
        // A fresh key per start: user codes live minutes and this server keeps
        // them in memory. Instances sharing a store must share this key.
        UserCodeKey::generate(),
    )
    .lifetime(options.expires_in)
    .interval(interval)
    .polling(PollingRules {
        leeway,
        ..PollingRules::default()
    })
    .build()?;

    let signer = Arc::new(jwt::Signer::generate());
    let tokens = Arc::new(tokens::Tokens::new(
        options.issuer.clone(),
        options.clock.clone(),
        options.access_token_lifetime,
        signer.clone(),
    ));
    let events = Arc::new(AuditEvents {
        tokens: tokens.clone(),
        also: options.events,
    });
    let grant = DeviceGrant::builder(config, Arc::new(accounts::clients()), tokens.clone())
        .store(options.store)
        .clock(options.clock.clone())
        .events(events)
        .build();

    let app = Arc::new(App {
        secure_cookies: options.issuer.starts_with("https://"),
        issuer: options.issuer,
        grant,
        tokens,
        signer,
        users: accounts::Users::demo(),
        sessions: session::Sessions::default(),
        views: views::Views::new(),
        clock: options.clock,
    });

    Ok(Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/jwks.json", get(oauth::jwks))
        .route("/device_authorization", post(oauth::device_authorization))
        .route("/token", post(oauth::token))
        .route("/api/me", get(oauth::me))
        .route("/", get(pages::home))
        .route("/device", get(pages::enter_code).post(pages::submit_code))
        .route("/login", get(pages::sign_in_form).post(pages::sign_in))
        .route("/logout", post(pages::sign_out))
        .route("/consent", get(pages::consent).post(pages::decide))
        .route("/static/style.css", get(views::stylesheet))
        .layer(axum::middleware::map_response(views::security_headers))
        .with_state(app))
}

/// Serves `router` on `listener`, handing each request its peer address (shown
/// to the person at consent, and the key of the wrong-code limiter).
pub async fn serve(listener: tokio::net::TcpListener, router: Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// The audit sink: revokes the tokens of a replayed device code, as the crate's
/// `Event::Replay` asks (the code may have been stolen), and passes every event
/// on to the optional extra sink.
struct AuditEvents {
    tokens: Arc<tokens::Tokens>,
    also: Option<Arc<dyn EventSink>>,
}

impl EventSink for AuditEvents {
    fn record(&self, event: &Event) {
        if let Event::Replay { id, .. } = event {
            self.tokens.revoke_grant(*id);
        }
        if let Some(sink) = &self.also {
            sink.record(event);
        }
    }
}
