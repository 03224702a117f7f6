//! Configuration: one builder, documented defaults, validated at start-up.

use time::Duration;

use crate::host::limiter::Budgets;
use crate::protocol::error::{Realm, RealmError};
use crate::protocol::form::Limits;
use crate::protocol::polling::{Interval, PollingRules};
use crate::protocol::user_code::{UserCodeKey, UserCodePolicy};

/// A configuration value that was refused by [`ConfigBuilder::build`].
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The verification URI is not an absolute `https` URL (`http` is allowed for
    /// loopback hosts only, for development), or has a fragment.
    #[error("verification_uri must be an absolute https URL without fragment: {0}")]
    VerificationUri(String),
    /// The lifetime is outside 30 s ..= 1 h, or not longer than the interval
    /// (from 1 s, at any interval, under
    /// [`ConfigBuilder::danger_allow_short_lifetimes_for_tests`]).
    #[error("the code lifetime must be within 30 s and 1 h and longer than the interval")]
    Lifetime,
    /// The interval is above the polling cap.
    #[error("the interval must not exceed the maximum interval")]
    Interval,
    /// The leeway is negative, or the redeem lease under one second.
    #[error("the polling leeway must not be negative, nor the redeem lease under 1 s")]
    Leeway,
    /// A budget allows no attempt or has a window under one second.
    #[error("every budget needs at least one attempt and a window of at least 1 s")]
    Budget,
    /// A limit is zero.
    #[error("request limits must be positive")]
    Limits,
    /// The retention is negative.
    #[error("the retention after expiry must not be negative")]
    Retention,
    /// The `WWW-Authenticate` realm cannot be sent as it is.
    #[error("the realm is refused: {0}")]
    Realm(#[from] RealmError),
    /// More than 4 previous user-code keys, or a
    /// key given twice (the current key among the previous ones included).
    #[error(
        "previous user-code keys: at most 4, each different from the others and from the current key"
    )]
    PreviousUserCodeKeys,
}

/// The most previous user-code keys a [`Config`] accepts: a wrong code costs
/// one store read per key.
pub(crate) const MAX_PREVIOUS_USER_CODE_KEYS: usize = 4;

/// The validated configuration of a [`crate::DeviceGrant`].
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) verification_uri: url::Url,
    pub(crate) complete_uri: bool,
    pub(crate) lifetime: Duration,
    pub(crate) interval: Interval,
    pub(crate) polling: PollingRules,
    pub(crate) user_code_policy: UserCodePolicy,
    pub(crate) user_code_key: UserCodeKey,
    pub(crate) previous_user_code_keys: Vec<UserCodeKey>,
    pub(crate) budgets: Budgets,
    pub(crate) limits: Limits,
    pub(crate) retention: Duration,
    pub(crate) user_code_tries: u32,
    pub(crate) realm: Realm,
}

impl Config {
    /// A builder with the defaults. `verification_uri` is the page where people
    /// enter the code; `user_code_key` the secret user codes are hashed with, the
    /// same on every instance that shares a store.
    pub fn builder(
        verification_uri: impl Into<String>,
        user_code_key: UserCodeKey,
    ) -> ConfigBuilder {
        ConfigBuilder {
            verification_uri: verification_uri.into(),
            complete_uri: true,
            lifetime: Duration::seconds(600),
            interval: Interval::DEFAULT,
            polling: PollingRules::default(),
            user_code_policy: UserCodePolicy::default(),
            user_code_key,
            previous_user_code_keys: Vec::new(),
            budgets: Budgets::default(),
            limits: Limits::default(),
            retention: Duration::seconds(600),
            user_code_tries: 8,
            short_lifetimes: false,
            realm: None,
        }
    }

    /// The code lifetime (`expires_in`).
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// The default polling interval.
    pub fn interval(&self) -> Interval {
        self.interval
    }

    /// The user-code policy.
    pub fn user_code_policy(&self) -> &UserCodePolicy {
        &self.user_code_policy
    }

    /// The abuse budgets.
    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    /// The verification URI.
    pub fn verification_uri(&self) -> &str {
        self.verification_uri.as_str()
    }

    /// The realm of the `WWW-Authenticate` challenge sent with a `401
    /// invalid_client`.
    pub fn realm(&self) -> &Realm {
        &self.realm
    }

    /// The request size limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Every user-code key a typed code is looked up under: the current one,
    /// then the previous ones.
    pub(crate) fn user_code_keys(&self) -> impl Iterator<Item = &UserCodeKey> {
        std::iter::once(&self.user_code_key).chain(&self.previous_user_code_keys)
    }
}

/// Builds a [`Config`]; see each setter for its default.
#[derive(Debug, Clone)]
pub struct ConfigBuilder {
    verification_uri: String,
    complete_uri: bool,
    lifetime: Duration,
    interval: Interval,
    polling: PollingRules,
    user_code_policy: UserCodePolicy,
    user_code_key: UserCodeKey,
    previous_user_code_keys: Vec<UserCodeKey>,
    budgets: Budgets,
    limits: Limits,
    retention: Duration,
    user_code_tries: u32,
    short_lifetimes: bool,
    realm: Option<String>,
}

impl ConfigBuilder {
    /// **For tests only.** Accepts code lifetimes from 1 s (instead of 30 s),
    /// whatever the interval, so that a black-box test of a server can watch
    /// codes expire in seconds. A production server must not call this: a code
    /// that expires before a person can type it, or before the device's first
    /// poll, makes the grant unusable.
    pub fn danger_allow_short_lifetimes_for_tests(mut self) -> Self {
        self.short_lifetimes = true;
        self
    }

    /// How long codes live (`expires_in`). Default 600 s; 30 s ..= 1 h.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The polling interval sent to devices. Default 5 s.
    pub fn interval(mut self, interval: Interval) -> Self {
        self.interval = interval;
        self
    }

    /// Polling leeway (default 1 s) and interval cap (default 60 s).
    pub fn polling(mut self, rules: PollingRules) -> Self {
        self.polling = rules;
        self
    }

    /// The user-code policy. Default [`UserCodePolicy::consonants`].
    pub fn user_code_policy(mut self, policy: UserCodePolicy) -> Self {
        self.user_code_policy = policy;
        self
    }

    /// Whether responses carry `verification_uri_complete`. Default true.
    pub fn verification_uri_complete(mut self, on: bool) -> Self {
        self.complete_uri = on;
        self
    }

    /// The abuse budgets. Default [`Budgets::default`]: 5 wrong codes per key and
    /// 1,000 deployment-wide per 5 min; 600 device authorizations per client per
    /// minute and 20 per source per 10 min; 10,000 pending per client.
    pub fn budgets(mut self, budgets: Budgets) -> Self {
        self.budgets = budgets;
        self
    }

    /// Request size limits. Default [`Limits::default`].
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// How long records are kept after expiry, so that late polls get
    /// `expired_token` and replays are recognized. Default 600 s.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Keys that codes may still be stored under, beside the current key: the
    /// key being retired (and, in a two-step rotation, the key about to become
    /// current). Default none; at most 4.
    ///
    /// New codes are hashed with the current key only. A typed code is looked
    /// up under the current key and then under each previous key, for one
    /// attempt of the person's budget whatever the number of keys (refunded
    /// when it is found). A new code is drawn again if it is live under any
    /// previous key, so that one code never names two requests; and a code
    /// live under two of the keys is found under none of them (the person is
    /// told it is wrong), since the crate cannot tell which request they mean.
    ///
    /// A rotation from K1 to K2 over instances that share a store:
    ///
    /// 1. Deploy K1 as current and K2 as previous everywhere. Codes are still
    ///    issued under K1, and every instance already accepts K2 and checks new
    ///    codes against it.
    /// 2. Deploy K2 as current and K1 as previous everywhere. Codes issued
    ///    under K1 before or during this deploy stay valid on every instance.
    /// 3. Once the last code issued under K1 has expired (the code lifetime
    ///    after step 2 ended), drop K1.
    ///
    /// A single rolling deploy straight to step 2 also keeps every live code:
    /// instances already rolled accept both keys. The instances not yet rolled
    /// cannot find codes issued under K2, nor check their own new codes against
    /// K2; the first step closes both gaps.
    pub fn previous_user_code_keys(mut self, keys: Vec<UserCodeKey>) -> Self {
        self.previous_user_code_keys = keys;
        self
    }

    /// The realm of the `WWW-Authenticate: Basic realm="…"` challenge sent with
    /// a `401 invalid_client`. Default `device-grant`. Refused by
    /// [`ConfigBuilder::build`] unless [`Realm::new`] accepts it.
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Validates and builds.
    pub fn build(self) -> Result<Config, ConfigError> {
        let uri = url::Url::parse(&self.verification_uri)
            .map_err(|_| ConfigError::VerificationUri(self.verification_uri.clone()))?;
        let loopback = match uri.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let scheme_ok = uri.scheme() == "https" || (uri.scheme() == "http" && loopback);
        if !scheme_ok || uri.fragment().is_some() || uri.host().is_none() {
            return Err(ConfigError::VerificationUri(self.verification_uri));
        }
        let lifetime_ok = if self.short_lifetimes {
            self.lifetime >= Duration::seconds(1)
        } else {
            self.lifetime >= Duration::seconds(30) && self.lifetime > self.interval.duration()
        };
        if !lifetime_ok || self.lifetime > Duration::hours(1) {
            return Err(ConfigError::Lifetime);
        }
        if self.interval > self.polling.max_interval {
            return Err(ConfigError::Interval);
        }
        if self.polling.leeway.is_negative() || self.polling.redeem_lease < Duration::seconds(1) {
            return Err(ConfigError::Leeway);
        }
        if !self.budgets.is_valid() {
            return Err(ConfigError::Budget);
        }
        let l = self.limits;
        if l.max_body_bytes == 0
            || l.max_parameters == 0
            || l.max_value_bytes == 0
            || l.max_scopes == 0
        {
            return Err(ConfigError::Limits);
        }
        if self.retention.is_negative() {
            return Err(ConfigError::Retention);
        }
        let realm = match &self.realm {
            Some(realm) => Realm::new(realm)?,
            None => Realm::default(),
        };
        if self.previous_user_code_keys.len() > MAX_PREVIOUS_USER_CODE_KEYS {
            return Err(ConfigError::PreviousUserCodeKeys);
        }
        let mut fingerprints = Vec::with_capacity(1 + self.previous_user_code_keys.len());
        for key in std::iter::once(&self.user_code_key).chain(&self.previous_user_code_keys) {
            let fingerprint = key.fingerprint();
            if fingerprints.contains(&fingerprint) {
                return Err(ConfigError::PreviousUserCodeKeys);
            }
            fingerprints.push(fingerprint);
        }
        Ok(Config {
            verification_uri: uri,
            complete_uri: self.complete_uri,
            lifetime: self.lifetime,
            interval: self.interval,
            polling: self.polling,
            user_code_policy: self.user_code_policy,
            user_code_key: self.user_code_key,
            previous_user_code_keys: self.previous_user_code_keys,
            budgets: self.budgets,
            limits: self.limits,
            retention: self.retention,
            user_code_tries: self.user_code_tries,
            realm,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(uri: &str) -> ConfigBuilder {
        Config::builder(uri, UserCodeKey::new(&[9; 32]).unwrap())
    }

    #[test]
    fn defaults_are_valid() {
        let c = b("https://example.com/device").build().unwrap();
        assert_eq!(c.lifetime(), Duration::seconds(600));
        assert_eq!(c.interval(), Interval::DEFAULT);
        assert!(b("http://127.0.0.1:8080/device").build().is_ok());
        assert!(b("http://localhost/device").build().is_ok());
    }

    #[test]
    fn bad_values_fail_at_start_up() {
        for uri in [
            "http://example.com/device",
            "/device",
            "https://x/#frag",
            "ftp://x/",
        ] {
            assert!(
                matches!(b(uri).build(), Err(ConfigError::VerificationUri(_))),
                "{uri}"
            );
        }
        let ok = || b("https://example.com/device");
        assert_eq!(
            ok().lifetime(Duration::seconds(10)).build().err(),
            Some(ConfigError::Lifetime)
        );
        assert_eq!(
            ok().lifetime(Duration::hours(2)).build().err(),
            Some(ConfigError::Lifetime)
        );
        // Short lifetimes only when asked for by name, and never under 1 s.
        let short = ok()
            .danger_allow_short_lifetimes_for_tests()
            .lifetime(Duration::seconds(1))
            .build()
            .unwrap();
        assert_eq!(short.lifetime(), Duration::seconds(1));
        assert_eq!(
            ok().danger_allow_short_lifetimes_for_tests()
                .lifetime(Duration::milliseconds(999))
                .build()
                .err(),
            Some(ConfigError::Lifetime)
        );
        assert_eq!(
            ok().lifetime(Duration::seconds(29)).build().err(),
            Some(ConfigError::Lifetime)
        );
        assert_eq!(
            ok().interval(Interval::from_secs(61).unwrap())
                .build()
                .err(),
            Some(ConfigError::Interval)
        );
        let rules = PollingRules {
            leeway: Duration::seconds(-1),
            ..PollingRules::default()
        };
        assert_eq!(ok().polling(rules).build().err(), Some(ConfigError::Leeway));
        let rules = PollingRules {
            redeem_lease: Duration::ZERO,
            ..PollingRules::default()
        };
        assert_eq!(ok().polling(rules).build().err(), Some(ConfigError::Leeway));
        let mut budgets = Budgets::default();
        budgets.wrong_codes_per_key.attempts = 0;
        assert_eq!(
            ok().budgets(budgets).build().err(),
            Some(ConfigError::Budget)
        );
        let budgets = Budgets {
            pending_per_client: Some(0),
            ..Budgets::default()
        };
        assert_eq!(
            ok().budgets(budgets).build().err(),
            Some(ConfigError::Budget)
        );
        let limits = Limits {
            max_scopes: 0,
            ..Limits::default()
        };
        assert_eq!(ok().limits(limits).build().err(), Some(ConfigError::Limits));
        assert_eq!(
            ok().retention(Duration::seconds(-1)).build().err(),
            Some(ConfigError::Retention)
        );
    }
}
