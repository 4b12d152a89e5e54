//! Latencies, percentiles, CPU time and the result table.

use std::time::Duration;

/// Latencies of one kind of operation, in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies(Vec<u32>);

impl Latencies {
    pub fn record(&mut self, d: Duration) {
        self.0.push(d.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    pub fn merge(&mut self, other: Latencies) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` quantile (0..=1) in milliseconds, nearest rank; 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        let mut v = self.0.clone();
        v.sort_unstable();
        let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
        f64::from(v[rank - 1]) / 1000.0
    }

    pub fn mean_ms(&self) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.iter().map(|&x| f64::from(x)).sum::<f64>() / self.0.len() as f64 / 1000.0
    }
}

/// One row of the printed table.
pub struct Row<'a> {
    pub what: &'a str,
    pub per_sec: Option<f64>,
    pub lat: &'a Latencies,
}

pub fn print_table(rows: &[Row]) {
    println!(
        "| {:<38} | {:>9} | {:>9} | {:>9} | {:>9} | {:>9} |",
        "measure", "count", "per s", "mean ms", "p50 ms", "p99 ms"
    );
    println!("|{:-<40}|{:->11}|{:->11}|{:->11}|{:->11}|{:->11}|", "", ":", ":", ":", ":", ":");
    for r in rows {
        let rate = r.per_sec.map_or_else(|| "".to_string(), |x| format!("{x:.0}"));
        println!(
            "| {:<38} | {:>9} | {:>9} | {:>9.2} | {:>9.2} | {:>9.2} |",
            r.what,
            r.lat.len(),
            rate,
            r.lat.mean_ms(),
            r.lat.quantile_ms(0.50),
            r.lat.quantile_ms(0.99)
        );
    }
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`; `None` off Linux.
pub fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: count from after it.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are utime and stime; `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

fn servers_cpu_seconds(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|pid| cpu_seconds(Some(*pid))).sum()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU used by the server and by this program over a measured window.
pub struct CpuWindow {
    server_pids: Vec<u32>,
    server0: Option<f64>,
    own0: Option<f64>,
    busy0: Option<f64>,
    started: std::time::Instant,
}

/// CPU seconds all processes of the machine have used so far (everything but idle and iowait in
/// `/proc/stat`), to tell whether other programs competed during a window.
fn machine_busy_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<f64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy = v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?;
    Some(busy / clock_ticks())
}

impl CpuWindow {
    /// `server_pids`: the server's processes (its nodes), counted together as "server".
    pub fn start(server_pids: &[u32]) -> Self {
        CpuWindow {
            server_pids: server_pids.to_vec(),
            server0: servers_cpu_seconds(server_pids),
            own0: cpu_seconds(None),
            busy0: machine_busy_seconds(),
            started: std::time::Instant::now(),
        }
    }

    /// The cores each of `pids` uses from `from` to `until` (waits for both).
    pub async fn measure(pids: &[u32], from: std::time::Instant, until: std::time::Instant) -> CpuUse {
        tokio::time::sleep_until(from.into()).await;
        let window = CpuWindow::start(pids);
        tokio::time::sleep_until(until.into()).await;
        window.finish()
    }

    /// The cores (CPU seconds per second) each used since [`CpuWindow::start`].
    pub fn finish(&self) -> CpuUse {
        let wall = self.started.elapsed().as_secs_f64();
        let used = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if wall > 0.0 => Some((b - a) / wall),
            _ => None,
        };
        let server = used(self.server0, servers_cpu_seconds(&self.server_pids));
        let loadgen = used(self.own0, cpu_seconds(None));
        let others = match (used(self.busy0, machine_busy_seconds()), server, loadgen) {
            (Some(all), Some(s), Some(o)) => Some((all - s - o).max(0.0)),
            _ => None,
        };
        CpuUse { server, loadgen, others }
    }
}

/// Cores used over a window; `None` where `/proc` could not tell.
#[derive(Clone, Copy)]
pub struct CpuUse {
    pub server: Option<f64>,
    pub loadgen: Option<f64>,
    pub others: Option<f64>,
}

impl CpuUse {
    /// Milliseconds of the server's CPU per operation at `ops_per_sec`.
    pub fn ms_per_op(&self, ops_per_sec: f64) -> Option<f64> {
        self.server.filter(|_| ops_per_sec > 0.0).map(|cores| 1000.0 * cores / ops_per_sec)
    }
}

/// One operation's rate beside the same server's `/healthz` in the same run, and what it cost the
/// server: "complete login: 722/s, 2.7% of /healthz (26,770/s); 2.71 ms of server CPU per op
/// (server used 1.96 cores)".
pub fn relative_line(what: &str, rate: f64, cpu: &CpuUse, healthz: f64) -> String {
    let pct = if healthz > 0.0 { 100.0 * rate / healthz } else { 0.0 };
    let cost = cpu.ms_per_op(rate).map_or_else(|| "?".to_string(), |ms| format!("{ms:.3}"));
    let cores = cpu.server.map_or_else(|| "?".to_string(), |c| format!("{c:.2}"));
    format!(
        "{what}: {rate:.0}/s, {pct:.1}% of /healthz ({healthz:.0}/s); {cost} ms of server CPU per operation \
         (server used {cores} cores)"
    )
}

impl std::fmt::Display for CpuUse {
    /// "CPU over the window: server 1.52 cores, loadgen 0.45 cores, other programs 0.01 cores (machine has 2)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
        let show = |x: Option<f64>| x.map_or_else(|| "?".to_string(), |x| format!("{x:.2}"));
        write!(
            f,
            "CPU over the window: server {} cores, loadgen {} cores, other programs {} cores (machine has {cores})",
            show(self.server),
            show(self.loadgen),
            show(self.others)
        )
    }
}
