//! Crash safety of the SMS outbox: the server is killed (SIGKILL) after invitations were committed
//! but before any could be delivered; on restart each is delivered exactly once.

use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_workgate");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn serve(dir: &std::path::Path, port: u16, config: Option<&std::path::Path>) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg("--database").arg(format!("sqlite://{}", dir.join("workgate.db").display()));
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--sms-outbox-file")
        .arg(dir.join("sms.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().expect("server starts")
}

async fn wait_ready(client: &reqwest::Client, port: u16) {
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the server did not become ready");
}

#[tokio::test]
async fn invitations_committed_before_a_crash_are_delivered_once_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let created = Command::new(BIN)
        .arg("--database")
        .arg(format!("sqlite://{}", dir.path().join("workgate.db").display()))
        .args([
            "enterprise",
            "create",
            "--name",
            "Acme",
            "--owner-name",
            "Li Lei",
            "--owner-phone",
            "13800138000",
            "--json",
        ])
        .output()
        .expect("enterprise create runs");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let created: Value = serde_json::from_slice(&created.stdout).expect("JSON");
    let key = created["api_key"].as_str().expect("api key").to_string();

    // First life: the SMS gateway is unreachable, so nothing can be delivered.
    let unreachable = dir.path().join("unreachable.toml");
    std::fs::write(
        &unreachable,
        "[outbox]\nlease_secs = 1\n[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"http://127.0.0.1:9/\"\nsecret = \"s\"\ntimeout_ms = 200\n",
    )
    .expect("config written");
    let port = free_port();
    let mut server = serve(dir.path(), port, Some(&unreachable));
    let client = reqwest::Client::new();
    wait_ready(&client, port).await;
    let phones = ["+8613900139001", "+8613900139002", "+8613900139003"];
    for (i, phone) in phones.iter().enumerate() {
        let reply = client
            .post(format!("http://127.0.0.1:{port}/api/v1/members"))
            .bearer_auth(&key)
            .json(&json!({"name": format!("Member {i}"), "phone": phone}))
            .send()
            .await
            .expect("sent");
        assert_eq!(reply.status().as_u16(), 201);
    }
    server.kill().expect("SIGKILL"); // no shutdown: the process dies where it stands
    server.wait().expect("reaped");
    let outbox = dir.path().join("sms.jsonl");
    assert!(workgate_sms::read_messages(&outbox).is_empty(), "nothing was delivered before the crash");

    // Second life, with the file provider: the outbox is delivered, each message once.
    let port = free_port();
    let short_lease = dir.path().join("short-lease.toml");
    std::fs::write(&short_lease, "[outbox]\nlease_secs = 1\n").expect("config written");
    let mut server = serve(dir.path(), port, Some(&short_lease));
    wait_ready(&client, port).await;
    for _ in 0..400 {
        if workgate_sms::read_messages(&outbox).len() >= phones.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Let the sender run a little longer: a duplicate would show up now.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let delivered = workgate_sms::read_messages(&outbox);
    server.kill().expect("stopped");
    server.wait().expect("reaped");
    for phone in phones {
        let to_phone = delivered.iter().filter(|m| m.to == phone).count();
        assert_eq!(to_phone, 1, "{phone} got {to_phone} messages: {delivered:?}");
    }
}
