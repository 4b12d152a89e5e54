//! The trust model of Enterprise Login: a login is its starter's alone, failure locks cannot be
//! turned against a number's owner, hidden membership hides it, and the web pages leak nothing
//! they need not (SPEC section 6).

use super::retention::prune;
use crate::helpers::{Reply, TestApp, TestEnterprise, wrong_code};
use crate::paths;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::ManualClock;

const PHONE: &str = "+8613900139001";

async fn start_from(app: &TestApp, phone: &str, ip: &str) -> Reply {
    post_from(app, &paths::login_start(), json!({"phone": phone}), ip).await
}

/// A server that believes the test's proxy (127.0.0.1) about the caller's address, configured
/// further by `configure`, with Acme's member `PHONE` invited (one SMS so far).
async fn member_behind_proxy(
    clock: Arc<ManualClock>,
    configure: impl FnOnce(&mut workgate::config::ServerConfig),
) -> (TestApp, TestEnterprise) {
    let app = TestApp::spawn_configured(
        |c| {
            c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            configure(c);
        },
        clock,
    )
    .await;
    let ent = app.enterprise("Acme", "13800138000").await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    app.wait_for_sms(PHONE, 1).await;
    (app, ent)
}

/// Answers a sign-in's code as if from `ip`.
async fn submit_from(app: &TestApp, login_id: &str, code: &str, ip: &str) -> Reply {
    post_from(app, &paths::login_code(login_id), json!({"code": code}), ip).await
}

/// An anonymous POST as if from `ip` (the test server trusts 127.0.0.1 as a proxy).
async fn post_from(app: &TestApp, path: &str, body: Value, ip: &str) -> Reply {
    let resp =
        app.client.post(app.url(path)).header("x-forwarded-for", ip).json(&body).send().await.expect("request sent");
    TestApp::read(resp).await
}

#[tokio::test]
async fn another_enterprises_admin_cannot_finish_a_members_login() {
    let app =
        TestApp::spawn_configured(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()], Arc::default()).await;
    let target = app.enterprise("Target Co", "13800138000").await;
    let attacker = app.enterprise("Attacker Co", "13700137000").await;
    app.add_member(&target, "Zhang San", PHONE).await;
    // The attacker's admin adds the victim's number to its own enterprise, to become a candidate.
    app.add_member(&attacker, "Zhang San", PHONE).await;
    app.wait_for_sms(PHONE, 2).await;

    let started = start_from(&app, PHONE, "203.0.113.5").await;
    started.assert_status(200);
    let login = started.login_id();
    assert!(login.starts_with("lgn_") && login.len() >= 4 + 43, "256 random bits: {login}");
    let code = app.code_for(PHONE, 3).await;
    let chosen = submit_from(&app, &login, &code, "203.0.113.5").await;
    assert_eq!(chosen.body["next"], "enterprise", "{}", chosen.text);

    // What the attacker's admin sees: events of a login it was a candidate of, without the
    // login_id and without where it came from.
    let view = app.get(&paths::member_lookup_phone(&enc(PHONE)), &attacker.key).await;
    view.assert_status(200);
    assert!(!view.text.contains(&login), "the login_id is in no admin view");
    let events = view.body["recent_events"].as_array().expect("events");
    assert!(!events.is_empty(), "a candidate sees that a login happened");
    assert!(events.iter().all(|e| e["ip"].is_null()), "not where it came from: {events:?}");
    // Whatever reference the view shows cannot move the login on.
    for e in events {
        if let Some(reference) = e["details"]["login"].as_str() {
            post_from(&app, &paths::login_enterprise(reference), json!({"enterprise_id": target.id}), "198.51.100.7")
                .await
                .assert_problem(410, "code_expired");
        }
    }
    // Nor can a guessed or truncated login_id.
    let truncated = &login[..login.len() - 1];
    app.post_anon(&paths::login_enterprise(truncated), json!({"enterprise_id": target.id}))
        .await
        .assert_problem(410, "code_expired");

    // The member finishes; the attacker's enterprise sees nothing of the login into the other one.
    let done =
        post_from(&app, &paths::login_enterprise(&login), json!({"enterprise_id": target.id}), "203.0.113.5").await;
    assert_eq!(done.body["next"], "done", "{}", done.text);
    let view = app.get(&paths::member_lookup_phone(&enc(PHONE)), &attacker.key).await;
    assert!(!view.text.contains("203.0.113.5"), "{}", view.text);
    assert!(!view.text.contains("session_issued"), "{}", view.text);
    let view = app.get(&paths::member_lookup_phone(&enc(PHONE)), &target.key).await;
    assert!(view.text.contains("session_issued") && view.text.contains("203.0.113.5"), "{}", view.text);

    // The login_id is stored nowhere: not in the challenge, the events or the audit log.
    let stored = app.stored_bytes().await;
    assert!(!String::from_utf8_lossy(&stored).contains(&login), "the login_id is stored only as a hash");
}

#[tokio::test]
async fn a_login_waiting_for_approval_cannot_be_continued_by_anyone_else() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let mut policy = app.get(&paths::policy(), &ent.key).await.body;
    policy.as_object_mut().expect("policy").remove("updated_at");
    policy["require_device_approval"] = json!(true);
    app.request(reqwest::Method::PUT, &paths::policy(), Some(&ent.key), Some(policy)).await.assert_status(200);
    let started = app.start_login(PHONE).await;
    let login = started.login_id();
    let code = app.code_for(PHONE, 2).await;
    let pending = app.submit_code(&login, &code).await;
    assert_eq!(pending.body["next"], "pending_approval", "{}", pending.text);
    let view = app.get(&paths::member_lookup_phone(&enc(PHONE)), &ent.key).await;
    assert!(!view.text.contains(&login), "the login_id is in no admin view");
    for e in view.body["recent_events"].as_array().expect("events") {
        if let Some(reference) = e["details"]["login"].as_str() {
            app.post_anon(&paths::login_continue(reference), json!({})).await.assert_problem(410, "code_expired");
        }
    }
}

#[tokio::test]
async fn one_networks_wrong_codes_lock_that_network_not_the_member() {
    let clock = Arc::new(ManualClock::default());
    let (app, _ent) = member_behind_proxy(clock.clone(), |c| {
        c.login.consecutive_failures_limit = 3;
        c.login.failure_lock_base_secs = 600;
    })
    .await;
    let attacker = "198.51.100.7";
    // Two logins under way from the attacker's network before the lock.
    let first = start_from(&app, PHONE, attacker).await;
    first.assert_status(200);
    clock.advance(Duration::from_secs(61));
    let second = start_from(&app, PHONE, attacker).await;
    second.assert_status(200);
    let code = app.code_for(PHONE, 3).await;
    for _ in 0..3 {
        submit_from(&app, &first.login_id(), &wrong_code(&code), attacker).await.assert_problem(400, "code_invalid");
    }
    // The lock holds on every step from that network, even on a login already under way.
    submit_from(&app, &second.login_id(), &code, attacker).await.assert_problem(429, "rate_limited");
    post_from(&app, &paths::login_resend(&second.login_id()), json!({}), attacker)
        .await
        .assert_problem(429, "rate_limited");
    clock.advance(Duration::from_secs(61));
    let refused = start_from(&app, PHONE, attacker).await;
    refused.assert_problem(429, "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));

    // The member, on another network, signs in as usual.
    let member = "203.0.113.5";
    let started = start_from(&app, PHONE, member).await;
    started.assert_status(200);
    let code = app.code_for(PHONE, 4).await;
    let done = submit_from(&app, &started.login_id(), &code, member).await;
    assert_eq!(done.body["next"], "done", "{}", done.text);
}

#[tokio::test]
async fn a_right_code_clears_the_wrong_ones_before_it() {
    let clock = Arc::new(ManualClock::default());
    let (app, _ent) = member_behind_proxy(clock.clone(), |c| {
        c.login.consecutive_failures_limit = 3;
        c.login.failure_lock_base_secs = 600;
    })
    .await;
    let network = "198.51.100.7";
    for round in 0..2 {
        let started = start_from(&app, PHONE, network).await;
        started.assert_status(200);
        let code = app.code_for(PHONE, 2 + round).await;
        // Two wrong codes in a row, one short of the lock, then the right one.
        for _ in 0..2 {
            submit_from(&app, &started.login_id(), &wrong_code(&code), network)
                .await
                .assert_problem(400, "code_invalid");
        }
        assert_eq!(app.count("failure_locks").await, 2, "the network's count and the number's");
        let done = submit_from(&app, &started.login_id(), &code, network).await;
        assert_eq!(done.body["next"], "done", "{}", done.text);
        assert_eq!(app.count("failure_locks").await, 0, "cleared by the right code");
        clock.advance(Duration::from_secs(61));
    }
    // Four wrong codes from the network in all, never three in a row: no lock.
    start_from(&app, PHONE, network).await.assert_status(200);
}

#[tokio::test]
async fn guessing_spread_over_networks_meets_the_numbers_ceiling() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = member_behind_proxy(clock.clone(), |c| {
        c.login.consecutive_failures_limit = 3;
        c.login.number_failure_ceiling = 4;
        c.login.failure_lock_base_secs = 600;
    })
    .await;
    for (i, network) in ["198.51.100.7", "192.0.2.9"].iter().enumerate() {
        let started = start_from(&app, PHONE, network).await;
        started.assert_status(200);
        let code = app.code_for(PHONE, 2 + i).await;
        for _ in 0..2 {
            submit_from(&app, &started.login_id(), &wrong_code(&code), network)
                .await
                .assert_problem(400, "code_invalid");
        }
        clock.advance(Duration::from_secs(61));
    }
    // Four failures in a row from two networks: the number itself waits, from any network.
    start_from(&app, PHONE, "203.0.113.5").await.assert_problem(429, "rate_limited");
    // An admin's unlock clears it.
    let member = app.get(&paths::member_lookup_phone(&enc(PHONE)), &ent.key).await;
    assert_eq!(member.body["suggested_fix"], "wait_for_unlock");
    let id = member.body["member"]["id"].as_str().expect("member id").to_string();
    app.request(reqwest::Method::POST, &paths::member_unlock(&id), Some(&ent.key), None).await.assert_status(204);
    start_from(&app, PHONE, "203.0.113.5").await.assert_status(200);
}

/// A `login/start` answer without what differs by nature between two answers (ids, dates).
fn comparable(r: &Reply) -> (u16, Vec<(String, String)>, Value) {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| !["date", "x-request-id", "content-length"].contains(&k.as_str()))
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    headers.sort();
    let mut body = r.body.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("login_id");
    }
    (r.status.as_u16(), headers, body)
}

#[tokio::test]
async fn with_hidden_membership_every_state_gets_the_same_whole_answer() {
    let clock = Arc::new(ManualClock::default());
    let app = TestApp::spawn_configured(
        |c| {
            c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            c.login.hide_membership = true;
            c.login.consecutive_failures_limit = 2;
            c.login.failure_lock_base_secs = 600;
            c.login.sms_budget_enterprise_hour = 3;
        },
        clock.clone(),
    )
    .await;
    let ent = app.enterprise("Acme", "13800138000").await;
    let full = app.enterprise("Full Co", "13600136000").await;
    let invited = "+8613900139001";
    let active = "+8613900139002";
    let disabled = "+8613900139003";
    let over_budget = "+8613900139004";
    let unknown = "+8613700137000";
    let locked_member = "+8613900139005";
    let locked_unknown = "+8613700137001";
    app.add_member_with(&ent, json!({"name": "Invited", "phone": invited, "invite": false})).await;
    app.add_member_with(&ent, json!({"name": "Active", "phone": active, "invite": false})).await;
    let d = app.add_member_with(&ent, json!({"name": "Disabled", "phone": disabled, "invite": false})).await;
    app.disable_member(d["id"].as_str().unwrap(), &ent.key).await;
    app.add_member_with(&ent, json!({"name": "Locked", "phone": locked_member, "invite": false})).await;
    // Full Co's budget of three codes an hour goes to three others.
    app.add_member_with(&full, json!({"name": "Over", "phone": over_budget, "invite": false})).await;
    for phone in ["+8613600136001", "+8613600136002"] {
        app.add_member_with(&full, json!({"name": "Other", "phone": phone, "invite": false})).await;
    }
    for phone in ["+8613600136000", "+8613600136001", "+8613600136002"] {
        start_from(&app, phone, "192.0.2.1").await.assert_status(200);
    }
    // Lock a member's number and an unknown number alike, by wrong codes from one network.
    for phone in [locked_member, locked_unknown] {
        let started = start_from(&app, phone, "198.51.100.7").await;
        started.assert_status(200);
        for _ in 0..2 {
            submit_from(&app, &started.login_id(), "000000", "198.51.100.7").await;
        }
    }
    clock.advance(Duration::from_secs(61));

    let mut answers = vec![];
    for phone in [invited, active, disabled, over_budget, unknown] {
        answers.push((phone, comparable(&start_from(&app, phone, "192.0.2.1").await)));
    }
    let reference = answers[0].1.clone();
    assert_eq!(reference.0, 200);
    for (phone, answer) in &answers {
        assert_eq!(answer, &reference, "{phone} answers like every other number");
    }
    // Locked numbers answer alike too, whether members or not.
    let locked_a = comparable(&start_from(&app, locked_member, "198.51.100.7").await);
    let locked_b = comparable(&start_from(&app, locked_unknown, "198.51.100.7").await);
    assert_eq!(locked_a.0, 429);
    let strip_retry = |mut a: (u16, Vec<(String, String)>, Value)| {
        a.1.retain(|(k, _)| k != "retry-after");
        if let Some(o) = a.2.as_object_mut() {
            o.remove("retry_after");
            o.remove("detail");
        }
        a
    };
    assert_eq!(strip_retry(locked_a), strip_retry(locked_b));
    // Codes went only where they may: the invited and active members, nothing else.
    assert!(app.sms_to(unknown).is_empty() && app.sms_to(disabled).is_empty());
    assert!(app.sms_to(over_budget).is_empty(), "over its enterprise's budget: no SMS, same answer");
    app.wait_for_sms(active, 1).await;
}

#[tokio::test]
async fn with_hidden_membership_starts_for_numbers_of_nobody_leave_the_server_budget_to_members() {
    let app = TestApp::spawn_configured(
        |c| {
            c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
            c.login.hide_membership = true;
            c.login.sms_budget_server_hour = 3;
        },
        Arc::new(ManualClock::default()),
    )
    .await;
    let ent = app.enterprise("Acme", "13800138000").await;
    let members = ["+8613900139001", "+8613900139002", "+8613900139003", "+8613900139004"];
    for phone in members {
        app.add_member_with(&ent, json!({"name": "Member", "phone": phone, "invite": false})).await;
    }
    // A bot's starts for numbers of nobody, three times the budget, from many addresses.
    for n in 0..9 {
        start_from(&app, &format!("+861370013700{n}"), &format!("192.0.2.{}", n + 1)).await.assert_status(200);
    }
    // The budget is the members': three of them get their code.
    for phone in &members[..3] {
        start_from(&app, phone, "198.51.100.7").await.assert_status(200);
        app.wait_for_sms(phone, 1).await;
    }
    // Once it is spent, a member's start answers like anyone's, and no code goes out.
    let over = comparable(&start_from(&app, members[3], "198.51.100.7").await);
    let nobody = comparable(&start_from(&app, "+8613700137010", "198.51.100.7").await);
    assert_eq!(over.0, 200);
    assert_eq!(over, nobody, "a spent budget tells nobody who is a member");
    let db = app.db().await;
    let codes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sms_outbox WHERE purpose = 'login_code'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(codes, 3, "the budget's three codes, no more");
    assert!(app.sms_to(members[3]).is_empty());
}

#[tokio::test]
async fn the_invited_number_is_shown_masked_on_the_login_page_and_still_used() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let sms = app.wait_for_sms(PHONE, 1).await.remove(0);
    let token = sms.body.split("/i/").nth(1).and_then(|r| r.split_whitespace().next()).expect("link").to_string();
    let browser = reqwest::Client::builder().cookie_store(true).build().expect("client");
    let page = browser.get(format!("{}/login?invitation={token}", app.base)).send().await.unwrap();
    let page = page.text().await.unwrap();
    assert!(!page.contains("13900139001"), "the whole number is not on the page: {page}");
    assert!(page.contains("9001"), "its end is: {page}");
    // Sending the form with the number left empty sends the code to the invited number.
    let csrf = page.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("csrf").to_string();
    let form = [("csrf", csrf.as_str()), ("region", "CN"), ("phone", ""), ("invitation", token.as_str())];
    let next = browser.post(format!("{}/login", app.base)).form(&form).send().await.unwrap();
    let next = next.text().await.unwrap();
    assert!(next.contains("name=\"code\""), "the code step: {next}");
    assert!(!next.contains("13900139001"), "{next}");
    app.wait_for_sms(PHONE, 2).await;
}

#[tokio::test]
async fn cookies_are_secure_and_host_bound_unless_on_loopback_http() {
    let app = TestApp::spawn_configured(
        |c| {
            c.public_url = Some("https://login.example.com".into());
            c.login.public_url = "https://login.example.com".into();
        },
        Arc::default(),
    )
    .await;
    let resp = app.client.get(format!("{}/login", app.base)).send().await.unwrap();
    let cookies: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    let csrf = cookies.iter().find(|c| c.contains("wg_csrf")).expect("csrf cookie");
    assert!(csrf.starts_with("__Host-wg_csrf=") && csrf.contains("Secure") && csrf.contains("Path=/"), "{csrf}");
    assert!(!csrf.contains("Domain"), "{csrf}");

    let local = TestApp::spawn().await;
    let resp = local.client.get(format!("{}/login", local.base)).send().await.unwrap();
    let cookies: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert!(cookies.iter().any(|c| c.starts_with("wg_csrf=")), "plain http on loopback for development");
}

#[tokio::test]
async fn a_department_admins_lookup_outside_its_scope_says_nothing() {
    let (app, ent) = TestApp::with_acme().await;
    let sales = app.add_department(&ent, "Sales", None).await;
    let ops = app.add_department(&ent, "Ops", None).await;
    let admin_phone = "+8613900139010";
    app.add_member_with(
        &ent,
        json!({"name": "Dept Admin", "phone": admin_phone, "departments": [sales],
               "role": "department_admin", "admin_departments": [sales], "invite": false}),
    )
    .await;
    app.add_member_with(&ent, json!({"name": "Ops Person", "phone": PHONE, "departments": [ops], "invite": false}))
        .await;
    // The department admin signs in to get a session.
    let started = app.start_login(admin_phone).await;
    let code = app.code_for(admin_phone, 1).await;
    let done = app.submit_code(&started.login_id(), &code).await;
    let token = done.body["session"]["access_token"].as_str().expect("session").to_string();

    let outside = app.get(&paths::member_lookup_phone(&enc(PHONE)), &token).await;
    let never = app.get(&paths::member_lookup_phone(&enc("+8613700137000")), &token).await;
    outside.assert_status(200);
    never.assert_status(200);
    let mut a = outside.body.clone();
    let mut b = never.body.clone();
    for v in [&mut a, &mut b] {
        v.as_object_mut().expect("object").remove("phone");
    }
    assert_eq!(a, b, "a number outside the subtree looks like one never added");
}

fn enc(phone: &str) -> String {
    crate::helpers::enc(phone)
}

#[tokio::test]
async fn failure_counts_are_forgotten_only_a_week_after_the_last_failure() {
    let clock = Arc::new(ManualClock::default());
    let (app, ent) = TestApp::acme_on(clock.clone()).await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    let started = app.start_login(PHONE).await;
    let code = app.code_for(PHONE, 2).await;
    app.submit_code(&started.login_id(), &wrong_code(&code)).await.assert_problem(400, "code_invalid");
    assert_eq!(app.count("failure_locks").await, 2, "the network's count and the number's");
    clock.advance(Duration::from_secs(2 * 86_400));
    prune(&app).await;
    assert_eq!(app.count("failure_locks").await, 2, "kept while an attacker could still be counting");
    clock.advance(Duration::from_secs(6 * 86_400));
    let report = prune(&app).await;
    assert_eq!(report.of("failure_locks"), 2);
    assert_eq!(app.count("failure_locks").await, 0);
}

#[tokio::test]
async fn an_unlock_starts_a_numbers_sending_limits_over_only_three_times_a_day() {
    let app = TestApp::spawn_configured(
        |c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()],
        Arc::new(ManualClock::default()),
    )
    .await;
    let ent = app.enterprise("Acme", "13800138000").await;
    let member = app.add_member_with(&ent, json!({"name": "Member", "phone": PHONE, "invite": false})).await;
    let unlock = paths::member_unlock(member["id"].as_str().unwrap());
    start_from(&app, PHONE, "192.0.2.1").await.assert_status(200);
    for round in 1..=4 {
        // The clock stands still: the number's one-a-minute cooldown refuses the next code ...
        start_from(&app, PHONE, "192.0.2.1").await.assert_problem(429, "rate_limited");
        app.post(&unlock, &ent.key, json!({})).await.assert_status(204);
        // ... until an admin's unlock starts it over, three times a day and no more.
        let after = start_from(&app, PHONE, "192.0.2.1").await;
        if round <= 3 {
            after.assert_status(200);
        } else {
            after.assert_problem(429, "rate_limited");
        }
    }
    let unlocks = app.audit(&ent, "action=member.unlock").await;
    let resets: Vec<bool> = unlocks.iter().rev().map(|e| e["details"]["sending_limits_reset"] == true).collect();
    assert_eq!(resets, [true, true, true, false], "{unlocks:?}");
}
