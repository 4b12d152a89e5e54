//! One `workgate serve` process on a loopback port the kernel picks (`--listen 127.0.0.1:0`; the
//! address is read from its JSON log), killed with SIGKILL when dropped.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_workgate");

/// How long a node may take to migrate and answer `/readyz` (three nodes, a loaded machine).
const READY_WITHIN: Duration = Duration::from_secs(30);

pub struct Node {
    child: Child,
    name: String,
    log: PathBuf,
    /// `http://127.0.0.1:PORT`, once [`Node::wait_ready`] found it.
    pub base: String,
    /// Where this node's `file` SMS provider writes.
    pub sms_file: PathBuf,
}

impl Node {
    /// Spawns `workgate --database DATABASE [--config CONFIG] serve` with the `file` SMS provider
    /// writing to `sms_file` and its log in `dir/NAME.log`; it is not ready yet.
    pub fn spawn(name: &str, dir: &Path, database: &str, sms_file: &Path, config: Option<&Path>) -> Node {
        Node::spawn_with(name, dir, database, sms_file, config, |_| {})
    }

    /// [`Node::spawn`], with `customize` adding to the command (arguments before `serve`'s own are
    /// global ones, environment variables) before it runs.
    pub fn spawn_with(
        name: &str,
        dir: &Path,
        database: &str,
        sms_file: &Path,
        config: Option<&Path>,
        customize: impl FnOnce(&mut Command),
    ) -> Node {
        let log = dir.join(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(BIN);
        // Every node of one database shares its key file.
        cmd.arg("--database").arg(database).arg("--key-file").arg(dir.join("workgate.key"));
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        customize(&mut cmd);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json", "--sms-outbox-file"])
            .arg(sms_file)
            .env("RUST_LOG", "info,sqlx=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = cmd.spawn().expect("workgate serve starts");
        Node { child, name: name.into(), log, base: String::new(), sms_file: sms_file.into() }
    }

    /// Spawns a node and waits until it is ready.
    pub async fn start(name: &str, dir: &Path, database: &str, sms_file: &Path, config: Option<&Path>) -> Node {
        let mut node = Node::spawn(name, dir, database, sms_file, config);
        node.wait_ready().await;
        node
    }

    /// Waits until the node logged the address it serves on and answers `/readyz` with 200.
    pub async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("node {} exited ({status}) before it was ready; its log:\n{}", self.name, self.log_text());
            }
            if self.base.is_empty()
                && let Some(listen) = self.listen_address()
            {
                self.base = format!("http://{listen}");
            }
            if !self.base.is_empty()
                && let Ok(reply) = client.get(format!("{}/readyz", self.base)).send().await
                && reply.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("node {} was not ready within {READY_WITHIN:?}; its log:\n{}", self.name, self.log_text());
    }

    /// The `listen` field of the "workgate is serving" line of the JSON log.
    fn listen_address(&self) -> Option<String> {
        self.log_text().lines().filter_map(|line| serde_json::from_str::<Value>(line).ok()).find_map(|line| {
            let fields = &line["fields"];
            (fields["message"] == "workgate is serving").then(|| fields["listen"].as_str().map(str::to_string))?
        })
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a signal (`TERM`, `INT`, …) with `kill(1)`.
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -{name} failed");
    }

    /// Waits up to `within` for the process to exit; its status, or `None` if it still runs.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// SIGKILL: the process dies where it stands, without shutting down.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `workgate --database DATABASE --key-file DIR/workgate.key enterprise create … --json`: the
/// enterprise's JSON (with `enterprise_id`, `owner_id`, `api_key`); `dir` is the nodes' directory,
/// whose key file they share.
pub fn create_enterprise(database: &str, dir: &Path, name: &str, owner_phone: &str) -> Value {
    let created = Command::new(BIN)
        .arg("--database")
        .arg(database)
        .arg("--key-file")
        .arg(dir.join("workgate.key"))
        .args([
            "enterprise",
            "create",
            "--name",
            name,
            "--owner-name",
            "Li Lei",
            "--owner-phone",
            owner_phone,
            "--json",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("enterprise create runs");
    assert!(created.status.success(), "enterprise create failed: {}", String::from_utf8_lossy(&created.stderr));
    serde_json::from_slice(&created.stdout).expect("enterprise create prints JSON")
}

/// The messages in these `file` SMS outboxes, file after file.
pub fn read_sms(files: &[&Path]) -> Vec<workgate_sms::FileMessage> {
    files.iter().flat_map(workgate_sms::read_messages).collect()
}

/// A direct connection to a server's database (SQLite or PostgreSQL), to check state behind the API.
pub async fn database(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.expect("database opens")
}
