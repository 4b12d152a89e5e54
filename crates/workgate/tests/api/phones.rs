//! Phone numbers: every way a person types a mobile number stores the same E.164; anything that is
//! not a mobile number is refused with `invalid_phone` and nothing is stored.

use crate::helpers::{TestApp, enc};
use crate::paths;
use serde_json::json;

const FORMS: [&str; 8] = [
    "13900139001",
    "139 0013 9001",
    "139-0013-9001",
    "+86 139 0013 9001",
    "+8613900139001",
    "+86-139-0013-9001",
    "0086 13900139001",
    "008613900139001",
];

#[tokio::test]
async fn national_international_spaced_dashed_and_0086_forms_store_the_same_e164() {
    let app = TestApp::spawn().await;
    for (i, form) in FORMS.iter().enumerate() {
        let ent = app.enterprise(&format!("Ent {i}"), "13800138000").await;
        let m = app.add_member(&ent, "Zhang San", form).await;
        assert_eq!(m["phone"], "+8613900139001", "{form}");
    }
    let stored: Vec<String> = {
        let pool = app.db().await;
        let rows = sqlx::query_scalar("SELECT DISTINCT phone FROM members WHERE phone LIKE '%9001'")
            .fetch_all(&pool)
            .await
            .unwrap();
        pool.close().await;
        rows
    };
    assert_eq!(stored, vec!["+8613900139001".to_string()], "stored as E.164, whatever the form");
}

#[tokio::test]
async fn every_form_of_a_stored_number_is_the_same_member() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    for form in FORMS {
        let reply = app.post(&paths::members(), &ent.key, json!({"name": "Again", "phone": form})).await;
        reply.assert_problem(409, "conflict");
        let lookup = app.get(&paths::member_lookup_phone(&enc(form)), &ent.key).await;
        lookup.assert_status(200);
        assert_eq!(lookup.body["member"]["id"], m["id"], "{form}");
    }
    assert_eq!(app.count("members").await, 2);
}

#[tokio::test]
async fn numbers_with_a_country_code_keep_their_country() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Jane", "+1 (201) 555-0123").await;
    assert_eq!(m["phone"], "+12015550123");
    let m = app.add_member(&ent, "Taro", "+81 90-1234-5678").await;
    assert_eq!(m["phone"], "+819012345678");
}

#[tokio::test]
async fn landlines_garbage_and_too_short_numbers_are_invalid_phone_and_store_nothing() {
    let (app, ent) = TestApp::with_acme().await;
    let before = app.snapshot().await;
    for phone in [
        "010 6552 9988",    // Beijing landline
        "+86 21 6123 4567", // Shanghai landline
        "hello",
        "139OO139001",
        "12",
        "+86 138",
        "1390013900",   // one digit short
        "139001390012", // one digit long
        "",
        "   ",
        "+",
        "400 810 8888", // a company hotline
    ] {
        let reply = app.post(&paths::members(), &ent.key, json!({"name": "X", "phone": phone})).await;
        reply.assert_problem(422, "invalid_phone");
        assert!(!reply.body["detail"].as_str().unwrap().is_empty(), "detail tells what was understood");
    }
    assert_eq!(app.snapshot().await, before);
    assert_eq!(app.count("members").await, 1);
}

#[tokio::test]
async fn an_invalid_phone_says_what_was_understood() {
    let (app, ent) = TestApp::with_acme().await;
    let reply = app.post(&paths::members(), &ent.key, json!({"name": "X", "phone": "010 6552 9988"})).await;
    reply.assert_problem(422, "invalid_phone");
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(detail.contains("+861065529988"), "{detail}");
    assert!(detail.contains("landline"), "{detail}");
}

#[tokio::test]
async fn patching_a_phone_normalises_it_and_refuses_a_landline() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "13900139001").await;
    let path = paths::member(m["id"].as_str().unwrap());
    let reply = app.patch(&path, &ent.key, json!({"phone": "0086 137-0013-7002"})).await;
    reply.assert_status(200);
    assert_eq!(reply.body["phone"], "+8613700137002");

    let before = app.snapshot().await;
    app.patch(&path, &ent.key, json!({"phone": "010 6552 9988"})).await.assert_problem(422, "invalid_phone");
    assert_eq!(app.snapshot().await, before);
}

#[tokio::test]
async fn creating_an_enterprise_with_a_landline_owner_is_refused() {
    let app = TestApp::spawn().await;
    let result = app
        .server
        .services
        .create_enterprise(
            workgate_domain::enterprises::CreateEnterprise {
                name: "Acme".into(),
                owner_name: "Owner".into(),
                owner_phone: "010 6552 9988".into(),
                region: "CN".into(),
            },
            workgate_domain::model::Actor::Cli,
        )
        .await;
    assert!(matches!(result, Err(workgate_domain::Error::InvalidPhone { .. })));
    assert_eq!(app.count("enterprises").await, 0);
}
