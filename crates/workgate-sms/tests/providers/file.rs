use std::collections::BTreeSet;
use std::sync::Arc;
use workgate_domain::sms::SmsProvider;
use workgate_sms::{FileConfig, FileProvider, read_messages};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_sends_give_twenty_whole_lines() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("nested/deeper/sms.jsonl");
    let config = crate::mock::sms_config(&format!(
        "[sms]\nprovider = \"file\"\n[sms.file]\npath = {}\n",
        toml::Value::String(path.display().to_string())
    ));
    let sms = workgate_sms::build(&config, 6).expect("file provider");
    assert_eq!(sms.name(), "file");

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let sms = sms.clone();
        // Long bodies make interleaving visible if it happened.
        let body = format!("Workgate 验证码 {:06}。{}", i * 1111, "x".repeat(4000 + i));
        tasks.spawn(async move {
            sms.send(&format!("sms_{i:02}"), &format!("+861380013{i:04}"), &crate::text(&body)).await
        });
    }
    while let Some(result) = tasks.join_next().await {
        assert_eq!(result.expect("task"), Ok(()));
    }

    let text = std::fs::read_to_string(&path).expect("the file exists");
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 20);
    let mut ids = BTreeSet::new();
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).expect("each line is one JSON object");
        let object = value.as_object().expect("an object");
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["body", "id", "sent_at", "to"]);
        let id = value["id"].as_str().expect("id");
        let i: usize = id.trim_start_matches("sms_").parse().expect("our id");
        assert_eq!(value["to"], format!("+861380013{i:04}"));
        assert_eq!(value["body"], format!("Workgate 验证码 {:06}。{}", i * 1111, "x".repeat(4000 + i)));
        assert!(crate::mock::is_recent_rfc3339(value["sent_at"].as_str().expect("sent_at"), 60));
        ids.insert(id.to_owned());
    }
    assert_eq!(ids, (0..20).map(|i| format!("sms_{i:02}")).collect::<BTreeSet<_>>());

    let messages = read_messages(&path);
    assert_eq!(messages.len(), 20);
    assert!(messages.iter().all(|m| m.body.starts_with("Workgate 验证码 ")));
}

#[tokio::test]
async fn the_file_may_be_removed_between_sends() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("sms.jsonl");
    let sms: Arc<dyn SmsProvider> =
        Arc::new(FileProvider::new(FileConfig { path: path.clone() }).expect("file provider"));
    assert_eq!(read_messages(&path), vec![], "a missing file has no messages");

    sms.send("sms_a", "+8613800138000", &crate::code("111111")).await.expect("sent");
    std::fs::remove_file(&path).expect("removed");
    sms.send("sms_b", "+8613800138000", &crate::code("222222")).await.expect("sent");
    let messages = read_messages(&path);
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].id, "sms_b");
    assert_eq!(messages[0].to, "+8613800138000");
    assert!(messages[0].body.starts_with("222222 is your Workgate verification code."), "{}", messages[0].body);
    assert_eq!(messages[0].kind.as_deref(), Some("login_code"));
    assert_eq!(messages[0].params.get("code").map(String::as_str), Some("222222"));
    assert_eq!(messages[0].params.get("minutes").map(String::as_str), Some("10"));
}

#[test]
fn read_messages_skips_a_partial_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("sms.jsonl");
    std::fs::write(
        &path,
        "{\"to\":\"+8613800138000\",\"body\":\"123456\",\"sent_at\":\"2026-01-01T00:00:00Z\",\"id\":\"sms_1\"}\n{\"to\":\"+86",
    )
    .expect("written");
    assert_eq!(read_messages(&path).len(), 1);
}
