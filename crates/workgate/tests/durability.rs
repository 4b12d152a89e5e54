//! The durability check at start, on the real binary: `workgate serve` refuses a database whose
//! settings could lose acknowledged writes in a crash, saying which setting, its value and what to
//! do, and starts with a loud warning when the operator accepts it (`--accept-unsafe-durability`,
//! `WORKGATE_ACCEPT_UNSAFE_DURABILITY`, `accept_unsafe_durability` in the file).
//!
//! PostgreSQL: a connection whose `synchronous_commit` is off (the URL's `options`), in a schema
//! of the test's own; runs when `WORKGATE_TEST_POSTGRES` names a server and says it was skipped
//! otherwise. SQLite cannot be made to refuse WAL here (the check over the values read is
//! unit-tested in workgate-store's `durability.rs`): its test shows that a normal start passes
//! the check, with or without the setting, and logs no warning.

mod common;

use common::node::{BIN, Node};
use common::postgres::PgSchema;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What a test adds to a node's command line or environment.
type Customize = fn(&mut Command);

const REFUSAL: &str = "error: refusing to start: the database could lose acknowledged writes in a crash: PostgreSQL \
                       synchronous_commit is 'off', expected 'on' (or 'local', 'remote_write', 'remote_apply'): \
                       commits are acknowledged before they are on disk";
const HOW_TO_ACCEPT: &str = "To start anyway, accepting that a crash may lose acknowledged writes, set \
                             --accept-unsafe-durability (WORKGATE_ACCEPT_UNSAFE_DURABILITY=true, or \
                             accept_unsafe_durability = true in the configuration file)";
const WARNING: &str = "UNSAFE DURABILITY ACCEPTED (accept_unsafe_durability is set): the database could lose \
                       acknowledged writes in a crash: PostgreSQL synchronous_commit is 'off'";

/// Tables in the schema the test's URL puts first (the migrations create them).
async fn tables(url: &str) -> i64 {
    let db = common::node::database(url).await;
    let n = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()")
        .fetch_one(&db)
        .await
        .expect("tables counted");
    db.close().await;
    n
}

#[tokio::test]
async fn postgres_with_synchronous_commit_off_is_refused_unless_the_operator_accepts_it() {
    let Some(schema) = PgSchema::create("postgres_with_synchronous_commit_off_is_refused").await else { return };
    let url = format!("{}&options[synchronous_commit]=off", schema.url);
    let dir = tempfile::tempdir().expect("temp dir");
    let sms = dir.path().join("sms.jsonl");

    // Refused, before anything is written.
    let mut node = Node::spawn("refused", dir.path(), &url, &sms, None);
    let status = node.wait_exit(Duration::from_secs(30)).await.expect("the server exits");
    let log = node.log_text();
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains(REFUSAL), "{log}");
    assert!(log.contains(HOW_TO_ACCEPT), "{log}");
    assert!(!log.contains("workgate is serving"), "{log}");
    assert_eq!(tables(&url).await, 0, "the schema is left untouched");

    // The CLI commands that write are refused alike.
    let created = Command::new(BIN)
        .arg("--database")
        .arg(&url)
        .arg("--key-file")
        .arg(dir.path().join("workgate.key"))
        .args(["enterprise", "create", "--name", "Acme", "--owner-name", "Li Lei", "--owner-phone", "13800138000"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("enterprise create runs");
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert_eq!(created.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(REFUSAL), "{stderr}");

    // Accepted by the flag, the environment variable, or the configuration file: a warning.
    let config = dir.path().join("workgate.toml");
    std::fs::write(&config, "accept_unsafe_durability = true\n").expect("config written");
    let accepted: [(&str, Option<&Path>, Customize); 3] = [
        ("flag", None, |cmd| {
            cmd.arg("--accept-unsafe-durability");
        }),
        ("environment", None, |cmd| {
            cmd.env("WORKGATE_ACCEPT_UNSAFE_DURABILITY", "true");
        }),
        ("file", Some(&config), |_| {}),
    ];
    for (how, config, customize) in accepted {
        let mut node = Node::spawn_with(how, dir.path(), &url, &sms, config, customize);
        node.wait_ready().await;
        let log = node.log_text();
        assert!(log.contains(WARNING), "accepted by the {how}: {log}");
        assert!(
            log.lines().any(|line| line.contains(WARNING) && line.contains(r#""level":"WARN""#)),
            "a warning: {log}"
        );
        node.kill();
    }
    assert!(tables(&url).await > 0, "an accepted start migrates");
}

#[tokio::test]
async fn sqlite_starts_after_the_check_with_or_without_the_setting() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("workgate.db").display());
    let sms = dir.path().join("sms.jsonl");
    let mut plain = Node::start("plain", dir.path(), &url, &sms, None).await;
    plain.kill();
    let mut accepting = Node::spawn_with("accepting", dir.path(), &url, &sms, None, |cmd| {
        cmd.arg("--accept-unsafe-durability");
    });
    accepting.wait_ready().await;
    accepting.kill();
    for node in [&plain, &accepting] {
        let log = node.log_text();
        assert!(!log.contains("UNSAFE DURABILITY"), "WAL and synchronous=FULL need no warning: {log}");
    }
}
