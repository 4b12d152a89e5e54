//! API keys and the audit log (SPEC section 4, admin).

use crate::AppState;
use crate::extract::{AdminCaller, Json, Query};
use crate::problem::{ApiResult, Problem};
use crate::views::{ApiKeyView, AuditView, ListOf};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::{router::OpenApiRouter, routes};
use workgate_domain::audit::AuditQuery;
use workgate_domain::enterprises::CreateApiKey;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_api_keys, create_api_key))
        .routes(routes!(delete_api_key))
        .routes(routes!(list_audit))
}

#[utoipa::path(get, path = "/api/v1/api-keys", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = ListOf<ApiKeyView>), (status = 401, body = Problem)))]
pub async fn list_api_keys(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<axum::Json<ListOf<ApiKeyView>>> {
    Ok(axum::Json(ListOf::all(s.services.list_api_keys(&caller).await?)))
}

/// The answer carries the key itself, once; only its hash is stored.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "admin", security(("bearer" = [])), request_body = CreateApiKey,
    responses((status = 201, body = ApiKeyView), (status = 422, body = Problem)))]
pub async fn create_api_key(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Json(input): Json<CreateApiKey>,
) -> ApiResult<(StatusCode, axum::Json<ApiKeyView>)> {
    let created = s.services.create_api_key(&caller, input).await?;
    let mut view = ApiKeyView::from(created.key);
    view.key = Some(created.secret.expose().to_string());
    Ok((StatusCode::CREATED, axum::Json(view)))
}

#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "admin", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_api_key(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.services.delete_api_key(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "admin", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = ListOf<AuditView>), (status = 422, body = Problem)))]
pub async fn list_audit(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Query(query): Query<AuditQuery>,
) -> ApiResult<axum::Json<ListOf<AuditView>>> {
    let page = s.services.list_audit(&caller, query).await?;
    Ok(axum::Json(ListOf::from_page(page, AuditView::from)))
}
