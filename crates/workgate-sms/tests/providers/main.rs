//! The providers against local servers that check every request (signatures recomputed
//! independently), and the file provider under concurrency.

mod alibaba;
mod config;
mod file;
mod mock;
mod tencent;
mod twilio;
mod webhook;

use workgate_domain::sms::{SmsContent, SmsMessage};

/// A message of bare text (what text gateways send), as an older version queued it.
pub fn text(body: &str) -> SmsMessage {
    SmsMessage::from_stored(body)
}

/// A login code message.
pub fn code(digits: &str) -> SmsMessage {
    SmsMessage::new(SmsContent::LoginCode { code: digits.into(), minutes: 10 })
}

/// An invitation whose enterprise name holds six digits (never to be taken for a code).
pub fn invitation() -> SmsMessage {
    SmsMessage::new(SmsContent::Invitation {
        enterprise: "Acme 123456".into(),
        member: "李雷".into(),
        link: "https://id.example.com/i/wgi_abc".into(),
        path: "i/wgi_abc".into(),
        days: 7,
    })
}
