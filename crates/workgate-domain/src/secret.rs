//! Every secret is generated, hashed and compared here, and nowhere else.
//!
//! Secrets that we generate (API keys, later session tokens and invitation links) carry 256 bits
//! from the OS generator, so a plain SHA-256 is a sufficient hash at rest: lookups go by hash, and
//! learning a hash does not give the secret. A [`SecretHash`] cannot be printed by accident.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// A freshly generated secret: shown to its owner once, then only its hash is kept.
pub struct Secret(String);

impl Secret {
    /// `prefix` + 43 characters of base64url (256 bits). The prefix tells people (and secret
    /// scanners) what kind of credential a leaked string is.
    pub fn generate(prefix: &str) -> Self {
        Secret(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>())))
    }

    /// A secret of 128 random bits (22 characters after the prefix): for a capability that must fit
    /// in an SMS template's variable (an invitation's link), is used once and expires within days.
    pub fn generate_short(prefix: &str) -> Self {
        Secret(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<16>())))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }
}

/// SHA-256 of a secret, hex encoded, as stored and looked up.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(String);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        SecretHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    pub fn from_trusted(hex: String) -> Self {
        SecretHash(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time comparison, for the places where a hash is compared rather than looked up.
    pub fn matches(&self, other: &SecretHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(…)")
    }
}

/// The non-secret reference of a bearer capability: the first 128 bits of its SHA-256, in hex.
/// It names the capability's row and may be shown to admins: it cannot be turned back into the
/// capability, and the capability's 256 bits cannot be found by trying.
pub fn reference_of(secret: &str) -> String {
    SecretHash::of(secret).0[..32].to_string()
}

/// Whether `s` has the shape of a secret made by [`Secret::generate`] with `prefix`.
pub fn has_secret_shape(s: &str, prefix: &str) -> bool {
    s.strip_prefix(prefix).is_some_and(|rest| {
        rest.len() == 43 && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Hex SHA-256 over several byte strings, each prefixed by its length so that the split between
/// them counts (used to fingerprint requests for `Idempotency-Key`).
pub fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex HMAC-SHA256 of `message` under `key`: the keyed hash of verification codes, which have too
/// little entropy for a plain hash (a million codes are hashed in a second).
pub fn keyed_hash(key: &[u8], message: &[u8]) -> SecretHash {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    SecretHash(mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect())
}

/// A verification code of `digits` decimal digits, uniform, from the OS generator.
pub fn random_code(digits: u32) -> String {
    use rand::Rng;
    let bound = 10u64.pow(digits.clamp(4, 10));
    let mut rng = OsRng.unwrap_err();
    let n = rng.random_range(0..bound);
    format!("{n:0width$}", width = digits.clamp(4, 10) as usize)
}

/// The first characters of a secret, kept so that admins can tell their keys apart.
pub fn display_prefix(secret: &Secret) -> String {
    secret.0.chars().take(12).collect()
}

fn fill_random(bytes: &mut [u8]) {
    // The OS generator failing is not something we can continue after: no secret may be weak.
    OsRng.try_fill_bytes(bytes).expect("the operating system's random generator failed");
}

/// `N` bytes from the OS generator (salts and keys).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    fill_random(&mut bytes);
    bytes
}

/// Lowercase letters and digits, for generated names (not secrets).
pub fn random_lower_alnum(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_distinct_and_hash_stably() {
        let a = Secret::generate("wgk_");
        let b = Secret::generate("wgk_");
        assert_eq!(a.expose().len(), 4 + 43);
        assert_ne!(a.expose(), b.expose());
        assert!(a.hash().matches(&SecretHash::of(a.expose())));
        assert!(!a.hash().matches(&b.hash()));
        assert_eq!(format!("{:?}", a.hash()), "SecretHash(…)");
        let short = Secret::generate_short("wgi_");
        assert_eq!(short.expose().len(), 4 + 22, "128 bits");
        assert_ne!(short.expose(), Secret::generate_short("wgi_").expose());
    }
}
