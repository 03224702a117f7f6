//! Sessions and cookies of the verification pages.
//!
//! - Sessions are tower-sessions', kept in a moka cache: bounded in number
//!   (the least useful go first when full), each forgotten 30 minutes after its
//!   last use, found by id in O(1). tower-sessions stores a session only once
//!   something is put in it, so looking at a page costs the server nothing.
//! - The CSRF token is a double-submit cookie: a random value in an `HttpOnly`
//!   cookie, echoed by every form. It needs no server state, so the first page
//!   of a visitor creates no session. Under https the cookies are `__Host-`
//!   prefixed (`Secure`, `Path=/`, no `Domain`), so that no other origin, not
//!   even a sibling subdomain, can plant a token of its choosing.
//! - A browser where someone signed in carries a signed "known browser" cookie
//!   naming the account, which spares it the per-account sign-in budget.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cookie::{Cookie, CookieJar, Key, SameSite};
use moka::future::Cache;
use subtle::ConstantTimeEq as _;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore, session_store};

use super::App;

/// Idle sessions are forgotten after this long.
const IDLE: time::Duration = time::Duration::minutes(30);

/// How long a browser stays "known" for an account after a sign-in.
const KNOWN_FOR: time::Duration = time::Duration::days(30);

/// The cookie names: `__Host-` prefixed when the issuer is https.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub session: &'static str,
    csrf: &'static str,
    known: &'static str,
    secure: bool,
}

impl Names {
    pub(crate) fn new(secure: bool) -> Self {
        if secure {
            Self {
                session: "__Host-sid",
                csrf: "__Host-csrf",
                known: "__Host-known",
                secure,
            }
        } else {
            Self {
                session: "sid",
                csrf: "csrf",
                known: "known",
                secure,
            }
        }
    }

    fn cookie(&self, name: &'static str, value: String) -> Cookie<'static> {
        Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(self.secure)
            .build()
    }
}

/// The session layer over `store`, with the cookie `names`.
pub(crate) fn layer(store: Store, names: &Names) -> SessionManagerLayer<Store> {
    SessionManagerLayer::new(store)
        .with_name(names.session)
        .with_secure(names.secure)
        .with_http_only(true)
        .with_same_site(tower_sessions::cookie::SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(IDLE))
}

/// The session table: a moka cache bounded to `max` sessions, each evicted at
/// its record's expiry.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    cache: Cache<Id, Record>,
}

impl Store {
    pub(crate) fn new(max: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max)
                .expire_after(UntilExpiry)
                .build(),
        }
    }

    /// How many sessions are kept, once moka has applied pending evictions.
    #[allow(dead_code)] // for `Host::live_sessions`
    pub(crate) async fn live(&self) -> u64 {
        self.cache.run_pending_tasks().await;
        self.cache.entry_count()
    }
}

#[async_trait::async_trait]
impl SessionStore for Store {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        // A fresh id is random (128 bits); a clash is redrawn, never merged.
        while self.cache.contains_key(&record.id) {
            record.id = Id::default();
        }
        self.cache.insert(record.id, record.clone()).await;
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.cache.insert(record.id, record.clone()).await;
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        Ok(self.cache.get(id).await)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.cache.invalidate(id).await;
        Ok(())
    }
}

/// Each session lives until its record's expiry, which tower-sessions moves on
/// at every use (`Expiry::OnInactivity`).
struct UntilExpiry;

impl UntilExpiry {
    fn left(record: &Record) -> std::time::Duration {
        (record.expiry_date - time::OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or_default()
    }
}

impl moka::Expiry<Id, Record> for UntilExpiry {
    fn expire_after_create(
        &self,
        _: &Id,
        record: &Record,
        _: std::time::Instant,
    ) -> Option<std::time::Duration> {
        Some(Self::left(record))
    }

    fn expire_after_update(
        &self,
        _: &Id,
        record: &Record,
        _: std::time::Instant,
        _: Option<std::time::Duration>,
    ) -> Option<std::time::Duration> {
        Some(Self::left(record))
    }
}

/// The request's cookies (the `cookie` crate parses them).
pub(crate) struct Cookies {
    jar: CookieJar,
    names: Names,
    key: Arc<Key>,
    /// The CSRF token pages put in their forms.
    csrf: String,
    /// Cookies to send back with the response.
    out: Vec<Cookie<'static>>,
}

impl FromRequestParts<Arc<App>> for Cookies {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<App>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::read(
            &parts.headers,
            &state.cookies,
            &state.cookie_key,
        ))
    }
}

impl Cookies {
    fn read(headers: &HeaderMap, names: &Names, key: &Arc<Key>) -> Self {
        let mut jar = CookieJar::new();
        for header in headers.get_all(COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            for cookie in Cookie::split_parse(header.to_owned()).flatten() {
                jar.add_original(cookie);
            }
        }
        let mut cookies = Self {
            jar,
            names: names.clone(),
            key: key.clone(),
            csrf: String::new(),
            out: Vec::new(),
        };
        match cookies.jar.get(names.csrf).map(|c| c.value().to_owned()) {
            Some(token) if token.len() >= 32 => cookies.csrf = token,
            _ => cookies.new_csrf(),
        }
        cookies
    }

    /// The token to put in this response's forms.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a form's `csrf` field is the token of this browser's cookie
    /// (only a page of this origin could have read it into the form).
    pub(crate) fn csrf_ok(&self, presented: &str) -> bool {
        let Some(cookie) = self.jar.get(self.names.csrf) else {
            return false;
        };
        !presented.is_empty() && bool::from(presented.as_bytes().ct_eq(cookie.value().as_bytes()))
    }

    /// Draws a new CSRF token: at sign-in and sign-out, so that a token read
    /// before is worth nothing after.
    pub(crate) fn new_csrf(&mut self) {
        self.csrf = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let cookie = self.names.cookie(self.names.csrf, self.csrf.clone());
        self.out.push(cookie);
    }

    /// Whether this browser signed in as `username` before.
    pub(crate) fn known_for(&self, username: &str) -> bool {
        self.jar
            .signed(&self.key)
            .get(self.names.known)
            .is_some_and(|c| c.value() == username)
    }

    /// Marks this browser as one `username` signs in on.
    pub(crate) fn remember(&mut self, username: &str) {
        let mut cookie = self.names.cookie(self.names.known, username.to_owned());
        cookie.set_max_age(KNOWN_FOR);
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key).add(cookie);
        self.out.extend(jar.delta().cloned());
    }

    /// Adds the cookies set on this request to `response`.
    pub(crate) fn apply(self, mut response: Response) -> Response {
        for cookie in self.out {
            if let Ok(value) = HeaderValue::from_str(&cookie.to_string()) {
                response.headers_mut().append(SET_COOKIE, value);
            }
        }
        response
    }
}
