//! The department tree: create, read, list, rename, move, delete, and the rules of the tree.

use crate::helpers::{TestApp, TestEnterprise};
use crate::paths;
use serde_json::{Value, json};

async fn department(app: &TestApp, ent: &TestEnterprise, id: &str) -> Value {
    let reply = app.get(&paths::department(id), &ent.key).await;
    reply.assert_status(200);
    reply.body
}

#[tokio::test]
async fn a_department_created_without_parent_goes_under_the_root() {
    let (app, ent) = TestApp::with_acme().await;
    let reply = app.post(&paths::departments(), &ent.key, json!({"name": "  Engineering "})).await;
    reply.assert_status(201);
    assert_eq!(reply.body["name"], "Engineering", "names are trimmed");
    assert_eq!(reply.body["parent_id"], ent.root_department_id.as_str());
    assert!(reply.body["id"].as_str().is_some_and(|id| id.starts_with("dep_")));
    assert!(reply.body["order"].is_i64());

    let read = department(&app, &ent, reply.body["id"].as_str().unwrap()).await;
    assert_eq!(read, reply.body, "GET answers what POST created");
}

#[tokio::test]
async fn a_department_created_under_a_parent_is_listed_with_the_root_first() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let backend = app.add_department(&ent, "Backend", Some(&eng)).await;
    let sales = app.add_department(&ent, "Sales", None).await;

    let list = app.get(&paths::departments(), &ent.key).await;
    list.assert_status(200);
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["id"], ent.root_department_id.as_str());
    assert!(items[0]["parent_id"].is_null(), "the root has no parent");
    assert_eq!(items[0]["name"], "Acme", "the root is named after the enterprise");
    let parent_of = |id: &str| items.iter().find(|d| d["id"] == id).map(|d| d["parent_id"].clone()).unwrap();
    assert_eq!(parent_of(&backend), eng.as_str());
    assert_eq!(parent_of(&sales), ent.root_department_id.as_str());
    assert!(list.body["next_cursor"].is_null());
}

#[tokio::test]
async fn sibling_departments_are_ordered_as_created() {
    let (app, ent) = TestApp::with_acme().await;
    let a = app.add_department(&ent, "A", None).await;
    let b = app.add_department(&ent, "B", None).await;
    let (a, b) = (department(&app, &ent, &a).await, department(&app, &ent, &b).await);
    assert!(a["order"].as_i64() < b["order"].as_i64());
}

#[tokio::test]
async fn sibling_names_are_unique_but_cousins_may_share_a_name() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    app.add_department(&ent, "Tools", Some(&eng)).await;
    app.add_department(&ent, "Tools", Some(&sales)).await;

    let before = app.snapshot().await;
    let reply = app.post(&paths::departments(), &ent.key, json!({"name": "Tools", "parent_id": eng})).await;
    reply.assert_problem(409, "conflict");
    let reply = app.post(&paths::departments(), &ent.key, json!({"name": "Engineering"})).await;
    reply.assert_problem(409, "conflict");
    assert_eq!(app.snapshot().await, before, "a refused create writes nothing, not even audit");
}

#[tokio::test]
async fn invalid_department_names_are_refused_naming_the_field() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    for name in ["", "   ", "R&D/Backend", &"x".repeat(65)] {
        let reply = app.post(&paths::departments(), &ent.key, json!({"name": name})).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.error_fields(), vec!["name"], "{name:?}: {}", reply.text);
    }
    let reply = app.post(&paths::departments(), &ent.key, json!({"name": "名".repeat(64)})).await;
    reply.assert_status(201);
    assert_eq!(app.count("departments").await, 2);
    assert_ne!(app.snapshot().await, before);
}

#[tokio::test]
async fn creating_under_an_unknown_parent_is_refused_naming_parent_id() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    for parent in ["dep_00000000000000000000000000000000", "nonsense", ""] {
        let reply = app.post(&paths::departments(), &ent.key, json!({"name": "X", "parent_id": parent})).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.error_fields(), vec!["parent_id"]);
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn renaming_a_department_keeps_its_place() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let before = department(&app, &ent, &eng).await;
    let reply = app.patch(&paths::department(&eng), &ent.key, json!({"name": "R&D"})).await;
    reply.assert_status(200);
    assert_eq!(reply.body["name"], "R&D");
    assert_eq!(reply.body["parent_id"], before["parent_id"]);
    assert_eq!(reply.body["order"], before["order"]);
    assert_eq!(department(&app, &ent, &eng).await["name"], "R&D");
}

#[tokio::test]
async fn renaming_to_a_sibling_name_is_a_conflict() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    app.add_department(&ent, "Sales", None).await;
    let before = app.snapshot().await;
    let reply = app.patch(&paths::department(&eng), &ent.key, json!({"name": "Sales"})).await;
    reply.assert_problem(409, "conflict");
    assert_eq!(app.snapshot().await, before);
    assert_eq!(department(&app, &ent, &eng).await["name"], "Engineering");
}

#[tokio::test]
async fn an_empty_patch_changes_nothing() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let before = app.snapshot().await;
    let reply = app.patch(&paths::department(&eng), &ent.key, json!({})).await;
    reply.assert_status(200);
    let reply = app.patch(&paths::department(&eng), &ent.key, json!({"name": "Engineering"})).await;
    reply.assert_status(200);
    assert_eq!(app.snapshot().await, before, "a no-op patch writes no audit entry");
}

#[tokio::test]
async fn moving_a_department_takes_its_subtree_and_members_along() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let platform = app.add_department(&ent, "Platform", Some(&eng)).await;
    let storage = app.add_department(&ent, "Storage", Some(&platform)).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    let m = app.add_member_with(&ent, json!({"name": "Deep", "phone": "13900139001", "departments": [storage]})).await;

    let reply = app.patch(&paths::department(&platform), &ent.key, json!({"parent_id": sales})).await;
    reply.assert_status(200);
    assert_eq!(reply.body["parent_id"], sales.as_str());
    assert_eq!(department(&app, &ent, &storage).await["parent_id"], platform.as_str(), "children stay with it");

    let under_sales = app.get(&paths::members_query(&format!("department={sales}")), &ent.key).await;
    assert_eq!(TestApp::ids(under_sales.body["items"].as_array().unwrap()), vec![m["id"].as_str().unwrap()]);
    let under_eng = app.get(&paths::members_query(&format!("department={eng}")), &ent.key).await;
    assert_eq!(under_eng.body["items"].as_array().unwrap().len(), 0, "the member left Engineering's subtree");

    let moves = app.audit(&ent, "action=department.move").await;
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0]["target"], platform.as_str());
    assert_eq!(moves[0]["details"]["previous_parent_id"], eng.as_str());
    assert_eq!(moves[0]["details"]["parent_id"], sales.as_str());
}

#[tokio::test]
async fn moving_a_department_under_itself_or_its_own_subtree_is_refused() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let platform = app.add_department(&ent, "Platform", Some(&eng)).await;
    let storage = app.add_department(&ent, "Storage", Some(&platform)).await;
    let before = app.snapshot().await;
    for target in [&eng, &platform, &storage] {
        let reply = app.patch(&paths::department(&eng), &ent.key, json!({"parent_id": target})).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.error_fields(), vec!["parent_id"]);
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn moving_into_a_parent_that_has_a_child_of_the_same_name_is_a_conflict() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    app.add_department(&ent, "Tools", Some(&eng)).await;
    let sales_tools = app.add_department(&ent, "Tools", Some(&sales)).await;
    let before = app.snapshot().await;
    let reply = app.patch(&paths::department(&sales_tools), &ent.key, json!({"parent_id": eng})).await;
    reply.assert_problem(409, "conflict");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn moving_to_an_unknown_parent_is_refused() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let before = app.snapshot().await;
    let reply = app
        .patch(&paths::department(&eng), &ent.key, json!({"parent_id": "dep_00000000000000000000000000000000"}))
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["parent_id"]);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn the_root_cannot_be_moved_or_deleted() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let root = &ent.root_department_id;
    let before = app.snapshot().await;

    let reply = app.patch(&paths::department(root), &ent.key, json!({"parent_id": eng})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["parent_id"]);

    let reply = app.delete(&paths::department(root), &ent.key).await;
    reply.assert_problem(409, "conflict");
    assert_eq!(app.snapshot().await, before);

    // It can be renamed.
    let reply = app.patch(&paths::department(root), &ent.key, json!({"name": "Acme Group"})).await;
    reply.assert_status(200);
    assert!(reply.body["parent_id"].is_null());
}

/// Creates a chain below the root so that the deepest department sits at `levels` (root = 1).
async fn chain(app: &TestApp, ent: &TestEnterprise, levels: usize) -> Vec<String> {
    let mut ids = vec![ent.root_department_id.clone()];
    for level in 2..=levels {
        let id = app.add_department(ent, &format!("L{level}"), Some(ids.last().unwrap())).await;
        ids.push(id);
    }
    ids
}

#[tokio::test]
async fn departments_nest_at_most_15_levels() {
    let (app, ent) = TestApp::with_acme().await;
    let ids = chain(&app, &ent, 15).await;
    let before = app.snapshot().await;
    let reply = app.post(&paths::departments(), &ent.key, json!({"name": "L16", "parent_id": ids[14]})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["parent_id"]);
    assert_eq!(app.snapshot().await, before);
    // A sibling at level 15 is fine.
    app.add_department(&ent, "L15b", Some(&ids[13])).await;
}

#[tokio::test]
async fn a_move_that_would_make_the_tree_deeper_than_15_levels_is_refused() {
    let (app, ent) = TestApp::with_acme().await;
    let ids = chain(&app, &ent, 13).await;
    // A two-level subtree under the root: levels 2 and 3.
    let team = app.add_department(&ent, "Team", None).await;
    let squad = app.add_department(&ent, "Squad", Some(&team)).await;
    let before = app.snapshot().await;

    // Under level 14 the subtree would reach level 16.
    let l14 = app.add_department(&ent, "L14", Some(&ids[12])).await;
    let after_l14 = app.snapshot().await;
    let reply = app.patch(&paths::department(&team), &ent.key, json!({"parent_id": l14})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["parent_id"]);
    assert_eq!(app.snapshot().await, after_l14);
    assert_ne!(after_l14, before);

    // Under level 13 it reaches exactly 15: allowed.
    let reply = app.patch(&paths::department(&team), &ent.key, json!({"parent_id": ids[12]})).await;
    reply.assert_status(200);
    assert_eq!(department(&app, &ent, &squad).await["parent_id"], team.as_str());
}

#[tokio::test]
async fn deleting_an_empty_department_removes_it() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let reply = app.delete(&paths::department(&eng), &ent.key).await;
    reply.assert_status(204);
    app.get(&paths::department(&eng), &ent.key).await.assert_problem(404, "not_found");
    app.delete(&paths::department(&eng), &ent.key).await.assert_problem(404, "not_found");
    let deletes = app.audit(&ent, "action=department.delete").await;
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0]["target"], eng.as_str());
    // The name is free again.
    app.add_department(&ent, "Engineering", None).await;
}

#[tokio::test]
async fn deleting_a_department_with_sub_departments_is_a_conflict() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    app.add_department(&ent, "Backend", Some(&eng)).await;
    let before = app.snapshot().await;
    app.delete(&paths::department(&eng), &ent.key).await.assert_problem(409, "conflict");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn deleting_a_non_empty_department_is_a_conflict_until_its_members_depart() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let m = app.add_member_with(&ent, json!({"name": "Zhang San", "phone": "13900139001", "departments": [eng]})).await;
    let before = app.snapshot().await;
    app.delete(&paths::department(&eng), &ent.key).await.assert_problem(409, "conflict");
    assert_eq!(app.snapshot().await, before);

    app.post(&paths::member_depart(m["id"].as_str().unwrap()), &ent.key, json!({})).await.assert_status(200);
    app.delete(&paths::department(&eng), &ent.key).await.assert_status(204);
}

#[tokio::test]
async fn a_disabled_member_still_keeps_a_department_from_being_deleted() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let m = app.add_member_with(&ent, json!({"name": "Zhang San", "phone": "13900139001", "departments": [eng]})).await;
    app.disable_member(m["id"].as_str().unwrap(), &ent.key).await.assert_status(200);
    app.delete(&paths::department(&eng), &ent.key).await.assert_problem(409, "conflict");
}

#[tokio::test]
async fn unknown_or_malformed_department_ids_are_not_found() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    for id in ["dep_00000000000000000000000000000000", "nonsense", "mem_00000000000000000000000000000000"] {
        let path = paths::department(id);
        app.get(&path, &ent.key).await.assert_problem(404, "not_found");
        app.patch(&path, &ent.key, json!({"name": "X"})).await.assert_problem(404, "not_found");
        app.delete(&path, &ent.key).await.assert_problem(404, "not_found");
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn deleting_a_department_that_a_department_admin_administers_is_a_conflict() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let da = app
        .add_member_with(
            &ent,
            json!({"name": "DA", "phone": "13900139001", "role": "department_admin", "admin_departments": [eng]}),
        )
        .await;
    let before = app.snapshot().await;
    app.delete(&paths::department(&eng), &ent.key).await.assert_problem(409, "conflict");
    assert_eq!(app.snapshot().await, before, "no administrator is left scoped to a department that is gone");

    let path = paths::member(da["id"].as_str().unwrap());
    app.patch(&path, &ent.key, json!({"role": "admin"})).await.assert_status(200);
    app.delete(&paths::department(&eng), &ent.key).await.assert_status(204);
}
