//! The full-flow driver of the multi-instance load test (benches/multi/run.sh):
//! device authorizations, approvals and redemptions spread across several
//! example-server instances that share one store, with two checks under load.
//!
//! ```text
//! multi-flows --instances URL,URL[,…] [--workers 8] [--seconds 10] [--pacing 200]
//!             [--server-pids PID,…] [--store-pids PID,…]
//! ```
//!
//! Each worker is a person with a browser session on one instance (signed in
//! through the sign-in page, from an address of its own so that the sign-in
//! budgets of one network do not stop the load) and a device that asks on
//! another. A flow is:
//! 1. the device asks for codes (`POST /device_authorization`) on instance `a`;
//! 2. the person looks the code up and approves it through the verification
//!    API (`/api/verification/…`) on their own instance;
//! 3. the device's poll is sent to every instance at once: exactly one may
//!    get tokens (a second 200 is a double redemption).
//!
//! Before the flows, `--pacing` codes are each polled on one instance and then
//! at once on the next: the second poll must be `slow_down`, whichever
//! instance answers (the interval is kept in the shared record).
//!
//! It prints one line:
//! `RESULT flows=… flows_per_s=… p50_ms=… p99_ms=… servers_cpu_us=… store_cpu_us=… double_redemptions=… lost_redemptions=… pacing_checked=… pacing_violations=… errors=…`
//! (the CPU figures are per flow, of the processes given by `--server-pids`
//! and `--store-pids`, over the flows only) and exits non-zero if a check failed or a request errored.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const USAGE: &str = "usage: multi-flows --instances URL,URL[,…] [--workers 8] [--seconds 10] \
                     [--pacing 200]";

struct Args {
    instances: Vec<String>,
    workers: usize,
    seconds: u64,
    pacing: usize,
    server_pids: Vec<u32>,
    store_pids: Vec<u32>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        instances: Vec::new(),
        workers: 8,
        seconds: 10,
        pacing: 200,
        server_pids: Vec::new(),
        store_pids: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--instances" => {
                args.instances = value
                    .split(',')
                    .map(|s| s.trim_end_matches('/').to_owned())
                    .collect()
            }
            "--workers" => args.workers = number()? as usize,
            "--seconds" => args.seconds = number()?,
            "--pacing" => args.pacing = number()? as usize,
            "--server-pids" => args.server_pids = pids(&value)?,
            "--store-pids" => args.store_pids = pids(&value)?,
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if args.instances.is_empty() || args.workers == 0 || args.workers > 8 {
        return Err(USAGE.to_owned());
    }
    Ok(args)
}

fn pids(list: &str) -> Result<Vec<u32>, String> {
    list.split([',', ' '])
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|_| format!("not a process id: {p}")))
        .collect()
}

/// The CPU time (user + system) of `pids` so far, in clock ticks: fields 14
/// and 15 of `/proc/PID/stat`, after the parenthesised command name.
fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")).ok())
        .filter_map(|stat| {
            let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
            Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
        })
        .sum()
}

/// Clock ticks per second (`getconf CLK_TCK`): 100 on Linux.
const TICKS_PER_S: f64 = 100.0;

#[derive(Default)]
struct Tally {
    flows: AtomicU64,
    double_redemptions: AtomicU64,
    lost_redemptions: AtomicU64,
    pacing_checked: AtomicU64,
    pacing_violations: AtomicU64,
    errors: AtomicU64,
}

/// A person and their device, both at `ip` (sent as `X-Forwarded-For`; the
/// instances run with `--client-address x-forwarded-for`).
struct Worker {
    browser: reqwest::Client,
    device: reqwest::Client,
    home: String,
    csrf: String,
}

fn client(ip: &str, cookies: bool) -> Result<reqwest::Client, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        "x-forwarded-for",
        ip.parse().map_err(|_| "bad address".to_owned())?,
    );
    reqwest::Client::builder()
        .cookie_store(cookies)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

async fn json(response: reqwest::Response) -> Result<(u16, Value), String> {
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| e.to_string())?;
    let value = serde_json::from_slice(&body)
        .map_err(|_| format!("{status}: {}", String::from_utf8_lossy(&body)))?;
    Ok((status, value))
}

impl Worker {
    async fn new(index: usize, home: &str) -> Result<Self, String> {
        let ip = format!("10.{}.{}.1", index / 250, index % 250 + 1);
        // The demo accounts, in turn. A look-up spends from the account's
        // wrong-code budget (5) until it is found to be right, so more than
        // five look-ups in flight on one account would be refused: a person
        // never has that many, so workers share an account by at most four.
        let account = [("alice", "wonderland"), ("bob", "builder")][index % 2];
        let browser = client(&ip, true)?;
        let device = client(&ip, false)?;
        let session =
            |b: &reqwest::Client| b.get(format!("{home}/api/verification/session")).send();
        let (_, first) = json(session(&browser).await.map_err(|e| e.to_string())?).await?;
        let csrf = first["csrf"].as_str().ok_or("no csrf")?.to_owned();
        let signed = browser
            .post(format!("{home}/login"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("username", account.0),
                ("password", account.1),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !signed.status().is_redirection() {
            return Err(format!("sign-in answered {}", signed.status()));
        }
        // Signing in renews the CSRF token.
        let (_, now) = json(session(&browser).await.map_err(|e| e.to_string())?).await?;
        if now["signed_in"] != true {
            return Err(format!("not signed in: {now}"));
        }
        Ok(Self {
            browser,
            device,
            home: home.to_owned(),
            csrf: now["csrf"].as_str().ok_or("no csrf")?.to_owned(),
        })
    }

    async fn ask(&self, instance: &str) -> Result<Value, String> {
        let response = self
            .device
            .post(format!("{instance}/device_authorization"))
            .form(&[("client_id", "tv-app"), ("scope", "profile")])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match json(response).await? {
            (200, codes) => Ok(codes),
            (status, body) => Err(format!("device authorization: {status} {body}")),
        }
    }

    async fn poll(&self, instance: &str, codes: &Value) -> Result<(u16, Value), String> {
        let response = self
            .device
            .post(format!("{instance}/token"))
            .form(&[
                ("grant_type", GRANT),
                ("client_id", "tv-app"),
                ("device_code", codes["device_code"].as_str().unwrap_or("")),
            ])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        json(response).await
    }

    async fn call(&self, path: &str, body: Value) -> Result<Value, String> {
        let response = self
            .browser
            .post(format!("{}{path}", self.home))
            .header("x-csrf-token", &self.csrf)
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        match json(response).await? {
            (200, value) => Ok(value),
            (status, value) => Err(format!("{path}: {status} {value}")),
        }
    }

    /// One whole flow, counting a double or lost redemption in `tally`.
    async fn flow(&self, instances: &[String], n: usize, tally: &Tally) -> Result<(), String> {
        let codes = self.ask(&instances[n % instances.len()]).await?;
        let found = self
            .call(
                "/api/verification/lookup",
                serde_json::json!({ "user_code": codes["user_code"] }),
            )
            .await?;
        let handle = found["handle"].as_str().ok_or("no handle")?;
        self.call(
            &format!("/api/verification/requests/{handle}/approve"),
            serde_json::json!({}),
        )
        .await?;
        let polls = instances.iter().map(|i| self.poll(i, &codes));
        let answers = futures::future::join_all(polls).await;
        let mut tokens = 0;
        for answer in answers {
            let (status, body) = answer?;
            match status {
                200 => tokens += 1,
                400 if matches!(
                    body["error"].as_str(),
                    Some("invalid_grant" | "slow_down" | "authorization_pending")
                ) => {}
                _ => return Err(format!("redeem: {status} {body}")),
            }
        }
        match tokens {
            1 => {}
            0 => {
                tally.lost_redemptions.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                tally.double_redemptions.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// A poll on one instance, then at once on the next: `slow_down` expected.
    async fn pacing(&self, instances: &[String], n: usize, tally: &Tally) -> Result<(), String> {
        let a = &instances[n % instances.len()];
        let b = &instances[(n + 1) % instances.len()];
        let codes = self.ask(a).await?;
        let (_, first) = self.poll(a, &codes).await?;
        if first["error"] != "authorization_pending" {
            return Err(format!("first poll: {first}"));
        }
        let (_, second) = self.poll(b, &codes).await?;
        tally.pacing_checked.fetch_add(1, Ordering::Relaxed);
        if second["error"] != "slow_down" {
            tally.pacing_violations.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    let instances = Arc::new(args.instances);
    let tally = Arc::new(Tally::default());
    let mut workers = Vec::new();
    for index in 0..args.workers {
        let home = &instances[index % instances.len()];
        match Worker::new(index, home).await {
            Ok(worker) => workers.push(Arc::new(worker)),
            Err(message) => {
                eprintln!("worker {index}: {message}");
                return ExitCode::FAILURE;
            }
        }
    }

    // Pacing across instances.
    let mut tasks = Vec::new();
    for (w, worker) in workers.iter().enumerate() {
        let (worker, instances, tally) = (worker.clone(), instances.clone(), tally.clone());
        let share = args.pacing / workers.len() + usize::from(w < args.pacing % workers.len());
        tasks.push(tokio::spawn(async move {
            for i in 0..share {
                if let Err(message) = worker.pacing(&instances, w + i, &tally).await {
                    eprintln!("pacing: {message}");
                    tally.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }

    // Flows, for `seconds`.
    let (servers_before, store_before) =
        (cpu_ticks(&args.server_pids), cpu_ticks(&args.store_pids));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut tasks = Vec::new();
    for (w, worker) in workers.iter().enumerate() {
        let (worker, instances, tally) = (worker.clone(), instances.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut n = w;
            while Instant::now() < deadline {
                let at = Instant::now();
                match worker.flow(&instances, n, &tally).await {
                    Ok(()) => {
                        tally.flows.fetch_add(1, Ordering::Relaxed);
                        latencies.push(at.elapsed());
                    }
                    Err(message) => {
                        eprintln!("flow: {message}");
                        tally.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                n += 1;
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let per_flow = |ticks: u64| {
        1e6 * ticks as f64 / TICKS_PER_S / (tally.flows.load(Ordering::Relaxed).max(1) as f64)
    };
    let servers_us = per_flow(cpu_ticks(&args.server_pids) - servers_before);
    let store_us = per_flow(cpu_ticks(&args.store_pids) - store_before);
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let flows = get(&tally.flows);
    println!(
        "RESULT flows={flows} flows_per_s={:.1} p50_ms={:.1} p99_ms={:.1} \
         servers_cpu_us={servers_us:.0} store_cpu_us={store_us:.0} double_redemptions={} \
         lost_redemptions={} pacing_checked={} pacing_violations={} errors={}",
        flows as f64 / elapsed,
        at(0.5),
        at(0.99),
        get(&tally.double_redemptions),
        get(&tally.lost_redemptions),
        get(&tally.pacing_checked),
        get(&tally.pacing_violations),
        get(&tally.errors),
    );
    let failed = get(&tally.double_redemptions)
        + get(&tally.lost_redemptions)
        + get(&tally.pacing_violations)
        + get(&tally.errors);
    if failed == 0 && flows > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
