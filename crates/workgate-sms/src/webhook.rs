//! The `webhook` provider: a signed JSON POST to a gateway of your own.
//!
//! # The request
//!
//! ```http
//! POST <url>
//! Content-Type: application/json
//! X-Workgate-Signature: t=1764062646,v1=<64 lowercase hex digits>
//!
//! {"id":"sms_…","to":"+8613800138000","body":"123456 is your Workgate verification code. …",
//!  "sent_at":"2026-11-25T09:24:06.123Z","kind":"login_code","params":{"code":"123456","minutes":"10"}}
//! ```
//!
//! (on one line). `kind` and `params` let a gateway of your own send templates: the kind of
//! message (`login_code`, `invitation`, `phone_changed`) and its parameters by name (see
//! [`crate::templates`] for the list); both are left out for a message queued as bare text by an
//! earlier version.
//!
//! `id` is the outbox id: it stays the same when a message is retried, so the receiver can drop
//! duplicates. `sent_at` is the time of this attempt (RFC 3339, UTC).
//!
//! # The signature (the scheme of Stripe's webhooks)
//!
//! `t` is the Unix time in seconds when the request was signed, and
//!
//! ```text
//! v1 = hex( HMAC-SHA256( key = secret, message = t + "." + raw request body ) )
//! ```
//!
//! with the secret as its UTF-8 bytes, the body byte for byte as received (before any JSON
//! parsing), and lowercase hex. To verify, a receiver:
//!
//! 1. splits the header on `,` and each part on the first `=`, taking `t` and every `v1` (more than
//!    one `v1` may appear one day, while a secret is being rotated);
//! 2. computes the HMAC above and compares it with each `v1` in constant time;
//! 3. refuses a `t` more than a few minutes (say 5) away from its own clock, so that a captured
//!    request cannot be replayed later;
//! 4. answers 2xx once the message is accepted.
//!
//! # The answer
//!
//! 2xx: delivered. 408, 429 and 5xx, a timeout or a connection failure: retried later. Any other
//! status (other 4xx, and 3xx: redirects are not followed) is a permanent failure.

use crate::Secret;
use crate::http;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use workgate_domain::sms::{SendError, SmsMessage, SmsProvider};

/// The header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Workgate-Signature";

/// `[sms.webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where messages are POSTed (`http` or `https`).
    pub url: String,
    /// The HMAC key shared with the receiver.
    pub secret: Secret,
    /// Timeout of one request, in milliseconds; 10 000 when absent.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

pub struct WebhookProvider {
    url: reqwest::Url,
    secret: Secret,
    timeout: Duration,
    client: reqwest::Client,
}

#[derive(Serialize)]
struct Payload<'a> {
    id: &'a str,
    to: &'a str,
    body: &'a str,
    sent_at: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    params: BTreeMap<&'static str, String>,
}

impl WebhookProvider {
    pub fn new(config: WebhookConfig) -> Result<Self, String> {
        let url = http::parse_url("sms.webhook.url", &config.url)?;
        http::required("sms.webhook.secret", config.secret.expose())?;
        let timeout = http::timeout("webhook", config.timeout_ms)?;
        Ok(WebhookProvider { url, secret: config.secret, timeout, client: http::client(timeout)? })
    }
}

/// The header value for a body signed at `timestamp` (Unix seconds).
pub(crate) fn signature_header(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut message = format!("{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!("t={timestamp},v1={}", hex::encode(http::hmac_sha256(secret.as_bytes(), &message)))
}

#[async_trait]
impl SmsProvider for WebhookProvider {
    fn name(&self) -> &'static str {
        "webhook"
    }

    async fn send(&self, message_id: &str, to: &str, message: &SmsMessage) -> Result<(), SendError> {
        let (now, sent_at) = http::now();
        let content = message.content.as_ref();
        let payload = serde_json::to_vec(&Payload {
            id: message_id,
            to,
            body: &message.text,
            sent_at: &sent_at,
            kind: content.map(|c| c.purpose().as_str()),
            params: content.map(|c| c.params().into_iter().collect()).unwrap_or_default(),
        })
        .map_err(|e| SendError::Permanent(format!("webhook: cannot encode the message: {e}")))?;
        let signature = signature_header(self.secret.expose(), now.unix_timestamp(), &payload);
        let response = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(payload)
            .send()
            .await
            .map_err(|e| http::transport_error("webhook", e, self.timeout))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text = response.text().await.unwrap_or_default();
        Err(http::status_error("webhook", status, &http::excerpt(&text, 200)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Computed independently: Python's hmac.new(b"whsec", b"1700000000.{}", sha256).hexdigest().
        assert_eq!(
            signature_header("whsec", 1_700_000_000, b"{}"),
            "t=1700000000,v1=7d44587dddbaf4c7f70fef20f48cd594834ffea1641e3ac227b84408298738af"
        );
    }
}
