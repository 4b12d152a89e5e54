//! problem+json (RFC 9457): the one place where errors become HTTP responses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use workgate_domain::{Error, FieldError};

/// Everything a handler can fail with: a domain error, or one the HTTP layer finds itself.
#[derive(Debug)]
pub enum ApiError {
    Domain(Error),
    PayloadTooLarge,
    UnsupportedMediaType {
        expected: &'static str,
    },
    RouteNotFound,
    MethodNotAllowed,
    /// The server is stopping and its grace period for requests in flight is over.
    ShuttingDown,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Domain(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:workgate:error:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code (SPEC section 3).
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// With `code_invalid`: wrong codes the challenge still takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempts_left: Option<i64>,
    /// With `rate_limited`: seconds to wait (also in `Retry-After`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
    /// With `reverification_required`: `periodic`, `idle`, `app_updated`, `device_revoked` or
    /// `policy_changed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// With `device_pending_approval`: the device waiting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str, String, Option<Vec<FieldError>>) {
        use StatusCode as S;
        match self {
            ApiError::Domain(e) => match e {
                Error::InvalidPhone { detail } => {
                    (S::UNPROCESSABLE_ENTITY, "invalid_phone", "This is not a mobile number", detail.clone(), None)
                }
                Error::NotFound(what) => (
                    S::NOT_FOUND,
                    "not_found",
                    "Not found",
                    format!("No such {what} in this enterprise. Check the id, or list to find it."),
                    None,
                ),
                Error::Conflict(detail) => (S::CONFLICT, "conflict", "Conflict", capitalise(detail), None),
                Error::ChangedMeanwhile(_) => (S::CONFLICT, "conflict", "Conflict", capitalise(&e.to_string()), None),
                Error::Forbidden(detail) => (S::FORBIDDEN, "forbidden", "Not allowed", capitalise(detail), None),
                Error::Unauthorized => (
                    S::UNAUTHORIZED,
                    "unauthorized",
                    "Not signed in",
                    "Send a valid access token or API key as 'Authorization: Bearer <token>'.".into(),
                    None,
                ),
                Error::Validation(errors) => (
                    S::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "Some fields are invalid",
                    "Correct the fields listed in 'errors' and try again.".into(),
                    Some(errors.clone()),
                ),
                Error::NotAMember => (
                    S::NOT_FOUND,
                    "not_a_member",
                    "This number is not registered",
                    "Check the number for typos, or ask your administrator to add you and re-send the invitation.".into(),
                    None,
                ),
                Error::MemberDisabled => (
                    S::FORBIDDEN,
                    "member_disabled",
                    "Your account is disabled",
                    "Your administrator has disabled your account; ask them to enable it.".into(),
                    None,
                ),
                Error::CodeInvalid { .. } => (
                    S::BAD_REQUEST,
                    "code_invalid",
                    "Wrong verification code",
                    "Check the code in the latest SMS and enter it again.".into(),
                    None,
                ),
                Error::CodeExpired => (
                    S::GONE,
                    "code_expired",
                    "The code has expired",
                    "This code expired or was already used; start again to get a new code.".into(),
                    None,
                ),
                Error::TooManyAttempts => (
                    S::TOO_MANY_REQUESTS,
                    "too_many_attempts",
                    "Too many wrong codes",
                    "This code is locked after too many wrong tries; start again to get a new code.".into(),
                    None,
                ),
                Error::RateLimited { retry_after_secs, .. } => (
                    S::TOO_MANY_REQUESTS,
                    "rate_limited",
                    "Too many requests",
                    format!("Please wait {retry_after_secs} seconds before trying again."),
                    None,
                ),
                Error::PasswordInvalid => (
                    S::UNAUTHORIZED,
                    "password_invalid",
                    "Wrong password",
                    "Check your password and try again; after several wrong tries you will have to wait.".into(),
                    None,
                ),
                Error::PasswordTooWeak { detail } => {
                    (S::UNPROCESSABLE_ENTITY, "password_too_weak", "Choose a stronger password", detail.clone(), None)
                }
                Error::DevicePendingApproval { .. } => (
                    S::FORBIDDEN,
                    "device_pending_approval",
                    "This device is waiting for approval",
                    "Your organisation approves new devices; ask your administrator to approve this one, then continue."
                        .into(),
                    None,
                ),
                Error::DeviceLimitReached { max } => (
                    S::FORBIDDEN,
                    "device_limit_reached",
                    "Too many devices",
                    format!(
                        "You already have {max} trusted devices; sign one out under your devices, or ask your administrator."
                    ),
                    None,
                ),
                Error::ReverificationRequired { reason } => (
                    S::UNAUTHORIZED,
                    "reverification_required",
                    "Please verify this device again",
                    format!("Your organisation asks this device to verify again ({reason}): sign in with an SMS code."),
                    None,
                ),
                Error::InvitationExpired => (
                    S::GONE,
                    "invitation_expired",
                    "This invitation has expired",
                    "This link expired or was replaced by a newer one; ask your administrator to re-send the invitation."
                        .into(),
                    None,
                ),
                Error::Internal(_) => (
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Something went wrong on our side",
                    "The server could not complete the request. Try again; if it keeps failing, tell the operator the request id.".into(),
                    None,
                ),
            },
            ApiError::PayloadTooLarge => (
                S::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large",
                "The body is larger than this endpoint accepts; send less, or split a large import into several files."
                    .into(),
                None,
            ),
            ApiError::UnsupportedMediaType { expected } => (
                S::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported content type",
                format!("Send the body as {expected} with a matching Content-Type header."),
                None,
            ),
            ApiError::RouteNotFound => (
                S::NOT_FOUND,
                "not_found",
                "Not found",
                "There is no such endpoint. The API is described at /openapi.json.".into(),
                None,
            ),
            ApiError::MethodNotAllowed => (
                S::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "This endpoint does not take this method. The API is described at /openapi.json.".into(),
                None,
            ),
            ApiError::ShuttingDown => (
                S::SERVICE_UNAVAILABLE,
                "shutting_down",
                "The server is restarting",
                "The server stopped before it could finish this request; send it again.".into(),
                None,
            ),
        }
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    let mut out: String = chars.next().map(|c| c.to_uppercase().collect()).unwrap_or_default();
    out.extend(chars);
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Domain(Error::Internal(message)) = &self {
            tracing::error!(%message, "request failed");
        }
        let (status, code, title, detail, errors) = self.parts();
        let attempts_left = match &self {
            ApiError::Domain(Error::CodeInvalid { attempts_left }) => Some(*attempts_left),
            _ => None,
        };
        let retry_after = match &self {
            ApiError::Domain(Error::RateLimited { retry_after_secs, .. }) => Some(*retry_after_secs),
            _ => None,
        };
        let reason = match &self {
            ApiError::Domain(Error::ReverificationRequired { reason }) => Some(*reason),
            _ => None,
        };
        let device_id = match &self {
            ApiError::Domain(Error::DevicePendingApproval { device_id }) => Some(device_id.clone()),
            _ => None,
        };
        let body = Problem {
            device_id,
            reason,
            attempts_left,
            retry_after,
            kind: format!("urn:workgate:error:{code}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
            code,
            errors,
        };
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}
