use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashTable;
use time::{Duration, OffsetDateTime};

use crate::host::store::{Inserted, PollAttempt, Polled, Store};
use crate::protocol::authorization::{
    AuthorizationId, DeviceAuthorization, RequestContext, RequestDetails, Status,
};
use crate::protocol::authorization_details::AuthorizationDetails;
use crate::protocol::client::ClientId;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::dpop::JwkThumbprint;
use crate::protocol::error::BackendError;
use crate::protocol::pkce::CodeChallenge;
use crate::protocol::polling::{Interval, Pace};
use crate::protocol::scope::ScopeSet;
use crate::protocol::user_code::UserCodeHash;

// A power of two. Many shards keep lock contention small, and the pause of one
// shard's table growing too: at 1,000,000 records a shard holds ~4,000, and its
// table (16-byte slots, rehashed without touching the records) is rebuilt in
// well under a millisecond.
const SHARDS: usize = 256;

/// The first 8 bytes of a hash (SHA-256, HMAC-SHA-256): already uniform, so they
/// are the table hash as they are. Attackers cannot choose stored codes' hashes,
/// so there is nothing to flood.
fn prefix(hash: &[u8; 32]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_le_bytes(first)
}

/// Byte 4 of the prefix: the tables use its low bits (bucket) and top 7 bits
/// (tag), which must not be the same for every entry of a shard.
fn shard_of(prefix: u64) -> usize {
    (prefix >> 32) as usize & (SHARDS - 1)
}

/// A record and its key's prefix, kept beside it so that growing the table never
/// reads the (boxed) records.
///
/// Boxed, and in a table of 16-byte slots: a table grows by doubling and so is up
/// to half empty, and empty 16-byte slots cost a tenth of empty 200-byte ones.
struct Slot {
    key: u64,
    record: Box<Stored>,
}

/// A record as the store keeps it: a [`DeviceAuthorization`] in one allocation
/// instead of two (the record and its `Arc<RequestDetails>`), with the request
/// context, code challenge and authorization details boxed only when the device sent one and the
/// status only once it is no longer pending. Reads build the
/// `DeviceAuthorization` back.
struct Stored {
    device_code_hash: DeviceCodeHash,
    user_code_hash: UserCodeHash,
    id: AuthorizationId,
    client_id: ClientId,
    scopes: ScopeSet,
    created_at: OffsetDateTime,
    expires_at: OffsetDateTime,
    extras: Option<Box<Extras>>,
    status: Option<Box<Status>>,
    interval: Interval,
    last_poll: Option<OffsetDateTime>,
    purge_at: OffsetDateTime,
    version: u64,
}

/// What only some requests carry, kept out of line.
struct Extras {
    context: RequestContext,
    code_challenge: Option<CodeChallenge>,
    authorization_details: Option<AuthorizationDetails>,
    dpop_jkt: Option<JwkThumbprint>,
}

impl Stored {
    fn new(r: &DeviceAuthorization) -> Self {
        let c = &r.request.context;
        let empty = c.ip.is_none()
            && c.user_agent.is_none()
            && c.extra.is_empty()
            && r.request.code_challenge.is_none()
            && r.request.authorization_details.is_none()
            && r.request.dpop_jkt.is_none();
        Self {
            device_code_hash: r.device_code_hash,
            user_code_hash: r.user_code_hash,
            id: r.id,
            client_id: r.request.client_id.clone(),
            scopes: r.request.scopes.clone(),
            created_at: r.request.created_at,
            expires_at: r.request.expires_at,
            extras: (!empty).then(|| {
                Box::new(Extras {
                    context: c.clone(),
                    code_challenge: r.request.code_challenge.clone(),
                    authorization_details: r.request.authorization_details.clone(),
                    dpop_jkt: r.request.dpop_jkt,
                })
            }),
            status: None,
            interval: r.interval,
            last_poll: None,
            purge_at: r.purge_at,
            version: 0,
        }
        .with_state_of(r)
    }

    /// Takes what a transition changes: status, interval, last poll and version
    /// (the `Store` contract keeps the rest of a successor as it was).
    fn with_state_of(mut self, r: &DeviceAuthorization) -> Self {
        self.set_state(r);
        self
    }

    fn set_state(&mut self, r: &DeviceAuthorization) {
        self.status = (!r.status.is_pending()).then(|| Box::new(r.status.clone()));
        self.interval = r.interval;
        self.last_poll = r.last_poll;
        self.version = r.version;
    }

    fn is_pending(&self) -> bool {
        self.status.is_none()
    }

    /// [`PollAttempt::applies_to`] on the stored form.
    fn judged_by(&self, attempt: &PollAttempt<'_>) -> bool {
        let extras = self.extras.as_deref();
        self.is_pending()
            && attempt.now < self.expires_at
            && self.client_id == *attempt.client_id
            && extras.and_then(|e| e.code_challenge.as_ref()) == attempt.challenge
            && extras
                .and_then(|e| e.dpop_jkt.as_ref())
                .is_none_or(|bound| Some(bound) == attempt.dpop_jkt)
    }

    fn to_record(&self) -> DeviceAuthorization {
        DeviceAuthorization {
            id: self.id,
            device_code_hash: self.device_code_hash,
            user_code_hash: self.user_code_hash,
            request: Arc::new(RequestDetails {
                client_id: self.client_id.clone(),
                scopes: self.scopes.clone(),
                created_at: self.created_at,
                expires_at: self.expires_at,
                context: self
                    .extras
                    .as_ref()
                    .map(|e| e.context.clone())
                    .unwrap_or_default(),
                code_challenge: self.extras.as_ref().and_then(|e| e.code_challenge.clone()),
                authorization_details: self
                    .extras
                    .as_ref()
                    .and_then(|e| e.authorization_details.clone()),
                dpop_jkt: self.extras.as_ref().and_then(|e| e.dpop_jkt),
            }),
            status: self.status.as_deref().cloned().unwrap_or(Status::Pending),
            interval: self.interval,
            last_poll: self.last_poll,
            purge_at: self.purge_at,
            version: self.version,
        }
    }
}

/// A user-code index entry: prefixes of the user-code hash and of the record's
/// device-code hash, and when the code expires.
///
/// Prefixes halve the index, and it stays exact where it must: a look-up checks
/// the full user-code hash against the record found, and a record is found by
/// its full device-code hash. Two live codes whose keyed hashes share 64 bits
/// (odds about one in 2^64 per pair) would make an insert answer
/// `UserCodeTaken`, and the endpoint then simply draws another code.
struct CodeEntry {
    user: u64,
    device: u64,
    expires: OffsetDateTime,
}

struct Shard<T> {
    table: HashTable<T>,
    next_sweep: Option<OffsetDateTime>,
}

impl<T> Default for Shard<T> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            next_sweep: None,
        }
    }
}

impl<T> Shard<T> {
    /// Whether it is time to sweep this shard; schedules the next sweep.
    fn sweep_due(&mut self, now: OffsetDateTime, every: Duration) -> bool {
        match self.next_sweep {
            Some(at) if now < at => false,
            Some(_) => {
                self.next_sweep = Some(now + every);
                true
            }
            None => {
                self.next_sweep = Some(now + every);
                false
            }
        }
    }

    /// Keeps the entries `keep` says to; gives memory back once the table is
    /// mostly empty, so that a burst of abandoned requests does not leave the
    /// store at its high-water mark.
    fn retain(&mut self, keep: impl FnMut(&mut T) -> bool, hash: impl Fn(&T) -> u64) -> u64 {
        let before = self.table.len();
        self.table.retain(keep);
        let (len, capacity) = (self.table.len(), self.table.capacity());
        if capacity > 64 && len < capacity / 4 {
            self.table.shrink_to(len * 2, hash);
        }
        (before - len) as u64
    }
}

/// What an insert of a device-code hash that is already stored fails with.
const DUPLICATE_DEVICE_CODE: &str = "a record with this device-code hash is already stored";

fn slot_hash(s: &Slot) -> u64 {
    s.key
}

fn code_hash(e: &CodeEntry) -> u64 {
    e.user
}

/// The embedded store: records in 256 mutex-guarded shards, a user-code index
/// sharded the same way. Only an insert holds two locks at once, a code
/// shard's and then a record shard's; nothing takes them in the other order.
///
/// Expired records go on their own: each shard sweeps itself, on an insert, at
/// most once per [`MemoryStore::with_sweep_every`] (default 60 s), so memory
/// follows the number of live requests without a background task.
pub struct MemoryStore {
    records: Box<[Mutex<Shard<Slot>>]>,
    codes: Box<[Mutex<Shard<CodeEntry>>]>,
    sweep_every: Duration,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("records", &self.len())
            .finish()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard cannot leave a record half-written (every
    // write is one assignment), so a poisoned lock is safe to keep using.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether a slot holds the record of `device` (its prefix `key` and its full
/// hash).
fn holds(slot: &Slot, key: u64, device: &DeviceCodeHash) -> bool {
    slot.key == key && slot.record.device_code_hash == *device
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            records: (0..SHARDS).map(|_| Mutex::default()).collect(),
            codes: (0..SHARDS).map(|_| Mutex::default()).collect(),
            sweep_every: Duration::seconds(60),
        }
    }

    /// Sets how often each shard sweeps out purgeable records.
    pub fn with_sweep_every(mut self, every: Duration) -> Self {
        self.sweep_every = every;
        self
    }

    /// The number of records held (live or awaiting purge).
    pub fn len(&self) -> usize {
        self.records.iter().map(|s| lock(s).table.len()).sum()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn purge_records(&self, now: OffsetDateTime) -> u64 {
        let mut removed = 0;
        for shard in self.records.iter() {
            removed += lock(shard).retain(|s| s.record.purge_at > now, slot_hash);
        }
        for shard in self.codes.iter() {
            lock(shard).retain(|e| e.expires > now, code_hash);
        }
        removed
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError> {
        let (user, device) = (
            prefix(&record.user_code_hash.0),
            prefix(&record.device_code_hash.0),
        );
        let full = &record.device_code_hash;
        let boxed = Box::new(Stored::new(record));
        // The one place two locks are held: a code shard, then a record shard
        // (nothing takes them in the other order), so that checking both keys
        // and claiming both is one step.
        let mut codes = lock(&self.codes[shard_of(user)]);
        if codes.sweep_due(now, self.sweep_every) {
            codes.retain(|e| e.expires > now, code_hash);
        }
        let mut records = lock(&self.records[shard_of(device)]);
        if records.sweep_due(now, self.sweep_every) {
            records.retain(|s| s.record.purge_at > now, slot_hash);
        }
        if records
            .table
            .find(device, |s| holds(s, device, full))
            .is_some()
        {
            // Overwriting would reset a record's status and version under
            // whoever holds its device code.
            return Err(BackendError::other(DUPLICATE_DEVICE_CODE));
        }
        let entry = CodeEntry {
            user,
            device,
            expires: record.request.expires_at,
        };
        match codes.table.find_mut(user, |e| e.user == user) {
            Some(e) if e.expires > now => return Ok(Inserted::UserCodeTaken),
            Some(e) => *e = entry,
            None => {
                codes.table.insert_unique(user, entry, code_hash);
            }
        }
        records.table.insert_unique(
            device,
            Slot {
                key: device,
                record: boxed,
            },
            slot_hash,
        );
        Ok(Inserted::Stored)
    }

    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let key = prefix(&hash.0);
        Ok(lock(&self.records[shard_of(key)])
            .table
            .find(key, |s| holds(s, key, hash))
            .map(|s| s.record.to_record()))
    }

    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError> {
        let user = prefix(&hash.0);
        let device = match lock(&self.codes[shard_of(user)])
            .table
            .find(user, |e| e.user == user)
        {
            Some(e) if e.expires > now => e.device,
            _ => return Ok(None),
        };
        // The index holds the device hash's prefix; the record is the one with
        // that prefix whose full user-code hash is the one asked for.
        Ok(lock(&self.records[shard_of(device)])
            .table
            .find(device, |s| {
                s.key == device && s.record.is_pending() && s.record.user_code_hash == *hash
            })
            .map(|s| s.record.to_record()))
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError> {
        let device = prefix(&next.device_code_hash.0);
        let left_pending = {
            let mut records = lock(&self.records[shard_of(device)]);
            let Some(slot) = records
                .table
                .find_mut(device, |s| holds(s, device, &next.device_code_hash))
            else {
                return Ok(false);
            };
            let current = &mut slot.record;
            if current.version != expected_version || next.version != expected_version + 1 {
                return Ok(false);
            }
            let left_pending = current.is_pending() && !next.status.is_pending();
            current.set_state(next);
            left_pending
        };
        if left_pending {
            let user = prefix(&next.user_code_hash.0);
            let mut codes = lock(&self.codes[shard_of(user)]);
            if let Ok(entry) = codes
                .table
                .find_entry(user, |e| e.user == user && e.device == device)
            {
                entry.remove();
            }
        }
        Ok(true)
    }

    /// Judged under the shard's lock, on the stored form: a pending poll
    /// builds no `DeviceAuthorization`, takes one lock instead of two, and
    /// writes the two fields it changes. The rules are the state machine's
    /// (`PollingRules::pace`, and the pending branch of its poll); the
    /// conformance suite's differential check holds the two together.
    async fn poll(
        &self,
        hash: &DeviceCodeHash,
        attempt: &PollAttempt<'_>,
    ) -> Result<Polled, BackendError> {
        let key = prefix(&hash.0);
        let mut records = lock(&self.records[shard_of(key)]);
        let Some(slot) = records.table.find_mut(key, |s| holds(s, key, hash)) else {
            return Ok(Polled::Undecided(None));
        };
        let stored = &mut slot.record;
        if !stored.judged_by(attempt) {
            return Ok(Polled::Undecided(Some(stored.to_record())));
        }
        match attempt
            .rules
            .pace(stored.interval, stored.last_poll, attempt.now)
        {
            Pace::OnTime => {
                stored.last_poll = Some(attempt.now);
                stored.version += 1;
                Ok(Polled::Pending)
            }
            Pace::TooEarly { slowed } => {
                // At the cap the interval no longer grows: nothing to write.
                if slowed != stored.interval {
                    stored.interval = slowed;
                    stored.version += 1;
                }
                Ok(Polled::SlowDown(slowed, Box::new(stored.to_record())))
            }
        }
    }

    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError> {
        Ok(self.purge_records(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::authorization::tests::{approval, at, pending};

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn with_codes(device: u8, user: u8) -> DeviceAuthorization {
        let mut r = pending("openid");
        r.device_code_hash = DeviceCodeHash([device; 32]);
        r.user_code_hash = UserCodeHash([user; 32]);
        r
    }

    #[test]
    fn the_store_contract() {
        run(async {
            let s = MemoryStore::new();
            let a = with_codes(1, 2);
            assert_eq!(s.insert(&a, at(0)).await.unwrap(), Inserted::Stored);
            // The same user code, live: refused. Another one: stored.
            assert_eq!(
                s.insert(&with_codes(3, 2), at(1)).await.unwrap(),
                Inserted::UserCodeTaken
            );
            let mut other_user = [2u8; 32];
            other_user[31] = 9;
            let mut b = with_codes(4, 0);
            b.user_code_hash = UserCodeHash(other_user);
            // Shares the index's 8-byte key with `a`'s live code: refused, harmlessly.
            assert_eq!(s.insert(&b, at(1)).await.unwrap(), Inserted::UserCodeTaken);
            assert_eq!(
                s.by_user_code(&UserCodeHash(other_user), at(1))
                    .await
                    .unwrap(),
                None
            );
            assert_eq!(
                s.by_device_code(&a.device_code_hash).await.unwrap(),
                Some(a.clone())
            );
            assert_eq!(
                s.by_user_code(&a.user_code_hash, at(1)).await.unwrap(),
                Some(a.clone())
            );
            // Expired code: index dead; the record stays until purge_at.
            assert_eq!(
                s.by_user_code(&a.user_code_hash, at(600)).await.unwrap(),
                None
            );
            // Compare-and-set: wrong versions refused; leaving Pending drops the code.
            let approved = a.approve(approval("openid"), at(5)).unwrap();
            assert!(!s.compare_and_set(1, &approved).await.unwrap());
            assert!(s.compare_and_set(0, &approved).await.unwrap());
            assert!(!s.compare_and_set(0, &approved).await.unwrap());
            assert_eq!(
                s.by_user_code(&a.user_code_hash, at(6)).await.unwrap(),
                None
            );
            assert_eq!(
                s.by_device_code(&a.device_code_hash).await.unwrap(),
                Some(approved)
            );
            // The user code is free again for a new request.
            assert_eq!(
                s.insert(&with_codes(5, 2), at(7)).await.unwrap(),
                Inserted::Stored
            );
            // Retention: kept before purge_at (600 + 300), deleted from it on.
            assert_eq!(s.purge_expired(at(899)).await.unwrap(), 0);
            assert_eq!(s.purge_expired(at(900)).await.unwrap(), 2);
            assert!(s.is_empty());
        });
    }
}
