//! The apps registry (SPEC section 4, `/apps`): an enterprise's OpenID Connect clients.

use crate::AppState;
use crate::extract::{AdminCaller, Json};
use crate::problem::{ApiResult, Problem};
use crate::views::{AppView, ListOf};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::{router::OpenApiRouter, routes};
use workgate_domain::oidc::apps::{CreateApp, UpdateApp};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_apps, create_app))
        .routes(routes!(get_app, update_app, delete_app))
        .routes(routes!(rotate_app_secret))
}

#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", security(("bearer" = [])),
    responses((status = 200, body = ListOf<AppView>), (status = 403, body = Problem)))]
pub async fn list_apps(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<axum::Json<ListOf<AppView>>> {
    Ok(axum::Json(ListOf::all(s.services.list_apps(&caller).await?)))
}

/// A confidential app's answer carries its `client_secret`, once; only its hash is stored.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", security(("bearer" = [])), request_body = CreateApp,
    responses((status = 201, body = AppView), (status = 422, body = Problem)))]
pub async fn create_app(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Json(input): Json<CreateApp>,
) -> ApiResult<(StatusCode, axum::Json<AppView>)> {
    let created = s.services.create_app(&caller, input).await?;
    Ok((StatusCode::CREATED, axum::Json(created.into())))
}

#[utoipa::path(get, path = "/api/v1/apps/{id}", tag = "apps", security(("bearer" = [])),
    responses((status = 200, body = AppView), (status = 404, body = Problem)))]
pub async fn get_app(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AppView>> {
    Ok(axum::Json(s.services.get_app(&caller, &id).await?.into()))
}

#[utoipa::path(patch, path = "/api/v1/apps/{id}", tag = "apps", security(("bearer" = [])), request_body = UpdateApp,
    responses((status = 200, body = AppView), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update_app(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
    Json(input): Json<UpdateApp>,
) -> ApiResult<axum::Json<AppView>> {
    Ok(axum::Json(s.services.update_app(&caller, &id, input).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/apps/{id}", tag = "apps", security(("bearer" = [])),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete_app(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.services.delete_app(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret for a confidential app, shown once; the previous one stops working at once.
#[utoipa::path(post, path = "/api/v1/apps/{id}/secret", tag = "apps", security(("bearer" = [])),
    responses((status = 200, body = AppView), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn rotate_app_secret(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AppView>> {
    Ok(axum::Json(s.services.rotate_app_secret(&caller, &id).await?.into()))
}
