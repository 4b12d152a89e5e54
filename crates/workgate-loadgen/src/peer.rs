//! Workgate's OpenID Connect provider beside a peer, in one run with the same load generator:
//! oidc-provider (panva's certified Node.js provider, its in-memory adapter, `bench/oidc-peer`).
//!
//! The peer runs as `node server.mjs <port>` (its `node_modules` installed with `npm ci` when
//! missing). Its authorization codes are minted by the peer itself, through its own models, at an
//! extra route (`POST /bench/codes`), as its authorization endpoint would after login and consent:
//! the interactive login is not what is measured. Then, measured with the same [`hammer`] as the
//! `oidc` scenario: code exchanges at `POST /token` (basic auth, PKCE verifier), `GET /me`
//! (userinfo), `POST /token/introspection` and its `GET /bench/health` (the ceiling of its HTTP
//! stack, as `/healthz` is Workgate's); the CPU is the node process's. Then the `oidc` scenario
//! on Workgate, and one table of both.

use crate::harness::Server;
use crate::oidc::{self, OidcArgs};
use crate::stats::{CpuUse, CpuWindow, Row, print_table, relative_line};
use crate::{Load, MakeRequest, Tally, hammer, login};
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[derive(Args)]
pub struct PeerArgs {
    #[command(flatten)]
    pub oidc: OidcArgs,
    /// The peer's directory (`package.json`, `package-lock.json`, `server.mjs`).
    #[arg(long, default_value = "bench/oidc-peer")]
    pub peer_dir: PathBuf,
}

/// The peer's Node.js process (killed when dropped).
struct Peer {
    child: Child,
    pid: u32,
    base: String,
    log: PathBuf,
}

impl Peer {
    async fn start(dir: &Path, log: PathBuf, alg: &str) -> anyhow::Result<Peer> {
        if !dir.join("server.mjs").exists() {
            bail!("{}: no server.mjs there (run from the workspace root, or give --peer-dir)", dir.display());
        }
        let node = version("node").await?;
        if !dir.join("node_modules").exists() {
            version("npm").await?;
            eprintln!("installing the peer's packages: npm ci in {}", dir.display());
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(dir)
                .stdin(Stdio::null())
                .status()
                .await
                .context("running npm ci")?;
            if !status.success() {
                bail!("`npm ci` in {} failed ({status})", dir.display());
            }
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let out = std::fs::File::create(&log)?;
        let child = Command::new("node")
            .arg("server.mjs")
            .arg(port.to_string())
            .arg(alg)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .context("starting node server.mjs")?;
        let pid = child.id().context("the peer exited at once")?;
        let mut peer = Peer { child, pid, base: format!("http://127.0.0.1:{port}"), log };
        peer.wait_ready().await?;
        eprintln!("oidc-provider {} on Node.js {node} at {}", peer.provider_version(dir), peer.base);
        Ok(peer)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = login::http_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("the peer exited ({status}):\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
            }
            if let Ok(r) = http.get(format!("{}/bench/health", self.base)).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the peer did not answer within 30 s (its log: {})", self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The installed oidc-provider's version, from its package.json.
    fn provider_version(&self, dir: &Path) -> String {
        std::fs::read(dir.join("node_modules/oidc-provider/package.json"))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
            .and_then(|v| v["version"].as_str().map(str::to_string))
            .unwrap_or_else(|| "?".to_string())
    }

    fn url(&self, path: &str) -> Arc<String> {
        Arc::new(format!("{}{path}", self.base))
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }
}

/// `program --version`, or a clear error when it is not installed.
async fn version(program: &str) -> anyhow::Result<String> {
    let out = Command::new(program).arg("--version").stdin(Stdio::null()).output().await.with_context(|| {
        format!("`{program}` not found: install Node.js (with npm), the peer oidc-provider runs on it")
    })?;
    if !out.status.success() {
        bail!("`{program} --version` failed ({})", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// [`hammer`] with the CPU of the peer's process over the same measured window (the Workgate
/// server, idle meanwhile, is what `hammer` itself watches).
async fn hammer_peer(server: &Server, pid: u32, load: Load, make: MakeRequest) -> (Tally, CpuUse) {
    let from = Instant::now() + Duration::from_secs(load.warmup);
    let until = from + Duration::from_secs(load.seconds);
    let pids = [pid];
    let cpu = CpuWindow::measure(&pids, from, until);
    let ((tally, _), cpu) = tokio::join!(hammer(server, load, make), cpu);
    (tally, cpu)
}

/// One operation's figures: per second (successful, in the window) and the CPU used meanwhile.
#[derive(Clone, Copy)]
struct Figure {
    rate: f64,
    cpu: CpuUse,
}

pub async fn run(server: &Server, a: &PeerArgs) -> anyhow::Result<()> {
    let peer = Peer::start(&a.peer_dir, server.root.join("oidc-peer.log"), &a.oidc.alg).await?;
    let measured = measure_peer(server, &peer, &a.oidc).await;
    let log = peer.log.clone();
    peer.stop().await;
    let peer_figures = measured.with_context(|| format!("the peer's log: {}", log.display()))?;

    eprintln!("now the same on Workgate");
    let workgate = oidc::measure(server, &a.oidc).await?;
    let workgate = workgate.map(|(rate, cpu)| Figure { rate, cpu });

    println!();
    println!(
        "Workgate vs oidc-provider: {} clients, {} s measured after {} s of warm-up each; {} codes",
        a.oidc.clients, a.oidc.seconds, a.oidc.warmup, a.oidc.codes
    );
    let ms = |f: &Figure| f.cpu.ms_per_op(f.rate).map_or_else(|| "?".to_string(), |ms| format!("{ms:.3}"));
    let pct = |f: &Figure, ceiling: &Figure| {
        if ceiling.rate > 0.0 { format!("{:.1}%", 100.0 * f.rate / ceiling.rate) } else { "?".to_string() }
    };
    let header = [
        "operation",
        "Workgate /s",
        "oidc-provider /s",
        "Workgate ÷ oidc-provider",
        "Workgate ms CPU/op",
        "oidc-provider ms CPU/op",
        "Workgate % of ceiling",
        "oidc-provider % of ceiling",
    ]
    .map(str::to_string);
    let names = ["code exchange (token endpoint)", "userinfo", "introspection", "ceiling (/healthz, /bench/health)"];
    let mut table = vec![header];
    for ((name, w), p) in names.iter().zip(&workgate).zip(&peer_figures) {
        let ratio = if p.rate > 0.0 { format!("{:.2}", w.rate / p.rate) } else { "?".to_string() };
        table.push([
            name.to_string(),
            format!("{:.0}", w.rate),
            format!("{:.0}", p.rate),
            ratio,
            ms(w),
            ms(p),
            pct(w, &workgate[3]),
            pct(p, &peer_figures[3]),
        ]);
    }
    print_markdown(&table);
    for (what, f) in [("Workgate", &workgate), ("oidc-provider", &peer_figures)] {
        let cores = |x: Option<f64>| x.map_or_else(|| "?".to_string(), |c| format!("{c:.2}"));
        println!(
            "{what}: server used {} / {} / {} / {} cores (exchange / userinfo / introspection / ceiling)",
            cores(f[0].cpu.server),
            cores(f[1].cpu.server),
            cores(f[2].cpu.server),
            cores(f[3].cpu.server)
        );
    }
    Ok(())
}

/// The peer's pool of codes, tokens, and the four measures (in `oidc::measure`'s order).
async fn measure_peer(server: &Server, peer: &Peer, a: &OidcArgs) -> anyhow::Result<[Figure; 4]> {
    let http = login::http_client();
    // The codes (not measured): as many as Workgate's run makes, plus those that give the tokens.
    let reserve = a.clients.max(8);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(oidc::VERIFIER.as_bytes()));
    let started = Instant::now();
    let response = http
        .post(format!("{}/bench/codes", peer.base))
        .query(&[
            ("n", (a.codes + reserve).to_string()),
            ("sessions", a.logins.max(1).to_string()),
            ("code_challenge", challenge),
        ])
        .send()
        .await?;
    let status = response.status();
    let minted: Value = response.json().await.context("reading the minted codes")?;
    if !status.is_success() {
        bail!("POST /bench/codes: HTTP {status}: {minted:.300}");
    }
    let client_id = minted["client_id"].as_str().context("no client_id from /bench/codes")?.to_string();
    let secret = minted["client_secret"].as_str().context("no client_secret from /bench/codes")?.to_string();
    let mut codes: Vec<String> = minted["codes"]
        .as_array()
        .context("no codes from /bench/codes")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect();
    eprintln!(
        "peer: minted {} authorization codes over {} sessions in {:.1} s (not measured)",
        codes.len(),
        a.logins.max(1),
        started.elapsed().as_secs_f64()
    );

    // A few codes give the access tokens that userinfo and introspection use (not measured).
    let reserved = codes.split_off(codes.len().saturating_sub(reserve));
    let mut tokens = Vec::new();
    for code in &reserved {
        let response = http
            .post(format!("{}/token", peer.base))
            .basic_auth(&client_id, Some(&secret))
            .form(&oidc::exchange_form(code))
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let token = answer["access_token"].as_str().filter(|_| answer["id_token"].is_string());
        match token {
            Some(token) => tokens.push(token.to_string()),
            None => bail!("the peer's code exchange gave no access and ID token: HTTP {status}: {answer:.300}"),
        }
    }
    let tokens = Arc::new(tokens);

    let exchange: MakeRequest = {
        let (codes, url) = (Arc::new(codes), peer.url("/token"));
        let (client_id, secret) = (client_id.clone(), secret.clone());
        Arc::new(move |http: &reqwest::Client, n: usize| {
            let code = codes.get(n).map_or("exhausted", String::as_str);
            http.post(url.as_str()).basic_auth(&client_id, Some(&secret)).form(&oidc::exchange_form(code))
        })
    };
    let userinfo: MakeRequest = {
        let (tokens, url) = (tokens.clone(), peer.url("/me"));
        Arc::new(move |http: &reqwest::Client, n: usize| http.get(url.as_str()).bearer_auth(&tokens[n % tokens.len()]))
    };
    let introspect: MakeRequest = {
        let (tokens, url) = (tokens.clone(), peer.url("/token/introspection"));
        Arc::new(move |http: &reqwest::Client, n: usize| {
            http.post(url.as_str())
                .basic_auth(&client_id, Some(&secret))
                .form(&[("token", tokens[n % tokens.len()].as_str())])
        })
    };
    let health: MakeRequest = {
        let url = peer.url("/bench/health");
        Arc::new(move |http: &reqwest::Client, _| http.get(url.as_str()))
    };

    let load = Load { clients: a.clients, warmup: a.warmup, seconds: a.seconds };
    let mut results = Vec::new();
    for (what, make) in [
        ("POST /token (code exchange)", exchange),
        ("GET /me (userinfo)", userinfo),
        ("POST /token/introspection", introspect),
        ("GET /bench/health", health),
    ] {
        let (tally, cpu) = hammer_peer(server, peer.pid, load, make).await;
        results.push((what, tally, cpu));
    }
    if results.first().is_some_and(|(_, t, _)| !t.errors.is_empty()) {
        eprintln!("warning: some of the peer's exchanges failed (the codes may have run out: raise --codes)");
    }

    let secs = a.seconds as f64;
    println!();
    println!(
        "oidc-provider (Node.js, in memory): {} clients, {} s measured after {} s of warm-up",
        a.clients, a.seconds, a.warmup
    );
    let rows: Vec<Row> = results
        .iter()
        .map(|(what, t, _)| Row { what, per_sec: Some(t.lat.len() as f64 / secs), lat: &t.lat })
        .collect();
    print_table(&rows);
    for (what, t, cpu) in &results {
        println!("{what}: {cpu}");
        for (k, v) in &t.errors {
            println!("  errors: {v:>7}  {k}");
        }
    }
    let ceiling = results.last().map_or(0.0, |(_, t, _)| t.lat.len() as f64 / secs);
    let mut figures = [Figure { rate: 0.0, cpu: CpuUse { server: None, loadgen: None, others: None } }; 4];
    for (figure, (what, t, cpu)) in figures.iter_mut().zip(&results) {
        let rate = t.lat.len() as f64 / secs;
        println!("{}", relative_line(what, rate, cpu, ceiling).replace("/healthz", "/bench/health"));
        *figure = Figure { rate, cpu: *cpu };
    }
    Ok(figures)
}

/// A Markdown table, the first row its header, the columns after the first aligned right.
fn print_markdown<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String; N]| {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (cell, w))| if i == 0 { format!("{cell:<w$}") } else { format!("{cell:>w$}") })
            .collect();
        format!("| {} |", cells.join(" | "))
    };
    for (i, row) in rows.iter().enumerate() {
        println!("{}", line(row));
        if i == 0 {
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, &w)| if i == 0 { "-".repeat(w + 2) } else { format!("{}:", "-".repeat(w + 1)) })
                .collect();
            println!("|{}|", rule.join("|"));
        }
    }
}
