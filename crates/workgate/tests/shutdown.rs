//! Stopping the server with SIGTERM: it stops accepting, answers the requests in flight, lets the
//! SMS sender finish the batch it is sending, and exits 0 without a panic; a request still running
//! when the grace period is over is answered `503 shutting_down`, and the process still exits 0.

mod common;

use common::node::{Node, create_enterprise, database};
use common::paths;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts a node on a fresh SQLite database in `dir` with this TOML configuration; answers it and
/// an API key of a new enterprise.
async fn start(dir: &Path, config: &str) -> (Node, String) {
    let database = format!("sqlite://{}", dir.join("workgate.db").display());
    let created = create_enterprise(&database, dir, "Acme", "13800138000");
    let config_file = dir.join("workgate.toml");
    std::fs::write(&config_file, config).expect("config written");
    let node = Node::start("shutdown", dir, &database, &dir.join("sms.jsonl"), Some(&config_file)).await;
    (node, created["api_key"].as_str().expect("api key").to_string())
}

fn address(node: &Node) -> String {
    node.base.trim_start_matches("http://").to_string()
}

/// Opens a connection and sends the head of a CSV import of `body` and its first `sent` bytes:
/// the server is left waiting for the rest.
async fn begin_import(node: &Node, key: &str, body: &str, sent: usize) -> TcpStream {
    let mut stream = TcpStream::connect(address(node)).await.expect("connected");
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: workgate\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        paths::members_import(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head sent");
    stream.write_all(&body.as_bytes()[..sent]).await.expect("first part sent");
    stream.flush().await.expect("flushed");
    stream
}

/// Reads the whole answer (the server closes the connection after it): status and JSON body.
async fn read_answer(stream: &mut TcpStream) -> (u16, Value) {
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("answered within 30 s")
        .expect("read");
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("an HTTP answer: {text:?}"));
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("a status: {head}"));
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn wait_for_log(node: &Node, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !node.log_text().contains(text) {
        assert!(Instant::now() < deadline, "no {text:?} in the log:\n{}", node.log_text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn assert_clean_exit(node: &Node, status: Option<std::process::ExitStatus>) {
    let log = node.log_text();
    assert!(status.is_some_and(|s| s.success()), "exit status {status:?}; the log:\n{log}");
    assert!(!log.contains("panicked"), "a panic at shutdown:\n{log}");
}

const CSV: &str = "userid,name,phone\nu1,Member One,13900139001\nu2,Member Two,13900139002\n";

#[tokio::test]
async fn sigterm_lets_a_request_in_flight_finish_and_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut node, key) = start(dir.path(), "shutdown_grace_secs = 30\n").await;
    let mut upload = begin_import(&node, &key, CSV, 20).await;
    // The server has the request (it answers others meanwhile), and is waiting for its body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(reqwest::get(node.url("/healthz")).await.expect("healthz").status().is_success());

    node.signal("TERM");
    wait_for_log(&node, "shutting down").await;
    // No new connections...
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(address(&node)).await.is_ok() {
        assert!(Instant::now() < deadline, "the server still accepts connections after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ...but the upload in flight goes on, slowly, and gets its whole answer.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(node.wait_exit(Duration::ZERO).await.is_none(), "the server waits for the request in flight");
    upload.write_all(&CSV.as_bytes()[20..]).await.expect("the rest of the body is taken");
    let (status, report) = read_answer(&mut upload).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["created"], 2, "{report}");

    let exit = node.wait_exit(Duration::from_secs(20)).await;
    assert_clean_exit(&node, exit);
    assert!(node.log_text().contains("stopped"), "{}", node.log_text());
    let db = database(&format!("sqlite://{}", dir.path().join("workgate.db").display())).await;
    let imported: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM members WHERE userid IN ('u1', 'u2')")
        .fetch_one(&db)
        .await
        .expect("count");
    assert_eq!(imported, 2, "the import was committed");
}

#[tokio::test]
async fn a_request_still_running_after_the_grace_period_is_cut_off_and_the_server_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut node, key) = start(dir.path(), "shutdown_grace_secs = 1\n").await;
    let mut upload = begin_import(&node, &key, CSV, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    node.signal("TERM");
    // The rest of the body never comes: after the grace period the request is answered anyway.
    let (status, problem) = read_answer(&mut upload).await;
    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "shutting_down", "{problem}");
    let exit = node.wait_exit(Duration::from_secs(15)).await;
    assert_clean_exit(&node, exit);
    assert!(signalled.elapsed() < Duration::from_secs(10), "stopped within the grace period and a few seconds");
}

/// A fake SMS gateway (the `webhook` provider's peer) that takes each message and answers 200 only
/// after `delay`; announces each request it has read on `received`.
async fn slow_gateway(delay: Duration) -> (String, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
    let url = format!("http://{}/sms", listener.local_addr().expect("address"));
    let (received, announced) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let received = received.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let mut seen = Vec::new();
                // The head and the body (its length from Content-Length).
                loop {
                    let Ok(n) = stream.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_string();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
                            })
                            .and_then(|v| v.parse::<usize>().ok())
                            .unwrap_or(0);
                        if body.len() >= length {
                            break;
                        }
                    }
                }
                let _ = received.send(());
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    (url, announced)
}

#[tokio::test]
async fn sigterm_lets_the_sms_sender_finish_the_batch_it_is_sending() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, mut received) = slow_gateway(Duration::from_millis(1500)).await;
    let config = format!(
        "shutdown_grace_secs = 30\n[sms]\nprovider = \"webhook\"\n[sms.webhook]\nurl = \"{url}\"\nsecret = \"s\"\ntimeout_ms = 10000\n"
    );
    let (mut node, key) = start(dir.path(), &config).await;
    let added = reqwest::Client::new()
        .post(node.url(&paths::members()))
        .bearer_auth(&key)
        .json(&serde_json::json!({"name": "Zhang San", "phone": "+8613900139001"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(added.status().as_u16(), 201);
    // The invitation is at the gateway, which takes its time to answer.
    tokio::time::timeout(Duration::from_secs(10), received.recv()).await.expect("the gateway got the SMS");
    node.signal("TERM");
    let exit = node.wait_exit(Duration::from_secs(20)).await;
    assert_clean_exit(&node, exit);
    let db = database(&format!("sqlite://{}", dir.path().join("workgate.db").display())).await;
    let states: Vec<String> = sqlx::query_scalar("SELECT state FROM sms_outbox").fetch_all(&db).await.expect("states");
    assert_eq!(states, ["sent"], "the sender finished its batch before the process exited");
}
