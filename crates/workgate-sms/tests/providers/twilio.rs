use crate::mock::{self, MockServer, Recorded, Scenario};
use axum::http::{Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use std::sync::Arc;
use workgate_domain::sms::{SendError, SmsProvider};

const SID: &str = "AC0123456789abcdef0123456789abcdef";
const TOKEN: &str = "twilio-auth-token-0123456789";
const FROM: &str = "+15005550006";
const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";
const ID: &str = "sms_01JDQ0Z8B6W7K3M2N4P5Q6R7S8";
const TO: &str = "+14155550100";
const BODY: &str = "Your Workgate code is 123456 & it expires in 10 minutes (= 600 s). 验证码";

fn check_with(sender: (&'static str, &'static str)) -> impl Fn(&Recorded) -> Result<(), String> {
    move |request| {
        if request.method != Method::POST {
            return Err(format!("method {}", request.method));
        }
        if request.uri != format!("/2010-04-01/Accounts/{SID}/Messages.json") {
            return Err(format!("path {}", request.uri));
        }
        let authorization = request.header("authorization")?;
        let encoded = authorization.strip_prefix("Basic ").ok_or("not basic authentication")?;
        let decoded = STANDARD.decode(encoded).map_err(|e| format!("basic credentials: {e}"))?;
        if decoded != format!("{SID}:{TOKEN}").as_bytes() {
            return Err(format!("basic credentials {}", String::from_utf8_lossy(&decoded)));
        }
        if request.header("content-type")? != "application/x-www-form-urlencoded" {
            return Err("content-type is not a form".into());
        }
        let mut form = request.form.clone().ok_or("the form does not decode")?;
        form.sort();
        let mut expected = vec![("Body", BODY), sender, ("To", TO)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<Vec<_>>();
        expected.sort();
        if form != expected {
            return Err(format!("form {form:?}, expected {expected:?}"));
        }
        Ok(())
    }
}

fn answer(scenario: &Scenario) -> (StatusCode, String) {
    match scenario {
        Scenario::Success => (
            StatusCode::CREATED,
            json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued", "to": TO, "body": BODY})
                .to_string(),
        ),
        Scenario::ClientError => (
            StatusCode::BAD_REQUEST,
            json!({"code": 21211, "message": "The 'To' number +14155550100 is not a valid phone number.",
                   "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400})
            .to_string(),
        ),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"code": 20500, "message": "Internal Server Error", "status": 503}).to_string(),
        ),
    }
}

fn provider(base_url: &str, sender_line: &str) -> Arc<dyn SmsProvider> {
    mock::provider(
        &format!(
            r#"
        [sms]
        provider = "twilio"
        [sms.twilio]
        account_sid = "{SID}"
        auth_token = "{TOKEN}"
        {sender_line}
        base_url = "{base_url}"
        timeout_ms = 300
        "#
        ),
        "twilio provider",
    )
}

#[tokio::test]
async fn twilio_authenticates_posts_the_form_and_maps_answers() {
    let server = MockServer::start(check_with(("From", FROM)), answer).await;
    let sms = provider(&server.base_url, &format!(r#"from = "{FROM}""#));
    assert_eq!(sms.name(), "twilio");

    assert_eq!(sms.send(ID, TO, &crate::text(BODY)).await, Ok(()));
    server.assert_checked(1);

    server.set(Scenario::ClientError);
    let error = sms.send(ID, TO, &crate::text(BODY)).await;
    assert!(
        matches!(&error, Err(SendError::Permanent(m)) if m.contains("21211") && m.contains("not a valid phone number")),
        "{error:?}"
    );

    server.set(Scenario::ServerError);
    assert!(matches!(sms.send(ID, TO, &crate::text(BODY)).await, Err(SendError::Retryable(m)) if m.contains("503")));

    server.set(Scenario::Reply(
        StatusCode::TOO_MANY_REQUESTS,
        json!({"code": 20429, "message": "Too Many Requests", "status": 429}).to_string(),
    ));
    assert!(matches!(sms.send(ID, TO, &crate::text(BODY)).await, Err(SendError::Retryable(m)) if m.contains("20429")));

    // A full queue of the sender's messages passes: retried although it is a 400.
    server.set(Scenario::Reply(
        StatusCode::BAD_REQUEST,
        json!({"code": 21611, "message": "This 'From' number has exceeded the maximum number of queued messages", "status": 400})
            .to_string(),
    ));
    assert!(matches!(sms.send(ID, TO, &crate::text(BODY)).await, Err(SendError::Retryable(m)) if m.contains("21611")));

    server.set(Scenario::Reply(
        StatusCode::UNAUTHORIZED,
        json!({"code": 20003, "message": "Authenticate", "status": 401}).to_string(),
    ));
    assert!(matches!(sms.send(ID, TO, &crate::text(BODY)).await, Err(SendError::Permanent(m)) if m.contains("20003")));

    server.set(Scenario::Hang);
    let started = std::time::Instant::now();
    assert!(matches!(sms.send(ID, TO, &crate::text(BODY)).await, Err(SendError::Retryable(m)) if m.contains("300 ms")));
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    server.assert_checked(7);
}

#[tokio::test]
async fn twilio_can_send_through_a_messaging_service() {
    let server = MockServer::start(check_with(("MessagingServiceSid", SERVICE)), answer).await;
    let sms = provider(&server.base_url, &format!(r#"messaging_service_sid = "{SERVICE}""#));
    assert_eq!(sms.send(ID, TO, &crate::text(BODY)).await, Ok(()));
    server.assert_checked(1);
}
