//! What the device grant contributes to the RFC 8414 authorization server metadata.

use crate::endpoint::token::DEVICE_CODE_GRANT_TYPE;
use crate::protocol::authorization_details::AuthorizationDetailTypes;
use crate::protocol::client::AuthMethod;
use crate::protocol::pkce::CodeChallengeMethod;

/// RFC 8414 §2: what an absent `grant_types_supported` means.
const RFC8414_DEFAULT_GRANT_TYPES: &[&str] = &["authorization_code", "implicit"];

/// RFC 8414 §2: what an absent `token_endpoint_auth_methods_supported` means.
const RFC8414_DEFAULT_AUTH_METHODS: &[&str] = &["client_secret_basic"];

/// The members this grant adds to the host's metadata document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Metadata {
    /// `device_authorization_endpoint` (RFC 8628 §4).
    pub device_authorization_endpoint: String,
    /// The grant types this crate serves: the device code URN. Merge it into the
    /// host's `grant_types_supported`.
    pub grant_types_supported: Vec<&'static str>,
    /// The client authentication methods the crate accepts.
    pub token_endpoint_auth_methods_supported: Vec<&'static str>,
    /// The PKCE code challenge methods the device authorization endpoint
    /// accepts (RFC 8414 §2, RFC 7636): `["S256"]`.
    pub code_challenge_methods_supported: Vec<&'static str>,
    /// The DPoP proof algorithms the token endpoint accepts (RFC 9449 §5.1):
    /// empty (and not merged) unless DPoP is configured
    /// ([`Metadata::dpop`], feature `dpop`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<&'static str>,
    /// `authorization_details_types_supported` (RFC 9396 §10): the types the
    /// grant accepts. Empty (and then left out) unless set with
    /// [`Metadata::authorization_details_types`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub authorization_details_types_supported: Vec<String>,
}

impl Metadata {
    /// The metadata for a device authorization endpoint at `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            device_authorization_endpoint: endpoint.into(),
            grant_types_supported: vec![DEVICE_CODE_GRANT_TYPE],
            token_endpoint_auth_methods_supported: [
                AuthMethod::None,
                AuthMethod::ClientSecretBasic,
                AuthMethod::ClientSecretPost,
            ]
            .iter()
            .map(|m| m.as_str())
            .collect(),
            code_challenge_methods_supported: vec![CodeChallengeMethod::S256.as_str()],
            dpop_signing_alg_values_supported: Vec::new(),
            authorization_details_types_supported: Vec::new(),
        }
    }

    /// The same metadata, announcing the DPoP algorithms the token endpoint
    /// verifies: [`DpopConfig::supported_algorithms`](crate::DpopConfig::supported_algorithms).
    #[cfg(feature = "dpop")]
    pub fn dpop(mut self, algorithms: &[crate::protocol::dpop::DpopAlgorithm]) -> Self {
        self.dpop_signing_alg_values_supported = algorithms.iter().map(|a| a.as_str()).collect();
        self
    }

    /// Lists the grant's registered `authorization_details` types
    /// ([`DeviceGrant::authorization_detail_types`](crate::DeviceGrant::authorization_detail_types)).
    pub fn authorization_details_types(mut self, types: &AuthorizationDetailTypes) -> Self {
        self.authorization_details_types_supported = types.names().map(str::to_owned).collect();
        self
    }

    /// Adds these members to a metadata document, merging the arrays with what
    /// the document already lists.
    ///
    /// An array the document omits starts from its RFC 8414 §2 default, which
    /// is what its absence announced: `grant_types_supported` from
    /// `["authorization_code", "implicit"]`,
    /// `token_endpoint_auth_methods_supported` from `["client_secret_basic"]`.
    /// An absent `code_challenge_methods_supported` means no PKCE, so it starts
    /// empty; a list the document has (for its authorization code grant) keeps
    /// its methods, and gains `S256`.
    /// `authorization_details_types_supported` is added only when the list
    /// is not empty, merged with the document's.
    /// A server that serves neither of those grants lists its own grant types
    /// in the document before merging.
    pub fn merge_into(&self, document: &mut serde_json::Map<String, serde_json::Value>) {
        document.insert(
            "device_authorization_endpoint".into(),
            self.device_authorization_endpoint.clone().into(),
        );
        for (key, defaults, values) in [
            (
                "grant_types_supported",
                RFC8414_DEFAULT_GRANT_TYPES,
                &self.grant_types_supported,
            ),
            (
                "token_endpoint_auth_methods_supported",
                RFC8414_DEFAULT_AUTH_METHODS,
                &self.token_endpoint_auth_methods_supported,
            ),
            (
                "code_challenge_methods_supported",
                &[],
                &self.code_challenge_methods_supported,
            ),
            (
                "dpop_signing_alg_values_supported",
                &[],
                &self.dpop_signing_alg_values_supported,
            ),
        ] {
            // Without DPoP the member is not created: an empty list would
            // still read as "DPoP served".
            if values.is_empty() && !document.contains_key(key) {
                continue;
            }
            // Created empty, the array would withdraw the defaults its absence
            // announced (a client would stop using `authorization_code`).
            let entry = document.entry(key).or_insert_with(|| {
                serde_json::Value::Array(defaults.iter().map(|&d| d.into()).collect())
            });
            if let serde_json::Value::Array(list) = entry {
                for v in values {
                    if !list.iter().any(|x| x == v) {
                        list.push((*v).into());
                    }
                }
            }
        }
        // Only when some type is registered: an empty list would claim RFC
        // 9396 support for no type at all.
        if !self.authorization_details_types_supported.is_empty() {
            let entry = document
                .entry("authorization_details_types_supported")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let serde_json::Value::Array(list) = entry {
                for v in &self.authorization_details_types_supported {
                    if !list.iter().any(|x| x == v) {
                        list.push(v.as_str().into());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_without_duplicates() {
        let mut doc = serde_json::json!({
            "issuer": "https://as.example",
            "grant_types_supported": ["refresh_token"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        });
        let map = doc.as_object_mut().unwrap();
        Metadata::new("https://as.example/device_authorization").merge_into(map);
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["refresh_token", DEVICE_CODE_GRANT_TYPE])
        );
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "none", "client_secret_post"])
        );
        assert_eq!(
            doc["device_authorization_endpoint"],
            "https://as.example/device_authorization"
        );
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
    }

    #[test]
    fn pkce_methods_merge_with_the_hosts() {
        // A host whose authorization code grant also serves `plain` keeps it
        // there; the device grant adds only `S256`, once.
        let mut doc = serde_json::json!({
            "issuer": "https://as.example",
            "code_challenge_methods_supported": ["plain", "S256"],
        });
        let map = doc.as_object_mut().unwrap();
        Metadata::new("https://as.example/device_authorization").merge_into(map);
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["plain", "S256"])
        );
    }

    #[test]
    fn absent_members_keep_their_rfc8414_defaults() {
        let mut doc = serde_json::json!({ "issuer": "https://as.example" });
        let map = doc.as_object_mut().unwrap();
        Metadata::new("https://as.example/device_authorization").merge_into(map);
        // RFC 8414 §2: an absent `grant_types_supported` means these two; adding
        // the device grant must not withdraw them.
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["authorization_code", "implicit", DEVICE_CODE_GRANT_TYPE])
        );
        // An absent `token_endpoint_auth_methods_supported` means `client_secret_basic`.
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "none", "client_secret_post"])
        );
    }

    #[test]
    fn merging_twice_changes_nothing() {
        let mut doc = serde_json::json!({ "issuer": "https://as.example" });
        let map = doc.as_object_mut().unwrap();
        let metadata = Metadata::new("https://as.example/device_authorization");
        metadata.merge_into(map);
        let once = map.clone();
        metadata.merge_into(map);
        assert_eq!(*map, once);
    }
}
