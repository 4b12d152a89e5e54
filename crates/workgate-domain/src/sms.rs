//! SMS delivery (SPEC section 7): the provider port. Messages are written to the outbox in the same
//! transaction as the state that needs them; a background sender hands them to a provider.

use crate::outbox::SmsPurpose;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Why a provider did not deliver a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later: timeouts, connection failures, 5xx, throttling by the gateway.
    #[error("temporary failure: {0}")]
    Retryable(String),
    /// Trying again will not help: a refused number, bad credentials, a malformed request.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// One way of delivering a text message. Implementations: `file`, `log`, `webhook`, Tencent Cloud
/// SMS and Twilio (crate `workgate-sms`).
#[async_trait]
pub trait SmsProvider: Send + Sync + 'static {
    /// A short name for logs and the admin view (`file`, `tencent`, …).
    fn name(&self) -> &'static str;

    /// Delivers `message` to `to` (E.164). `message_id` is the outbox id: stable across retries,
    /// so a gateway that de-duplicates can use it.
    async fn send(&self, message_id: &str, to: &str, message: &SmsMessage) -> Result<(), SendError>;
}

/// What a message says, as its kind and its parameters. Gateways that take free text send
/// [`SmsContent::text`]; gateways that send only approved templates (Tencent Cloud, Alibaba Cloud)
/// fill the kind's template with the parameters it names ([`SmsContent::param`]). Nothing is ever
/// read back out of the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SmsContent {
    /// A login code (`code`, as many digits as `code_length`), valid `minutes`.
    LoginCode { code: String, minutes: u32 },
    /// An invitation to `member` (their name) of `enterprise`: `link` is the whole address,
    /// `path` the part after the public URL (`i/wgi_…`, for templates that hold the address's
    /// start), valid `days`.
    Invitation { enterprise: String, member: String, link: String, path: String, days: u32 },
    /// Sent to both numbers when an admin changes `member`'s number: `old_number` and
    /// `new_number` are masked (`+86 138****8000`).
    PhoneChanged { enterprise: String, member: String, old_number: String, new_number: String },
}

impl SmsContent {
    pub fn purpose(&self) -> SmsPurpose {
        match self {
            SmsContent::LoginCode { .. } => SmsPurpose::LoginCode,
            SmsContent::Invitation { .. } => SmsPurpose::Invitation,
            SmsContent::PhoneChanged { .. } => SmsPurpose::PhoneChanged,
        }
    }

    /// The text sent by gateways that take free text.
    pub fn text(&self) -> String {
        match self {
            SmsContent::LoginCode { code, minutes } => format!(
                "{code} is your Workgate verification code. It expires in {minutes} minutes. Never share it with anyone."
            ),
            SmsContent::Invitation { enterprise, member, link, days, .. } => format!(
                "[{enterprise}] {member}, you are invited to join {enterprise} on Workgate. Open {link} to sign in (valid {days} days)."
            ),
            SmsContent::PhoneChanged { enterprise, member, old_number, new_number } => format!(
                "[{enterprise}] The sign-in number of {member}'s Workgate account was changed from {old_number} to \
                 {new_number}, and its sign-ins were ended. If this was not asked for, contact your admin."
            ),
        }
    }

    /// The parameter `name` (one of [`SmsPurpose::params`] of this kind), as text.
    pub fn param(&self, name: &str) -> Option<String> {
        let value = match (self, name) {
            (SmsContent::LoginCode { code, .. }, "code") => code.clone(),
            (SmsContent::LoginCode { minutes, .. }, "minutes") => minutes.to_string(),
            (SmsContent::Invitation { enterprise, .. }, "enterprise")
            | (SmsContent::PhoneChanged { enterprise, .. }, "enterprise") => enterprise.clone(),
            (SmsContent::Invitation { member, .. }, "member") | (SmsContent::PhoneChanged { member, .. }, "member") => {
                member.clone()
            }
            (SmsContent::Invitation { link, .. }, "link") => link.clone(),
            (SmsContent::Invitation { path, .. }, "path") => path.clone(),
            (SmsContent::Invitation { days, .. }, "days") => days.to_string(),
            (SmsContent::PhoneChanged { old_number, .. }, "old_number") => old_number.clone(),
            (SmsContent::PhoneChanged { new_number, .. }, "new_number") => new_number.clone(),
            _ => return None,
        };
        Some(value)
    }

    /// Every parameter of this message, by name, in the kind's order.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        self.purpose().params().iter().filter_map(|name| Some((*name, self.param(name)?))).collect()
    }

    /// The form kept (encrypted) in the outbox.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A message as the sender hands it to a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsMessage {
    /// The text, for gateways that take free text.
    pub text: String,
    /// The kind and parameters, for gateways that send templates. `None` only for a message queued
    /// as bare text by a version before messages carried their kind (sent as text, refused by
    /// template gateways).
    pub content: Option<SmsContent>,
}

impl SmsMessage {
    pub fn new(content: SmsContent) -> Self {
        SmsMessage { text: content.text(), content: Some(content) }
    }

    /// Reads what the outbox kept: a stored [`SmsContent`], or an older bare text.
    pub fn from_stored(stored: &str) -> Self {
        match serde_json::from_str::<SmsContent>(stored) {
            Ok(content) => SmsMessage::new(content),
            Err(_) => SmsMessage { text: stored.to_owned(), content: None },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn examples() -> Vec<SmsContent> {
        vec![
            SmsContent::LoginCode { code: "0421".into(), minutes: 10 },
            SmsContent::Invitation {
                enterprise: "Acme 123456".into(),
                member: "Li Lei".into(),
                link: "https://wg.example.com/i/wgi_abc".into(),
                path: "i/wgi_abc".into(),
                days: 7,
            },
            SmsContent::PhoneChanged {
                enterprise: "Acme".into(),
                member: "Li Lei".into(),
                old_number: "+86 138****8000".into(),
                new_number: "+86 139****9000".into(),
            },
        ]
    }

    #[test]
    fn every_kind_has_every_parameter_it_names_and_no_other() {
        for content in examples() {
            let names: Vec<&str> = content.params().iter().map(|(name, _)| *name).collect();
            assert_eq!(names, content.purpose().params(), "{content:?}");
            assert_eq!(content.param("nothing"), None);
        }
    }

    #[test]
    fn the_stored_form_reads_back_and_old_bare_text_stays_text() {
        for content in examples() {
            assert_eq!(SmsMessage::from_stored(&content.to_stored()), SmsMessage::new(content));
        }
        let old = SmsMessage::from_stored("123456 is your Workgate verification code.");
        assert_eq!(old.content, None);
        assert_eq!(old.text, "123456 is your Workgate verification code.");
        assert_eq!(SmsMessage::from_stored("[Acme] invited").content, None);
    }

    #[test]
    fn a_code_is_the_codes_own_digits_never_digits_found_in_a_name() {
        let invitation = &examples()[1];
        assert_eq!(invitation.param("code"), None, "an enterprise called 'Acme 123456' sends no code");
        assert_eq!(examples()[0].param("code").as_deref(), Some("0421"));
    }
}
