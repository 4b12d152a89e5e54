//! Enterprise Login over HTTP, reading codes from the `file` SMS outbox (SPEC sections 2–4, 6).

use crate::helpers::{Reply, TestApp, TestEnterprise, enc, wrong_code};
use crate::paths;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::ManualClock;

const PHONE: &str = "+8613900139001";

async fn app_with_member() -> (TestApp, TestEnterprise, Value) {
    let (app, ent) = TestApp::with_acme().await;
    let member = app.add_member(&ent, "Zhang San", "139 0013 9001").await;
    (app, ent, member)
}

#[tokio::test]
async fn the_whole_chain_from_member_add_to_me() {
    let (app, ent, member) = app_with_member().await;
    // The invitation SMS carries a link whose token previews the enterprise.
    let invitation = app.wait_for_sms(PHONE, 1).await.remove(0);
    let token = invitation.body.split("/i/").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("link");
    let preview = app.request(reqwest::Method::GET, &paths::invitation(token), None, None).await;
    preview.assert_status(200);
    assert_eq!(preview.body["enterprise"]["name"], "Acme");
    assert_eq!(preview.body["phone_masked"], "+86*******9001");

    let started = app.post_anon(&paths::login_start(), json!({"phone": "139-0013-9001", "invitation": token})).await;
    started.assert_status(200);
    assert_eq!(started.body["next"], "code");
    assert_eq!(started.body["code_length"], 6);
    let code = app.code_for(PHONE, 2).await;
    let done = app.submit_code(&started.login_id(), &code).await;
    done.assert_status(200);
    assert_eq!(done.body["next"], "done");
    assert_eq!(done.body["enterprise"]["id"], ent.id.as_str());
    assert_eq!(done.body["member"]["status"], "active");
    let access = done.body["session"]["access_token"].as_str().expect("access token");

    let me = app.get(&paths::me(), access).await;
    me.assert_status(200);
    assert_eq!(me.body["member"]["id"], member["id"]);
    assert_eq!(me.body["member"]["status"], "active");
    // The admin sees the member active and the invitation used and delivered.
    let admin_view = app.get_member(member["id"].as_str().unwrap(), &ent.key).await;
    assert_eq!(admin_view.body["status"], "active");
    assert!(admin_view.body["activated_at"].is_string());
    let invitations = app.get(&paths::member_invitations(member["id"].as_str().unwrap()), &ent.key).await;
    assert_eq!(invitations.body["items"][0]["state"], "used");
    assert_eq!(invitations.body["items"][0]["delivery"], "sent");
    // The used link no longer previews.
    app.request(reqwest::Method::GET, &paths::invitation(token), None, None)
        .await
        .assert_problem(410, "invitation_expired");
}

#[tokio::test]
async fn unknown_garbage_disabled_and_departed_numbers_are_told_apart() {
    let (app, ent, member) = app_with_member().await;
    app.start_login("13700137000").await.assert_problem(404, "not_a_member");
    app.start_login("not a phone").await.assert_problem(422, "invalid_phone");
    let id = member["id"].as_str().unwrap();
    app.disable_member(id, &ent.key).await.assert_status(200);
    app.start_login(PHONE).await.assert_problem(403, "member_disabled");
    app.post(&paths::member_depart(id), &ent.key, json!({})).await.assert_status(200);
    app.start_login(PHONE).await.assert_problem(404, "not_a_member");
    // Only the invitation went out: no code to numbers that cannot sign in.
    assert_eq!(app.sms_to(PHONE).len(), 1);
    assert_eq!(app.sms_to("+8613700137000").len(), 0);
}

#[tokio::test]
async fn a_wrong_code_tells_the_attempts_left_and_locks_at_the_limit() {
    let (app, _, _) = app_with_member().await;
    let started = app.start_login(PHONE).await;
    let code = app.code_for(PHONE, 2).await;
    let login = started.login_id();
    for left in (0..5).rev() {
        let reply = app.submit_code(&login, &wrong_code(&code)).await;
        reply.assert_problem(400, "code_invalid");
        assert_eq!(reply.body["attempts_left"], left);
    }
    // Locked: even the right code is refused now.
    app.submit_code(&login, &code).await.assert_problem(429, "too_many_attempts");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let started = app.start_login(PHONE).await;
    let code = app.code_for(PHONE, 2).await;
    clock.advance(Duration::from_secs(301));
    app.submit_code(&started.login_id(), &code).await.assert_problem(410, "code_expired");
}

#[tokio::test]
async fn a_second_code_within_the_cooldown_is_rate_limited_with_retry_after() {
    let (app, _, _) = app_with_member().await;
    let started = app.start_login(PHONE).await;
    started.assert_status(200);
    let again = app.start_login(PHONE).await;
    again.assert_problem(429, "rate_limited");
    let retry_after: i64 = again.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    assert_eq!(again.body["retry_after"], retry_after);
    let resend = app.post_anon(&paths::login_resend(&started.login_id()), json!({})).await;
    resend.assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn a_number_gets_at_most_five_codes_an_hour() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    for _ in 0..5 {
        app.start_login(PHONE).await.assert_status(200);
        clock.advance(Duration::from_secs(61));
    }
    let sixth = app.start_login(PHONE).await;
    sixth.assert_problem(429, "rate_limited");
    app.wait_for_sms(PHONE, 6).await; // the invitation and five codes
    assert_eq!(app.sms_to(PHONE).len(), 6);
}

#[tokio::test]
async fn resending_replaces_the_code_and_keeps_the_failures() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let started = app.start_login(PHONE).await;
    let login = started.login_id();
    let first = app.code_for(PHONE, 2).await;
    app.submit_code(&login, &wrong_code(&first)).await.assert_problem(400, "code_invalid");
    clock.advance(Duration::from_secs(61));
    app.post_anon(&paths::login_resend(&login), json!({})).await.assert_status(200);
    let second = app.code_for(PHONE, 3).await;
    if first != second {
        app.submit_code(&login, &first).await.assert_problem(400, "code_invalid");
    }
    let reply = app.submit_code(&login, &wrong_code(&second)).await;
    assert!(reply.body["attempts_left"].as_i64().unwrap() <= 3, "failures were kept: {}", reply.text);
    app.submit_code(&login, &second).await.assert_status(200);
}

#[tokio::test]
async fn twenty_parallel_wrong_guesses_are_judged_at_most_five_times() {
    let (app, _, _) = app_with_member().await;
    let started = app.start_login(PHONE).await;
    let code = app.code_for(PHONE, 2).await;
    let login = started.login_id();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20u32 {
        let (client, base, login) = (app.client.clone(), app.base.clone(), login.clone());
        let guess = format!("{:06}", (code.parse::<u32>().unwrap() + 1 + i) % 1_000_000);
        tasks.spawn(async move {
            let resp =
                client.post(format!("{base}{}", paths::login_code(&login))).json(&json!({"code": guess})).send().await;
            TestApp::read(resp.expect("sent")).await
        });
    }
    let mut judged = 0;
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.expect("task");
        match reply.code() {
            "code_invalid" => judged += 1,
            "too_many_attempts" => {}
            other => panic!("unexpected answer {other}: {}", reply.text),
        }
    }
    assert_eq!(judged, 5);
    let pool = app.db().await;
    let failed: i64 = sqlx::query_scalar("SELECT failed_attempts FROM login_challenges WHERE phone = $1")
        .bind(PHONE)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(failed, 5);
}

#[tokio::test]
async fn parallel_right_answers_yield_exactly_one_session() {
    let (app, _, _) = app_with_member().await;
    let started = app.start_login(PHONE).await;
    let code = app.code_for(PHONE, 2).await;
    let login = started.login_id();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, base, login, code) = (app.client.clone(), app.base.clone(), login.clone(), code.clone());
        tasks.spawn(async move {
            let resp =
                client.post(format!("{base}{}", paths::login_code(&login))).json(&json!({"code": code})).send().await;
            TestApp::read(resp.expect("sent")).await
        });
    }
    let mut sessions = 0;
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.expect("task");
        if reply.status.as_u16() == 200 {
            sessions += 1;
        } else {
            reply.assert_problem(410, "code_expired");
        }
    }
    assert_eq!(sessions, 1);
    assert_eq!(app.count("sessions").await, 1);
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_family() {
    let (app, _, _) = app_with_member().await;
    let done = app.sign_in(PHONE, 1).await;
    let first_refresh = done["session"]["refresh_token"].as_str().unwrap().to_string();
    let rotated = app.post_anon(&paths::token_refresh(), json!({"refresh_token": first_refresh})).await;
    rotated.assert_status(200);
    let new_access = rotated.body["session"]["access_token"].as_str().unwrap().to_string();
    let new_refresh = rotated.body["session"]["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, first_refresh);
    assert_eq!(rotated.body["session"]["device_id"], done["session"]["device_id"]);
    app.get(&paths::me(), &new_access).await.assert_status(200);
    // The old refresh token again: refused, and the whole session ends.
    app.post_anon(&paths::token_refresh(), json!({"refresh_token": first_refresh}))
        .await
        .assert_problem(401, "unauthorized");
    app.get(&paths::me(), &new_access).await.assert_problem(401, "unauthorized");
    app.post_anon(&paths::token_refresh(), json!({"refresh_token": new_refresh}))
        .await
        .assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn parallel_refreshes_of_one_token_rotate_it_once() {
    let (app, _, _) = app_with_member().await;
    let done = app.sign_in(PHONE, 1).await;
    let refresh = done["session"]["refresh_token"].as_str().unwrap().to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, base, refresh) = (app.client.clone(), app.base.clone(), refresh.clone());
        tasks.spawn(async move {
            let resp = client
                .post(format!("{base}{}", paths::token_refresh()))
                .json(&json!({"refresh_token": refresh}))
                .send()
                .await;
            TestApp::read(resp.expect("sent")).await
        });
    }
    let mut rotated = 0;
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.expect("task");
        if reply.status.as_u16() == 200 {
            rotated += 1;
        } else {
            reply.assert_problem(401, "unauthorized");
        }
    }
    assert_eq!(rotated, 1);
}

#[tokio::test]
async fn a_disabled_members_live_token_is_refused_on_the_next_request() {
    let (app, ent, member) = app_with_member().await;
    let done = app.sign_in(PHONE, 1).await;
    let access = done["session"]["access_token"].as_str().unwrap();
    let refresh = done["session"]["refresh_token"].as_str().unwrap();
    app.get(&paths::me(), access).await.assert_status(200);
    let id = member["id"].as_str().unwrap();
    app.disable_member(id, &ent.key).await.assert_status(200);
    app.get(&paths::me(), access).await.assert_problem(401, "unauthorized");
    app.post_anon(&paths::token_refresh(), json!({"refresh_token": refresh})).await.assert_problem(401, "unauthorized");
    // Enabling again does not bring the old session back.
    app.post(&paths::member_enable(id), &ent.key, json!({})).await.assert_status(200);
    app.get(&paths::me(), access).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn a_number_in_two_enterprises_chooses_one() {
    let app = TestApp::spawn().await;
    let acme = app.enterprise("Acme", "13800138000").await;
    let globex = app.enterprise("Globex", "13800138001").await;
    app.add_member(&acme, "Zhang San", PHONE).await;
    app.add_member(&globex, "Zhang San", PHONE).await;
    let started = app.start_login(PHONE).await;
    let code = app.code_for(PHONE, 3).await;
    let login = started.login_id();
    let step = app.submit_code(&login, &code).await;
    step.assert_status(200);
    assert_eq!(step.body["next"], "enterprise");
    let offered: Vec<&str> =
        step.body["enterprises"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(offered.len(), 2);
    assert!(offered.contains(&"Acme") && offered.contains(&"Globex"));
    // An enterprise that was not offered is refused; the offered one finishes.
    app.post_anon(&paths::login_enterprise(&login), json!({"enterprise_id": "ent_00000000000000000000000000000000"}))
        .await
        .assert_problem(422, "validation_failed");
    let done = app.post_anon(&paths::login_enterprise(&login), json!({"enterprise_id": globex.id})).await;
    done.assert_status(200);
    assert_eq!(done.body["enterprise"]["name"], "Globex");
    let access = done.body["session"]["access_token"].as_str().unwrap();
    let mine = app.get(&paths::me_enterprises(), access).await;
    assert_eq!(mine.body["items"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn logout_ends_the_session_and_devices_can_be_signed_out() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let done = app.sign_in(PHONE, 1).await;
    let access = done["session"]["access_token"].as_str().unwrap();
    let device = done["session"]["device_id"].as_str().unwrap();
    let devices = app.get(&paths::me_devices(), access).await;
    assert_eq!(devices.body["items"][0]["id"], device);
    assert_eq!(devices.body["items"][0]["current"], true);
    app.request(reqwest::Method::POST, &paths::me_logout(), Some(access), None).await.assert_status(204);
    app.get(&paths::me(), access).await.assert_problem(401, "unauthorized");
    // A second sign-in (after the resend cooldown) keeps the device when the client sends its id.
    clock.advance(Duration::from_secs(61));
    let started = app.post_anon(&paths::login_start(), json!({"phone": PHONE, "device_id": device})).await;
    let code = app.code_for(PHONE, 3).await;
    let again = app.submit_code(&started.login_id(), &code).await;
    assert_eq!(again.body["session"]["device_id"], device);
    let access = again.body["session"]["access_token"].as_str().unwrap();
    app.delete(&paths::me_device(device), access).await.assert_status(204);
    app.get(&paths::me(), access).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn with_hidden_membership_unknown_and_known_numbers_get_the_same_answer() {
    let clock = Arc::new(ManualClock::default());
    let app = TestApp::spawn_configured(|c| c.login.hide_membership = true, clock).await;
    let ent = app.enterprise("Acme", "13800138000").await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let known = app.start_login(PHONE).await;
    let unknown = app.start_login("+8613700137000").await;
    known.assert_status(200);
    unknown.assert_status(200);
    let shape = |r: &Reply| {
        let mut keys: Vec<String> = r.body.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (keys, r.body["next"].clone(), r.body["expires_in"].clone(), r.body["code_length"].clone())
    };
    assert_eq!(shape(&known), shape(&unknown));
    app.wait_for_sms(PHONE, 2).await;
    assert!(app.sms_to("+8613700137000").is_empty(), "no SMS to an unknown number");
}

#[tokio::test]
async fn admins_resend_an_invitation_and_the_old_link_stops_working() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    let member = app.add_member(&ent, "Zhang San", "139 0013 9001").await;
    let first = app.wait_for_sms(PHONE, 1).await.remove(0);
    let old_token = first.body.split("/i/").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
    let id = member["id"].as_str().unwrap();
    // A re-send waits out the number's cooldown after the first invitation.
    clock.advance(Duration::from_secs(61));
    let resent = app.post(&paths::member_invitation(id), &ent.key, json!({})).await;
    resent.assert_status(201);
    assert_eq!(resent.body["state"], "pending");
    let second = app.wait_for_sms(PHONE, 2).await.remove(1);
    let new_token = second.body.split("/i/").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
    assert_ne!(old_token, new_token);
    app.request(reqwest::Method::GET, &paths::invitation(&old_token), None, None)
        .await
        .assert_problem(410, "invitation_expired");
    app.request(reqwest::Method::GET, &paths::invitation(&new_token), None, None).await.assert_status(200);
    let list = app.get(&paths::member_invitations(id), &ent.key).await;
    let states: Vec<&str> =
        list.body["items"].as_array().unwrap().iter().map(|i| i["state"].as_str().unwrap()).collect();
    assert_eq!(states, vec!["pending", "replaced"]);
}

#[tokio::test]
async fn login_start_is_limited_per_client_address() {
    let clock = Arc::new(ManualClock::default());
    let app = TestApp::spawn_configured(|c| c.login.starts_per_ip_hour = 3, clock).await;
    let ent = app.enterprise("Acme", "13800138000").await;
    for i in 1..=4 {
        app.add_member(&ent, &format!("Member {i}"), &format!("+86139001390{i:02}")).await;
    }
    for i in 1..=3 {
        app.start_login(&format!("+86139001390{i:02}")).await.assert_status(200);
    }
    let fourth = app.start_login("+8613900139004").await;
    fourth.assert_problem(429, "rate_limited");
    assert!(fourth.headers.contains_key("retry-after"));
    // The address's refusal is not the member's enterprise's business: not among its events.
    let view = app.get(&paths::member_lookup_phone(&enc("+8613900139004")), &ent.key).await;
    assert_eq!(view.body["recent_events"], json!([]), "{}", view.text);
    // A limited address learns nothing more about the numbers it tries: a number of nobody gets
    // the same answer as a member's.
    app.start_login("+8613700137000").await.assert_problem(429, "rate_limited");
}

#[tokio::test]
async fn starts_refused_for_other_reasons_count_against_the_address() {
    let clock = Arc::new(ManualClock::default());
    let app = TestApp::spawn_configured(|c| c.login.starts_per_ip_hour = 3, clock).await;
    let ent = app.enterprise("Acme", "13800138000").await;
    app.add_member(&ent, "Member", "+8613900139001").await;
    for i in 0..3 {
        app.start_login(&format!("+86137001370{i:02}")).await.assert_problem(404, "not_a_member");
    }
    // Three refused starts used the address's hour: the member's number is refused from it too.
    app.start_login("+8613900139001").await.assert_problem(429, "rate_limited");
    app.wait_for_sms("+8613900139001", 1).await;
    assert_eq!(app.sms_to("+8613900139001").len(), 1, "only the invitation");
}

#[tokio::test]
async fn the_enterprise_sms_budget_stops_codes_but_not_other_enterprises() {
    let clock = Arc::new(ManualClock::default());
    let app = TestApp::spawn_configured(|c| c.login.sms_budget_enterprise_hour = 2, clock).await;
    let acme = app.enterprise("Acme", "13800138000").await;
    let globex = app.enterprise("Globex", "13800138001").await;
    for i in 1..=3 {
        app.add_member(&acme, &format!("A{i}"), &format!("+86139001390{i:02}")).await;
    }
    app.add_member(&globex, "G1", "+8613900139009").await;
    app.start_login("+8613900139001").await.assert_status(200);
    app.start_login("+8613900139002").await.assert_status(200);
    app.start_login("+8613900139003").await.assert_problem(429, "rate_limited");
    app.start_login("+8613900139009").await.assert_status(200);
    app.wait_for_sms("+8613900139009", 2).await;
    assert_eq!(app.sms_to("+8613900139003").len(), 1, "only the invitation");
}

#[tokio::test]
async fn departing_cancels_pending_invitations() {
    let (app, ent, member) = app_with_member().await;
    let invitation = app.wait_for_sms(PHONE, 1).await.remove(0);
    let token = invitation.body.split("/i/").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_string();
    let id = member["id"].as_str().unwrap();
    app.post(&paths::member_depart(id), &ent.key, json!({})).await.assert_status(200);
    app.request(reqwest::Method::GET, &paths::invitation(&token), None, None)
        .await
        .assert_problem(410, "invitation_expired");
    let list = app.get(&paths::member_invitations(id), &ent.key).await;
    assert_eq!(list.body["items"][0]["state"], "cancelled");
}

#[tokio::test]
async fn each_login_step_leaves_a_login_event() {
    let (app, ent, _) = app_with_member().await;
    let started = app.start_login(PHONE).await;
    let code = app.code_for(PHONE, 2).await;
    let login = started.login_id();
    app.submit_code(&login, &wrong_code(&code)).await.assert_status(400);
    app.submit_code(&login, &code).await.assert_status(200);
    let view = app.get(&paths::member_lookup_phone("13900139001"), &ent.key).await;
    let kinds: Vec<&str> =
        view.body["recent_events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in ["start", "code_sent", "code_failed", "code_ok", "session_issued"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
}
