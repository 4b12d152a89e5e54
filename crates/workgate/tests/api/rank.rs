//! Ranks on every path that writes members (add, patch, status, import): nobody changes the
//! identity of someone they do not outrank, nor gives a role above their own; the region policy
//! holds for imported numbers too. A changed number signs the member out everywhere and tells both
//! numbers. Invitations wait out the per-number cooldown and stay inside the enterprise's budget.

use super::oidc::{code_for, confidential_app, exchange, introspect, pkce, refresh};
use crate::helpers::{Reply, TestApp, TestEnterprise};
use crate::paths;
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::ManualClock;

const OWNER: &str = "+8613800138000";
const ADMIN: &str = "+8613900139101";
const DEPT_ADMIN: &str = "+8613900139102";
const OTHER_DEPT_ADMIN: &str = "+8613900139103";
const ENG_MEMBER: &str = "+8613900139104";
const SALES_MEMBER: &str = "+8613900139105";
const OTHER_ADMIN: &str = "+8613900139106";

/// An enterprise with an admin, two department admins of Engineering, a member in Engineering
/// and one in Sales; owner, admin and the first department admin signed in.
struct Org {
    app: TestApp,
    ent: TestEnterprise,
    ids: std::collections::HashMap<&'static str, String>,
    owner: String,
    admin: String,
    dept_admin: String,
}

impl Org {
    fn id(&self, phone: &str) -> &str {
        self.ids.get(phone).map(String::as_str).expect("a member of the org")
    }

    async fn member(&self, phone: &str) -> Value {
        let reply = self.app.get_member(self.id(phone), &self.ent.key).await;
        reply.assert_status(200);
        reply.body
    }

    async fn patch(&self, token: &str, phone: &str, body: Value) -> Reply {
        self.app.patch_member(self.id(phone), token, body).await
    }

    async fn status(&self, token: &str, phone: &str, change: &str) -> Reply {
        self.app.post(&paths::member_action(self.id(phone), change), token, json!({})).await
    }
}

fn access(login: &Value) -> String {
    login["session"]["access_token"].as_str().unwrap().to_string()
}

async fn org() -> Org {
    let (app, ent) = TestApp::with_acme().await;
    let engineering = app.add_department(&ent, "Engineering", None).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    let mut ids = std::collections::HashMap::new();
    ids.insert(OWNER, ent.owner_id.clone());
    let people = [
        (ADMIN, "Ada Admin", &engineering, "admin", None),
        (DEPT_ADMIN, "Dee Dept", &engineering, "department_admin", Some(&engineering)),
        (OTHER_DEPT_ADMIN, "Dora Dept", &engineering, "department_admin", Some(&engineering)),
        (ENG_MEMBER, "Eve Eng", &engineering, "member", None),
        (SALES_MEMBER, "Sam Sales", &sales, "member", None),
        (OTHER_ADMIN, "Abe Admin", &sales, "admin", None),
    ];
    for (phone, name, dept, role, scope) in people {
        let mut body = json!({"name": name, "phone": phone, "departments": [dept], "role": role});
        if let Some(s) = scope {
            body["admin_departments"] = json!([s]);
        }
        let added = app.add_member_with(&ent, body).await;
        ids.insert(phone, added["id"].as_str().unwrap().to_string());
    }
    let owner = access(&app.sign_in(OWNER, 0).await);
    let admin = access(&app.sign_in(ADMIN, 1).await);
    let dept_admin = access(&app.sign_in(DEPT_ADMIN, 1).await);
    Org { app, ent, ids, owner, admin, dept_admin }
}

/// The roles and numbers of every member, from the database.
async fn roles_in_db(app: &TestApp) -> Vec<(String, String, String)> {
    let pool = app.db().await;
    let rows: Vec<(String, String, String)> =
        sqlx::query_as("SELECT phone, role, status FROM members ORDER BY phone").fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

async fn sms_purposes(app: &TestApp, phone: &str) -> Vec<String> {
    let pool = app.db().await;
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT purpose FROM sms_outbox WHERE phone = $1 ORDER BY created_at, id")
            .bind(phone)
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    rows.into_iter().map(|(p,)| p).collect()
}

fn row_codes(reply: &Reply) -> Vec<(String, String)> {
    reply.body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (r["status"].as_str().unwrap().to_string(), r["error"]["code"].as_str().unwrap_or_default().to_string())
        })
        .collect()
}

#[tokio::test]
async fn an_admin_cannot_import_itself_or_a_new_member_as_owner() {
    let o = org().await;
    let import = json!({"members": [
        {"phone": ADMIN, "role": "owner"},
        {"name": "New Owner", "phone": "+8613700137001", "role": "owner"},
        {"name": "New Admin", "phone": "+8613700137002", "role": "admin"},
        {"phone": OTHER_ADMIN, "email": "abe@example.com"},
        {"name": "New Member", "phone": "+8613700137003"},
        {"name": "New Dept Admin", "phone": "+8613700137004", "role": "department_admin",
         "admin_departments": [o.member(ENG_MEMBER).await["departments"][0]]},
    ]});
    let reply = o.app.post(&paths::members_import(), &o.admin, import).await;
    reply.assert_status(200);
    let forbidden = ("failed".to_string(), "forbidden".to_string());
    assert_eq!(
        row_codes(&reply),
        vec![
            forbidden.clone(),
            forbidden.clone(),
            ("created".into(), String::new()),
            forbidden,
            ("created".into(), String::new()),
            ("created".into(), String::new()),
        ],
        "{}",
        reply.text
    );
    assert!(reply.body["rows"][0]["error"]["detail"].as_str().unwrap().contains("owner"));
    assert_eq!(o.member(ADMIN).await["role"], "admin", "the admin is still an admin");
    assert_eq!(o.member(OTHER_ADMIN).await["email"], Value::Null, "an admin's peer keeps their email");
    let owners: Vec<_> = roles_in_db(&o.app).await.into_iter().filter(|(_, role, _)| role == "owner").collect();
    assert_eq!(owners.len(), 1, "still one owner: {owners:?}");

    // The owner may import an owner.
    let import = json!({"members": [{"phone": ADMIN, "role": "owner"}]});
    let reply = o.app.post(&paths::members_import(), &o.owner, import).await;
    assert_eq!(row_codes(&reply), vec![("updated".to_string(), String::new())], "{}", reply.text);
    assert_eq!(o.member(ADMIN).await["role"], "owner");
}

#[tokio::test]
async fn imported_numbers_follow_the_region_policy_and_the_other_rows_apply() {
    let (app, ent) = TestApp::with_acme().await;
    let mut policy = app.get(&paths::policy(), &ent.key).await.body;
    policy.as_object_mut().unwrap().remove("updated_at");
    policy["allowed_regions"] = json!(["CN"]);
    app.request(Method::PUT, &paths::policy(), Some(&ent.key), Some(policy)).await.assert_status(200);
    let csv = "userid,name,phone\n\
               zwei,Zhang Wei,139 0013 9001\n\
               sam,Sam Smith,+1 201 555 0123\n\
               lina,Li Na,137 0013 7002\n";
    let reply = app.post_raw(&paths::members_import(), &ent.key, "text/csv", csv.to_string()).await;
    reply.assert_status(200);
    assert_eq!(
        row_codes(&reply),
        vec![
            ("created".to_string(), String::new()),
            ("failed".to_string(), "invalid_phone".to_string()),
            ("created".to_string(), String::new()),
        ],
        "{}",
        reply.text
    );
    let phones: Vec<String> = roles_in_db(&app).await.into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(phones, vec!["+8613700137002", "+8613800138000", "+8613900139001"]);
    // Changing an imported member's number to a refused region fails the row too.
    let csv = "userid,name,phone\nzwei,Zhang Wei,+1 201 555 0124\n";
    let reply = app.post_raw(&paths::members_import(), &ent.key, "text/csv", csv.to_string()).await;
    assert_eq!(row_codes(&reply), vec![("failed".to_string(), "invalid_phone".to_string())]);
    let phones: Vec<String> = roles_in_db(&app).await.into_iter().map(|(p, _, _)| p).collect();
    assert!(phones.contains(&"+8613900139001".to_string()));
}

#[tokio::test]
async fn an_admin_cannot_change_the_owners_identity_or_status() {
    let o = org().await;
    o.patch(&o.admin, OWNER, json!({"phone": "+8613700137009"})).await.assert_problem(403, "forbidden");
    assert_eq!(o.member(OWNER).await["phone"], OWNER, "the owner's number is unchanged");
    o.patch(&o.admin, OWNER, json!({"userid": "boss2"})).await.assert_problem(403, "forbidden");
    o.patch(&o.admin, OWNER, json!({"email": "mine@example.com"})).await.assert_problem(403, "forbidden");
    for change in ["disable", "depart"] {
        o.status(&o.admin, OWNER, change).await.assert_problem(403, "forbidden");
    }
    assert_eq!(o.member(OWNER).await["status"], "active");
    // The owner keeps signing in as themselves only: no SMS went to a number the admin chose.
    assert!(o.app.sms_to("+8613700137009").is_empty());

    // Nor a fellow admin's; nor may an admin make itself or anyone an owner or an admin.
    o.patch(&o.admin, OTHER_ADMIN, json!({"phone": "+8613700137008"})).await.assert_problem(403, "forbidden");
    o.status(&o.admin, OTHER_ADMIN, "disable").await.assert_problem(403, "forbidden");
    o.patch(&o.admin, ADMIN, json!({"role": "owner"})).await.assert_problem(403, "forbidden");
    o.patch(&o.admin, ENG_MEMBER, json!({"role": "owner"})).await.assert_problem(403, "forbidden");
    let new_owner = json!({"name": "X", "phone": "+8613700137007", "role": "owner"});
    o.app.post(&paths::members(), &o.admin, new_owner).await.assert_problem(403, "forbidden");
    assert_eq!(o.member(ADMIN).await["role"], "admin");
    assert_eq!(o.member(ENG_MEMBER).await["role"], "member");

    // Nor create an API key, which acts with an owner's rank.
    o.app.post(&paths::api_keys(), &o.admin, json!({"name": "mine"})).await.assert_problem(403, "forbidden");
    o.app.post(&paths::api_keys(), &o.owner, json!({"name": "hr"})).await.assert_status(201);

    // What an admin outranks, it may change; it may make admins, which it then no longer outranks.
    o.patch(&o.admin, ENG_MEMBER, json!({"phone": "+8613700137006"})).await.assert_status(200);
    o.status(&o.admin, OTHER_DEPT_ADMIN, "disable").await.assert_status(200);
    let scope = json!({"role": "department_admin", "admin_departments": [o.ent.root_department_id]});
    o.patch(&o.admin, SALES_MEMBER, scope).await.assert_status(200);
    o.patch(&o.admin, SALES_MEMBER, json!({"role": "admin"})).await.assert_status(200);
    o.patch(&o.admin, SALES_MEMBER, json!({"phone": "+8613700137005"})).await.assert_problem(403, "forbidden");
    o.patch(&o.admin, SALES_MEMBER, json!({"role": "member"})).await.assert_problem(403, "forbidden");

    // Even where nothing would change, a member above the caller's rank is out of its reach.
    o.status(&o.owner, OTHER_ADMIN, "disable").await.assert_status(200);
    o.status(&o.admin, OTHER_ADMIN, "disable").await.assert_problem(403, "forbidden");
}

#[tokio::test]
async fn a_department_admin_changes_only_members_inside_its_subtrees() {
    let o = org().await;
    o.patch(&o.dept_admin, SALES_MEMBER, json!({"title": "Seller"})).await.assert_problem(403, "forbidden");
    o.patch(&o.dept_admin, SALES_MEMBER, json!({"phone": "+8613700137001"})).await.assert_problem(403, "forbidden");
    o.status(&o.dept_admin, SALES_MEMBER, "disable").await.assert_problem(403, "forbidden");
    o.patch(&o.dept_admin, OTHER_DEPT_ADMIN, json!({"phone": "+8613700137002"})).await.assert_problem(403, "forbidden");
    o.patch(&o.dept_admin, OTHER_DEPT_ADMIN, json!({"title": "Boss"})).await.assert_problem(403, "forbidden");
    o.status(&o.dept_admin, OTHER_DEPT_ADMIN, "disable").await.assert_problem(403, "forbidden");
    o.patch(&o.dept_admin, ADMIN, json!({"phone": "+8613700137003"})).await.assert_problem(403, "forbidden");
    o.patch(
        &o.dept_admin,
        ENG_MEMBER,
        json!({"role": "department_admin", "admin_departments": [o.member(ENG_MEMBER).await["departments"][0]]}),
    )
    .await
    .assert_problem(403, "forbidden");
    assert_eq!(o.member(OTHER_DEPT_ADMIN).await["phone"], OTHER_DEPT_ADMIN);
    assert_eq!(o.member(OTHER_DEPT_ADMIN).await["status"], "invited");
    assert_eq!(o.member(SALES_MEMBER).await["phone"], SALES_MEMBER);
    // A member inside its subtree: yes.
    let changed = o.patch(&o.dept_admin, ENG_MEMBER, json!({"title": "Engineer", "phone": "+8613700137004"})).await;
    changed.assert_status(200);
    assert_eq!(changed.body["phone"], "+8613700137004");
    o.status(&o.dept_admin, ENG_MEMBER, "disable").await.assert_status(200);
}

#[tokio::test]
async fn an_owner_and_an_api_key_can_change_an_owner() {
    let o = org().await;
    o.patch(&o.owner, ADMIN, json!({"role": "owner"})).await.assert_status(200);
    let changed = o.patch(&o.owner, ADMIN, json!({"phone": "+8613700137005"})).await;
    changed.assert_status(200);
    assert_eq!(changed.body["role"], "owner");
    o.status(&o.owner, ADMIN, "disable").await.assert_status(200);
    o.status(&o.owner, ADMIN, "enable").await.assert_status(200);
    // An API key acts with an owner's rank (HR sync manages owners too).
    o.patch(&o.ent.key, ADMIN, json!({"title": "Co-founder", "phone": "+8613700137006"})).await.assert_status(200);
    o.patch(&o.ent.key, ADMIN, json!({"role": "admin"})).await.assert_status(200);
}

#[tokio::test]
async fn a_changed_number_signs_the_member_out_everywhere_and_tells_both_numbers() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    let old = "+8613900139001";
    let new = "+8613700137001";
    let member = app.add_member(&ent, "Zhang San", old).await;
    let id = member["id"].as_str().unwrap();
    let login = app.sign_in(old, 1).await;
    let token = access(&login);
    let refresh_token = login["session"]["refresh_token"].as_str().unwrap().to_string();
    app.get(&paths::me(), &token).await.assert_status(200);
    // An app signed in through the same session.
    let (client_id, secret) = confidential_app(&app, &ent).await;
    let jar = Arc::new(reqwest::cookie::Jar::default());
    jar.add_cookie_str(&format!("wg_access={token}; Path=/"), &app.base.parse().unwrap());
    let browser =
        reqwest::Client::builder().cookie_provider(jar).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (verifier, challenge) = pkce();
    let code = code_for(&app, &browser, &client_id, &challenge).await;
    let (status, tokens) = exchange(&app, &client_id, &secret, &code, &verifier).await;
    assert_eq!(status, 200, "{tokens}");
    let app_access = tokens["access_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &client_id, &secret, app_access).await["active"], true);

    app.patch_member(id, &ent.key, json!({"phone": new})).await.assert_status(200);

    app.get(&paths::me(), &token).await.assert_problem(401, "unauthorized");
    app.post_anon(&paths::token_refresh(), json!({"refresh_token": refresh_token}))
        .await
        .assert_problem(401, "unauthorized");
    let devices = app.get(&paths::member_devices(id), &ent.key).await;
    devices.assert_status(200);
    let states: Vec<&str> =
        devices.body["items"].as_array().unwrap().iter().map(|d| d["state"].as_str().unwrap()).collect();
    assert!(!states.is_empty() && states.iter().all(|s| *s == "revoked"), "{states:?}");
    assert_eq!(introspect(&app, &client_id, &secret, app_access).await, json!({"active": false}));
    let (_, refreshed) = refresh(&app, &client_id, &secret, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refreshed["error"], "invalid_grant");

    // Both numbers are told, through the outbox.
    let to_old = app.wait_for_sms(old, 3).await;
    assert!(to_old[2].body.contains("changed") && to_old[2].body.contains("Acme"), "{:?}", to_old[2].body);
    let to_new = app.wait_for_sms(new, 1).await;
    assert!(to_new[0].body.contains("Zhang San"), "{:?}", to_new[0].body);
    assert_eq!(sms_purposes(&app, old).await.last().map(String::as_str), Some("phone_changed"));
    assert_eq!(sms_purposes(&app, new).await, vec!["phone_changed"]);

    // The audit log records the change.
    let entries = app.audit(&ent, "action=member.update").await;
    let entry = entries.iter().find(|e| e["target"] == id).expect("an audit entry of the change");
    assert_eq!(entry["details"]["phone"], json!({"from": old, "to": new}));
    assert_eq!(entry["details"]["signed_out"], true);

    // The new number signs in (after the cooldown of its first SMS).
    clock.advance(Duration::from_secs(61));
    let again = app.sign_in(new, 1).await;
    app.get(&paths::me(), &access(&again)).await.assert_status(200);
}

#[tokio::test]
async fn a_number_changed_by_import_signs_the_member_out_too() {
    let (app, ent) = TestApp::with_acme().await;
    let old = "+8613900139001";
    let new = "+8613700137001";
    app.add_member_with(&ent, json!({"name": "Zhang San", "phone": old, "userid": "zsan"})).await;
    let token = access(&app.sign_in(old, 1).await);
    let csv = format!("userid,phone\nzsan,{new}\n");
    let reply = app.post_raw(&paths::members_import(), &ent.key, "text/csv", csv).await;
    assert_eq!(row_codes(&reply), vec![("updated".to_string(), String::new())], "{}", reply.text);
    app.get(&paths::me(), &token).await.assert_problem(401, "unauthorized");
    app.wait_for_sms(old, 3).await;
    app.wait_for_sms(new, 1).await;
    assert_eq!(sms_purposes(&app, new).await, vec!["phone_changed"]);
}

#[tokio::test]
async fn instant_re_sends_of_an_invitation_wait_out_the_cooldown() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    let phone = "+8613900139001";
    let member = app.add_member_with(&ent, json!({"name": "Zhang San", "phone": phone, "invite": false})).await;
    let path = paths::member_invitation(member["id"].as_str().unwrap());
    let mut statuses = vec![];
    for _ in 0..5 {
        let reply = app.post(&path, &ent.key, json!({})).await;
        if reply.status == 429 {
            reply.assert_problem(429, "rate_limited");
            let wait: i64 = reply.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait), "Retry-After {wait}");
        }
        statuses.push(reply.status.as_u16());
    }
    assert_eq!(statuses, vec![201, 429, 429, 429, 429]);
    app.wait_for_sms(phone, 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.sms_to(phone).len(), 1, "one SMS for five instant re-sends");
    assert_eq!(app.count("invitations").await, 1);

    // The invitation sent when a member is added starts the cooldown too.
    let other = "+8613900139002";
    let added = app.add_member(&ent, "Li Si", other).await;
    let other_path = paths::member_invitation(added["id"].as_str().unwrap());
    app.post(&other_path, &ent.key, json!({})).await.assert_problem(429, "rate_limited");

    // After the cooldown, a re-send goes out; the hourly cap (5 per number) still holds.
    let mut sent = 1;
    for _ in 0..6 {
        clock.advance(Duration::from_secs(61));
        if app.post(&path, &ent.key, json!({})).await.status == 201 {
            sent += 1;
        }
    }
    assert_eq!(sent, 5, "five invitations per number and hour");
    app.wait_for_sms(phone, 5).await;
}

#[tokio::test]
async fn the_enterprise_invitation_budget_defers_imported_invitations() {
    let clock = Arc::new(ManualClock::default());
    let app = TestApp::spawn_configured(|c| c.login.invitation_budget_enterprise_hour = 3, clock.clone()).await;
    let ent = app.enterprise("Acme", "13800138000").await;
    app.add_member(&ent, "First", "+8613900139000").await;
    let csv = "name,phone\n\
               A,139 0013 9001\n\
               B,139 0013 9002\n\
               C,139 0013 9003\n\
               D,139 0013 9004\n";
    let reply = app.post_raw(&paths::members_import(), &ent.key, "text/csv", csv.to_string()).await;
    reply.assert_status(200);
    assert_eq!(reply.body["created"], 4, "every member is created: {}", reply.text);
    assert_eq!(reply.body["invitations_deferred"], 2);
    let deferred: Vec<Value> = reply.body["rows"].as_array().unwrap().iter().map(|r| r["invitation"].clone()).collect();
    assert_eq!(deferred, vec![Value::Null, Value::Null, json!("deferred"), json!("deferred")]);
    assert_eq!(app.count("invitations").await, 3, "one on add, two from the import");
    assert_eq!(app.count("members").await, 6);
    app.wait_for_sms("+8613900139002", 1).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.sms_to("+8613900139003").is_empty() && app.sms_to("+8613900139004").is_empty());

    // The budget is spent: adding with an invitation waits, without one goes through; a re-send
    // of a deferred invitation waits too.
    app.post(&paths::members(), &ent.key, json!({"name": "E", "phone": "+8613900139005"}))
        .await
        .assert_problem(429, "rate_limited");
    app.post(&paths::members(), &ent.key, json!({"name": "E", "phone": "+8613900139005", "invite": false}))
        .await
        .assert_status(201);
    let c_id = reply.body["rows"][2]["member_id"].as_str().unwrap();
    let resend = paths::member_invitation(c_id);
    app.post(&resend, &ent.key, json!({})).await.assert_problem(429, "rate_limited");

    // An hour later the admin sends it.
    clock.advance(Duration::from_secs(3601));
    app.post(&resend, &ent.key, json!({})).await.assert_status(201);
    app.wait_for_sms("+8613900139003", 1).await;
}
