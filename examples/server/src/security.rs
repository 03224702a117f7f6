//! The host's own abuse budgets and its security log.
//!
//! Budgets are counted by the grant's `AttemptLimiter`, the very object the
//! crate counts wrong user codes with, so that instances sharing a store share
//! these counts too. Keys are `FAMILY:VALUE`: `login:net:…`, `login:account:…`,
//! `code:net:…`, `code:account:…`. A network is an IPv4 address or an IPv6 /64:
//! one IPv6 subscriber holds a whole /64, and keying by full address would give
//! them 2^64 budgets.
//!
//! Security events are `tracing` events with an `event` field. They never carry
//! a secret or a raw limiter key (which holds an address or a username): only
//! the key's family and a hash of it under a per-process key, enough to tell
//! repeated trips of one key apart from many keys.

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use device_grant::store::{Admission, AttemptLimiter, LimiterKey};
use device_grant::{BackendError, Budget};
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};

/// Failed sign-ins per source network: 10 per 15 minutes (40 an hour).
pub(crate) const SIGN_IN_PER_NETWORK: Budget = Budget {
    attempts: 10,
    window: Duration::minutes(15),
};

/// Failed sign-ins per account from browsers it never signed in on: 20 an
/// hour, however many networks guess. When spent, the account's own known
/// browsers still sign in; new ones wait for the hour to end.
pub(crate) const SIGN_IN_PER_ACCOUNT: Budget = Budget {
    attempts: 20,
    window: Duration::minutes(60),
};

/// Wrong passwords given again at consent (a step-up), per account: 5 per 15
/// minutes, the per-account sign-in rate. Only a signed-in session reaches a
/// step-up, so this is what stands between a stolen session and the account's
/// password; strangers cannot spend it, and a right password costs nothing.
pub(crate) const STEP_UP_PER_ACCOUNT: Budget = Budget {
    attempts: 5,
    window: Duration::minutes(15),
};

/// What a password given again at consent proved.
pub(crate) enum StepUp {
    /// Not attempted: the box unticked or no password.
    None,
    /// The account's password: a proof of re-authentication.
    Confirmed,
    /// A wrong password, spent from the account's step-up budget.
    Wrong,
    /// The budget is spent: the password was not checked.
    Throttled(Duration),
}

impl StepUp {
    /// Checks `password` for `username` within [`STEP_UP_PER_ACCOUNT`], when
    /// the person ticked "I started this myself" and gave one.
    pub(crate) async fn check(
        app: &crate::App,
        username: &str,
        own_device: bool,
        password: &str,
        now: OffsetDateTime,
    ) -> Result<Self, BackendError> {
        if !own_device || password.is_empty() {
            return Ok(Self::None);
        }
        let layers = [(
            LimiterKey::new(format!("step-up:account:{username}")),
            STEP_UP_PER_ACCOUNT,
        )];
        if let Err((_, retry_after)) = spend(&app.limiter, &layers, now).await? {
            tracing::warn!(
                event = "step_up_throttled",
                subject = %username,
                "step-up budget spent"
            );
            return Ok(Self::Throttled(retry_after));
        }
        if app.users.check(username, password).is_none() {
            return Ok(Self::Wrong);
        }
        // The proof stands whatever the refund says.
        if let Err(error) = refund(&app.limiter, &layers, now).await {
            tracing::error!(%error, "the limiter failed");
        }
        Ok(Self::Confirmed)
    }
}

/// Usernames longer than this are no account's: refused without a look-up, and
/// never made into a limiter key.
pub(crate) const MAX_USERNAME: usize = 64;

/// The source network of `ip`: the address for IPv4 (and IPv4-mapped IPv6),
/// the /64 for IPv6.
pub(crate) fn network(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            let prefix = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{prefix}/64")
        }
        None => "unknown".to_owned(),
    }
}

/// The log's view of limiter keys: family and keyed hash.
pub(crate) struct KeyHasher(Vec<u8>);

impl KeyHasher {
    pub(crate) fn generate() -> Self {
        Self(rand::random::<[u8; 32]>().to_vec())
    }

    /// `(family, hash)`: the family is the key's first two `:`-separated parts
    /// (`code:net`, `device-grant:wrong-codes`), the hash 16 bytes of
    /// HMAC-SHA-256 of the whole key.
    pub(crate) fn describe(&self, key: &LimiterKey) -> (String, String) {
        let family: Vec<&str> = key.as_str().splitn(3, ':').take(2).collect();
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(key.as_str().as_bytes());
        let hash = mac.finalize().into_bytes();
        (family.join(":"), URL_SAFE_NO_PAD.encode(&hash[..16]))
    }
}

/// Spends one attempt of each `(key, budget)` in turn; on the first that is
/// spent, gives back what was taken and returns its key and wait.
pub(crate) async fn spend(
    limiter: &Arc<dyn AttemptLimiter>,
    layers: &[(LimiterKey, Budget)],
    now: OffsetDateTime,
) -> Result<Result<(), (LimiterKey, Duration)>, BackendError> {
    for (at, (key, budget)) in layers.iter().enumerate() {
        if let Admission::Exhausted { retry_after } = limiter.acquire(key, budget, now).await? {
            refund(limiter, &layers[..at], now).await?;
            return Ok(Err((key.clone(), retry_after)));
        }
    }
    Ok(Ok(()))
}

/// Gives back one attempt of each layer.
pub(crate) async fn refund(
    limiter: &Arc<dyn AttemptLimiter>,
    layers: &[(LimiterKey, Budget)],
    now: OffsetDateTime,
) -> Result<(), BackendError> {
    for (key, budget) in layers {
        limiter.refund(key, budget, now).await?;
    }
    Ok(())
}
