//! The server under test: the release `workgate` binary in one or more subprocesses (nodes), over
//! a fresh SQLite database in a temporary directory or a fresh PostgreSQL database, with login
//! limits raised and SMS going to our receiver.

use crate::sms::{self, Inbox};
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Numbers are `+86 139 NNNN NNNN`, one per member, each used for one login per run.
pub fn phone(i: usize) -> String {
    format!("+86139{:08}", i + 1)
}

/// So high that no limit of SPEC section 6 that a benchmark crosses (per IP, per /24, the SMS
/// budgets) is reached; the per-number limits stay at their defaults (each number is used once).
const UNLIMITED: i64 = 1_000_000_000;

pub struct Server {
    /// The first node's address (setup requests go there).
    pub base: String,
    /// Every node's address; load goes round robin over them, as a load balancer would send it.
    pub bases: Vec<String>,
    pub api_key: String,
    pub inbox: Arc<Inbox>,
    /// The database, the configuration and the server's log.
    pub root: PathBuf,
    /// Removed when dropped, unless `--keep`.
    _dir: Option<tempfile::TempDir>,
    children: Vec<Child>,
    /// The nodes' process ids, for their CPU use.
    pub pids: Vec<u32>,
    /// `SQLite` or `PostgreSQL`.
    pub database_kind: &'static str,
    /// The nodes' `--database` URL (`sqlite://…` or `postgres://…`), for the soak's size queries.
    pub database: String,
    http: reqwest::Client,
}

pub struct Options<'a> {
    pub server_bin: &'a Path,
    pub keep: bool,
    /// Seconds between two codes to one number, where a run logs each number in more than once
    /// (the server's default, 60 s, otherwise).
    pub resend_cooldown_secs: Option<i64>,
    /// More TOML for the server's configuration file (whole sections).
    pub extra_config: &'a str,
    /// More lines of its `[login]` section.
    pub login_config: &'a str,
    /// A PostgreSQL server (URL of a database to connect to for administration): the nodes run
    /// on a fresh database `workgate_loadgen` made there with `psql`. `None`: SQLite.
    pub postgres: Option<&'a str>,
    /// Server processes on the one database.
    pub nodes: usize,
    /// Pin the server to cores `0..n` and this program to the rest.
    pub server_cores: Option<usize>,
}

/// With `--server-cores n`: the `taskset` core list of the server (`0-(n-1)`), after pinning this
/// program (every thread) to the other cores. Fails when the machine has no core left over.
fn pin(server_cores: Option<usize>) -> anyhow::Result<Option<String>> {
    let Some(n) = server_cores else { return Ok(None) };
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    if n == 0 || n >= cores {
        bail!("--server-cores {n}: this machine has {cores} cores; the server needs 1 to {} of them", cores - 1);
    }
    let own = format!("{n}-{}", cores - 1);
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &own, &std::process::id().to_string()])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux) to pin the load generator")?;
    if !status.success() {
        bail!("taskset could not pin the load generator to cores {own}");
    }
    eprintln!("server pinned to cores 0-{}, load generator to cores {own}", n - 1);
    Ok(Some(format!("0-{}", n - 1)))
}

/// Drops and creates the database `workgate_loadgen` on the server of `admin_url`; its URL.
fn fresh_postgres(admin_url: &str) -> anyhow::Result<String> {
    const NAME: &str = "workgate_loadgen";
    for statement in [format!("DROP DATABASE IF EXISTS {NAME} WITH (FORCE)"), format!("CREATE DATABASE {NAME}")] {
        let out = std::process::Command::new("psql")
            .args([admin_url, "-v", "ON_ERROR_STOP=1", "-qc", &statement])
            .output()
            .context("running psql (install the PostgreSQL client)")?;
        if !out.status.success() {
            bail!("psql {statement}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let (server, _) = admin_url.rsplit_once('/').context("the PostgreSQL URL names no database")?;
    Ok(format!("{server}/{NAME}"))
}

impl Server {
    pub async fn start(opts: &Options<'_>) -> anyhow::Result<Server> {
        let bin = opts.server_bin;
        if !bin.exists() {
            bail!("{} not found: build it first with `cargo build --release -p workgate`", bin.display());
        }
        let tmp = tempfile::Builder::new().prefix("workgate-loadgen-").tempdir()?;
        let root = tmp.path().to_path_buf();
        let dir = if opts.keep {
            drop(tmp.keep());
            None
        } else {
            Some(tmp)
        };
        let database = match opts.postgres {
            Some(admin) => fresh_postgres(admin)?,
            None => format!("sqlite://{}", root.join("workgate.db").display()),
        };

        let inbox = Arc::new(Inbox::default());
        let sms_addr = sms::start(inbox.clone()).await?;
        let config = root.join("workgate.toml");
        // The key file in the run's directory (with PostgreSQL the default is the working directory).
        let key_file = root.join("workgate.key");
        let cooldown =
            opts.resend_cooldown_secs.map_or_else(String::new, |secs| format!("resend_cooldown_secs = {secs}\n"));
        std::fs::write(
            &config,
            format!(
                "key_file = {:?}\n\n[login]\nstarts_per_ip_hour = {UNLIMITED}\nstarts_per_network_hour = {UNLIMITED}\n\
                 sms_budget_server_hour = {UNLIMITED}\nsms_budget_enterprise_hour = {UNLIMITED}\n{cooldown}{}\n\
                 [sms]\nprovider = \"webhook\"\n\n[sms.webhook]\nurl = \"http://{sms_addr}/sms\"\nsecret = \"{}\"\n\n{}",
                key_file.to_string_lossy(),
                opts.login_config,
                sms::SECRET,
                opts.extra_config
            ),
        )?;

        // The enterprise and its first API key, through the CLI of the same binary.
        let out = std::process::Command::new(bin)
            .args(["--config", &config.to_string_lossy(), "--database", &database, "enterprise", "create"])
            .args(["--name", "Loadgen Co"])
            .args(["--owner-name", "Load Owner", "--owner-phone", "+8613700000000", "--json"])
            .env("RUST_LOG", "warn")
            .output()
            .context("running `workgate enterprise create`")?;
        if !out.status.success() {
            bail!("`workgate enterprise create` failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let created: Value = serde_json::from_slice(&out.stdout).context("reading `enterprise create --json`")?;
        let api_key = created["api_key"].as_str().context("no api_key in `enterprise create --json`")?.to_string();

        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
        let mut server = Server {
            base: String::new(),
            bases: vec![],
            api_key,
            inbox,
            root,
            _dir: dir,
            children: vec![],
            pids: vec![],
            database_kind: if opts.postgres.is_some() { "PostgreSQL" } else { "SQLite" },
            database: database.clone(),
            http,
        };
        let server_cores = pin(opts.server_cores)?;
        for node in 0..opts.nodes.max(1) {
            let port = free_port()?;
            let log = std::fs::File::create(server.root.join(format!("server-{node}.log")))?;
            let mut command = match &server_cores {
                Some(cores) => {
                    let mut taskset = Command::new("taskset");
                    taskset.args(["-c", cores]).arg(bin);
                    taskset
                }
                None => Command::new(bin),
            };
            let child = command
                .args(["--config", &config.to_string_lossy(), "--database", &database, "serve"])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .context("starting the server")?;
            server.pids.push(child.id().context("the server exited at once")?);
            server.children.push(child);
            server.bases.push(format!("http://127.0.0.1:{port}"));
            server.wait_ready(node).await?;
        }
        server.base = server.bases[0].clone();
        Ok(server)
    }

    /// `path` on every node, in node order.
    pub fn urls(&self, path: &str) -> Arc<Vec<String>> {
        Arc::new(self.bases.iter().map(|b| format!("{b}{path}")).collect())
    }

    /// The node that the `n`th request goes to.
    pub fn node(&self, n: usize) -> &str {
        &self.bases[n % self.bases.len()]
    }

    async fn wait_ready(&mut self, node: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.children[node].try_wait()? {
                let log = std::fs::read_to_string(self.root.join(format!("server-{node}.log"))).unwrap_or_default();
                bail!("the server exited ({status}):\n{log}");
            }
            if let Ok(r) = self.http.get(format!("{}/readyz", self.bases[node])).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the server did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Imports `count` members with the numbers `phone(0..count)`, without invitations.
    pub async fn seed(&self, count: usize) -> anyhow::Result<()> {
        let started = Instant::now();
        const BATCH: usize = 10_000;
        for from in (0..count).step_by(BATCH) {
            let members: Vec<Value> = (from..(from + BATCH).min(count))
                .map(|i| json!({"name": format!("Member {i}"), "phone": phone(i), "userid": format!("m{i}"), "invite": false}))
                .collect();
            let n = members.len();
            let response = self
                .http
                .post(format!("{}/api/v1/members/import", self.base))
                .bearer_auth(&self.api_key)
                .json(&json!({ "members": members }))
                .send()
                .await?;
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let created = body["created"].as_u64().unwrap_or(0) as usize;
            if !status.is_success() || created != n {
                bail!("seeding members {from}..{}: HTTP {status}, created {created} of {n}: {body:.300}", from + n);
            }
        }
        eprintln!("seeded {count} members in {:.1} s (not measured)", started.elapsed().as_secs_f64());
        Ok(())
    }

    /// `POST path` with the API key and a JSON body; the JSON answer.
    pub async fn admin_post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response =
            self.http.post(format!("{}{path}", self.base)).bearer_auth(&self.api_key).json(&body).send().await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("POST {path}: HTTP {status}: {answer:.300}");
        }
        Ok(answer)
    }

    /// Changes the enterprise's policy (`GET /policy`, the `changes` applied, `PUT /policy`).
    pub async fn change_policy(&self, changes: Value) -> anyhow::Result<()> {
        let url = format!("{}/api/v1/policy", self.base);
        let response = self.http.get(&url).bearer_auth(&self.api_key).send().await?;
        let status = response.status();
        let mut policy: Value = response.json().await.context("reading GET /policy")?;
        let (Some(fields), Some(changes)) = (policy.as_object_mut(), changes.as_object()) else {
            bail!("GET /policy: HTTP {status}, not an object: {policy:.300}");
        };
        fields.remove("updated_at");
        for (k, v) in changes {
            fields.insert(k.clone(), v.clone());
        }
        let response = self.http.put(&url).bearer_auth(&self.api_key).json(&policy).send().await?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            bail!("PUT /policy: HTTP {status}: {body:.300}");
        }
        Ok(())
    }

    /// Stops the nodes (SIGKILL: they have nothing to save that is not already durable).
    pub async fn stop(mut self) {
        for child in &mut self.children {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
