//! Exactly-once under concurrency: racing redemptions, approve racing deny.

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use device_grant::{Budgets, ErrorCode, ScopeSet, Subject};

/// Thousands of requests from one client within one minute of a stopped clock:
/// the per-client rate budget is not what these tests are about.
fn harness() -> common::Harness {
    common::harness_with(common::config().budgets(Budgets {
        authorizations_per_client: None,
        ..Budgets::default()
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_polls_race_to_redeem_one_code_exactly_one_wins() {
    let h = Arc::new(harness());
    for round in 0..1000 {
        let c = h.start("client_id=tv-app").await;
        h.approve(&c, "alice").await;
        let code = Arc::new(c.device_code.secret().to_owned());
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (h, code, barrier) = (h.clone(), code.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    h.poll("tv-app", &code).await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => winners += 1,
                // A loser polls while the winner's tokens are being minted
                // (the approval is leased: wait) or after (a replay).
                Err(e) => assert!(
                    matches!(
                        e.code(),
                        ErrorCode::AuthorizationPending | ErrorCode::InvalidGrant
                    ),
                    "round {round}: {e:?}"
                ),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    assert_eq!(h.issuer.0.load(Ordering::SeqCst), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approve_racing_deny_has_one_winner_and_the_device_sees_it() {
    let h = Arc::new(harness());
    for round in 0..200 {
        let c = h.start("client_id=tv-app").await;
        let ticket = h
            .grant
            .verify(
                c.user_code.display(),
                &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
            )
            .await
            .unwrap()
            .ticket;
        let (ha, hd) = (h.clone(), h.clone());
        let (ta, td) = (ticket.clone(), ticket);
        let approve = tokio::spawn(async move {
            ha.grant
                .approve(
                    &ta,
                    device_grant::Approve::scopes(Subject::new("alice"), None, ScopeSet::new()),
                )
                .await
        });
        let deny = tokio::spawn(async move { hd.grant.deny(&td).await });
        let (approved, denied) = (approve.await.unwrap().is_ok(), deny.await.unwrap().is_ok());
        assert!(
            approved ^ denied,
            "round {round}: approved {approved}, denied {denied}"
        );
        let poll = h.poll("tv-app", c.device_code.secret()).await;
        if approved {
            assert!(poll.is_ok(), "round {round}");
        } else {
            assert_eq!(
                poll.unwrap_err().code(),
                ErrorCode::AccessDenied,
                "round {round}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn polls_racing_approval_never_lose_it() {
    let h = Arc::new(harness());
    for round in 0..200 {
        let c = h.start("client_id=tv-app").await;
        let code = Arc::new(c.device_code.secret().to_owned());
        let pollers: Vec<_> = (0..8)
            .map(|_| {
                let (h, code) = (h.clone(), code.clone());
                tokio::spawn(async move {
                    let mut won = 0;
                    for _ in 0..20 {
                        if h.poll("tv-app", &code).await.is_ok() {
                            won += 1;
                        }
                        tokio::task::yield_now().await;
                    }
                    won
                })
            })
            .collect();
        h.approve(&c, "alice").await;
        let mut won = 0;
        for p in pollers {
            won += p.await.unwrap();
        }
        // Whether or not a racing poll got it, the approval is never lost:
        // exactly one redemption over the racers and one final poll.
        if won == 0 {
            assert!(
                h.poll("tv-app", &code).await.is_ok(),
                "round {round}: approval lost"
            );
        } else {
            assert_eq!(won, 1, "round {round}");
        }
    }
}
