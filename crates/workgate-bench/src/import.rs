//! `workgate-bench import`: a bulk import into one enterprise through `Services::import_members`,
//! each phase in a process of its own (so that its peak memory is its own), and, with `--cli`,
//! through the `workgate member import` binary under `/usr/bin/time -v`.

use crate::data::{self, Rng, Tree};
use crate::stats::{cpu_seconds, mib, print_table, proc_status_kib};
use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;
use workgate_domain::Services;
use workgate_domain::audit::{Caller, Rights};
use workgate_domain::clock::SystemClock;
use workgate_domain::enterprises::CreateEnterprise;
use workgate_domain::ids::EnterpriseId;
use workgate_domain::import::parse_csv;
use workgate_domain::model::Actor;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Members in the file.
    #[arg(long, default_value_t = 100_000)]
    rows: usize,
    /// Also measure the `workgate member import` command under `/usr/bin/time -v`.
    #[arg(long)]
    cli: bool,
    /// The `workgate` binary for `--cli` [default: beside this one, e.g. target/release/workgate].
    #[arg(long)]
    workgate_bin: Option<PathBuf>,
    /// Print the rate of every 10,000 rows while importing.
    #[arg(long)]
    progress: bool,
}

#[derive(Debug, Args)]
pub struct ImportRunArgs {
    #[arg(long)]
    database: String,
    #[arg(long)]
    csv: PathBuf,
    #[arg(long)]
    enterprise: String,
    #[arg(long)]
    progress: bool,
}

/// 20 divisions × 10 groups × 5 teams: 1,000 teams, 1,220 departments created by the first import.
const TREE: Tree = Tree { divisions: 20, groups: 10, teams: 5 };

/// Rows per second the goal asks for.
const GOAL_ROWS_PER_SEC: f64 = 20_000.0;

/// What one `import-run` process measured.
#[derive(Debug, Serialize, Deserialize)]
struct RunResult {
    rows: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
    failed: usize,
    parse_seconds: f64,
    total_seconds: f64,
    /// CPU time (user + system, all threads) of the import.
    cpu_seconds: Option<f64>,
    /// RSS with the file read, before parsing.
    rss_before_kib: Option<u64>,
    /// The process's peak RSS (VmHWM) at the end.
    peak_kib: Option<u64>,
}

pub fn run(data_dir: &Path, args: ImportArgs) -> anyhow::Result<()> {
    let dir = data_dir.join(format!("import-{}", args.rows));
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    std::fs::create_dir_all(&dir)?;

    let mut rng = Rng::new(20261125);
    let records: Vec<_> =
        (0..args.rows).map(|i| data::record(&mut rng, &TREE, 139, i as u64, format!("u{i:07}"))).collect();
    let csv = data::to_csv(&records);
    drop(records);
    let csv_path = dir.join("import.csv");
    std::fs::write(&csv_path, &csv)?;
    println!(
        "import: {} rows, {} teams in {} departments, CSV {:.1} MiB ({}); load average {}",
        args.rows,
        TREE.leaves(),
        TREE.departments(),
        csv.len() as f64 / 1048576.0,
        csv_path.display(),
        load_average()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let db = dir.join("workgate.db");
    let url = sqlite_url(&db);
    let enterprise = runtime.block_on(create_enterprise(&url, "Import Bench"))?;

    let mut phases = Vec::new();
    for name in ["first import (all created)", "re-import (all unchanged)"] {
        let mut child = Command::new(std::env::current_exe()?);
        child.args(["import-run", "--database", &url, "--enterprise", enterprise.as_str(), "--csv"]).arg(&csv_path);
        if args.progress {
            child.arg("--progress");
        }
        let out = child.stderr(Stdio::inherit()).output().context("running import-run")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("{name} failed: {stdout}");
        }
        let last = stdout.lines().last().unwrap_or_default();
        for line in stdout.lines().filter(|l| *l != last) {
            println!("{line}");
        }
        let result: RunResult = serde_json::from_str(last).with_context(|| format!("reading {last:?}"))?;
        phases.push((name, result));
    }

    println!();
    println!("`Services::import_members` (CSV parsing included), one process per phase, SQLite synchronous=FULL:");
    println!();
    let rows: Vec<Vec<String>> = phases
        .iter()
        .map(|(name, r)| {
            let rate = r.rows as f64 / r.total_seconds;
            vec![
                name.to_string(),
                r.rows.to_string(),
                format!("{}/{}/{}/{}", r.created, r.updated, r.unchanged, r.failed),
                format!("{:.2}", r.parse_seconds),
                format!("{:.2}", r.total_seconds),
                r.cpu_seconds.map_or("?".into(), |c| format!("{c:.2}")),
                format!("{rate:.0}"),
                r.rss_before_kib.map_or("?".into(), mib),
                r.peak_kib.map_or("?".into(), mib),
                if rate >= GOAL_ROWS_PER_SEC { "yes".into() } else { "NO".into() },
            ]
        })
        .collect();
    print_table(
        &[
            "phase",
            "rows",
            "created/updated/unchanged/failed",
            "CSV parse s",
            "seconds",
            "CPU s",
            "rows/s",
            "RSS before",
            "peak RSS",
            "≥ 20k rows/s",
        ],
        &rows,
    );
    println!();
    println!(
        "(RSS before: the process with the CSV file read, before parsing. Database after: {:.0} MiB.)",
        file_size(&db) as f64 / 1048576.0
    );

    if args.cli {
        let bin = match args.workgate_bin {
            Some(b) => b,
            None => std::env::current_exe()?.with_file_name("workgate"),
        };
        let url = sqlite_url(&dir.join("cli.db"));
        let enterprise = runtime.block_on(create_enterprise(&url, "Import Bench CLI"))?;
        cli_phases(&url, &enterprise, &bin, &csv_path, args.rows)?;
    }
    Ok(())
}

/// `import-run`: one import, measured in this process; prints a JSON [`RunResult`] last.
pub fn run_one(args: ImportRunArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let enterprise_id = EnterpriseId::parse(&args.enterprise).context("not an enterprise id")?;
    let caller = Caller { enterprise_id, actor: Actor::Cli, ip: None, rights: Rights::Operator };
    let result = runtime.block_on(async {
        let services = workgate::server::open_services(&args.database, Arc::new(SystemClock)).await?;
        let csv = std::fs::read(&args.csv)?;
        let rss_before_kib = proc_status_kib("VmRSS");
        let cpu_before = cpu_seconds();
        let started = Instant::now();
        let parsed = parse_csv(&csv).map_err(|e| anyhow::anyhow!("parsing the CSV failed: {e}"))?;
        let parse_seconds = started.elapsed().as_secs_f64();
        let rows = parsed.len();
        let last = std::sync::Mutex::new((0usize, started));
        let progress = |done: usize, _total: usize| {
            let Ok(mut last) = last.lock() else { return };
            if args.progress && done > last.0 && (done - last.0 >= 10_000 || done == rows) {
                let rate = (done - last.0) as f64 / last.1.elapsed().as_secs_f64();
                eprintln!(
                    "  {done} rows, {:.1} s; the last {} at {rate:.0} rows/s",
                    started.elapsed().as_secs_f64(),
                    done - last.0
                );
                *last = (done, Instant::now());
            }
        };
        let report = services
            .import_members(&caller, parsed, &progress)
            .await
            .map_err(|e| anyhow::anyhow!("the import failed: {e}"))?;
        let total_seconds = started.elapsed().as_secs_f64();
        if let Some(bad) = report.rows.iter().find(|r| r.error.is_some()) {
            bail!("row {} failed: {:?}", bad.row, bad.error);
        }
        anyhow::Ok(RunResult {
            rows,
            created: report.created,
            updated: report.updated,
            unchanged: report.unchanged,
            failed: report.failed,
            parse_seconds,
            total_seconds,
            cpu_seconds: cpu_seconds().zip(cpu_before).map(|(after, before)| after - before),
            rss_before_kib,
            peak_kib: proc_status_kib("VmHWM"),
        })
    })?;
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}

async fn create_enterprise(url: &str, name: &str) -> anyhow::Result<EnterpriseId> {
    let services: Services = workgate::server::open_services(url, Arc::new(SystemClock)).await?;
    let created = services
        .create_enterprise(
            CreateEnterprise {
                name: name.into(),
                owner_name: "Bench Owner".into(),
                owner_phone: "+86 137 0000 0001".into(),
                region: "CN".into(),
            },
            Actor::Cli,
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the enterprise failed: {e}"))?;
    Ok(created.enterprise.id)
}

/// Runs `workgate member import` twice on a fresh database under `/usr/bin/time -v`.
fn cli_phases(url: &str, enterprise: &EnterpriseId, bin: &Path, csv_path: &Path, rows: usize) -> anyhow::Result<()> {
    if !bin.exists() {
        bail!(
            "{} does not exist: build it with `cargo build --release -p workgate` or pass --workgate-bin",
            bin.display()
        );
    }
    let mut table = Vec::new();
    for name in ["first import (all created)", "re-import (all unchanged)"] {
        let started = Instant::now();
        let out = Command::new("/usr/bin/time")
            .arg("-v")
            .arg(bin)
            .args(["--database", url, "member", "import"])
            .arg(csv_path)
            .args(["--enterprise", enterprise.as_str(), "--json"])
            .stdout(Stdio::null())
            .output()
            .context("running /usr/bin/time (install the `time` package)")?;
        let wall = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("workgate member import failed: {stderr}");
        }
        let max_rss: Option<u64> = stderr
            .lines()
            .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
            .and_then(|v| v.trim().parse().ok());
        let rate = rows as f64 / wall.as_secs_f64();
        table.push(vec![
            name.to_string(),
            rows.to_string(),
            format!("{:.2}", wall.as_secs_f64()),
            format!("{rate:.0}"),
            max_rss.map_or("?".into(), mib),
            if rate >= GOAL_ROWS_PER_SEC { "yes".into() } else { "NO".into() },
        ]);
    }
    println!();
    println!(
        "`/usr/bin/time -v {} --database {url} member import {} --enterprise … --json > /dev/null`",
        bin.display(),
        csv_path.display()
    );
    println!("(the whole process: start, reading and parsing the file, the import, printing the JSON report):");
    println!();
    print_table(&["phase", "rows", "seconds", "rows/s", "max RSS", "≥ 20k rows/s"], &table);
    Ok(())
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// The database file and its WAL.
pub fn file_size(db: &Path) -> u64 {
    let wal = db.with_extension("db-wal");
    [db.to_path_buf(), wal].iter().filter_map(|p| std::fs::metadata(p).ok()).map(|m| m.len()).sum()
}

/// `/proc/loadavg`'s first three figures: other work on the machine skews every figure here.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
