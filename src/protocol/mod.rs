//! The pure protocol core: codes, scopes, client credentials, the state machine of a
//! device authorization, polling-rate rules, request parsing and error rendering.
//!
//! Nothing here does I/O or is `async`: every function is a deterministic function
//! of its inputs (and of a CSPRNG, for code generation), so the core can be tested
//! exhaustively without a runtime.

pub(crate) mod authorization;
pub(crate) mod authorization_details;
pub(crate) mod client;
pub(crate) mod device_code;
pub(crate) mod dpop;
pub(crate) mod dpop_nonce;
pub(crate) mod error;
pub(crate) mod form;
pub(crate) mod mtls;
pub(crate) mod pkce;
pub(crate) mod polling;
pub(crate) mod proximity;
pub(crate) mod response;
pub(crate) mod scope;
pub(crate) mod user_code;

/// Lower-case hex of a byte slice, for `Debug` output of non-secret hashes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Serializes a 32-byte newtype as unpadded base64url text.
macro_rules! serde_bytes32 {
    ($t:ident) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use base64::Engine as _;
                s.serialize_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0))
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use base64::Engine as _;
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text.as_bytes())
                    .map_err(serde::de::Error::custom)?;
                let array: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| serde::de::Error::custom("expected 32 bytes"))?;
                Ok(Self(array))
            }
        }
        impl $t {
            /// The hash with these bytes (as a store read them back).
            pub const fn from_bytes(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// The hash's bytes (for storage keys).
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// The hash as unpadded base64url text (for storage keys).
            pub fn to_base64url(&self) -> String {
                use base64::Engine as _;
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
            }
        }
    };
}
pub(crate) use serde_bytes32;
#[cfg(test)]
mod state_model;
