//! What the trust model costs and hides, measured:
//!
//! - `hidden`: with `login.hide_membership = true`, the time of `POST /login/start` for numbers of
//!   members and for unknown numbers, sent interleaved by the same clients, as two distributions
//!   (they should be alike: the two paths do the same reads and writes, but for the SMS itself).
//! - `password-burst`: many members at the password step each send one wrong password at the same
//!   moment; the server's resident memory is sampled throughout (each Argon2id check holds
//!   19 MiB, and the server runs at most one per core with a short queue, refusing the rest).

use crate::harness::{Server, phone};
use crate::login::{self, Password};
use crate::stats::{Latencies, Row, print_table};
use crate::{PASSWORD, login_all, print_setup};
use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The `[login]` lines of the `hidden` scenario.
pub const HIDDEN_LOGIN_CONFIG: &str = "hide_membership = true\n";

/// Unknown numbers are taken from this index on (members have the first ones).
const UNKNOWN_FROM: usize = 5_000_000;

#[derive(Args)]
pub struct HiddenArgs {
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// `login/start` calls of each kind (member, unknown).
    #[arg(long, default_value_t = 2_000)]
    starts: usize,
}

#[derive(Args)]
pub struct BurstArgs {
    /// Members at the password step, each sending one wrong password in the burst.
    #[arg(long, default_value_t = 200)]
    members: usize,
}

pub async fn run_hidden(server: &Server, a: &HiddenArgs) -> anyhow::Result<()> {
    server.seed(a.starts).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for client in 0..a.clients {
        let (next, base, starts) = (next.clone(), server.node(client).to_string(), a.starts);
        tasks.push(tokio::spawn(async move {
            let http = login::http_client();
            let (mut member, mut unknown) = (Latencies::default(), Latencies::default());
            let mut refused: BTreeMap<String, usize> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 2 * starts {
                    break;
                }
                // Interleaved: even turns a member's number, odd turns an unknown one.
                let (number, tally) =
                    if i % 2 == 0 { (phone(i / 2), &mut member) } else { (phone(UNKNOWN_FROM + i / 2), &mut unknown) };
                let t0 = Instant::now();
                let response =
                    http.post(format!("{base}/api/v1/login/start")).json(&json!({ "phone": number })).send().await;
                match response {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        tally.record(t0.elapsed());
                    }
                    Ok(r) => *refused.entry(format!("HTTP {}", r.status().as_u16())).or_default() += 1,
                    Err(e) => *refused.entry(format!("transport {e}")).or_default() += 1,
                }
            }
            (member, unknown, refused)
        }));
    }
    let (mut member, mut unknown, mut refused) = (Latencies::default(), Latencies::default(), BTreeMap::new());
    for t in tasks {
        let (m, u, r) = t.await?;
        member.merge(m);
        unknown.merge(u);
        for (k, v) in r {
            *refused.entry(k).or_insert(0) += v;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    print_setup(server, "hidden membership: POST /login/start", a.clients, seconds.round() as u64, 0);
    print_table(&[
        Row { what: "member's number (code sent)", per_sec: None, lat: &member },
        Row { what: "unknown number (no SMS)", per_sec: None, lat: &unknown },
    ]);
    let ratio = |q: f64| member.quantile_ms(q) / unknown.quantile_ms(q).max(f64::MIN_POSITIVE);
    println!(
        "member / unknown: median {:.2}, p90 {:.2}, p99 {:.2}, mean {:.2}",
        ratio(0.5),
        ratio(0.9),
        ratio(0.99),
        member.mean_ms() / unknown.mean_ms().max(f64::MIN_POSITIVE)
    );
    for (k, v) in &refused {
        println!("  refused {v:>6}  {k}");
    }
    Ok(())
}

/// The server's resident memory now and at its peak, in MiB (Linux `/proc`).
fn memory_mib(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

pub async fn run_burst(server: &Server, a: &BurstArgs) -> anyhow::Result<()> {
    server.seed(a.members).await?;
    server.change_policy(json!({ "require_password": true })).await?;
    login_all(server, a.members, 16, Password::Set(PASSWORD)).await?;
    // Each member's next login waits at the password step (the resend cooldown is 1 s here).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let http = login::http_client();
    let mut waiting = Vec::with_capacity(a.members);
    for i in 0..a.members {
        let number = phone(i);
        let code = server.inbox.expect(&number);
        let started: Value = http
            .post(format!("{}/api/v1/login/start", server.base))
            .json(&json!({ "phone": number }))
            .send()
            .await?
            .json()
            .await?;
        let login_id = started["login_id"].as_str().context("start: no login_id")?.to_string();
        let code = tokio::time::timeout(login::SMS_TIMEOUT, code).await.context("no SMS code")??;
        let step: Value = http
            .post(format!("{}/api/v1/login/{login_id}/code", server.base))
            .json(&json!({ "code": code }))
            .send()
            .await?
            .json()
            .await?;
        anyhow::ensure!(step["next"] == "password", "code: next = {}", step["next"]);
        waiting.push(login_id);
    }
    let pid = server.pids[0];
    let (before, _) = memory_mib(pid).context("reading the server's memory")?;
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            while sampling.load(Ordering::Relaxed) {
                if let Some((rss, _)) = memory_mib(pid) {
                    peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        })
    };
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for (i, login_id) in waiting.into_iter().enumerate() {
        let (http, url) = (login::http_client(), format!("{}/api/v1/login/{login_id}/password", server.base));
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let answer = http.post(url).json(&json!({ "password": format!("wrong-guess-{i}") })).send().await;
            let key = match answer {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    format!("{status} {}", body["code"].as_str().unwrap_or("?"))
                }
                Err(e) => format!("transport {e}"),
            };
            (key, t.elapsed())
        }));
    }
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    let mut latency = Latencies::default();
    for t in tasks {
        let (key, took) = t.await?;
        latency.record(took);
        *answers.entry(key).or_default() += 1;
    }
    let burst = t0.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await?;
    let (after, high_water) = memory_mib(pid).context("reading the server's memory")?;
    print_setup(server, "password burst: one wrong password per member at once", a.members, 0, 0);
    print_table(&[Row { what: "POST /login/{id}/password", per_sec: None, lat: &latency }]);
    println!("burst of {} requests answered in {:.0} ms", a.members, burst.as_secs_f64() * 1000.0);
    for (k, v) in &answers {
        println!("  {v:>6}  {k}");
    }
    println!(
        "server RSS: {before:.0} MiB before, {peak:.0} MiB peak during the burst, {after:.0} MiB after; \
         high-water mark of the process {high_water:.0} MiB"
    );
    Ok(())
}
