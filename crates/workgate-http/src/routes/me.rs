//! The signed-in member's own endpoints: who they are, their enterprises and devices, signing out.

use crate::AppState;
use crate::extract::MemberCaller;
use crate::problem::{ApiResult, Problem};
use crate::routes::login::EnterpriseRef;
use crate::views::{DeviceView, ListOf, MemberView};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(me))
        .routes(routes!(logout))
        .routes(routes!(my_enterprises))
        .routes(routes!(my_devices))
        .routes(routes!(revoke_my_device))
}

#[derive(Serialize, ToSchema)]
pub struct MeView {
    pub member: MemberView,
    pub enterprise: EnterpriseRef,
    pub device_id: String,
}

#[utoipa::path(get, path = "/api/v1/me", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = MeView), (status = 401, body = Problem)))]
pub async fn me(State(s): State<AppState>, MemberCaller(session): MemberCaller) -> ApiResult<axum::Json<MeView>> {
    let (member, enterprise) = s.services.me(&session).await?;
    Ok(axum::Json(MeView {
        member: member.into(),
        enterprise: (&enterprise).into(),
        device_id: session.device_id.to_string(),
    }))
}

#[utoipa::path(post, path = "/api/v1/me/logout", tag = "me", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(State(s): State<AppState>, MemberCaller(session): MemberCaller) -> ApiResult<StatusCode> {
    s.services.logout(&session).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct MyEnterpriseView {
    pub id: String,
    pub name: String,
    pub member_id: String,
    pub status: String,
    /// This session's enterprise.
    pub current: bool,
}

#[utoipa::path(get, path = "/api/v1/me/enterprises", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = ListOf<MyEnterpriseView>), (status = 401, body = Problem)))]
pub async fn my_enterprises(
    State(s): State<AppState>,
    MemberCaller(session): MemberCaller,
) -> ApiResult<axum::Json<ListOf<MyEnterpriseView>>> {
    let list = s.services.my_enterprises(&session).await?;
    Ok(axum::Json(ListOf::whole(list, |(e, m)| MyEnterpriseView {
        current: e.id == session.enterprise_id,
        id: e.id.to_string(),
        name: e.name.to_string(),
        member_id: m.id.to_string(),
        status: m.status.as_str().into(),
    })))
}

#[utoipa::path(get, path = "/api/v1/me/devices", tag = "me", security(("bearer" = [])),
    responses((status = 200, body = ListOf<DeviceView>), (status = 401, body = Problem)))]
pub async fn my_devices(
    State(s): State<AppState>,
    MemberCaller(session): MemberCaller,
) -> ApiResult<axum::Json<ListOf<DeviceView>>> {
    let devices = s.services.my_devices(&session).await?;
    Ok(axum::Json(ListOf::whole(devices, |d| {
        let current = d.id == session.device_id;
        DeviceView { current: Some(current), ..d.into() }
    })))
}

#[utoipa::path(delete, path = "/api/v1/me/devices/{id}", tag = "me", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn revoke_my_device(
    State(s): State<AppState>,
    MemberCaller(session): MemberCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.services.revoke_my_device(&session, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
