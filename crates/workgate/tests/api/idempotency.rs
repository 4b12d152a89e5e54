use crate::helpers::{Reply, TestApp};
use crate::paths;
use serde_json::json;

async fn post_with_key(app: &TestApp, key: &str, idem: &str, body: serde_json::Value) -> crate::helpers::Reply {
    let resp = app
        .client
        .post(app.url(&paths::members()))
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
    let (app, ent) = TestApp::with_acme().await;
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
    let (app, ent) = TestApp::with_acme().await;
    post_with_key(&app, &ent.key, "k1", json!({"name": "A", "phone": "13900139001"})).await.assert_status(201);
    let reused = post_with_key(&app, &ent.key, "k1", json!({"name": "B", "phone": "13900139002"})).await;
    reused.assert_problem(422, "validation_failed");
    assert_eq!(reused.error_fields(), vec!["Idempotency-Key"]);
    assert_eq!(app.count("members").await, 2);
}

#[tokio::test]
async fn a_failed_request_keeps_its_answer_for_the_same_key() {
    let (app, ent) = TestApp::with_acme().await;
    let bad = json!({"name": "A", "phone": "010 6552 9988"});
    post_with_key(&app, &ent.key, "k2", bad.clone()).await.assert_problem(422, "invalid_phone");
    let again = post_with_key(&app, &ent.key, "k2", bad).await;
    again.assert_problem(422, "invalid_phone");
    assert!(again.headers.contains_key("idempotency-replayed"));
}

#[tokio::test]
async fn parallel_requests_with_one_idempotency_key_add_one_member() {
    let (app, ent) = TestApp::with_acme().await;
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
        let url = app.url(&paths::members());
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

/// A POST with an `Idempotency-Key` and any `Authorization` value (or none).
async fn post_idem(app: &TestApp, path: &str, auth: Option<&str>, idem: &str, body: serde_json::Value) -> Reply {
    let mut req = app.client.post(app.url(path)).header("idempotency-key", idem).json(&body);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    TestApp::read(req.send().await.expect("sent")).await
}

async fn new_api_key(app: &TestApp, with: &str, name: &str) -> (String, String) {
    let reply = app.post(&paths::api_keys(), with, json!({"name": name})).await;
    reply.assert_status(201);
    (reply.body["id"].as_str().unwrap().to_string(), reply.body["key"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_deleted_api_key_gets_no_replay_of_the_secret_it_created() {
    let (app, ent) = TestApp::with_acme().await;
    let (b_id, b) = new_api_key(&app, &ent.key, "b").await;
    let bearer = format!("Bearer {b}");
    let first = post_idem(&app, &paths::api_keys(), Some(&bearer), "make-c", json!({"name": "c"})).await;
    first.assert_status(201);
    let secret = first.body["key"].as_str().expect("the new key").to_string();
    app.delete(&paths::api_key(&b_id), &ent.key).await.assert_status(204);

    let replay = post_idem(&app, &paths::api_keys(), Some(&bearer), "make-c", json!({"name": "c"})).await;
    replay.assert_problem(401, "unauthorized");
    assert!(!replay.text.contains(&secret), "the secret is not handed back");
    assert!(!replay.headers.contains_key("idempotency-replayed"));
}

#[tokio::test]
async fn another_credential_with_the_same_key_gets_its_own_answer() {
    let (app, ent) = TestApp::with_acme().await;
    let (_, b) = new_api_key(&app, &ent.key, "b").await;
    let body = json!({"name": "c"});
    let first = post_idem(&app, &paths::api_keys(), Some(&format!("Bearer {}", ent.key)), "same", body.clone()).await;
    first.assert_status(201);
    let other = post_idem(&app, &paths::api_keys(), Some(&format!("Bearer {b}")), "same", body.clone()).await;
    other.assert_status(201);
    assert!(!other.headers.contains_key("idempotency-replayed"));
    assert_ne!(other.body["key"], first.body["key"], "not the first key's answer");
    // The first credential still gets its own answer back.
    let again = post_idem(&app, &paths::api_keys(), Some(&format!("Bearer {}", ent.key)), "same", body).await;
    again.assert_status(201);
    assert_eq!(again.body, first.body);
    assert!(again.headers.contains_key("idempotency-replayed"));
}

#[tokio::test]
async fn requests_without_a_live_admin_credential_keep_no_idempotency_rows() {
    let (app, ent) = TestApp::with_acme().await;
    let member = json!({"name": "Zhang San", "phone": "13900139001"});
    // No credential, a credential that is no key, an invalid Idempotency-Key without credential.
    post_idem(&app, &paths::members(), None, "k1", member.clone()).await.assert_problem(401, "unauthorized");
    post_idem(&app, &paths::members(), Some("Bearer wgk_nothing"), "k2", member.clone())
        .await
        .assert_problem(401, "unauthorized");
    post_idem(&app, &paths::members(), None, &"k".repeat(300), member.clone())
        .await
        .assert_problem(401, "unauthorized");
    // Anonymous endpoints run as usual, with nothing kept (even with some bearer value).
    let start = json!({"phone": "13800138000"});
    post_idem(&app, &paths::login_start(), None, "k3", start).await.assert_status(200);
    let unknown = json!({"phone": "13700137000"});
    let login = post_idem(&app, &paths::login_start(), Some("Bearer garbage"), "k4", unknown).await;
    login.assert_problem(404, "not_a_member");
    assert!(!login.headers.contains_key("idempotency-replayed"));
    // A plain member's session is no admin credential: refused, and nothing kept.
    app.add_member(&ent, "Li Si", "13900139002").await;
    let code = {
        let started = app.start_login("13900139002").await;
        started.assert_status(200);
        let code = app.code_for("+8613900139002", 2).await;
        let login = started.login_id();
        app.submit_code(&login, &code).await
    };
    code.assert_status(200);
    let token = code.body["session"]["access_token"].as_str().expect("access token");
    post_idem(&app, &paths::members(), Some(&format!("Bearer {token}")), "k5", member)
        .await
        .assert_problem(403, "forbidden");
    assert_eq!(app.count("idempotency_keys").await, 0);
}

#[tokio::test]
async fn a_kept_answer_holds_no_secret_in_plaintext() {
    let (app, ent) = TestApp::with_acme().await;
    let bearer = format!("Bearer {}", ent.key);
    let key = post_idem(&app, &paths::api_keys(), Some(&bearer), "key-1", json!({"name": "c"})).await;
    key.assert_status(201);
    let key_secret = key.body["key"].as_str().unwrap().to_string();
    let apps = json!({"name": "Wiki", "redirect_uris": ["https://wiki.example.com/cb"]});
    let created = post_idem(&app, &paths::apps(), Some(&bearer), "app-1", apps.clone()).await;
    created.assert_status(201);
    let app_secret = created.body["client_secret"].as_str().expect("client secret").to_string();
    let client_id = created.body["client_id"].as_str().expect("client id").to_string();
    let rotated = post_idem(&app, &paths::app_secret(&client_id), Some(&bearer), "rot-1", json!({})).await;
    rotated.assert_status(200);
    let rotated_secret = rotated.body["client_secret"].as_str().expect("new secret").to_string();

    let pool = app.db().await;
    let bodies: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT body FROM idempotency_keys").fetch_all(&pool).await.expect("kept answers");
    pool.close().await;
    assert_eq!(bodies.len(), 3);
    let stored = app.stored_bytes().await;
    for secret in [&key_secret, &app_secret, &rotated_secret] {
        assert!(!bodies.iter().any(|b| b.windows(secret.len()).any(|w| w == secret.as_bytes())), "{secret} kept");
        assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} in the database");
    }
    // Yet the same credential gets its answers back.
    let again = post_idem(&app, &paths::api_keys(), Some(&bearer), "key-1", json!({"name": "c"})).await;
    again.assert_status(201);
    assert_eq!(again.body["key"], key_secret.as_str());
    assert!(again.headers.contains_key("idempotency-replayed"));
    let again = post_idem(&app, &paths::apps(), Some(&bearer), "app-1", apps).await;
    assert_eq!(again.body["client_secret"], app_secret.as_str());
}
