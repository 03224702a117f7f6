//! The demo registrations: five clients and two people. A real server reads these
//! from its database; the shapes are the same.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use device_grant::{
    AuthMethod, BackendError, Client, ClientId, ClientRegistry, ClientSecret, ScopeSet,
    StaticClients,
};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// Every scope this server knows, with what the consent page says about it.
pub(crate) const SCOPES: &[(&str, &str)] = &[
    ("openid", "Confirm who you are"),
    ("profile", "See your name"),
    ("email", "See your email address"),
    ("offline_access", "Stay connected when you are not using it"),
];

/// The registered clients: a public TV app, a public command-line tool that
/// must use PKCE and a confidential printer, all three showing a QR code of
/// `verification_uri_complete`; a public kitchen speaker that reads its code
/// out (no link) and may get only `profile` through the device grant; and a
/// confidential web portal that is not registered for the device grant.
pub(crate) fn clients() -> Clients {
    let all = ScopeSet::parse("openid profile email offline_access").expect("valid scopes");

    let mut tv = Client::for_device_grant("tv-app", vec![AuthMethod::None]);
    tv.name = "Living-room TV".to_owned();
    tv.verification_uri_complete = true;
    tv.allowed_scopes = all.clone();
    tv.default_scopes = ScopeSet::parse("profile").expect("valid scope");

    // A command-line tool: its device code may end up in a terminal's
    // scrollback or a CI log, so it must send a PKCE challenge (S256) and
    // prove it holds the verifier when it polls.
    let mut cli = Client::for_device_grant("cli", vec![AuthMethod::None]);
    cli.name = "Command-line tool".to_owned();
    cli.allowed_scopes = all.clone();
    cli.default_scopes = ScopeSet::parse("profile").expect("valid scope");
    cli.require_pkce = true;
    cli.verification_uri_complete = true;

    // No screen: it reads the code and the address out, so a link with the
    // code in it would serve no one but a phisher.
    let mut speaker = Client::for_device_grant("speaker", vec![AuthMethod::None]);
    speaker.name = "Kitchen speaker".to_owned();
    speaker.allowed_scopes = all.clone();
    speaker.default_scopes = ScopeSet::parse("profile").expect("valid scope");
    speaker.device_scopes = Some(ScopeSet::parse("profile").expect("valid scope"));

    // A web application using the host's other grants: `Client::new` leaves
    // the device grant off.
    let mut portal = Client::new("portal", vec![AuthMethod::ClientSecretPost]);
    portal.name = "Web portal".to_owned();
    portal.allowed_scopes = all.clone();

    let mut printer = Client::for_device_grant(
        "printer",
        vec![AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost],
    );
    printer.name = "Office printer".to_owned();
    printer.allowed_scopes = all;
    printer.default_scopes = ScopeSet::parse("profile").expect("valid scope");
    printer.verification_uri_complete = true;

    let registered = [&tv, &cli, &speaker, &printer, &portal]
        .into_iter()
        .map(|c| (c.id.clone(), Arc::new(c.clone())))
        .collect();
    Clients {
        registered: RwLock::new(registered),
        secrets: StaticClients::new()
            .with_public(tv)
            .with_public(cli)
            .with_public(speaker)
            .with_confidential(printer, "printer-secret")
            .with_confidential(portal, "portal-secret"),
    }
}

/// The client registry: registrations an administrator can change while the
/// server runs (here: withdraw a client from the device grant), and secrets
/// checked by the crate's `StaticClients`.
pub(crate) struct Clients {
    registered: RwLock<HashMap<ClientId, Arc<Client>>>,
    secrets: StaticClients,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

impl Clients {
    /// Registers `id` for the device grant, or withdraws it. Requests it
    /// started and people approved get `access_denied` at their next poll.
    pub(crate) fn set_device_grant(&self, id: &str, on: bool) -> bool {
        let mut registered = self.registered.write().unwrap_or_else(|e| e.into_inner());
        let Some(client) = registered.get_mut(&ClientId::new(id)) else {
            return false;
        };
        Arc::make_mut(client).device_grant = on;
        true
    }
}

#[async_trait::async_trait]
impl ClientRegistry for Clients {
    async fn find(&self, id: &ClientId) -> Result<Option<Arc<Client>>, BackendError> {
        let registered = self.registered.read().unwrap_or_else(|e| e.into_inner());
        Ok(registered.get(id).cloned())
    }

    async fn verify_secret(
        &self,
        client: &Client,
        secret: &ClientSecret,
    ) -> Result<bool, BackendError> {
        self.secrets.verify_secret(client, secret).await
    }
}

/// A person who can sign in.
#[derive(Clone)]
pub(crate) struct User {
    /// The stable identifier, used as the token subject.
    pub username: String,
    /// The name shown on pages and put in ID tokens.
    pub name: String,
    /// The email put in ID tokens (scope `email`).
    pub email: String,
    password_sha256: [u8; 32],
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The people who can sign in.
pub(crate) struct Users(HashMap<String, User>);

impl Users {
    /// alice/wonderland and bob/builder.
    pub(crate) fn demo() -> Self {
        let user = |username: &str, name: &str, password: &str| User {
            username: username.to_owned(),
            name: name.to_owned(),
            email: format!("{username}@example.com"),
            // A real server stores a slow, salted hash (Argon2, scrypt): people's
            // passwords are guessable. SHA-256 keeps this demo dependency-free.
            password_sha256: Sha256::digest(password.as_bytes()).into(),
        };
        Self(
            [
                user("alice", "Alice Liddell", "wonderland"),
                user("bob", "Bob the Builder", "builder"),
            ]
            .into_iter()
            .map(|u| (u.username.clone(), u))
            .collect(),
        )
    }

    /// The user, if the password is theirs.
    pub(crate) fn check(&self, username: &str, password: &str) -> Option<&User> {
        let user = self.0.get(username)?;
        let presented: [u8; 32] = Sha256::digest(password.as_bytes()).into();
        bool::from(presented.ct_eq(&user.password_sha256)).then_some(user)
    }

    /// The user named `username`.
    pub(crate) fn get(&self, username: &str) -> Option<&User> {
        self.0.get(username)
    }
}
