//! The host's client registry.

use std::collections::HashMap;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::protocol::client::{Client, ClientId, ClientSecret};
use crate::protocol::error::BackendError;

/// Finds registered clients and checks their secrets.
///
/// # Contract
///
/// [`ClientRegistry::verify_secret`] must take time independent of how much of the
/// secret is right (compare hashes, or compare with `subtle`), and must never log
/// the secret.
#[async_trait::async_trait]
pub trait ClientRegistry: Send + Sync {
    /// The registration of `id`, if any.
    /// Returned in an `Arc`: it is read on every poll, and cloning a registration
    /// (strings, scope sets) would cost more than the rest of a poll.
    async fn find(&self, id: &ClientId) -> Result<Option<Arc<Client>>, BackendError>;

    /// Whether `secret` is the client's secret.
    async fn verify_secret(
        &self,
        client: &Client,
        secret: &ClientSecret,
    ) -> Result<bool, BackendError>;
}

/// A fixed set of clients held in memory, secrets kept as SHA-256 (client secrets
/// are high-entropy, so a fast hash is the right one).
#[derive(Default)]
pub struct StaticClients {
    clients: HashMap<ClientId, (Arc<Client>, Option<[u8; 32]>)>,
}

impl std::fmt::Debug for StaticClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.clients.keys()).finish()
    }
}

impl StaticClients {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a public client.
    pub fn with_public(mut self, client: Client) -> Self {
        self.clients
            .insert(client.id.clone(), (Arc::new(client), None));
        self
    }

    /// Adds a confidential client with its secret.
    pub fn with_confidential(mut self, client: Client, secret: &str) -> Self {
        let hash = Sha256::digest(secret.as_bytes()).into();
        self.clients
            .insert(client.id.clone(), (Arc::new(client), Some(hash)));
        self
    }
}

#[async_trait::async_trait]
impl ClientRegistry for StaticClients {
    async fn find(&self, id: &ClientId) -> Result<Option<Arc<Client>>, BackendError> {
        Ok(self.clients.get(id).map(|(c, _)| c.clone()))
    }

    async fn verify_secret(
        &self,
        client: &Client,
        secret: &ClientSecret,
    ) -> Result<bool, BackendError> {
        let Some((_, Some(expected))) = self.clients.get(&client.id) else {
            return Ok(false);
        };
        let presented: [u8; 32] = Sha256::digest(secret.secret().as_bytes()).into();
        Ok(presented.ct_eq(expected).into())
    }
}
