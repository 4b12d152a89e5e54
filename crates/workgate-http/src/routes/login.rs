//! Enterprise Login, step by step (anonymous: the `login_id` is the capability), token refresh,
//! and the preview of an invitation.

use crate::AppState;
use crate::extract::{Client, Json};
use crate::problem::{ApiResult, Problem};
use crate::views::MemberView;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use workgate_domain::login::{CodeInput, EnterpriseChoice, Next, PasswordInput, StartLoginInput, Started};
use workgate_domain::model::Enterprise;
use workgate_domain::sessions::{IssuedSession, RefreshInput};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(code))
        .routes(routes!(enterprise))
        .routes(routes!(resend))
        .routes(routes!(password))
        .routes(routes!(continue_login))
        .routes(routes!(refresh))
        .routes(routes!(preview_invitation))
}

#[derive(Serialize, ToSchema)]
pub struct StartView {
    /// The login's bearer capability (`lgn_` and 256 random bits): whoever holds it moves the login
    /// on, so the client keeps it to itself. The server stores only a hash of it.
    pub login_id: String,
    /// Always `code`.
    pub next: &'static str,
    /// Seconds the code stays valid.
    pub expires_in: i64,
    /// Seconds before a new code can be asked for.
    pub resend_after: i64,
    pub code_length: u32,
}

impl From<Started> for StartView {
    fn from(s: Started) -> Self {
        StartView {
            login_id: s.login_id,
            next: "code",
            expires_in: s.expires_in,
            resend_after: s.resend_after,
            code_length: s.code_length,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EnterpriseRef {
    pub id: String,
    pub name: String,
}

impl From<&Enterprise> for EnterpriseRef {
    fn from(e: &Enterprise) -> Self {
        EnterpriseRef { id: e.id.to_string(), name: e.name.to_string() }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SessionTokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Keep it: send it to `login/start` next time to keep this device's identity.
    pub device_id: String,
}

/// A step's answer: `next` is `enterprise` (with `enterprises`), `password`, `set_password`,
/// `pending_approval` (with `device_id`) or `done` (with `session`, `member` and `enterprise`).
#[derive(Serialize, ToSchema)]
pub struct StepView {
    pub next: &'static str,
    /// With `pending_approval`: the device an admin must approve before `continue` finishes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enterprises: Option<Vec<EnterpriseRef>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionTokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enterprise: Option<EnterpriseRef>,
}

impl From<IssuedSession> for StepView {
    fn from(s: IssuedSession) -> Self {
        StepView {
            next: "done",
            device_id: None,
            enterprises: None,
            session: Some(SessionTokens {
                access_token: s.access_token,
                refresh_token: s.refresh_token,
                expires_in: s.expires_in,
                device_id: s.device_id.to_string(),
            }),
            enterprise: Some((&s.enterprise).into()),
            member: Some(s.member.into()),
        }
    }
}

impl StepView {
    fn bare(next: &'static str) -> Self {
        StepView { next, device_id: None, enterprises: None, session: None, member: None, enterprise: None }
    }
}

impl From<Next> for StepView {
    fn from(next: Next) -> Self {
        match next {
            Next::Done(session) => (*session).into(),
            Next::Enterprise(list) => {
                StepView { enterprises: Some(list.iter().map(Into::into).collect()), ..StepView::bare("enterprise") }
            }
            Next::Password => StepView::bare("password"),
            Next::SetPassword => StepView::bare("set_password"),
            Next::PendingApproval(device) => {
                StepView { device_id: Some(device.to_string()), ..StepView::bare("pending_approval") }
            }
        }
    }
}

#[utoipa::path(post, path = "/api/v1/login/start", tag = "login", request_body = StartLoginInput,
    responses((status = 200, body = StartView), (status = 404, body = Problem), (status = 403, body = Problem),
        (status = 410, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn start(
    State(s): State<AppState>,
    Client(client): Client,
    Json(input): Json<StartLoginInput>,
) -> ApiResult<axum::Json<StartView>> {
    Ok(axum::Json(s.services.start_login(input, client).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/login/{login_id}/code", tag = "login", request_body = CodeInput,
    responses((status = 200, body = StepView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 410, body = Problem), (status = 429, body = Problem)))]
pub async fn code(
    State(s): State<AppState>,
    Client(client): Client,
    Path(login_id): Path<String>,
    Json(input): Json<CodeInput>,
) -> ApiResult<axum::Json<StepView>> {
    Ok(axum::Json(s.services.submit_code(&login_id, input, client).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/login/{login_id}/enterprise", tag = "login", request_body = EnterpriseChoice,
    responses((status = 200, body = StepView), (status = 403, body = Problem), (status = 410, body = Problem),
        (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn enterprise(
    State(s): State<AppState>,
    Client(client): Client,
    Path(login_id): Path<String>,
    Json(input): Json<EnterpriseChoice>,
) -> ApiResult<axum::Json<StepView>> {
    Ok(axum::Json(s.services.choose_enterprise(&login_id, input, client).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct ResendView {
    pub resend_after: i64,
}

#[utoipa::path(post, path = "/api/v1/login/{login_id}/resend", tag = "login",
    responses((status = 200, body = ResendView), (status = 410, body = Problem), (status = 429, body = Problem)))]
pub async fn resend(
    State(s): State<AppState>,
    Client(client): Client,
    Path(login_id): Path<String>,
) -> ApiResult<axum::Json<ResendView>> {
    Ok(axum::Json(ResendView { resend_after: s.services.resend_code(&login_id, client).await? }))
}

#[utoipa::path(post, path = "/api/v1/token/refresh", tag = "login", request_body = RefreshInput,
    responses((status = 200, body = StepView), (status = 401, body = Problem)))]
pub async fn refresh(
    State(s): State<AppState>,
    Client(client): Client,
    Json(input): Json<RefreshInput>,
) -> ApiResult<axum::Json<StepView>> {
    Ok(axum::Json(s.services.refresh(input, client).await?.into()))
}

#[derive(Serialize, ToSchema)]
pub struct InvitationPreviewView {
    pub enterprise: EnterpriseName,
    pub phone_masked: String,
    pub expires_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct EnterpriseName {
    pub name: String,
}

#[utoipa::path(get, path = "/api/v1/invitations/{token}", tag = "login",
    responses((status = 200, body = InvitationPreviewView), (status = 410, body = Problem)))]
pub async fn preview_invitation(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<axum::Json<InvitationPreviewView>> {
    let p = s.services.preview_invitation(&token).await?;
    Ok(axum::Json(InvitationPreviewView {
        enterprise: EnterpriseName { name: p.enterprise_name },
        phone_masked: p.phone_masked,
        expires_at: p.expires_at.to_rfc3339(),
    }))
}

#[utoipa::path(post, path = "/api/v1/login/{login_id}/password", tag = "login", request_body = PasswordInput,
    responses((status = 200, body = StepView), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 410, body = Problem), (status = 422, body = Problem),
        (status = 429, body = Problem)))]
pub async fn password(
    State(s): State<AppState>,
    Client(client): Client,
    Path(login_id): Path<String>,
    Json(input): Json<PasswordInput>,
) -> ApiResult<axum::Json<StepView>> {
    Ok(axum::Json(s.services.submit_password(&login_id, input, client).await?.into()))
}

/// After `pending_approval`: finishes the login once an admin approved the device.
#[utoipa::path(post, path = "/api/v1/login/{login_id}/continue", tag = "login",
    responses((status = 200, body = StepView), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 410, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn continue_login(
    State(s): State<AppState>,
    Client(client): Client,
    Path(login_id): Path<String>,
) -> ApiResult<axum::Json<StepView>> {
    Ok(axum::Json(s.services.continue_login(&login_id, client).await?.into()))
}
