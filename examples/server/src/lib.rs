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
//! - `pages`, `session`, `views`: the verification pages a person walks through;
//! - `security`: the sign-in budgets, the network a budget is keyed by, and
//!   the security log.

mod accounts;
mod address;
pub mod audit;
pub mod cli;
mod headless;
mod jwt;
mod media;
mod oauth;
mod pages;
mod security;
mod session;
mod tokens;
mod views;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::StatusCode;
use axum::routing::{get, post};
use device_grant::store::{AttemptLimiter, Store};
use device_grant::{
    Budgets, Clock, Config, ConfigError, ConsentPolicy, DeviceGrant, DpopConfig, DpopNonces,
    DpopVerifier, Event, EventKind, EventSink, Interval, MemoryLimiter, MemoryProofReplay,
    MemoryStore, NetworkPolicy, PolicyMode, PollingRules, SystemClock, UserCodeKey,
};
use time::Duration;
use tower::Layer as _;
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutLayer};

pub use address::ClientAddress;

/// How to build the server.
#[allow(missing_debug_implementations)] // holds trait objects
pub struct Options {
    /// The issuer URL, without a trailing slash: every endpoint hangs off it.
    pub issuer: String,
    /// How long device and user codes live (`expires_in`).
    pub expires_in: Duration,
    /// The polling interval sent to devices, in seconds.
    pub interval: u32,
    /// Where device authorizations live; see [`open_store`]. Instances that
    /// share it serve the same device grants.
    pub store: Arc<dyn Store>,
    /// Counts wrong user codes and device authorizations; shared along with the
    /// store, so that the budgets hold across instances.
    pub limiter: Arc<dyn AttemptLimiter>,
    /// The secret user codes are hashed with. Instances sharing a store must
    /// share it too (a code entered on one is looked up by its hash); the default
    /// is a fresh random key, right for a single instance.
    pub user_code_key: UserCodeKey,
    /// Whether the crate's abuse budgets on device authorizations (per source
    /// address, per client, pending per client) apply. `false` only for load
    /// tests: the wrong-code budgets stay on either way.
    pub rate_limits: bool,
    /// What the consent page does with proximity and age (RFC 8628 §5.4).
    /// Default [`NetworkPolicy::default`]: a step-up for a different network or
    /// a request older than five minutes.
    pub consent_policy: Arc<dyn ConsentPolicy>,
    /// Whether the policy's decisions are enforced or only reported in the
    /// audit events (`--policy report-only`). Default: enforced.
    pub policy_mode: PolicyMode,
    /// Where a request's client address comes from: the connection's peer
    /// (default) or a trusted proxy's `X-Forwarded-For`.
    pub client_address: ClientAddress,
    /// How often to delete records past their retention. The memory store
    /// sweeps itself (default `None`); a shared store needs it from some
    /// instance (any, or all: purging is idempotent).
    pub purge_every: Option<std::time::Duration>,
    /// The time every expiry is measured with (tests pass a `ManualClock`).
    pub clock: Arc<dyn Clock>,
    /// How long access tokens live.
    pub access_token_lifetime: Duration,
    /// Another sink that sees every audit event (tests use `RecordedEvents`).
    pub events: Option<Arc<dyn EventSink>>,
    /// Counts the token responses this instance minted for device codes (the
    /// crate calls the issuer once per redeemed code): read by tests and by
    /// whoever wants a metric.
    pub issued: Arc<AtomicUsize>,
    /// The most sessions kept at once; past it, the least used go first.
    pub max_sessions: u64,
    /// DPoP server nonces (RFC 9449 §8) at the token endpoint: `None` (the
    /// default) accepts proofs without one. Instances behind one name must
    /// share the nonces' key.
    pub dpop_nonces: Option<DpopNonces>,
    /// Binds a device code to the DPoP key of a proof sent with its device
    /// authorization request (`DpopConfig::bind_device_codes`): its polls
    /// then need a proof of that key. Off by default.
    pub dpop_bind_device_codes: bool,
    /// Connection limits, for [`serve`].
    pub connections: Connections,
}

/// How long a connection may take, and how many may be open: what keeps
/// silent, trickling and slow clients from holding the server.
#[derive(Debug, Clone, Copy)]
pub struct Connections {
    /// Waiting for a request's head (hyper's `header_read_timeout`). hyper
    /// starts it whenever the connection waits for a request, so it is also
    /// the idle keep-alive timeout.
    pub header_read: std::time::Duration,
    /// Waiting for each piece of a request body (tower-http).
    pub request_body: std::time::Duration,
    /// A whole request, body included (tower-http): a body trickled just fast
    /// enough for the previous limit still ends here.
    pub request: std::time::Duration,
    /// A write to the client that makes no progress: a client that stops
    /// reading its answers (a full receive window, kept open by the kernel's
    /// probes) is dropped after this, rather than holding its slot for good.
    pub response_write: std::time::Duration,
    /// Open connections at once; one more is closed at once. Keep it under the
    /// process's descriptor limit (`ulimit -n`).
    pub max: usize,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_read: std::time::Duration::from_secs(10),
            request_body: std::time::Duration::from_secs(10),
            request: std::time::Duration::from_secs(30),
            response_write: std::time::Duration::from_secs(10),
            max: 1024,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// For people: one readable line per event.
    Text,
    /// For machines: one JSON object per line (`fields.event` names security
    /// events).
    Json,
}

/// The subscriber `main` installs, writing to `writer` in `format`.
pub fn log_subscriber<W>(format: LogFormat, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(builder.json().finish()),
    }
}

/// What a running app lets its host (and the tests) observe.
// `main` keeps none of it; the tests read the session count.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub struct Host {
    sessions: session::Store,
    clients: Arc<accounts::Clients>,
}

#[allow(dead_code)]
impl Host {
    /// How many sessions are kept now.
    pub async fn live_sessions(&self) -> u64 {
        self.sessions.live().await
    }

    /// Registers the client `id` for the device grant, or withdraws it, as
    /// an administrator would; `false` if there is no such client.
    pub fn set_device_grant(&self, id: &str, on: bool) -> bool {
        self.clients.set_device_grant(id, on)
    }
}

impl Options {
    /// The defaults: 10-minute codes, a 5 s interval, the memory store and
    /// limiter, a random user-code key, rate limits on, the network consent
    /// policy, peer addresses, the system clock and one-hour access tokens.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into().trim_end_matches('/').to_owned(),
            expires_in: Duration::minutes(10),
            interval: 5,
            store: Arc::new(MemoryStore::new()),
            limiter: Arc::new(MemoryLimiter::new()),
            user_code_key: UserCodeKey::generate(),
            rate_limits: true,
            consent_policy: Arc::new(NetworkPolicy::default()),
            policy_mode: PolicyMode::Enforce,
            client_address: ClientAddress::Peer,
            purge_every: None,
            clock: Arc::new(SystemClock),
            access_token_lifetime: Duration::hours(1),
            events: None,
            issued: Arc::default(),
            max_sessions: 100_000,
            dpop_nonces: None,
            dpop_bind_device_codes: false,
            connections: Connections::default(),
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
    /// The store specification names no store this server knows.
    #[error(
        "unknown store `{0}`: expected `memory`, `redis://HOST[:PORT][/DB]`, \
         `redis+cluster://HOST:PORT[,HOST:PORT…]` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB`"
    )]
    UnknownStore(String),
    /// The shared store could not be reached or set up. (The adapters' errors
    /// never show the URL's password.)
    #[error("cannot open the store: {0}")]
    Store(#[from] device_grant::BackendError),
    /// The issuer URL does not make an absolute `http(s)` token endpoint URL.
    #[error("the issuer must be an absolute http(s) URL without query or fragment")]
    Issuer,
}

/// A store and the limiter that goes with it.
pub struct Storage {
    /// Where device authorizations live.
    pub store: Arc<dyn Store>,
    /// The attempt limiter, shared wherever the store is.
    pub limiter: Arc<dyn AttemptLimiter>,
    /// Whether other instances can share it (everything but `memory`).
    pub shared: bool,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// Opens the store named by `spec`: `memory` (this process only), or a shared
/// one, `redis://…` or `redis+cluster://…` (device-grant-redis, one server
/// or a Redis Cluster, keys under the prefix `device-grant`)
/// or `postgres://…` (device-grant-postgres, schema `public`, migrated), with
/// its limiter, so that user-code guesses and device authorizations are
/// counted across instances.
pub async fn open_store(spec: &str) -> Result<Storage, SetupError> {
    let scheme = spec.split_once("://").map(|(scheme, _)| scheme);
    let (store, limiter): (Arc<dyn Store>, Arc<dyn AttemptLimiter>) = match scheme {
        None if spec == "memory" => {
            return Ok(Storage {
                store: Arc::new(MemoryStore::new()),
                limiter: Arc::new(MemoryLimiter::new()),
                shared: false,
            });
        }
        Some("redis" | "rediss" | "redis+cluster" | "rediss+cluster") => {
            let store = device_grant_redis::RedisStore::connect(spec, "device-grant").await?;
            let limiter = store.limiter();
            (Arc::new(store), Arc::new(limiter))
        }
        Some("postgres" | "postgresql") => {
            let store = device_grant_postgres::PostgresStore::connect(spec).await?;
            let limiter = store.limiter();
            (Arc::new(store), Arc::new(limiter))
        }
        // Only the scheme: the rest of a URL may hold a password.
        Some(scheme) => return Err(SetupError::UnknownStore(format!("{scheme}://…"))),
        None => return Err(SetupError::UnknownStore(spec.to_owned())),
    };
    Ok(Storage {
        store,
        limiter,
        shared: true,
    })
}

/// The abuse budgets: the crate's defaults, or with `rate_limits` off, none on
/// device authorizations (a load test from one address needs thousands). The
/// wrong-code budgets stay: they guard people's codes, not the server's load.
fn budgets(rate_limits: bool) -> Budgets {
    let defaults = Budgets::default();
    if rate_limits {
        return defaults;
    }
    Budgets {
        authorizations_per_source: None,
        authorizations_per_wide_source: None,
        authorizations_per_client: None,
        pending_per_client: None,
        pending_total: None,
        ..defaults
    }
}

/// Everything the handlers share.
pub(crate) struct App {
    issuer: String,
    grant: DeviceGrant,
    /// The grant's limiter, also counting failed sign-ins.
    limiter: Arc<dyn AttemptLimiter>,
    tokens: Arc<tokens::Tokens>,
    signer: Arc<jwt::Signer>,
    users: accounts::Users,
    views: views::Views,
    clock: Arc<dyn Clock>,
    cookies: session::Names,
    /// Signs the "known browser" cookie. Per process: on several instances a
    /// browser is known to the one it signed in on.
    cookie_key: Arc<cookie::Key>,
    key_hasher: Arc<security::KeyHasher>,
    client_address: ClientAddress,
    /// DPoP proofs at `/api/me` (RFC 9449 §7): the rules and the used proofs.
    /// Per process, like the token tables.
    dpop: DpopVerifier,
    api_proofs: Arc<MemoryProofReplay>,
}

type State = axum::extract::State<Arc<App>>;

/// Builds the server's router.
pub fn router(options: Options) -> Result<Router, SetupError> {
    build(options).map(|(router, _)| router)
}

/// Builds the server's router and handle.
pub fn build(options: Options) -> Result<(Router, Host), SetupError> {
    let interval = Interval::from_secs(options.interval).ok_or(SetupError::Interval)?;
    // The crate lets a poll come up to `leeway` early; it must stay below the
    // interval, so a 1 s interval (handy in demos and tests) gets none.
    let leeway = if interval.secs() > 1 {
        Duration::seconds(1)
    } else {
        Duration::ZERO
    };
    let mut config = Config::builder(
        format!("{}/device", options.issuer),
        // Instances sharing a store must share this key.
        options.user_code_key,
    );
    if options.expires_in < Duration::seconds(30) {
        // Black-box tests of a server need codes that expire in seconds;
        // `main` warns when it is asked for such a lifetime.
        config = config.danger_allow_short_lifetimes_for_tests();
    }
    let config = config
        .lifetime(options.expires_in)
        .interval(interval)
        .polling(PollingRules {
            leeway,
            ..PollingRules::default()
        })
        .budgets(budgets(options.rate_limits))
        .build()?;

    let signer = Arc::new(jwt::Signer::generate());
    let tokens = Arc::new(tokens::Tokens::new(
        options.issuer.clone(),
        options.clock.clone(),
        options.access_token_lifetime,
        signer.clone(),
        options.issued,
    ));
    let key_hasher = Arc::new(security::KeyHasher::generate());
    let events = Arc::new(AuditEvents {
        tokens: tokens.clone(),
        also: options.events,
    });
    // DPoP at the token endpoint: tokens bound to the key of the proof the
    // device sends. The used proofs are remembered per process: several
    // instances behind one name would need a shared `ProofReplay`.
    let dpop = DpopVerifier::new();
    let mut token_dpop = DpopConfig::new(
        &format!("{}/token", options.issuer),
        Arc::new(MemoryProofReplay::new()),
    )
    .map_err(|_| SetupError::Issuer)?
    .verifier(dpop.clone());
    if let Some(nonces) = options.dpop_nonces {
        token_dpop = token_dpop.nonces(nonces);
    }
    if options.dpop_bind_device_codes {
        token_dpop = token_dpop
            .bind_device_codes(&format!("{}/device_authorization", options.issuer))
            .map_err(|_| SetupError::Issuer)?;
    }
    let clients = Arc::new(accounts::clients());
    let grant = DeviceGrant::builder(config, clients.clone(), tokens.clone())
        .dpop(token_dpop)
        .store(options.store)
        .limiter(options.limiter.clone())
        .clock(options.clock.clone())
        .events(events)
        .consent_policy(options.consent_policy)
        .policy_mode(options.policy_mode)
        .authorization_detail_types(media::detail_types())
        .build();
    if let Some(every) = options.purge_every {
        spawn_purge(grant.clone(), every);
    }

    let cookies = session::Names::new(options.issuer.starts_with("https://"));
    let sessions = session::Store::new(options.max_sessions);
    let app = Arc::new(App {
        issuer: options.issuer,
        grant,
        limiter: options.limiter,
        tokens,
        signer,
        users: accounts::Users::demo(),
        views: views::Views::new(),
        clock: options.clock,
        cookie_key: Arc::new(cookie::Key::generate()),
        key_hasher,
        client_address: options.client_address,
        cookies: cookies.clone(),
        dpop,
        api_proofs: Arc::new(MemoryProofReplay::new()),
    });

    let limits = options.connections;
    let host = Host {
        sessions: sessions.clone(),
        clients,
    };
    // The pages a person walks through: the only routes with sessions and
    // cookies. The OAuth endpoints authenticate each request on its own and
    // never read a session, so they do not pay for one.
    let pages = Router::new()
        .route("/", get(pages::home))
        .route("/device", get(pages::enter_code).post(pages::submit_code))
        .route("/login", get(pages::sign_in_form).post(pages::sign_in))
        .route("/logout", post(pages::sign_out))
        .route("/consent", get(pages::consent).post(pages::decide))
        .route("/api/verification/session", get(headless::session))
        .route("/api/verification/lookup", post(headless::lookup))
        .route(
            "/api/verification/requests/{handle}",
            get(headless::request),
        )
        .route(
            "/api/verification/requests/{handle}/approve",
            post(headless::approve),
        )
        .route(
            "/api/verification/requests/{handle}/deny",
            post(headless::deny),
        )
        .layer(session::layer(sessions, &cookies));
    let router = Router::new()
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/jwks.json", get(oauth::jwks))
        .route("/device_authorization", post(oauth::device_authorization))
        .route("/token", post(oauth::token))
        .route("/api/me", get(oauth::me))
        .route("/static/style.css", get(views::stylesheet))
        .merge(pages)
        // What every request gets, as one layer (outermost first): axum boxes
        // each `Router::layer` around every route, so one stack costs one box.
        .layer(
            tower::ServiceBuilder::new()
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    limits.request,
                ))
                .layer(RequestBodyTimeoutLayer::new(limits.request_body))
                // Every form and OAuth request here is a few hundred bytes.
                .layer(DefaultBodyLimit::max(MAX_BODY))
                .layer(axum::middleware::map_response(views::security_headers)),
        )
        .with_state(app);
    Ok((router, host))
}

/// The largest request body read.
const MAX_BODY: usize = 16 * 1024;

/// Serves `router` on `listener` with hyper's HTTP/1 server, handing each
/// request its peer address (the device's and the approver's, compared at
/// consent; the key of the budgets). At most `limits.max` connections are open
/// at once: one more is closed on arrival, rather than left to wait in the
/// backlog while descriptors run out.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: Connections,
) -> std::io::Result<()> {
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read)
        // The largest request head read (the default is about 400 KB).
        .max_buf_size(MAX_HEAD);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of descriptors, or the peer gone before accept: this
            // connection is lost, the listener is not.
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::warn!(
                event = "connection_refused",
                max = limits.max,
                "too many connections"
            );
            drop(stream);
            continue;
        };
        // The peer address as an extension of each request, as axum's own
        // `into_make_service_with_connect_info` hands it over.
        let service = hyper_util::service::TowerToHyperService::new(
            axum::Extension(ConnectInfo(peer)).layer(router.clone()),
        );
        let mut stream = tokio_io_timeout::TimeoutStream::new(stream);
        stream.set_write_timeout(Some(limits.response_write));
        let connection =
            http.serve_connection(hyper_util::rt::TokioIo::new(Box::pin(stream)), service);
        tokio::spawn(async move {
            // A client that goes away mid-request is not the server's error.
            let _ = connection.await;
            drop(permit);
        });
    }
}

/// The largest request head (request line and headers) read.
const MAX_HEAD: usize = 16 * 1024;

/// Purges expired records every `every`, for as long as the process runs
/// (when called inside a Tokio runtime, as `main` and the tests are).
fn spawn_purge(grant: DeviceGrant, every: std::time::Duration) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        eprintln!("no async runtime: expired records will not be purged");
        return;
    };
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            if let Err(error) = grant.purge_expired().await {
                // Backend errors name the store, never its password.
                eprintln!("purging expired device authorizations failed: {error}");
            }
        }
    });
}

/// The audit sink: revokes the tokens of a replayed device code, as the crate's
/// `EventKind::Replay` asks (the code may have been stolen), and passes every event
/// on to the optional extra sink.
struct AuditEvents {
    tokens: Arc<tokens::Tokens>,
    also: Option<Arc<dyn EventSink>>,
}

impl EventSink for AuditEvents {
    fn record(&self, event: &Event) {
        let id = event.id.map(|id| id.to_string()).unwrap_or_default();
        let client_id = event.client_id.as_ref().map_or("", |c| c.as_str());
        match &event.kind {
            EventKind::Replay => {
                tracing::warn!(
                    event = "device_code_replayed",
                    authorization = %id,
                    client_id,
                    "a redeemed device code was presented again; its tokens are revoked"
                );
                if let Some(id) = event.id {
                    self.tokens.revoke_grant(id);
                }
            }
            // A device code presented without its PKCE verifier: refused, and
            // nothing was issued, so there is nothing to revoke; worth an alert.
            EventKind::VerifierRefused { reason } => tracing::warn!(
                event = "code_verifier_refused",
                authorization = %id,
                client_id,
                %reason,
                "a device code was presented without its PKCE code verifier"
            ),
            // The crate's own budgets: it hands over the budget and a keyed
            // digest of the key, never the key.
            EventKind::LimiterTripped { budget, key } => tracing::warn!(
                event = "limiter_tripped",
                key_family = budget.as_str(),
                key_hash = %key,
                "budget spent"
            ),
            EventKind::Refused => tracing::warn!(
                event = "policy_refused",
                authorization = %id,
                client_id,
                step = event.policy.map_or("", |p| p.step.as_str()),
                "a step of the device grant was refused"
            ),
            _ => {}
        }
        if let Some(sink) = &self.also {
            sink.record(event);
        }
    }
}
