//! API keys: created and shown once, listed without the secret, deleted for good.

use crate::helpers::TestApp;
use crate::paths;
use serde_json::json;

#[tokio::test]
async fn a_created_key_is_shown_once_listed_without_it_and_works() {
    let (app, ent) = TestApp::with_acme().await;
    let reply = app.post(&paths::api_keys(), &ent.key, json!({"name": " hr-sync "})).await;
    reply.assert_status(201);
    let key = reply.body["key"].as_str().expect("the key, once").to_string();
    let id = reply.body["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("wgk_") && key.len() > 40);
    assert!(id.starts_with("key_"));
    assert_eq!(reply.body["name"], "hr-sync");
    assert!(key.starts_with(reply.body["prefix"].as_str().unwrap()));

    let list = app.get(&paths::api_keys(), &ent.key).await;
    list.assert_status(200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "initial");
    assert_eq!(items[1]["id"], id.as_str());
    assert!(items.iter().all(|k| k.get("key").is_none()), "never listed with the secret");
    assert!(!list.text.contains(&key));
    assert!(!list.text.contains(&ent.key));

    // The new key acts for the same enterprise, and the audit log names it.
    let m = app.post(&paths::members(), &key, json!({"name": "Zhang San", "phone": "13900139001"})).await;
    m.assert_status(201);
    let own = app.get(&paths::members(), &ent.key).await;
    assert_eq!(own.body["items"].as_array().unwrap().len(), 2);
    let log = app.audit(&ent, "action=member.create").await;
    assert_eq!(log[0]["actor"], format!("api_key:{id}"));

    // Only the hash is stored.
    let pool = app.db().await;
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT secret_hash FROM api_keys").fetch_all(&pool).await.expect("hashes");
    pool.close().await;
    assert!(stored.iter().all(|h| h != &key && h.len() == 64));
}

#[tokio::test]
async fn a_deleted_key_is_refused_and_cannot_be_deleted_twice() {
    let (app, ent) = TestApp::with_acme().await;
    let created = app.post(&paths::api_keys(), &ent.key, json!({"name": "temp"})).await;
    let (id, key) = (created.body["id"].as_str().unwrap(), created.body["key"].as_str().unwrap());
    app.get(&paths::members(), key).await.assert_status(200);

    app.delete(&paths::api_key(id), &ent.key).await.assert_status(204);
    app.get(&paths::members(), key).await.assert_problem(401, "unauthorized");
    app.delete(&paths::api_key(id), &ent.key).await.assert_problem(404, "not_found");
    let list = app.get(&paths::api_keys(), &ent.key).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let log = app.audit(&ent, "action=api_key.delete").await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["target"], id);
}

#[tokio::test]
async fn a_key_can_delete_itself_and_is_refused_from_then_on() {
    let (app, ent) = TestApp::with_acme().await;
    let created = app.post(&paths::api_keys(), &ent.key, json!({"name": "temp"})).await;
    let (id, key) = (created.body["id"].as_str().unwrap(), created.body["key"].as_str().unwrap());
    app.delete(&paths::api_key(id), key).await.assert_status(204);
    app.get(&paths::api_keys(), key).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn another_enterprises_key_id_is_not_found_and_keeps_working() {
    let app = TestApp::spawn().await;
    let a = app.enterprise("Acme", "13800138000").await;
    let b = app.enterprise("Beta", "13800138000").await;
    let b_key_id = app.first_key_id(&b).await;
    let before = app.snapshot().await;
    app.delete(&paths::api_key(&b_key_id), &a.key).await.assert_problem(404, "not_found");
    for id in ["key_00000000000000000000000000000000", "nonsense"] {
        app.delete(&paths::api_key(id), &a.key).await.assert_problem(404, "not_found");
    }
    assert_eq!(app.snapshot().await, before);
    app.get(&paths::members(), &b.key).await.assert_status(200);
}

#[tokio::test]
async fn a_key_needs_a_name() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    for body in [json!({"name": ""}), json!({"name": "x".repeat(65)}), json!({"name": "a\u{7}b"})] {
        let reply = app.post(&paths::api_keys(), &ent.key, body).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.error_fields(), vec!["name"]);
    }
    let reply = app.post(&paths::api_keys(), &ent.key, json!({})).await;
    reply.assert_problem(422, "validation_failed");
    let reply = app.post(&paths::api_keys(), &ent.key, json!({"name": "ok", "scopes": ["all"]})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["scopes"]);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn the_bearer_scheme_is_read_ignoring_case() {
    let (app, ent) = TestApp::with_acme().await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let reply = app
            .with_authorization(reqwest::Method::GET, &paths::members(), Some(&format!("{scheme} {}", ent.key)))
            .await;
        reply.assert_status(200);
    }
}
