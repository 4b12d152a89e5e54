//! Tenant isolation and authentication: one enterprise's key never reads or changes another's
//! directory, and every admin endpoint refuses a request without a valid credential.

use crate::helpers::{TestApp, TestEnterprise};
use crate::paths;
use reqwest::Method;
use serde_json::{Value, json};

/// Two enterprises; A has a department, a member and a second API key.
struct World {
    app: TestApp,
    a: TestEnterprise,
    b: TestEnterprise,
    a_dep: String,
    a_member: String,
    a_key_id: String,
    a_app_id: String,
}

async fn world() -> World {
    let app = TestApp::spawn().await;
    let a = app.enterprise("Acme", "13800138000").await;
    let b = app.enterprise("Beta", "13800138001").await;
    let a_dep = app.add_department(&a, "Engineering", None).await;
    let a_member = app
        .add_member_with(
            &a,
            json!({"name": "Zhang San", "phone": "13900139001", "userid": "zs", "departments": [a_dep]}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = app.post(&paths::api_keys(), &a.key, json!({"name": "hr-sync"})).await;
    key.assert_status(201);
    let a_key_id = key.body["id"].as_str().unwrap().to_string();
    let created = app
        .post(&paths::apps(), &a.key, json!({"name": "Wiki", "redirect_uris": ["https://wiki.example.com/cb"]}))
        .await;
    created.assert_status(201);
    let a_app_id = created.body["id"].as_str().unwrap().to_string();
    World { app, a, b, a_dep, a_member, a_key_id, a_app_id }
}

/// Every admin request that names one of A's records in its path.
fn requests_on_a(w: &World) -> Vec<(Method, String, Option<Value>)> {
    let dep = paths::department(&w.a_dep);
    let root = paths::department(&w.a.root_department_id);
    let mem = paths::member(&w.a_member);
    let owner = paths::member(&w.a.owner_id);
    vec![
        (Method::GET, dep.clone(), None),
        (Method::PATCH, dep.clone(), Some(json!({"name": "Hijacked"}))),
        (Method::PATCH, dep.clone(), Some(json!({"parent_id": w.b.root_department_id}))),
        (Method::DELETE, dep, None),
        (Method::GET, root.clone(), None),
        (Method::PATCH, root.clone(), Some(json!({"name": "Hijacked"}))),
        (Method::DELETE, root, None),
        (Method::GET, mem.clone(), None),
        (Method::PATCH, mem, Some(json!({"name": "Hijacked"}))),
        (Method::POST, paths::member_disable(&w.a_member), Some(json!({}))),
        (Method::POST, paths::member_enable(&w.a_member), Some(json!({}))),
        (Method::POST, paths::member_depart(&w.a_member), Some(json!({}))),
        (Method::GET, owner.clone(), None),
        (Method::PATCH, owner, Some(json!({"role": "member"}))),
        (Method::POST, paths::member_depart(&w.a.owner_id), Some(json!({}))),
        (Method::DELETE, paths::api_key(&w.a_key_id), None),
        (Method::GET, paths::app(&w.a_app_id), None),
        (Method::PATCH, paths::app(&w.a_app_id), Some(json!({"name": "Hijacked"}))),
        (Method::POST, paths::app_secret(&w.a_app_id), Some(json!({}))),
        (Method::DELETE, paths::app(&w.a_app_id), None),
    ]
}

#[tokio::test]
async fn another_enterprises_key_gets_not_found_on_every_record_and_changes_nothing() {
    let w = world().await;
    let before = w.app.snapshot().await;
    for (method, path, body) in requests_on_a(&w) {
        let reply = w.app.request(method.clone(), &path, Some(&w.b.key), body).await;
        reply.assert_problem(404, "not_found");
        assert!(!reply.text.contains("Zhang") && !reply.text.contains("Acme"), "{method} {path} leaks: {}", reply.text);
    }
    assert_eq!(w.app.snapshot().await, before, "nothing changed, nothing audited");
    // And A's own key still reaches them all.
    w.app.get_member(&w.a_member, &w.a.key).await.assert_status(200);
    w.app.get(&paths::department(&w.a_dep), &w.a.key).await.assert_status(200);
}

#[tokio::test]
async fn lists_show_only_the_callers_own_enterprise() {
    let w = world().await;
    let b_member = w.app.add_member(&w.b, "Li Si", "13900139002").await;
    let before = w.app.snapshot().await;

    let members = w.app.all_members(&w.b, "", 50).await;
    let ids = TestApp::ids(&members);
    assert_eq!(ids, vec![w.b.owner_id.clone(), b_member["id"].as_str().unwrap().to_string()]);
    for query in ["q=zhang", "q=zs", "q=0139001", "status=invited,disabled,departed,active"] {
        let found = TestApp::ids(&w.app.all_members(&w.b, query, 50).await);
        assert!(!found.contains(&w.a_member), "{query}");
    }

    let deps = w.app.get(&paths::departments(), &w.b.key).await;
    let dep_ids: Vec<&str> = deps.body["items"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(dep_ids, vec![w.b.root_department_id.as_str()]);

    let keys = w.app.get(&paths::api_keys(), &w.b.key).await;
    assert_eq!(keys.body["items"].as_array().unwrap().len(), 1, "B sees only its own key");
    assert!(!keys.text.contains(&w.a_key_id));

    let audit = w.app.audit(&w.b, "").await;
    assert!(!audit.is_empty());
    assert!(audit.iter().all(|e| e["target"] != w.a_member.as_str() && e["target"] != w.a_dep.as_str()));
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains(&w.a.id) && !text.contains(&w.a_member) && !text.contains("Acme"));

    assert_eq!(w.app.snapshot().await, before, "reads write nothing");
}

#[tokio::test]
async fn looking_up_another_enterprises_number_shows_no_membership() {
    let w = world().await;
    let reply = w.app.get(&paths::member_lookup_phone("13900139001"), &w.b.key).await;
    reply.assert_status(200);
    assert!(reply.body["member"].is_null());
    assert_eq!(reply.body["departed"], json!([]));
    assert_eq!(reply.body["suggested_fix"], "add_member");
}

#[tokio::test]
async fn another_enterprises_departments_cannot_be_used_in_a_body_or_filter() {
    let w = world().await;
    let (app, b) = (&w.app, &w.b);
    let b_dep = app.add_department(b, "Sales", None).await;
    let b_member = app.add_member(b, "Li Si", "13900139002").await["id"].as_str().unwrap().to_string();
    let before = app.snapshot().await;

    let reply = app.post(&paths::departments(), &b.key, json!({"name": "Inside A", "parent_id": w.a_dep})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["parent_id"]);

    let reply = app.patch(&paths::department(&b_dep), &b.key, json!({"parent_id": w.a_dep})).await;
    reply.assert_problem(422, "validation_failed");

    let reply = app
        .post(&paths::members(), &b.key, json!({"name": "X", "phone": "13900139003", "departments": [w.a_dep]}))
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["departments[0]"]);

    let reply = app.patch_member(&b_member, &b.key, json!({"departments": [w.a.root_department_id]})).await;
    reply.assert_problem(422, "validation_failed");

    let reply = app
        .post(
            &paths::members(),
            &b.key,
            json!({"name": "X", "phone": "13900139003", "role": "department_admin", "admin_departments": [w.a_dep]}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");

    let reply = app.get(&paths::members_query(&format!("department={}", w.a_dep)), &b.key).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["department"]);

    // Import: department ids of A are refused per row; nothing is created.
    let reply = app
        .post(
            &paths::members_import(),
            &b.key,
            json!({"members": [{"name": "X", "phone": "13900139003", "departments": [w.a_dep]}]}),
        )
        .await;
    reply.assert_status(200);
    assert_eq!(reply.body["failed"], 1);

    // The audit cursor of another enterprise leads nowhere in this one.
    let a_entry = app.audit(&w.a, "").await[0]["id"].as_str().unwrap().to_string();
    let reply = app.get(&paths::audit_query(&format!("cursor={a_entry}")), &b.key).await;
    reply.assert_status(200);
    assert!(!reply.text.contains(&w.a_member));

    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_member_of_another_enterprise_cannot_be_reached_through_the_owner_rule() {
    // B's attempt to demote A's only owner is not found — and A's owner is still owner.
    let w = world().await;
    w.app.patch_member(&w.a.owner_id, &w.b.key, json!({"role": "admin"})).await.assert_problem(404, "not_found");
    let owner = w.app.get_member(&w.a.owner_id, &w.a.key).await;
    assert_eq!(owner.body["role"], "owner");
}

/// Every admin endpoint, with a harmless path for each.
fn every_admin_endpoint(w: &World) -> Vec<(Method, String)> {
    let dep = paths::department(&w.a_dep);
    let mem = paths::member(&w.a_member);
    vec![
        (Method::GET, paths::departments()),
        (Method::POST, paths::departments()),
        (Method::GET, dep.clone()),
        (Method::PATCH, dep.clone()),
        (Method::DELETE, dep),
        (Method::GET, paths::members()),
        (Method::POST, paths::members()),
        (Method::GET, paths::member_lookup_phone("13900139001")),
        (Method::POST, paths::members_import()),
        (Method::GET, mem.clone()),
        (Method::PATCH, mem),
        (Method::POST, paths::member_disable(&w.a_member)),
        (Method::POST, paths::member_enable(&w.a_member)),
        (Method::POST, paths::member_depart(&w.a_member)),
        (Method::GET, paths::api_keys()),
        (Method::POST, paths::api_keys()),
        (Method::DELETE, paths::api_key(&w.a_key_id)),
        (Method::GET, paths::audit()),
        (Method::GET, paths::apps()),
        (Method::POST, paths::apps()),
        (Method::GET, paths::app(&w.a_app_id)),
        (Method::PATCH, paths::app(&w.a_app_id)),
        (Method::DELETE, paths::app(&w.a_app_id)),
        (Method::POST, paths::app_secret(&w.a_app_id)),
    ]
}

#[tokio::test]
async fn every_admin_endpoint_refuses_a_missing_or_wrong_credential_with_401() {
    let w = world().await;
    let before = w.app.snapshot().await;
    let fake = format!("Bearer wgk_{}", "A".repeat(43));
    let basic = "Basic dXNlcjpwYXNz".to_string();
    let raw_key = w.a.key.clone(); // the key without the Bearer scheme
    let other_scheme_key = format!("Token {}", w.a.key);
    let credentials: Vec<Option<&str>> = vec![
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Bearer not-a-key"),
        Some(&fake),
        Some(&basic),
        Some(&raw_key),
        Some(&other_scheme_key),
    ];
    for (method, path) in every_admin_endpoint(&w) {
        for credential in &credentials {
            let reply = w.app.with_authorization(method.clone(), &path, *credential).await;
            assert_eq!(reply.status.as_u16(), 401, "{method} {path} with {credential:?}: {}", reply.text);
            reply.assert_problem(401, "unauthorized");
            assert!(reply.text.len() < 400 && !reply.text.contains("Zhang"), "no data in a refusal");
        }
    }
    assert_eq!(w.app.snapshot().await, before);
}

#[tokio::test]
async fn a_deleted_enterprise_key_is_refused_everywhere() {
    let w = world().await;
    let created = w.app.post(&paths::api_keys(), &w.a.key, json!({"name": "temp"})).await;
    let (id, key) = (created.body["id"].as_str().unwrap(), created.body["key"].as_str().unwrap().to_string());
    w.app.delete(&paths::api_key(id), &w.a.key).await.assert_status(204);
    let before = w.app.snapshot().await;
    for (method, path) in every_admin_endpoint(&w) {
        let reply = w.app.with_authorization(method.clone(), &path, Some(&format!("Bearer {key}"))).await;
        assert_eq!(reply.status.as_u16(), 401, "{method} {path}: {}", reply.text);
        reply.assert_problem(401, "unauthorized");
    }
    assert_eq!(w.app.snapshot().await, before);
}
