//! The verification API: look-up by typed code, approve, deny, and the limiter.

mod common;

use common::harness;
use device_grant::store::LimiterKey;
use device_grant::{EventKind, ScopeSet, Subject, VerificationError, VerificationTicket};

#[tokio::test]
async fn typed_codes_are_normalized() {
    let h = harness();
    let c = h.start("client_id=tv-app").await;
    let display = c.user_code.display().to_owned();
    for typed in [
        display.clone(),
        display.to_lowercase(),
        display.replace('-', " "),
        format!("  {}  ", display.replace('-', "")),
    ] {
        let found = h
            .grant
            .verify(
                &typed,
                &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
            )
            .await
            .unwrap();
        assert_eq!(found.ticket.id(), c.id, "{typed}");
    }
}

#[tokio::test]
async fn malformed_input_costs_nothing_wrong_codes_spend_the_budget() {
    let h = harness();
    let c = h.start("client_id=tv-app").await;
    let key = device_grant::CodeEntry::from_key(LimiterKey::new("ip:198.51.100.1"));
    // Malformed: refused before any look-up, never counted.
    for _ in 0..20 {
        let e = h.grant.verify("AEIOU", &key).await.unwrap_err();
        assert!(matches!(e, VerificationError::Malformed(_)));
    }
    // Right codes are refunded: any number of them.
    for _ in 0..10 {
        h.grant.verify(c.user_code.display(), &key).await.unwrap();
    }
    // Twenty wrong codes are allowed (default budget), the next is refused…
    let wrong = if c.user_code.canonical() == "BBBBBBBB" {
        "CCCC-CCCC"
    } else {
        "BBBB-BBBB"
    };
    let budget = device_grant::Budgets::default().wrong_codes_per_key;
    for _ in 0..budget.attempts {
        assert!(matches!(
            h.grant.verify(wrong, &key).await,
            Err(VerificationError::NotFound)
        ));
    }
    let e = h.grant.verify(wrong, &key).await.unwrap_err();
    let VerificationError::TooManyAttempts { retry_after } = e else {
        panic!("expected TooManyAttempts, got {e:?}")
    };
    assert!(retry_after > time::Duration::ZERO && retry_after <= budget.window);
    // …and so is the right code, without a look-up, until the window passes.
    assert!(matches!(
        h.grant.verify(c.user_code.display(), &key).await,
        Err(VerificationError::TooManyAttempts { .. })
    ));
    assert!(h.events.events().iter().any(|e| matches!(
        e.kind,
        EventKind::LimiterTripped {
            budget: device_grant::BudgetKind::WrongCodesPerKey,
            ..
        }
    )));
    // Another key is unaffected.
    assert!(
        h.grant
            .verify(
                c.user_code.display(),
                &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new(
                    "ip:other"
                ))
            )
            .await
            .is_ok()
    );
    h.advance(retry_after.whole_seconds() + 1);
    assert!(h.grant.verify(c.user_code.display(), &key).await.is_ok());
}

#[tokio::test]
async fn approve_and_deny_act_only_on_live_pending_requests() {
    let h = harness();
    let c = h.start("client_id=tv-app&scope=openid%20profile").await;
    let found = h
        .grant
        .verify(
            c.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap();
    // Granting a scope that was not requested is refused and changes nothing.
    let e = h
        .grant
        .approve(
            &found.ticket,
            device_grant::Approve::scopes(
                Subject::new("alice"),
                None,
                ScopeSet::parse("email").unwrap(),
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, VerificationError::ScopeNotRequested));
    h.grant
        .approve(
            &found.ticket,
            device_grant::Approve::scopes(
                Subject::new("alice"),
                None,
                ScopeSet::parse("openid").unwrap(),
            )
            .data(device_grant::ApprovalData::new(&serde_json::json!({"acr": "mfa"})).unwrap()),
        )
        .await
        .unwrap();
    // The user code died with Pending: no second decision, no look-up.
    assert!(matches!(
        h.grant.deny(&found.ticket).await,
        Err(VerificationError::NotFound)
    ));
    assert!(matches!(
        h.grant
            .approve(
                &found.ticket,
                device_grant::Approve::scopes(Subject::new("mallory"), None, ScopeSet::new()),
            )
            .await,
        Err(VerificationError::NotFound)
    ));
    assert!(matches!(
        h.grant
            .verify(
                c.user_code.display(),
                &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k"))
            )
            .await,
        Err(VerificationError::NotFound)
    ));
    let tokens = h.poll("tv-app", c.device_code.secret()).await.unwrap();
    assert!(tokens.access_token.secret().starts_with("at-alice-"));
    let kinds: Vec<_> = h.events.events().iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["created", "approved", "redeemed"]);
}

#[tokio::test]
async fn tickets_name_exactly_one_request() {
    let h = harness();
    let a = h.start("client_id=tv-app").await;
    let b = h.start("client_id=tv-app").await;
    let ta = h
        .grant
        .verify(
            a.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap()
        .ticket;
    let tb = h
        .grant
        .verify(
            b.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap()
        .ticket;
    // A ticket stitched from one request's id and another's code hash names neither.
    let (ea, eb) = (ta.encode(), tb.encode());
    let forged = format!(
        "{}.{}",
        ea.split('.').next().unwrap(),
        eb.split('.').nth(1).unwrap()
    );
    let forged = VerificationTicket::decode(&forged).unwrap();
    assert!(matches!(
        h.grant.deny(&forged).await,
        Err(VerificationError::NotFound)
    ));
    // The round-tripped ticket works.
    h.grant
        .deny(&VerificationTicket::decode(&ea).unwrap())
        .await
        .unwrap();
    assert!(
        h.grant
            .verify(
                b.user_code.display(),
                &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k"))
            )
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn expired_requests_cannot_be_approved() {
    let h = harness();
    let c = h.start("client_id=tv-app").await;
    let t = h
        .grant
        .verify(
            c.user_code.display(),
            &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
        )
        .await
        .unwrap()
        .ticket;
    h.advance(600);
    assert!(matches!(
        h.grant
            .approve(
                &t,
                device_grant::Approve::scopes(Subject::new("alice"), None, ScopeSet::new())
            )
            .await,
        Err(VerificationError::NotFound)
    ));
}

#[tokio::test]
async fn consent_signals_and_policy() {
    use device_grant::{ConsentDecision, NetworkPolicy, Proximity, RequestContext};
    use std::sync::Arc;
    let h = harness();
    let policy_grant = device_grant::DeviceGrant::builder(
        common::config().build().unwrap(),
        Arc::new(common::clients()),
        h.issuer.clone(),
    )
    .clock(h.clock.clone())
    .consent_policy(Arc::new(NetworkPolicy::default()))
    .build();
    for grant in [&h.grant, &policy_grant] {
        let ctx = RequestContext {
            ip: Some("192.0.2.10".parse().unwrap()),
            ..RequestContext::default()
        };
        let c = grant
            .device_authorization(
                device_grant::EndpointRequest::form(b"client_id=tv-app"),
                ctx,
            )
            .await
            .unwrap();
        let found = grant
            .verify(
                c.user_code.display(),
                &device_grant::CodeEntry::from_key(device_grant::store::LimiterKey::new("k")),
            )
            .await
            .unwrap();
        let same = grant.assess(&found, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(same.signals.proximity, Proximity::SameAddress);
        assert_eq!(same.decision, ConsentDecision::Allow);
        let far = grant.assess(&found, Some("203.0.113.5".parse().unwrap()));
        assert_eq!(far.signals.proximity, Proximity::DifferentNetwork);
        let strict = std::ptr::eq(grant, &policy_grant);
        assert_eq!(
            far.decision,
            if strict {
                ConsentDecision::StepUp
            } else {
                ConsentDecision::Allow
            }
        );
        h.advance(301);
        let old = grant.assess(&found, Some("192.0.2.10".parse().unwrap()));
        assert_eq!(old.signals.age, time::Duration::seconds(301));
        assert_eq!(
            old.decision,
            if strict {
                ConsentDecision::StepUp
            } else {
                ConsentDecision::Allow
            }
        );
    }
}

#[tokio::test]
async fn typos_are_told_apart_and_cost_nothing() {
    let h = common::harness_with(
        common::config().user_code_policy(
            device_grant::UserCodePolicy::new(device_grant::UserCodePolicy::CONSONANTS, 8, 3)
                .unwrap()
                .with_check_character(),
        ),
    );
    let c = h.start("client_id=tv-app").await;
    assert_eq!(c.user_code.display().len(), 11); // XXX-XXX-XXX
    let mut typo: Vec<char> = c.user_code.canonical().chars().collect();
    typo[0] = if typo[0] == 'B' { 'C' } else { 'B' };
    let typo: String = typo.into_iter().collect();
    let key = device_grant::CodeEntry::from_key(LimiterKey::new("k"));
    for _ in 0..50 {
        let e = h.grant.verify(&typo, &key).await.unwrap_err();
        assert!(matches!(
            e,
            VerificationError::Malformed(device_grant::UserCodeError::Typo)
        ));
    }
    assert!(h.grant.verify(c.user_code.display(), &key).await.is_ok());
}
