//! Departments and members (SPEC section 4, admin).

use crate::AppState;
use crate::extract::{AdminCaller, Json, Query, read_body};
use crate::problem::{ApiError, ApiResult, Problem};
use crate::views::{DepartmentView, ListOf, LookupView, MemberView};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};
use workgate_domain::Error;
use workgate_domain::directory::{
    DepartmentPatch, ListMembersQuery, MemberPatch, NewDepartmentInput, NewMemberInput, StatusChange,
};
use workgate_domain::import::{ImportJson, ImportReport, parse_csv, parse_json};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_departments, create_department))
        .routes(routes!(get_department, update_department, delete_department))
        .routes(routes!(list_members, add_member))
        .routes(routes!(lookup_member))
        .routes(routes!(get_member, update_member))
        .routes(routes!(disable_member))
        .routes(routes!(enable_member))
        .routes(routes!(depart_member))
}

/// The import, apart: it takes bodies up to the import's own limit.
pub fn import_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import_members))
}

#[utoipa::path(get, path = "/api/v1/departments", tag = "directory", security(("bearer" = [])),
    responses((status = 200, body = ListOf<DepartmentView>), (status = 401, body = Problem)))]
pub async fn list_departments(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<axum::Json<ListOf<DepartmentView>>> {
    Ok(axum::Json(ListOf::all(s.services.list_departments(&caller).await?)))
}

#[utoipa::path(post, path = "/api/v1/departments", tag = "directory", security(("bearer" = [])), request_body = NewDepartmentInput,
    responses((status = 201, body = DepartmentView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_department(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Json(input): Json<NewDepartmentInput>,
) -> ApiResult<(StatusCode, axum::Json<DepartmentView>)> {
    let d = s.services.create_department(&caller, input).await?;
    Ok((StatusCode::CREATED, axum::Json(d.into())))
}

#[utoipa::path(get, path = "/api/v1/departments/{id}", tag = "directory", security(("bearer" = [])),
    responses((status = 200, body = DepartmentView), (status = 404, body = Problem)))]
pub async fn get_department(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DepartmentView>> {
    Ok(axum::Json(s.services.get_department(&caller, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/departments/{id}", tag = "directory", security(("bearer" = [])), request_body = DepartmentPatch,
    responses((status = 200, body = DepartmentView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_department(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    Json(patch): Json<DepartmentPatch>,
) -> ApiResult<axum::Json<DepartmentView>> {
    Ok(axum::Json(s.services.update_department(&caller, &id, patch).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/departments/{id}", tag = "directory", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_department(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.services.delete_department(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/members", tag = "directory", security(("bearer" = [])), params(ListMembersQuery),
    responses((status = 200, body = ListOf<MemberView>), (status = 422, body = Problem)))]
pub async fn list_members(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Query(query): Query<ListMembersQuery>,
) -> ApiResult<axum::Json<ListOf<MemberView>>> {
    let page = s.services.list_members(&caller, query).await?;
    Ok(axum::Json(ListOf::from_page(page, MemberView::from)))
}

#[utoipa::path(post, path = "/api/v1/members", tag = "directory", security(("bearer" = [])), request_body = NewMemberInput,
    responses((status = 201, body = MemberView), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_member(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Json(input): Json<NewMemberInput>,
) -> ApiResult<(StatusCode, axum::Json<MemberView>)> {
    let m = s.services.add_member(&caller, input).await?;
    Ok((StatusCode::CREATED, axum::Json(m.into())))
}

#[utoipa::path(get, path = "/api/v1/members/{id}", tag = "directory", security(("bearer" = [])),
    responses((status = 200, body = MemberView), (status = 404, body = Problem)))]
pub async fn get_member(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MemberView>> {
    Ok(axum::Json(s.services.get_member(&caller, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/members/{id}", tag = "directory", security(("bearer" = [])), request_body = MemberPatch,
    responses((status = 200, body = MemberView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_member(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    Json(patch): Json<MemberPatch>,
) -> ApiResult<axum::Json<MemberView>> {
    Ok(axum::Json(s.services.update_member(&caller, &id, patch).await?.into()))
}

async fn change_status(
    s: AppState,
    caller: AdminCaller,
    id: String,
    change: StatusChange,
) -> ApiResult<axum::Json<MemberView>> {
    Ok(axum::Json(s.services.change_member_status(&caller.0, &id, change).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/members/{id}/disable", tag = "directory", security(("bearer" = [])),
    responses((status = 200, body = MemberView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn disable_member(
    State(s): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MemberView>> {
    change_status(s, caller, id, StatusChange::Disable).await
}

#[utoipa::path(post, path = "/api/v1/members/{id}/enable", tag = "directory", security(("bearer" = [])),
    responses((status = 200, body = MemberView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn enable_member(
    State(s): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MemberView>> {
    change_status(s, caller, id, StatusChange::Enable).await
}

#[utoipa::path(post, path = "/api/v1/members/{id}/depart", tag = "directory", security(("bearer" = [])),
    responses((status = 200, body = MemberView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn depart_member(
    State(s): State<AppState>,
    caller: AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<MemberView>> {
    change_status(s, caller, id, StatusChange::Depart).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    /// The number in any form a person would type it.
    phone: String,
}

#[utoipa::path(get, path = "/api/v1/members/lookup", tag = "directory", security(("bearer" = [])), params(LookupQuery),
    responses((status = 200, body = LookupView), (status = 422, body = Problem)))]
pub async fn lookup_member(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Query(q): Query<LookupQuery>,
) -> ApiResult<axum::Json<LookupView>> {
    Ok(axum::Json(s.services.lookup_member_by_phone(&caller, &q.phone).await?.into()))
}

/// Bulk import: `text/csv` or `application/json`, under the import body limit.
#[utoipa::path(post, path = "/api/v1/members/import", tag = "directory", security(("bearer" = [])),
    request_body(description = "CSV with a header row among userid,name,phone,email,title,departments; or {members: [...]} with the fields of POST /members",
        content((String = "text/csv"), (ImportJson = "application/json"))),
    responses((status = 200, body = ImportReport), (status = 413, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn import_members(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    req: Request,
) -> Result<Response, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let is_csv = match content_type.as_str() {
        "text/csv" => true,
        "application/json" => false,
        _ => return Err(ApiError::UnsupportedMediaType { expected: "text/csv or application/json" }),
    };
    let body = read_body(req, &()).await?;
    let records = tokio::task::spawn_blocking(move || if is_csv { parse_csv(&body) } else { parse_json(&body) })
        .await
        .map_err(|e| Error::Internal(format!("import parser stopped: {e}")))??;
    let report = s.services.import_members(&caller, records, &|_, _| {}).await?;
    Ok(axum::Json(report).into_response())
}
