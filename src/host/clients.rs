//! The host's client registry.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::protocol::client::{Client, ClientId, ClientSecret, RegistrationError};
use crate::protocol::error::BackendError;

/// Finds registered clients and checks their secrets.
///
/// # Contract
///
/// [`ClientRegistry::verify_secret`] must take time independent of how much of the
/// secret is right (compare hashes, or compare with `subtle`), and must never log
/// the secret.
///
/// A registration should pass [`Client::validate`]. Whatever the registry
/// returns, client authentication accepts `none` (a `client_id` without a
/// secret) only from a client that [`Client::is_public`].
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
///
/// Every registration is checked ([`Client::validate`]): a client is public
/// (`none` only, no secret) or confidential (secret-based methods only, with a
/// non-empty secret), its default scopes are among its allowed ones, and an
/// identifier is registered once. The `try_with_*` methods return a
/// [`RegistrationError`], for registrations read from configuration; the
/// `with_*` methods panic with it, for registrations written in code, where a
/// misconfiguration is a bug to stop at start-up.
///
/// ```
/// use device_grant::{AuthMethod, Client, StaticClients};
/// use device_grant::RegistrationError;
///
/// let tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
/// let printer = Client::for_device_grant("printer", vec![AuthMethod::ClientSecretBasic]);
/// let clients = StaticClients::new()
///     .try_with_public(tv)?
///     .try_with_confidential(printer, "a-long-random-secret")?;
///
/// // `none` beside a secret method would let anyone act as the client with its id alone.
/// let mixed = Client::for_device_grant("mixed", vec![AuthMethod::ClientSecretPost, AuthMethod::None]);
/// assert!(matches!(
///     clients.try_with_confidential(mixed, "secret"),
///     Err(RegistrationError::MixedAuthMethods(_))
/// ));
/// # Ok::<(), RegistrationError>(())
/// ```
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
    ///
    /// # Panics
    ///
    /// If [`StaticClients::try_with_public`] refuses the registration.
    #[track_caller]
    pub fn with_public(self, client: Client) -> Self {
        // A `match`, not `unwrap_or_else`: a closure would hide the caller's location.
        match self.try_with_public(client) {
            Ok(clients) => clients,
            Err(e) => refused(&e),
        }
    }

    /// Adds a confidential client with its secret.
    ///
    /// # Panics
    ///
    /// If [`StaticClients::try_with_confidential`] refuses the registration.
    #[track_caller]
    pub fn with_confidential(self, client: Client, secret: &str) -> Self {
        match self.try_with_confidential(client, secret) {
            Ok(clients) => clients,
            Err(e) => refused(&e),
        }
    }

    /// Adds a public client: its `auth_methods` must be exactly `none`.
    pub fn try_with_public(self, client: Client) -> Result<Self, RegistrationError> {
        client.validate()?;
        if !client.is_public() {
            return Err(RegistrationError::NotPublic(client.id));
        }
        self.insert(client, None)
    }

    /// Adds a confidential client with its secret: its `auth_methods` must be
    /// secret-based only (`client_secret_basic`, `client_secret_post`), never
    /// `none`, and the secret must not be empty.
    pub fn try_with_confidential(
        self,
        client: Client,
        secret: &str,
    ) -> Result<Self, RegistrationError> {
        client.validate()?;
        if !client.is_confidential() {
            return Err(RegistrationError::NotConfidential(client.id));
        }
        if secret.is_empty() {
            return Err(RegistrationError::EmptySecret(client.id));
        }
        let hash = Sha256::digest(secret.as_bytes()).into();
        self.insert(client, Some(hash))
    }

    fn insert(mut self, client: Client, hash: Option<[u8; 32]>) -> Result<Self, RegistrationError> {
        match self.clients.entry(client.id.clone()) {
            Entry::Occupied(_) => Err(RegistrationError::Duplicate(client.id)),
            Entry::Vacant(slot) => {
                slot.insert((Arc::new(client), hash));
                Ok(self)
            }
        }
    }
}

#[track_caller]
fn refused(error: &RegistrationError) -> ! {
    panic!("client registration refused: {error}")
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
