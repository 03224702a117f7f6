//! Spending the layered abuse budgets through the host's limiter.

use std::net::{IpAddr, Ipv6Addr};

use hmac::Mac as _;
use time::{Duration, OffsetDateTime};

use crate::grant::DeviceGrant;
use crate::host::events::{Event, EventKind};
use crate::host::limiter::{Admission, Budget, BudgetKind, KeyDigest, LimiterKey};
use crate::protocol::client::ClientId;
use crate::protocol::error::BackendError;
use crate::protocol::proximity::{canonical, source_network};

/// One budget layer: what is counted, under which budget.
#[derive(Clone)]
pub(crate) struct Layer {
    pub(crate) kind: BudgetKind,
    pub(crate) key: LimiterKey,
    pub(crate) budget: Budget,
}

/// Which layer was spent out, and when its window ends.
pub(crate) struct Refused {
    pub(crate) kind: BudgetKind,
    pub(crate) retry_after: Duration,
}

impl Layer {
    pub(crate) fn new(kind: BudgetKind, key: LimiterKey, budget: Budget) -> Self {
        Self { kind, key, budget }
    }

    pub(crate) fn anonymous_wrong_codes(budget: Budget) -> Self {
        Self::new(
            BudgetKind::WrongCodesAnonymous,
            LimiterKey::new("device-grant:wrong-codes"),
            budget,
        )
    }

    pub(crate) fn client(client: &ClientId, budget: Budget) -> Self {
        Self::new(
            BudgetKind::AuthorizationsPerClient,
            LimiterKey::new(format!("device-grant:client:{client}")),
            budget,
        )
    }

    pub(crate) fn source(ip: IpAddr, budget: Budget) -> Self {
        Self::new(
            BudgetKind::AuthorizationsPerSource,
            LimiterKey::new(format!("device-grant:source:{}", source_network(ip))),
            budget,
        )
    }

    /// The IPv6 /48 of `ip`; none for IPv4, where one address is the source.
    pub(crate) fn wide_source(ip: IpAddr, budget: Budget) -> Option<Self> {
        let IpAddr::V6(v6) = canonical(ip) else {
            return None;
        };
        let s = v6.segments();
        let net = Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
        Some(Self::new(
            BudgetKind::AuthorizationsPerWideSource,
            LimiterKey::new(format!("device-grant:wide-source:{net}/48")),
            budget,
        ))
    }

    pub(crate) fn pending(client: &ClientId, attempts: u32, lifetime: Duration) -> Self {
        Self::new(
            BudgetKind::PendingPerClient,
            LimiterKey::new(format!("device-grant:pending:{client}")),
            Budget {
                attempts,
                window: lifetime,
            },
        )
    }

    pub(crate) fn pending_total(attempts: u32, lifetime: Duration) -> Self {
        Self::new(
            BudgetKind::PendingTotal,
            LimiterKey::new("device-grant:pending"),
            Budget {
                attempts,
                window: lifetime,
            },
        )
    }
}

impl DeviceGrant {
    /// Spends one unit of every layer, in order.
    ///
    /// When a layer is spent out, the earlier layers are refunded (nothing is
    /// charged for a refused request), a `LimiterTripped` event is raised, and
    /// the layer and the wait until its window ends are the error. When the
    /// limiter fails, the earlier layers are refunded as well (best effort) and
    /// the limiter's error is returned.
    pub(crate) async fn spend(
        &self,
        layers: &[Layer],
        now: OffsetDateTime,
    ) -> Result<Result<(), Refused>, BackendError> {
        let limiter = &self.inner.limiter;
        for (i, layer) in layers.iter().enumerate() {
            let admission = match limiter.acquire(&layer.key, &layer.budget, now).await {
                Ok(admission) => admission,
                Err(e) => {
                    self.refund(&layers[..i], now).await;
                    return Err(e);
                }
            };
            if let Admission::Exhausted { retry_after } = admission {
                self.refund(&layers[..i], now).await;
                self.emit(Event::bare(
                    now,
                    EventKind::LimiterTripped {
                        budget: layer.kind,
                        key: self.key_digest(&layer.key),
                    },
                ));
                return Ok(Err(Refused {
                    kind: layer.kind,
                    retry_after,
                }));
            }
        }
        Ok(Ok(()))
    }

    /// Gives back one unit of every layer spent at `now`. Best effort: a refund
    /// that fails leaves at most one unit spent until its window ends, and must
    /// never turn the request's own answer into an error.
    pub(crate) async fn refund(&self, layers: &[Layer], now: OffsetDateTime) {
        for layer in layers {
            let _ = self
                .inner
                .limiter
                .refund(&layer.key, &layer.budget, now)
                .await;
        }
    }

    /// The keyed digest of a limiter key, for events and logs.
    pub(crate) fn key_digest(&self, key: &LimiterKey) -> KeyDigest {
        let mut mac = self.inner.config.user_code_key.mac();
        mac.update(b"device-grant limiter key\0");
        mac.update(key.as_str().as_bytes());
        let bytes = mac.finalize().into_bytes();
        let mut digest = [0u8; 8];
        digest.copy_from_slice(&bytes[..8]);
        KeyDigest::new(digest)
    }
}
