use crate::mock::{self, MockServer, Recorded, Scenario};
use axum::http::{Method, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use workgate_domain::sms::{SendError, SmsProvider};

const SECRET_ID: &str = "AKIDtestSecretId0123456789";
const SECRET_KEY: &str = "testSecretKey0123456789abcdef";
const ID: &str = "sms_01JDQ0Z8B6W7K3M2N4P5Q6R7S8";
const TO: &str = "+8613800138000";
const BODY: &str = "【Workgate】验证码 123456，10 分钟内有效。";

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// TC3-HMAC-SHA256 written again here from Tencent's documentation, step by step, so that the
/// server checks the crate rather than the crate checking itself.
fn tc3(secret_id: &str, secret_key: &str, service: &str, host: &str, timestamp: i64, payload: &[u8]) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(timestamp).expect("timestamp").date();
    let date = format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day());
    let hashed_payload = hex::encode(Sha256::digest(payload));
    let canonical_request = [
        "POST",
        "/",
        "",
        &format!("content-type:application/json; charset=utf-8\nhost:{host}\n"),
        "content-type;host",
        &hashed_payload,
    ]
    .join("\n");
    let scope = format!("{date}/{service}/tc3_request");
    let string_to_sign =
        format!("TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}", hex::encode(Sha256::digest(canonical_request.as_bytes())));
    let secret_date = hmac(format!("TC3{secret_key}").as_bytes(), &date);
    let secret_service = hmac(&secret_date, service);
    let secret_signing = hmac(&secret_service, "tc3_request");
    let signature = hex::encode(hmac(&secret_signing, &string_to_sign));
    format!("TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders=content-type;host, Signature={signature}")
}

#[test]
fn the_test_signer_reproduces_tencents_example() {
    let payload = r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;
    assert_eq!(
        tc3(
            "AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******",
            "Gu5t9xGARNpq86cd98joQYCN3*******",
            "cvm",
            "cvm.tencentcloudapi.com",
            1_551_113_065,
            payload.as_bytes()
        ),
        "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3*******/2019-02-25/cvm/tc3_request, \
         SignedHeaders=content-type;host, Signature=2230eefd229f582d8b1b891af7107b91597240707d778ab3738f756258d7652c"
    );
}

fn check(request: &Recorded) -> Result<(), String> {
    if request.method != Method::POST || request.uri != "/" {
        return Err(format!("{} {}", request.method, request.uri));
    }
    for (name, expected) in [
        ("content-type", "application/json; charset=utf-8"),
        ("x-tc-action", "SendSms"),
        ("x-tc-version", "2021-01-11"),
        ("x-tc-region", "ap-beijing"),
    ] {
        let value = request.header(name)?;
        if value != expected {
            return Err(format!("{name}: {value}, expected {expected}"));
        }
    }
    let timestamp = request.header("x-tc-timestamp")?;
    if !mock::is_recent_unix(timestamp, 300) {
        return Err(format!("x-tc-timestamp {timestamp} is not now"));
    }
    let timestamp: i64 = timestamp.parse().map_err(|_| "x-tc-timestamp is not a number")?;
    let host = request.header("host")?;
    let expected = tc3(SECRET_ID, SECRET_KEY, "sms", host, timestamp, &request.body);
    let authorization = request.header("authorization")?;
    if authorization != expected {
        return Err(format!("authorization {authorization}, expected {expected}"));
    }
    let body: serde_json::Value = serde_json::from_slice(&request.body).map_err(|e| format!("body: {e}"))?;
    let expected_body = json!({
        "PhoneNumberSet": [TO],
        "SmsSdkAppId": "1400006666",
        "SignName": "Workgate",
        "TemplateId": "1234567",
        "TemplateParamSet": ["123456"],
        "SessionContext": ID,
    });
    if body != expected_body {
        return Err(format!("body {body}, expected {expected_body}"));
    }
    Ok(())
}

fn api_error(code: &str) -> String {
    json!({"Response": {"Error": {"Code": code, "Message": "explained"}, "RequestId": "req-err"}}).to_string()
}

fn send_status(code: &str) -> String {
    json!({"Response": {"SendStatusSet": [{
        "SerialNo": "5000:1045710669157053657849499619", "PhoneNumber": TO, "Fee": 1, "SessionContext": ID,
        "Code": code, "Message": "as documented", "IsoCode": "CN"
    }], "RequestId": "req-1"}})
    .to_string()
}

fn answer(scenario: &Scenario) -> (StatusCode, String) {
    match scenario {
        Scenario::Success => (StatusCode::OK, send_status("Ok")),
        Scenario::ClientError => (StatusCode::BAD_REQUEST, api_error("InvalidParameter")),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal error".into()),
    }
}

fn provider(endpoint: &str) -> Arc<dyn SmsProvider> {
    mock::provider(
        &format!(
            r#"
        [sms]
        provider = "tencent"
        [sms.tencent]
        secret_id = "{SECRET_ID}"
        secret_key = "{SECRET_KEY}"
        region = "ap-beijing"
        sms_sdk_app_id = "1400006666"
        sign_name = "Workgate"
        endpoint = "{endpoint}"
        timeout_ms = 300
        [sms.tencent.templates.mainland]
        login_code = {{ id = "1234567", params = ["code"] }}
        invitation = {{ id = "1234568", params = ["enterprise", "member", "path", "days"] }}
        phone_changed = {{ id = "1234569", params = ["new_number"] }}
        "#
        ),
        "tencent provider",
    )
}

#[tokio::test]
async fn tencent_signs_sends_the_code_and_maps_answers() {
    let server = MockServer::start(check, answer).await;
    let sms = provider(&server.base_url);
    assert_eq!(sms.name(), "tencent");
    let code = crate::code("123456");

    assert_eq!(sms.send(ID, TO, &code).await, Ok(()));
    server.assert_checked(1);

    server.set(Scenario::ClientError);
    assert!(matches!(sms.send(ID, TO, &code).await, Err(SendError::Permanent(m)) if m.contains("400")));

    server.set(Scenario::ServerError);
    assert!(matches!(sms.send(ID, TO, &code).await, Err(SendError::Retryable(m)) if m.contains("500")));

    server.set(Scenario::Hang);
    let started = std::time::Instant::now();
    assert!(matches!(sms.send(ID, TO, &code).await, Err(SendError::Retryable(m)) if m.contains("300 ms")));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));

    // Tencent reports API errors with HTTP 200.
    let cases = [
        (api_error("AuthFailure.SignatureFailure"), false),
        (api_error("InvalidParameterValue.TemplateParameterFormatError"), false),
        (api_error("InternalError.Timeout"), true),
        (api_error("RequestLimitExceeded"), true),
        (send_status("InvalidParameterValue.IncorrectPhoneNumber"), false),
        (send_status("FailedOperation.PhoneNumberInBlacklist"), false),
        (send_status("LimitExceeded.PhoneNumberThirtySecondLimit"), true),
        (send_status("LimitExceeded.PhoneNumberDailyLimit"), false),
        (send_status("LimitExceeded.PhoneNumberOneHourLimit"), false),
        (api_error("AuthFailure.SignatureExpire"), false),
        (send_status("FailedOperation.SignatureIncorrectOrUnapproved"), false),
    ];
    server.assert_classified_with_200(sms.as_ref(), (ID, TO), &code, &cases).await;
    server.assert_checked(4 + cases.len());
}

fn sent_body(server: &MockServer, n: usize) -> serde_json::Value {
    serde_json::from_slice(&server.requests()[n].body).expect("json")
}

#[tokio::test]
async fn tencent_sends_each_kind_with_its_own_template_and_parameters() {
    let server = MockServer::start(|_| Ok(()), answer).await;
    let sms = provider(&server.base_url);
    // An invitation whose enterprise name holds six digits sends no code: its own parameters.
    assert_eq!(sms.send(ID, TO, &crate::invitation()).await, Ok(()));
    let body = sent_body(&server, 0);
    assert_eq!(body["TemplateId"], "1234568");
    assert_eq!(body["TemplateParamSet"], json!(["Acme 123456", "李雷", "i/wgi_abc", "7"]));
    // Codes of other lengths are sent as they are.
    assert_eq!(sms.send(ID, TO, &crate::code("04219876")).await, Ok(()));
    assert_eq!(sent_body(&server, 1)["TemplateParamSet"], json!(["04219876"]));
}

#[tokio::test]
async fn tencent_refuses_what_it_has_no_template_for_without_a_request() {
    let server = MockServer::start(check, answer).await;
    let sms = provider(&server.base_url);
    let result = sms.send(ID, "+14155550100", &crate::code("123456")).await;
    assert!(matches!(result, Err(SendError::Permanent(m)) if m.contains("international")));
    let result = sms.send(ID, TO, &crate::text(BODY)).await;
    assert!(matches!(result, Err(SendError::Permanent(m)) if m.contains("bare text")));
    server.assert_checked(0);
}
