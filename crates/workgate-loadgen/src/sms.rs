//! The SMS gateway the server talks to: the `webhook` provider POSTs here; the receiver checks
//! the signature (one HMAC-SHA256), takes the 6-digit code from the body and hands it to the
//! client waiting for that number.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

pub const SECRET: &str = "loadgen-webhook-secret";

#[derive(Default)]
pub struct Inbox {
    waiting: Mutex<HashMap<String, oneshot::Sender<String>>>,
    pub received: AtomicU64,
    /// Messages for a number nobody waits for (a retry, or a duplicate).
    pub unexpected: AtomicU64,
    pub bad_signature: AtomicU64,
}

impl Inbox {
    /// Registers interest in the next code sent to `phone` (E.164). Call it before `login/start`.
    pub fn expect(&self, phone: &str) -> oneshot::Receiver<String> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(phone.to_string(), tx);
        rx
    }

    pub fn forget(&self, phone: &str) {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(phone);
    }
}

#[derive(Deserialize)]
struct Message {
    to: String,
    body: String,
}

/// Starts the receiver on a free loopback port.
pub async fn start(inbox: Arc<Inbox>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/sms", post(receive)).with_state(inbox);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(addr)
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let signature = headers.get("x-workgate-signature").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !signed(signature, &body) {
        inbox.bad_signature.fetch_add(1, Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED;
    }
    let Ok(message) = serde_json::from_slice::<Message>(&body) else { return StatusCode::BAD_REQUEST };
    inbox.received.fetch_add(1, Ordering::Relaxed);
    let Some(code) = six_digits(&message.body) else { return StatusCode::BAD_REQUEST };
    let waiter = inbox.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&message.to);
    match waiter {
        Some(tx) => {
            let _ = tx.send(code);
        }
        None => {
            inbox.unexpected.fetch_add(1, Ordering::Relaxed);
        }
    }
    StatusCode::NO_CONTENT
}

/// `t=…,v1=…` with v1 = HMAC-SHA256(secret, t "." body), as the `webhook` provider signs.
fn signed(header: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v),
            Some(("v1", v)) => v1.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    v1.iter().any(|sig| {
        let Ok(sig) = hex::decode(sig) else { return false };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()) else { return false };
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    })
}

/// The first run of exactly six digits.
fn six_digits(body: &str) -> Option<String> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(body[start..i].to_string());
            }
        } else {
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_code() {
        assert_eq!(
            super::six_digits("123456 is your Workgate verification code. It expires in 5 minutes.").as_deref(),
            Some("123456")
        );
        assert_eq!(super::six_digits("1234567 and 12 and 654321").as_deref(), Some("654321"));
        assert_eq!(super::six_digits("no code"), None);
    }
}
