//! Bulk import (`POST /members/import`): CSV and JSON, per-row results, departments by path,
//! idempotence, matching by userid or phone.

use crate::helpers::{Reply, TestApp, TestEnterprise};
use crate::paths;
use serde_json::{Value, json};

async fn import_csv(app: &TestApp, ent: &TestEnterprise, csv: &str) -> Reply {
    app.post_raw(&paths::members_import(), &ent.key, "text/csv", csv.to_string()).await
}

fn counts(r: &Reply) -> (i64, i64, i64, i64) {
    let n = |k: &str| r.body[k].as_i64().unwrap_or(-1);
    (n("created"), n("updated"), n("unchanged"), n("failed"))
}

fn statuses(r: &Reply) -> Vec<String> {
    r.body["rows"].as_array().unwrap().iter().map(|row| row["status"].as_str().unwrap().to_string()).collect()
}

async fn departments(app: &TestApp, ent: &TestEnterprise) -> Vec<Value> {
    app.get(&paths::departments(), &ent.key).await.body["items"].as_array().unwrap().clone()
}

/// The department at `path` below the root, by walking names.
fn department_at(deps: &[Value], root: &str, path: &str) -> Option<String> {
    let mut current = root.to_string();
    for name in path.split('/') {
        current =
            deps.iter().find(|d| d["parent_id"] == current.as_str() && d["name"] == name)?["id"].as_str()?.to_string();
    }
    Some(current)
}

const STAFF: &str = "userid,name,phone,email,title,departments\n\
    zwei,Zhang Wei,139 0013 9001,zw@example.com,Engineer,Engineering/Backend\n\
    lina,Li Na,+86 137-0013-7002,,Lead,Engineering/Backend;Sales\n\
    wfang,Wang Fang,0086 13600136003,,,Sales/East\n";

#[tokio::test]
async fn a_csv_import_creates_members_and_their_departments_by_path() {
    let (app, ent) = TestApp::with_acme().await;
    let reply = import_csv(&app, &ent, STAFF).await;
    reply.assert_status(200);
    assert_eq!(counts(&reply), (3, 0, 0, 0), "{}", reply.text);
    let rows = reply.body["rows"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["row"].as_i64().unwrap()).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(rows.iter().all(|r| r["member_id"].as_str().is_some_and(|id| id.starts_with("mem_"))));

    let deps = departments(&app, &ent).await;
    assert_eq!(deps.len(), 5, "root, Engineering, Engineering/Backend, Sales, Sales/East: each once");
    let root = &ent.root_department_id;
    let backend = department_at(&deps, root, "Engineering/Backend").expect("Engineering/Backend created");
    let sales = department_at(&deps, root, "Sales").expect("Sales created");
    let east = department_at(&deps, root, "Sales/East").expect("Sales/East created");

    let li = app.get_member(rows[1]["member_id"].as_str().unwrap(), &ent.key).await;
    assert_eq!(li.body["userid"], "lina");
    assert_eq!(li.body["phone"], "+8613700137002");
    assert_eq!(li.body["departments"], json!([backend, sales]));
    assert_eq!(li.body["title"], "Lead");
    assert!(li.body["email"].is_null());
    let wang = app.get_member(rows[2]["member_id"].as_str().unwrap(), &ent.key).await;
    assert_eq!(wang.body["departments"], json!([east]));
    assert_eq!(wang.body["phone"], "+8613600136003");
    assert_eq!(wang.body["status"], "invited");

    let engineering = department_at(&deps, root, "Engineering").unwrap();
    let under_eng = app.all_members(&ent, &format!("department={engineering}"), 50).await;
    assert_eq!(under_eng.len(), 2);
}

#[tokio::test]
async fn a_bad_row_fails_alone_with_its_reason() {
    let (app, ent) = TestApp::with_acme().await;
    let csv = "userid,name,phone,departments\n\
        a1,Good One,13900139001,Ops\n\
        a2,Landline,010 6552 9988,Broken\n\
        a3,,13900139003,\n\
        _bad,Bad Userid,13900139004,\n\
        a5,Good Two,13900139005,Ops/Night\n";
    let reply = import_csv(&app, &ent, csv).await;
    reply.assert_status(200);
    assert_eq!(counts(&reply), (2, 0, 0, 3), "{}", reply.text);
    assert_eq!(statuses(&reply), vec!["created", "failed", "failed", "failed", "created"]);
    let rows = reply.body["rows"].as_array().unwrap();
    assert_eq!(rows[1]["error"]["code"], "invalid_phone");
    assert!(rows[1].get("member_id").is_none());
    assert_eq!(rows[2]["error"]["code"], "validation_failed");
    assert_eq!(rows[2]["error"]["errors"][0]["field"], "name");
    assert_eq!(rows[3]["error"]["code"], "validation_failed");
    assert_eq!(rows[3]["error"]["errors"][0]["field"], "userid");

    assert_eq!(app.count("members").await, 3, "owner and the two good rows");
    let deps = departments(&app, &ent).await;
    assert!(department_at(&deps, &ent.root_department_id, "Broken").is_none(), "a failed row creates no department");
    assert!(department_at(&deps, &ent.root_department_id, "Ops/Night").is_some());
}

#[tokio::test]
async fn reimporting_the_same_file_changes_nothing() {
    let (app, ent) = TestApp::with_acme().await;
    import_csv(&app, &ent, STAFF).await.assert_status(200);
    let before = app.snapshot().await;
    let again = import_csv(&app, &ent, STAFF).await;
    again.assert_status(200);
    assert_eq!(counts(&again), (0, 0, 3, 0), "{}", again.text);
    assert_eq!(statuses(&again), vec!["unchanged"; 3]);
    assert_eq!(app.snapshot().await, before, "not a row, not an audit entry");
}

#[tokio::test]
async fn reimporting_a_file_with_a_bad_row_changes_nothing() {
    let (app, ent) = TestApp::with_acme().await;
    let csv = "userid,name,phone\nok,Good,13900139001\nbad,Bad,12\n";
    let first = import_csv(&app, &ent, csv).await;
    assert_eq!(counts(&first), (1, 0, 0, 1));
    let before = app.snapshot().await;
    let again = import_csv(&app, &ent, csv).await;
    assert_eq!(counts(&again), (0, 0, 1, 1));
    assert_eq!(app.snapshot().await, before, "nothing changed, so nothing is audited either");
}

#[tokio::test]
async fn an_import_updates_a_member_matched_by_userid() {
    let (app, ent) = TestApp::with_acme().await;
    import_csv(&app, &ent, STAFF).await.assert_status(200);
    let csv = "userid,name,phone,title\nZWEI,Zhang Wei Jr,139 0013 9001,Staff Engineer\nlina,Li Na,13700137002,Lead\n";
    let reply = import_csv(&app, &ent, csv).await;
    assert_eq!(counts(&reply), (0, 1, 1, 0), "{}", reply.text);
    let id = reply.body["rows"][0]["member_id"].as_str().unwrap();
    let m = app.get_member(id, &ent.key).await;
    assert_eq!(m.body["name"], "Zhang Wei Jr");
    assert_eq!(m.body["title"], "Staff Engineer");
    assert_eq!(m.body["email"], "zw@example.com", "a column not in the file is left alone");
    assert_eq!(m.body["userid"], "ZWEI", "the file's spelling of the userid wins");
    let updates = app.audit(&ent, "action=member.update").await;
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0]["target"], id);
    assert_eq!(updates[0]["details"]["via"], "import");
}

#[tokio::test]
async fn an_import_without_userids_updates_a_member_matched_by_phone() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let reply = import_csv(&app, &ent, "name,phone,title\nZhang San,+86 139 0013 9001,Manager\n").await;
    assert_eq!(counts(&reply), (0, 1, 0, 0), "{}", reply.text);
    assert_eq!(reply.body["rows"][0]["member_id"], m["id"]);
    let after = app.get_member(m["id"].as_str().unwrap(), &ent.key).await;
    assert_eq!(after.body["title"], "Manager");
    assert_eq!(after.body["userid"], m["userid"], "the generated userid stays");
}

#[tokio::test]
async fn a_row_with_an_unknown_userid_does_not_take_over_the_member_holding_its_phone() {
    // A row that names a userid is matched by that userid only (as WeCom's sync does): a number
    // that belongs to someone else is a conflict, never a silent rename of that member.
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member_with(&ent, json!({"name": "Zhang San", "phone": "13900139001", "userid": "zs"})).await;
    let before = app.snapshot().await;
    let reply = import_csv(&app, &ent, "userid,name,phone\nsomeone,Someone Else,13900139001\n").await;
    assert_eq!(counts(&reply), (0, 0, 0, 1), "{}", reply.text);
    assert_eq!(reply.body["rows"][0]["error"]["code"], "conflict");
    assert!(reply.body["rows"][0]["error"]["detail"].as_str().unwrap().contains("+8613900139001"));
    assert!(reply.body["rows"][0].get("member_id").is_none());
    assert_eq!(app.snapshot().await, before);
    let after = app.get_member(m["id"].as_str().unwrap(), &ent.key).await;
    assert_eq!(after.body["userid"], "zs");
}

#[tokio::test]
async fn a_row_taking_another_members_phone_fails() {
    let (app, ent) = TestApp::with_acme().await;
    import_csv(&app, &ent, STAFF).await.assert_status(200);
    let before = app.snapshot().await;
    // lina tries to take zwei's number; a new userid with the owner's number.
    let reply = import_csv(&app, &ent, "userid,name,phone\nlina,Li Na,13900139001\n").await;
    assert_eq!(counts(&reply), (0, 0, 0, 1), "{}", reply.text);
    assert_eq!(reply.body["rows"][0]["error"]["code"], "conflict");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn duplicates_within_one_file_fail_from_the_second_row() {
    let (app, ent) = TestApp::with_acme().await;
    let csv = "userid,name,phone\nx1,First,13900139001\nx2,Second,139-0013-9001\nX1,Third,13900139003\n";
    let reply = import_csv(&app, &ent, csv).await;
    // Row 3 names x1 again (ignoring case): it is the member of row 1, updated.
    assert_eq!(statuses(&reply), vec!["created", "failed", "updated"], "{}", reply.text);
    assert_eq!(reply.body["rows"][1]["error"]["code"], "conflict");
    assert_eq!(reply.body["rows"][2]["member_id"], reply.body["rows"][0]["member_id"]);
    assert_eq!(app.count("members").await, 2);
}

#[tokio::test]
async fn a_json_import_creates_and_updates_with_department_ids() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let body = json!({"members": [
        {"userid": "zwei", "name": "Zhang Wei", "phone": "13900139001", "departments": [eng]},
        {"name": "Li Na", "phone": "+86 137 0013 7002", "email": "li@example.com"},
        {"name": "Broken", "phone": "13900139003", "departments": ["dep_00000000000000000000000000000000"]}
    ]});
    let reply = app.post(&paths::members_import(), &ent.key, body.clone()).await;
    reply.assert_status(200);
    assert_eq!(counts(&reply), (2, 0, 0, 1), "{}", reply.text);
    assert_eq!(reply.body["rows"][2]["error"]["code"], "validation_failed");
    let zwei = app.get_member(reply.body["rows"][0]["member_id"].as_str().unwrap(), &ent.key).await;
    assert_eq!(zwei.body["departments"], json!([eng]));

    let again = app.post(&paths::members_import(), &ent.key, body).await;
    assert_eq!(counts(&again), (0, 0, 2, 1));

    let update = json!({"members": [{"userid": "zwei", "name": "Zhang Wei", "phone": "13900139001", "title": "CTO"}]});
    let reply = app.post(&paths::members_import(), &ent.key, update).await;
    assert_eq!(counts(&reply), (0, 1, 0, 0));
    let zwei = app.get_member(reply.body["rows"][0]["member_id"].as_str().unwrap(), &ent.key).await;
    assert_eq!(zwei.body["title"], "CTO");
    assert_eq!(zwei.body["departments"], json!([eng]), "departments absent: left alone");
}

#[tokio::test]
async fn an_import_is_audited_with_its_counts() {
    let (app, ent) = TestApp::with_acme().await;
    import_csv(&app, &ent, STAFF).await.assert_status(200);
    let key_id = app.first_key_id(&ent).await;
    let summary = app.audit(&ent, "action=member.import").await;
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0]["details"], json!({"created": 3, "updated": 0, "unchanged": 0, "failed": 0}));
    assert_eq!(summary[0]["actor"], format!("api_key:{key_id}"));
    let created = app.audit(&ent, "action=member.create").await;
    assert_eq!(created.iter().filter(|e| e["details"]["via"] == "import").count(), 3);
    let deps = app.audit(&ent, "action=department.create").await;
    assert_eq!(deps.len(), 4);
}

#[tokio::test]
async fn an_unsupported_content_type_is_415_and_changes_nothing() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    for ct in ["text/plain", "application/xml", "multipart/form-data; boundary=x"] {
        let reply = app.post_raw(&paths::members_import(), &ent.key, ct, STAFF.to_string()).await;
        reply.assert_problem(415, "unsupported_media_type");
    }
    let reply = app.send_raw(reqwest::Method::POST, &paths::members_import(), &ent.key, None, STAFF.to_string()).await;
    reply.assert_problem(415, "unsupported_media_type");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_csv_with_an_unknown_column_or_a_json_with_an_unknown_field_is_refused_whole() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    let reply = import_csv(&app, &ent, "userid,name,phone,salary\nx,X,13900139001,100\n").await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(reply.error_fields(), vec!["file"]);
    let reply = import_csv(&app, &ent, "userid,name,phone,phone\nx,X,13900139001,13900139001\n").await;
    reply.assert_problem(422, "validation_failed");
    let reply = import_csv(&app, &ent, "userid,name,phone\nx,X\n").await;
    reply.assert_problem(422, "validation_failed");
    let reply = app
        .post(
            &paths::members_import(),
            &ent.key,
            json!({"members": [{"name": "X", "phone": "13900139001", "salary": 1}]}),
        )
        .await;
    reply.assert_problem(422, "validation_failed");
    let reply = app.post(&paths::members_import(), &ent.key, json!({"people": []})).await;
    reply.assert_problem(422, "validation_failed");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn a_csv_with_a_byte_order_mark_and_crlf_line_ends_is_read() {
    let (app, ent) = TestApp::with_acme().await;
    let csv = "\u{feff}UserID,Name,Phone\r\nx1,First,13900139001\r\n";
    let reply = import_csv(&app, &ent, csv).await;
    reply.assert_status(200);
    assert_eq!(counts(&reply), (1, 0, 0, 0), "{}", reply.text);
}

#[tokio::test]
async fn an_import_does_not_revive_a_departed_member() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member_with(&ent, json!({"name": "Gone", "phone": "13900139001", "userid": "gone"})).await;
    let id = m["id"].as_str().unwrap();
    app.post(&paths::member_depart(id), &ent.key, json!({})).await.assert_status(200);
    let reply = import_csv(&app, &ent, "userid,name,phone\ngone,Back Again,13900139001\n").await;
    assert_eq!(counts(&reply), (1, 0, 0, 0), "{}", reply.text);
    assert_ne!(reply.body["rows"][0]["member_id"], m["id"], "a new member");
    let old = app.get_member(id, &ent.key).await;
    assert_eq!(old.body["status"], "departed");
    assert_eq!(old.body["name"], "Gone");
}

#[tokio::test]
async fn a_json_import_takes_the_fields_of_post_members() {
    let (app, ent) = TestApp::with_acme().await;
    let eng = app.add_department(&ent, "Engineering", None).await;
    let body = json!({"members": [
        {"name": "Ada", "phone": "13900139001", "userid": "ada", "role": "admin", "invite": false},
        {"name": "Bob", "phone": "13900139002", "userid": "bob", "role": "department_admin", "admin_departments": [eng]},
        {"name": "Cat", "phone": "13900139003", "userid": "cat", "role": "department_admin"}
    ]});
    let reply = app.post(&paths::members_import(), &ent.key, body.clone()).await;
    reply.assert_status(200);
    assert_eq!(counts(&reply), (2, 0, 0, 1), "{}", reply.text);
    assert_eq!(reply.body["rows"][2]["error"]["errors"][0]["field"], "admin_departments");
    let ada = app.get_member(reply.body["rows"][0]["member_id"].as_str().unwrap(), &ent.key).await;
    assert_eq!(ada.body["role"], "admin");
    let bob = app.get_member(reply.body["rows"][1]["member_id"].as_str().unwrap(), &ent.key).await;
    assert_eq!(bob.body["role"], "department_admin");
    assert_eq!(bob.body["admin_departments"], json!([eng]));

    let again = app.post(&paths::members_import(), &ent.key, body).await;
    assert_eq!(counts(&again), (0, 0, 2, 1));

    // A role is changed by import like any field, under the same rules: the last owner stays.
    let demote = json!({"members": [{"userid": "ada", "name": "Ada", "phone": "13900139001", "role": "member"}]});
    let reply = app.post(&paths::members_import(), &ent.key, demote).await;
    assert_eq!(counts(&reply), (0, 1, 0, 0), "{}", reply.text);
    let owner = app.get_member(&ent.owner_id, &ent.key).await;
    let owner_userid = owner.body["userid"].as_str().unwrap();
    let demote_owner =
        json!({"members": [{"userid": owner_userid, "name": "Acme Owner", "phone": "13800138000", "role": "admin"}]});
    let before = app.snapshot().await;
    let reply = app.post(&paths::members_import(), &ent.key, demote_owner).await;
    assert_eq!(counts(&reply), (0, 0, 0, 1), "{}", reply.text);
    assert_eq!(reply.body["rows"][0]["error"]["code"], "conflict");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn imported_members_are_invited_by_sms_once_unless_a_row_says_not_to() {
    let (app, ent) = TestApp::with_acme().await;
    import_csv(&app, &ent, "name,phone\nZhang San,13900139001\nLi Si,13900139002\n").await.assert_status(200);
    let json = json!({"members": [
        {"name": "Wang Wu", "phone": "13900139003"},
        {"name": "Zhao Liu", "phone": "13900139004", "invite": false},
    ]});
    app.post(&paths::members_import(), &ent.key, json).await.assert_status(200);
    for phone in ["+8613900139001", "+8613900139002", "+8613900139003"] {
        let sms = app.wait_for_sms(phone, 1).await;
        assert!(sms[0].body.contains("/i/"), "an invitation link: {}", sms[0].body);
    }
    // Re-importing invites nobody again; the member who was not to be invited got nothing.
    import_csv(&app, &ent, "name,phone\nZhang San,13900139001\nLi Si,13900139002\n").await.assert_status(200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.sms_to("+8613900139001").len(), 1);
    assert!(app.sms_to("+8613900139004").is_empty());
    assert_eq!(app.count("invitations").await, 3);
    // The invitation works: it previews the enterprise and its state is visible to admins.
    let listed = app.get(&paths::members_query("q=Zhang"), &ent.key).await;
    let id = listed.body["items"][0]["id"].as_str().unwrap().to_string();
    let invitations = app.get(&paths::member_invitations(&id), &ent.key).await;
    assert_eq!(invitations.body["items"][0]["state"], "pending", "{}", invitations.text);
}
