//! `Idempotency-Key` on admin POSTs (SPEC section 6): the same key twice gives one result.
//!
//! A key is claimed before the request runs and completed with its answer; a retry with the same
//! key and the same request gets the stored answer, a concurrent retry gets `conflict`, and the same
//! key on a different request is refused. Keys are scoped to the credential that sent them (an API
//! key or a session, by id), replayed only while it is live, and kept for [`KEY_LIFETIME_MS`]. A
//! kept answer's body is encrypted (`keys::ServerKeys::seal_answer`, bound to [`answer_context`]).

use crate::error::{Error, Result};

/// How long a key and its answer are kept (24 hours, as common practice for payment APIs).
pub const KEY_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;

/// What a kept answer is bound to: its credential scope and its key.
pub fn answer_context(scope: &str, key: &str) -> Vec<u8> {
    crate::secret::fingerprint(&[scope.as_bytes(), key.as_bytes()]).into_bytes()
}

/// An answer as stored for replay (its body encrypted when kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// First use: run the request, then complete or release the key.
    Claimed,
    /// Seen before with the same request: answer with this.
    Replay(StoredResponse),
    /// The first request with this key has not finished yet.
    InProgress,
    /// The key was used with a different request.
    Mismatch,
}

/// Checks a key as sent by a client: 1–255 visible ASCII characters.
pub fn parse_key(raw: &str) -> Result<String> {
    let ok = (1..=255).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Error::field("Idempotency-Key", "must be 1–255 visible ASCII characters"))
    }
}
