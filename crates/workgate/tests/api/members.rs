//! Members: add, read, edit, list with filters and pages, disable/enable/depart, owners and roles.

use crate::helpers::{TestApp, TestEnterprise};
use crate::paths;
use serde_json::{Value, json};

fn id(m: &Value) -> String {
    m["id"].as_str().expect("member id").to_string()
}

async fn member(app: &TestApp, ent: &TestEnterprise, id: &str) -> Value {
    let reply = app.get_member(id, &ent.key).await;
    reply.assert_status(200);
    reply.body
}

async fn action(app: &TestApp, ent: &TestEnterprise, id: &str, verb: &str) -> crate::helpers::Reply {
    app.post(&paths::member_action(id, verb), &ent.key, json!({})).await
}

#[tokio::test]
async fn adding_a_member_answers_201_with_the_whole_record() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    assert!(id(&m).starts_with("mem_"));
    assert_eq!(m["name"], "Zhang San");
    assert_eq!(m["phone"], "+8613900139001");
    assert!(m["userid"].as_str().is_some_and(|u| !u.is_empty()), "a userid is generated");
    assert_eq!(m["departments"], json!([ent.root_department_id]), "no department given: the root");
    assert_eq!(m["role"], "member");
    assert_eq!(m["status"], "invited");
    assert!(m["email"].is_null() && m["title"].is_null() && m["activated_at"].is_null());
    assert!(m["created_at"].as_str().is_some_and(|t| t.ends_with('Z')), "RFC 3339 UTC: {}", m["created_at"]);
    assert_eq!(member(&app, &ent, &id(&m)).await, m, "GET answers what POST created");
}

#[tokio::test]
async fn adding_a_member_with_every_field_keeps_them() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    let m = app
        .add_member_with(
            &ent,
            json!({
                "name": "Li Lei", "phone": "+86 139 0013 9002", "userid": "Li.Lei@corp",
                "email": "li.lei@example.com", "title": "Engineer", "departments": [eng, sales],
                "role": "admin", "invite": false
            }),
        )
        .await;
    assert_eq!(m["userid"], "Li.Lei@corp", "userid keeps its case");
    assert_eq!(m["email"], "li.lei@example.com");
    assert_eq!(m["title"], "Engineer");
    assert_eq!(m["departments"], json!([eng, sales]));
    assert_eq!(m["role"], "admin");
    let created = app.audit(&ent, "action=member.create").await;
    assert_eq!(created[0]["target"], m["id"]);
}

#[tokio::test]
async fn adding_a_member_reports_every_invalid_field_at_once() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    let reply = app
        .post(
            &paths::members(),
            &ent.key,
            json!({
                "name": "", "phone": "not a number", "userid": "_bad id", "email": "nope",
                "role": "emperor", "departments": ["dep_00000000000000000000000000000000"]
            }),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    let mut fields = reply.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["departments[0]", "email", "name", "phone", "role", "userid"]);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_title_over_128_characters_or_a_name_over_64_is_refused() {
    let (app, ent) = TestApp::with_acme().await;
    let reply = app
        .post(
            &paths::members(),
            &ent.key,
            json!({"name": "n".repeat(65), "phone": "13900139001", "title": "t".repeat(129)}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    let mut fields = reply.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["name", "title"]);
    assert_eq!(app.count("members").await, 1);
}

#[tokio::test]
async fn a_duplicate_phone_in_any_form_is_a_conflict() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", "13900139001").await;
    let before = app.snapshot().await;
    for phone in ["13900139001", "+86 139-0013-9001", "0086 13900139001", "13800138000"] {
        let reply = app.post(&paths::members(), &ent.key, json!({"name": "Other", "phone": phone})).await;
        reply.assert_problem(409, "conflict");
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_duplicate_userid_ignoring_case_is_a_conflict() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member_with(&ent, json!({"name": "Zhang San", "phone": "13900139001", "userid": "ZhangSan"})).await;
    let before = app.snapshot().await;
    for userid in ["zhangsan", "ZHANGSAN", "ZhangSan"] {
        let reply = app
            .post(&paths::members(), &ent.key, json!({"name": "Other", "phone": "13900139002", "userid": userid}))
            .await;
        reply.assert_problem(409, "conflict");
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn the_same_number_and_userid_may_belong_to_several_enterprises() {
    let app = TestApp::spawn().await;
    let a = app.enterprise("Acme", "13800138000").await;
    let b = app.enterprise("Beta", "13800138000").await;
    let body = json!({"name": "Zhang San", "phone": "13900139001", "userid": "zhangsan"});
    let ma = app.add_member_with(&a, body.clone()).await;
    let mb = app.add_member_with(&b, body).await;
    assert_ne!(ma["id"], mb["id"]);
}

#[tokio::test]
async fn invalid_userids_are_refused() {
    let (app, ent) = TestApp::with_acme().await;
    for userid in ["", "_x", "a b", "中文", &"a".repeat(65)] {
        let reply =
            app.post(&paths::members(), &ent.key, json!({"name": "X", "phone": "13900139001", "userid": userid})).await;
        reply.assert_problem(422, "validation_failed");
        assert_eq!(reply.error_fields(), vec!["userid"], "{userid:?}");
    }
    assert_eq!(app.count("members").await, 1);
}

#[tokio::test]
async fn unknown_or_malformed_member_ids_are_not_found() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    for id in ["mem_00000000000000000000000000000000", "nonsense", &ent.owner_id.replace("mem_", "dep_")] {
        let path = paths::member(id);
        app.get(&path, &ent.key).await.assert_problem(404, "not_found");
        app.patch(&path, &ent.key, json!({"name": "X"})).await.assert_problem(404, "not_found");
        for verb in ["disable", "enable", "depart"] {
            action(&app, &ent, id, verb).await.assert_problem(404, "not_found");
        }
    }
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn patching_a_member_changes_only_the_fields_given() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let m = app
        .add_member_with(
            &ent,
            json!({"name": "Zhang San", "phone": "13900139001", "email": "z@example.com", "title": "Dev"}),
        )
        .await;
    let reply =
        app.patch_member(&id(&m), &ent.key, json!({"name": "Zhang San II", "departments": [eng], "title": null})).await;
    reply.assert_status(200);
    let after = member(&app, &ent, &id(&m)).await;
    assert_eq!(after, reply.body);
    assert_eq!(after["name"], "Zhang San II");
    assert_eq!(after["departments"], json!([eng]));
    assert!(after["title"].is_null(), "null clears");
    assert_eq!(after["email"], "z@example.com", "absent is left alone");
    assert_eq!(after["phone"], m["phone"]);
    assert_eq!(after["userid"], m["userid"]);
    assert_eq!(after["created_at"], m["created_at"]);

    let updates = app.audit(&ent, "action=member.update").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["details"]["name"], json!({"from": "Zhang San", "to": "Zhang San II"}));
    assert!(updates[0]["details"].get("email").is_none(), "only changed fields are recorded");
}

#[tokio::test]
async fn a_patch_that_changes_nothing_writes_nothing() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let before = app.snapshot().await;
    let reply = app.patch_member(&id(&m), &ent.key, json!({"name": "Zhang San", "phone": "139 0013 9001"})).await;
    reply.assert_status(200);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn patching_to_another_members_phone_or_userid_is_a_conflict() {
    let (app, ent) = TestApp::with_acme().await;
    let a = app.add_member_with(&ent, json!({"name": "A", "phone": "13900139001", "userid": "alpha"})).await;
    app.add_member_with(&ent, json!({"name": "B", "phone": "13900139002", "userid": "beta"})).await;
    let before = app.snapshot().await;
    let path = paths::member(&id(&a));
    app.patch(&path, &ent.key, json!({"phone": "+86 139 0013 9002"})).await.assert_problem(409, "conflict");
    app.patch(&path, &ent.key, json!({"userid": "BETA"})).await.assert_problem(409, "conflict");
    assert_eq!(app.snapshot().await, before);
    // Changing the case of one's own userid is fine.
    let reply = app.patch(&path, &ent.key, json!({"userid": "Alpha"})).await;
    reply.assert_status(200);
    assert_eq!(reply.body["userid"], "Alpha");
}

#[tokio::test]
async fn a_member_belongs_to_at_least_one_department() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let before = app.snapshot().await;
    let reply = app.patch_member(&id(&m), &ent.key, json!({"departments": []})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["departments"]);
    let reply =
        app.patch_member(&id(&m), &ent.key, json!({"departments": ["dep_00000000000000000000000000000000"]})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["departments[0]"]);
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_patch_reports_every_invalid_field_at_once() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let before = app.snapshot().await;
    let reply =
        app.patch_member(&id(&m), &ent.key, json!({"name": " ", "email": "bad", "role": "king", "phone": "12"})).await;
    reply.assert_problem(422, "validation_failed");
    let mut fields = reply.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["email", "name", "phone", "role"]);
    assert_eq!(app.snapshot().await, before);
}

// --- listing ---

/// Engineering (with Backend below it) and Sales, with members in each.
struct Directory {
    eng: String,
    backend: String,
    sales: String,
    zhang: Value,
    li: Value,
    wang: Value,
}

async fn directory(app: &TestApp, ent: &TestEnterprise) -> Directory {
    let eng = app.add_department(ent, "Engineering", None).await;
    let backend = app.add_department(ent, "Backend", Some(&eng)).await;
    let sales = app.add_department(ent, "Sales", None).await;
    let zhang = app
        .add_member_with(
            ent,
            json!({"name": "Zhang Wei", "phone": "13900139001", "userid": "zwei", "departments": [eng]}),
        )
        .await;
    let li = app
        .add_member_with(
            ent,
            json!({"name": "Li Na", "phone": "13700137002", "userid": "lina", "departments": [backend]}),
        )
        .await;
    let wang = app
        .add_member_with(
            ent,
            json!({"name": "Wang Fang", "phone": "13600136003", "userid": "wangfang", "departments": [sales]}),
        )
        .await;
    Directory { eng, backend, sales, zhang, li, wang }
}

async fn list_ids(app: &TestApp, ent: &TestEnterprise, query: &str) -> Vec<String> {
    let mut ids = TestApp::ids(&app.all_members(ent, query, 500).await);
    ids.sort();
    ids
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn filtering_by_department_includes_its_whole_subtree() {
    let (app, ent) = TestApp::with_acme().await;
    let d = directory(&app, &ent).await;
    assert_eq!(list_ids(&app, &ent, &format!("department={}", d.eng)).await, sorted(vec![id(&d.zhang), id(&d.li)]));
    assert_eq!(list_ids(&app, &ent, &format!("department={}", d.backend)).await, vec![id(&d.li)]);
    assert_eq!(list_ids(&app, &ent, &format!("department={}", d.sales)).await, vec![id(&d.wang)]);
    let all = list_ids(&app, &ent, &format!("department={}", ent.root_department_id)).await;
    assert_eq!(all.len(), 4, "the root's subtree is everyone, the owner included");

    let reply = app.get(&paths::members_query("department=dep_00000000000000000000000000000000"), &ent.key).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["department"]);
}

#[tokio::test]
async fn filtering_by_status_takes_one_or_several_and_hides_departed_by_default() {
    let (app, ent) = TestApp::with_acme().await;
    let d = directory(&app, &ent).await;
    action(&app, &ent, &id(&d.li), "disable").await.assert_status(200);
    action(&app, &ent, &id(&d.wang), "depart").await.assert_status(200);

    let default = list_ids(&app, &ent, "").await;
    assert_eq!(default, sorted(vec![ent.owner_id.clone(), id(&d.zhang), id(&d.li)]), "departed are hidden");
    assert_eq!(list_ids(&app, &ent, "status=disabled").await, vec![id(&d.li)]);
    assert_eq!(list_ids(&app, &ent, "status=departed").await, vec![id(&d.wang)]);
    assert_eq!(list_ids(&app, &ent, "status=disabled,departed").await, sorted(vec![id(&d.li), id(&d.wang)]));
    assert_eq!(list_ids(&app, &ent, "status=invited").await, sorted(vec![ent.owner_id.clone(), id(&d.zhang)]));
    assert_eq!(list_ids(&app, &ent, "status=active").await, Vec::<String>::new());

    let reply = app.get(&paths::members_query("status=invited,gone"), &ent.key).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["status"]);
}

#[tokio::test]
async fn searching_matches_name_userid_and_phone_digits() {
    let (app, ent) = TestApp::with_acme().await;
    let d = directory(&app, &ent).await;
    assert_eq!(list_ids(&app, &ent, "q=zhang").await, vec![id(&d.zhang)], "name, ignoring case");
    assert_eq!(list_ids(&app, &ent, "q=LI%20NA").await, vec![id(&d.li)]);
    assert_eq!(list_ids(&app, &ent, "q=wangf").await, vec![id(&d.wang)], "userid");
    assert_eq!(list_ids(&app, &ent, "q=0136003").await, vec![id(&d.wang)], "phone digits");
    assert_eq!(list_ids(&app, &ent, "q=137-0013-7002").await, vec![id(&d.li)], "phone as typed");
    assert_eq!(list_ids(&app, &ent, "q=nobody").await, Vec::<String>::new());
    assert_eq!(list_ids(&app, &ent, "q=%25").await, Vec::<String>::new(), "% is a literal character");
    // Filters combine.
    assert_eq!(list_ids(&app, &ent, &format!("q=li&department={}", d.sales)).await, Vec::<String>::new());
}

#[tokio::test]
async fn pages_of_members_cover_everyone_exactly_once() {
    let (app, ent) = TestApp::with_acme().await;
    let mut expected = vec![ent.owner_id.clone()];
    for i in 0..23 {
        expected.push(id(&app.add_member(&ent, &format!("Person {i}"), &format!("1390013{:04}", 9000 + i)).await));
    }
    for limit in [1, 5, 24, 50] {
        let pages = app.all_members(&ent, "", limit).await;
        let ids = TestApp::ids(&pages);
        assert_eq!(ids, expected, "limit {limit}: every member once, in creation order");
    }
    let first = app.get(&paths::members_query("limit=5"), &ent.key).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 5);
    assert_eq!(first.body["next_cursor"], first.body["items"][4]["id"]);
    let last = app.get(&paths::members_query("limit=24"), &ent.key).await;
    assert!(last.body["next_cursor"].is_null(), "exactly one page: no cursor");
}

#[tokio::test]
async fn pagination_holds_steady_while_members_are_added() {
    let (app, ent) = TestApp::with_acme().await;
    for i in 0..6 {
        app.add_member(&ent, &format!("Person {i}"), &format!("1390013{:04}", 9000 + i)).await;
    }
    let first = app.get(&paths::members_query("limit=4"), &ent.key).await;
    let cursor = first.body["next_cursor"].as_str().unwrap().to_string();
    let late = app.add_member(&ent, "Late", "13900139999").await;
    let rest = app.get(&paths::members_query(&format!("limit=100&cursor={cursor}")), &ent.key).await;
    let mut seen = TestApp::ids(first.body["items"].as_array().unwrap());
    seen.extend(TestApp::ids(rest.body["items"].as_array().unwrap()));
    assert_eq!(seen.len(), 8, "7 members before, and the one added meanwhile at the end");
    assert_eq!(seen.last(), Some(&id(&late)));
}

#[tokio::test]
async fn bad_pagination_parameters_are_refused_naming_them() {
    let (app, ent) = TestApp::with_acme().await;
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("cursor=abc", "cursor"),
        ("sort=name", ""),
    ] {
        let reply = app.get(&paths::members_query(query), &ent.key).await;
        reply.assert_problem(422, "validation_failed");
        if !field.is_empty() {
            assert_eq!(reply.error_fields(), vec![field], "{query}");
        }
    }
    let reply = app.get(&paths::members_query("limit=500"), &ent.key).await;
    reply.assert_status(200);
}

// --- lookup ---

#[tokio::test]
async fn looking_up_an_unknown_number_suggests_adding_the_member() {
    let (app, ent) = TestApp::with_acme().await;
    let reply = app.get(&paths::member_lookup_phone("13900139001"), &ent.key).await;
    reply.assert_status(200);
    assert_eq!(reply.body["phone"], "+8613900139001");
    assert!(reply.body["member"].is_null());
    assert_eq!(reply.body["suggested_fix"], "add_member");
}

async fn lookup(app: &TestApp, ent: &TestEnterprise, phone: &str) -> Value {
    let reply = app.get(&paths::member_lookup_phone(&crate::helpers::enc(phone)), &ent.key).await;
    reply.assert_status(200);
    reply.body
}

#[tokio::test]
async fn looking_up_a_number_answers_the_member_and_what_to_do() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let invited = lookup(&app, &ent, "+86 139 0013 9001").await;
    assert_eq!(invited["member"]["id"], m["id"]);
    assert_eq!(invited["member"]["status"], "invited");
    assert_eq!(invited["suggested_fix"], "resend_invitation");

    action(&app, &ent, &id(&m), "disable").await.assert_status(200);
    let disabled = lookup(&app, &ent, "139-0013-9001").await;
    assert_eq!(disabled["member"]["status"], "disabled");
    assert_eq!(disabled["suggested_fix"], "enable");

    action(&app, &ent, &id(&m), "depart").await.assert_status(200);
    let departed = lookup(&app, &ent, "0086 13900139001").await;
    assert!(departed["member"].is_null());
    assert_eq!(departed["departed"][0]["id"], m["id"]);
    assert_eq!(departed["suggested_fix"], "add_member");
}

#[tokio::test]
async fn looking_up_an_invalid_number_is_invalid_phone() {
    let (app, ent) = TestApp::with_acme().await;
    app.get(&paths::member_lookup_phone("hello"), &ent.key).await.assert_problem(422, "invalid_phone");
    app.get(&paths::member_lookup_phone("010%206552%209988"), &ent.key).await.assert_problem(422, "invalid_phone");
    let reply = app.get(&paths::member_lookup(), &ent.key).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["phone"]);
}

// --- status changes ---

#[tokio::test]
async fn disabling_and_enabling_a_member_round_trips_and_is_audited() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let reply = action(&app, &ent, &id(&m), "disable").await;
    reply.assert_status(200);
    assert_eq!(reply.body["status"], "disabled");
    assert_eq!(member(&app, &ent, &id(&m)).await["status"], "disabled");

    let before = app.snapshot().await;
    action(&app, &ent, &id(&m), "disable").await.assert_status(200);
    assert_eq!(app.snapshot().await, before, "disabling twice changes nothing the second time");

    let reply = action(&app, &ent, &id(&m), "enable").await;
    reply.assert_status(200);
    assert_eq!(reply.body["status"], "invited", "a never-activated member goes back to invited");

    let before = app.snapshot().await;
    action(&app, &ent, &id(&m), "enable").await.assert_status(200);
    assert_eq!(app.snapshot().await, before, "enabling an enabled member changes nothing");

    let log = app.audit(&ent, "action=member").await;
    let actions: Vec<&str> =
        log.iter().filter(|e| e["target"] == m["id"]).map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, vec!["member.enable", "member.disable", "member.create"]);
}

#[tokio::test]
async fn departed_is_terminal() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let reply = action(&app, &ent, &id(&m), "depart").await;
    reply.assert_status(200);
    assert_eq!(reply.body["status"], "departed");

    let before = app.snapshot().await;
    app.patch_member(&id(&m), &ent.key, json!({"name": "Back"})).await.assert_problem(409, "conflict");
    action(&app, &ent, &id(&m), "enable").await.assert_problem(409, "conflict");
    action(&app, &ent, &id(&m), "disable").await.assert_problem(409, "conflict");
    action(&app, &ent, &id(&m), "depart").await.assert_status(200);
    assert_eq!(app.snapshot().await, before);
    assert_eq!(member(&app, &ent, &id(&m)).await["status"], "departed", "the record is kept");
}

#[tokio::test]
async fn a_departed_number_and_userid_can_be_added_again_as_a_new_member() {
    let (app, ent) = TestApp::with_acme().await;
    let old = app.add_member_with(&ent, json!({"name": "Zhang San", "phone": "13900139001", "userid": "zs"})).await;
    action(&app, &ent, &id(&old), "depart").await.assert_status(200);
    let new = app.add_member_with(&ent, json!({"name": "Zhang San", "phone": "+8613900139001", "userid": "ZS"})).await;
    assert_ne!(new["id"], old["id"], "a new member, not the old one revived");
    assert_eq!(new["status"], "invited");
    assert_eq!(member(&app, &ent, &id(&old)).await["status"], "departed");
    let lookup = app.get(&paths::member_lookup_phone("13900139001"), &ent.key).await;
    assert_eq!(lookup.body["member"]["id"], new["id"]);
    assert_eq!(lookup.body["departed"][0]["id"], old["id"]);
    // The old record cannot be brought back next to the new one.
    action(&app, &ent, &id(&old), "enable").await.assert_problem(409, "conflict");
}

// --- owners and roles ---

#[tokio::test]
async fn the_last_owner_cannot_be_demoted_disabled_or_departed() {
    let (app, ent) = TestApp::with_acme().await;
    let owner = member(&app, &ent, &ent.owner_id).await;
    assert_eq!(owner["role"], "owner");
    let before = app.snapshot().await;
    for role in ["admin", "member"] {
        app.patch_member(&ent.owner_id, &ent.key, json!({"role": role})).await.assert_problem(409, "conflict");
    }
    action(&app, &ent, &ent.owner_id, "disable").await.assert_problem(409, "conflict");
    action(&app, &ent, &ent.owner_id, "depart").await.assert_problem(409, "conflict");
    assert_eq!(app.snapshot().await, before);
    assert_eq!(member(&app, &ent, &ent.owner_id).await["status"], "invited");
}

#[tokio::test]
async fn an_owner_can_step_down_once_a_second_owner_exists() {
    let (app, ent) = TestApp::with_acme().await;
    let second = app.add_member_with(&ent, json!({"name": "Second", "phone": "13900139001", "role": "owner"})).await;
    assert_eq!(second["role"], "owner");
    let reply = app.patch_member(&ent.owner_id, &ent.key, json!({"role": "admin"})).await;
    reply.assert_status(200);
    assert_eq!(reply.body["role"], "admin");
    // Now the second is the last one.
    action(&app, &ent, &id(&second), "depart").await.assert_problem(409, "conflict");
    // A disabled owner does not count: promote the first back, disable it, and the second is last again.
    app.patch_member(&ent.owner_id, &ent.key, json!({"role": "owner"})).await.assert_status(200);
    action(&app, &ent, &ent.owner_id, "disable").await.assert_status(200);
    action(&app, &ent, &id(&second), "disable").await.assert_problem(409, "conflict");
    action(&app, &ent, &ent.owner_id, "enable").await.assert_status(200);
    action(&app, &ent, &id(&second), "depart").await.assert_status(200);
}

#[tokio::test]
async fn a_department_admin_needs_departments_to_administer() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let before = app.snapshot().await;
    let reply = app
        .post(&paths::members(), &ent.key, json!({"name": "DA", "phone": "13900139001", "role": "department_admin"}))
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["admin_departments"]);
    let reply = app
        .post(
            &paths::members(),
            &ent.key,
            json!({"name": "M", "phone": "13900139001", "role": "member", "admin_departments": [eng]}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["admin_departments"]);
    assert_eq!(app.snapshot().await, before);

    let da = app
        .add_member_with(
            &ent,
            json!({"name": "DA", "phone": "13900139001", "role": "department_admin", "admin_departments": [eng]}),
        )
        .await;
    assert_eq!(da["role"], "department_admin");
    assert_eq!(da["admin_departments"], json!([eng]));

    // Promoting a member to department_admin needs the scope in the same patch.
    let m = app.add_member(&ent, "Plain", "13900139002").await;
    let path = paths::member(&id(&m));
    let reply = app.patch(&path, &ent.key, json!({"role": "department_admin"})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["admin_departments"]);
    let reply = app.patch(&path, &ent.key, json!({"role": "department_admin", "admin_departments": [eng]})).await;
    reply.assert_status(200);
    // Demoting clears the scope.
    let reply = app.patch(&path, &ent.key, json!({"role": "member"})).await;
    reply.assert_status(200);
    assert_eq!(reply.body["admin_departments"], json!([]));
}

#[tokio::test]
async fn status_actions_need_no_body() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    for (verb, status) in [("disable", "disabled"), ("enable", "invited"), ("depart", "departed")] {
        let reply = app.anon_with_key(reqwest::Method::POST, &paths::member_action(&id(&m), verb), &ent.key).await;
        reply.assert_status(200);
        assert_eq!(reply.body["status"], status);
    }
}
