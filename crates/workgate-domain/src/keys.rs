//! The server's keys. One master key of 256 random bits lives outside the database (the key file,
//! read by the binary); every key the server uses is derived from it with HKDF-SHA256, one per job,
//! so that no key serves two purposes and a copy of the database alone opens nothing:
//!
//! - the key of the verification codes' keyed hash (`secret::keyed_hash`);
//! - the key that encrypts SMS bodies while they wait in the outbox;
//! - the key that encrypts the answers kept for `Idempotency-Key` replays;
//! - the key that encrypts the private halves of the ID-token signing keys;
//! - a key check: a value derived from the master key and stored in the database, so that a start
//!   with another key file (a lost one replaced by a new one) is refused instead of silently
//!   failing to read what the old key wrote. It is a one-way derivation, not the key.
//!
//! Encryption is ChaCha20-Poly1305 (RustCrypto) with a fresh random nonce per message and the
//! record's identity as associated data, so a sealed value cannot be moved to another record.

use crate::error::{Error, Result};
use crate::secret::random_bytes;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;
use std::fmt;

/// Bytes of the master key (256 bits).
pub const MASTER_KEY_LEN: usize = 32;

/// The name of the key check in `server_secrets`.
pub const KEY_CHECK_NAME: &str = "key_check";

/// The error text when the key check in the database is not this key's.
pub const KEY_MISMATCH: &str = "the key file does not match this database: the database was set up with another key \
     file, whose key is needed to read the secrets kept in it; start with that key file (restore it from a backup)";

const NONCE_LEN: usize = 12;
/// Prefix of a text sealed with the first scheme (SMS bodies, signing keys: text columns).
const SMS_PREFIX: &str = "v1:";
/// First byte of an answer sealed with the first scheme (binary column).
const ANSWER_VERSION: u8 = 1;

/// The keys derived from the master key.
pub struct ServerKeys {
    code: [u8; 32],
    sms: ChaCha20Poly1305,
    answers: ChaCha20Poly1305,
    signing: ChaCha20Poly1305,
    check: String,
}

impl fmt::Debug for ServerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerKeys(…)")
    }
}

impl ServerKeys {
    /// A new master key from the OS generator (for a key file created on first start).
    pub fn generate_master() -> [u8; MASTER_KEY_LEN] {
        random_bytes::<MASTER_KEY_LEN>()
    }

    /// Keys from a fresh random master key that is kept nowhere (tests and tools whose database
    /// lives no longer than the process).
    pub fn ephemeral() -> Self {
        Self::from_master(&Self::generate_master())
    }

    /// Derives every key from the master key.
    pub fn from_master(master: &[u8; MASTER_KEY_LEN]) -> Self {
        let hkdf = Hkdf::<Sha256>::new(Some(b"workgate server keys"), master);
        let derive = |info: &[u8]| {
            let mut out = [0u8; 32];
            // 32 bytes is far below HKDF-SHA256's limit of 255 * 32.
            hkdf.expand(info, &mut out).expect("HKDF-SHA256 yields 32 bytes");
            out
        };
        let check = derive(b"key check v1");
        ServerKeys {
            code: derive(b"verification code hmac v1"),
            sms: ChaCha20Poly1305::new(Key::from_slice(&derive(b"sms body encryption v1"))),
            answers: ChaCha20Poly1305::new(Key::from_slice(&derive(b"idempotency answer encryption v1"))),
            signing: ChaCha20Poly1305::new(Key::from_slice(&derive(b"oidc signing key encryption v1"))),
            check: hex_of(&check),
        }
    }

    /// The key of the verification codes' keyed hash.
    pub fn code_key(&self) -> &[u8] {
        &self.code
    }

    /// The value stored in the database that says which master key it belongs to.
    pub fn check(&self) -> &str {
        &self.check
    }

    /// Encrypts an SMS body, bound to the message's id: `v1:` and base64url of nonce and
    /// ciphertext.
    pub fn seal_sms(&self, id: &str, body: &str) -> String {
        let sealed = seal(&self.sms, id.as_bytes(), body.as_bytes());
        format!("{SMS_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    /// Decrypts what [`ServerKeys::seal_sms`] wrote for the message `id`.
    pub fn open_sms(&self, id: &str, stored: &str) -> Result<String> {
        let bad = || Error::Internal(format!("the body of SMS {id} cannot be decrypted with this key file"));
        let sealed = stored.strip_prefix(SMS_PREFIX).and_then(|b| URL_SAFE_NO_PAD.decode(b).ok()).ok_or_else(bad)?;
        let plain = open(&self.sms, id.as_bytes(), &sealed).ok_or_else(bad)?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    /// Encrypts the private key (PEM) of the ID-token signing key `kid`.
    pub fn seal_signing_key(&self, kid: &str, pem: &str) -> String {
        format!("{SMS_PREFIX}{}", URL_SAFE_NO_PAD.encode(seal(&self.signing, kid.as_bytes(), pem.as_bytes())))
    }

    /// Decrypts what [`ServerKeys::seal_signing_key`] wrote for `kid`. A PEM stored in plaintext
    /// (made before signing keys were encrypted) is taken as it is, until rotation retires it.
    pub fn open_signing_key(&self, kid: &str, stored: &str) -> Result<String> {
        if stored.starts_with("-----BEGIN ") {
            return Ok(stored.to_string());
        }
        let bad = || Error::Internal(format!("signing key {kid} cannot be decrypted with this key file"));
        let sealed = stored.strip_prefix(SMS_PREFIX).and_then(|b| URL_SAFE_NO_PAD.decode(b).ok()).ok_or_else(bad)?;
        String::from_utf8(open(&self.signing, kid.as_bytes(), &sealed).ok_or_else(bad)?).map_err(|_| bad())
    }

    /// Encrypts a kept answer, bound to `context` (its credential scope and key).
    pub fn seal_answer(&self, context: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = vec![ANSWER_VERSION];
        out.extend(seal(&self.answers, context, body));
        out
    }

    /// Decrypts what [`ServerKeys::seal_answer`] wrote for `context`.
    pub fn open_answer(&self, context: &[u8], stored: &[u8]) -> Result<Vec<u8>> {
        match stored.split_first() {
            Some((&ANSWER_VERSION, sealed)) => open(&self.answers, context, sealed),
            _ => None,
        }
        .ok_or_else(|| Error::Internal("a kept Idempotency-Key answer cannot be decrypted with this key file".into()))
    }
}

/// Parses a key file's text: 64 hexadecimal digits (whitespace around them is ignored).
pub fn parse_master(text: &str) -> Option<[u8; MASTER_KEY_LEN]> {
    let text = text.trim();
    if text.len() != MASTER_KEY_LEN * 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; MASTER_KEY_LEN];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A key file's text for `master`.
pub fn format_master(master: &[u8; MASTER_KEY_LEN]) -> String {
    format!("{}\n", hex_of(master))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seal(cipher: &ChaCha20Poly1305, aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let nonce = random_bytes::<NONCE_LEN>();
    let ciphertext = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        // Encryption fails only for messages beyond 256 GiB.
        .expect("ChaCha20-Poly1305 encrypts any message we keep");
    let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    out.extend_from_slice(&nonce);
    out.extend(ciphertext);
    out
}

fn open(cipher: &ChaCha20Poly1305, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    cipher.decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_sms_opens_only_with_its_key_and_id() {
        let keys = ServerKeys::ephemeral();
        let sealed = keys.seal_sms("sms_1", "123456 is your code");
        assert!(!sealed.contains("123456"));
        assert_ne!(sealed, keys.seal_sms("sms_1", "123456 is your code"), "a fresh nonce each time");
        assert_eq!(keys.open_sms("sms_1", &sealed).unwrap(), "123456 is your code");
        assert!(keys.open_sms("sms_2", &sealed).is_err(), "bound to the message id");
        assert!(ServerKeys::ephemeral().open_sms("sms_1", &sealed).is_err(), "another key cannot open it");
        assert!(keys.open_sms("sms_1", "123456 is your code").is_err(), "plaintext is not accepted");
    }

    #[test]
    fn sub_keys_differ_and_derive_stably() {
        let master = ServerKeys::generate_master();
        let (a, b) = (ServerKeys::from_master(&master), ServerKeys::from_master(&master));
        assert_eq!(a.check(), b.check());
        assert_eq!(a.code_key(), b.code_key());
        assert_ne!(a.code_key(), &master[..]);
        assert_ne!(a.check(), hex_of(&master));
        assert_ne!(a.check(), hex_of(a.code_key()));
        let answer = a.seal_answer(b"scope/key", b"{\"secret\":\"wgk_x\"}");
        assert_eq!(b.open_answer(b"scope/key", &answer).unwrap(), b"{\"secret\":\"wgk_x\"}");
        assert!(b.open_answer(b"scope/other", &answer).is_err());
        assert!(a.open_sms("sms_1", &format!("v1:{}", URL_SAFE_NO_PAD.encode(&answer[1..]))).is_err());
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMII…\n-----END RSA PRIVATE KEY-----\n";
        let sealed = a.seal_signing_key("wg1-abc", pem);
        assert!(!sealed.contains("PRIVATE"));
        assert_eq!(b.open_signing_key("wg1-abc", &sealed).unwrap(), pem);
        assert!(b.open_signing_key("wg2-abc", &sealed).is_err());
        assert!(b.open_sms("wg1-abc", &sealed).is_err(), "each job has its own key");
        assert_eq!(b.open_signing_key("wg1-abc", pem).unwrap(), pem, "a key made before encryption still signs");
    }

    #[test]
    fn key_files_round_trip_and_reject_malformed_text() {
        let master = ServerKeys::generate_master();
        assert_eq!(parse_master(&format_master(&master)), Some(master));
        assert_eq!(parse_master(""), None);
        assert_eq!(parse_master("zz"), None);
        assert_eq!(parse_master(&"ab".repeat(31)), None);
        assert_eq!(parse_master(&"é".repeat(32)), None);
    }
}
