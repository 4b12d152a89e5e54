//! The console's edit forms save only what the admin changed: nothing the form did not show, and
//! nothing someone else changed after the page was opened, is lost. (The browser suite does the
//! same edits in Chromium; these check the server side on both databases.)

use super::helpers::{TestApp, strings};
use super::web::{PHONE, field, owner_browser, sign_in, text};
use crate::paths;
use serde_json::{Value, json};

/// The hidden `was` field of a page, as the browser sends it back.
fn shown(page: &str) -> String {
    field(page, "was").replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

async fn page(b: &reqwest::Client, app: &TestApp, path: &str) -> String {
    let (status, page) = text(b.get(app.url(path)).send().await.unwrap()).await;
    assert_eq!(status, 200, "{path}: {page}");
    page
}

/// A form as the browser sends it: the values the page showed (`was`), with `changes` typed or
/// ticked over them (a field given here replaces every value it had).
fn as_sent(csrf: &str, was: &str, changes: &[(&str, &[&str])]) -> Vec<(String, String)> {
    let mut out = vec![("csrf".to_string(), csrf.to_string()), ("was".to_string(), was.to_string())];
    for (k, v) in url::form_urlencoded::parse(was.as_bytes()) {
        if !changes.iter().any(|(c, _)| *c == k) {
            out.push((k.into_owned(), v.into_owned()));
        }
    }
    for (k, values) in changes {
        out.extend(values.iter().map(|v| (k.to_string(), v.to_string())));
    }
    out
}

/// Posts a form; answers the notice the console redirects with.
async fn submit(b: &reqwest::Client, app: &TestApp, path: &str, form: &[(String, String)]) -> String {
    let body = form.iter().map(|(k, v)| format!("{}={}", super::helpers::enc(k), super::helpers::enc(v)));
    let resp = b
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.collect::<Vec<_>>().join("&"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303, "{path}");
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let url = url::Url::parse(&app.url(&location)).expect("a redirect within the console");
    url.query_pairs().find(|(k, _)| k == "notice").map(|(_, v)| v.into_owned()).unwrap_or_default()
}

#[tokio::test]
async fn fixing_a_name_keeps_every_department_and_field_the_member_has() {
    let (app, ent) = TestApp::with_acme().await;
    let [eng, sales, ops] = app.add_departments(&ent, ["Engineering", "Sales", "Operations"]).await;
    let member = app
        .add_member_with(
            &ent,
            json!({"name": "Zhang Sna", "phone": PHONE, "email": "zs@acme.example", "title": "Engineer",
                   "departments": [eng, sales]}),
        )
        .await;
    let id = member["id"].as_str().unwrap();
    let (b, csrf) = owner_browser(&app).await;
    let path = format!("/admin/members/{id}");
    let form_page = page(&b, &app, &path).await;
    let was = shown(&form_page);
    assert!(
        form_page.contains(&format!("value=\"{eng}\" checked"))
            && form_page.contains(&format!("value=\"{sales}\" checked"))
    );

    // Meanwhile an HR sync puts the member in a third department.
    app.patch_member(id, &ent.key, json!({"departments": [eng, sales, ops]})).await.assert_status(200);

    // The admin fixes the typo and saves the form as the page showed it.
    let form = as_sent(&csrf, &was, &[("name", &["Zhang San"])]);
    assert_eq!(submit(&b, &app, &path, &form).await, "Saved.");
    let stored = app.get_member(id, &ent.key).await.body;
    assert_eq!(stored["name"], "Zhang San");
    assert_eq!(strings(&stored["departments"]), vec![eng.clone(), sales.clone(), ops.clone()]);
    assert_eq!(stored["email"], "zs@acme.example");
    assert_eq!(stored["title"], "Engineer");
    let audit = app.audit(&ent, "action=member.update").await;
    let changed: Vec<&String> = audit[0]["details"].as_object().unwrap().keys().collect();
    assert_eq!(changed, vec!["name"], "the audit log records the name alone: {}", audit[0]);

    // Then the departments: Sales unticked, Operations (ticked by nobody on this page) kept.
    let was = shown(&page(&b, &app, &path).await);
    let form = as_sent(&csrf, &was, &[("departments", &[&eng, &ops])]);
    assert_eq!(submit(&b, &app, &path, &form).await, "Saved.");
    let stored = app.get_member(id, &ent.key).await.body;
    assert_eq!(strings(&stored["departments"]), vec![eng.clone(), ops.clone()]);

    // A save that changes nothing writes nothing.
    let was = shown(&page(&b, &app, &path).await);
    let before = app.audit(&ent, "action=member.update").await.len();
    let form = as_sent(&csrf, &was, &[]);
    assert_eq!(submit(&b, &app, &path, &form).await, "Nothing changed.");
    assert_eq!(app.audit(&ent, "action=member.update").await.len(), before);
}

#[tokio::test]
async fn the_console_sets_email_role_and_administered_departments_within_the_callers_rank() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let member =
        app.add_member_with(&ent, json!({"name": "Li Si", "phone": "+8613900139002", "departments": [eng]})).await;
    let id = member["id"].as_str().unwrap();
    let (b, csrf) = owner_browser(&app).await;
    let path = format!("/admin/members/{id}");
    let form_page = page(&b, &app, &path).await;
    assert!(form_page.contains("name=\"role\"") && form_page.contains("name=\"admin_departments\""));
    let was = shown(&form_page);
    let form = as_sent(
        &csrf,
        &was,
        &[("email", &["li@acme.example"]), ("role", &["department_admin"]), ("admin_departments", &[&eng])],
    );
    assert_eq!(submit(&b, &app, &path, &form).await, "Saved.");
    let stored = app.get_member(id, &ent.key).await.body;
    assert_eq!(stored["email"], "li@acme.example");
    assert_eq!(stored["role"], "department_admin");
    assert_eq!(strings(&stored["admin_departments"]), vec![eng.clone()]);

    // Clearing the e-mail clears it.
    let was = shown(&page(&b, &app, &path).await);
    let form = as_sent(&csrf, &was, &[("email", &[""])]);
    submit(&b, &app, &path, &form).await;
    assert_eq!(app.get_member(id, &ent.key).await.body["email"], Value::Null);

    // The add form takes several departments, an e-mail and a role.
    let sales = app.add_department(&ent, "Sales", None).await;
    let form = as_sent(
        &csrf,
        "",
        &[
            ("name", &["Wang Wu"]),
            ("phone", &["13900139003"]),
            ("email", &["ww@acme.example"]),
            ("departments", &[&eng, &sales]),
            ("role", &["admin"]),
        ],
    );
    submit(&b, &app, "/admin/members", &form).await;
    let added = app.get(&paths::members_query("q=wang"), &ent.key).await.body["items"][0].clone();
    assert_eq!(strings(&added["departments"]), vec![eng.clone(), sales.clone()]);
    assert_eq!((added["email"].as_str(), added["role"].as_str()), (Some("ww@acme.example"), Some("admin")));
}

#[tokio::test]
async fn a_department_admins_save_keeps_the_departments_outside_their_subtrees() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let backend = app.add_department(&ent, "Backend", Some(&eng)).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    app.add_member_with(
        &ent,
        json!({"name": "Dept Admin", "phone": PHONE, "departments": [eng], "role": "department_admin",
               "admin_departments": [eng]}),
    )
    .await;
    let member = app
        .add_member_with(&ent, json!({"name": "Zhao Liu", "phone": "+8613900139004", "departments": [backend, sales]}))
        .await;
    let id = member["id"].as_str().unwrap();
    let b = sign_in(&app, 1).await;
    let path = format!("/admin/members/{id}");
    let form_page = page(&b, &app, &path).await;
    assert!(!form_page.contains(&format!("value=\"{sales}\"")), "Sales is outside this admin's view");
    assert!(!form_page.contains("name=\"role\""), "a department admin gives no roles");
    assert!(form_page.contains("saving keeps them"), "the page says the other departments are kept");
    let csrf = field(&form_page, "csrf");
    let was = shown(&form_page);
    let form = as_sent(&csrf, &was, &[("name", &["Zhao Liu (Backend)"])]);
    assert_eq!(submit(&b, &app, &path, &form).await, "Saved.");
    let stored = app.get_member(id, &ent.key).await.body;
    assert_eq!(stored["name"], "Zhao Liu (Backend)");
    assert_eq!(strings(&stored["departments"]), vec![backend.clone(), sales.clone()]);

    // Their own root department: the parent is outside their view, so the form offers no parent
    // and saving the name leaves the department where it is.
    let dep_path = format!("/admin/departments/{eng}");
    let dep_page = page(&b, &app, &dep_path).await;
    assert!(!dep_page.contains("name=\"parent_id\""));
    let was = shown(&dep_page);
    let form = as_sent(&csrf, &was, &[("name", &["R&D"])]);
    let notice = submit(&b, &app, &dep_path, &form).await;
    let stored = app.get(&paths::department(&eng), &ent.key).await.body;
    assert_eq!(stored["name"], "R&D", "{notice}");
    assert_eq!(stored["parent_id"], ent.root_department_id.as_str());
}

#[tokio::test]
async fn the_policy_form_changes_only_the_fields_touched() {
    let (app, ent) = TestApp::with_acme().await;
    // Signed in first: once new devices wait for approval, the owner's browser would wait too.
    let (b, csrf) = owner_browser(&app).await;
    let mut policy = app.get(&paths::policy(), &ent.key).await.body;
    policy.as_object_mut().unwrap().remove("updated_at");
    policy["allowed_regions"] = json!(["CN", "HK"]);
    policy["require_device_approval"] = json!(true);
    app.request(reqwest::Method::PUT, &paths::policy(), Some(&ent.key), Some(policy.clone())).await.assert_status(200);
    let form_page = page(&b, &app, "/admin/policy").await;
    let was = shown(&form_page);
    // Meanwhile another admin shortens the idle timeout through the API.
    policy["idle_timeout_days"] = json!(7);
    app.request(reqwest::Method::PUT, &paths::policy(), Some(&ent.key), Some(policy)).await.assert_status(200);
    let form = as_sent(&csrf, &was, &[("max_devices", &["3"])]);
    assert_eq!(submit(&b, &app, "/admin/policy", &form).await, "Policy saved.");
    let stored = app.get(&paths::policy(), &ent.key).await.body;
    assert_eq!(stored["max_devices"], 3);
    assert_eq!(stored["idle_timeout_days"], 7, "the other admin's change stands");
    assert_eq!(stored["allowed_regions"], json!(["CN", "HK"]));
    assert_eq!(stored["require_device_approval"], true);
    // A changed field that is not a number is explained and saves nothing.
    let was = shown(&page(&b, &app, "/admin/policy").await);
    let form = as_sent(&csrf, &was, &[("max_devices", &["three"])]);
    let notice = submit(&b, &app, "/admin/policy", &form).await;
    assert!(notice.contains("max_devices"), "{notice}");
    assert_eq!(app.get(&paths::policy(), &ent.key).await.body, stored);
}

#[tokio::test]
async fn the_app_form_edits_what_the_api_can_and_keeps_the_rest() {
    let (app, ent) = TestApp::with_acme().await;
    let created = app
        .post(
            &paths::apps(),
            &ent.key,
            json!({"name": "Wiki", "redirect_uris": ["https://wiki.example.com/cb", "https://wiki.example.com/cb2"],
                   "post_logout_redirect_uris": ["https://wiki.example.com/bye"], "scopes": ["openid", "phone"]}),
        )
        .await;
    created.assert_status(201);
    let id = created.body["id"].as_str().unwrap();
    let (b, csrf) = owner_browser(&app).await;
    let path = format!("/admin/apps/{id}");
    let form_page = page(&b, &app, &path).await;
    let was = shown(&form_page);
    // A browser sends a textarea's lines with CRLF.
    let form = as_sent(
        &csrf,
        &was,
        &[
            ("name", &["Team Wiki"]),
            ("redirect_uris", &["https://wiki.example.com/cb\r\nhttps://wiki.example.com/cb2"]),
        ],
    );
    assert_eq!(submit(&b, &app, &path, &form).await, "Saved.");
    let stored = app.get(&paths::app(id), &ent.key).await.body;
    assert_eq!(stored["name"], "Team Wiki");
    assert_eq!(stored["redirect_uris"], json!(["https://wiki.example.com/cb", "https://wiki.example.com/cb2"]));
    assert_eq!(stored["post_logout_redirect_uris"], json!(["https://wiki.example.com/bye"]));
    assert_eq!(stored["scopes"], json!(["openid", "phone"]));
    // Scopes and redirect URIs by ticks and lines.
    let was = shown(&page(&b, &app, &path).await);
    let form = as_sent(
        &csrf,
        &was,
        &[("redirect_uris", &["https://wiki.example.com/cb"]), ("scopes", &["openid", "profile", "phone"])],
    );
    submit(&b, &app, &path, &form).await;
    let stored = app.get(&paths::app(id), &ent.key).await.body;
    assert_eq!(stored["redirect_uris"], json!(["https://wiki.example.com/cb"]));
    assert_eq!(stored["scopes"], json!(["openid", "profile", "phone"]));
}

#[tokio::test]
async fn an_unknown_status_action_is_refused_and_never_taken_for_departing() {
    let (app, ent) = TestApp::with_acme().await;
    let member = app.add_member(&ent, "Zhang San", PHONE).await;
    let id = member["id"].as_str().unwrap();
    let (b, csrf) = owner_browser(&app).await;
    let resp = b.get(format!("{}/admin/members/{id}/status?action=archive", app.base)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303, "no confirmation page for an action that does not exist");
    assert!(resp.headers()["location"].to_str().unwrap().starts_with(&format!("/admin/members/{id}?notice=")));
    let page = page(&b, &app, &format!("/admin/members/{id}/status?action=depart")).await;
    assert!(page.contains("name=\"action\" value=\"depart\""));
    let form = vec![("csrf".to_string(), csrf.clone()), ("action".to_string(), "archive".to_string())];
    submit(&b, &app, &format!("/admin/members/{id}/status"), &form).await;
    // A device action that does not exist is not a route.
    let resp = b
        .post(format!("{}/admin/members/{id}/devices/dev_x/wipe", app.base))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert_eq!(app.get_member(id, &ent.key).await.body["status"], "invited");
}

#[tokio::test]
async fn the_department_tree_beside_the_members_lists_a_department_with_its_sub_departments() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let backend = app.add_department(&ent, "Backend", Some(&eng)).await;
    let sales = app.add_department(&ent, "Sales", None).await;
    for (name, phone, department) in [
        ("Eng Lead", "+8613900139001", &eng),
        ("Backend Dev", "+8613900139002", &backend),
        ("Sales Rep", "+8613900139003", &sales),
    ] {
        app.add_member_with(&ent, json!({"name": name, "phone": phone, "departments": [department]})).await;
    }
    let (b, _) = owner_browser(&app).await;
    let everyone = page(&b, &app, "/admin/members").await;
    let tree = everyone.split("<nav class=\"departments\"").nth(1).expect("the tree beside the list");
    for id in [&eng, &backend, &sales] {
        assert!(tree.contains(&format!("href=\"/admin/members?department={id}\"")), "{id} in the tree");
    }
    assert!(everyone.contains("Sales Rep") && everyone.contains("Backend Dev"));

    // A click on Engineering lists it and its sub-department, and marks it as the one shown.
    let engineering = page(&b, &app, &format!("/admin/members?department={eng}")).await;
    assert!(engineering.contains("Eng Lead") && engineering.contains("Backend Dev"), "{engineering}");
    assert!(!engineering.contains("Sales Rep"), "another department's member is not listed");
    assert!(engineering.contains(&format!("href=\"/admin/members?department={eng}\" aria-current=\"page\"")));
    let backend_only = page(&b, &app, &format!("/admin/members?department={backend}")).await;
    assert!(backend_only.contains("Backend Dev") && !backend_only.contains("Eng Lead"));
}
