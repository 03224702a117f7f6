//! Polling-rate rules (RFC 8628 §3.5): the interval, `slow_down`, and its +5 s.
//!
//! A poll is *on time* when at least `interval − leeway` has passed since the last
//! poll that was answered normally; the first poll is always on time (real
//! clients, the `oauth2` crate among them, poll at once). A poll that is too early
//! is answered `slow_down` and the interval grows by 5 s for it and every later
//! poll, up to [`PollingRules::max_interval`]. Measuring from the last *normal*
//! answer, not from the last poll, is what lets a client stuck at a fixed pace get
//! through: its time since the last normal answer keeps growing while the interval
//! stops at the cap, so it is slowed, never locked out.

use time::{Duration, OffsetDateTime};

/// RFC 8628 §3.5: "the interval MUST be increased by 5 seconds".
pub(crate) const SLOW_DOWN_STEP_SECS: u32 = 5;

/// A polling interval in whole seconds, as sent in the `interval` member.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Interval(u32);

impl Interval {
    /// RFC 8628 §3.2's default: 5 seconds.
    pub const DEFAULT: Interval = Interval(5);

    /// An interval of `secs` seconds; `None` for zero.
    pub const fn from_secs(secs: u32) -> Option<Self> {
        if secs == 0 { None } else { Some(Self(secs)) }
    }

    /// The interval in seconds.
    pub const fn secs(self) -> u32 {
        self.0
    }

    /// The interval as a duration.
    pub fn duration(self) -> Duration {
        Duration::seconds(i64::from(self.0))
    }

    /// The interval after a `slow_down`: 5 s more, but not above `max`.
    pub fn slowed(self, max: Interval) -> Self {
        Self(
            self.0
                .saturating_add(SLOW_DOWN_STEP_SECS)
                .min(max.0.max(self.0)),
        )
    }
}

/// How strictly the pace of polls is enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PollingRules {
    /// How much earlier than the interval a poll may come and still be on time,
    /// to absorb network jitter and clock skew between instances. Default 1 s.
    /// Never more than half the interval applies, so that short intervals (a
    /// per-client 1 s, say) are still enforced.
    pub leeway: Duration,
    /// The interval stops growing here. Default 60 s.
    pub max_interval: Interval,
    /// How long a poll that redeems an approval holds it while the host's
    /// issuer mints the tokens. A poll abandoned mid-issue (its connection cut,
    /// its task cancelled) frees the approval for the device's next poll when
    /// the lease ends; a failing issuer frees it at once. Make it longer than
    /// the issuer's own timeout. Default 30 s.
    pub redeem_lease: Duration,
}

impl Default for PollingRules {
    fn default() -> Self {
        Self {
            leeway: Duration::seconds(1),
            max_interval: Interval(60),
            redeem_lease: Duration::seconds(30),
        }
    }
}

/// Whether a poll came on time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Answer normally and remember this poll's time.
    OnTime,
    /// Answer `slow_down` and store the grown interval.
    TooEarly {
        /// The interval from now on.
        slowed: Interval,
    },
}

impl PollingRules {
    /// The leeway that applies to `interval`: at most half of it.
    fn leeway_for(&self, interval: Interval) -> Duration {
        self.leeway.min(interval.duration() / 2)
    }

    /// Judges a poll at `now`, given the current interval and the time of the last
    /// poll answered normally.
    pub(crate) fn pace(
        &self,
        interval: Interval,
        last_normal: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Pace {
        match last_normal {
            Some(last) if now - last < interval.duration() - self.leeway_for(interval) => {
                Pace::TooEarly {
                    slowed: interval.slowed(self.max_interval),
                }
            }
            _ => Pace::OnTime,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: f64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::seconds_f64(secs)
    }

    #[test]
    fn first_poll_is_on_time() {
        let r = PollingRules::default();
        assert_eq!(r.pace(Interval::DEFAULT, None, t(0.0)), Pace::OnTime);
    }

    #[test]
    fn leeway_is_the_boundary() {
        let r = PollingRules::default();
        let i = Interval::DEFAULT;
        assert_eq!(r.pace(i, Some(t(0.0)), t(4.0)), Pace::OnTime);
        assert_eq!(
            r.pace(i, Some(t(0.0)), t(3.999)),
            Pace::TooEarly {
                slowed: Interval(10)
            }
        );
        let strict = PollingRules {
            leeway: Duration::ZERO,
            ..r
        };
        assert_eq!(strict.pace(i, Some(t(0.0)), t(5.0)), Pace::OnTime);
        assert!(matches!(
            strict.pace(i, Some(t(0.0)), t(4.999)),
            Pace::TooEarly { .. }
        ));
    }

    #[test]
    fn leeway_is_at_most_half_the_interval() {
        let r = PollingRules::default();
        let one = Interval(1);
        assert!(matches!(
            r.pace(one, Some(t(0.0)), t(0.49)),
            Pace::TooEarly { .. }
        ));
        assert_eq!(r.pace(one, Some(t(0.0)), t(0.5)), Pace::OnTime);
    }

    #[test]
    fn interval_grows_to_the_cap() {
        let max = Interval(60);
        assert_eq!(Interval(5).slowed(max), Interval(10));
        assert_eq!(Interval(58).slowed(max), Interval(60));
        assert_eq!(Interval(60).slowed(max), Interval(60));
        // A per-client interval above the cap is never lowered.
        assert_eq!(Interval(90).slowed(max), Interval(90));
        assert_eq!(Interval::from_secs(0), None);
    }

    #[test]
    fn a_fixed_pace_client_is_slowed_not_locked_out() {
        // A client polling every 3 s regardless of slow_down.
        let r = PollingRules::default();
        let mut interval = Interval::DEFAULT;
        let mut last = Some(t(0.0));
        let mut normal = 0;
        for k in 1..200 {
            let now = t(3.0 * k as f64);
            match r.pace(interval, last, now) {
                Pace::OnTime => {
                    normal += 1;
                    last = Some(now);
                }
                Pace::TooEarly { slowed } => interval = slowed,
            }
        }
        assert_eq!(interval, Interval(60));
        assert!(normal >= 8, "only {normal} normal answers");
    }
}
