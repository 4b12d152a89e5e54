//! `workgate-bench directory`: `GET /api/v1/members` pages over real HTTP on loopback, against
//! the real server (`workgate::server::start`) with E enterprises of M members in its database.
//!
//! The server runs on a runtime of its own (two worker threads) in this process; the clients run
//! on another, so a slow client never holds up a server thread and vice versa. Seeding goes
//! through `Services::import_members` per enterprise; the seeded database and its API keys are
//! kept under the data directory and reused by later runs.

use crate::data::{self, Rng, SURNAMES, Tree};
use crate::import::{file_size, sqlite_url};
use crate::stats::{Latencies, ms, print_table};
use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workgate::config::ServerConfig;
use workgate_domain::audit::{Caller, Rights};
use workgate_domain::clock::SystemClock;
use workgate_domain::enterprises::CreateEnterprise;
use workgate_domain::model::Actor;

#[derive(Debug, Args)]
pub struct DirectoryArgs {
    #[arg(long, default_value_t = 1000)]
    enterprises: usize,
    #[arg(long, default_value_t = 1000)]
    members_per_enterprise: usize,
    /// Timed requests per scenario.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Clients sending requests at the same time, each on its own connection.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Enterprises the requests are spread over (evenly chosen among all).
    #[arg(long, default_value_t = 200)]
    sample: usize,
    /// Page size (`limit=`); the API's default page when absent.
    #[arg(long)]
    limit: Option<u32>,
    /// Seed again even if a seeded database is cached.
    #[arg(long)]
    reseed: bool,
}

/// Per enterprise: 5 divisions × 2 groups × 2 teams: 20 teams, 35 departments.
const TREE: Tree = Tree { divisions: 5, groups: 2, teams: 2 };

const GOAL_P99: Duration = Duration::from_millis(20);

#[derive(Serialize, Deserialize)]
struct Seeded {
    enterprises: usize,
    members_per_enterprise: usize,
    seconds: f64,
    keys: Vec<SeededEnterprise>,
}

#[derive(Serialize, Deserialize)]
struct SeededEnterprise {
    id: String,
    api_key: String,
}

pub fn run(data_dir: &Path, args: DirectoryArgs) -> anyhow::Result<()> {
    if args.enterprises == 0 || args.sample == 0 || args.concurrency == 0 {
        bail!("--enterprises, --sample and --concurrency must be at least 1");
    }
    let dir = data_dir.join(format!("directory-e{}-m{}", args.enterprises, args.members_per_enterprise));
    let db = dir.join("workgate.db");
    let seed_file = dir.join("seed.json");
    let url = sqlite_url(&db);

    let cached = if args.reseed { None } else { read_seed(&seed_file, &args) };
    let (seeded, was_cached) = match cached {
        Some(s) if db.exists() => (s, true),
        _ => {
            if dir.exists() {
                std::fs::remove_dir_all(&dir)?;
            }
            std::fs::create_dir_all(&dir)?;
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let seeded = runtime.block_on(seed(&url, &args))?;
            std::fs::write(&seed_file, serde_json::to_vec(&seeded)?)?;
            (seeded, false)
        }
    };
    println!(
        "directory: {} enterprises × {} members (+1 owner each), database {:.0} MiB ({}), seeded in {:.0} s{}",
        seeded.enterprises,
        seeded.members_per_enterprise,
        file_size(&db) as f64 / 1048576.0,
        db.display(),
        seeded.seconds,
        if was_cached { " (cached: pass --reseed to seed again)" } else { "" }
    );

    let server = ServerThread::start(&url).with_context(|| {
        format!(
            "starting the server failed; if the schema changed since seeding, pass --reseed or delete {}",
            dir.display()
        )
    })?;
    let client_runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let result = client_runtime.block_on(measure(&server.base_url, &seeded, &args));
    server.stop();
    result
}

fn read_seed(path: &PathBuf, args: &DirectoryArgs) -> Option<Seeded> {
    let seeded: Seeded = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    (seeded.enterprises == args.enterprises
        && seeded.members_per_enterprise == args.members_per_enterprise
        && seeded.keys.len() == args.enterprises)
        .then_some(seeded)
}

async fn seed(url: &str, args: &DirectoryArgs) -> anyhow::Result<Seeded> {
    let services = workgate::server::open_services(url, Arc::new(SystemClock)).await?;
    let started = Instant::now();
    let mut rng = Rng::new(1_000_000);
    let mut keys = Vec::with_capacity(args.enterprises);
    let m = args.members_per_enterprise;
    for e in 0..args.enterprises {
        let created = services
            .create_enterprise(
                CreateEnterprise {
                    name: format!("Enterprise {e:04}"),
                    owner_name: "Bench Owner".into(),
                    owner_phone: data::mobile(137, e as u64),
                    region: "CN".into(),
                },
                Actor::Cli,
            )
            .await
            .map_err(|err| anyhow::anyhow!("creating enterprise {e} failed: {err}"))?;
        let caller = Caller {
            enterprise_id: created.enterprise.id.clone(),
            actor: Actor::Cli,
            ip: None,
            rights: Rights::Operator,
        };
        let records =
            (0..m).map(|i| data::record(&mut rng, &TREE, 138, (e * m + i) as u64, format!("u{i:06}"))).collect();
        let report = services
            .import_members(&caller, records, &|_, _| {})
            .await
            .map_err(|err| anyhow::anyhow!("seeding enterprise {e} failed: {err}"))?;
        if report.failed > 0 {
            bail!(
                "seeding enterprise {e}: {} rows failed, e.g. {:?}",
                report.failed,
                report.rows.iter().find(|r| r.error.is_some())
            );
        }
        keys.push(SeededEnterprise {
            id: created.enterprise.id.to_string(),
            api_key: created.api_key_secret.expose().to_string(),
        });
        if (e + 1) % 50 == 0 || e + 1 == args.enterprises {
            let secs = started.elapsed().as_secs_f64();
            println!(
                "  seeded {}/{} enterprises, {} members, {:.0} s ({:.0} members/s)",
                e + 1,
                args.enterprises,
                (e + 1) * m,
                secs,
                ((e + 1) * m) as f64 / secs
            );
        }
    }
    Ok(Seeded {
        enterprises: args.enterprises,
        members_per_enterprise: m,
        seconds: started.elapsed().as_secs_f64(),
        keys,
    })
}

/// The real server on a runtime and thread of its own.
struct ServerThread {
    base_url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl ServerThread {
    fn start(url: &str) -> anyhow::Result<Self> {
        let config = ServerConfig::for_database(url);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<anyhow::Result<String>>();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(r) => r,
                Err(e) => {
                    let _ = ready_tx.send(Err(e.into()));
                    return;
                }
            };
            runtime.block_on(async move {
                match workgate::server::start(&config).await {
                    Ok(server) => {
                        let _ = ready_tx.send(Ok(server.base_url()));
                        let _ = stopped.await;
                        let _ = server.shutdown().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        });
        let base_url = ready_rx.recv().context("the server thread ended")??;
        Ok(ServerThread { base_url, stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// What the requests of one enterprise need, found before timing.
struct Target {
    key: String,
    /// The cursor after the first 500 members (page 11 of the default page size).
    cursor: String,
    division: String,
    team: String,
    surname: &'static str,
    /// Seven digits from the middle of one member's number.
    digits: String,
}

async fn get_json(client: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<Value> {
    let response = client.get(url).bearer_auth(key).send().await?;
    let status = response.status();
    let body = response.text().await?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

async fn prepare(client: &reqwest::Client, base: &str, seeded: &Seeded, sample: usize) -> anyhow::Result<Vec<Target>> {
    let n = seeded.keys.len();
    let sample = sample.min(n);
    let mut targets = Vec::with_capacity(sample);
    for k in 0..sample {
        let e = &seeded.keys[k * n / sample];
        let departments = get_json(client, &format!("{base}/api/v1/departments"), &e.api_key).await?;
        let departments = departments["items"].as_array().cloned().unwrap_or_default();
        let child = |parent: &str, name: &str| -> anyhow::Result<String> {
            departments
                .iter()
                .find(|d| d["parent_id"].as_str() == Some(parent) && d["name"].as_str() == Some(name))
                .and_then(|d| d["id"].as_str().map(str::to_string))
                .with_context(|| format!("no department '{name}' in enterprise {}", e.id))
        };
        let root = departments
            .iter()
            .find(|d| d["parent_id"].is_null())
            .and_then(|d| d["id"].as_str())
            .context("no root department")?;
        let division = child(root, &data::division_name(1))?;
        let group = child(&division, "Group 01")?;
        let team = child(&group, "Team 1")?;
        let page = get_json(client, &format!("{base}/api/v1/members?limit=500"), &e.api_key).await?;
        let cursor = page["next_cursor"].as_str().context("fewer than 500 members")?.to_string();
        let phone = page["items"][250]["phone"].as_str().context("no 251st member")?;
        let digits = phone.get(7..14).context("a short phone number")?.to_string();
        targets.push(Target {
            key: e.api_key.clone(),
            cursor,
            division,
            team,
            surname: SURNAMES[k % SURNAMES.len()],
            digits,
        });
    }
    Ok(targets)
}

struct Scenario {
    name: &'static str,
    query: fn(&Target) -> String,
}

const SCENARIOS: [Scenario; 6] = [
    Scenario { name: "first page", query: |_| String::new() },
    Scenario { name: "page 11 via cursor", query: |t| format!("cursor={}", t.cursor) },
    Scenario { name: "department= division subtree (~20%)", query: |t| format!("department={}", t.division) },
    Scenario { name: "department= one team (~5%)", query: |t| format!("department={}", t.team) },
    Scenario { name: "q= surname (~4%)", query: |t| format!("q={}", t.surname) },
    Scenario { name: "q= 7 phone digits (1 match)", query: |t| format!("q={}", t.digits) },
];

async fn measure(base: &str, seeded: &Seeded, args: &DirectoryArgs) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let targets = prepare(&client, base, seeded, args.sample).await?;
    println!(
        "{} timed requests per scenario from {} concurrent clients over {} enterprises, page size {}",
        args.requests,
        args.concurrency,
        targets.len(),
        args.limit.map_or("50 (default)".to_string(), |l| l.to_string())
    );
    println!();
    let limit = args.limit.map(|l| format!("limit={l}"));
    let mut rows = Vec::new();
    let mut all_met = true;
    for scenario in &SCENARIOS {
        let requests: Arc<Vec<(String, String)>> = Arc::new(
            targets
                .iter()
                .map(|t| {
                    let params: Vec<String> = [Some((scenario.query)(t)), limit.clone()]
                        .into_iter()
                        .flatten()
                        .filter(|s| !s.is_empty())
                        .collect();
                    (format!("{base}/api/v1/members?{}", params.join("&")), t.key.clone())
                })
                .collect(),
        );
        // Warm-up, not timed: one request per enterprise, checking that the answers are pages.
        let mut items = 0usize;
        for (url, key) in requests.iter() {
            let page = get_json(&client, url, key).await?;
            let n = page["items"].as_array().map_or(0, Vec::len);
            if n == 0 {
                bail!("{}: GET {url} answered no members", scenario.name);
            }
            items += n;
        }
        let started = Instant::now();
        let mut workers = Vec::new();
        for w in 0..args.concurrency {
            let client = client.clone();
            let requests = requests.clone();
            let (total, step) = (args.requests, args.concurrency);
            workers.push(tokio::spawn(async move {
                let mut samples = Vec::with_capacity(total / step + 1);
                for i in (w..total).step_by(step) {
                    let (url, key) = &requests[(i * 7919) % requests.len()];
                    let sent = Instant::now();
                    let response = client.get(url).bearer_auth(key).send().await?;
                    let status = response.status();
                    let body = response.bytes().await?;
                    samples.push(sent.elapsed());
                    if !status.is_success() {
                        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
                    }
                }
                Ok(samples)
            }));
        }
        let mut samples = Vec::with_capacity(args.requests);
        for w in workers {
            samples.extend(w.await??);
        }
        let wall = started.elapsed();
        let l = Latencies::new(samples);
        let met = l.percentile(99.0) < GOAL_P99;
        all_met &= met;
        rows.push(vec![
            scenario.name.to_string(),
            l.len().to_string(),
            format!("{:.1}", items as f64 / requests.len() as f64),
            ms(l.percentile(50.0)),
            ms(l.percentile(90.0)),
            ms(l.percentile(99.0)),
            ms(l.max()),
            ms(l.mean()),
            format!("{:.0}", l.len() as f64 / wall.as_secs_f64()),
            if met { "yes".into() } else { "NO".into() },
        ]);
    }
    print_table(
        &[
            "GET /api/v1/members",
            "requests",
            "items/page",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "mean ms",
            "req/s",
            "p99 < 20 ms",
        ],
        &rows,
    );
    println!();
    println!("{}", if all_met { "goal met: p99 < 20 ms in every scenario" } else { "goal MISSED in some scenario" });
    Ok(())
}
