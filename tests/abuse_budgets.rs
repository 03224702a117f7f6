//! The layered abuse budgets: wrong codes per key and deployment-wide, device
//! authorizations per source and per client, pending requests per client.

mod common;

use common::{config, harness_with};
use device_grant::{
    Budget, Budgets, EndpointRequest, ErrorCode, Event, LimiterKey, OAuthError, RequestContext,
    VerificationError,
};
use time::Duration;

fn only(budgets: Budgets) -> common::Harness {
    harness_with(config().budgets(budgets))
}

fn none() -> Budgets {
    Budgets {
        wrong_codes_per_key: Budget {
            attempts: 1000,
            window: Duration::minutes(5),
        },
        wrong_codes_global: None,
        authorizations_per_client: None,
        authorizations_per_source: None,
        pending_per_client: None,
    }
}

fn from(ip: &str) -> RequestContext {
    RequestContext {
        ip: Some(ip.parse().unwrap()),
        ..RequestContext::default()
    }
}

async fn start(
    h: &common::Harness,
    ctx: RequestContext,
) -> Result<device_grant::DeviceAuthorizationResponse, OAuthError> {
    h.grant
        .device_authorization(EndpointRequest::form(b"client_id=tv-app"), ctx)
        .await
}

fn wrong_code(right: &str) -> &'static str {
    if right.starts_with('B') {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    }
}

#[tokio::test]
async fn the_deployment_wide_budget_bounds_guesses_spread_over_many_keys() {
    let h = only(Budgets {
        wrong_codes_global: Some(Budget {
            attempts: 10,
            window: Duration::minutes(5),
        }),
        ..none()
    });
    let c = h.start("client_id=tv-app").await;
    let wrong = wrong_code(c.user_code.canonical());
    // Ten different "addresses", one guess each: all looked up.
    for i in 0..10 {
        let r = h
            .grant
            .verify(wrong, &LimiterKey::new(format!("ip:{i}")))
            .await;
        assert!(matches!(r, Err(VerificationError::NotFound)), "{i}");
    }
    // The eleventh address is refused, even with the right code.
    let r = h
        .grant
        .verify(c.user_code.display(), &LimiterKey::new("ip:fresh"))
        .await;
    assert!(matches!(r, Err(VerificationError::TooManyAttempts { .. })));
    assert!(h.events.events().iter().any(
        |e| matches!(e, Event::LimiterTripped { key } if key.as_str() == "device-grant:wrong-codes")
    ));
    h.advance(300);
    assert!(
        h.grant
            .verify(c.user_code.display(), &LimiterKey::new("ip:fresh"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn right_codes_do_not_spend_the_global_budget() {
    let h = only(Budgets {
        wrong_codes_global: Some(Budget {
            attempts: 2,
            window: Duration::minutes(5),
        }),
        ..none()
    });
    let c = h.start("client_id=tv-app").await;
    for i in 0..20 {
        assert!(
            h.grant
                .verify(c.user_code.display(), &LimiterKey::new(format!("k{i}")))
                .await
                .is_ok()
        );
    }
}

#[tokio::test]
async fn device_authorizations_per_source_network() {
    let h = only(Budgets {
        authorizations_per_source: Some(Budget {
            attempts: 3,
            window: Duration::minutes(10),
        }),
        ..none()
    });
    for _ in 0..3 {
        start(&h, from("2001:db8:1:2::10")).await.unwrap();
    }
    // Another address in the same /64 shares the budget.
    let e = start(&h, from("2001:db8:1:2::99")).await.unwrap_err();
    let OAuthError::RateLimited { retry_after } = e else {
        panic!("{e:?}")
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::minutes(10));
    let http = OAuthError::RateLimited { retry_after }.to_http();
    assert_eq!(http.status, 429);
    assert!(http.header("retry-after").is_some());
    assert_eq!(e_code(&http.body), "temporarily_unavailable");
    // Another network, and a request with no known address, are unaffected.
    start(&h, from("2001:db8:1:3::10")).await.unwrap();
    start(&h, RequestContext::default()).await.unwrap();
    h.advance(600);
    start(&h, from("2001:db8:1:2::10")).await.unwrap();
}

fn e_code(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["error"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn device_authorizations_per_client() {
    let h = only(Budgets {
        authorizations_per_client: Some(Budget {
            attempts: 4,
            window: Duration::minutes(1),
        }),
        ..none()
    });
    for i in 0..4 {
        start(&h, from(&format!("198.51.100.{i}"))).await.unwrap();
    }
    let e = start(&h, from("198.51.100.200")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::TemporarilyUnavailable);
    // Another client is unaffected.
    let printer = common::basic("printer", common::PRINTER_SECRET);
    h.grant
        .device_authorization(
            EndpointRequest::form(b"").with_authorization(&printer),
            RequestContext::default(),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn pending_requests_per_client_are_given_back_on_decision() {
    let h = only(Budgets {
        pending_per_client: Some(2),
        ..none()
    });
    let a = h.start("client_id=tv-app").await;
    let b = h.start("client_id=tv-app").await;
    assert!(matches!(
        start(&h, RequestContext::default()).await,
        Err(OAuthError::RateLimited { .. })
    ));
    // Approving one and denying the other frees both places.
    h.approve(&a, "alice").await;
    let t = h
        .grant
        .verify(b.user_code.display(), &LimiterKey::new("k"))
        .await
        .unwrap()
        .ticket;
    h.grant.deny(&t).await.unwrap();
    start(&h, RequestContext::default()).await.unwrap();
    let r = start(&h, RequestContext::default()).await;
    assert!(r.is_ok(), "{:?}", r.err());
    assert!(start(&h, RequestContext::default()).await.is_err());
}

#[tokio::test]
async fn a_refused_request_is_not_charged_to_earlier_layers() {
    // Source budget 5, client budget 1: after the client budget is spent, the
    // source's refused attempts must not spend the source budget.
    let h = only(Budgets {
        authorizations_per_source: Some(Budget {
            attempts: 5,
            window: Duration::minutes(10),
        }),
        authorizations_per_client: Some(Budget {
            attempts: 1,
            window: Duration::minutes(1),
        }),
        ..none()
    });
    start(&h, from("192.0.2.1")).await.unwrap();
    for _ in 0..10 {
        assert!(start(&h, from("192.0.2.1")).await.is_err());
    }
    h.advance(60);
    // The source has spent only 1 of 5: four more pass, one per minute.
    for _ in 0..4 {
        start(&h, from("192.0.2.1")).await.unwrap();
        h.advance(60);
    }
    assert!(start(&h, from("192.0.2.1")).await.is_err());
}

#[tokio::test]
async fn default_budgets_are_on() {
    let b = Budgets::default();
    assert_eq!(b.wrong_codes_per_key.attempts, 5);
    assert!(b.wrong_codes_global.is_some());
    assert!(b.authorizations_per_client.is_some());
    assert!(b.authorizations_per_source.is_some());
    assert!(b.pending_per_client.is_some());
    // With defaults, the 21st device authorization from one address is refused.
    let h = harness_with(config());
    for _ in 0..20 {
        start(&h, from("203.0.113.9")).await.unwrap();
    }
    assert!(matches!(
        start(&h, from("203.0.113.9")).await,
        Err(OAuthError::RateLimited { .. })
    ));
}
