//! One Enterprise Login over HTTP: `login/start` → the SMS code at our receiver → `login/{id}/code`
//! → (where the policy asks for a password: `login/{id}/password`) → `next: "done"`, with the time
//! of each step.

use crate::sms::Inbox;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// How long a client waits for its code before it counts the login as failed.
pub const SMS_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Timings {
    pub start: Duration,
    pub sms: Duration,
    pub code: Duration,
    /// `None` when the login had no password step.
    pub password: Option<Duration>,
    pub total: Duration,
}

/// What a login does after the code, by the enterprise's policy and the member's state.
#[derive(Debug, Clone, Copy)]
pub enum Password<'a> {
    /// No password step: the code ends the login (the default policy).
    None,
    /// `require_password` and no password yet (the member's first login): this one is set.
    Set(&'a str),
    /// `require_password` and a password set: this one is entered.
    Enter(&'a str),
}

pub struct LoggedIn {
    pub timings: Timings,
    pub access_token: String,
    pub refresh_token: String,
    /// Sent with the number's next login, as a real client does, so that the server keeps one
    /// device per member instead of counting a new one (towards `max_devices`) each time.
    pub device_id: String,
}

/// A client with one keep-alive connection to the server, as one user's device would have.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(4)
        // A redirect is an answer to measure (the authorization endpoint's), never to follow.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .user_agent("workgate-loadgen (Linux)")
        .build()
        .unwrap_or_else(|e| panic!("building an HTTP client failed: {e}"))
}

/// Logs in with `phone` on the device `device_id` of an earlier login (as a new device where
/// `None`); the error is a short key for counting (`start 429 rate_limited`, …).
pub async fn login(
    http: &reqwest::Client,
    base: &str,
    inbox: &Inbox,
    phone: &str,
    password: Password<'_>,
    device_id: Option<&str>,
) -> Result<LoggedIn, String> {
    let mut body = json!({ "phone": phone });
    if let Some(id) = device_id {
        body["device_id"] = json!(id);
    }
    let code_rx = inbox.expect(phone);
    let t0 = Instant::now();
    let response = http
        .post(format!("{base}/api/v1/login/start"))
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("start transport {}", kind(&e)));
    let started: Value = match response {
        Ok(r) => read(r, "start").await,
        Err(e) => Err(e),
    }
    .inspect_err(|_| inbox.forget(phone))?;
    let t1 = Instant::now();
    let login_id = started["login_id"].as_str().ok_or("start: no login_id")?.to_string();
    let code = match tokio::time::timeout(SMS_TIMEOUT, code_rx).await {
        Ok(Ok(code)) => code,
        _ => {
            inbox.forget(phone);
            return Err("sms timeout".into());
        }
    };
    let t2 = Instant::now();
    let response = http
        .post(format!("{base}/api/v1/login/{login_id}/code"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .map_err(|e| format!("code transport {}", kind(&e)))?;
    let mut step = read(response, "code").await?;
    let t3 = Instant::now();
    let mut last = "code";
    let mut password_time = None;
    if let Password::Set(secret) | Password::Enter(secret) = password {
        let expected = if matches!(password, Password::Set(_)) { "set_password" } else { "password" };
        if step["next"] != expected {
            return Err(format!("code: next = {} (expected {expected})", step["next"]));
        }
        let response = http
            .post(format!("{base}/api/v1/login/{login_id}/password"))
            .json(&json!({ "password": secret }))
            .send()
            .await
            .map_err(|e| format!("password transport {}", kind(&e)))?;
        step = read(response, "password").await?;
        password_time = Some(t3.elapsed());
        last = "password";
    }
    let t4 = Instant::now();
    if step["next"] != "done" {
        return Err(format!("{last}: next = {}", step["next"]));
    }
    let (access_token, refresh_token) = session_tokens(&step)?;
    let device_id = step["session"]["device_id"].as_str().ok_or("no device_id")?.to_string();
    let timings = Timings { start: t1 - t0, sms: t2 - t1, code: t3 - t2, password: password_time, total: t4 - t0 };
    Ok(LoggedIn { timings, access_token, refresh_token, device_id })
}

/// The access and refresh tokens of a `next: "done"` answer (a login's or a refresh's).
pub fn session_tokens(step: &Value) -> Result<(String, String), String> {
    let token = |name: &str| step["session"][name].as_str().map(str::to_string).ok_or_else(|| format!("no {name}"));
    Ok((token("access_token")?, token("refresh_token")?))
}

pub async fn read(response: reqwest::Response, step: &str) -> Result<Value, String> {
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| format!("{step} {status} unreadable body: {}", kind(&e)))?;
    if !status.is_success() {
        return Err(format!("{step} {} {}", status.as_u16(), body["code"].as_str().unwrap_or("?")));
    }
    Ok(body)
}

pub fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else if e.is_decode() {
        "decode"
    } else {
        "other"
    }
}
