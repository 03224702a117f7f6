//! Storage of device authorizations.

use time::OffsetDateTime;

use crate::protocol::authorization::DeviceAuthorization;
use crate::protocol::client::ClientId;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::dpop::JwkThumbprint;
use crate::protocol::error::BackendError;
use crate::protocol::pkce::CodeChallenge;
use crate::protocol::polling::{Interval, PollingRules};
use crate::protocol::user_code::UserCodeHash;

/// The outcome of [`Store::insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The record is stored.
    Stored,
    /// A live record holds the same user-code hash; nothing was stored. The caller
    /// draws another user code.
    UserCodeTaken,
}

/// A token request's poll of a device code, as [`Store::poll`] sees it: what
/// the record must match for the store to decide the poll itself.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PollAttempt<'a> {
    /// The authenticated client: the record's `request.client_id` must be it.
    pub client_id: &'a ClientId,
    /// The `S256` challenge of the request's `code_verifier`, `None` without
    /// one: the record's `request.code_challenge` must equal it (both `None`,
    /// or the same digest).
    pub challenge: Option<&'a CodeChallenge>,
    /// The key of the request's valid DPoP proof, `None` without one: a
    /// record bound to a key (`request.dpop_jkt`) must be bound to this one;
    /// an unbound record takes any.
    pub dpop_jkt: Option<&'a JwkThumbprint>,
    /// The crate's clock, in whole microseconds.
    pub now: OffsetDateTime,
    /// The pace rules (`leeway`, `max_interval`) to judge the poll by.
    pub rules: &'a PollingRules,
}

impl<'a> PollAttempt<'a> {
    /// An attempt by `client_id` at `now` (truncated to whole microseconds,
    /// the precision every store keeps), under `rules`.
    pub fn new(
        client_id: &'a ClientId,
        challenge: Option<&'a CodeChallenge>,
        dpop_jkt: Option<&'a JwkThumbprint>,
        now: OffsetDateTime,
        rules: &'a PollingRules,
    ) -> Self {
        Self {
            client_id,
            challenge,
            dpop_jkt,
            now: whole_micros(now),
            rules,
        }
    }

    /// Whether the store may decide this poll of `record`: the record is
    /// pending, unexpired at `now`, of this client and this challenge, and
    /// unbound or bound to this DPoP key. For any other record a store
    /// answers [`Polled::Undecided`].
    pub fn applies_to(&self, record: &DeviceAuthorization) -> bool {
        record.is_live(self.now)
            && record.request.client_id == *self.client_id
            && record.request.code_challenge.as_ref() == self.challenge
            && record
                .request
                .dpop_jkt
                .as_ref()
                .is_none_or(|bound| Some(bound) == self.dpop_jkt)
    }

    /// The decision for `record`, for a store that judges polls in Rust:
    /// `None` when [`applies_to`](Self::applies_to) does not hold, else the
    /// answer and the record to write in the same atomic step as the read
    /// (compare-and-set at `record.version`), if any.
    pub fn judge(
        &self,
        record: &DeviceAuthorization,
    ) -> Option<(Polled, Option<DeviceAuthorization>)> {
        use crate::protocol::authorization::PollOutcome;
        if !self.applies_to(record) {
            return None;
        }
        let poll = record.poll(self.now, self.rules);
        match poll.outcome {
            PollOutcome::Pending => Some((Polled::Pending, poll.next)),
            PollOutcome::SlowDown(interval) => {
                let after = poll.next.clone().unwrap_or_else(|| record.clone());
                Some((Polled::SlowDown(interval, Box::new(after)), poll.next))
            }
            _ => None,
        }
    }
}

/// `now` to whole microseconds, towards the past.
pub(crate) fn whole_micros(now: OffsetDateTime) -> OffsetDateTime {
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// The answer of [`Store::poll`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Polled {
    /// The store judged the poll on time, and wrote `last_poll = now` (and
    /// the next version): answer `authorization_pending`.
    Pending,
    /// The store judged the poll too early: answer `slow_down` with this
    /// interval. The record is as stored after the poll: with the grown
    /// interval and the next version, or unchanged when the interval was
    /// already at [`PollingRules::max_interval`].
    SlowDown(Interval, Box<DeviceAuthorization>),
    /// The store did not decide: the record as stored (`None` if there is
    /// none), read in the same way as [`Store::by_device_code`]. The crate
    /// then judges the poll itself, and writes with
    /// [`Store::compare_and_set`].
    Undecided(Option<DeviceAuthorization>),
}

/// Where device authorizations live. Records hold only hashes of the codes.
///
/// # Contract
///
/// Records are keyed by [`DeviceAuthorization::device_code_hash`]. A record's
/// *user-code index entry* maps its [`DeviceAuthorization::user_code_hash`] to
/// it while the record is *live*: its status is
/// [`Pending`](crate::store::Status::Pending) and `now < request.expires_at`. The
/// entry dies when the record leaves `Pending` (for `Approved`, `Denied`,
/// `Redeeming` or `Redeemed`, never to come back: no transition returns to
/// `Pending`) or expires; the record itself stays readable by device code
/// until its `purge_at`.
///
/// | method | outcome | returns |
/// | --- | --- | --- |
/// | [`insert`](Store::insert) | no record has the device-code hash, and no live record holds the user-code hash at `now` | `Ok(Stored)`: the record is stored as given, its index entry claimed |
/// | | a live record holds the user-code hash | `Ok(UserCodeTaken)`: nothing stored, nothing changed |
/// | | a record (of any status) already has the device-code hash | `Err(BackendError::Other(_))`: nothing stored, nothing changed |
/// | [`by_device_code`](Store::by_device_code) | a record has the hash (whatever its status, expired or not) | `Ok(Some(record))`, exactly as last written |
/// | | no record has the hash (never stored, or deleted at or after its `purge_at`) | `Ok(None)` |
/// | [`by_user_code`](Store::by_user_code) | a record holds the hash and is live at `now` | `Ok(Some(record))`, exactly as last written |
/// | | otherwise (unknown, expired, or no longer pending) | `Ok(None)` |
/// | [`compare_and_set`](Store::compare_and_set) | the stored record's version is `expected_version` | `Ok(true)`: replaced by `next` |
/// | | no record, or another version stored | `Ok(false)`: nothing changed |
/// | | `next.version != expected_version + 1` | `Ok(false)` allowed (nothing changed) |
/// | [`poll`](Store::poll) | a record has the hash and [`PollAttempt::applies_to`] it | `Ok(Pending)` or `Ok(SlowDown(..))` having written what [`PollAttempt::judge`] says, or `Ok(Undecided(Some(record)))` having written nothing |
/// | | otherwise | `Ok(Undecided(record))`: what `by_device_code` returns, nothing written |
/// | [`purge_expired`](Store::purge_expired) | | `Ok(n)`: deleted the `n` records with `purge_at <= now` |
/// | any | the backend failed | `Err(_)`: see *Failures* |
///
/// - **Atomicity.** Each method is one atomic step against every handle on
///   the same backing store (every instance of the server, every connection
///   and pool): [`Store::insert`] checks both keys and writes record and index
///   entry together; [`Store::compare_and_set`] compares the version and
///   writes, dropping the index entry when `next` is not pending, together. A
///   read never sees half a write. [`Store::purge_expired`] may delete in
///   several steps, each record whole.
/// - **Versions.** The crate computes every `next` as a successor of a record
///   it read: `next.version == expected_version + 1`, and the same
///   `device_code_hash`, `user_code_hash`, `id`, `request` and `purge_at`. A
///   store may rely on that and index those as fixed; it may also refuse
///   (`Ok(false)`) a `next` that breaks the version rule, and must never write
///   one.
/// - **A refusal is not an error.** A compare-and-set that finds another
///   version (another instance got there first) is `Ok(false)`; the crate
///   reads again and recomputes. `Err` means the backend failed.
/// - **Never overwrite.** `insert` never replaces a stored record: a device
///   code drawn twice (which 256 random bits make a broken random source or a
///   host re-inserting a record) is an error, since replacing the record
///   would reset its status and version under whoever holds the code.
/// - **Blocking.** Every method is `async` and may wait on I/O (a network
///   round trip, a pool); it must not block the executor's thread for longer
///   than a short critical section (the memory store's mutexes), and must not
///   wait for another handle's operation to finish beyond the backend's own
///   locking. No method may panic.
/// - **Failures** are [`BackendError`]s. An operation that fails changed
///   nothing or changed everything, never half. The caller may not learn
///   which (a timeout, a cut connection): after a failed compare-and-set the
///   crate reads the record back to learn whether its write landed. Use
///   [`BackendError::Unavailable`]/[`BackendError::Timeout`] for conditions
///   worth retrying (the endpoints answer `503`), [`BackendError::Corrupt`]
///   for a stored value that does not deserialize, and
///   [`BackendError::Other`] for the rest.
/// - **Retention.** A record may be deleted once `now >= purge_at`, and must
///   be returned until then: late polls still get `expired_token`, replays are
///   recognized.
/// - **Format.** A store that serializes records (with serde, as JSON or
///   otherwise) keeps them in [the record format](DeviceAuthorization#serialized-format),
///   stable across 1.x: records survive upgrades, and mixed 1.x instances can
///   share a store.
///
/// The conformance suite (feature `test-util`: `conformance::run` on one
/// handle, `conformance::run_shared` on two handles on one backing store)
/// checks all of this for an adapter.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Stores a new record (version 0), unless its user code is taken.
    ///
    /// Precondition: `record` is pending, at version 0, and `now` is the
    /// crate's clock (which decides whether a holder of the user code has
    /// expired). Returns `Ok(Stored)` when stored; `Ok(UserCodeTaken)`, having
    /// changed nothing, when a record live at `now` holds the user-code hash
    /// (an expired or no longer pending holder does not count, and stays
    /// readable by device code); `Err(BackendError::Other(_))`, having changed
    /// nothing, when a record with the device-code hash is stored, whatever
    /// its status. Atomic: of concurrent inserts of one user code, exactly one
    /// is stored.
    async fn insert(
        &self,
        record: &DeviceAuthorization,
        now: OffsetDateTime,
    ) -> Result<Inserted, BackendError>;

    /// The record of a device code: `Ok(Some(_))` exactly as last written
    /// (whatever its status, expired or not) until it is purged, else
    /// `Ok(None)`.
    async fn by_device_code(
        &self,
        hash: &DeviceCodeHash,
    ) -> Result<Option<DeviceAuthorization>, BackendError>;

    /// The record of a user code while its index entry is alive:
    /// `Ok(Some(_))` if a record holds `hash`, is pending, and
    /// `now < request.expires_at`; else `Ok(None)`. Never returns a record
    /// whose user-code hash is not `hash`.
    async fn by_user_code(
        &self,
        hash: &UserCodeHash,
        now: OffsetDateTime,
    ) -> Result<Option<DeviceAuthorization>, BackendError>;

    /// Replaces the record of `next.device_code_hash` with `next` if its
    /// stored version is `expected_version`.
    ///
    /// Precondition (kept by the crate): `next` is a successor of the stored
    /// record at `expected_version`, so `next.version == expected_version + 1`
    /// and only `status`, `interval`, `last_poll` and `version` differ.
    /// Returns `Ok(true)` when it replaced the record (and, if `next` is not
    /// pending, dropped its user-code index entry in the same step);
    /// `Ok(false)`, having changed nothing, when no record has the hash or its
    /// version is another (a lost race, not an error). A store may also answer
    /// `Ok(false)` when `next.version != expected_version + 1`. Never creates
    /// a record.
    async fn compare_and_set(
        &self,
        expected_version: u64,
        next: &DeviceAuthorization,
    ) -> Result<bool, BackendError>;

    /// Reads the record of `hash` for a token request and, if it is pending,
    /// judges the poll's pace and writes the outcome, all in one atomic step:
    /// one round trip for the most frequent request of the grant.
    ///
    /// The default reads with [`Store::by_device_code`] and answers
    /// [`Polled::Undecided`]; the crate then judges and writes with a
    /// compare-and-set, a second round trip. A store that overrides it must,
    /// when [`PollAttempt::applies_to`] the record, either decide exactly as
    /// [`PollAttempt::judge`] (the same answer, and the same record written,
    /// as one compare-and-set at the version it read) or answer
    /// `Undecided(Some(record))` having written nothing; for any other
    /// record, or none, it answers `Undecided` with what it read. A store
    /// that decides carries its own copy of
    /// [RFC 8628 §3.5](https://www.rfc-editor.org/rfc/rfc8628#section-3.5)'s
    /// pace rules (in a script, a statement, or on its own record form): the
    /// conformance suite's `polls_match_the_state_machine` replays random
    /// sequences of polls, approvals, denials, expiries and clock steps
    /// through both and requires identical answers and records, and
    /// `judges_pending_polls` checks that it does decide. May wait on I/O,
    /// as every method.
    async fn poll(
        &self,
        hash: &DeviceCodeHash,
        attempt: &PollAttempt<'_>,
    ) -> Result<Polled, BackendError> {
        let _ = attempt;
        Ok(Polled::Undecided(self.by_device_code(hash).await?))
    }

    /// Deletes every record with `purge_at <= now`, and no other; returns how
    /// many it deleted (records that expired on their own, such as by a TTL,
    /// need not be counted). May work in batches, so it may take long on a
    /// large backlog; concurrent purges from several instances are safe.
    async fn purge_expired(&self, now: OffsetDateTime) -> Result<u64, BackendError>;
}
