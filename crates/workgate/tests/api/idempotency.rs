use crate::helpers::TestApp;
use serde_json::json;

async fn post_with_key(app: &TestApp, key: &str, idem: &str, body: serde_json::Value) -> crate::helpers::Reply {
    let resp = app
        .client
        .post(format!("{}/api/v1/members", app.base))
        .bearer_auth(key)
        .header("idempotency-key", idem)
        .json(&body)
        .send()
        .await
        .expect("sent");
    TestApp::read(resp).await
}

#[tokio::test]
async fn the_same_idempotency_key_twice_adds_one_member_and_replays_the_answer() {
    let app = TestApp::spawn().await;
    let ent = app.enterprise("Acme", "13800138000").await;
    let body = json!({"name": "Zhang San", "phone": "13900139001"});
    let first = post_with_key(&app, &ent.key, "add-zhang-1", body.clone()).await;
    first.assert_status(201);
    let second = post_with_key(&app, &ent.key, "add-zhang-1", body).await;
    second.assert_status(201);
    assert_eq!(second.body, first.body);
    assert_eq!(second.headers.get("idempotency-replayed").and_then(|v| v.to_str().ok()), Some("true"));
    assert_eq!(app.count("members").await, 2, "the owner and one new member");
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_refused() {
    let app = TestApp::spawn().await;
    let ent = app.enterprise("Acme", "13800138000").await;
    post_with_key(&app, &ent.key, "k1", json!({"name": "A", "phone": "13900139001"})).await.assert_status(201);
    let reused = post_with_key(&app, &ent.key, "k1", json!({"name": "B", "phone": "13900139002"})).await;
    reused.assert_problem(422, "validation_failed");
    assert_eq!(reused.error_fields(), vec!["Idempotency-Key"]);
    assert_eq!(app.count("members").await, 2);
}

#[tokio::test]
async fn a_failed_request_keeps_its_answer_for_the_same_key() {
    let app = TestApp::spawn().await;
    let ent = app.enterprise("Acme", "13800138000").await;
    let bad = json!({"name": "A", "phone": "010 6552 9988"});
    post_with_key(&app, &ent.key, "k2", bad.clone()).await.assert_problem(422, "invalid_phone");
    let again = post_with_key(&app, &ent.key, "k2", bad).await;
    again.assert_problem(422, "invalid_phone");
    assert!(again.headers.contains_key("idempotency-replayed"));
}

#[tokio::test]
async fn parallel_requests_with_one_idempotency_key_add_one_member() {
    let app = TestApp::spawn().await;
    let ent = app.enterprise("Acme", "13800138000").await;
    let body = json!({"name": "Zhang San", "phone": "13900139001"});
    let replies = futures_join(&app, &ent.key, body).await;
    let created = replies.iter().filter(|r| r.status.as_u16() == 201).count();
    let in_progress = replies.iter().filter(|r| r.status.as_u16() == 409 && r.code() == "conflict").count();
    assert_eq!(created + in_progress, replies.len(), "only replays of the one answer or 'in progress'");
    assert!(created >= 1);
    assert_eq!(app.count("members").await, 2);
}

async fn futures_join(app: &TestApp, key: &str, body: serde_json::Value) -> Vec<crate::helpers::Reply> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let client = app.client.clone();
        let url = format!("{}/api/v1/members", app.base);
        let key = key.to_string();
        let body = body.clone();
        set.spawn(async move {
            let resp = client.post(url).bearer_auth(key).header("idempotency-key", "same").json(&body).send().await;
            TestApp::read(resp.expect("sent")).await
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.expect("task"));
    }
    out
}
