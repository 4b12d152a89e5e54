//! Passwords (SPEC sections 5 and 6): a second step after the SMS code where the policy asks.
//!
//! Argon2id with the OWASP parameters (19 MiB, 2 passes, 1 lane) over the whole input after NFKC
//! normalisation (at most 1 KiB). Strength: at least 8 characters, not containing the member's
//! number or name, and not guessable per `zxcvbn` (score 3 or more), whose dictionaries include the
//! common-password lists. Wrong passwords are counted per member and locked out with a growing wait.

use crate::error::{Error, Result};
use crate::model::Member;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use unicode_normalization::UnicodeNormalization;

pub const MIN_CHARS: usize = 8;
pub const MAX_BYTES: usize = 1024;
/// Wrong passwords in a row before the member must wait.
pub const FAILURES_BEFORE_LOCK: i64 = 5;
/// The first wait, doubled at each further failure (capped at a day).
pub const LOCK_BASE_MS: i64 = 60_000;

/// A member's password record.
#[derive(Debug, Clone, Default)]
pub struct PasswordState {
    /// The Argon2id PHC string; `None` until the member sets one.
    pub hash: Option<String>,
    /// An admin asked for a new password at the next login.
    pub must_reset: bool,
    pub failures: i64,
    pub locked_until: i64,
}

fn argon2() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// NFKC-normalises and bounds a password as typed.
pub fn normalise(input: &str) -> Result<String> {
    if input.len() > MAX_BYTES {
        return Err(Error::PasswordTooWeak { detail: format!("A password may be at most {MAX_BYTES} bytes long.") });
    }
    Ok(input.nfkc().collect())
}

/// Refuses passwords that are short, common, guessable, or built from the member's number or name.
pub fn check_strength(password: &str, member: &Member) -> Result<()> {
    let weak = |detail: String| Err(Error::PasswordTooWeak { detail });
    if password.chars().count() < MIN_CHARS {
        return weak(format!("Use at least {MIN_CHARS} characters."));
    }
    let lower = password.to_lowercase();
    let digits: String = member.phone.as_str().chars().filter(char::is_ascii_digit).collect();
    // The national part of the number (its last 8+ digits) is what people reuse.
    let national = &digits[digits.len().saturating_sub(8)..];
    if !national.is_empty() && lower.contains(national) {
        return weak("Do not use your phone number in your password.".into());
    }
    let name = member.name.as_str().to_lowercase();
    let name_parts: Vec<&str> = name.split_whitespace().filter(|p| p.chars().count() >= 4).collect();
    if lower.contains(&name.replace(' ', "")) || name_parts.iter().any(|p| lower.contains(p)) {
        return weak("Do not use your name in your password.".into());
    }
    let inputs = [member.name.as_str(), member.userid.as_str(), member.phone.as_str(), national];
    let estimate = zxcvbn::zxcvbn(password, &inputs);
    if (estimate.score() as u8) < 3 {
        let hint = estimate
            .feedback()
            .and_then(|f| f.warning().map(|w| w.to_string()))
            .unwrap_or_else(|| "This password is too easy to guess.".into());
        return weak(format!("{hint} Add more words or characters that are not a common pattern."));
    }
    Ok(())
}

/// Argon2id runs at most one per core at a time, with a short queue behind them; a request that
/// finds the queue full is refused with `rate_limited` at once. Each run holds 19 MiB and tens of
/// milliseconds of CPU, so a burst of guesses can neither take the server's memory nor its cores.
struct HashingGate {
    /// Running and queued runs together.
    admission: tokio::sync::Semaphore,
    /// Running runs.
    running: tokio::sync::Semaphore,
}

/// Runs waiting per core, beyond the one running. Waiting runs hold no Argon2 memory, so the queue
/// bounds only how long a check may wait (about a second here) before it is refused.
const QUEUED_PER_CORE: usize = 32;

static GATE: std::sync::LazyLock<HashingGate> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    HashingGate {
        admission: tokio::sync::Semaphore::new(cores * (1 + QUEUED_PER_CORE)),
        running: tokio::sync::Semaphore::new(cores),
    }
});

/// Runs `work` (an Argon2id hash or check) on a blocking thread once the gate lets it in.
async fn gated<T: Send + 'static>(what: &str, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let busy = || Error::RateLimited { retry_after_secs: 1, what: "password_hashing" };
    let _admitted = GATE.admission.try_acquire().map_err(|_| busy())?;
    let _running = GATE.running.acquire().await.map_err(|_| busy())?;
    tokio::task::spawn_blocking(work).await.map_err(|e| Error::Internal(format!("{what} stopped: {e}")))?
}

/// Hashes on a blocking thread: Argon2id takes tens of milliseconds of CPU by design.
pub async fn hash(password: String) -> Result<String> {
    gated("password hashing", move || {
        let salt = SaltString::encode_b64(&crate::secret::random_bytes::<16>())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
    .await
}

/// Verifies in constant time (inside `argon2`), on a blocking thread.
pub async fn verify(password: String, phc: String) -> Result<bool> {
    gated("password check", move || {
        let parsed = PasswordHash::new(&phc).map_err(|e| Error::Internal(format!("stored password hash: {e}")))?;
        Ok(argon2().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::ids::{EnterpriseId, MemberId};
    use crate::phone::{PhoneNumber, Region};
    use crate::values::{MemberStatus, PersonName, Role, UserId};

    fn member() -> Member {
        Member {
            id: MemberId::generate(),
            enterprise_id: EnterpriseId::generate(),
            userid: UserId::parse("zhangsan").unwrap(),
            name: PersonName::parse("Zhang San").unwrap(),
            phone: PhoneNumber::parse("13800138000", Region::parse("CN").unwrap()).unwrap(),
            email: None,
            title: None,
            departments: vec![],
            role: Role::Member,
            admin_departments: vec![],
            status: MemberStatus::Active,
            created_at: Timestamp(0),
            activated_at: None,
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn weak_passwords_are_refused() {
        let m = member();
        for weak in ["short1!", "password123", "12345678", "qwertyuiop", "zhangsan2024!", "x13800138000y"] {
            assert!(matches!(check_strength(weak, &m), Err(Error::PasswordTooWeak { .. })), "{weak}");
        }
        assert!(check_strength("violet-tractor-lunar-87", &m).is_ok());
    }

    #[tokio::test]
    async fn hashes_verify_only_the_same_password() {
        let phc = hash("violet-tractor-lunar-87".into()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("violet-tractor-lunar-87".into(), phc.clone()).await.unwrap());
        assert!(!verify("violet-tractor-lunar-88".into(), phc).await.unwrap());
    }

    #[test]
    fn compatibility_forms_are_normalised() {
        assert_eq!(normalise("ｐａｓｓ").unwrap(), "pass");
        assert!(normalise(&"a".repeat(1025)).is_err());
    }
}
