//! The audit log: every admin change leaves one entry with who, what, on what, from where; and
//! `GET /audit` filters and pages it.

use crate::helpers::{TestApp, TestEnterprise, enc};
use crate::paths;
use serde_json::{Value, json};

async fn setup() -> (TestApp, TestEnterprise, String) {
    let (app, ent) = TestApp::with_acme().await;
    let key_id = app.first_key_id(&ent).await;
    (app, ent, key_id)
}

fn find<'a>(log: &'a [Value], action: &str, target: &str) -> &'a Value {
    log.iter()
        .find(|e| e["action"] == action && e["target"] == target)
        .unwrap_or_else(|| panic!("no {action} on {target} in {log:#?}"))
}

#[tokio::test]
async fn every_admin_action_is_recorded_with_actor_action_target_and_ip() {
    let (app, ent, key_id) = setup().await;
    let actor = format!("api_key:{key_id}");

    let eng = app.add_department(&ent, "Engineering", None).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    app.patch(&paths::department(&eng), &ent.key, json!({"name": "R&D"})).await.assert_status(200);
    app.patch(&paths::department(&eng), &ent.key, json!({"parent_id": sales})).await.assert_status(200);
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let mid = m["id"].as_str().unwrap().to_string();
    app.patch_member(&mid, &ent.key, json!({"title": "Dev"})).await.assert_status(200);
    for verb in ["disable", "enable", "depart"] {
        app.post(&paths::member_action(&mid, verb), &ent.key, json!({})).await.assert_status(200);
    }
    app.delete(&paths::department(&eng), &ent.key).await.assert_status(204);
    let key = app.post(&paths::api_keys(), &ent.key, json!({"name": "sync"})).await;
    let new_key_id = key.body["id"].as_str().unwrap().to_string();
    app.delete(&paths::api_key(&new_key_id), &ent.key).await.assert_status(204);

    let log = app.audit(&ent, "").await;
    let expected = [
        ("department.create", eng.as_str()),
        ("department.create", sales.as_str()),
        ("department.update", eng.as_str()),
        ("department.move", eng.as_str()),
        ("member.create", mid.as_str()),
        ("member.update", mid.as_str()),
        ("member.disable", mid.as_str()),
        ("member.enable", mid.as_str()),
        ("member.depart", mid.as_str()),
        ("department.delete", eng.as_str()),
        ("api_key.create", new_key_id.as_str()),
        ("api_key.delete", new_key_id.as_str()),
    ];
    for (action, target) in expected {
        let e = find(&log, action, target);
        assert_eq!(e["actor"], actor.as_str(), "{action}");
        assert_eq!(e["ip"], "127.0.0.1", "{action}");
        assert!(e["id"].as_str().is_some_and(|id| id.starts_with("aud_")));
        assert!(e["at"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
    // And the three entries of the enterprise's creation, by the operator.
    for action in ["enterprise.create", "member.create", "api_key.create"] {
        assert!(log.iter().any(|e| e["action"] == action && e["actor"] == "cli"), "{action} by cli");
    }
    assert_eq!(log.len(), expected.len() + 3, "one entry per change, no more: {log:#?}");

    let status = find(&log, "member.disable", &mid);
    assert_eq!(status["details"], json!({"from": "invited", "to": "disabled"}));
    // Newest first.
    let ids: Vec<&str> = log.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ids, sorted);
    assert_eq!(log[0]["action"], "api_key.delete");
}

#[tokio::test]
async fn refused_requests_leave_no_audit_entry() {
    let (app, ent, _) = setup().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let before = app.audit(&ent, "").await.len();
    app.post(&paths::members(), &ent.key, json!({"name": "Dup", "phone": "13900139001"})).await.assert_status(409);
    app.post(&paths::members(), &ent.key, json!({"name": "", "phone": "1"})).await.assert_status(422);
    app.post(&paths::member_depart(&ent.owner_id), &ent.key, json!({})).await.assert_status(409);
    app.patch_member(m["id"].as_str().unwrap(), &ent.key, json!({"phone": "12"})).await.assert_status(422);
    app.delete(&paths::department(&ent.root_department_id), &ent.key).await.assert_status(409);
    app.delete(&paths::api_key("key_00000000000000000000000000000000"), &ent.key).await.assert_status(404);
    assert_eq!(app.audit(&ent, "").await.len(), before);
}

#[tokio::test]
async fn the_audit_log_filters_by_action_exactly_or_by_prefix() {
    let (app, ent, _) = setup().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    app.disable_member(m["id"].as_str().unwrap(), &ent.key).await.assert_status(200);
    app.add_department(&ent, "Engineering", None).await;
    app.post(&paths::api_keys(), &ent.key, json!({"name": "sync"})).await.assert_status(201);

    let actions = |log: Vec<Value>| log.iter().map(|e| e["action"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(actions(app.audit(&ent, "action=member.disable").await), vec!["member.disable"]);
    assert_eq!(
        actions(app.audit(&ent, "action=member").await),
        vec!["member.disable", "member.create", "member.create"],
        "a prefix matches every action of that kind"
    );
    assert_eq!(actions(app.audit(&ent, "action=api_key").await), vec!["api_key.create", "api_key.create"]);
    assert_eq!(actions(app.audit(&ent, "action=department").await), vec!["department.create"]);
    assert_eq!(actions(app.audit(&ent, "action=member.dis").await), Vec::<String>::new(), "not a word prefix");
    assert_eq!(actions(app.audit(&ent, "action=%25").await), Vec::<String>::new(), "% is not a wildcard");
    assert_eq!(actions(app.audit(&ent, "action=m_mber").await), Vec::<String>::new(), "_ is not a wildcard");
}

#[tokio::test]
async fn the_audit_log_filters_by_actor() {
    let (app, ent, key_id) = setup().await;
    let second = app.post(&paths::api_keys(), &ent.key, json!({"name": "sync"})).await;
    let (second_id, second_key) =
        (second.body["id"].as_str().unwrap().to_string(), second.body["key"].as_str().unwrap().to_string());
    app.add_member(&ent, "Zhang San", "13900139001").await;
    app.post(&paths::members(), &second_key, json!({"name": "Li Si", "phone": "13900139002"})).await.assert_status(201);

    let by_first = app.audit(&ent, &format!("actor={}", enc(&format!("api_key:{key_id}")))).await;
    assert_eq!(by_first.len(), 2, "the key creation and one member: {by_first:#?}");
    let by_second = app.audit(&ent, &format!("actor=api_key:{second_id}")).await;
    assert_eq!(by_second.len(), 1);
    assert_eq!(by_second[0]["action"], "member.create");
    let by_cli = app.audit(&ent, "actor=cli").await;
    assert_eq!(by_cli.len(), 3);
    assert!(app.audit(&ent, "actor=api_key:key_00000000000000000000000000000000").await.is_empty());
}

#[tokio::test]
async fn the_audit_log_filters_by_time() {
    let (app, ent, _) = setup().await;
    app.add_member(&ent, "Zhang San", "13900139001").await;
    let all = app.audit(&ent, "").await;
    let newest_at = all[0]["at"].as_str().unwrap().to_string();
    let since_newest = app.audit(&ent, &format!("since={}", enc(&newest_at))).await;
    assert!(since_newest.iter().any(|e| e["id"] == all[0]["id"]), "since is inclusive");
    assert!(since_newest.iter().all(|e| e["at"].as_str().unwrap() >= newest_at.as_str()));
    assert_eq!(app.audit(&ent, "since=2000-01-01T00:00:00Z").await.len(), all.len());
    assert!(app.audit(&ent, "since=2999-01-01T00:00:00Z").await.is_empty());
    assert_eq!(app.audit(&ent, &format!("since={}", enc("2000-01-01T08:00:00+08:00"))).await.len(), all.len());

    for bad in ["since=yesterday", "since=2026-13-01T00:00:00Z", "cursor=zzz", "limit=0", "limit=501", "who=me"] {
        let reply = app.get(&paths::audit_query(bad), &ent.key).await;
        reply.assert_problem(422, "validation_failed");
    }
}

#[tokio::test]
async fn the_audit_log_pages_newest_first_without_gaps_or_repeats() {
    let (app, ent, _) = setup().await;
    for i in 0..12 {
        app.add_department(&ent, &format!("D{i}"), None).await;
    }
    let all = app.audit(&ent, "").await;
    assert_eq!(all.len(), 15);
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => paths::audit_query(&format!("limit=4&cursor={c}")),
            None => paths::audit_query("limit=4"),
        };
        let page = app.get(&path, &ent.key).await;
        page.assert_status(200);
        let items = page.body["items"].as_array().unwrap();
        assert!(items.len() <= 4);
        paged.extend(items.iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let all_ids: Vec<String> = all.iter().map(|e| e["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(paged, all_ids);

    // Filters and cursor combine.
    let first = app.get(&paths::audit_query("action=department&limit=5"), &ent.key).await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let rest = app.get(&paths::audit_query(&format!("action=department&limit=50&cursor={cursor}")), &ent.key).await;
    assert_eq!(first.body["items"].as_array().unwrap().len() + rest.body["items"].as_array().unwrap().len(), 12);
    assert!(rest.body["next_cursor"].is_null());
}

#[tokio::test]
async fn a_forwarded_for_header_from_an_untrusted_peer_is_not_believed() {
    let (app, ent, _) = setup().await;
    let reply = app
        .client
        .post(app.url(&paths::departments()))
        .bearer_auth(&ent.key)
        .header("x-forwarded-for", "203.0.113.9")
        .json(&json!({"name": "Engineering"}))
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 201);
    let log = app.audit(&ent, "action=department.create").await;
    assert_eq!(log[0]["ip"], "127.0.0.1");
}
