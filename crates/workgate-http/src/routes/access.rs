//! An admin's hand on a member's sign-in: invitations, devices and their approval, sessions,
//! unlocking after wrong codes, and a password reset.

use crate::AppState;
use crate::extract::AdminCaller;
use crate::problem::{ApiResult, Problem};
use crate::views::{DeviceView, InvitationView, ListOf};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(resend_invitation))
        .routes(routes!(list_invitations))
        .routes(routes!(unlock_member))
        .routes(routes!(member_devices))
        .routes(routes!(member_sessions))
        .routes(routes!(revoke_member_device))
        .routes(routes!(approve_member_device))
        .routes(routes!(require_password_reset))
}

#[utoipa::path(post, path = "/api/v1/members/{id}/invitation", tag = "directory", security(("bearer" = [])),
    responses((status = 201, body = InvitationView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resend_invitation(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<InvitationView>)> {
    Ok((StatusCode::CREATED, axum::Json(s.services.resend_invitation(&caller, &id).await?.into())))
}

#[utoipa::path(get, path = "/api/v1/members/{id}/invitations", tag = "directory", security(("bearer" = [])),
    responses((status = 200, body = ListOf<InvitationView>), (status = 404, body = Problem)))]
pub async fn list_invitations(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ListOf<InvitationView>>> {
    Ok(axum::Json(ListOf::all(s.services.list_invitations(&caller, &id).await?)))
}

#[utoipa::path(post, path = "/api/v1/members/{id}/unlock", tag = "directory", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn unlock_member(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.services.unlock_member(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/members/{id}/devices", tag = "directory", security(("bearer" = [])),
    responses((status = 200, body = ListOf<DeviceView>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn member_devices(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ListOf<DeviceView>>> {
    Ok(axum::Json(ListOf::all(s.services.member_devices(&caller, &id).await?)))
}

/// The member's device sessions and app grants, newest first, live and ended.
#[utoipa::path(get, path = "/api/v1/members/{id}/sessions", tag = "directory", security(("bearer" = [])),
    responses((status = 200, body = ListOf<crate::views::SessionView>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn member_sessions(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ListOf<crate::views::SessionView>>> {
    Ok(axum::Json(ListOf::all(s.services.member_sessions(&caller, &id).await?)))
}

#[utoipa::path(delete, path = "/api/v1/members/{id}/devices/{device_id}", tag = "directory", security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_member_device(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path((id, device_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.services.revoke_member_device(&caller, &id, &device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/members/{id}/devices/{device_id}/approve", tag = "directory", security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn approve_member_device(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path((id, device_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    s.services.approve_member_device(&caller, &id, &device_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Asks the member to choose a new password at their next login.
#[utoipa::path(post, path = "/api/v1/members/{id}/password-reset", tag = "directory", security(("bearer" = [])),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn require_password_reset(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.services.require_password_reset(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
