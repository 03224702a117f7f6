//! Server-provided DPoP nonces (RFC 9449 §8): values the server hands out in
//! the `DPoP-Nonce` header, which proofs must then carry as their `nonce`
//! claim, so that a proof made in advance (by malware on the device that
//! signs proofs for later use) is useless past the nonce's lifetime.
//!
//! The nonces are stateless: a nonce is a time window's number with an
//! HMAC-SHA-256 of it under the host's key, so every instance that shares the
//! key hands out and accepts the same nonces without a store. A nonce is
//! accepted during its window and the next one, so a client that fetched one
//! just before a window ends still has a full lifetime to use it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use time::{Duration, OffsetDateTime};

use crate::protocol::user_code::{KeyTooShort, MIN_KEY_BYTES};

/// The bytes of a nonce: the window's number (8) and the truncated MAC (16).
const NONCE_BYTES: usize = 24;
/// What the MAC covers before the window's number: this use of the key only.
const DOMAIN: &[u8] = b"device-grant:dpop-nonce:";

/// A nonce as sent in the `DPoP-Nonce` header: 32 characters of unpadded
/// base64url. Not a secret: the server gives it to any client that asks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DpopNonce(String);

impl DpopNonce {
    /// The nonce as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DpopNonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Issues and checks server nonces for DPoP proofs (RFC 9449 §8), statelessly,
/// under a secret key: give every instance the same key. Set on
/// [`DpopConfig::nonces`](crate::DpopConfig::nonces); off unless set.
///
/// Default lifetime 5 minutes (a nonce is accepted for one to two
/// lifetimes, by the window it was issued in). `Debug` redacts the key.
#[derive(Clone)]
pub struct DpopNonces {
    key: Hmac<Sha256>,
    lifetime: Duration,
}

impl std::fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopNonces")
            .field("key", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

impl DpopNonces {
    /// Nonces under a secret key of at least 32 bytes, shared by every
    /// instance of the server.
    pub fn new(secret: &[u8]) -> Result<Self, KeyTooShort> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(KeyTooShort(secret.len()));
        }
        let key = Hmac::new_from_slice(secret).map_err(|_| KeyTooShort(secret.len()))?;
        Ok(Self {
            key,
            lifetime: Duration::minutes(5),
        })
    }

    /// Nonces under a random key, for a single instance (its nonces die with
    /// it: clients are asked for a fresh one after a restart).
    pub fn generate() -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut secret);
        Self::new(&secret).expect("32 bytes")
    }

    /// The length of a nonce's window, kept within 10 s ..= 1 h: a client
    /// fetches a new nonce (with one refused request) about once a window.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.clamp(Duration::seconds(10), Duration::hours(1));
        self
    }

    /// The nonce to hand out at `now`.
    pub fn current(&self, now: OffsetDateTime) -> DpopNonce {
        let window = self.window(now);
        let mut bytes = [0u8; NONCE_BYTES];
        bytes[..8].copy_from_slice(&window.to_be_bytes());
        bytes[8..].copy_from_slice(&self.tag(window)[..NONCE_BYTES - 8]);
        DpopNonce(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Whether `nonce` (a proof's `nonce` claim) is one this key issued in the
    /// window of `now` or the one before. The MAC is compared in constant
    /// time.
    pub fn check(&self, nonce: &str, now: OffsetDateTime) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce.as_bytes()) else {
            return false;
        };
        let Ok(bytes) = <[u8; NONCE_BYTES]>::try_from(bytes.as_slice()) else {
            return false;
        };
        let window = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let current = self.window(now);
        if window != current && Some(window) != current.checked_sub(1) {
            return false;
        }
        let mut mac = self.key.clone();
        mac.update(DOMAIN);
        mac.update(&window.to_be_bytes());
        mac.verify_truncated_left(&bytes[8..]).is_ok()
    }

    fn window(&self, now: OffsetDateTime) -> i64 {
        let lifetime = self.lifetime.whole_seconds().max(1);
        now.unix_timestamp().div_euclid(lifetime)
    }

    fn tag(&self, window: i64) -> [u8; 32] {
        let mut mac = self.key.clone();
        mac.update(DOMAIN);
        mac.update(&window.to_be_bytes());
        mac.finalize().into_bytes().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds(secs)
    }

    #[test]
    fn a_nonce_lives_through_its_window_and_the_next() {
        let nonces = DpopNonces::new(&[7; 32]).unwrap();
        let nonce = nonces.current(at(1_000_000));
        assert_eq!(nonce.as_str().len(), 32);
        let window = 1_000_000 / 300 * 300;
        assert!(nonces.check(nonce.as_str(), at(window)));
        assert!(nonces.check(nonce.as_str(), at(window + 599)));
        assert!(!nonces.check(nonce.as_str(), at(window + 600)));
        assert!(!nonces.check(nonce.as_str(), at(window - 1)));
    }

    #[test]
    fn only_the_key_that_issued_a_nonce_accepts_it() {
        let nonces = DpopNonces::new(&[7; 32]).unwrap();
        let other = DpopNonces::new(&[8; 32]).unwrap();
        let nonce = nonces.current(at(5_000));
        assert!(!other.check(nonce.as_str(), at(5_000)));
        // Another window's number under the same MAC.
        let mut bytes = URL_SAFE_NO_PAD.decode(nonce.as_str()).unwrap();
        bytes[7] ^= 1;
        assert!(!nonces.check(&URL_SAFE_NO_PAD.encode(&bytes), at(5_000)));
        for garbage in ["", "not base64!", "AAAA", &"A".repeat(200)] {
            assert!(!nonces.check(garbage, at(5_000)), "{garbage:?}");
        }
    }

    #[test]
    fn keys_are_long_and_never_shown() {
        assert!(DpopNonces::new(&[1; 31]).is_err());
        let nonces = DpopNonces::new(&[0x5a; 32]).unwrap();
        assert!(!format!("{nonces:?}").contains("5a"), "{nonces:?}");
        let short = DpopNonces::generate().lifetime(Duration::seconds(1));
        assert_eq!(short.lifetime, Duration::seconds(10));
    }
}
