//! Device codes (RFC 8628 §3.2, §5.2): 256 bits from a CSPRNG, stored only as SHA-256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Length in characters of a device code this crate issues (32 bytes, base64url).
pub(crate) const DEVICE_CODE_LEN: usize = 43;

/// A device code: the secret a device polls the token endpoint with.
///
/// `Debug` redacts it; the only way to read it is [`DeviceCode::secret`].
#[derive(Clone)]
pub struct DeviceCode(String);

impl DeviceCode {
    /// Draws a fresh code: 32 bytes from `rand`'s thread-local CSPRNG (ChaCha, seeded by the OS), base64url.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Wraps a code received from a client.
    pub fn new(code: impl Into<String>) -> Self {
        Self(code.into())
    }

    /// The code itself, for the device authorization response only.
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// Whether the code has the shape of one this crate issues; anything else can be
    /// refused without a storage look-up.
    pub fn is_well_formed(&self) -> bool {
        is_well_formed(&self.0)
    }

    /// The SHA-256 of the code: the only form in which it is stored. A plain hash is
    /// enough because the code has 256 bits of entropy: nobody can brute-force it.
    pub fn hash(&self) -> DeviceCodeHash {
        hash(&self.0)
    }
}

// The token endpoint checks and hashes the code straight from the request body:
// wrapping it in a `DeviceCode` first would copy it to the heap on every poll.

/// [`DeviceCode::is_well_formed`] of a borrowed code.
pub(crate) fn is_well_formed(code: &str) -> bool {
    code.len() == DEVICE_CODE_LEN
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// [`DeviceCode::hash`] of a borrowed code.
pub(crate) fn hash(code: &str) -> DeviceCodeHash {
    DeviceCodeHash(Sha256::digest(code.as_bytes()).into())
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceCode([redacted])")
    }
}

/// The SHA-256 of a [`DeviceCode`]: the key under which a request is stored.
#[derive(Clone, Copy, Eq)]
pub struct DeviceCodeHash(pub(crate) [u8; 32]);

impl PartialEq for DeviceCodeHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for DeviceCodeHash {
    // The bytes are already a uniform hash: eight of them are a perfect map key.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(u64::from_le_bytes(
            self.0[..8].try_into().unwrap_or_default(),
        ));
    }
}

impl std::fmt::Debug for DeviceCodeHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceCodeHash({})", crate::protocol::hex(&self.0[..6]))
    }
}

crate::protocol::serde_bytes32!(DeviceCodeHash);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_well_formed_unique_and_redacted() {
        let a = DeviceCode::generate();
        let b = DeviceCode::generate();
        assert!(a.is_well_formed());
        assert_ne!(a.secret(), b.secret());
        assert_ne!(a.hash(), b.hash());
        assert_eq!(a.hash(), DeviceCode::new(a.secret()).hash());
        assert!(!format!("{a:?}").contains(a.secret()));
        assert!(!DeviceCode::new("short").is_well_formed());
        assert!(!DeviceCode::new("x".repeat(42) + "=").is_well_formed());
    }
}
