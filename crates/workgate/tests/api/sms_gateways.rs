//! The template gateways (Tencent Cloud, Alibaba Cloud) as the real server uses them: the server
//! sends every kind of message (an invitation, a login code, a number change) to a capture server
//! on loopback standing in for the gateway; the test checks the template and parameters of each
//! request, signs a member in with the code the gateway received, and has the official SDKs'
//! own signing code (`scripts/sms-sdk-check.py`, PyPI packages installed by `.ci/run`) recompute
//! every signature.

use crate::helpers::TestApp;
use crate::paths;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, Uri};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One request as the capture server received it.
#[derive(Debug, Clone)]
struct Captured {
    method: String,
    uri: String,
    headers: BTreeMap<String, String>,
    body: String,
}

/// A loopback server that records every request and answers as `gateway`'s success.
async fn capture_server(gateway: &'static str) -> (String, Arc<Mutex<Vec<Captured>>>) {
    let captured = Arc::new(Mutex::new(Vec::new()));
    let log = captured.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let log = log.clone();
        async move {
            let headers = headers
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or("").to_owned()))
                .collect();
            log.lock().expect("lock").push(Captured {
                method: method.to_string(),
                uri: uri.path_and_query().map(|pq| pq.to_string()).unwrap_or_default(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            match gateway {
                "tencent" => json!({"Response": {"SendStatusSet": [{"Code": "Ok", "Message": "send success"}],
                                    "RequestId": "capture"}}),
                "twilio" => json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"}),
                _ => json!({"Code": "OK", "Message": "OK", "BizId": "1", "RequestId": "capture"}),
            }
            .to_string()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("capture server") });
    (format!("http://{address}"), captured)
}

const SECRET_ID: &str = "ACcaptureTest0123456789abcdef0123";
const SECRET_KEY: &str = "captureSecretKey0123456789abcdef";

/// The `[sms]` section for `gateway` at `endpoint`, as an operator writes it.
fn sms_config(gateway: &str, endpoint: &str) -> workgate_sms::SmsConfig {
    let credentials = match gateway {
        "tencent" => format!(
            "secret_id = \"{SECRET_ID}\"\nsecret_key = \"{SECRET_KEY}\"\nsms_sdk_app_id = \"1400006666\"\n\
             sign_name = \"工作门\"\n"
        ),
        _ => format!("access_key_id = \"{SECRET_ID}\"\naccess_key_secret = \"{SECRET_KEY}\"\nsign_name = \"工作门\"\n"),
    };
    let text = format!(
        "[sms]\nprovider = \"{gateway}\"\n[sms.{gateway}]\n{credentials}endpoint = \"{endpoint}\"\n\
         [sms.{gateway}.templates.mainland]\n\
         login_code = {{ id = \"M-CODE\", params = [\"code\", \"minutes\"] }}\n\
         invitation = {{ id = \"M-INVITE\", params = [\"enterprise\", \"path\", \"days\"] }}\n\
         phone_changed = {{ id = \"M-CHANGED\", params = [\"enterprise\", \"new_number\"] }}\n\
         [sms.{gateway}.templates.international]\n\
         login_code = {{ id = \"I-CODE\", params = [\"code\"] }}\n\
         invitation = {{ id = \"I-INVITE\", params = [\"member\", \"link\"] }}\n\
         phone_changed = {{ id = \"I-CHANGED\", params = [\"member\", \"old_number\", \"new_number\"] }}\n"
    );
    parse_sms(&text)
}

/// The `[sms]` section of a configuration file's text, read as the server reads it.
fn parse_sms(text: &str) -> workgate_sms::SmsConfig {
    #[derive(serde::Deserialize)]
    struct File {
        sms: workgate_sms::SmsConfig,
    }
    toml::from_str::<File>(text).expect("a valid [sms] section").sms
}

/// A request's number, template and parameters (by name for Alibaba, in order for Tencent).
fn template_of(gateway: &str, request: &Captured) -> (String, String, Value) {
    if gateway == "tencent" {
        let body: Value = serde_json::from_str(&request.body).expect("a JSON body");
        let to = body["PhoneNumberSet"][0].as_str().expect("number").to_owned();
        let template = body["TemplateId"].as_str().expect("template").to_owned();
        (to, template, body["TemplateParamSet"].clone())
    } else {
        let query = request.uri.split_once('?').map(|(_, q)| q).unwrap_or("");
        let pairs: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let params: Value = serde_json::from_str(&pairs["TemplateParam"]).expect("TemplateParam is JSON");
        (pairs["PhoneNumbers"].clone(), pairs["TemplateCode"].clone(), params)
    }
}

async fn wait_for(captured: &Mutex<Vec<Captured>>, count: usize) -> Vec<Captured> {
    for _ in 0..500 {
        let requests = captured.lock().expect("lock").clone();
        if requests.len() >= count {
            return requests;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the gateway did not receive {count} requests: {:?}", captured.lock().expect("lock"));
}

/// Runs `scripts/sms-sdk-check.py` over the captured requests. Skips, saying why, when the SDKs are
/// not installed, unless `WORKGATE_REQUIRE_SMS_SDKS` is set (as `.ci/run` sets it).
fn check_with_official_sdks(gateway: &str, requests: &[Captured]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("captured.jsonl");
    let lines: Vec<String> = requests
        .iter()
        .map(|r| {
            json!({"provider": gateway, "method": r.method, "uri": r.uri, "headers": r.headers, "body": r.body,
                   "secret_id": SECRET_ID, "secret_key": SECRET_KEY})
            .to_string()
        })
        .collect();
    std::fs::write(&file, lines.join("\n") + "\n").expect("write the capture");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/sms-sdk-check.py");
    let output = std::process::Command::new("python3").arg(&script).arg(&file).output();
    let required = std::env::var_os("WORKGATE_REQUIRE_SMS_SDKS").is_some();
    let output = match output {
        Ok(output) => output,
        Err(e) if !required => {
            eprintln!("SKIPPED the official SDK check of {gateway}: python3 cannot run ({e})");
            return;
        }
        Err(e) => panic!("python3 cannot run: {e}"),
    };
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.code() == Some(2) && !required {
        eprintln!("SKIPPED the official SDK check of {gateway}: {report}");
        return;
    }
    assert!(output.status.success(), "the official SDK does not sign as the server did:\n{report}");
    assert_eq!(report.lines().filter(|l| l.starts_with("ok ")).count(), requests.len(), "{report}");
}

async fn every_kind_reaches_the_gateway_as_its_template(gateway: &'static str) {
    let (endpoint, captured) = capture_server(gateway).await;
    let app = TestApp::spawn_configured(
        |config| config.sms = sms_config(gateway, &endpoint),
        std::sync::Arc::new(workgate_domain::clock::ManualClock::default()),
    )
    .await;
    let ent = app.enterprise("Acme 123456", "+8613800138000").await;
    let policy = app.get(&paths::policy(), &ent.key).await;
    let mut document = policy.body.clone();
    document["allowed_regions"] = json!(["CN", "HK"]);
    app.request(Method::PUT, &paths::policy(), Some(&ent.key), Some(document)).await.assert_status(200);

    // An invitation to a mainland number and one to a Hong Kong number.
    let li = app.add_member(&ent, "Li Lei", "+8613900139000").await;
    app.add_member(&ent, "Chan Tai Man", "+85291234567").await;
    let requests = wait_for(&captured, 2).await;
    let mut seen: Vec<(String, String, Value)> = requests.iter().map(|r| template_of(gateway, r)).collect();
    seen.sort_by(|a, b| a.1.cmp(&b.1));
    let (mainland, international) = (&seen[1], &seen[0]);
    assert_eq!(mainland.1, "M-INVITE");
    assert_eq!(international.1, "I-INVITE");
    let path = |link: &str| link.split_once("/i/").map(|(_, token)| format!("i/{token}")).expect("a link");
    if gateway == "tencent" {
        assert_eq!(mainland.0, "+8613900139000");
        let params = mainland.2.as_array().expect("a list");
        assert_eq!(params[0], "Acme 123456", "the enterprise's name, digits and all, is not a code");
        assert!(params[1].as_str().expect("path").starts_with("i/wgi_"));
        assert_eq!(params[2], "7");
        assert_eq!(international.2[0], "Chan Tai Man");
        assert_eq!(path(international.2[1].as_str().expect("link")).len(), params[1].as_str().expect("path").len());
    } else {
        assert_eq!(mainland.0, "13900139000", "mainland numbers as their 11 digits");
        assert_eq!(international.0, "85291234567");
        assert_eq!(mainland.2["enterprise"], "Acme 123456");
        assert!(mainland.2["path"].as_str().expect("path").starts_with("i/wgi_"));
        assert_eq!(mainland.2["days"], "7");
        assert_eq!(international.2["member"], "Chan Tai Man");
        assert!(international.2["link"].as_str().expect("link").contains("/i/wgi_"));
        assert_eq!(mainland.2.as_object().expect("object").len(), 3, "only the template's parameters");
    }

    // A login code: the member signs in with the code the gateway received.
    let started = app.start_login("+8613800138000").await;
    started.assert_status(200);
    let requests = wait_for(&captured, 3).await;
    let (_, template, params) = template_of(gateway, &requests[2]);
    assert_eq!(template, "M-CODE");
    let (code, minutes) =
        if gateway == "tencent" { (&params[0], &params[1]) } else { (&params["code"], &params["minutes"]) };
    assert_eq!(minutes, "5", "the code's minutes of validity (5 by default)");
    let code = code.as_str().expect("a code");
    assert_eq!(code.len(), 6);
    let login = started.body["login_id"].as_str().expect("login_id");
    let done = app.submit_code(login, code).await;
    done.assert_status(200);
    assert_eq!(done.body["next"], "done", "{}", done.text);

    // A number change: both numbers hear of it, each in its own region's template.
    let id = li["id"].as_str().expect("id");
    app.patch_member(id, &ent.key, json!({"phone": "+85261234567"})).await.assert_status(200);
    let requests = wait_for(&captured, 5).await;
    let mut changed: Vec<(String, String, Value)> = requests[3..].iter().map(|r| template_of(gateway, r)).collect();
    changed.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(changed[0].1, "I-CHANGED");
    assert_eq!(changed[1].1, "M-CHANGED");
    let masked_new = if gateway == "tencent" { &changed[1].2[1] } else { &changed[1].2["new_number"] };
    assert!(masked_new.as_str().expect("masked").contains('*'), "numbers are masked: {masked_new}");

    check_with_official_sdks(gateway, &wait_for(&captured, 5).await);
}

/// Twilio takes text: every kind reaches it as the text made from its parameters, sent as
/// twilio-python would send it.
#[tokio::test]
async fn twilio_gets_every_kind_of_message_as_its_sdk_would_send_it() {
    let (endpoint, captured) = capture_server("twilio").await;
    let text = format!(
        "[sms]\nprovider = \"twilio\"\n[sms.twilio]\naccount_sid = \"{SECRET_ID}\"\nauth_token = \"{SECRET_KEY}\"\n\
         from = \"+15005550006\"\nbase_url = \"{endpoint}\"\n"
    );
    let sms = parse_sms(&text);
    let app = TestApp::spawn_configured(
        |config| config.sms = sms,
        std::sync::Arc::new(workgate_domain::clock::ManualClock::default()),
    )
    .await;
    let ent = app.enterprise("Acme & Co 100%", "+8613800138000").await;
    let li = app.add_member(&ent, "李雷", "+8613900139000").await;
    let started = app.start_login("+8613800138000").await;
    started.assert_status(200);
    wait_for(&captured, 2).await;
    let id = li["id"].as_str().expect("id");
    app.patch_member(id, &ent.key, json!({"phone": "+8613700137000"})).await.assert_status(200);
    let requests = wait_for(&captured, 4).await;
    let bodies: Vec<BTreeMap<String, String>> =
        requests.iter().map(|r| url::form_urlencoded::parse(r.body.as_bytes()).into_owned().collect()).collect();
    let texts: Vec<&str> = bodies.iter().map(|b| b["Body"].as_str()).collect();
    assert!(texts.iter().any(|t| t.contains("/i/wgi_") && t.contains("Acme & Co 100%")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("verification code")), "{texts:?}");
    assert_eq!(texts.iter().filter(|t| t.contains("138****")).count(), 0, "the owner's number is not in a notice");
    assert_eq!(texts.iter().filter(|t| t.contains("was changed from")).count(), 2, "{texts:?}");
    check_with_official_sdks("twilio", &requests);
}

#[tokio::test]
async fn tencent_cloud_gets_every_kind_of_message_as_its_template_signed_as_its_sdk_signs() {
    every_kind_reaches_the_gateway_as_its_template("tencent").await;
}

#[tokio::test]
async fn alibaba_cloud_gets_every_kind_of_message_as_its_template_signed_as_its_sdk_signs() {
    every_kind_reaches_the_gateway_as_its_template("alibaba").await;
}
