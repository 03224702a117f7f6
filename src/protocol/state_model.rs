//! The state machine against a deliberately naive model, as a property test.

use std::sync::Arc;

use proptest::prelude::*;
use time::{Duration, OffsetDateTime};

use crate::protocol::authorization::{
    Approval, AuthorizationId, DeviceAuthorization, Poll, PollOutcome, RequestContext,
    RequestDetails, Status, Subject,
};
use crate::protocol::client::ClientId;
use crate::protocol::device_code::DeviceCodeHash;
use crate::protocol::polling::{Interval, PollingRules};
use crate::protocol::scope::ScopeSet;
use crate::protocol::user_code::UserCodeHash;

proptest! {
    #[test]
    fn state_machine_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let rules = PollingRules::default();
        let start = OffsetDateTime::UNIX_EPOCH;
        let mut real = fresh(start);
        let mut model = Model::default();
        let mut now = start;
        let mut redeemed = 0;
        for op in ops {
            match op {
                Op::Advance(ms) => {
                    now += Duration::milliseconds(ms);
                    model.t += ms;
                }
                Op::Approve => {
                    let r = real.approve(approval(now), now);
                    prop_assert_eq!(r.is_ok(), model.approve());
                    if let Ok(next) = r {
                        prop_assert_eq!(next.version, real.version + 1);
                        real = next;
                    }
                }
                Op::Deny => {
                    let r = real.deny(now);
                    prop_assert_eq!(r.is_ok(), model.deny());
                    if let Ok(next) = r {
                        real = next;
                    }
                }
                Op::Poll => {
                    let Poll { outcome, next } = real.poll(now, &rules);
                    let expected = model.poll();
                    prop_assert_eq!(kind(&outcome), expected);
                    let redeem = matches!(outcome, PollOutcome::Redeem(_));
                    if redeem {
                        redeemed += 1;
                    }
                    if let Some(next) = next {
                        prop_assert_eq!(next.version, real.version + 1);
                        prop_assert!(real.status.is_pending() || !next.status.is_pending(), "back to pending");
                        real = next;
                    }
                    // The endpoint's redeeming poll marks the code redeemed once
                    // the issuer has minted the tokens.
                    if redeem {
                        let done = real.redeemed(now);
                        prop_assert!(done.is_ok(), "a taken approval can be marked redeemed");
                        real = done.unwrap();
                    }
                    prop_assert_eq!(real.interval.secs(), model.interval);
                }
            }
        }
        prop_assert!(redeemed <= 1);
    }
}

#[derive(Debug, Clone)]
enum Op {
    Advance(i64),
    Approve,
    Deny,
    Poll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0i64..20_000).prop_map(Op::Advance),
        1 => (0i64..200_000).prop_map(Op::Advance),
        1 => Just(Op::Approve),
        1 => Just(Op::Deny),
        6 => Just(Op::Poll),
    ]
}

/// A deliberately naive model of RFC 8628 §3.5 with the crate's documented
/// choices (leeway 1 s, interval cap 60 s, lifetime 600 s).
#[derive(Debug)]
struct Model {
    t: i64,
    status: char, // P, A, D, R
    interval: u32,
    last_normal: Option<i64>,
}

impl Default for Model {
    fn default() -> Self {
        Self {
            t: 0,
            status: 'P',
            interval: 5,
            last_normal: None,
        }
    }
}

impl Model {
    fn expired(&self) -> bool {
        self.t >= 600_000
    }
    fn approve(&mut self) -> bool {
        let ok = self.status == 'P' && !self.expired();
        if ok {
            self.status = 'A';
        }
        ok
    }
    fn deny(&mut self) -> bool {
        let ok = self.status == 'P' && !self.expired();
        if ok {
            self.status = 'D';
        }
        ok
    }
    fn poll(&mut self) -> &'static str {
        if self.status == 'R' {
            return "replay";
        }
        if self.expired() {
            return "expired";
        }
        match self.status {
            'D' => "denied",
            'A' => {
                self.status = 'R';
                "redeem"
            }
            _ => match self.last_normal {
                Some(last) if self.t - last < i64::from(self.interval) * 1000 - 1000 => {
                    if self.interval < 60 {
                        self.interval = (self.interval + 5).min(60);
                    }
                    "slow_down"
                }
                _ => {
                    self.last_normal = Some(self.t);
                    "pending"
                }
            },
        }
    }
}

fn kind(o: &PollOutcome) -> &'static str {
    match o {
        PollOutcome::Pending => "pending",
        PollOutcome::SlowDown(_) => "slow_down",
        PollOutcome::Denied => "denied",
        PollOutcome::Expired => "expired",
        PollOutcome::Redeem(_) => "redeem",
        PollOutcome::Replay => "replay",
    }
}

fn fresh(now: OffsetDateTime) -> DeviceAuthorization {
    DeviceAuthorization::new(
        AuthorizationId::from_bytes([1; 16]),
        DeviceCodeHash::from_bytes([2; 32]),
        UserCodeHash::from_bytes([3; 32]),
        RequestDetails {
            client_id: ClientId::new("tv"),
            scopes: ScopeSet::new(),
            created_at: now,
            expires_at: now + Duration::seconds(600),
            context: RequestContext::default(),
            code_challenge: None,
            authorization_details: None,
            dpop_jkt: None,
        },
        Interval::DEFAULT,
        Duration::seconds(600),
    )
}

fn approval(now: OffsetDateTime) -> Approval {
    Approval {
        subject: Subject::new("alice"),
        scopes: ScopeSet::new(),
        approved_at: now,
        data: None,
        authorization_details: None,
    }
}

#[test]
fn status_is_serializable_for_adapters() {
    let s = Status::Approved {
        approval: Arc::new(approval(OffsetDateTime::UNIX_EPOCH)),
    };
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"status\":\"approved\""));
}
