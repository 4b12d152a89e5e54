//! SMS delivery (SPEC section 7): the provider port. Messages are written to the outbox in the same
//! transaction as the state that needs them; a background sender hands them to a provider.

use async_trait::async_trait;

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

    /// Delivers `body` to `to` (E.164). `message_id` is the outbox id: stable across retries, so a
    /// gateway that de-duplicates can use it.
    async fn send(&self, message_id: &str, to: &str, body: &str) -> Result<(), SendError>;
}
