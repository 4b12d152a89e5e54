//! The one error type of the domain. Each variant is a condition a person can act on; the HTTP
//! crate maps each to a problem+json `code` of SPEC section 3 in one place.

use serde::Serialize;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One invalid field of a request, reported back as `errors: [{field, message}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The number cannot be parsed or is not a mobile number; `detail` says what was understood.
    #[error("invalid phone number: {detail}")]
    InvalidPhone { detail: String },
    /// No such resource in the caller's enterprise (never "it exists elsewhere").
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness or state rule would be broken; the message says which and what to do.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The record was changed by someone else between reading it and writing the change (a sign-in
    /// activating the member, another admin). The domain computes the change again from the record
    /// as it is now a few times before answering this.
    #[error("this {0} was changed by someone else at the same time; reload it and try again")]
    ChangedMeanwhile(&'static str),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The number has no `invited`/`active` membership anywhere.
    #[error("not a member")]
    NotAMember,
    /// Every membership of this number is disabled.
    #[error("member disabled")]
    MemberDisabled,
    #[error("wrong code")]
    CodeInvalid { attempts_left: i64 },
    /// The challenge expired, was already used, or does not exist.
    #[error("code expired")]
    CodeExpired,
    /// The challenge is locked after too many wrong codes.
    #[error("too many attempts")]
    TooManyAttempts,
    /// A limit was reached; try again after this many seconds.
    #[error("rate limited ({what})")]
    RateLimited { retry_after_secs: i64, what: &'static str },
    #[error("wrong password")]
    PasswordInvalid,
    #[error("password too weak: {detail}")]
    PasswordTooWeak { detail: String },
    /// The device waits for an admin's approval.
    #[error("device pending approval")]
    DevicePendingApproval { device_id: String },
    #[error("device limit reached")]
    DeviceLimitReached { max: u32 },
    /// Refresh refused by policy: the device must pass an SMS code again.
    #[error("reverification required ({reason})")]
    ReverificationRequired { reason: &'static str },
    /// The invitation link expired or was replaced by a newer one.
    #[error("invitation expired")]
    InvitationExpired,
    /// A failure of a part we depend on (database, disk). The message is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, message)])
    }

    /// Prefixes the field names of a validation error, e.g. `phone` → `members[3].phone`.
    pub fn in_field(self, prefix: &str) -> Self {
        match self {
            Error::Validation(errors) => Error::Validation(
                errors.into_iter().map(|e| FieldError::new(format!("{prefix}.{}", e.field), e.message)).collect(),
            ),
            other => other,
        }
    }

    /// A short machine-readable code, used for per-row import results and logs.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidPhone { .. } => "invalid_phone",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) | Error::ChangedMeanwhile(_) => "conflict",
            Error::Forbidden(_) => "forbidden",
            Error::Unauthorized => "unauthorized",
            Error::Validation(_) => "validation_failed",
            Error::NotAMember => "not_a_member",
            Error::MemberDisabled => "member_disabled",
            Error::CodeInvalid { .. } => "code_invalid",
            Error::CodeExpired => "code_expired",
            Error::TooManyAttempts => "too_many_attempts",
            Error::RateLimited { .. } => "rate_limited",
            Error::InvitationExpired => "invitation_expired",
            Error::ReverificationRequired { .. } => "reverification_required",
            Error::PasswordInvalid => "password_invalid",
            Error::PasswordTooWeak { .. } => "password_too_weak",
            Error::DevicePendingApproval { .. } => "device_pending_approval",
            Error::DeviceLimitReached { .. } => "device_limit_reached",
            Error::Internal(_) => "internal",
        }
    }
}

/// Collects field errors while parsing a request, so that every bad field is reported at once.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// Runs a parse; on failure records its field errors (an `InvalidPhone` is kept whole).
    pub fn check<T>(&mut self, field: &str, result: Result<T>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(Error::Validation(errs)) => {
                for e in errs {
                    let name = if e.field.is_empty() { field.to_string() } else { e.field };
                    self.errors.push(FieldError::new(name, e.message));
                }
                None
            }
            Err(Error::InvalidPhone { detail }) => {
                self.errors.push(FieldError::new(field, detail));
                None
            }
            Err(other) => {
                self.errors.push(FieldError::new(field, other.to_string()));
                None
            }
        }
    }

    pub fn push(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() { Ok(()) } else { Err(Error::Validation(self.errors)) }
    }
}

impl Validator {
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}
