use crate::mock::{self, MockServer, Recorded, Scenario};
use axum::http::{Method, StatusCode};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::Arc;
use workgate_domain::sms::{SendError, SmsProvider};

const SECRET: &str = "whsec_test_0123456789";
const ID: &str = "sms_01JDQ0Z8B6W7K3M2N4P5Q6R7S8";
const TO: &str = "+8613800138000";
const BODY: &str = "【Workgate】验证码 123456，10 分钟内有效。";

/// The receiver's side of the scheme, written from its documentation: HMAC-SHA256 keyed with the
/// secret over "<t>.<raw body>", hex, compared with v1; t within 5 minutes.
fn check(request: &Recorded) -> Result<(), String> {
    if request.method != Method::POST {
        return Err(format!("method {}", request.method));
    }
    if request.uri != "/hooks/sms?channel=login" {
        return Err(format!("path {}", request.uri));
    }
    if request.header("content-type")? != "application/json" {
        return Err("content-type is not application/json".into());
    }
    let header = request.header("x-workgate-signature")?;
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = Some(value),
            Some(("v1", value)) => v1.push(value),
            _ => return Err(format!("unexpected signature part '{part}'")),
        }
    }
    let t = t.ok_or("no t in the signature")?;
    if !mock::is_recent_unix(t, 300) {
        return Err(format!("t={t} is not within 5 minutes of now"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(&request.body);
    let expected = hex::encode(mac.finalize().into_bytes());
    if !v1.contains(&expected.as_str()) {
        return Err(format!("signature {header} does not match v1={expected}"));
    }
    let json: serde_json::Value = serde_json::from_slice(&request.body).map_err(|e| format!("body: {e}"))?;
    let object = json.as_object().ok_or("body is not an object")?;
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    if keys != ["body", "id", "sent_at", "to"] {
        return Err(format!("body keys {keys:?}"));
    }
    if json["id"] != ID || json["to"] != TO || json["body"] != BODY {
        return Err(format!("body {json}"));
    }
    if !json["sent_at"].as_str().is_some_and(|s| mock::is_recent_rfc3339(s, 300)) {
        return Err(format!("sent_at {}", json["sent_at"]));
    }
    Ok(())
}

fn answer(scenario: &Scenario) -> (StatusCode, String) {
    match scenario {
        Scenario::Success => (StatusCode::OK, r#"{"accepted":true}"#.into()),
        Scenario::ClientError => (StatusCode::UNPROCESSABLE_ENTITY, r#"{"error":"unknown number"}"#.into()),
        _ => (StatusCode::BAD_GATEWAY, r#"{"error":"upstream down"}"#.into()),
    }
}

fn provider(base_url: &str, timeout_ms: u64) -> Arc<dyn SmsProvider> {
    mock::provider(
        &format!(
            r#"
        [sms]
        provider = "webhook"
        [sms.webhook]
        url = "{base_url}/hooks/sms?channel=login"
        secret = "{SECRET}"
        timeout_ms = {timeout_ms}
        "#
        ),
        "webhook provider",
    )
}

#[tokio::test]
async fn webhook_signs_and_maps_answers() {
    let server = MockServer::start(check, answer).await;
    let sms = provider(&server.base_url, 300);
    assert_eq!(sms.name(), "webhook");

    assert_eq!(sms.send(ID, TO, &crate::text(BODY)).await, Ok(()));
    server.assert_checked(1);

    server.set(Scenario::ClientError);
    let error = sms.send(ID, TO, &crate::text(BODY)).await;
    assert!(
        matches!(&error, Err(SendError::Permanent(m)) if m.contains("422") && m.contains("unknown number")),
        "{error:?}"
    );

    server.set(Scenario::ServerError);
    assert!(matches!(sms.send(ID, TO, &crate::text(BODY)).await, Err(SendError::Retryable(m)) if m.contains("502")));

    server.set(Scenario::Reply(StatusCode::TOO_MANY_REQUESTS, "{}".into()));
    assert!(matches!(sms.send(ID, TO, &crate::text(BODY)).await, Err(SendError::Retryable(_))));

    server.set(Scenario::Reply(StatusCode::FOUND, "{}".into()));
    assert!(
        matches!(sms.send(ID, TO, &crate::text(BODY)).await, Err(SendError::Permanent(_))),
        "redirects are not followed"
    );

    server.set(Scenario::Hang);
    let started = std::time::Instant::now();
    let error = sms.send(ID, TO, &crate::text(BODY)).await;
    assert!(matches!(&error, Err(SendError::Retryable(m)) if m.contains("300 ms")), "{error:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "the timeout applies");
    server.assert_checked(6);
}

#[tokio::test]
async fn webhook_connection_refused_is_retryable() {
    let sms = provider(&mock::closed_port_url().await, 300);
    assert!(matches!(sms.send(ID, TO, &crate::text(BODY)).await, Err(SendError::Retryable(_))));
}
