//! The abuse model of SECURITY.md, played: each attacker against each kind of
//! legitimate traffic, through the real endpoints (device authorization, code
//! entry, approval, polling) on a manual clock, with the default budgets.
//!
//! Asserted for every pairing: the attacker's look-ups stay within the stated
//! bound, and no legitimate request is refused. The table it prints is the one
//! in SECURITY.md, and the test checks that SECURITY.md says exactly that.
//!
//! The same scenarios run on Redis and PostgreSQL (smaller legitimate loads,
//! the same attackers) when their servers are up.

mod common;
mod services;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use device_grant::store::{AttemptLimiter, Store};
use device_grant::{
    Budgets, CodeEntry, DeviceGrant, EndpointRequest, ManualClock, OAuthError, RequestContext,
    Subject, VerificationError,
};
use time::{Duration, OffsetDateTime};

/// One code lifetime (the default 600 s), played second by second.
const SECONDS: i64 = 600;

#[derive(Clone, Copy, Debug)]
enum Attacker {
    /// One IPv4 address.
    OneAddress,
    /// 1,000 IPv4 addresses.
    ThousandIpv4,
    /// One IPv6 /48 (65,536 /64s); it guesses from 4,096 of them, which is
    /// already past the anonymous budget.
    Ipv6Slash48,
    /// 100,000 addresses across the Internet.
    Botnet,
}

impl Attacker {
    const ALL: [Attacker; 4] = [
        Attacker::OneAddress,
        Attacker::ThousandIpv4,
        Attacker::Ipv6Slash48,
        Attacker::Botnet,
    ];

    fn name(self) -> &'static str {
        match self {
            Attacker::OneAddress => "one address",
            Attacker::ThousandIpv4 => "1,000 IPv4 addresses",
            Attacker::Ipv6Slash48 => "an IPv6 /48",
            Attacker::Botnet => "a botnet of 100,000 addresses",
        }
    }

    /// The attacker's `i`th address.
    fn address(self, i: u32) -> IpAddr {
        match self {
            Attacker::OneAddress => IpAddr::V4(Ipv4Addr::new(198, 51, 100, 66)),
            Attacker::ThousandIpv4 => IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i % 1_000)),
            Attacker::Ipv6Slash48 => IpAddr::V6(Ipv6Addr::new(
                0x2001,
                0xdb8,
                0x66,
                (i % 4_096) as u16,
                0,
                0,
                0,
                1,
            )),
            Attacker::Botnet => IpAddr::V4(Ipv4Addr::from(0x2c00_0000 + i % 100_000)),
        }
    }

    /// Sources, and guesses each tries in the lifetime: every source guesses
    /// well past any budget.
    fn sources(self) -> u32 {
        match self {
            Attacker::OneAddress => 1,
            Attacker::ThousandIpv4 => 1_000,
            Attacker::Ipv6Slash48 => 4_096,
            Attacker::Botnet => 100_000,
        }
    }

    fn guesses(self) -> u32 {
        match self {
            Attacker::OneAddress => 20_000,
            Attacker::ThousandIpv4 => 60_000,
            Attacker::Ipv6Slash48 => 60_000,
            Attacker::Botnet => 200_000,
        }
    }

    /// Device authorizations it asks for: every source well past its budget
    /// for the small attackers; for the botnet, two per address (its full
    /// rate is arithmetic in SECURITY.md: 100,000 × 120 per window).
    fn authorizations(self) -> u32 {
        match self {
            Attacker::OneAddress => 500,
            Attacker::ThousandIpv4 => 150_000,
            Attacker::Ipv6Slash48 => 20_000,
            Attacker::Botnet => 200_000,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Legit {
    /// 500 people behind one IPv4 NAT, 50 of them starting a flow within the
    /// same 5 minutes; one in ten mistypes the code once.
    Nat,
    /// A CI pipeline: 100 complete flows in 10 minutes from one address.
    Ci,
    /// A TV maker's public client: 50,000 devices in one evening, each at home
    /// (its own address), played here within one lifetime.
    TvMaker,
}

impl Legit {
    const ALL: [Legit; 3] = [Legit::Nat, Legit::Ci, Legit::TvMaker];

    fn name(self) -> &'static str {
        match self {
            Legit::Nat => "500 behind one NAT, 50 flows in 5 min",
            Legit::Ci => "CI, 100 flows in 10 min from one address",
            Legit::TvMaker => "TV maker, 50,000 devices",
        }
    }

    fn flows(self, scale: u32) -> u32 {
        match self {
            Legit::Nat => 50,
            Legit::Ci => 100,
            Legit::TvMaker => 50_000 / scale,
        }
    }

    /// When flow `i` starts, in seconds into the lifetime.
    fn start(self, i: u32, scale: u32) -> i64 {
        match self {
            Legit::Nat => i64::from(i) * 6,
            Legit::Ci => i64::from(i) * 6,
            Legit::TvMaker => i64::from(i) * (SECONDS - 60) / i64::from(self.flows(scale)),
        }
    }

    fn address(self, i: u32) -> IpAddr {
        match self {
            Legit::Nat => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 10)),
            Legit::Ci => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)),
            Legit::TvMaker if i % 2 == 0 => IpAddr::V4(Ipv4Addr::from(0x5000_0000 + i)),
            Legit::TvMaker => IpAddr::V6(Ipv6Addr::new(
                0x2a00,
                (i >> 16) as u16,
                i as u16,
                0x10,
                0,
                0,
                0,
                1,
            )),
        }
    }

    fn person(self, i: u32) -> Subject {
        match self {
            Legit::Ci => Subject::new("ci-bot"),
            _ => Subject::new(format!("person-{i}")),
        }
    }

    fn mistypes(self, i: u32) -> bool {
        matches!(self, Legit::Nat) && i % 10 == 3
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Row {
    /// Attacker guesses that reached a look-up.
    looked_up: u64,
    /// Attacker guesses refused before a look-up.
    refused: u64,
    /// Pending records the attacker created.
    records: u64,
    /// Legitimate requests refused (must stay 0).
    legit_refused: u64,
    /// Legitimate people asked to sign in before entering their code.
    legit_signed_in_first: u64,
    /// Legitimate flows that ended with tokens.
    legit_tokens: u64,
}

struct Flow {
    started: i64,
    i: u32,
    poll: String,
    user_code: String,
    approved: bool,
    done: bool,
}

/// The bound on an attacker's look-ups in one lifetime, from the budgets:
/// 20 per key per 5-minute window, and 1,000 anonymous per window
/// deployment-wide; the lifetime spans two windows here.
fn bound(attacker: Attacker) -> u64 {
    let b = Budgets::default();
    let per_key = u64::from(b.wrong_codes_per_key.attempts);
    let anonymous = u64::from(b.wrong_codes_anonymous.unwrap().attempts);
    let windows = (SECONDS / b.wrong_codes_per_key.window.whole_seconds()) as u64;
    (per_key * u64::from(attacker.sources())).min(anonymous) * windows
}

fn ctx(ip: IpAddr) -> RequestContext {
    RequestContext {
        ip: Some(ip),
        ..RequestContext::default()
    }
}

async fn play(
    attacker: Attacker,
    legit: Legit,
    scale: u32,
    store: Arc<dyn Store>,
    limiter: Arc<dyn AttemptLimiter>,
    start: OffsetDateTime,
) -> Row {
    let clock = Arc::new(ManualClock::new(start));
    let grant: DeviceGrant = DeviceGrant::builder(
        common::config().build().unwrap(),
        Arc::new(common::clients()),
        Arc::new(common::CountingIssuer(AtomicUsize::new(0))),
    )
    .store(store)
    .limiter(limiter)
    .clock(clock.clone())
    .build();
    let mut row = Row::default();
    let mut flows: Vec<Flow> = Vec::new();
    let (guesses, authorizations) = (
        attacker.guesses() / scale,
        attacker.authorizations() / scale,
    );
    let mut next_legit = 0;
    // The attack lasts the lifetime; the last flows finish in the minute after.
    for second in 0..SECONDS + 60 {
        // The attacker, spread evenly over the lifetime.
        let from = |total: u32| {
            (u64::from(total) * second as u64 / SECONDS as u64).min(total.into()) as u32
        };
        let until = |total: u32| {
            (u64::from(total) * (second as u64 + 1) / SECONDS as u64).min(total.into()) as u32
        };
        for g in from(guesses)..until(guesses) {
            let who = CodeEntry::from_address(attacker.address(g));
            match grant.verify("BCDF-GHJK", &who).await {
                Ok(_) | Err(VerificationError::NotFound) => row.looked_up += 1,
                Err(
                    VerificationError::TooManyAttempts { .. }
                    | VerificationError::SignInRequired { .. },
                ) => row.refused += 1,
                Err(e) => panic!("attacker guess: {e}"),
            }
        }
        for a in from(authorizations)..until(authorizations) {
            let r = grant
                .device_authorization(
                    EndpointRequest::form(b"client_id=tv-app"),
                    ctx(attacker.address(a)),
                )
                .await;
            match r {
                Ok(_) => row.records += 1,
                Err(OAuthError::RateLimited { .. }) => {}
                Err(e) => panic!("attacker device authorization: {e}"),
            }
        }
        // Legitimate flows starting now: the device asks for codes.
        while next_legit < legit.flows(scale) && legit.start(next_legit, scale) <= second {
            let i = next_legit;
            next_legit += 1;
            match grant
                .device_authorization(
                    EndpointRequest::form(b"client_id=tv-app"),
                    ctx(legit.address(i)),
                )
                .await
            {
                Ok(codes) => flows.push(Flow {
                    started: second,
                    i,
                    poll: common::poll_body("tv-app", codes.device_code.secret()),
                    user_code: codes.user_code.display().to_owned(),
                    approved: false,
                    done: false,
                }),
                Err(e) => {
                    eprintln!("{legit:?} flow {i} refused at device authorization: {e}");
                    row.legit_refused += 1;
                }
            }
        }
        // A person types the code 20 s after the device showed it, signs in and
        // allows; the device polls 5 s later, and every 5 s until it has tokens.
        for flow in flows.iter_mut().filter(|f| !f.done) {
            let age = second - flow.started;
            if age == 20 && !flow.approved {
                let anonymous = CodeEntry::from_address(legit.address(flow.i));
                let person = legit.person(flow.i);
                if legit.mistypes(flow.i) {
                    match grant.verify("BCDF-GHJK", &anonymous).await {
                        Err(
                            VerificationError::NotFound | VerificationError::SignInRequired { .. },
                        ) => {}
                        other => {
                            eprintln!("{legit:?} typo refused: {other:?}");
                            row.legit_refused += 1;
                        }
                    }
                }
                let found = match grant.verify(&flow.user_code, &anonymous).await {
                    Err(VerificationError::SignInRequired { .. }) => {
                        row.legit_signed_in_first += 1;
                        grant
                            .verify(&flow.user_code, &anonymous.signed_in(&person))
                            .await
                    }
                    other => other,
                };
                match found {
                    Ok(found) => {
                        let scopes = found.request.scopes.clone();
                        grant
                            .approve(
                                &found.ticket,
                                device_grant::Approve::scopes(person, None, scopes),
                            )
                            .await
                            .unwrap();
                        flow.approved = true;
                    }
                    Err(e) => {
                        eprintln!("{legit:?} flow {} refused at code entry: {e}", flow.i);
                        row.legit_refused += 1;
                        flow.done = true;
                    }
                }
            }
            if flow.approved && age >= 25 && age % 5 == 0 {
                match grant
                    .token(EndpointRequest::form(flow.poll.as_bytes()))
                    .await
                {
                    Ok(_) => {
                        row.legit_tokens += 1;
                        flow.done = true;
                    }
                    Err(OAuthError::AuthorizationPending) => {}
                    Err(e) => {
                        eprintln!(
                            "{legit:?} flow {} refused at the token endpoint: {e}",
                            flow.i
                        );
                        row.legit_refused += 1;
                        flow.done = true;
                    }
                }
            }
        }
        clock.advance(Duration::seconds(1));
    }
    row
}

fn check(attacker: Attacker, legit: Legit, scale: u32, row: &Row) {
    assert_eq!(
        row.legit_refused, 0,
        "{attacker:?} against {legit:?}: legitimate requests were refused: {row:?}"
    );
    assert_eq!(
        row.legit_tokens,
        u64::from(legit.flows(scale)),
        "{attacker:?} against {legit:?}: every legitimate flow ends with tokens: {row:?}"
    );
    assert!(
        row.looked_up <= bound(attacker),
        "{attacker:?} against {legit:?}: {} look-ups, over the bound of {}",
        row.looked_up,
        bound(attacker)
    );
}

/// The table's line for one pairing, as SECURITY.md shows it.
fn line(attacker: Attacker, legit: Legit, row: &Row) -> String {
    format!(
        "| {} | {} | {} | {} | {} | {} | {} |",
        attacker.name(),
        legit.name(),
        row.looked_up,
        bound(attacker),
        row.records,
        row.legit_signed_in_first,
        row.legit_refused,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attacker_against_every_legitimate_load_on_the_memory_store() {
    let mut tasks = Vec::new();
    for attacker in Attacker::ALL {
        for legit in Legit::ALL {
            tasks.push(tokio::spawn(async move {
                let row = play(
                    attacker,
                    legit,
                    1,
                    Arc::new(device_grant::MemoryStore::new()),
                    Arc::new(device_grant::MemoryLimiter::new()),
                    device_grant::Clock::now(&ManualClock::default()),
                )
                .await;
                (attacker, legit, row)
            }));
        }
    }
    let security = include_str!("../SECURITY.md");
    let mut table = String::new();
    for task in tasks {
        let (attacker, legit, row) = task.await.unwrap();
        check(attacker, legit, 1, &row);
        table.push_str(&line(attacker, legit, &row));
        table.push('\n');
    }
    println!("{table}");
    for row in table.lines() {
        assert!(
            security.contains(row),
            "SECURITY.md must show the simulation's table; missing:\n{row}\nwhole table:\n{table}"
        );
    }
}

/// A start time near the real clock, on a 600 s boundary, for stores whose
/// keys expire on the server's clock.
fn real_start() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    OffsetDateTime::from_unix_timestamp(now - now.rem_euclid(600) + 600).unwrap()
}

const SHARED_SCALE: u32 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenarios_on_redis() {
    use device_grant_redis::{RedisLimiter, RedisStore};
    let Some(url) = services::service_url("DEVICE_GRANT_REDIS_URL") else {
        return;
    };
    for attacker in [Attacker::OneAddress, Attacker::ThousandIpv4] {
        for legit in Legit::ALL {
            let prefix = services::unique("dgsim");
            let store = RedisStore::connect(&url, prefix.clone()).await.unwrap();
            let limiter = RedisLimiter::connect(&url, prefix).await.unwrap();
            let row = play(
                attacker,
                legit,
                SHARED_SCALE,
                Arc::new(store),
                Arc::new(limiter),
                real_start(),
            )
            .await;
            check(attacker, legit, SHARED_SCALE, &row);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_scenarios_on_postgres() {
    use device_grant_postgres::{PostgresLimiter, PostgresOptions, PostgresStore};
    let Some(url) = services::service_url("DEVICE_GRANT_POSTGRES_URL") else {
        return;
    };
    for attacker in [Attacker::OneAddress, Attacker::ThousandIpv4] {
        for legit in Legit::ALL {
            let options = PostgresOptions {
                schema: services::unique("dgsim").replace('-', "_"),
                ..PostgresOptions::default()
            };
            let store = PostgresStore::connect_with(&url, options).await.unwrap();
            let limiter: PostgresLimiter = store.limiter();
            let row = play(
                attacker,
                legit,
                SHARED_SCALE,
                Arc::new(store),
                Arc::new(limiter),
                real_start(),
            )
            .await;
            check(attacker, legit, SHARED_SCALE, &row);
        }
    }
}
