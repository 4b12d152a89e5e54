//! Trusted devices and the enterprise's policy (SPEC sections 2 step 5, 3, 5): refresh within
//! policy, each re-verification reason, device limits and approval, passwords.

use crate::helpers::{Reply, TestApp, TestEnterprise};
use crate::paths;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::ManualClock;

const PHONE: &str = "+8613900139001";
const DAY: Duration = Duration::from_secs(86_400);
const STRONG: &str = "violet-tractor-lunar-87";

struct World {
    app: TestApp,
    ent: TestEnterprise,
    clock: Arc<ManualClock>,
    member_id: String,
    sms: usize,
}

impl World {
    async fn new() -> World {
        let clock = Arc::new(ManualClock::default());
        let (app, ent) = TestApp::acme_on(clock.clone()).await;
        let member = app.add_member(&ent, "Zhang San", PHONE).await;
        let member_id = member["id"].as_str().unwrap().to_string();
        World { app, ent, clock, member_id, sms: 1 }
    }

    async fn put_policy(&self, changes: Value) {
        let mut policy = self.app.get(&paths::policy(), &self.ent.key).await.body;
        for (k, v) in changes.as_object().unwrap() {
            policy[k] = v.clone();
        }
        self.app
            .request(reqwest::Method::PUT, &paths::policy(), Some(&self.ent.key), Some(policy))
            .await
            .assert_status(200);
    }

    /// Starts a login (after the resend cooldown) and submits the code; returns the step answer.
    async fn code_step(&mut self, device_id: Option<&str>) -> (String, Reply) {
        self.clock.advance(Duration::from_secs(61));
        let mut body = json!({"phone": PHONE});
        if let Some(d) = device_id {
            body["device_id"] = json!(d);
        }
        let started = self.app.post_anon(&paths::login_start(), body).await;
        started.assert_status(200);
        self.sms += 1;
        let code = self.app.code_for(PHONE, self.sms).await;
        let login = started.login_id();
        let reply = self.app.submit_code(&login, &code).await;
        (login, reply)
    }

    /// A complete SMS login; returns the `session` object.
    async fn sign_in(&mut self, device_id: Option<&str>) -> Value {
        let (_, reply) = self.code_step(device_id).await;
        reply.assert_status(200);
        assert_eq!(reply.body["next"], "done", "{}", reply.text);
        reply.body["session"].clone()
    }

    async fn refresh(&self, session: &Value, app_version: Option<&str>) -> Reply {
        let mut body = json!({"refresh_token": session["refresh_token"]});
        if let Some(v) = app_version {
            body["app_version"] = json!(v);
        }
        self.app.post_anon(&paths::token_refresh(), body).await
    }
}

fn assert_reverify(reply: &Reply, reason: &str) {
    reply.assert_problem(401, "reverification_required");
    assert_eq!(reply.body["reason"], reason, "{}", reply.text);
}

#[tokio::test]
async fn refresh_within_policy_works_without_sms() {
    let mut w = World::new().await;
    let mut session = w.sign_in(None).await;
    for _ in 0..3 {
        w.clock.advance(9 * DAY);
        let reply = w.refresh(&session, None).await;
        reply.assert_status(200);
        session = reply.body["session"].clone();
    }
    assert_eq!(w.app.sms_to(PHONE).len(), 2, "no SMS beyond the invitation and the first code");
}

#[tokio::test]
async fn a_device_reverifies_after_the_period_and_keeps_its_id() {
    let mut w = World::new().await;
    let mut session = w.sign_in(None).await;
    let device = session["device_id"].as_str().unwrap().to_string();
    for _ in 0..3 {
        w.clock.advance(9 * DAY);
        let reply = w.refresh(&session, None).await;
        reply.assert_status(200);
        session = reply.body["session"].clone();
    }
    w.clock.advance(3 * DAY + Duration::from_secs(60));
    assert_reverify(&w.refresh(&session, None).await, "periodic");
    // The same answer again, not a silent logout.
    assert_reverify(&w.refresh(&session, None).await, "periodic");
    let again = w.sign_in(Some(&device)).await;
    assert_eq!(again["device_id"], device.as_str());
    w.refresh(&again, None).await.assert_status(200);
}

#[tokio::test]
async fn a_device_unused_past_the_idle_timeout_reverifies() {
    let mut w = World::new().await;
    let session = w.sign_in(None).await;
    w.clock.advance(15 * DAY);
    assert_reverify(&w.refresh(&session, None).await, "idle");
}

#[tokio::test]
async fn an_app_update_asks_for_verification_when_the_policy_says_so() {
    let mut w = World::new().await;
    let session = w.sign_in(None).await;
    let session = w.refresh(&session, Some("1.0.0")).await.body["session"].clone();
    let session = w.refresh(&session, Some("1.0.0")).await.body["session"].clone();
    assert_reverify(&w.refresh(&session, Some("1.1.0")).await, "app_updated");
    // With the check turned off, an update passes.
    w.put_policy(json!({"reverify_on_app_update": false})).await;
    let session = w.sign_in(None).await;
    let session = w.refresh(&session, Some("1.1.0")).await.body["session"].clone();
    w.refresh(&session, Some("2.0.0")).await.assert_status(200);
}

#[tokio::test]
async fn an_admin_revoking_the_device_asks_it_to_reverify() {
    let mut w = World::new().await;
    let session = w.sign_in(None).await;
    let device = session["device_id"].as_str().unwrap().to_string();
    let devices = w.app.get(&paths::member_devices(&w.member_id), &w.ent.key).await;
    assert_eq!(devices.body["items"][0]["id"], device.as_str());
    w.app.delete(&paths::member_device(&w.member_id, &device), &w.ent.key).await.assert_status(204);
    w.app.get(&paths::me(), session["access_token"].as_str().unwrap()).await.assert_problem(401, "unauthorized");
    assert_reverify(&w.refresh(&session, None).await, "device_revoked");
    let again = w.sign_in(Some(&device)).await;
    assert_eq!(again["device_id"], device.as_str());
}

#[tokio::test]
async fn tightening_the_policy_applies_at_the_next_refresh() {
    let mut w = World::new().await;
    let session = w.sign_in(None).await;
    w.put_policy(json!({"max_devices": 3})).await;
    assert_reverify(&w.refresh(&session, None).await, "policy_changed");
    // Loosening does not: a fresh session refreshes fine after a looser change.
    let session = w.sign_in(None).await;
    w.put_policy(json!({"max_devices": 10})).await;
    w.refresh(&session, None).await.assert_status(200);
}

#[tokio::test]
async fn the_policy_token_lifetime_applies_to_new_sessions() {
    let mut w = World::new().await;
    w.put_policy(json!({"access_token_ttl_seconds": 120})).await;
    let (_, reply) = w.code_step(None).await;
    assert_eq!(reply.body["session"]["expires_in"], 120);
    let access = reply.body["session"]["access_token"].as_str().unwrap().to_string();
    w.clock.advance(Duration::from_secs(121));
    w.app.get(&paths::me(), &access).await.assert_problem(401, "unauthorized");
}

#[tokio::test]
async fn the_device_limit_is_enforced() {
    let mut w = World::new().await;
    w.put_policy(json!({"max_devices": 1})).await;
    let first = w.sign_in(None).await;
    let (_, second) = w.code_step(None).await;
    second.assert_problem(403, "device_limit_reached");
    // The known device may still verify again; after signing it out, a new one may join.
    let again = w.sign_in(first["device_id"].as_str()).await;
    let token = again["access_token"].as_str().unwrap();
    w.app.delete(&paths::me_device(first["device_id"].as_str().unwrap()), token).await.assert_status(204);
    w.sign_in(None).await;
}

#[tokio::test]
async fn a_new_device_waits_for_approval_then_finishes() {
    let mut w = World::new().await;
    w.put_policy(json!({"require_device_approval": true})).await;
    let (login, step) = w.code_step(None).await;
    step.assert_status(200);
    assert_eq!(step.body["next"], "pending_approval");
    let device = step.body["device_id"].as_str().unwrap().to_string();
    let waiting = w.app.post_anon(&paths::login_continue(&login), json!({})).await;
    waiting.assert_problem(403, "device_pending_approval");
    assert_eq!(waiting.body["device_id"], device.as_str());
    let devices = w.app.get(&paths::member_devices(&w.member_id), &w.ent.key).await;
    assert_eq!(devices.body["items"][0]["state"], "pending");
    w.app
        .request(reqwest::Method::POST, &paths::member_device_approve(&w.member_id, &device), Some(&w.ent.key), None)
        .await
        .assert_status(204);
    let done = w.app.post_anon(&paths::login_continue(&login), json!({})).await;
    done.assert_status(200);
    assert_eq!(done.body["next"], "done");
    assert_eq!(done.body["session"]["device_id"], device.as_str());
    // The approved device signs in again without waiting.
    let again = w.sign_in(Some(&device)).await;
    assert_eq!(again["device_id"], device.as_str());
}

#[tokio::test]
async fn a_password_is_set_at_activation_and_asked_for_later() {
    let mut w = World::new().await;
    w.put_policy(json!({"require_password": true})).await;
    let (login, step) = w.code_step(None).await;
    assert_eq!(step.body["next"], "set_password", "{}", step.text);
    let path = paths::login_password(&login);
    for weak in ["short", "password1234", "13900139001abc", "zhangsan1990"] {
        w.app.post_anon(&path, json!({"password": weak})).await.assert_problem(422, "password_too_weak");
    }
    let done = w.app.post_anon(&path, json!({"password": STRONG})).await;
    done.assert_status(200);
    assert_eq!(done.body["next"], "done");
    assert_eq!(done.body["member"]["status"], "active");
    let pool = w.app.db().await;
    let stored: String = sqlx::query_scalar("SELECT hash FROM member_passwords").fetch_one(&pool).await.unwrap();
    assert!(stored.starts_with("$argon2id$") && !stored.contains(STRONG));

    // Later logins ask for it.
    let (login, step) = w.code_step(None).await;
    assert_eq!(step.body["next"], "password");
    let path = paths::login_password(&login);
    w.app.post_anon(&path, json!({"password": "not-the-password-42"})).await.assert_problem(401, "password_invalid");
    let done = w.app.post_anon(&path, json!({"password": STRONG})).await;
    assert_eq!(done.body["next"], "done", "{}", done.text);
}

#[tokio::test]
async fn wrong_passwords_are_throttled_and_an_admin_can_require_a_reset() {
    let mut w = World::new().await;
    w.put_policy(json!({"require_password": true})).await;
    let (login, _) = w.code_step(None).await;
    w.app.post_anon(&paths::login_password(&login), json!({"password": STRONG})).await.assert_status(200);
    let (login, _) = w.code_step(None).await;
    let path = paths::login_password(&login);
    for _ in 0..5 {
        w.app.post_anon(&path, json!({"password": "wrong-but-long-77"})).await.assert_problem(401, "password_invalid");
    }
    let throttled = w.app.post_anon(&path, json!({"password": STRONG})).await;
    throttled.assert_problem(429, "rate_limited");
    assert!(throttled.headers.contains_key("retry-after"));

    w.app
        .request(reqwest::Method::POST, &paths::member_password_reset(&w.member_id), Some(&w.ent.key), None)
        .await
        .assert_status(204);
    let (login, step) = w.code_step(None).await;
    assert_eq!(step.body["next"], "set_password");
    let done = w.app.post_anon(&paths::login_password(&login), json!({"password": "another-cobalt-heron-19"})).await;
    assert_eq!(done.body["next"], "done", "{}", done.text);
}

#[tokio::test]
async fn twenty_parallel_wrong_passwords_are_counted_before_they_are_judged() {
    let mut w = World::new().await;
    w.put_policy(json!({"require_password": true})).await;
    let (login, _) = w.code_step(None).await;
    w.app.post_anon(&paths::login_password(&login), json!({"password": STRONG})).await.assert_status(200);
    let (login, _) = w.code_step(None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        let (client, url) = (w.app.client.clone(), w.app.url(&paths::login_password(&login)));
        tasks.spawn(async move {
            let resp = client.post(url).json(&json!({"password": format!("wrong-but-long-{i}")})).send().await;
            TestApp::read(resp.expect("sent")).await
        });
    }
    let mut judged = 0;
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.expect("task");
        match reply.code() {
            "password_invalid" => judged += 1,
            "rate_limited" => {}
            other => panic!("unexpected answer {other}: {}", reply.text),
        }
    }
    assert!(judged <= 5, "at most the limit is judged: {judged}");
    // One lock of the base length, not one doubled for each parallel guess.
    let throttled = w.app.post_anon(&paths::login_password(&login), json!({"password": STRONG})).await;
    throttled.assert_problem(429, "rate_limited");
    let wait: i64 = throttled.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait <= 60, "locked for the first period only: {wait} s");
    w.clock.advance(Duration::from_secs(61));
    let done = w.app.post_anon(&paths::login_password(&login), json!({"password": STRONG})).await;
    assert_eq!(done.body["next"], "done", "{}", done.text);
}

#[tokio::test]
async fn numbers_outside_the_allowed_regions_are_refused() {
    let w = World::new().await;
    w.put_policy(json!({"allowed_regions": ["CN"]})).await;
    w.app
        .post(&paths::members(), &w.ent.key, json!({"name": "Sam", "phone": "+1 201 555 0123"}))
        .await
        .assert_problem(422, "invalid_phone");
    w.put_policy(json!({"allowed_regions": ["US"]})).await;
    w.app.start_login(PHONE).await.assert_problem(403, "forbidden");
}

#[tokio::test]
async fn a_policy_with_bad_numbers_is_refused_and_changes_nothing() {
    let w = World::new().await;
    let before = w.app.get(&paths::policy(), &w.ent.key).await.body;
    let mut bad = before.clone();
    bad.as_object_mut().unwrap().remove("updated_at");
    bad["max_devices"] = json!(0);
    bad["allowed_regions"] = json!(["XX"]);
    let reply = w.app.request(reqwest::Method::PUT, &paths::policy(), Some(&w.ent.key), Some(bad)).await;
    reply.assert_problem(422, "validation_failed");
    let fields = reply.error_fields();
    assert!(fields.contains(&"max_devices".to_string()) && fields.contains(&"allowed_regions[0]".to_string()));
    assert_eq!(w.app.get(&paths::policy(), &w.ent.key).await.body, before);
}

#[tokio::test]
async fn the_policy_get_answers_can_be_put_back_changed_unless_someone_changed_it_since() {
    let w = World::new().await;
    let policy = paths::policy();
    let put = |body: Value| w.app.request(reqwest::Method::PUT, &policy, Some(&w.ent.key), Some(body));
    // Read while the defaults apply (`updated_at` null), change, put back whole.
    let mut read = w.app.get(&paths::policy(), &w.ent.key).await.body;
    assert!(read["updated_at"].is_null(), "{read}");
    read["max_devices"] = json!(3);
    let first = put(read).await;
    first.assert_status(200);
    assert!(first.body["updated_at"].is_string(), "{}", first.text);

    // Two admins read the same policy; the first one's change goes through ...
    let (mut alice, mut bob) = (first.body.clone(), first.body.clone());
    w.clock.advance(Duration::from_secs(5));
    alice["require_password"] = json!(true);
    put(alice).await.assert_status(200);
    // ... and the second one's, made on what it read before, is refused rather than undoing it.
    bob["max_devices"] = json!(4);
    put(bob.clone()).await.assert_problem(409, "conflict");
    let now = w.app.get(&paths::policy(), &w.ent.key).await.body;
    assert_eq!((now["require_password"].clone(), now["max_devices"].clone()), (json!(true), json!(3)));
    // Without `updated_at` the document simply replaces the policy, as before.
    bob.as_object_mut().unwrap().remove("updated_at");
    put(bob).await.assert_status(200);
    // `updated_at` of another type is a field error.
    let mut odd = now.clone();
    odd["updated_at"] = json!(17);
    let refused = put(odd).await;
    refused.assert_problem(422, "validation_failed");
    assert_eq!(refused.error_fields(), vec!["updated_at"]);
}
