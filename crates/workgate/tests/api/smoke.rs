use crate::helpers::TestApp;
use crate::paths;
use serde_json::json;

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = TestApp::spawn().await;
    let health = app.request(reqwest::Method::GET, "/healthz", None, None).await;
    health.assert_status(200);
    assert_eq!(health.body["status"], "ok");
    app.request(reqwest::Method::GET, "/readyz", None, None).await.assert_status(200);
}

#[tokio::test]
async fn a_member_added_by_api_key_is_listed_with_e164_phone() {
    let (app, ent) = TestApp::with_acme().await;
    let m = app.add_member(&ent, "Zhang San", "139-0013-9001").await;
    assert_eq!(m["phone"], "+8613900139001");
    assert_eq!(m["status"], "invited");
    let list = app.get(&paths::members_query("q=zhang"), &ent.key).await;
    list.assert_status(200);
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    let _ = json!({});
}
