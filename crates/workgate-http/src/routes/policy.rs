//! The enterprise's security policy (SPEC section 5).

use crate::AppState;
use crate::extract::{AdminCaller, Json};
use crate::problem::{ApiResult, Problem};
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use workgate_domain::policy::{Policy, StoredPolicy};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_policy, put_policy))
}

/// The policy's fields as in `PUT /policy`, and when it last changed. (Written out rather than
/// `#[serde(flatten)]`ed: `Policy` refuses unknown fields, so a document that flattens it would
/// say that `updated_at` may not be there.)
#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    pub require_password: bool,
    pub reverify_after_days: u32,
    pub idle_timeout_days: u32,
    pub reverify_on_app_update: bool,
    pub max_devices: u32,
    pub require_device_approval: bool,
    pub access_token_ttl_seconds: u32,
    /// Country codes whose numbers may be added and sign in; `null` means all.
    pub allowed_regions: Option<Vec<String>>,
    /// When the policy last changed (null while the defaults apply).
    pub updated_at: Option<String>,
}

impl From<StoredPolicy> for PolicyView {
    fn from(p: StoredPolicy) -> Self {
        let Policy {
            require_password,
            reverify_after_days,
            idle_timeout_days,
            reverify_on_app_update,
            max_devices,
            require_device_approval,
            access_token_ttl_seconds,
            allowed_regions,
        } = p.policy;
        PolicyView {
            require_password,
            reverify_after_days,
            idle_timeout_days,
            reverify_on_app_update,
            max_devices,
            require_device_approval,
            access_token_ttl_seconds,
            allowed_regions,
            updated_at: (p.updated_at.millis() > 0).then(|| p.updated_at.to_rfc3339()),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/policy", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = PolicyView), (status = 403, body = Problem)))]
pub async fn get_policy(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
) -> ApiResult<axum::Json<PolicyView>> {
    Ok(axum::Json(s.services.get_policy(&caller).await?.into()))
}

/// Replaces the whole policy. A change that tightens it asks devices verified before to verify
/// again at their next refresh (`policy_changed`).
#[utoipa::path(put, path = "/api/v1/policy", tag = "admin", security(("bearer" = [])), request_body = Policy,
    responses((status = 200, body = PolicyView), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn put_policy(
    State(s): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Json(policy): Json<Policy>,
) -> ApiResult<axum::Json<PolicyView>> {
    Ok(axum::Json(s.services.put_policy(&caller, policy).await?.into()))
}
