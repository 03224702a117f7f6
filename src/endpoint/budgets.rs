//! Spending the layered abuse budgets through the host's limiter.

use std::net::IpAddr;

use time::{Duration, OffsetDateTime};

use crate::grant::DeviceGrant;
use crate::host::events::Event;
use crate::host::limiter::{Admission, Budget, LimiterKey};
use crate::protocol::client::ClientId;
use crate::protocol::error::BackendError;
use crate::protocol::proximity::source_network;

/// One budget layer: what is counted, and how much is allowed.
pub(crate) struct Layer {
    pub(crate) key: LimiterKey,
    pub(crate) budget: Budget,
}

impl Layer {
    pub(crate) fn global_wrong_codes(budget: Budget) -> Self {
        Self {
            key: LimiterKey::new("device-grant:wrong-codes"),
            budget,
        }
    }

    pub(crate) fn client(client: &ClientId, budget: Budget) -> Self {
        Self {
            key: LimiterKey::new(format!("device-grant:client:{client}")),
            budget,
        }
    }

    pub(crate) fn source(ip: IpAddr, budget: Budget) -> Self {
        Self {
            key: LimiterKey::new(format!("device-grant:source:{}", source_network(ip))),
            budget,
        }
    }

    pub(crate) fn pending(client: &ClientId, attempts: u32, lifetime: Duration) -> Self {
        Self {
            key: LimiterKey::new(format!("device-grant:pending:{client}")),
            budget: Budget {
                attempts,
                window: lifetime,
            },
        }
    }
}

impl DeviceGrant {
    /// Spends one unit of every layer, in order. When a layer is spent out, the
    /// earlier layers are refunded (nothing is charged for a refused request), a
    /// `LimiterTripped` event is raised, and the wait until that layer's window
    /// ends is returned as the error.
    pub(crate) async fn spend(
        &self,
        layers: &[Layer],
        now: OffsetDateTime,
    ) -> Result<Result<(), Duration>, BackendError> {
        let limiter = &self.inner.limiter;
        for (i, layer) in layers.iter().enumerate() {
            if let Admission::Exhausted { retry_after } =
                limiter.acquire(&layer.key, &layer.budget, now).await?
            {
                self.refund(&layers[..i], now).await?;
                self.emit(Event::LimiterTripped {
                    key: layer.key.clone(),
                });
                return Ok(Err(retry_after));
            }
        }
        Ok(Ok(()))
    }

    /// Gives back one unit of every layer.
    pub(crate) async fn refund(
        &self,
        layers: &[Layer],
        now: OffsetDateTime,
    ) -> Result<(), BackendError> {
        for layer in layers {
            self.inner
                .limiter
                .refund(&layer.key, &layer.budget, now)
                .await?;
        }
        Ok(())
    }
}
