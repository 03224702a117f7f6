//! Sessions of the verification pages: a random id in an `HttpOnly`,
//! `SameSite=Lax` cookie, and the state behind it kept server-side. Each session
//! has a CSRF token that every form carries back.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;
use time::{Duration, OffsetDateTime};

pub const COOKIE_NAME: &str = "sid";

/// Idle sessions are forgotten after this long.
const IDLE: Duration = Duration::minutes(30);

/// What the server remembers of one browser.
#[derive(Clone)]
pub struct Session {
    /// Every form posts it back; see [`Session::csrf_ok`].
    pub csrf: String,
    /// Who signed in, if anyone.
    pub user: Option<super::pages::SignedIn>,
    /// The device request the person entered a code for and has not answered.
    pub pending: Option<super::pages::Pending>,
    touched: OffsetDateTime,
}

impl Session {
    /// Whether a form's `csrf` field is this session's token.
    pub fn csrf_ok(&self, presented: &str) -> bool {
        presented.as_bytes().ct_eq(self.csrf.as_bytes()).into()
    }
}

fn random_id() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// All sessions, in memory.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn map(&self) -> MutexGuard<'_, HashMap<String, Session>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The browser's session, or a new one: its id and a copy of its state.
    pub fn load(&self, headers: &HeaderMap, now: OffsetDateTime) -> (String, Session) {
        let mut map = self.map();
        map.retain(|_, s| now - s.touched < IDLE);
        if let Some(id) = cookie(headers, COOKIE_NAME) {
            if let Some(session) = map.get_mut(id) {
                session.touched = now;
                return (id.to_owned(), session.clone());
            }
        }
        let id = random_id();
        let session = Session {
            csrf: random_id(),
            user: None,
            pending: None,
            touched: now,
        };
        map.insert(id.clone(), session.clone());
        (id, session)
    }

    /// Saves the session's state.
    pub fn save(&self, id: &str, session: Session) {
        self.map().insert(id.to_owned(), session);
    }

    /// Saves the state under a new id and a new CSRF token, dropping the old
    /// id: done at sign-in, so that an id planted before it is worth nothing.
    pub fn rotate(&self, old_id: &str, mut session: Session) -> String {
        let mut map = self.map();
        map.remove(old_id);
        let id = random_id();
        session.csrf = random_id();
        map.insert(id.clone(), session);
        id
    }
}

/// The `Set-Cookie` value for session `id`.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE_NAME}={id}; Path=/; HttpOnly; SameSite=Lax{secure}")
}

/// The value of cookie `name` in the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}
