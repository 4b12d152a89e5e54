//! The soak scenario: a steady mixed load at a fixed rate for a long while (30 minutes by
//! default), with the server's retention shortened so that pruning runs during the run. Every
//! sample period it records the operations per second and p99 latency of each kind, the server's
//! resident memory, its open files, the database's size, the rows pruned so far and the rows of
//! the tables retention prunes; it prints one line per sample, writes them to a CSV and plots
//! them in an SVG. At the end it judges whether anything keeps growing, and fails if so.
//!
//! The mix, per 100 operations: 50 `GET /me`, 14 complete SMS logins, 12 OIDC code flows
//! (authorize → token → userinfo), 12 token refreshes, 3 logouts and 9 admin writes (2 new
//! members, 4 member patches, 3 disables or enables). Each client is one device: it keeps a
//! session, logs its own share of the members in on that device in turn, and abandons or logs
//! out the session it had.

use crate::harness::{Server, phone};
use crate::login::{self, Password};
use crate::oidc::{REDIRECT, authorize, exchange_form};
use crate::{Tally, print_setup};
use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// More lines of the server's `[login]`: a number logs in many times in a run, so its own code
/// limits are raised (the harness lowers the resend cooldown to 1 s); refresh tokens live 5
/// minutes instead of 30 days, so that abandoned sessions end, and are pruned, within the run.
pub const LOGIN_CONFIG: &str =
    "codes_per_number_hour = 1000000000\ncodes_per_number_day = 1000000000\nrefresh_token_ttl_secs = 300\n";

/// The enterprise's access tokens (its members' and its apps') live 2 minutes instead of 15 (the
/// policy's least is 1): a session ends once both its tokens have expired.
const ACCESS_TOKEN_TTL_SECONDS: u32 = 120;

/// Retention shortened to what the settings allow (0 days: as soon as a row is no longer of use;
/// the audit log's least is a day) and a pruning pass every minute (the first one a minute after
/// the start), so that a half-hour run reaches the steady state that retention keeps.
pub const SERVER_CONFIG: &str = "[retention]\nlogin_challenges_days = 0\nlogin_events_days = 0\nsms_days = 0\n\
                                 invitations_days = 0\nsessions_days = 0\noidc_codes_days = 0\naudit_days = 1\n\
                                 interval_secs = 60\n";

/// Tables whose rows are counted at each sample; `true` where retention (as set above) keeps them
/// minutes, so that their count must level off within the run. The others are kept a day or more
/// (rate counters, the audit log) or for good (members, devices): they are shown, not judged.
const TABLES: [(&str, bool); 13] = [
    ("login_challenges", true),
    ("login_events", true),
    ("sms_outbox", true),
    ("sessions", true),
    ("used_refresh_tokens", true),
    ("oidc_codes", true),
    ("oidc_tokens", true),
    ("oidc_grants", true),
    ("idempotency_keys", true),
    ("rate_counters", false),
    ("audit_log", false),
    ("members", false),
    ("devices", false),
];

/// Numbers of the members the soak adds, far past those seeded for logins.
const ADDED_FROM: usize = 50_000_000;

#[derive(Args)]
pub struct SoakArgs {
    /// Minutes of load (fractions allowed).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// Seconds of load instead of --minutes, for a quick check.
    #[arg(long)]
    seconds: Option<f64>,
    /// Operations per second, all kinds together (a login or an OIDC code flow is one operation
    /// of several requests).
    #[arg(long, default_value_t = 150.0)]
    rate: f64,
    /// Seconds between two samples.
    #[arg(long, default_value_t = 60.0)]
    sample_seconds: f64,
    /// Concurrent clients, each one device with a session of its own.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Members seeded for the logins, shared out among the clients; each logs its share in turn.
    #[arg(long, default_value_t = 2000)]
    members: usize,
    /// The plot (SVG); the samples go to a CSV of the same name beside it.
    #[arg(long, default_value = "soak.svg")]
    out: PathBuf,
}

impl SoakArgs {
    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.seconds.unwrap_or(self.minutes * 60.0).clamp(1.0, 86_400.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Me,
    Login,
    Oidc,
    Refresh,
    Logout,
    AddMember,
    PatchMember,
    DisableEnable,
}

impl Kind {
    const ALL: [Kind; 8] = [
        Kind::Me,
        Kind::Login,
        Kind::Oidc,
        Kind::Refresh,
        Kind::Logout,
        Kind::AddMember,
        Kind::PatchMember,
        Kind::DisableEnable,
    ];

    /// Operations of this kind per 100.
    fn weight(self) -> usize {
        match self {
            Kind::Me => 50,
            Kind::Login => 14,
            Kind::Oidc => 12,
            Kind::Refresh => 12,
            Kind::Logout => 3,
            Kind::AddMember => 2,
            Kind::PatchMember => 4,
            Kind::DisableEnable => 3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Me => "me",
            Kind::Login => "login",
            Kind::Oidc => "oidc",
            Kind::Refresh => "refresh",
            Kind::Logout => "logout",
            Kind::AddMember => "add_member",
            Kind::PatchMember => "patch_member",
            Kind::DisableEnable => "disable_enable",
        }
    }

    /// The kind of the `n`th operation: 37 is prime to 100, so every 100 operations take each kind
    /// its weight's times, spread over the 100 instead of in runs.
    fn of(n: usize) -> Kind {
        let mut slot = (n % 100) * 37 % 100;
        for kind in Kind::ALL {
            if slot < kind.weight() {
                return kind;
            }
            slot -= kind.weight();
        }
        Kind::Me
    }
}

/// What the clients share: where to send, the app, the members the soak added.
struct Shared {
    bases: Vec<String>,
    inbox: Arc<crate::sms::Inbox>,
    api_key: String,
    client_id: String,
    client_secret: String,
    /// Added members' ids, and whether each is disabled now.
    added: Mutex<Vec<(String, bool)>>,
    added_count: AtomicUsize,
    /// Operations finished since the last sample, by kind.
    window: Mutex<BTreeMap<Kind, Tally>>,
}

/// One device: its members (numbers), the device id the server gave each, and its session.
struct Device {
    http: reqwest::Client,
    base: String,
    numbers: Vec<usize>,
    next_number: usize,
    device_ids: HashMap<usize, String>,
    /// Access and refresh token.
    session: Option<(String, String)>,
    logins: usize,
}

type Outcome = Result<(), String>;

async fn send(request: reqwest::RequestBuilder, step: &str) -> Result<Value, String> {
    let response = request.send().await.map_err(|e| format!("{step} transport {}", login::kind(&e)))?;
    login::read(response, step).await
}

impl Device {
    /// Logs the next of its numbers in; half the time the session it had is logged out first, the
    /// other half it is abandoned (it ends when its refresh token expires unused).
    async fn login(&mut self, shared: &Shared) -> Outcome {
        if self.logins % 2 == 1 {
            self.logout().await?;
        }
        self.logins += 1;
        let number = self.numbers[self.next_number % self.numbers.len()];
        self.next_number += 1;
        let device = self.device_ids.get(&number).map(String::as_str);
        let done = login::login(&self.http, &self.base, &shared.inbox, &phone(number), Password::None, device).await?;
        self.device_ids.insert(number, done.device_id);
        self.session = Some((done.access_token, done.refresh_token));
        Ok(())
    }

    async fn logout(&mut self) -> Outcome {
        let Some((access, _)) = self.session.take() else { return Ok(()) };
        let response = self
            .http
            .post(format!("{}/api/v1/me/logout", self.base))
            .bearer_auth(access)
            .send()
            .await
            .map_err(|e| format!("logout transport {}", login::kind(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("logout {}", status.as_u16()));
        }
        Ok(())
    }

    /// The session's access token; a client without one logs in first (counted as a login).
    async fn access(&mut self, shared: &Shared) -> Result<String, String> {
        if self.session.is_none() {
            let started = Instant::now();
            let outcome = self.login(shared).await;
            record(shared, Kind::Login, started.elapsed(), outcome.clone());
            outcome?;
        }
        self.session.as_ref().map(|(access, _)| access.clone()).ok_or_else(|| "no session".to_string())
    }

    async fn run(&mut self, kind: Kind, n: usize, shared: &Shared) -> Outcome {
        match kind {
            Kind::Login => self.login(shared).await,
            Kind::Logout => {
                self.access(shared).await?;
                self.logout().await
            }
            Kind::Me => {
                let access = self.access(shared).await?;
                send(self.http.get(format!("{}/api/v1/me", self.base)).bearer_auth(access), "me").await.map(drop)
            }
            Kind::Refresh => {
                self.access(shared).await?;
                let Some((_, refresh)) = self.session.take() else { return Err("no session".into()) };
                let url = format!("{}/api/v1/token/refresh", self.base);
                let step = send(self.http.post(url).json(&json!({ "refresh_token": refresh })), "refresh").await?;
                self.session = Some(login::session_tokens(&step)?);
                Ok(())
            }
            Kind::Oidc => {
                let access = self.access(shared).await?;
                let code = authorize(&self.http, &self.base, &shared.client_id, &access)
                    .await
                    .map_err(|e| format!("authorize: {e:.80}"))?;
                let token = self
                    .http
                    .post(format!("{}/oidc/token", self.base))
                    .basic_auth(&shared.client_id, Some(&shared.client_secret))
                    .form(&exchange_form(&code));
                let answer = send(token, "oidc token").await?;
                let app_token = answer["access_token"].as_str().ok_or("oidc token: no access_token")?;
                let userinfo = self.http.get(format!("{}/oidc/userinfo", self.base)).bearer_auth(app_token);
                send(userinfo, "userinfo").await.map(drop)
            }
            Kind::AddMember => self.add_member(shared).await,
            Kind::PatchMember | Kind::DisableEnable => {
                let picked = {
                    let added = shared.added.lock().unwrap_or_else(|e| e.into_inner());
                    (!added.is_empty()).then(|| {
                        let i = n % added.len();
                        (i, added[i].0.clone(), added[i].1)
                    })
                };
                // Until the soak has added a member, there is none of its own to change.
                let Some((i, id, disabled)) = picked else { return self.add_member(shared).await };
                let members = format!("{}/api/v1/members/{id}", self.base);
                let request = if kind == Kind::PatchMember {
                    self.http.patch(members).json(&json!({ "title": format!("Title {n}") }))
                } else {
                    self.http.post(format!("{members}/{}", if disabled { "enable" } else { "disable" }))
                };
                send(request.bearer_auth(&shared.api_key), kind.name()).await?;
                if kind == Kind::DisableEnable
                    && let Some(entry) = shared.added.lock().unwrap_or_else(|e| e.into_inner()).get_mut(i)
                {
                    entry.1 = !disabled;
                }
                Ok(())
            }
        }
    }

    async fn add_member(&self, shared: &Shared) -> Outcome {
        let k = shared.added_count.fetch_add(1, Ordering::Relaxed);
        let body = json!({
            "name": format!("Soak Member {k}"),
            "phone": phone(ADDED_FROM + k),
            "userid": format!("soak{k}"),
            "invite": false,
        });
        let request = self.http.post(format!("{}/api/v1/members", self.base)).bearer_auth(&shared.api_key).json(&body);
        let member = send(request, "add_member").await?;
        let id = member["id"].as_str().ok_or("add_member: no id")?.to_string();
        shared.added.lock().unwrap_or_else(|e| e.into_inner()).push((id, false));
        Ok(())
    }
}

fn record(shared: &Shared, kind: Kind, took: Duration, outcome: Outcome) {
    let mut window = shared.window.lock().unwrap_or_else(|e| e.into_inner());
    let tally = window.entry(kind).or_default();
    match outcome {
        Ok(()) => tally.lat.record(took),
        Err(e) => *tally.errors.entry(e).or_default() += 1,
    }
}

/// One sample: the operations of the period before it, and the server's state at its end.
struct Sample {
    t_s: f64,
    /// By kind: operations per second, p99 ms, failed operations.
    kinds: BTreeMap<Kind, (f64, f64, usize)>,
    rss_mib: Option<f64>,
    open_files: Option<f64>,
    db_mib: Option<f64>,
    /// Of `db_mib`, the pages of the tables kept a day or more, with their indexes.
    kept_mib: Option<f64>,
    pruned: Option<f64>,
    rows: BTreeMap<&'static str, f64>,
}

impl Sample {
    fn total_per_s(&self) -> f64 {
        self.kinds.values().map(|k| k.0).sum()
    }
}

/// The server's resident memory in MiB, summed over its nodes (`VmRSS` of `/proc/<pid>/status`).
fn rss_mib(pids: &[u32]) -> Option<f64> {
    pids.iter()
        .map(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
            let kib: f64 = line.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib / 1024.0)
        })
        .sum()
}

/// File descriptors the server's nodes hold open (entries of `/proc/<pid>/fd`).
fn open_files(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|pid| Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as f64)).sum()
}

/// Runs one query with the database's own client (`sqlite3`, read-only, or `psql`); its output
/// lines as `a|b` fields. `None` when the client is missing or the query fails.
fn query(server: &Server, sql: &str) -> Option<Vec<Vec<String>>> {
    let out = match server.database.strip_prefix("sqlite://") {
        Some(path) => std::process::Command::new("sqlite3").args(["-readonly", path, sql]).output().ok()?,
        None => std::process::Command::new("psql").args([server.database.as_str(), "-Atqc", sql]).output().ok()?,
    };
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.lines().map(|l| l.split('|').map(str::to_string).collect()).collect())
}

/// The database's size in MiB: the SQLite file and its WAL, or `pg_database_size`.
fn db_mib(server: &Server) -> Option<f64> {
    let bytes = match server.database.strip_prefix("sqlite://") {
        Some(path) => {
            let file = |p: &str| std::fs::metadata(p).map_or(0, |m| m.len());
            file(path) + file(&format!("{path}-wal"))
        }
        None => query(server, "SELECT pg_database_size(current_database())")?.first()?.first()?.parse().ok()?,
    };
    Some(bytes as f64 / (1024.0 * 1024.0))
}

/// MiB that the tables of [`TABLES`] kept a day or more take in the database, with their
/// indexes: SQLite's `dbstat` (the pages in use), PostgreSQL's `pg_total_relation_size`.
fn kept_mib(server: &Server) -> Option<f64> {
    let names = TABLES.iter().filter(|(_, short)| !short).map(|(t, _)| format!("'{t}'")).collect::<Vec<_>>().join(",");
    let sql = if server.database.starts_with("sqlite://") {
        format!(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_master WHERE tbl_name IN ({names}))"
        )
    } else {
        format!("SELECT SUM(pg_total_relation_size(t::regclass)) FROM unnest(ARRAY[{names}]) t")
    };
    let bytes: f64 = query(server, &sql)?.first()?.first()?.parse().ok()?;
    Some(bytes / (1024.0 * 1024.0))
}

/// Rows of [`TABLES`], in one query.
fn table_rows(server: &Server) -> BTreeMap<&'static str, f64> {
    let sql =
        TABLES.iter().map(|(t, _)| format!("SELECT '{t}', COUNT(*) FROM {t}")).collect::<Vec<_>>().join(" UNION ALL ");
    let mut rows = BTreeMap::new();
    for line in query(server, &sql).unwrap_or_default() {
        if let [name, count] = line.as_slice()
            && let (Some((table, _)), Ok(count)) = (TABLES.iter().find(|(t, _)| t == name), count.parse::<f64>())
        {
            rows.insert(*table, count);
        }
    }
    rows
}

/// `workgate_pruned_rows_total` of every node, all tables together.
async fn pruned_rows(http: &reqwest::Client, server: &Server) -> Option<f64> {
    let mut total = 0.0;
    for url in server.urls("/metrics").iter() {
        let text = http.get(url).send().await.ok()?.text().await.ok()?;
        total += text
            .lines()
            .filter(|l| l.starts_with("workgate_pruned_rows_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    Some(total)
}

pub async fn run(server: &Server, a: &SoakArgs) -> anyhow::Result<()> {
    let clients = a.clients.max(1);
    anyhow::ensure!(a.members >= clients, "--members must be at least --clients (each client needs a number)");
    anyhow::ensure!(a.rate > 0.0 && a.sample_seconds > 0.0, "--rate and --sample-seconds must be positive");
    server.seed(a.members).await?;
    server.change_policy(json!({ "access_token_ttl_seconds": ACCESS_TOKEN_TTL_SECONDS })).await?;
    let app = server
        .admin_post("/api/v1/apps", json!({"name": "Soak app", "redirect_uris": [REDIRECT]}))
        .await
        .context("registering the OIDC app")?;
    let shared = Arc::new(Shared {
        bases: server.bases.clone(),
        inbox: server.inbox.clone(),
        api_key: server.api_key.clone(),
        client_id: app["client_id"].as_str().context("no client_id")?.to_string(),
        client_secret: app["client_secret"].as_str().context("no client_secret")?.to_string(),
        added: Mutex::new(Vec::new()),
        added_count: AtomicUsize::new(0),
        window: Mutex::new(BTreeMap::new()),
    });

    let duration = a.duration();
    let period = Duration::from_secs_f64(a.sample_seconds);
    print_setup(server, "soak", clients, duration.as_secs(), 0);
    println!(
        "target {:.0} operations/s; a sample every {:.0} s; retention: every row kind 0 days (audit log 1 day), a pass every \
         60 s; access tokens {ACCESS_TOKEN_TTL_SECONDS} s, refresh tokens 300 s",
        a.rate, a.sample_seconds
    );

    // The pace: a permit per operation at the target rate. Permits never pile up past one per
    // client, so that clients that fell behind do not burst to catch up; such ticks are counted.
    let pace = Arc::new(Semaphore::new(0));
    let behind = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let until = t0 + duration;
    let ticker = {
        let (pace, behind) = (pace.clone(), behind.clone());
        let every = Duration::from_secs_f64(1.0 / a.rate);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            while Instant::now() < until {
                tick.tick().await;
                if pace.available_permits() < clients {
                    pace.add_permits(1);
                } else {
                    behind.fetch_add(1, Ordering::Relaxed);
                }
            }
            pace.close();
        })
    };
    let mut workers = Vec::new();
    for c in 0..clients {
        let (shared, pace, counter) = (shared.clone(), pace.clone(), counter.clone());
        let mut device = Device {
            http: login::http_client(),
            base: shared.bases[c % shared.bases.len()].clone(),
            numbers: (c..a.members).step_by(clients).collect(),
            next_number: 0,
            device_ids: HashMap::new(),
            session: None,
            logins: 0,
        };
        workers.push(tokio::spawn(async move {
            // The pace is closed at the end of the run: then the client stops.
            while let Ok(permit) = pace.acquire().await {
                permit.forget();
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let kind = Kind::of(n);
                let started = Instant::now();
                let outcome = device.run(kind, n, &shared).await;
                record(&shared, kind, started.elapsed(), outcome);
            }
        }));
    }

    let http = login::http_client();
    let mut samples = Vec::new();
    let mut errors: BTreeMap<String, usize> = BTreeMap::new();
    let mut last = t0;
    let mut k = 1;
    while t0 + period * k <= until + Duration::from_millis(1) {
        tokio::time::sleep_until((t0 + period * k).into()).await;
        let window = std::mem::take(&mut *shared.window.lock().unwrap_or_else(|e| e.into_inner()));
        let secs = last.elapsed().as_secs_f64();
        last = Instant::now();
        let mut kinds = BTreeMap::new();
        for (kind, tally) in window {
            let failed: usize = tally.errors.values().sum();
            for (e, count) in tally.errors {
                *errors.entry(format!("{}: {e}", kind.name())).or_default() += count;
            }
            kinds.insert(kind, (tally.lat.len() as f64 / secs, tally.lat.quantile_ms(0.99), failed));
        }
        let sample = Sample {
            t_s: t0.elapsed().as_secs_f64(),
            kinds,
            rss_mib: rss_mib(&server.pids),
            open_files: open_files(&server.pids),
            db_mib: db_mib(server),
            kept_mib: kept_mib(server),
            pruned: pruned_rows(&http, server).await,
            rows: table_rows(server),
        };
        println!("{}", sample_line(&sample));
        samples.push(sample);
        k += 1;
    }
    let _ = ticker.await;
    for w in workers {
        let _ = w.await;
    }

    let csv = a.out.with_extension("csv");
    std::fs::write(&csv, to_csv(&samples)).with_context(|| format!("writing {}", csv.display()))?;
    std::fs::write(&a.out, plot(&samples)).with_context(|| format!("writing {}", a.out.display()))?;
    println!("wrote {} and {}", csv.display(), a.out.display());
    let done = counter.load(Ordering::Relaxed);
    println!(
        "{done} operations in {:.0} s ({:.1}/s); {} ticks of the pace found every client busy",
        duration.as_secs_f64(),
        done as f64 / duration.as_secs_f64(),
        behind.load(Ordering::Relaxed)
    );
    let failed: usize = errors.values().sum();
    println!("failed operations: {failed}");
    for (e, count) in &errors {
        println!("  {count:>7}  {e:.160}");
    }
    let growing = verdict(&samples);
    if growing.is_empty() {
        println!("verdict: nothing grows without bound");
        Ok(())
    } else {
        anyhow::bail!("verdict: still growing at the end: {}", growing.join(", "))
    }
}

fn sample_line(s: &Sample) -> String {
    let show = |x: Option<f64>, digits: usize| x.map_or_else(|| "?".to_string(), |x| format!("{x:.digits$}"));
    let mut line = format!("t={:>5.0}s ops/s {:>6.1} |", s.t_s, s.total_per_s());
    for (kind, (per_s, p99, failed)) in &s.kinds {
        let _ = write!(line, " {} {per_s:.1}/s p99 {p99:.1}ms", kind.name());
        if *failed > 0 {
            let _ = write!(line, " ({failed} failed)");
        }
        line.push(',');
    }
    let _ = write!(
        line,
        " | rss {} MiB, fds {}, db {} MiB (kept tables {} MiB), pruned {} |",
        show(s.rss_mib, 1),
        show(s.open_files, 0),
        show(s.db_mib, 2),
        show(s.kept_mib, 2),
        show(s.pruned, 0)
    );
    for (table, rows) in &s.rows {
        let _ = write!(line, " {table} {rows:.0}");
    }
    line
}

fn to_csv(samples: &[Sample]) -> String {
    let mut out = String::from("t_s,ops_per_s");
    for kind in Kind::ALL {
        let n = kind.name();
        let _ = write!(out, ",{n}_per_s,{n}_p99_ms,{n}_failed");
    }
    out.push_str(",rss_mib,open_files,db_mib,kept_tables_mib,pruned_rows_total");
    for (table, _) in TABLES {
        let _ = write!(out, ",rows_{table}");
    }
    out.push('\n');
    let opt = |x: Option<f64>| x.map_or_else(String::new, |x| format!("{x:.3}"));
    for s in samples {
        let _ = write!(out, "{:.1},{:.2}", s.t_s, s.total_per_s());
        for kind in Kind::ALL {
            let (per_s, p99, failed) = s.kinds.get(&kind).copied().unwrap_or((0.0, 0.0, 0));
            let _ = write!(out, ",{per_s:.2},{p99:.3},{failed}");
        }
        let _ = write!(
            out,
            ",{},{},{},{},{}",
            opt(s.rss_mib),
            opt(s.open_files),
            opt(s.db_mib),
            opt(s.kept_mib),
            opt(s.pruned)
        );
        for (table, _) in TABLES {
            let _ = write!(out, ",{}", s.rows.get(table).map_or_else(String::new, |r| format!("{r:.0}")));
        }
        out.push('\n');
    }
    out
}

/// Whether a series keeps growing: the mean of its last third is more than 10% above that of its
/// middle third (the first third is the warm-up: caches fill, retention has not run yet) and it
/// never fell during the last third. Fewer than three samples judge nothing.
fn grows(values: &[f64]) -> bool {
    let third = values.len() / 3;
    if third == 0 {
        return false;
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let middle = mean(&values[third..2 * third]);
    let tail = &values[values.len() - third..];
    let last = mean(tail);
    let rising = tail.windows(2).all(|w| w[1] >= w[0]) && values[values.len() - 1] > values[2 * third - 1];
    last > 1.1 * middle && last > middle && rising
}

/// What keeps growing, among the server's memory, its open files, the database's size and the
/// tables that retention keeps minutes; printed with the ones that are shown only.
fn verdict(samples: &[Sample]) -> Vec<String> {
    let series = |f: &dyn Fn(&Sample) -> Option<f64>| samples.iter().filter_map(f).collect::<Vec<f64>>();
    // The tables kept a day or more grow all through a half-hour run by design; where their size
    // is known, the database is judged without them (the whole size is shown, not judged).
    let rest = series(&|s| Some(s.db_mib? - s.kept_mib?));
    let mut judged: Vec<(String, Vec<f64>, bool)> = vec![
        ("server RSS (MiB)".into(), series(&|s| s.rss_mib), true),
        ("open files".into(), series(&|s| s.open_files), true),
        ("database size (MiB)".into(), series(&|s| s.db_mib), rest.is_empty()),
    ];
    if !rest.is_empty() {
        judged.push(("database size less the tables kept a day or more (MiB)".into(), rest, true));
    }
    for (table, short) in TABLES {
        judged.push((format!("rows of {table}"), series(&|s| s.rows.get(table).copied()), short));
    }
    let mut growing = Vec::new();
    println!("verdict (last third of the samples against the middle third):");
    for (what, values, counts) in judged {
        let third = values.len() / 3;
        if third == 0 {
            println!("  {what}: too few samples to judge");
            continue;
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (middle, last) = (mean(&values[third..2 * third]), mean(&values[values.len() - third..]));
        let grew = grows(&values);
        let word = match (grew, counts) {
            (false, _) => "steady",
            (true, true) => "GROWS",
            (true, false) => "grows (rows kept a day or more by design: shown, not judged)",
        };
        println!("  {what}: middle third {middle:.1}, last third {last:.1}: {word}");
        if grew && counts {
            growing.push(what);
        }
    }
    growing
}

const COLOURS: [&str; 10] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

/// One panel of the plot: a title and its lines (label, values by sample).
struct Panel {
    title: &'static str,
    lines: Vec<(String, Vec<Option<f64>>)>,
    /// A logarithmic axis, for latencies: the first minute's (cold caches, a signing key made)
    /// would otherwise flatten all the others.
    log: bool,
}

/// The samples as an SVG: one panel per measure, time in minutes across, each panel's axis from 0
/// (so that growth shows at its true size) to its largest value, or logarithmic by decades.
fn plot(samples: &[Sample]) -> String {
    let per_kind = |f: &dyn Fn(&(f64, f64, usize)) -> f64| -> Vec<(String, Vec<Option<f64>>)> {
        Kind::ALL
            .iter()
            .map(|k| (k.name().to_string(), samples.iter().map(|s| Some(s.kinds.get(k).map_or(0.0, f))).collect()))
            .collect()
    };
    let one =
        |label: &str, f: &dyn Fn(&Sample) -> Option<f64>| vec![(label.to_string(), samples.iter().map(f).collect())];
    let mut throughput = vec![("all".to_string(), samples.iter().map(|s| Some(s.total_per_s())).collect())];
    throughput.extend(per_kind(&|k| k.0));
    let panels = [
        Panel { title: "operations per second", lines: throughput, log: false },
        Panel { title: "p99 latency (ms, logarithmic)", lines: per_kind(&|k| k.1), log: true },
        Panel { title: "server RSS (MiB)", lines: one("RSS", &|s| s.rss_mib), log: false },
        Panel { title: "open files", lines: one("fds", &|s| s.open_files), log: false },
        Panel {
            title: "database size (MiB)",
            lines: vec![
                ("db + wal".to_string(), samples.iter().map(|s| s.db_mib).collect()),
                ("kept tables".to_string(), samples.iter().map(|s| s.kept_mib).collect()),
                ("the rest".to_string(), samples.iter().map(|s| Some(s.db_mib? - s.kept_mib?)).collect()),
            ],
            log: false,
        },
        Panel {
            title: "rows (tables retention prunes)",
            lines: TABLES
                .iter()
                .filter(|(_, short)| *short)
                .map(|(t, _)| (t.to_string(), samples.iter().map(|s| s.rows.get(t).copied()).collect()))
                .collect(),
            log: false,
        },
        Panel {
            title: "rows (kept a day or more)",
            lines: TABLES
                .iter()
                .filter(|(_, short)| !*short)
                .map(|(t, _)| (t.to_string(), samples.iter().map(|s| s.rows.get(t).copied()).collect()))
                .collect(),
            log: false,
        },
    ];
    let (width, height, left, right, top, bottom) = (960.0, 190.0, 70.0, 190.0, 28.0, 30.0);
    let (plot_w, plot_h) = (width - left - right, height - top - bottom);
    let t_max = samples.iter().map(|s| s.t_s).fold(1.0, f64::max) / 60.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        height * panels.len() as f64
    );
    for (p, panel) in panels.iter().enumerate() {
        let y0 = p as f64 * height;
        let values = || panel.lines.iter().flat_map(|(_, v)| v.iter().flatten().copied());
        let max = values().fold(0.0, f64::max);
        // The axis: from `low` to `high`, linear from 0 or by whole decades; 0..1 up the panel.
        let (low, high) = if panel.log {
            let min = values().filter(|&v| v > 0.0).fold(max, f64::min);
            let from = min.max(1e-3).log10().floor();
            (10f64.powf(from), 10f64.powf(max.max(1e-3).log10().ceil().max(from + 1.0)))
        } else {
            (0.0, if max > 0.0 { max * 1.05 } else { 1.0 })
        };
        let up = |v: f64| {
            if panel.log { (v.max(low).log10() - low.log10()) / (high.log10() - low.log10()) } else { v / high }
        };
        let (x, y) = (|t: f64| left + plot_w * t / t_max, |v: f64| y0 + top + plot_h * (1.0 - up(v)));
        if panel.log {
            // A faint line at each decade between the two ends.
            let mut decade = low * 10.0;
            while decade < high {
                let _ = writeln!(
                    svg,
                    "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
                     <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                    left + plot_w,
                    left - 4.0,
                    y(decade) + 4.0,
                    short_number(decade),
                    y = y(decade),
                );
                decade *= 10.0;
            }
        }
        let _ = writeln!(
            svg,
            "<text x=\"{left}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">{}</text>\n\
             <rect x=\"{left}\" y=\"{}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#999\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n\
             <text x=\"{left}\" y=\"{}\">0 min</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{t_max:.1} min</text>",
            y0 + 18.0,
            panel.title,
            y0 + top,
            left - 4.0,
            y0 + top + 4.0,
            short_number(high),
            left - 4.0,
            y0 + top + plot_h,
            short_number(low),
            y0 + top + plot_h + 14.0,
            left + plot_w,
            y0 + top + plot_h + 14.0,
        );
        for (i, (label, values)) in panel.lines.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let points: Vec<String> = samples
                .iter()
                .zip(values)
                .filter_map(|(s, v)| v.map(|v| format!("{:.1},{:.1}", x(s.t_s / 60.0), y(v))))
                .collect();
            let last = values.iter().rev().flatten().next().copied();
            let _ = writeln!(
                svg,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>\n\
                 <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{label} {}</text>",
                points.join(" "),
                left + plot_w + 8.0,
                y0 + top + 10.0 + 14.0 * i as f64,
                last.map_or_else(String::new, short_number),
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

/// 1234567 → "1.23M", 12345 → "12.3k", 12.345 → "12.3".
fn short_number(x: f64) -> String {
    match x.abs() {
        a if a >= 1e6 => format!("{:.2}M", x / 1e6),
        a if a >= 1e4 => format!("{:.1}k", x / 1e3),
        a if a >= 100.0 => format!("{x:.0}"),
        a if a >= 1.0 || a == 0.0 => format!("{x:.1}"),
        _ => format!("{x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_takes_each_kind_its_weight() {
        assert_eq!(Kind::ALL.iter().map(|k| k.weight()).sum::<usize>(), 100);
        let mut counts = BTreeMap::new();
        for n in 0..1000 {
            *counts.entry(Kind::of(n)).or_insert(0) += 1;
        }
        for kind in Kind::ALL {
            assert_eq!(counts.get(&kind).copied().unwrap_or(0), 10 * kind.weight(), "{}", kind.name());
        }
    }

    #[test]
    fn growth_is_judged_on_the_last_third() {
        // Linear growth keeps going.
        assert!(grows(&(1..=30).map(f64::from).collect::<Vec<_>>()));
        // A climb that levels off after the warm-up is steady.
        let levels: Vec<f64> = (1..=30).map(|i| f64::from(i.min(8)) * 10.0).collect();
        assert!(!grows(&levels));
        // Ups and downs (pruning passes) are steady even where the end is higher.
        let saw: Vec<f64> = (0..30).map(|i| if i % 2 == 0 { 100.0 } else { 130.0 }).collect();
        assert!(!grows(&saw));
        // Slow growth under 10% is steady.
        assert!(!grows(&(0..30).map(|i| 1000.0 + f64::from(i)).collect::<Vec<_>>()));
        assert!(!grows(&[1.0, 2.0]));
    }

    #[test]
    fn the_plot_is_an_svg_with_a_line_per_series() {
        let sample = |t: f64, rss: f64| Sample {
            t_s: t,
            kinds: BTreeMap::from([(Kind::Me, (70.0, 1.5, 0))]),
            rss_mib: Some(rss),
            open_files: Some(30.0),
            db_mib: None,
            kept_mib: None,
            pruned: Some(0.0),
            rows: BTreeMap::from([("sessions", 10.0)]),
        };
        let svg = plot(&[sample(60.0, 40.0), sample(120.0, 41.0)]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 1 + 2 * Kind::ALL.len() + 5 + TABLES.len());
        let csv = to_csv(&[sample(60.0, 40.0)]);
        assert_eq!(csv.lines().count(), 2);
        assert_eq!(
            csv.lines().map(|l| l.split(',').count()).collect::<Vec<_>>()[0],
            csv.lines().nth(1).map_or(0, |l| l.split(',').count())
        );
    }
}
