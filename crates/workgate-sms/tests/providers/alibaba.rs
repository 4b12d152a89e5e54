//! Alibaba Cloud SMS against a local server. The signature itself is checked against the official
//! SDK: a vector computed by its signer (unit test in `alibaba.rs`), and every request the real
//! server sends in `tests/api/sms_gateways.rs` (through `scripts/sms-sdk-check.py`).

use crate::mock::{self, MockServer, Recorded, Scenario};
use axum::http::{Method, StatusCode};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use workgate_domain::sms::{SendError, SmsProvider};

const ID: &str = "sms_01JDQ0Z8B6W7K3M2N4P5Q6R7S8";
const TO: &str = "+8613800138000";

/// The query's parameters, decoded by the URL parser (the server sends no `+`, so its reading of
/// `+` as a space does not matter).
fn query(request: &Recorded) -> BTreeMap<String, String> {
    let url = reqwest::Url::parse(&format!("http://capture{}", request.uri)).expect("a path and query");
    url.query_pairs().into_owned().collect()
}

fn check(request: &Recorded) -> Result<(), String> {
    if request.method != Method::POST || !request.uri.starts_with("/?") || !request.body.is_empty() {
        return Err(format!("{} {} with {} bytes", request.method, request.uri, request.body.len()));
    }
    for (name, expected) in [("x-acs-action", "SendSms"), ("x-acs-version", "2017-05-25")] {
        if request.header(name)? != expected {
            return Err(format!("{name}: {}", request.header(name)?));
        }
    }
    let date = request.header("x-acs-date")?;
    if !mock::is_recent_rfc3339(date, 300) || date.len() != "2026-11-27T01:02:03Z".len() {
        return Err(format!("x-acs-date {date}"));
    }
    let authorization = request.header("authorization")?;
    if !authorization.starts_with("ACS3-HMAC-SHA256 Credential=LTAItest,SignedHeaders=host;x-acs-action;") {
        return Err(format!("authorization {authorization}"));
    }
    let query = query(request);
    let expected = [
        ("OutId", ID),
        ("PhoneNumbers", "13800138000"),
        ("SignName", "工作门"),
        ("TemplateCode", "SMS_1"),
        ("TemplateParam", r#"{"code":"123456"}"#),
    ];
    let expected: BTreeMap<String, String> = expected.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    if query != expected {
        return Err(format!("query {query:?}"));
    }
    Ok(())
}

fn answer(scenario: &Scenario) -> (StatusCode, String) {
    match scenario {
        Scenario::Success => {
            (StatusCode::OK, json!({"Code": "OK", "Message": "OK", "BizId": "1", "RequestId": "r"}).to_string())
        }
        Scenario::ClientError => (
            StatusCode::BAD_REQUEST,
            json!({"Code": "SignatureDoesNotMatch", "Message": "no", "RequestId": "r"}).to_string(),
        ),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "busy".into()),
    }
}

fn provider(endpoint: &str) -> Arc<dyn SmsProvider> {
    mock::provider(
        &format!(
            r#"
        [sms]
        provider = "alibaba"
        [sms.alibaba]
        access_key_id = "LTAItest"
        access_key_secret = "secret"
        sign_name = "工作门"
        endpoint = "{endpoint}"
        timeout_ms = 300
        [sms.alibaba.templates.mainland]
        login_code = {{ id = "SMS_1", params = ["code"] }}
        invitation = {{ id = "SMS_2", params = ["enterprise", "path"] }}
        phone_changed = {{ id = "SMS_3", params = ["enterprise", "new_number"] }}
        "#
        ),
        "alibaba provider",
    )
}

#[tokio::test]
async fn alibaba_sends_the_code_by_template_and_maps_answers() {
    let server = MockServer::start(check, answer).await;
    let sms = provider(&server.base_url);
    assert_eq!(sms.name(), "alibaba");
    let code = crate::code("123456");
    assert_eq!(sms.send(ID, TO, &code).await, Ok(()));
    server.assert_checked(1);

    server.set(Scenario::ClientError);
    assert!(
        matches!(sms.send(ID, TO, &code).await, Err(SendError::Permanent(m)) if m.contains("SignatureDoesNotMatch"))
    );
    server.set(Scenario::ServerError);
    assert!(matches!(sms.send(ID, TO, &code).await, Err(SendError::Retryable(m)) if m.contains("503")));
    server.set(Scenario::Hang);
    assert!(matches!(sms.send(ID, TO, &code).await, Err(SendError::Retryable(m)) if m.contains("300 ms")));

    // Business errors come with HTTP 200.
    let reply = |code: &str, message: &str| json!({"Code": code, "Message": message, "RequestId": "r"}).to_string();
    let cases = [
        (reply("isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1"), true),
        (reply("isv.BUSINESS_LIMIT_CONTROL", "触发小时级流控Permits:5"), false),
        (reply("isv.BUSINESS_LIMIT_CONTROL", "触发天级流控Permits:10"), false),
        (reply("isv.AMOUNT_NOT_ENOUGH", "余额不足"), false),
        (reply("isv.SMS_TEMPLATE_ILLEGAL", "模板不合法"), false),
        (reply("isv.MOBILE_NUMBER_ILLEGAL", "号码格式错误"), false),
        (reply("isp.SYSTEM_ERROR", "系统错误"), true),
    ];
    server.assert_classified_with_200(sms.as_ref(), (ID, TO), &code, &cases).await;
    server.assert_checked(4 + cases.len());
}

#[tokio::test]
async fn alibaba_names_each_parameter_of_an_invitation() {
    let server = MockServer::start(|_| Ok(()), answer).await;
    let sms = provider(&server.base_url);
    assert_eq!(sms.send(ID, TO, &crate::invitation()).await, Ok(()));
    let sent = query(&server.requests()[0]);
    assert_eq!(sent["TemplateCode"], "SMS_2");
    assert_eq!(sent["TemplateParam"], r#"{"enterprise":"Acme 123456","path":"i/wgi_abc"}"#);
    // No international templates: refused without a request.
    let result = sms.send(ID, "+85291234567", &crate::code("123456")).await;
    assert!(matches!(result, Err(SendError::Permanent(m)) if m.contains("international")));
    assert_eq!(server.requests().len(), 1);
}
