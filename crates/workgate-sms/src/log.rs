//! The `log` provider, for development only: nothing is sent, the message (code included) is
//! logged as a warning so that it is seen, and so that it is never mistaken for a production setup.

use async_trait::async_trait;
use serde::Deserialize;
use workgate_domain::sms::{SendError, SmsMessage, SmsProvider};

/// `[sms.log]`: no settings; the section may be left out.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {}

#[derive(Debug, Default)]
pub struct LogProvider {}

impl LogProvider {
    pub fn new(_config: LogConfig) -> Self {
        LogProvider {}
    }
}

#[async_trait]
impl SmsProvider for LogProvider {
    fn name(&self) -> &'static str {
        "log"
    }

    async fn send(&self, message_id: &str, to: &str, message: &SmsMessage) -> Result<(), SendError> {
        tracing::warn!(
            sms.provider = "log",
            sms.id = message_id,
            sms.to = to,
            sms.body = message.text.as_str(),
            "SMS NOT SENT: the `log` provider only logs messages (development only)"
        );
        Ok(())
    }
}
