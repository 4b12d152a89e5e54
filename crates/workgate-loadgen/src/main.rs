//! `workgate-loadgen`: Enterprise Logins per second, and `GET /me` against `GET /healthz`, over
//! real HTTP on loopback against the release `workgate` binary (started here as a subprocess,
//! over a fresh SQLite database in a temporary directory, killed at the end).
//!
//! ```text
//! cargo build --release -p workgate
//! cargo run --release -p workgate-loadgen -- login --clients 32 --seconds 20
//! cargo run --release -p workgate-loadgen -- me --clients 32 --seconds 10
//! ```
//!
//! SMS codes reach the loadgen through the server's `webhook` provider: the loadgen runs the
//! receiver (signature checked, code taken from the body and handed to the waiting client). The
//! server's per-IP, per-network and SMS-budget limits are raised in its configuration so that the
//! benchmark measures speed, not the limiter; the per-number limits stay, which is why every login
//! of a run uses a number of its own. Server and loadgen share the machine's cores.

mod harness;
mod login;
mod sms;
mod stats;

use clap::{Args, Parser, Subcommand};
use harness::{Options, Server, phone};
use stats::{CpuWindow, Latencies, Row, print_table};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "workgate-loadgen", about = "Load generator for Workgate's login and /me over loopback HTTP")]
struct Cli {
    /// The server binary to start.
    #[arg(long, global = true, default_value = "target/release/workgate")]
    server_bin: PathBuf,
    /// Keep the temporary directory (database, configuration, server log) for inspection.
    #[arg(long, global = true)]
    keep: bool,
    #[command(subcommand)]
    command: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Complete Enterprise Logins per second, and the latency of a login and of each step.
    Login(LoginArgs),
    /// Authenticated `GET /api/v1/me` per second against `GET /healthz` on the same server.
    Me(MeArgs),
}

#[derive(Args)]
struct LoginArgs {
    /// Concurrent clients, each logging in one number after another.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of load before the measurement starts (not counted).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Members seeded, each with a number of its own; the run stops early if they run out.
    #[arg(long, default_value_t = 80_000)]
    members: usize,
}

#[derive(Args)]
struct MeArgs {
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Measured seconds of each of `/me` and `/healthz`.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Real logins whose access tokens the `/me` clients use, round robin.
    #[arg(long, default_value_t = 300)]
    logins: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let opts = Options { server_bin: &cli.server_bin, keep: cli.keep };
    let (seconds, warmup) = match &cli.command {
        Scenario::Login(a) => (a.seconds, a.warmup),
        Scenario::Me(a) => (2 * a.seconds, 2 * a.warmup),
    };
    // Bounded in time whatever happens: seeding, the run, and a margin.
    let bound = Duration::from_secs(seconds + warmup + 600);
    let server = Server::start(&opts).await?;
    let result = tokio::time::timeout(bound, async {
        match &cli.command {
            Scenario::Login(a) => run_login(&server, a).await,
            Scenario::Me(a) => run_me(&server, a).await,
        }
    })
    .await;
    let received = server.inbox.received.load(Ordering::Relaxed);
    let unexpected = server.inbox.unexpected.load(Ordering::Relaxed);
    let bad = server.inbox.bad_signature.load(Ordering::Relaxed);
    eprintln!("SMS receiver: {received} messages, {unexpected} for nobody waiting, {bad} with a bad signature");
    if cli.keep {
        eprintln!("kept {}", server.root.display());
    }
    server.stop().await;
    match result {
        Ok(r) => r,
        Err(_) => anyhow::bail!("the run took longer than {} s and was stopped", bound.as_secs()),
    }
}

fn print_setup(what: &str, clients: usize, seconds: u64, warmup: u64) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "{what}: {clients} clients, {seconds} s measured after {warmup} s of warm-up; server and loadgen share {cores} cores"
    );
}

#[derive(Default)]
struct LoginTally {
    start: Latencies,
    sms: Latencies,
    code: Latencies,
    total: Latencies,
    errors: BTreeMap<String, usize>,
}

async fn run_login(server: &Server, a: &LoginArgs) -> anyhow::Result<()> {
    server.seed(a.members).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(a.warmup);
    let until = measure_from + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for _ in 0..a.clients {
        let (next, base, inbox, members) = (next.clone(), server.base.clone(), server.inbox.clone(), a.members);
        tasks.push(tokio::spawn(async move {
            let http = login::http_client();
            let mut tally = LoginTally::default();
            while Instant::now() < until {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= members {
                    break;
                }
                let outcome = login::login(&http, &base, &inbox, &phone(i)).await;
                let done = Instant::now();
                if done < measure_from || done > until {
                    continue;
                }
                match outcome {
                    Ok(ok) => {
                        tally.start.record(ok.timings.start);
                        tally.sms.record(ok.timings.sms);
                        tally.code.record(ok.timings.code);
                        tally.total.record(ok.timings.total);
                    }
                    Err(e) => *tally.errors.entry(e).or_default() += 1,
                }
            }
            tally
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu = CpuWindow::start(server.pid);
    tokio::time::sleep_until(until.into()).await;
    let cpu_line = cpu.describe();
    let mut all = LoginTally::default();
    for t in tasks {
        let t = t.await?;
        all.start.merge(t.start);
        all.sms.merge(t.sms);
        all.code.merge(t.code);
        all.total.merge(t.total);
        for (k, v) in t.errors {
            *all.errors.entry(k).or_default() += v;
        }
    }
    if next.load(Ordering::Relaxed) >= a.members {
        eprintln!(
            "warning: all {} numbers were used before the end: the rate below is too low; seed more with --members",
            a.members
        );
    }
    let window = a.seconds as f64;
    print_setup("login", a.clients, a.seconds, a.warmup);
    let rate = all.total.len() as f64 / window;
    print_table(&[
        Row { what: "complete login (start→sms→code→done)", per_sec: Some(rate), lat: &all.total },
        Row { what: "  POST /login/start", per_sec: None, lat: &all.start },
        Row { what: "  SMS code reaches the client", per_sec: None, lat: &all.sms },
        Row { what: "  POST /login/{id}/code", per_sec: None, lat: &all.code },
    ]);
    println!("{cpu_line}");
    let failed: usize = all.errors.values().sum();
    println!("failed logins in the window: {failed}");
    for (k, v) in &all.errors {
        println!("  {v:>7}  {k}");
    }
    println!("complete logins/s: {rate:.0} (goal ≥ 2000: {})", if rate >= 2000.0 { "met" } else { "NOT met" });
    Ok(())
}

#[derive(Default)]
struct Tally {
    lat: Latencies,
    errors: BTreeMap<String, usize>,
}

async fn run_me(server: &Server, a: &MeArgs) -> anyhow::Result<()> {
    server.seed(a.logins).await?;
    // The tokens: real logins, a few clients at a time (not measured).
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..a.clients.min(a.logins).max(1) {
        let (next, base, inbox, logins) = (next.clone(), server.base.clone(), server.inbox.clone(), a.logins);
        tasks.push(tokio::spawn(async move {
            let http = login::http_client();
            let mut tokens = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= logins {
                    break;
                }
                match login::login(&http, &base, &inbox, &phone(i)).await {
                    Ok(ok) => tokens.push(ok.access_token),
                    Err(e) => return Err(anyhow::anyhow!("login {i} failed: {e}")),
                }
            }
            Ok(tokens)
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.extend(t.await??);
    }
    eprintln!("{} members logged in; their access tokens are used round robin", tokens.len());
    let tokens = Arc::new(tokens);

    let (me, me_cpu) = hammer(server, a, Some(tokens.clone()), "/api/v1/me").await;
    let (health, health_cpu) = hammer(server, a, None, "/healthz").await;
    print_setup("me", a.clients, a.seconds, a.warmup);
    let secs = a.seconds as f64;
    let (me_rate, health_rate) = (me.lat.len() as f64 / secs, health.lat.len() as f64 / secs);
    print_table(&[
        Row { what: "GET /api/v1/me", per_sec: Some(me_rate), lat: &me.lat },
        Row { what: "GET /healthz", per_sec: Some(health_rate), lat: &health.lat },
    ]);
    println!("/me: {me_cpu}");
    println!("/healthz: {health_cpu}");
    for (what, t) in [("/me", &me), ("/healthz", &health)] {
        for (k, v) in &t.errors {
            println!("  {what} errors: {v:>7}  {k}");
        }
    }
    let pct = if health_rate > 0.0 { 100.0 * me_rate / health_rate } else { 0.0 };
    let p99 = me.lat.quantile_ms(0.99);
    println!(
        "/me is {pct:.0}% of /healthz (goal ≥ 50%: {}); /me p99 {p99:.2} ms (goal < 5 ms: {})",
        if pct >= 50.0 { "met" } else { "NOT met" },
        if p99 < 5.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// `clients` loops of GET `path` for warm-up + `seconds`; with tokens, each request carries the
/// next one (round robin) as its bearer credential.
async fn hammer(server: &Server, a: &MeArgs, tokens: Option<Arc<Vec<String>>>, path: &str) -> (Tally, String) {
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(a.warmup);
    let until = measure_from + Duration::from_secs(a.seconds);
    let counter = Arc::new(AtomicUsize::new(0));
    let url = format!("{}{path}", server.base);
    let mut tasks = Vec::new();
    for _ in 0..a.clients {
        let (tokens, counter, url) = (tokens.clone(), counter.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let http = login::http_client();
            let mut tally = Tally::default();
            while Instant::now() < until {
                let mut request = http.get(&url);
                if let Some(tokens) = &tokens {
                    let i = counter.fetch_add(1, Ordering::Relaxed) % tokens.len();
                    request = request.bearer_auth(&tokens[i]);
                }
                let sent = Instant::now();
                let outcome = match request.send().await {
                    Ok(r) => {
                        let status = r.status();
                        match r.bytes().await {
                            Ok(_) if status.is_success() => Ok(()),
                            Ok(_) => Err(format!("HTTP {}", status.as_u16())),
                            Err(_) => Err("body".to_string()),
                        }
                    }
                    Err(e) => Err(format!("transport: {e}")),
                };
                let done = Instant::now();
                if sent < measure_from || done > until {
                    continue;
                }
                match outcome {
                    Ok(()) => tally.lat.record(done - sent),
                    Err(e) => *tally.errors.entry(e).or_default() += 1,
                }
            }
            tally
        }));
    }
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu = CpuWindow::start(server.pid);
    tokio::time::sleep_until(until.into()).await;
    let cpu_line = cpu.describe();
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.lat.merge(t.lat);
            for (k, v) in t.errors {
                *all.errors.entry(k).or_default() += v;
            }
        }
    }
    (all, cpu_line)
}
