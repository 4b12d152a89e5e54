//! The role matrix (issue "admin sessions"): every admin endpoint against owner, admin,
//! department admin inside and outside their subtree, plain member, and another enterprise's key.

use crate::helpers::{TestApp, TestEnterprise};
use crate::paths;
use reqwest::Method;
use serde_json::{Value, json};

struct Org {
    app: TestApp,
    ent: TestEnterprise,
    foreign_key: String,
    engineering: String,
    sales: String,
    eng_member: String,
    sales_member: String,
    owner_id: String,
    tokens: Vec<(&'static str, String)>,
}

/// Signs a member in over SMS and returns their access token.
async fn token_for(app: &TestApp, phone: &str, sms_before: usize) -> String {
    let started = app.start_login(phone).await;
    started.assert_status(200);
    let code = app.code_for(phone, sms_before + 1).await;
    let login = started.body["login_id"].as_str().unwrap();
    let done = app.submit_code(login, &code).await;
    done.assert_status(200);
    done.body["session"]["access_token"].as_str().unwrap().to_string()
}

async fn org() -> Org {
    let (app, ent) = TestApp::with_acme().await;
    let foreign = app.enterprise("Globex", "13800138009").await;
    let engineering = app.add_department(&ent, "Engineering", None).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    let add = |name: &str, phone: &str, dept: &str, role: &str, scope: Option<&str>| {
        let mut body = json!({"name": name, "phone": phone, "departments": [dept], "role": role});
        if let Some(s) = scope {
            body["admin_departments"] = json!([s]);
        }
        body
    };
    let members = paths::members();
    let post = |body: Value| app.post(&members, &ent.key, body);
    post(add("Ada Admin", "13900139101", &engineering, "admin", None)).await.assert_status(201);
    post(add("Dee Dept", "13900139102", &engineering, "department_admin", Some(&engineering))).await.assert_status(201);
    post(add("Mo Member", "13900139103", &engineering, "member", None)).await.assert_status(201);
    let eng_member = post(add("Eve Eng", "13900139104", &engineering, "member", None)).await.body["id"]
        .as_str()
        .unwrap()
        .to_string();
    let sales_member =
        post(add("Sam Sales", "13900139105", &sales, "member", None)).await.body["id"].as_str().unwrap().to_string();
    let mut tokens = vec![("owner", token_for(&app, "+8613800138000", 0).await)];
    for (role, phone) in
        [("admin", "+8613900139101"), ("department_admin", "+8613900139102"), ("member", "+8613900139103")]
    {
        tokens.push((role, token_for(&app, phone, 1).await));
    }
    Org {
        owner_id: ent.owner_id.clone(),
        foreign_key: foreign.key,
        app,
        ent,
        engineering,
        sales,
        eng_member,
        sales_member,
        tokens,
    }
}

/// One row of the matrix: a request and the status each caller gets, in the order
/// owner, admin, department admin, member, another enterprise's API key.
struct Row {
    method: Method,
    path: String,
    body: Option<Value>,
    expect: [u16; 5],
}

fn row(method: Method, path: String, body: Option<Value>, expect: [u16; 5]) -> Row {
    Row { method, path, body, expect }
}

#[tokio::test]
async fn each_role_gets_what_it_may_and_nothing_more() {
    let o = org().await;
    let (eng, sales, em, sm) = (&o.engineering, &o.sales, &o.eng_member, &o.sales_member);
    let rows = vec![
        row(Method::GET, paths::member(em), None, [200, 200, 200, 403, 404]),
        row(Method::GET, paths::member(sm), None, [200, 200, 403, 403, 404]),
        row(Method::PATCH, paths::member(em), Some(json!({"title": "Engineer"})), [200, 200, 200, 403, 404]),
        row(Method::PATCH, paths::member(sm), Some(json!({"title": "Seller"})), [200, 200, 403, 403, 404]),
        row(Method::POST, paths::member_disable(em), None, [200, 200, 200, 403, 404]),
        row(Method::POST, paths::member_enable(em), None, [200, 200, 200, 403, 404]),
        row(Method::POST, paths::member_disable(sm), None, [200, 200, 403, 403, 404]),
        row(Method::POST, paths::member_enable(sm), None, [200, 200, 403, 403, 404]),
        row(Method::GET, paths::member_devices(em), None, [200, 200, 200, 403, 404]),
        row(Method::GET, paths::member_sessions(sm), None, [200, 200, 403, 403, 404]),
        row(Method::GET, paths::member_invitations(sm), None, [200, 200, 403, 403, 404]),
        row(Method::GET, paths::department(eng), None, [200, 200, 200, 403, 404]),
        row(Method::GET, paths::department(sales), None, [200, 200, 403, 403, 404]),
        row(Method::PATCH, paths::department(sales), Some(json!({"order": 7})), [200, 200, 403, 403, 404]),
        row(Method::GET, paths::policy(), None, [200, 200, 403, 403, 200]),
        row(Method::GET, paths::api_keys(), None, [200, 200, 403, 403, 200]),
        row(Method::GET, paths::audit(), None, [200, 200, 403, 403, 200]),
        row(Method::GET, paths::apps(), None, [200, 200, 403, 403, 200]),
        row(
            Method::POST,
            paths::apps(),
            Some(json!({"name": "Wiki", "redirect_uris": ["https://wiki.example.com/cb"]})),
            [201, 201, 403, 403, 201],
        ),
        row(Method::GET, paths::members(), None, [200, 200, 200, 403, 200]),
        row(Method::GET, paths::departments(), None, [200, 200, 200, 403, 200]),
    ];
    for r in &rows {
        let mut callers: Vec<(&str, &str)> = o.tokens.iter().map(|(role, t)| (*role, t.as_str())).collect();
        callers.push(("foreign key", o.foreign_key.as_str()));
        for ((who, token), expected) in callers.into_iter().zip(r.expect) {
            let reply = o.app.request(r.method.clone(), &r.path, Some(token), r.body.clone()).await;
            assert_eq!(reply.status.as_u16(), expected, "{who} on {} {}: {}", r.method, r.path, reply.text);
            if expected == 403 {
                assert_eq!(reply.code(), "forbidden");
            }
        }
    }
}

#[tokio::test]
async fn creating_inside_and_outside_a_department_admins_subtree() {
    let o = org().await;
    let token = |role: &str| o.tokens.iter().find(|(r, _)| *r == role).map(|(_, t)| t.clone()).unwrap();
    let dadmin = token("department_admin");
    let in_dept = json!({"name": "Backend", "parent_id": o.engineering});
    o.app.post(&paths::departments(), &dadmin, in_dept).await.assert_status(201);
    let out_dept = json!({"name": "Retail", "parent_id": o.sales});
    o.app.post(&paths::departments(), &dadmin, out_dept).await.assert_problem(403, "forbidden");
    let inside = json!({"name": "New Eng", "phone": "13900139201", "departments": [o.engineering]});
    o.app.post(&paths::members(), &dadmin, inside).await.assert_status(201);
    let outside = json!({"name": "New Sales", "phone": "13900139202", "departments": [o.sales]});
    o.app.post(&paths::members(), &dadmin, outside).await.assert_problem(403, "forbidden");
    let promote = json!({"role": "admin"});
    o.app.patch_member(&o.eng_member, &dadmin, promote).await.assert_problem(403, "forbidden");
    o.app
        .post_raw(&paths::members_import(), &dadmin, "text/csv", "name,phone\nX,13900139203\n")
        .await
        .assert_problem(403, "forbidden");
    // The department admin's list holds only their subtree.
    let listed = o.app.get(&paths::members_query("limit=100"), &dadmin).await;
    let ids: Vec<&str> = listed.body["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&o.eng_member.as_str()) && !ids.contains(&o.sales_member.as_str()));
    let plain = token("member");
    o.app.get(&paths::members(), &plain).await.assert_problem(403, "forbidden");
}

#[tokio::test]
async fn only_owners_make_or_unmake_owners_and_role_changes_are_audited() {
    let o = org().await;
    let token = |role: &str| o.tokens.iter().find(|(r, _)| *r == role).map(|(_, t)| t.clone()).unwrap();
    let admin = token("admin");
    let owner = token("owner");
    let path = paths::member(&o.eng_member);
    o.app.patch(&path, &admin, json!({"role": "owner"})).await.assert_problem(403, "forbidden");
    o.app.patch_member(&o.owner_id, &admin, json!({"role": "member"})).await.assert_problem(403, "forbidden");
    o.app.patch(&path, &admin, json!({"role": "admin"})).await.assert_status(200);
    o.app.patch(&path, &owner, json!({"role": "owner"})).await.assert_status(200);
    // The last-owner rule still holds for an owner's own session.
    let me = o.app.get(&paths::me(), &owner).await.body["member"]["id"].as_str().unwrap().to_string();
    o.app.patch_member(&me, &owner, json!({"role": "admin"})).await.assert_status(200);
    o.app.patch(&path, &owner, json!({"role": "member"})).await.assert_problem(403, "forbidden");
    let audit = o.app.get(&paths::audit_query("action=member.update"), &o.ent.key).await;
    let role_changes =
        audit.body["items"].as_array().unwrap().iter().filter(|e| e["details"]["role"].is_object()).count();
    assert!(role_changes >= 3, "{}", audit.text);
    let by_member =
        audit.body["items"].as_array().unwrap().iter().any(|e| e["actor"].as_str().unwrap().starts_with("member:"));
    assert!(by_member);
}
