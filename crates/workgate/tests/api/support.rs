//! The support view `GET /members/lookup?phone=`: why can't this person sign in?

use crate::helpers::{TestApp, wrong_code};
use crate::paths;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use workgate_domain::clock::ManualClock;

const PHONE: &str = "+8613900139001";

#[tokio::test]
async fn an_unknown_number_is_suggested_to_be_added_and_shows_no_logins() {
    let (app, ent) = TestApp::with_acme().await;
    let other = app.enterprise("Globex", "13800138001").await;
    app.add_member(&other, "Zhang San", PHONE).await;
    app.start_login(PHONE).await.assert_status(200);
    let view = app.get(&paths::member_lookup_phone("13900139001"), &ent.key).await;
    view.assert_status(200);
    assert_eq!(view.body["suggested_fix"], "add_member");
    assert!(view.body["member"].is_null());
    assert_eq!(view.body["recent_events"], json!([]), "another enterprise's logins are not shown");
}

#[tokio::test]
async fn an_invited_member_shows_the_invitation_and_its_delivery() {
    let (app, ent) = TestApp::with_acme().await;
    app.add_member(&ent, "Zhang San", PHONE).await;
    app.wait_for_sms(PHONE, 1).await;
    // The sender marks the message sent just after handing it over: wait for that, briefly.
    let mut view = app.get(&paths::member_lookup_phone("13900139001"), &ent.key).await;
    for _ in 0..250 {
        if view.body["invitations"][0]["delivery"] == "sent" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        view = app.get(&paths::member_lookup_phone("13900139001"), &ent.key).await;
    }
    assert_eq!(view.body["suggested_fix"], "resend_invitation");
    assert_eq!(view.body["invitations"][0]["state"], "pending");
    assert_eq!(view.body["invitations"][0]["delivery"], "sent");
    assert!(view.body["explanation"].as_str().unwrap().contains("delivered"));
}

#[tokio::test]
async fn a_disabled_member_is_suggested_to_be_enabled() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", PHONE).await;
    app.disable_member(m["id"].as_str().unwrap(), &ent.key).await;
    app.start_login(PHONE).await.assert_problem(403, "member_disabled");
    let view = app.get(&paths::member_lookup_phone("13900139001"), &ent.key).await;
    assert_eq!(view.body["suggested_fix"], "enable");
    assert_eq!(view.body["recent_events"][0]["kind"], "member_disabled");
}

#[tokio::test]
async fn wrong_codes_in_a_row_lock_the_number_until_an_admin_unlocks_it() {
    let clock = Arc::new(ManualClock::default());
    let app = TestApp::spawn_configured(
        |c| {
            c.login.consecutive_failures_limit = 3;
            c.login.failure_lock_base_secs = 600;
        },
        clock.clone(),
    )
    .await;
    let ent = app.enterprise("Acme", "13800138000").await;
    let m = app.add_member(&ent, "Zhang San", PHONE).await;
    let started = app.start_login(PHONE).await;
    let login = started.login_id();
    let code = app.code_for(PHONE, 2).await;
    let wrong = wrong_code(&code);
    for _ in 0..3 {
        app.submit_code(&login, &wrong).await.assert_status(400);
    }
    clock.advance(Duration::from_secs(61));
    let refused = app.start_login(PHONE).await;
    refused.assert_problem(429, "rate_limited");
    let view = app.get(&paths::member_lookup_phone("13900139001"), &ent.key).await;
    assert_eq!(view.body["suggested_fix"], "wait_for_unlock");
    assert!(view.body["locked_until"].is_string());
    let kinds: Vec<&str> =
        view.body["recent_events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"code_failed") && kinds.contains(&"rate_limited"), "{kinds:?}");

    let id = m["id"].as_str().unwrap();
    app.request(reqwest::Method::POST, &paths::member_unlock(id), Some(&ent.key), None).await.assert_status(204);
    app.start_login(PHONE).await.assert_status(200);
    let audit = app.get(&paths::audit_query("action=member.unlock"), &ent.key).await;
    assert_eq!(audit.body["items"].as_array().map(Vec::len), Some(1));
}
