//! Client registrations: a client is public or confidential, never both; its
//! default scopes are within its allowed ones; and client authentication for
//! other grants does not depend on the device grant.

use std::sync::Arc;

use base64::Engine as _;
use device_grant::{
    ApprovedGrant, AuthMethod, BackendError, Client, ClientId, ClientRegistry, ClientSecret,
    Config, DEVICE_CODE_GRANT_TYPE, DeviceGrant, EndpointRequest, ErrorCode, OAuthError,
    RequestContext, ScopeSet, StaticClients, TokenIssuer, TokenResponse, UserCodeKey,
};

const SECRET: &str = "a-long-client-secret";

struct NoTokens;

#[async_trait::async_trait]
impl TokenIssuer for NoTokens {
    async fn issue(&self, _: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        Err(BackendError::other("unused"))
    }
}

/// A registry written by a host, which checks nothing at registration: the
/// endpoints must hold the line themselves.
struct HostRegistry(Vec<Arc<Client>>);

#[async_trait::async_trait]
impl ClientRegistry for HostRegistry {
    async fn find(&self, id: &ClientId) -> Result<Option<Arc<Client>>, BackendError> {
        Ok(self.0.iter().find(|c| c.id == *id).cloned())
    }

    async fn verify_secret(&self, _: &Client, secret: &ClientSecret) -> Result<bool, BackendError> {
        Ok(secret.ct_eq(SECRET.as_bytes()))
    }
}

fn grant(clients: impl ClientRegistry + 'static) -> DeviceGrant {
    let config = Config::builder(
        "https://as.example/device",
        UserCodeKey::new(&[9; 32]).unwrap(),
    )
    .build()
    .unwrap();
    DeviceGrant::builder(config, Arc::new(clients), Arc::new(NoTokens)).build()
}

fn basic(id: &str, secret: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

fn scopes(list: &str) -> ScopeSet {
    ScopeSet::parse(list).unwrap()
}

async fn start(grant: &DeviceGrant, request: EndpointRequest<'_>) -> Result<(), OAuthError> {
    grant
        .device_authorization(request, RequestContext::default())
        .await
        .map(drop)
}

/// A token request that gets as far as client authentication (the device code
/// is well-formed but unknown: `invalid_grant` once the client is through).
async fn poll(grant: &DeviceGrant, body: &str, header: Option<&str>) -> OAuthError {
    let body = format!(
        "grant_type={DEVICE_CODE_GRANT_TYPE}&device_code={}&{body}",
        "A".repeat(43)
    );
    let mut request = EndpointRequest::form(body.as_bytes());
    if let Some(header) = header {
        request = request.with_authorization(header);
    }
    grant.token(request).await.unwrap_err()
}

fn mixed() -> Client {
    Client::for_device_grant(
        "mixed",
        vec![AuthMethod::ClientSecretPost, AuthMethod::None],
    )
}

#[tokio::test]
async fn a_client_that_is_not_public_never_authenticates_with_its_id_alone() {
    let grant = grant(HostRegistry(vec![Arc::new(mixed())]));
    let by_id = EndpointRequest::form(b"client_id=mixed");
    assert!(matches!(
        start(&grant, by_id).await,
        Err(OAuthError::InvalidClient {
            via_header: false,
            ..
        })
    ));
    assert!(matches!(
        poll(&grant, "client_id=mixed", None).await,
        OAuthError::InvalidClient {
            via_header: false,
            ..
        }
    ));
    assert!(matches!(
        grant.authenticate_client(by_id).await,
        Err(OAuthError::InvalidClient {
            via_header: false,
            ..
        })
    ));
    // With its secret, it is the confidential client it also claims to be.
    let with_secret = format!("client_id=mixed&client_secret={SECRET}");
    start(&grant, EndpointRequest::form(with_secret.as_bytes()))
        .await
        .unwrap();
    assert_eq!(
        poll(&grant, &with_secret, None).await.code(),
        ErrorCode::InvalidGrant
    );
}

#[tokio::test]
async fn a_public_client_still_authenticates_with_its_id() {
    let grant = grant(HostRegistry(vec![Arc::new(Client::for_device_grant(
        "tv",
        vec![AuthMethod::None],
    ))]));
    start(&grant, EndpointRequest::form(b"client_id=tv"))
        .await
        .unwrap();
    assert_eq!(
        poll(&grant, "client_id=tv", None).await.code(),
        ErrorCode::InvalidGrant
    );
    // A public client has no secret to present.
    let post = format!("client_id=tv&client_secret={SECRET}");
    assert!(matches!(
        start(&grant, EndpointRequest::form(post.as_bytes())).await,
        Err(OAuthError::InvalidClient { .. })
    ));
}

#[test]
#[should_panic(expected = "client `mixed`")]
fn static_clients_panic_on_a_confidential_registration_that_lists_none() {
    let _ = StaticClients::new().with_confidential(mixed(), SECRET);
}

#[test]
#[should_panic(expected = "client `printer`")]
fn static_clients_panic_on_a_public_registration_with_a_secret_method() {
    let printer = Client::for_device_grant("printer", vec![AuthMethod::ClientSecretBasic]);
    let _ = StaticClients::new().with_public(printer);
}

#[test]
#[should_panic(expected = "client `tv`")]
fn static_clients_panic_on_default_scopes_beyond_the_allowed_ones() {
    let mut tv = Client::for_device_grant("tv", vec![AuthMethod::None]);
    tv.allowed_scopes = scopes("profile");
    tv.default_scopes = scopes("profile email");
    let _ = StaticClients::new().with_public(tv);
}

#[tokio::test]
async fn omitted_scope_grants_the_defaults_only_when_they_are_allowed() {
    let mut greedy = Client::for_device_grant("greedy", vec![AuthMethod::None]);
    greedy.allowed_scopes = scopes("profile");
    greedy.default_scopes = scopes("profile email");
    let mut modest = Client::for_device_grant("modest", vec![AuthMethod::None]);
    modest.allowed_scopes = scopes("profile email");
    modest.default_scopes = scopes("profile");
    let grant = grant(HostRegistry(vec![Arc::new(greedy), Arc::new(modest)]));

    let err = start(&grant, EndpointRequest::form(b"client_id=greedy"))
        .await
        .unwrap_err();
    assert!(matches!(err, OAuthError::InvalidScope), "{err:?}");
    assert_eq!(err.to_http().status, 400);
    // Naming the defaults does not get around it either.
    let err = start(
        &grant,
        EndpointRequest::form(b"client_id=greedy&scope=profile%20email"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, OAuthError::InvalidScope), "{err:?}");
    // What is allowed still is.
    start(
        &grant,
        EndpointRequest::form(b"client_id=greedy&scope=profile"),
    )
    .await
    .unwrap();

    let codes = grant
        .device_authorization(
            EndpointRequest::form(b"client_id=modest"),
            RequestContext::default(),
        )
        .await
        .unwrap();
    let found = grant
        .verify(
            codes.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    assert_eq!(found.request.scopes, scopes("profile"));
}

/// Two clients the device grant is not for: a public web app and a
/// confidential back end, both using the host's other grants.
fn not_for_devices() -> StaticClients {
    let mut web = Client::for_device_grant("web", vec![AuthMethod::None]);
    web.device_grant = false;
    let mut backend = Client::for_device_grant(
        "backend",
        vec![AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost],
    );
    backend.device_grant = false;
    StaticClients::new()
        .with_public(web)
        .with_confidential(backend, SECRET)
}

#[tokio::test]
async fn authenticate_client_does_not_depend_on_the_device_grant() {
    let grant = grant(not_for_devices());
    let web = grant
        .authenticate_client(EndpointRequest::form(
            b"grant_type=refresh_token&client_id=web",
        ))
        .await
        .unwrap();
    assert_eq!(web.id.as_str(), "web");
    let header = basic("backend", SECRET);
    let backend = grant
        .authenticate_client(
            EndpointRequest::form(b"grant_type=refresh_token").with_authorization(&header),
        )
        .await
        .unwrap();
    assert_eq!(backend.id.as_str(), "backend");
    // Authentication itself is as strict as ever.
    let wrong = basic("backend", "wrong");
    assert!(matches!(
        grant
            .authenticate_client(
                EndpointRequest::form(b"grant_type=refresh_token").with_authorization(&wrong)
            )
            .await,
        Err(OAuthError::InvalidClient {
            via_header: true,
            ..
        })
    ));
    assert!(matches!(
        grant
            .authenticate_client(EndpointRequest::form(b"client_id=backend"))
            .await,
        Err(OAuthError::InvalidClient {
            via_header: false,
            ..
        })
    ));
}

#[tokio::test]
async fn the_device_grant_endpoints_still_refuse_clients_without_it() {
    let grant = grant(not_for_devices());
    let header = basic("backend", SECRET);
    for request in [
        EndpointRequest::form(b"client_id=web"),
        EndpointRequest::form(b"").with_authorization(&header),
    ] {
        let err = start(&grant, request).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::UnauthorizedClient, "{err:?}");
    }
    assert_eq!(
        poll(&grant, "client_id=web", None).await.code(),
        ErrorCode::UnauthorizedClient
    );
    assert_eq!(
        poll(&grant, "", Some(&header)).await.code(),
        ErrorCode::UnauthorizedClient
    );
    // A wrong secret is a failed authentication first, not a client that may
    // not use the grant: nothing is told about the registration.
    let wrong = basic("backend", "wrong");
    assert!(matches!(
        poll(&grant, "", Some(&wrong)).await,
        OAuthError::InvalidClient {
            via_header: true,
            ..
        }
    ));
}

#[test]
fn try_registrations_say_what_is_wrong() {
    use device_grant::RegistrationError as E;
    let id = |s: &str| ClientId::new(s);
    let public = |name: &str, methods: Vec<AuthMethod>| Client::for_device_grant(name, methods);
    let clients = StaticClients::new;

    assert_eq!(
        clients()
            .try_with_confidential(mixed(), SECRET)
            .unwrap_err(),
        E::MixedAuthMethods(id("mixed"))
    );
    assert_eq!(
        clients().try_with_public(mixed()).unwrap_err(),
        E::MixedAuthMethods(id("mixed"))
    );
    assert_eq!(
        clients()
            .try_with_confidential(public("empty", vec![]), SECRET)
            .unwrap_err(),
        E::NoAuthMethod(id("empty"))
    );
    assert_eq!(
        clients()
            .try_with_public(public("printer", vec![AuthMethod::ClientSecretBasic]))
            .unwrap_err(),
        E::NotPublic(id("printer"))
    );
    assert_eq!(
        clients()
            .try_with_confidential(public("tv", vec![AuthMethod::None]), SECRET)
            .unwrap_err(),
        E::NotConfidential(id("tv"))
    );
    assert_eq!(
        clients()
            .try_with_confidential(public("printer", vec![AuthMethod::ClientSecretPost]), "")
            .unwrap_err(),
        E::EmptySecret(id("printer"))
    );
    let mut greedy = public("greedy", vec![AuthMethod::None]);
    greedy.default_scopes = scopes("email");
    assert_eq!(
        clients().try_with_public(greedy).unwrap_err(),
        E::DefaultScopesNotAllowed(id("greedy"))
    );
    // One identifier, one registration: a second would silently replace the first.
    let twice = clients()
        .try_with_public(public("tv", vec![AuthMethod::None]))
        .unwrap()
        .try_with_confidential(public("tv", vec![AuthMethod::ClientSecretBasic]), SECRET)
        .unwrap_err();
    assert_eq!(twice, E::Duplicate(id("tv")));
    // The message names the client, for the operator reading a start-up failure.
    assert!(twice.to_string().contains("`tv`"), "{twice}");
}

#[tokio::test]
async fn valid_try_registrations_authenticate() {
    let mut tv = Client::for_device_grant("tv", vec![AuthMethod::None]);
    tv.allowed_scopes = scopes("profile email");
    tv.default_scopes = scopes("profile");
    let printer = Client::for_device_grant(
        "printer",
        vec![AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost],
    );
    let clients = StaticClients::new()
        .try_with_public(tv)
        .unwrap()
        .try_with_confidential(printer, SECRET)
        .unwrap();
    let grant = grant(clients);
    start(&grant, EndpointRequest::form(b"client_id=tv"))
        .await
        .unwrap();
    let header = basic("printer", SECRET);
    start(
        &grant,
        EndpointRequest::form(b"").with_authorization(&header),
    )
    .await
    .unwrap();
    assert!(matches!(
        start(&grant, EndpointRequest::form(b"client_id=printer")).await,
        Err(OAuthError::InvalidClient { .. })
    ));
}

#[test]
fn client_validate_serves_host_registries() {
    use device_grant::RegistrationError as E;
    let tv = Client::for_device_grant("tv", vec![AuthMethod::None]);
    assert!(tv.is_public() && !tv.is_confidential());
    tv.validate().unwrap();
    let printer = Client::for_device_grant(
        "printer",
        vec![AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost],
    );
    assert!(printer.is_confidential() && !printer.is_public());
    printer.validate().unwrap();
    let m = mixed();
    assert!(!m.is_public() && !m.is_confidential());
    assert_eq!(
        m.validate(),
        Err(E::MixedAuthMethods(ClientId::new("mixed")))
    );
    let none = Client::for_device_grant("none", vec![]);
    assert!(!none.is_public() && !none.is_confidential());
    assert_eq!(none.validate(), Err(E::NoAuthMethod(ClientId::new("none"))));
}
