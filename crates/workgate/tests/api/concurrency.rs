//! Concurrent admins: the database, not luck, keeps the rules.

use crate::helpers::{Reply, TestApp};
use crate::paths;
use reqwest::Method;
use serde_json::{Value, json};

/// Sends the requests at once and returns the replies in the same order.
async fn all_at_once(app: &TestApp, key: &str, requests: Vec<(Method, String, Value)>) -> Vec<Reply> {
    let mut set = tokio::task::JoinSet::new();
    for (i, (method, path, body)) in requests.into_iter().enumerate() {
        let req = app.client.request(method, format!("{}{}", app.base, path)).bearer_auth(key).json(&body);
        set.spawn(async move { (i, TestApp::read(req.send().await.expect("request sent")).await) });
    }
    let mut replies: Vec<(usize, Reply)> = set.join_all().await;
    replies.sort_by_key(|(i, _)| *i);
    replies.into_iter().map(|(_, r)| r).collect()
}

fn statuses(replies: &[Reply]) -> Vec<u16> {
    let mut s: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    s.sort();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_parallel_adds_of_one_number_make_exactly_one_member() {
    let (app, ent) = TestApp::with_acme().await;
    let forms = ["13900139001", "+86 139 0013 9001", "139-0013-9001", "0086 13900139001", "+8613900139001"];
    let requests = (0..10)
        .map(|i| (Method::POST, paths::members(), json!({"name": format!("Racer {i}"), "phone": forms[i % 5]})))
        .collect();
    let replies = all_at_once(&app, &ent.key, requests).await;
    assert_eq!(statuses(&replies), [vec![201], vec![409; 9]].concat());
    for r in replies.iter().filter(|r| r.status.as_u16() == 409) {
        r.assert_problem(409, "conflict");
    }
    assert_eq!(app.count("members").await, 2, "the owner and one racer");
    assert_eq!(app.audit(&ent, "action=member.create").await.len(), 2, "one audit entry per member written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_adds_of_one_userid_in_different_cases_make_exactly_one_member() {
    let (app, ent) = TestApp::with_acme().await;
    let requests = (0..8)
        .map(|i| {
            let userid = if i % 2 == 0 { "ZhangSan" } else { "zhangsan" };
            (
                Method::POST,
                paths::members(),
                json!({"name": "Z", "phone": format!("1390013{:04}", 9000 + i), "userid": userid}),
            )
        })
        .collect();
    let replies = all_at_once(&app, &ent.key, requests).await;
    assert_eq!(statuses(&replies), [vec![201], vec![409; 7]].concat());
    assert_eq!(app.count("members").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_demotions_of_the_two_owners_leave_one_standing() {
    let (app, ent) = TestApp::with_acme().await;
    for round in 0..5 {
        let second = app
            .add_member_with(
                &ent,
                json!({"name": "Second", "phone": format!("1390013{:04}", 9000 + round), "role": "owner"}),
            )
            .await;
        let owners = [ent.owner_id.clone(), second["id"].as_str().unwrap().to_string()];
        let requests = owners.iter().map(|id| (Method::PATCH, paths::member(id), json!({"role": "admin"}))).collect();
        let replies = all_at_once(&app, &ent.key, requests).await;
        assert_eq!(statuses(&replies), vec![200, 409], "round {round}");
        let standing = app.all_members(&ent, "", 100).await.into_iter().filter(|m| m["role"] == "owner").count();
        assert_eq!(standing, 1, "round {round}");
        // Put things back as they were: the original owner is the one owner, the second leaves.
        let demoted_first = replies[0].status.as_u16() == 200;
        if demoted_first {
            app.patch_member(&owners[0], &ent.key, json!({"role": "owner"})).await.assert_status(200);
            app.patch_member(&owners[1], &ent.key, json!({"role": "admin"})).await.assert_status(200);
        }
        app.post(&paths::member_depart(&owners[1]), &ent.key, json!({})).await.assert_status(200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_disable_and_depart_of_the_two_owners_leave_one_standing() {
    let (app, ent) = TestApp::with_acme().await;
    let second = app.add_member_with(&ent, json!({"name": "Second", "phone": "13900139001", "role": "owner"})).await;
    let second = second["id"].as_str().unwrap().to_string();
    let requests = vec![
        (Method::POST, paths::member_disable(&ent.owner_id), json!({})),
        (Method::POST, paths::member_depart(&second), json!({})),
    ];
    let replies = all_at_once(&app, &ent.key, requests).await;
    assert_eq!(statuses(&replies), vec![200, 409]);
    let standing = app
        .all_members(&ent, "", 100)
        .await
        .into_iter()
        .filter(|m| m["role"] == "owner" && (m["status"] == "invited" || m["status"] == "active"))
        .count();
    assert_eq!(standing, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_admins_putting_back_one_read_policy_at_once_leave_one_change() {
    let (app, ent) = TestApp::with_acme().await;
    let mut read = app.get(&paths::policy(), &ent.key).await.body;
    read["require_password"] = json!(true);
    let base = app.request(Method::PUT, &paths::policy(), Some(&ent.key), Some(read)).await;
    base.assert_status(200);
    let requests = (0..8)
        .map(|i| {
            let mut changed = base.body.clone();
            changed["max_devices"] = json!(2 + i);
            (Method::PUT, paths::policy(), changed)
        })
        .collect();
    let replies = all_at_once(&app, &ent.key, requests).await;
    assert_eq!(statuses(&replies), [vec![200], vec![409; 7]].concat());
    let winner = replies.iter().find(|r| r.status.as_u16() == 200).expect("one change stands");
    let now = app.get(&paths::policy(), &ent.key).await.body;
    assert_eq!(now["max_devices"], winner.body["max_devices"]);
    assert_eq!(now["updated_at"], winner.body["updated_at"]);
    assert_eq!(app.audit(&ent, "action=policy.update").await.len(), 2, "one audit entry per change stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_creates_of_one_department_name_make_one_department() {
    let (app, ent) = TestApp::with_acme().await;
    let requests = (0..6).map(|_| (Method::POST, paths::departments(), json!({"name": "Engineering"}))).collect();
    let replies = all_at_once(&app, &ent.key, requests).await;
    assert_eq!(statuses(&replies), [vec![201], vec![409; 5]].concat());
    assert_eq!(app.count("departments").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_imports_of_one_file_create_each_member_once() {
    let (app, ent) = TestApp::with_acme().await;
    let csv = "userid,name,phone,departments\na,A,13900139001,Ops\nb,B,13900139002,Ops\nc,C,13900139003,Ops/Night\n";
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let req = app
            .client
            .post(app.url(&paths::members_import()))
            .bearer_auth(&ent.key)
            .header("content-type", "text/csv")
            .body(csv);
        set.spawn(async move { TestApp::read(req.send().await.expect("sent")).await });
    }
    let replies = set.join_all().await;
    for r in &replies {
        r.assert_status(200);
    }
    let created: i64 = replies.iter().map(|r| r.body["created"].as_i64().unwrap()).sum();
    assert_eq!(created, 3, "each row created by exactly one of the imports");
    assert_eq!(app.count("members").await, 4);
    assert_eq!(app.count("departments").await, 3, "root, Ops, Ops/Night — once each");
    // The imports that lost the race find the rows already written: unchanged, not failed.
    for r in &replies {
        assert_eq!(r.body["failed"], 0, "{}", r.text);
        assert_eq!(r.body["created"].as_i64().unwrap() + r.body["unchanged"].as_i64().unwrap(), 3, "{}", r.text);
    }
    assert_eq!(app.audit(&ent, "action=member.create").await.len(), 4, "the owner and each row once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_racing_a_departure_never_brings_the_member_back() {
    let (app, ent) = TestApp::with_acme().await;
    let mut requests = Vec::new();
    let mut ids = Vec::new();
    for i in 0..20 {
        let m = app.add_member(&ent, &format!("Person {i}"), &format!("1390013{:04}", 9000 + i)).await;
        let id = m["id"].as_str().unwrap().to_string();
        requests.push((Method::PATCH, paths::member(&id), json!({"title": "Renamed"})));
        requests.push((Method::POST, paths::member_depart(&id), json!({})));
        ids.push(id);
    }
    let replies = all_at_once(&app, &ent.key, requests).await;
    for (pair, id) in replies.chunks(2).zip(&ids) {
        let (edit, depart) = (pair[0].status.as_u16(), pair[1].status.as_u16());
        assert!(edit == 200 || edit == 409, "{}", pair[0].text);
        assert!(depart == 200 || depart == 409, "{}", pair[1].text);
        assert!(edit == 200 || depart == 200, "one of the two goes through");
        let m = app.get_member(id, &ent.key).await;
        if depart == 200 {
            assert_eq!(m.body["status"], "departed", "a departure is final, whatever raced it: {}", m.text);
        } else {
            pair[1].assert_problem(409, "conflict");
            assert_eq!(m.body["status"], "invited");
        }
        if edit == 200 {
            assert_eq!(m.body["title"], "Renamed", "an edit that answered 200 is kept: {}", m.text);
        } else {
            pair[0].assert_problem(409, "conflict");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_racing_a_disable_never_re_enables_the_member() {
    let (app, ent) = TestApp::with_acme().await;
    let mut requests = Vec::new();
    let mut ids = Vec::new();
    for i in 0..20 {
        let m = app.add_member(&ent, &format!("Person {i}"), &format!("1390013{:04}", 9000 + i)).await;
        let id = m["id"].as_str().unwrap().to_string();
        requests.push((Method::POST, paths::member_disable(&id), json!({})));
        requests.push((Method::PATCH, paths::member(&id), json!({"title": "Renamed"})));
        ids.push(id);
    }
    let replies = all_at_once(&app, &ent.key, requests).await;
    for (pair, id) in replies.chunks(2).zip(&ids) {
        // Neither change touches the other's field, so both go through, whichever wrote first.
        pair[0].assert_status(200);
        pair[1].assert_status(200);
        let m = app.get_member(id, &ent.key).await;
        assert_eq!(m.body["status"], "disabled", "a disable is never undone by an edit: {}", m.text);
        assert_eq!(m.body["title"], "Renamed", "an edit that answered 200 is kept: {}", m.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_admins_patching_different_fields_of_one_member_at_once_all_succeed() {
    let (app, ent) = TestApp::with_acme().await;
    for round in 0..5 {
        let m = app.add_member(&ent, &format!("Person {round}"), &format!("1390013{:04}", 9000 + round)).await;
        let id = m["id"].as_str().unwrap().to_string();
        let path = paths::member(&id);
        let patches = [
            json!({"title": "Engineer"}),
            json!({"email": format!("p{round}@example.com")}),
            json!({"name": format!("Renamed {round}")}),
            json!({"userid": format!("person{round}")}),
        ];
        let requests = patches.iter().map(|p| (Method::PATCH, path.clone(), p.clone())).collect();
        for reply in all_at_once(&app, &ent.key, requests).await {
            reply.assert_status(200);
        }
        let stored = app.get(&path, &ent.key).await;
        for patch in &patches {
            for (field, value) in patch.as_object().unwrap() {
                assert_eq!(&stored.body[field], value, "round {round}: every patch is kept: {}", stored.text);
            }
        }
        let updates = app.audit(&ent, "action=member.update").await;
        assert_eq!(updates.iter().filter(|e| e["target"] == id.as_str()).count(), 4, "round {round}: one entry each");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_racing_disables_neither_undoes_them_nor_loses_its_rows() {
    let (app, ent) = TestApp::with_acme().await;
    let mut csv = String::from("userid,name,phone,title\n");
    let mut ids = Vec::new();
    for i in 0..20 {
        let phone = format!("1390013{:04}", 9000 + i);
        let m = app
            .add_member_with(&ent, json!({"name": format!("P{i}"), "phone": phone, "userid": format!("p{i}")}))
            .await;
        ids.push(m["id"].as_str().unwrap().to_string());
        csv.push_str(&format!("p{i},P{i},{phone},Imported\n"));
    }
    let import = app
        .client
        .post(app.url(&paths::members_import()))
        .bearer_auth(&ent.key)
        .header("content-type", "text/csv")
        .body(csv);
    let import = tokio::spawn(async move { TestApp::read(import.send().await.expect("sent")).await });
    let disables = ids.iter().map(|id| (Method::POST, paths::member_disable(id), json!({}))).collect();
    let replies = all_at_once(&app, &ent.key, disables).await;
    let report = import.await.unwrap();
    report.assert_status(200);
    assert_eq!(report.body["failed"], 0, "{}", report.text);
    assert_eq!(report.body["updated"], 20, "{}", report.text);
    for (reply, id) in replies.iter().zip(&ids) {
        let m = app.get_member(id, &ent.key).await;
        assert_eq!(m.body["title"], "Imported", "{}", m.text);
        if reply.status.as_u16() == 200 {
            assert_eq!(m.body["status"], "disabled", "{}", m.text);
        } else {
            reply.assert_problem(409, "conflict");
        }
    }
}

/// Token checks are served from a per-node cache; a revoking write makes it stale before it is
/// acknowledged. While clients hammer `/me` with a member's token, the member is disabled: every
/// check that starts after the disable was acknowledged is refused, and so is every app token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_check_started_after_a_disable_is_acknowledged_accepts_the_token() {
    let (app, ent) = TestApp::with_acme().await;
    let member = app.add_member(&ent, "Zhang San", "13900139001").await;
    let id = member["id"].as_str().expect("id").to_string();
    let done = app.sign_in("+8613900139001", 1).await;
    let access = done["session"]["access_token"].as_str().expect("access token").to_string();
    app.get(&paths::me(), &access).await.assert_status(200);

    let acknowledged = std::sync::Arc::new(std::sync::OnceLock::<std::time::Instant>::new());
    let mut hammering = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (client, url, access, acknowledged) =
            (app.client.clone(), app.url(&paths::me()), access.clone(), acknowledged.clone());
        hammering.spawn(async move {
            let mut late_accepts = 0;
            let mut refused = 0;
            while refused < 20 {
                let started = std::time::Instant::now();
                let status = client.get(&url).bearer_auth(&access).send().await.expect("sent").status().as_u16();
                let after_ack = acknowledged.get().is_some_and(|at| started >= *at);
                match status {
                    200 if after_ack => late_accepts += 1,
                    200 => {}
                    401 => refused += 1,
                    other => panic!("/me answered {other}"),
                }
            }
            late_accepts
        });
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    app.disable_member(&id, &ent.key).await.assert_status(200);
    let _ = acknowledged.set(std::time::Instant::now());
    let late: Vec<usize> = hammering.join_all().await;
    assert_eq!(late, vec![0; 4], "checks that started after the acknowledgement accepted the token");
    app.get(&paths::me(), &access).await.assert_problem(401, "unauthorized");
}
