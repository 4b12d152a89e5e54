//! `workgate-loadgen`: Enterprise Logins per second, and `GET /me` against `GET /healthz`, over
//! real HTTP on loopback against the release `workgate` binary (started here as a subprocess,
//! over a fresh SQLite database in a temporary directory, killed at the end).
//!
//! ```text
//! cargo build --release -p workgate
//! cargo run --release -p workgate-loadgen -- login --clients 32 --seconds 20
//! cargo run --release -p workgate-loadgen -- login --password --clients 32 --seconds 20
//! cargo run --release -p workgate-loadgen -- me --clients 32 --seconds 10
//! cargo run --release -p workgate-loadgen -- hidden --clients 8 --starts 2000
//! cargo run --release -p workgate-loadgen -- password-burst --members 200
//! cargo run --release -p workgate-loadgen -- soak --minutes 30 --rate 150 --out soak.svg
//! cargo run --release -p workgate-loadgen -- soak --seconds 20 --sample-seconds 5   # a quick check
//! ```
//!
//! Every rate is printed beside the same server's `GET /healthz` in the same run (its ceiling on
//! this machine today: the machine's speed varies from day to day, ratios much less), with the
//! milliseconds of server CPU each operation cost. `--server-cores N` pins the server to the first
//! N cores and the load generator to the others (`taskset`), for a scaling table on a bigger
//! machine: `for n in 2 4 8; do workgate-loadgen --server-cores $n login; done`.
//!
//! `hidden` and `password-burst` measure the trust model (see `trust.rs`): the time of
//! `login/start` for members' and unknown numbers with hidden membership, and the server's memory
//! under a burst of wrong passwords.
//!
//! `login --password` sets the enterprise's policy to `require_password: true`, activates every
//! member first (code → `set_password`, not measured), then measures logins code → password →
//! done. Each number then logs in twice, so that run lowers the per-number resend cooldown to 1 s.
//!
//! SMS codes reach the loadgen through the server's `webhook` provider: the loadgen runs the
//! receiver (signature checked, code taken from the body and handed to the waiting client). The
//! server's per-IP, per-network and SMS-budget limits are raised in its configuration so that the
//! benchmark measures speed, not the limiter; the per-number limits stay, which is why every login
//! of a run uses a number of its own. Server and loadgen share the machine's cores.

mod harness;
mod login;
mod oidc;
mod peer;
mod sms;
mod soak;
mod stats;
mod trust;

use clap::{Args, Parser, Subcommand};
use harness::{Options, Server, phone};
use login::Password;
use stats::{CpuUse, CpuWindow, Latencies, Row, print_table, relative_line};
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
    /// Run on PostgreSQL: the URL of a database on the server to use for administration (e.g.
    /// postgres://postgres@127.0.0.1:5432/postgres); a fresh database `workgate_loadgen` is made
    /// there with `psql`. Without it: SQLite in a temporary directory.
    #[arg(long, global = true)]
    postgres: Option<String>,
    /// Server processes (nodes) on the one database; requests go to them round robin.
    #[arg(long, global = true, default_value_t = 1)]
    nodes: usize,
    /// Pin the server to the first N cores and this load generator to the others (`taskset`),
    /// for a scaling table on a machine with more than N cores. Without it both share every core.
    #[arg(long, global = true)]
    server_cores: Option<usize>,
    #[command(subcommand)]
    command: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Complete Enterprise Logins per second, and the latency of a login and of each step.
    Login(LoginArgs),
    /// Authenticated `GET /api/v1/me` per second against `GET /healthz` on the same server.
    Me(MeArgs),
    /// OpenID Connect: code exchanges at the token endpoint per second, then userinfo and
    /// introspection per second against `GET /healthz` on the same server.
    Oidc(oidc::OidcArgs),
    /// The `oidc` measures beside the same on oidc-provider (Node.js, in memory) in one run.
    OidcPeer(peer::PeerArgs),
    /// With hidden membership: the time of `login/start` for members' and unknown numbers.
    Hidden(trust::HiddenArgs),
    /// One wrong password per member from many members at once: answers and the server's memory.
    PasswordBurst(trust::BurstArgs),
    /// A steady mixed load for a long while (30 minutes) with retention shortened: throughput,
    /// p99, the server's memory and open files and the database's size every minute, a CSV, an
    /// SVG plot, and whether anything keeps growing.
    Soak(soak::SoakArgs),
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
    /// Members seeded, each with a number of its own; the run stops early if they run out
    /// [default: 80000, or 4000 with --password].
    #[arg(long)]
    members: Option<usize>,
    /// The policy requires a password: members are activated with one first (not measured), then
    /// logins go code → password → done.
    #[arg(long)]
    password: bool,
}

impl LoginArgs {
    fn members(&self) -> usize {
        self.members.unwrap_or(if self.password { 4_000 } else { 80_000 })
    }
}

/// The password every member sets at activation (strong enough for the server's zxcvbn check).
pub(crate) const PASSWORD: &str = "violet-tractor-lunar-87";

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
    let reuses_numbers = matches!(&cli.command, Scenario::Login(a) if a.password)
        || matches!(cli.command, Scenario::PasswordBurst(_) | Scenario::Soak(_));
    let opts = Options {
        server_bin: &cli.server_bin,
        keep: cli.keep,
        resend_cooldown_secs: reuses_numbers.then_some(1),
        extra_config: match cli.command {
            Scenario::Oidc(_) | Scenario::OidcPeer(_) => oidc::SERVER_CONFIG,
            Scenario::Soak(_) => soak::SERVER_CONFIG,
            _ => "",
        },
        login_config: match cli.command {
            Scenario::Hidden(_) => trust::HIDDEN_LOGIN_CONFIG,
            Scenario::Soak(_) => soak::LOGIN_CONFIG,
            _ => "",
        },
        postgres: cli.postgres.as_deref(),
        nodes: cli.nodes,
        server_cores: cli.server_cores,
    };
    let (seconds, warmup) = match &cli.command {
        Scenario::Login(a) => (a.seconds + a.seconds.min(10), 2 * a.warmup),
        Scenario::Me(a) => (2 * a.seconds, 2 * a.warmup),
        Scenario::Oidc(a) => (4 * a.seconds, 4 * a.warmup),
        Scenario::OidcPeer(a) => (8 * a.oidc.seconds, 8 * a.oidc.warmup),
        Scenario::Hidden(_) | Scenario::PasswordBurst(_) => (120, 0),
        Scenario::Soak(a) => (a.duration().as_secs(), 0),
    };
    // Bounded in time whatever happens: seeding, the run, and a margin.
    let bound = Duration::from_secs(seconds + warmup + 600);
    let server = Server::start(&opts).await?;
    let result = tokio::time::timeout(bound, async {
        match &cli.command {
            Scenario::Login(a) => run_login(&server, a).await,
            Scenario::Me(a) => run_me(&server, a).await,
            Scenario::Oidc(a) => oidc::run(&server, a).await,
            Scenario::OidcPeer(a) => peer::run(&server, a).await,
            Scenario::Hidden(a) => trust::run_hidden(&server, a).await,
            Scenario::PasswordBurst(a) => trust::run_burst(&server, a).await,
            Scenario::Soak(a) => soak::run(&server, a).await,
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

pub(crate) fn print_setup(server: &Server, what: &str, clients: usize, seconds: u64, warmup: u64) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "{what}: {clients} clients, {seconds} s measured after {warmup} s of warm-up; server and loadgen share {cores} cores"
    );
    println!("on {}, {} node(s)", server.database_kind, server.bases.len());
}

#[derive(Default)]
struct LoginTally {
    start: Latencies,
    sms: Latencies,
    code: Latencies,
    password: Latencies,
    total: Latencies,
    errors: BTreeMap<String, usize>,
}

impl LoginTally {
    fn merge(&mut self, other: LoginTally) {
        self.start.merge(other.start);
        self.sms.merge(other.sms);
        self.code.merge(other.code);
        self.password.merge(other.password);
        self.total.merge(other.total);
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

async fn run_login(server: &Server, a: &LoginArgs) -> anyhow::Result<()> {
    let members = a.members();
    server.seed(members).await?;
    let password = if a.password {
        server.change_policy(serde_json::json!({ "require_password": true })).await?;
        let started = Instant::now();
        login_all(server, members, a.clients, Password::Set(PASSWORD)).await?;
        eprintln!(
            "activated {members} members with a password in {:.1} s (not measured)",
            started.elapsed().as_secs_f64()
        );
        Password::Enter(PASSWORD)
    } else {
        Password::None
    };
    let next = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(a.warmup);
    let until = measure_from + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for client in 0..a.clients {
        let (next, base, inbox) = (next.clone(), server.node(client).to_string(), server.inbox.clone());
        tasks.push(tokio::spawn(async move {
            let http = login::http_client();
            let mut tally = LoginTally::default();
            while Instant::now() < until {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= members {
                    break;
                }
                let outcome = login::login(&http, &base, &inbox, &phone(i), password, None).await;
                let done = Instant::now();
                if done < measure_from || done > until {
                    continue;
                }
                match outcome {
                    Ok(ok) => {
                        tally.start.record(ok.timings.start);
                        tally.sms.record(ok.timings.sms);
                        tally.code.record(ok.timings.code);
                        if let Some(p) = ok.timings.password {
                            tally.password.record(p);
                        }
                        tally.total.record(ok.timings.total);
                    }
                    Err(e) => *tally.errors.entry(e).or_default() += 1,
                }
            }
            tally
        }));
    }
    let cpu = CpuWindow::measure(&server.pids, measure_from, until).await;
    let mut all = LoginTally::default();
    for t in tasks {
        all.merge(t.await?);
    }
    if next.load(Ordering::Relaxed) >= members {
        eprintln!(
            "warning: all {members} numbers were used before the end: the rate below is too low; seed more with --members"
        );
    }
    let window = a.seconds as f64;
    print_setup(server, if a.password { "login --password" } else { "login" }, a.clients, a.seconds, a.warmup);
    let rate = all.total.len() as f64 / window;
    let mut rows = vec![
        Row {
            what: if a.password {
                "complete login (start→code→password)"
            } else {
                "complete login (start→sms→code→done)"
            },
            per_sec: Some(rate),
            lat: &all.total,
        },
        Row { what: "  POST /login/start", per_sec: None, lat: &all.start },
        Row { what: "  SMS code reaches the client", per_sec: None, lat: &all.sms },
        Row { what: "  POST /login/{id}/code", per_sec: None, lat: &all.code },
    ];
    if a.password {
        rows.push(Row { what: "  POST /login/{id}/password", per_sec: None, lat: &all.password });
    }
    print_table(&rows);
    println!("{cpu}");
    let failed: usize = all.errors.values().sum();
    println!("failed logins in the window: {failed}");
    for (k, v) in &all.errors {
        println!("  {v:>7}  {k}");
    }
    let per_core =
        |cores: Option<f64>| cores.filter(|&c| c > 0.0).map_or_else(|| "?".to_string(), |c| format!("{:.0}", rate / c));
    let machine_cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let per_cores = format!(
        "{} per core of the server's CPU, {:.0} per core of the machine",
        per_core(cpu.server),
        rate / machine_cores
    );
    if a.password {
        println!("password logins/s: {rate:.0} ({per_cores})");
    } else {
        println!(
            "complete logins/s: {rate:.0} ({per_cores}; goal ≥ 2000: {})",
            if rate >= 2000.0 { "met" } else { "NOT met" }
        );
    }
    // The same server's ceiling, right after, with as many clients.
    let load = Load { clients: a.clients, warmup: a.warmup, seconds: a.seconds.min(10) };
    let (health, health_cpu) = hammer(server, load, get_with_tokens(server, "/healthz", None)).await;
    let health_rate = health.lat.len() as f64 / load.seconds as f64;
    println!("{}", relative_line("GET /healthz", health_rate, &health_cpu, health_rate));
    println!("{}", relative_line("complete login", rate, &cpu, health_rate));
    Ok(())
}

/// Logs in `phone(0..count)` once each, `clients` at a time (not measured); the access tokens.
pub(crate) async fn login_all(
    server: &Server,
    count: usize,
    clients: usize,
    password: Password<'static>,
) -> anyhow::Result<Vec<String>> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for client in 0..clients.min(count).max(1) {
        let (next, base, inbox) = (next.clone(), server.node(client).to_string(), server.inbox.clone());
        tasks.push(tokio::spawn(async move {
            let http = login::http_client();
            let mut tokens = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                match login::login(&http, &base, &inbox, &phone(i), password, None).await {
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
    Ok(tokens)
}

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) lat: Latencies,
    pub(crate) errors: BTreeMap<String, usize>,
}

/// Makes the `n`th request of a hammering loop.
pub(crate) type MakeRequest = Arc<dyn Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync>;

/// How long and how hard to hammer.
#[derive(Clone, Copy)]
pub(crate) struct Load {
    pub(crate) clients: usize,
    pub(crate) warmup: u64,
    pub(crate) seconds: u64,
}

/// A GET of `path` on the next node, with the `n`th of `tokens` (round robin) as bearer credential.
fn get_with_tokens(server: &Server, path: &str, tokens: Option<Arc<Vec<String>>>) -> MakeRequest {
    let urls = server.urls(path);
    Arc::new(move |http: &reqwest::Client, n: usize| {
        let request = http.get(&urls[n % urls.len()]);
        match &tokens {
            Some(tokens) => request.bearer_auth(&tokens[n % tokens.len()]),
            None => request,
        }
    })
}

async fn run_me(server: &Server, a: &MeArgs) -> anyhow::Result<()> {
    server.seed(a.logins).await?;
    // The tokens: real logins, a few clients at a time (not measured).
    let tokens = login_all(server, a.logins, a.clients, Password::None).await?;
    eprintln!("{} members logged in; their access tokens are used round robin", tokens.len());
    let tokens = Arc::new(tokens);

    let load = Load { clients: a.clients, warmup: a.warmup, seconds: a.seconds };
    let (me, me_cpu) = hammer(server, load, get_with_tokens(server, "/api/v1/me", Some(tokens))).await;
    let (health, health_cpu) = hammer(server, load, get_with_tokens(server, "/healthz", None)).await;
    print_setup(server, "me", a.clients, a.seconds, a.warmup);
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
    println!("{}", relative_line("GET /healthz", health_rate, &health_cpu, health_rate));
    println!("{}", relative_line("GET /api/v1/me", me_rate, &me_cpu, health_rate));
    let pct = if health_rate > 0.0 { 100.0 * me_rate / health_rate } else { 0.0 };
    let p99 = me.lat.quantile_ms(0.99);
    println!(
        "/me is {pct:.0}% of /healthz (goal ≥ 50%: {}); /me p99 {p99:.2} ms (goal < 5 ms: {})",
        if pct >= 50.0 { "met" } else { "NOT met" },
        if p99 < 5.0 { "met" } else { "NOT met" }
    );
    Ok(())
}

/// `clients` loops of the requests `make` builds, for warm-up + `seconds`; a request counts when
/// it succeeded (2xx) inside the measured window.
pub(crate) async fn hammer(server: &Server, load: Load, make: MakeRequest) -> (Tally, CpuUse) {
    let t0 = Instant::now();
    let measure_from = t0 + Duration::from_secs(load.warmup);
    let until = measure_from + Duration::from_secs(load.seconds);
    let counter = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..load.clients {
        let (make, counter) = (make.clone(), counter.clone());
        tasks.push(tokio::spawn(async move {
            let http = login::http_client();
            let mut tally = Tally::default();
            while Instant::now() < until {
                let request = make(&http, counter.fetch_add(1, Ordering::Relaxed));
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
    let cpu = CpuWindow::measure(&server.pids, measure_from, until).await;
    let mut all = Tally::default();
    for t in tasks {
        if let Ok(t) = t.await {
            all.lat.merge(t.lat);
            for (k, v) in t.errors {
                *all.errors.entry(k).or_default() += v;
            }
        }
    }
    (all, cpu)
}
