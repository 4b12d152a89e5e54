//! The SMS outbox: messages written with the state that needs them, delivered by [`Services::deliver_due_sms`]
//! with retries and exponential backoff. A crash between commit and delivery loses nothing: a
//! message stays `pending` (or its lease runs out) and the next sender picks it up.

use crate::Services;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{EnterpriseId, SmsId};
use crate::phone::PhoneNumber;
use crate::sms::{SendError, SmsContent, SmsMessage, SmsProvider};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsPurpose {
    Invitation,
    LoginCode,
    /// To the old and the new number when a member's number is changed.
    PhoneChanged,
}

impl SmsPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            SmsPurpose::Invitation => "invitation",
            SmsPurpose::LoginCode => "login_code",
            SmsPurpose::PhoneChanged => "phone_changed",
        }
    }

    /// The parameters a message of this kind carries (see [`SmsContent::param`]), for templates.
    pub fn params(self) -> &'static [&'static str] {
        match self {
            SmsPurpose::LoginCode => &["code", "minutes"],
            SmsPurpose::Invitation => &["enterprise", "member", "link", "path", "days"],
            SmsPurpose::PhoneChanged => &["enterprise", "member", "old_number", "new_number"],
        }
    }

    pub const ALL: [SmsPurpose; 3] = [SmsPurpose::LoginCode, SmsPurpose::Invitation, SmsPurpose::PhoneChanged];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "invitation" => Some(SmsPurpose::Invitation),
            "login_code" => Some(SmsPurpose::LoginCode),
            "phone_changed" => Some(SmsPurpose::PhoneChanged),
            _ => None,
        }
    }
}

/// One message in the outbox. Its body (the [`SmsContent`], kind and parameters) is encrypted (see [`crate::keys`]) from the moment it is
/// made until the sender opens it to hand it to the provider; the store erases it once the message
/// is sent or has failed for good.
#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: SmsId,
    pub enterprise_id: Option<EnterpriseId>,
    pub phone: PhoneNumber,
    pub body: SealedBody,
    pub purpose: SmsPurpose,
    pub created_at: Timestamp,
}

impl OutboxMessage {
    /// A new message whose body is encrypted at once under `keys`.
    pub(crate) fn sealed(
        keys: &crate::keys::ServerKeys,
        enterprise_id: Option<EnterpriseId>,
        phone: PhoneNumber,
        content: &SmsContent,
        now: Timestamp,
    ) -> OutboxMessage {
        let id = SmsId::generate();
        let body = SealedBody(keys.seal_sms(id.as_str(), &content.to_stored()));
        OutboxMessage { id, enterprise_id, phone, body, purpose: content.purpose(), created_at: now }
    }
}

/// An SMS body as kept in the outbox: encrypted under the SMS key, bound to the message's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBody(String);

impl SealedBody {
    /// A body as read back from the store.
    pub fn from_stored(stored: String) -> Self {
        SealedBody(stored)
    }

    /// The text to store.
    pub fn as_stored(&self) -> &str {
        &self.0
    }
}

/// Delivery state as admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `pending`, `sending`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<Timestamp>,
}

/// Wait before attempt `n + 1` after `n` failed attempts: 1 s, 2 s, 4 s, … capped at 10 minutes.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 20) - 1;
    (1000_i64 << exp).min(600_000)
}

impl Services {
    /// A new outbox message whose body is encrypted at once.
    pub fn outbox_message(
        &self,
        enterprise_id: Option<EnterpriseId>,
        phone: PhoneNumber,
        content: &SmsContent,
        now: Timestamp,
    ) -> OutboxMessage {
        OutboxMessage::sealed(self.keys(), enterprise_id, phone, content, now)
    }

    /// Takes up to `batch` due messages, delivers them through `provider`, and records the outcome
    /// of each. Returns how many were taken (0 means nothing is due).
    pub async fn deliver_due_sms(&self, provider: &dyn SmsProvider, batch: u32) -> Result<usize> {
        let now = self.clock.now();
        let lease_ms = self.settings.outbox_lease_secs * 1000;
        let due = self.store.lease_due_sms(now, lease_ms, batch).await?;
        let taken = due.len();
        // Open every body first: one that does not decrypt (written under another key file) fails
        // for good, without a send.
        let mut ready = Vec::with_capacity(taken);
        for (message, attempts) in due {
            match self.keys().open_sms(message.id.as_str(), message.body.as_stored()) {
                Ok(stored) => ready.push((message, attempts, SmsMessage::from_stored(&stored))),
                Err(e) => {
                    tracing::error!(sms = %message.id, error = %e, "sms cannot be decrypted; not sent");
                    self.store
                        .mark_sms_failed(
                            &message.id,
                            "the message cannot be decrypted with this server's key file",
                            now,
                        )
                        .await?;
                }
            }
        }
        // Send the batch concurrently: gateways answer in tens of milliseconds, and a login
        // waits for its code.
        let sends = ready.iter().map(|(m, _, text)| provider.send(m.id.as_str(), m.phone.as_str(), text));
        let outcomes = futures::future::join_all(sends).await;
        let now = self.clock.now();
        let mut sent = Vec::with_capacity(taken);
        for ((message, attempts, _), outcome) in ready.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) => {
                    tracing::debug!(sms = %message.id, to = %message.phone.masked(), purpose = message.purpose.as_str(), "sms sent");
                    sent.push(message.id);
                }
                Err(SendError::Retryable(e)) if attempts < self.settings.outbox_max_attempts => {
                    let next = Timestamp(now.millis() + backoff_ms(attempts));
                    tracing::warn!(sms = %message.id, attempts, error = %e, "sms delivery failed; will retry");
                    self.store.mark_sms_retry(&message.id, &e, next).await?;
                }
                Err(e) => {
                    tracing::error!(sms = %message.id, attempts, error = %e, "sms delivery failed for good");
                    self.store.mark_sms_failed(&message.id, &e.to_string(), now).await?;
                }
            }
        }
        if !sent.is_empty() {
            self.store.mark_sms_sent(&sent, provider.name(), now).await?;
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(super::backoff_ms(1), 1000);
        assert_eq!(super::backoff_ms(2), 2000);
        assert_eq!(super::backoff_ms(4), 8000);
        assert_eq!(super::backoff_ms(20), 600_000);
    }
}
