//! The commit point of a transition: one compare-and-set, with an ambiguous
//! reply settled by reading the record back instead of guessed.

use crate::grant::DeviceGrant;
use crate::host::store::{PollAttempt, Polled};
use crate::protocol::authorization::DeviceAuthorization;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::error::BackendError;

/// Reads tried when a compare-and-set's reply is lost.
const SETTLE_READS: usize = 3;

/// Whether a transition's compare-and-set took effect.
#[derive(Debug)]
pub(crate) enum Commit {
    /// It did: the operation has happened, whatever follows.
    Done,
    /// It did not: the stored record had moved on (another request won), or the
    /// write never landed. Nothing changed; the caller reads again and retries.
    Lost,
    /// The store failed around the write and could not be read back: whether it
    /// took effect is unknown.
    Unknown(BackendError),
}

impl DeviceGrant {
    /// Writes `next` over the stored record if it is still at `expected`.
    ///
    /// A store error around the write (a timeout, a cut connection) does not
    /// say whether it landed, so the record is read back: the write landed when
    /// the stored record carries it (`landed`, which recognizes this write's own
    /// status, even if later transitions followed), and did not when the stored
    /// record is still at `expected` or shows another write.
    pub(crate) async fn commit(
        &self,
        expected: u64,
        next: &DeviceAuthorization,
        landed: impl Fn(&DeviceAuthorization) -> bool,
    ) -> Commit {
        let store = &self.inner.store;
        let error = match store.compare_and_set(expected, next).await {
            Ok(true) => return Commit::Done,
            Ok(false) => return Commit::Lost,
            Err(e) => e,
        };
        for _ in 0..SETTLE_READS {
            match store.by_device_code(&next.device_code_hash).await {
                Ok(Some(stored)) if stored.version >= next.version && landed(&stored) => {
                    return Commit::Done;
                }
                Ok(_) => return Commit::Lost,
                Err(_) => continue,
            }
        }
        Commit::Unknown(error)
    }

    /// [`Store::poll`](crate::store::Store::poll) with a lost reply settled
    /// by reading the record back: a store that judged the poll may have
    /// written it.
    ///
    /// The record carries this poll's time as its last poll: the poll was on
    /// time and landed, `Pending`. It is still too early by the record as
    /// stored: `SlowDown` with the interval stored now, writing nothing (the
    /// grown interval, if this poll's write landed; otherwise the device is
    /// slowed down with nothing changed). Anything else: `Undecided`, for the
    /// crate to judge and write. The record unreadable: the store's error.
    pub(crate) async fn poll_settled(
        &self,
        hash: &DeviceCodeHash,
        attempt: &PollAttempt<'_>,
    ) -> Result<Polled, BackendError> {
        let store = &self.inner.store;
        let error = match store.poll(hash, attempt).await {
            Ok(polled) => return Ok(polled),
            Err(e) => e,
        };
        for _ in 0..SETTLE_READS {
            let Ok(stored) = store.by_device_code(hash).await else {
                continue;
            };
            let record = match stored {
                Some(record) if attempt.applies_to(&record) => record,
                other => return Ok(Polled::Undecided(other)),
            };
            if record.last_poll == Some(attempt.now) {
                return Ok(Polled::Pending);
            }
            return Ok(match attempt.judge(&record) {
                Some((Polled::SlowDown(..), _)) => {
                    Polled::SlowDown(record.interval, Box::new(record))
                }
                _ => Polled::Undecided(Some(record)),
            });
        }
        Err(error)
    }
}
