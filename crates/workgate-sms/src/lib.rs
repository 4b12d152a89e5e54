//! SMS providers (SPEC section 7): implementations of the domain's
//! [`SmsProvider`](workgate_domain::sms::SmsProvider) port.
//!
//! | provider  | module        | for                                                                 |
//! |-----------|---------------|---------------------------------------------------------------------|
//! | `file`    | [`file`]      | development and tests: one JSON line per message in a file           |
//! | `log`     | [`log`]       | development only: the message is logged as a warning                 |
//! | `webhook` | [`webhook`]   | a signed JSON POST to your own gateway                              |
//! | `tencent` | [`tencent`]   | Tencent Cloud SMS (`SendSms`, API 2021-01-11, TC3-HMAC-SHA256)      |
//! | `alibaba` | [`alibaba`]   | Alibaba Cloud SMS (Dysmsapi `SendSms`, 2017-05-25, ACS3-HMAC-SHA256) |
//! | `twilio`  | [`twilio`]    | Twilio Programmable Messaging                                       |
//!
//! The binary deserializes an [`SmsConfig`] (TOML file, environment) and calls [`build`]. Every
//! configuration struct rejects unknown keys, so a typo is an error rather than a silent default.
//!
//! ```toml
//! [sms]
//! provider = "tencent"          # file | log | webhook | tencent | alibaba | twilio
//!
//! [sms.tencent]
//! secret_id = "AKID…"
//! secret_key = "…"
//! sms_sdk_app_id = "1400006666"
//! sign_name = "Workgate"
//!
//! [sms.tencent.templates.mainland]
//! login_code = { id = "2001001", params = ["code", "minutes"] }
//! invitation = { id = "2001002", params = ["enterprise", "path", "days"] }
//! phone_changed = { id = "2001003", params = ["enterprise", "new_number"] }
//! ```
//!
//! Tencent Cloud and Alibaba Cloud send only approved templates: see [`templates`] for one
//! template per kind of message and region class of the number.
//!
//! Only the section of the chosen provider is read; the others may stay in the file, so switching
//! providers is one key (or one environment variable).
//!
//! Errors: network failures, timeouts, HTTP 408/429/5xx and a gateway's throttling or internal
//! errors are [`SendError::Retryable`](workgate_domain::sms::SendError::Retryable); anything that a
//! retry cannot fix (bad credentials, a refused number, a malformed request) is
//! [`SendError::Permanent`](workgate_domain::sms::SendError::Permanent).

pub mod alibaba;
pub mod file;
mod http;
pub mod log;
pub mod templates;
pub mod tencent;
pub mod twilio;
pub mod webhook;

pub use alibaba::{AlibabaConfig, AlibabaProvider};
pub use file::{FileConfig, FileMessage, FileProvider, read_messages};
pub use log::{LogConfig, LogProvider};
pub use templates::{Template, Templates};
pub use tencent::{TencentConfig, TencentProvider};
pub use twilio::{TwilioConfig, TwilioProvider};
pub use webhook::{WebhookConfig, WebhookProvider};

use serde::Deserialize;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use workgate_domain::sms::SmsProvider;

/// Which provider delivers the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    File,
    Log,
    Webhook,
    Tencent,
    Alibaba,
    Twilio,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 6] = [
        ProviderKind::File,
        ProviderKind::Log,
        ProviderKind::Webhook,
        ProviderKind::Tencent,
        ProviderKind::Alibaba,
        ProviderKind::Twilio,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::File => "file",
            ProviderKind::Log => "log",
            ProviderKind::Webhook => "webhook",
            ProviderKind::Tencent => "tencent",
            ProviderKind::Alibaba => "alibaba",
            ProviderKind::Twilio => "twilio",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderKind {
    type Err = String;

    /// For flags and environment variables (`WORKGATE_SMS_PROVIDER=twilio`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ProviderKind::ALL.into_iter().find(|kind| kind.as_str() == s.trim()).ok_or_else(|| {
            format!("unknown SMS provider '{s}': expected one of file, log, webhook, tencent, alibaba, twilio")
        })
    }
}

/// The `[sms]` configuration: the chosen provider and the settings of each provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsConfig {
    pub provider: ProviderKind,
    #[serde(default)]
    pub file: Option<FileConfig>,
    #[serde(default)]
    pub log: Option<LogConfig>,
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
    #[serde(default)]
    pub tencent: Option<TencentConfig>,
    #[serde(default)]
    pub alibaba: Option<AlibabaConfig>,
    #[serde(default)]
    pub twilio: Option<TwilioConfig>,
}

impl SmsConfig {
    /// Only the `provider` key set; the sections are filled in by the caller.
    pub fn new(provider: ProviderKind) -> Self {
        SmsConfig { provider, file: None, log: None, webhook: None, tencent: None, alibaba: None, twilio: None }
    }
}

/// Builds the provider that `config.provider` names from its section. Fails, with a sentence for
/// the operator, when the section is missing or a setting is invalid. `log` needs no section.
/// `code_length` is the number of digits of the server's login codes (template gateways take only
/// some lengths).
pub fn build(config: &SmsConfig, code_length: u32) -> Result<Arc<dyn SmsProvider>, String> {
    fn section<T: Clone>(section: &Option<T>, kind: ProviderKind) -> Result<T, String> {
        section.clone().ok_or_else(|| format!("the SMS provider is '{kind}' but the [sms.{kind}] section is missing"))
    }
    let kind = config.provider;
    let provider: Arc<dyn SmsProvider> = match kind {
        ProviderKind::File => Arc::new(FileProvider::new(section(&config.file, kind)?)?),
        ProviderKind::Log => Arc::new(LogProvider::new(config.log.clone().unwrap_or_default())),
        ProviderKind::Webhook => Arc::new(WebhookProvider::new(section(&config.webhook, kind)?)?),
        ProviderKind::Tencent => Arc::new(TencentProvider::new(section(&config.tencent, kind)?, code_length)?),
        ProviderKind::Alibaba => Arc::new(AlibabaProvider::new(section(&config.alibaba, kind)?)?),
        ProviderKind::Twilio => Arc::new(TwilioProvider::new(section(&config.twilio, kind)?)?),
    };
    Ok(provider)
}

/// A credential from the configuration. Its `Debug` does not show it, so a logged configuration
/// does not leak it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
