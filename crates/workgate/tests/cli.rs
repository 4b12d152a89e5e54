//! The `workgate` binary, run as an operator would: create an enterprise, import members.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn workgate(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_workgate"))
        .arg("--database")
        .arg(format!("sqlite://{}", db.display()))
        .args(args)
        .env_remove("WORKGATE_CONFIG")
        .env_remove("WORKGATE_DATABASE")
        .env("RUST_LOG", "error")
        .output()
        .expect("workgate runs")
}

fn json_of(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("stdout is one JSON object ({e}): {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr))
    })
}

fn create_acme(db: &Path) -> Value {
    let out = workgate(
        db,
        &["enterprise", "create", "--name", "Acme", "--owner-name", "Li Lei", "--owner-phone", "13800138000", "--json"],
    );
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    json_of(&out)
}

#[test]
fn enterprise_create_prints_the_ids_and_the_api_key_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let created = create_acme(&db);
    assert!(created["enterprise_id"].as_str().is_some_and(|s| s.starts_with("ent_")), "{created}");
    assert!(created["owner_id"].as_str().is_some_and(|s| s.starts_with("mem_")), "{created}");
    assert!(created["api_key"].as_str().is_some_and(|s| s.starts_with("wgk_")), "{created}");
    assert_eq!(created["owner_phone"], "+8613800138000");
    assert_eq!(created["name"], "Acme");
    assert!(db.exists(), "the database file is created");

    // A second enterprise in the same database gets its own ids and key.
    let other = create_acme(&db);
    assert_ne!(other["enterprise_id"], created["enterprise_id"]);
    assert_ne!(other["api_key"], created["api_key"]);
}

#[test]
fn enterprise_create_refuses_a_landline_owner() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let out = workgate(
        &db,
        &[
            "enterprise",
            "create",
            "--name",
            "Acme",
            "--owner-name",
            "Li Lei",
            "--owner-phone",
            "010 6552 9988",
            "--json",
        ],
    );
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout: {}", String::from_utf8_lossy(&out.stdout));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mobile"), "{stderr}");
}

#[test]
fn member_import_reports_per_row_and_a_second_run_is_all_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let created = create_acme(&db);
    let enterprise = created["enterprise_id"].as_str().unwrap();
    let file = dir.path().join("staff.csv");
    std::fs::write(
        &file,
        "userid,name,phone,departments\n\
         zwei,Zhang Wei,139 0013 9001,Engineering/Backend\n\
         lina,Li Na,+86 137 0013 7002,Sales\n",
    )
    .unwrap();
    let file_arg = file.to_str().unwrap();

    let out = workgate(&db, &["member", "import", file_arg, "--enterprise", enterprise, "--json"]);
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out);
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["failed"], 0);
    assert_eq!(report["rows"].as_array().unwrap().len(), 2);

    let out = workgate(&db, &["member", "import", file_arg, "--enterprise", enterprise, "--json"]);
    assert!(out.status.success());
    let again = json_of(&out);
    assert_eq!(
        (again["created"].as_i64(), again["updated"].as_i64(), again["unchanged"].as_i64(), again["failed"].as_i64()),
        (Some(0), Some(0), Some(2), Some(0)),
        "{again}"
    );
}

#[test]
fn member_import_exits_non_zero_when_a_row_fails_and_names_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    let created = create_acme(&db);
    let enterprise = created["enterprise_id"].as_str().unwrap();
    let file = dir.path().join("staff.csv");
    std::fs::write(&file, "name,phone\nGood,13900139001\nBad,010 6552 9988\n").unwrap();
    let out = workgate(&db, &["member", "import", file.to_str().unwrap(), "--enterprise", enterprise]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 created") && stdout.contains("1 failed"), "{stdout}");
    assert!(stdout.contains("row 2") && stdout.contains("invalid_phone"), "{stdout}");
}

#[test]
fn member_import_into_an_unknown_enterprise_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.db");
    create_acme(&db);
    let file = dir.path().join("staff.csv");
    std::fs::write(&file, "name,phone\nGood,13900139001\n").unwrap();
    let out = workgate(
        &db,
        &["member", "import", file.to_str().unwrap(), "--enterprise", "ent_00000000000000000000000000000000", "--json"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no enterprise"));
}

#[tokio::test]
async fn member_import_invites_the_members_it_creates_unless_told_not_to() {
    use sqlx::Connection;
    for (extra, invited) in [(None, 2), (Some("--no-invite"), 0)] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("x.db");
        let created = create_acme(&db);
        let file = dir.path().join("staff.csv");
        std::fs::write(&file, "name,phone\nZhang Wei,13900139001\nLi Na,13700137002\n").unwrap();
        let mut args = vec!["member", "import", file.to_str().unwrap(), "--enterprise"];
        args.push(created["enterprise_id"].as_str().unwrap());
        args.extend(extra);
        let out = workgate(&db, &args);
        assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        let count: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM invitations), (SELECT COUNT(*) FROM sms_outbox WHERE purpose = 'invitation')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(count, (invited, invited), "{extra:?}");
    }
}

#[test]
fn serve_demo_prints_the_web_addresses_before_the_curl_lines() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_workgate"))
        .arg("--database")
        .arg(format!("sqlite://{}", dir.path().join("demo.db").display()))
        .arg("--key-file")
        .arg(dir.path().join("workgate.key"))
        .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--sms-outbox-file"])
        .arg(dir.path().join("sms.jsonl"))
        .env_remove("WORKGATE_CONFIG")
        .env_remove("WORKGATE_DATABASE")
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("workgate serve starts");
    let stdout = child.stdout.take().expect("stdout");
    // Read until the last line the demo prints (the process keeps serving; it is killed after).
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let last = line.contains("/openapi.json");
            if lines_tx.send(line).is_err() || last {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    while let Ok(line) = lines_rx.recv_timeout(std::time::Duration::from_secs(60)) {
        printed.push(line);
    }
    child.kill().ok();
    child.wait().ok();
    let at = |needle: &str| printed.iter().position(|l| l.contains(needle));
    let first_curl = at("curl ").unwrap_or_else(|| panic!("no curl line in {printed:#?}"));
    for address in ["/login", "/dev/sms", "/admin"] {
        let line = at(&format!("{address} ")).unwrap_or_else(|| panic!("{address} not printed: {printed:#?}"));
        assert!(line < first_curl, "{address} comes before the curl lines: {printed:#?}");
    }
}
