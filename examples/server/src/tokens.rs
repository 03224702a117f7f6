//! The tokens this server mints: opaque random access and refresh tokens, kept
//! in memory as SHA-256 digests (a leaked table holds no usable token), and an
//! ID token when `openid` was granted.
//!
//! The crate calls [`Tokens::issue`] once per approved device code; the
//! `refresh_token` grant ([`Tokens::refresh`]) is this server's own. Refresh
//! tokens rotate: each works once, and the digests of spent ones are kept, so
//! that a spent token presented again (one side of a stolen copy) revokes its
//! whole family: every token that came from the same device authorization
//! (RFC 9700 §4.14.2).
//!
//! A device that sent a DPoP proof (RFC 9449) gets DPoP-bound tokens: the
//! access token is usable only with proofs of the same key (its `cnf.jkt`,
//! which `/api/me` checks), and so is the refresh token (RFC 9449 §5: the
//! device is a public client).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use device_grant::{
    ApprovedGrant, AuthorizationDetails, AuthorizationId, BackendError, ClientId, Clock,
    DPOP_TOKEN_TYPE, JwkThumbprint, ScopeSet, TokenIssuer, TokenResponse,
};
use sha2::{Digest as _, Sha256};
use time::{Duration, OffsetDateTime};

use super::jwt::Signer;

type Digest = [u8; 32];

/// What an access token stands for: what `/api/me` answers.
#[derive(Debug, Clone)]
pub(crate) struct AccessGrant {
    /// The person.
    pub subject: String,
    /// The client acting for them.
    pub client_id: ClientId,
    /// What it may do.
    pub scopes: ScopeSet,
    /// The key the token is bound to (`cnf.jkt`), if it is DPoP-bound.
    pub jkt: Option<JwkThumbprint>,
    /// The authorization details (RFC 9396) the person granted.
    pub authorization_details: Option<AuthorizationDetails>,
    expires_at: OffsetDateTime,
    grant: AuthorizationId,
}

/// What a refresh token stands for.
#[derive(Debug, Clone)]
struct RefreshGrant {
    subject: String,
    client_id: ClientId,
    /// What the person approved: every refresh token of the family keeps it,
    /// however narrow the access tokens asked for (RFC 6749 §6).
    scopes: ScopeSet,
    authorization_details: Option<AuthorizationDetails>,
    grant: AuthorizationId,
    // The person's details put in ID tokens, as approved at consent.
    claims: serde_json::Value,
    /// The DPoP key the family is bound to: every refresh needs its proof.
    jkt: Option<JwkThumbprint>,
}

/// A rotated-out refresh token: whose, and which family.
#[derive(Debug, Clone)]
struct Spent {
    client_id: ClientId,
    grant: AuthorizationId,
}

/// Live access tokens a family keeps: minting one more drops its oldest. A
/// device needs one at a time; the bound keeps a client that refreshes in a
/// loop from filling memory with access tokens an hour long.
const ACCESS_PER_FAMILY: usize = 8;

/// Spent refresh tokens a family remembers for reuse detection, the latest
/// ones. An older spent token is still refused (it is in no table), but no
/// longer revokes the family: at one refresh an access-token lifetime, the
/// last 64 cover days of rotations.
const SPENT_PER_FAMILY: usize = 64;

#[derive(Default)]
struct Tables {
    access: HashMap<Digest, AccessGrant>,
    refresh: HashMap<Digest, RefreshGrant>,
    /// Spent refresh tokens, until their family is revoked or they fall out
    /// of the family's latest [`SPENT_PER_FAMILY`].
    spent: HashMap<Digest, Spent>,
    /// Per family, its access tokens and spent refresh tokens, oldest first.
    families: HashMap<AuthorizationId, Family>,
}

#[derive(Default)]
struct Family {
    /// With their expiry: one lifetime for all, so minting order is expiry
    /// order.
    access: VecDeque<(OffsetDateTime, Digest)>,
    spent: VecDeque<Digest>,
}

impl Tables {
    /// Keeps `token`, spent, for reuse detection within its family's bound.
    fn spend(&mut self, token: Digest, spent: Spent) {
        let family = self.families.entry(spent.grant).or_default();
        family.spent.push_back(token);
        if family.spent.len() > SPENT_PER_FAMILY {
            if let Some(oldest) = family.spent.pop_front() {
                self.spent.remove(&oldest);
            }
        }
        self.spent.insert(token, spent);
    }

    /// Keeps an access token within its family's bound, dropping the family's
    /// expired ones: the table follows the number of live tokens, with no
    /// scan of it.
    fn keep_access(&mut self, token: Digest, grant: AccessGrant, now: OffsetDateTime) {
        let Self {
            access, families, ..
        } = self;
        let family = families.entry(grant.grant).or_default();
        while let Some(&(expires_at, oldest)) = family.access.front() {
            if expires_at > now && family.access.len() < ACCESS_PER_FAMILY {
                break;
            }
            family.access.pop_front();
            access.remove(&oldest);
        }
        family.access.push_back((grant.expires_at, token));
        access.insert(token, grant);
    }
}

/// Why a refresh was refused.
#[derive(Debug)]
pub(crate) enum RefreshError {
    /// Unknown, spent, revoked, or another client's (`invalid_grant`).
    InvalidGrant,
    /// A scope beyond the approved ones (`invalid_scope`).
    InvalidScope,
    /// The token is DPoP-bound and the request has no proof of its key
    /// (`invalid_dpop_proof`).
    DpopKey,
}

/// The token tables and the minting rules.
pub(crate) struct Tokens {
    issuer: String,
    clock: Arc<dyn Clock>,
    access_lifetime: Duration,
    signer: Arc<Signer>,
    tables: Mutex<Tables>,
    /// Token responses minted for device codes, counted.
    issued: Arc<AtomicUsize>,
}

fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl Tokens {
    pub(crate) fn new(
        issuer: String,
        clock: Arc<dyn Clock>,
        access_lifetime: Duration,
        signer: Arc<Signer>,
        issued: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            issuer,
            clock,
            access_lifetime,
            signer,
            tables: Mutex::default(),
            issued,
        }
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // Every write is a single insert or remove: a panic elsewhere cannot leave
        // the tables half-updated, so a poisoned lock is still good.
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The grant behind a live access token.
    pub(crate) fn introspect(&self, access_token: &str) -> Option<AccessGrant> {
        let now = self.clock.now();
        self.tables()
            .access
            .get(&digest(access_token))
            .filter(|g| g.expires_at > now)
            .cloned()
    }

    /// Revokes every token that came from the device authorization `grant`.
    pub(crate) fn revoke_grant(&self, grant: AuthorizationId) {
        let mut tables = self.tables();
        tables.access.retain(|_, g| g.grant != grant);
        tables.refresh.retain(|_, g| g.grant != grant);
        tables.spent.retain(|_, s| s.grant != grant);
        tables.families.remove(&grant);
    }

    /// The `refresh_token` grant (RFC 6749 §6) for an authenticated client:
    /// rotates the refresh token, and may narrow the access token's scopes.
    /// Only the owner can spend a token; the owner presenting a spent one
    /// revokes its family. A DPoP-bound token needs `proof`, the key of the
    /// request's (checked) DPoP proof, to be its key.
    pub(crate) fn refresh(
        &self,
        client_id: &ClientId,
        refresh_token: &str,
        scope: Option<&str>,
        proof: Option<JwkThumbprint>,
    ) -> Result<TokenResponse, RefreshError> {
        let key = digest(refresh_token);
        let old = {
            let mut tables = self.tables();
            if let Some(spent) = tables.spent.get(&key).cloned() {
                // Another client's spent token is just unknown to it.
                if spent.client_id == *client_id {
                    drop(tables);
                    tracing::warn!(
                        event = "refresh_token_reused",
                        authorization = %spent.grant,
                        client_id = client_id.as_str(),
                        "a spent refresh token was presented again; its family is revoked"
                    );
                    self.revoke_grant(spent.grant);
                }
                return Err(RefreshError::InvalidGrant);
            }
            // Checked before anything is spent: a client cannot destroy a
            // token it does not own.
            match tables.refresh.get(&key) {
                Some(grant) if grant.client_id == *client_id => {
                    if grant.jkt.is_some() && grant.jkt != proof {
                        return Err(RefreshError::DpopKey);
                    }
                }
                _ => return Err(RefreshError::InvalidGrant),
            }
            let scopes_ok = match scope {
                None => true,
                Some(s) => ScopeSet::parse(s).is_ok_and(|asked| {
                    let held = &tables.refresh[&key].scopes;
                    asked.is_subset(held)
                }),
            };
            if !scopes_ok {
                return Err(RefreshError::InvalidScope);
            }
            let old = tables
                .refresh
                .remove(&key)
                .ok_or(RefreshError::InvalidGrant)?;
            tables.spend(
                key,
                Spent {
                    client_id: client_id.clone(),
                    grant: old.grant,
                },
            );
            old
        };
        let scopes = match scope.map(ScopeSet::parse) {
            Some(Ok(asked)) => asked,
            _ => old.scopes.clone(),
        };
        // A bound family stays bound; an unbound one gets an access token
        // bound to this request's key, if it sent a proof.
        let jkt = old.jkt.or(proof);
        let mut response = self.mint(&old, &scopes, jkt);
        // The family goes on with what was approved, whatever this access
        // token was narrowed to.
        let refresh_token = self.new_refresh_token(&old, old.scopes.clone());
        response.refresh_token = Some(device_grant::Token::new(refresh_token));
        if scopes != old.scopes {
            response.scope = Some(scopes);
        }
        Ok(response)
    }

    fn new_refresh_token(&self, family: &RefreshGrant, scopes: ScopeSet) -> String {
        let token = random_token();
        self.tables().refresh.insert(
            digest(&token),
            RefreshGrant {
                scopes,
                ..family.clone()
            },
        );
        token
    }

    /// An access token (and an ID token for `openid`) for `scopes` of what
    /// `family` holds, bound to `jkt` if it is set.
    fn mint(
        &self,
        family: &RefreshGrant,
        scopes: &ScopeSet,
        jkt: Option<JwkThumbprint>,
    ) -> TokenResponse {
        let (subject, client_id) = (family.subject.as_str(), &family.client_id);
        let now = self.clock.now();
        let access_token = random_token();
        let mut response = TokenResponse::bearer(access_token.clone());
        if jkt.is_some() {
            DPOP_TOKEN_TYPE.clone_into(&mut response.token_type);
        }
        response.expires_in = Some(self.access_lifetime.whole_seconds().unsigned_abs());
        self.tables().keep_access(
            digest(&access_token),
            AccessGrant {
                subject: subject.to_owned(),
                client_id: client_id.clone(),
                scopes: scopes.clone(),
                jkt,
                authorization_details: family.authorization_details.clone(),
                expires_at: now + self.access_lifetime,
                grant: family.grant,
            },
            now,
        );
        if scopes.contains("openid") {
            let id_token = self.id_token(subject, client_id, scopes, &family.claims, now);
            response.id_token = Some(device_grant::Token::new(id_token));
        }
        response
    }

    /// An OpenID Connect ID token: who signed in, for which client, until when;
    /// `name` and `email` only when those scopes were granted.
    fn id_token(
        &self,
        subject: &str,
        client_id: &ClientId,
        scopes: &ScopeSet,
        claims: &serde_json::Value,
        now: OffsetDateTime,
    ) -> String {
        let mut token = serde_json::json!({
            "iss": self.issuer,
            "sub": subject,
            "aud": client_id.as_str(),
            "iat": now.unix_timestamp(),
            "exp": (now + Duration::minutes(10)).unix_timestamp(),
        });
        for (scope, claim) in [
            ("openid", "auth_time"),
            ("profile", "name"),
            ("email", "email"),
        ] {
            if let Some(value) = claims.get(claim).filter(|_| scopes.contains(scope)) {
                token[claim] = value.clone();
            }
        }
        self.signer.sign(&token)
    }
}

#[async_trait::async_trait]
impl TokenIssuer for Tokens {
    async fn issue(&self, grant: &ApprovedGrant) -> Result<TokenResponse, BackendError> {
        let approval = &grant.approval;
        let claims: serde_json::Value = approval
            .data
            .as_ref()
            .and_then(|data| data.decode().ok())
            .unwrap_or_default();
        self.issued.fetch_add(1, Ordering::SeqCst);
        let family = RefreshGrant {
            subject: approval.subject.as_str().to_owned(),
            client_id: grant.client.id.clone(),
            scopes: approval.scopes.clone(),
            authorization_details: approval.authorization_details.clone(),
            grant: grant.id,
            claims,
            jkt: grant.dpop_jkt,
        };
        let mut response = self.mint(&family, &approval.scopes, grant.dpop_jkt);
        if approval.scopes.contains("offline_access") {
            let token = self.new_refresh_token(&family, approval.scopes.clone());
            response.refresh_token = Some(device_grant::Token::new(token));
        }
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(clock: Arc<device_grant::ManualClock>) -> Tokens {
        Tokens::new(
            "https://as.example".to_owned(),
            clock,
            Duration::hours(1),
            Arc::new(Signer::generate()),
            Arc::default(),
        )
    }

    fn family(tokens: &Tokens, id: AuthorizationId) -> String {
        let family = RefreshGrant {
            subject: "alice".to_owned(),
            client_id: ClientId::new("tv-app"),
            scopes: ScopeSet::parse("profile offline_access").unwrap(),
            authorization_details: None,
            grant: id,
            claims: serde_json::Value::Null,
            jkt: None,
        };
        let scopes = family.scopes.clone();
        tokens.mint(&family, &scopes, None);
        tokens.new_refresh_token(&family, scopes)
    }

    #[test]
    fn a_refresh_loop_keeps_the_tables_bounded() {
        let clock = Arc::new(device_grant::ManualClock::default());
        let tokens = tokens(clock.clone());
        let client = ClientId::new("tv-app");
        let mut refresh = family(&tokens, AuthorizationId::generate());
        let quiet = family(&tokens, AuthorizationId::generate());
        for _ in 0..1_000 {
            let response = tokens.refresh(&client, &refresh, None, None).unwrap();
            refresh = response.refresh_token.unwrap().secret().to_owned();
            clock.advance(Duration::seconds(1));
        }
        let tables = tokens.tables();
        // The looping family's 8 latest access tokens and the quiet one's.
        assert_eq!(tables.access.len(), ACCESS_PER_FAMILY + 1);
        assert_eq!(tables.spent.len(), SPENT_PER_FAMILY);
        assert_eq!(tables.refresh.len(), 2);
        drop(tables);
        // The quiet family is untouched.
        tokens.refresh(&client, &quiet, None, None).unwrap();
    }

    #[test]
    fn expired_access_tokens_leave_as_their_family_mints() {
        let clock = Arc::new(device_grant::ManualClock::default());
        let tokens = tokens(clock.clone());
        let client = ClientId::new("tv-app");
        let mut refresh = family(&tokens, AuthorizationId::generate());
        for _ in 0..3 {
            clock.advance(Duration::minutes(40));
            let response = tokens.refresh(&client, &refresh, None, None).unwrap();
            refresh = response.refresh_token.unwrap().secret().to_owned();
        }
        // Minted at 0, 40, 80 and 120 min with an hour to live: at 120 min
        // the first two have expired and are gone.
        assert_eq!(tokens.tables().access.len(), 2);
    }
}
