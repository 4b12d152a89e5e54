//! The `twilio` provider: Twilio Programmable Messaging.
//!
//! `POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP basic authentication
//! with the account SID and auth token, a form with `To`, `Body` and either `From` (a Twilio number
//! or alphanumeric sender) or `MessagingServiceSid`.
//!
//! Twilio answers `201 Created` when it has queued the message (any 2xx is taken as success).
//! 408, 429 and 5xx, timeouts and connection failures are retryable, and so is a 400 with an error
//! `code` that a later attempt gets past (21611, the sender's queue is full); any other status is
//! permanent, with Twilio's error `code` and `message` (from its JSON error body) in the error.

use crate::Secret;
use crate::http;
use async_trait::async_trait;
use serde::Deserialize;
use std::time::Duration;
use workgate_domain::sms::{SendError, SmsMessage, SmsProvider};

pub const DEFAULT_BASE_URL: &str = "https://api.twilio.com";

/// `[sms.twilio]`. Exactly one of `from` and `messaging_service_sid`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// `AC…`: the account, also the basic-auth user.
    pub account_sid: String,
    /// The account's auth token: the basic-auth password.
    pub auth_token: Secret,
    /// The sender: an E.164 Twilio number or an alphanumeric sender id.
    #[serde(default)]
    pub from: Option<String>,
    /// `MG…`: a Messaging Service that picks the sender.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// `https://api.twilio.com` when absent (tests point it elsewhere).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Timeout of one request, in milliseconds; 10 000 when absent.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

enum Sender {
    From(String),
    MessagingService(String),
}

pub struct TwilioProvider {
    url: reqwest::Url,
    account_sid: String,
    auth_token: Secret,
    sender: Sender,
    timeout: Duration,
    client: reqwest::Client,
}

impl TwilioProvider {
    pub fn new(config: TwilioConfig) -> Result<Self, String> {
        let account_sid = config.account_sid.trim().to_owned();
        if account_sid.is_empty() || !account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(
                "sms.twilio.account_sid must be a Twilio account SID (AC followed by letters and digits)".into()
            );
        }
        http::required("sms.twilio.auth_token", config.auth_token.expose())?;
        let sender = match (config.from, config.messaging_service_sid) {
            (Some(from), None) if !from.trim().is_empty() => Sender::From(from.trim().to_owned()),
            (None, Some(sid)) if !sid.trim().is_empty() => Sender::MessagingService(sid.trim().to_owned()),
            (Some(_), Some(_)) => {
                return Err("sms.twilio: set either from or messaging_service_sid, not both".into());
            }
            _ => return Err("sms.twilio: set from (the sender) or messaging_service_sid".into()),
        };
        let base = config.base_url.as_deref().unwrap_or(DEFAULT_BASE_URL);
        let base = http::parse_url("sms.twilio.base_url", base)?;
        let path = format!("{}/2010-04-01/Accounts/{account_sid}/Messages.json", base.path().trim_end_matches('/'));
        let mut url = base;
        url.set_path(&path);
        let timeout = http::timeout("twilio", config.timeout_ms)?;
        Ok(TwilioProvider {
            url,
            account_sid,
            auth_token: config.auth_token,
            sender,
            timeout,
            client: http::client(timeout)?,
        })
    }
}

/// Errors Twilio answers with a 400 that a later attempt gets past: 21611, the sender's queue of
/// messages is full.
const TEMPORARY_ERRORS: [i64; 1] = [21611];

/// Twilio's error body: `{"code": 21211, "message": "…", "more_info": "…", "status": 400}`.
#[derive(Deserialize)]
struct TwilioError {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

#[async_trait]
impl SmsProvider for TwilioProvider {
    fn name(&self) -> &'static str {
        "twilio"
    }

    async fn send(&self, _message_id: &str, to: &str, message: &SmsMessage) -> Result<(), SendError> {
        let sender = match &self.sender {
            Sender::From(from) => ("From", from.as_str()),
            Sender::MessagingService(sid) => ("MessagingServiceSid", sid.as_str()),
        };
        let response = self
            .client
            .post(self.url.clone())
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(http::form_body(&[("To", to), sender, ("Body", message.text.as_str())]))
            .send()
            .await
            .map_err(|e| http::transport_error("twilio", e, self.timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        let detail = match serde_json::from_str::<TwilioError>(&text) {
            Ok(TwilioError { code: Some(code), message }) => {
                let detail = format!("error {code}: {}", message.as_deref().unwrap_or("no message"));
                if TEMPORARY_ERRORS.contains(&code) {
                    return Err(SendError::Retryable(format!("twilio: HTTP {}: {detail}", status.as_u16())));
                }
                detail
            }
            Ok(TwilioError { code: None, message: Some(message) }) => message,
            _ => http::excerpt(&text, 200),
        };
        Err(http::status_error("twilio", status, &detail))
    }
}
